"""``Idempotency-Key``: the same key with the same body returns the first result; the
same key with another body is a conflict. Keys are per token.

A key is *reserved* before its request runs (a row without a response), so that two
requests racing with one key never both run: the first runs, a second with the same body
waits for the first one's answer, one with another body is refused at once. A request
that ends without an answer to keep (the service was unavailable) releases its key, so
that it can be sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import rfc8785

_NAMESPACE = uuid.UUID("6f1c7a52-5a57-4b8e-9d0e-2f3d9b1c0e11")


def request_hash(payload: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()


def command_id(token_id: uuid.UUID, key: str) -> str:
    """A retried request carries the same command id, which Temporal also uses as the
    update id: a retry racing the original is deduplicated by the workflow too."""
    return str(uuid.uuid5(_NAMESPACE, f"{token_id}:{key}"))


@dataclass(frozen=True)
class Stored:
    request_hash: str
    status_code: int
    response: dict[str, Any]


class KeyReused(Exception):
    """The key was used with a different request."""


class KeyInUse(Exception):
    """The first request with this key is still running after the wait."""


class IdempotencyStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        wait_seconds: float = 60.0,
        poll_seconds: float = 0.05,
        abandoned_seconds: float = 600.0,
    ) -> None:
        self.pool = pool
        self.wait_seconds = wait_seconds
        """How long a request waits for the first one with its key to be answered."""
        self.poll_seconds = poll_seconds
        self.abandoned_seconds = abandoned_seconds
        """A reservation this old is taken over: its request's process died unanswered.
        (Running it again is safe: the key's command id makes the mission take it once.)"""

    async def get(self, token_id: uuid.UUID, key: str) -> Stored | None:
        """The answer kept for the key, if it has one (a reserved key has none yet)."""
        row = await self.pool.fetchrow(
            "SELECT request_hash, status_code, response FROM api_idempotency "
            "WHERE token_id = $1 AND key = $2",
            token_id,
            key,
        )
        if row is None or row["status_code"] is None:
            return None
        return Stored(row["request_hash"], row["status_code"], row["response"])

    async def answered(self, token_id: uuid.UUID, key: str, digest: str) -> Stored | None:
        """The answer kept for ``key`` if it was used, waiting (up to ``wait_seconds``)
        while the request holding it still runs; ``None`` if it is free. ``KeyReused``
        for another body, ``KeyInUse`` when the first is still running: what a dry run
        needs to say what the real request would, without reserving the key."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            row = await self.pool.fetchrow(
                "SELECT request_hash, status_code, response FROM api_idempotency "
                "WHERE token_id = $1 AND key = $2",
                token_id,
                key,
            )
            if row is None:
                return None
            if row["request_hash"] != digest:
                raise KeyReused
            if row["status_code"] is not None:
                return Stored(row["request_hash"], row["status_code"], row["response"])
            if time.monotonic() >= deadline:
                raise KeyInUse
            await asyncio.sleep(self.poll_seconds)

    async def reserve(self, token_id: uuid.UUID, key: str, digest: str) -> Stored | None:
        """Reserve ``key`` for the request hashed ``digest``: ``None`` when this request is
        to run (the caller then ``save``s or ``release``s it), or the first answer when a
        request with the same body was answered (waiting up to ``wait_seconds`` for it).
        ``KeyReused`` for another body, ``KeyInUse`` when the first is still running."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            row = await self.pool.fetchrow(
                "WITH reserved AS ("
                " INSERT INTO api_idempotency (token_id, key, request_hash)"
                " VALUES ($1, $2, $3) ON CONFLICT (token_id, key) DO NOTHING RETURNING 1)"
                " SELECT true AS reserved, NULL::text AS request_hash, NULL::int AS status_code,"
                " NULL::jsonb AS response FROM reserved"
                " UNION ALL"
                " SELECT false, request_hash, status_code, response FROM api_idempotency"
                " WHERE token_id = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM reserved)",
                token_id,
                key,
                digest,
            )
            if row is None:
                continue  # the holder released it between the two parts: try again
            if row["reserved"]:
                return None
            if row["request_hash"] != digest:
                raise KeyReused
            if row["status_code"] is not None:
                return Stored(row["request_hash"], row["status_code"], row["response"])
            if await self._take_over(token_id, key):
                return None
            if time.monotonic() >= deadline:
                raise KeyInUse
            await asyncio.sleep(self.poll_seconds)

    async def _take_over(self, token_id: uuid.UUID, key: str) -> bool:
        taken = await self.pool.fetchval(
            "UPDATE api_idempotency SET created_at = clock_timestamp() "
            "WHERE token_id = $1 AND key = $2 AND status_code IS NULL "
            "AND created_at < clock_timestamp() - make_interval(secs => $3) RETURNING true",
            token_id,
            key,
            self.abandoned_seconds,
        )
        return bool(taken)

    async def save(self, token_id: uuid.UUID, key: str, stored: Stored) -> Stored:
        """Keep ``stored`` as the key's answer (the key is reserved by this request, or
        unknown); return the answer kept."""
        row = await self.pool.fetchrow(
            "INSERT INTO api_idempotency (token_id, key, request_hash, status_code, response,"
            " completed_at) VALUES ($1, $2, $3, $4, $5::jsonb, clock_timestamp()) "
            "ON CONFLICT (token_id, key) DO UPDATE SET status_code = EXCLUDED.status_code,"
            " response = EXCLUDED.response, completed_at = EXCLUDED.completed_at"
            " WHERE api_idempotency.status_code IS NULL"
            " AND api_idempotency.request_hash = EXCLUDED.request_hash "
            "RETURNING request_hash, status_code, response",
            token_id,
            key,
            stored.request_hash,
            stored.status_code,
            stored.response,
        )
        if row is not None:
            return Stored(row["request_hash"], row["status_code"], row["response"])
        kept = await self.get(token_id, key)
        assert kept is not None, "a key is answered once, by the request holding it"
        return kept

    async def release(self, token_id: uuid.UUID, key: str) -> None:
        """Give back a key reserved by a request that ends without an answer to keep."""
        await self.pool.execute(
            "DELETE FROM api_idempotency WHERE token_id = $1 AND key = $2 AND status_code IS NULL",
            token_id,
            key,
        )
