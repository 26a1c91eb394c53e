"""``Idempotency-Key``: the same key with the same body returns the first result; the
same key with another body is a conflict. Keys are per token."""

from __future__ import annotations

import hashlib
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


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, token_id: uuid.UUID, key: str) -> Stored | None:
        row = await self.pool.fetchrow(
            "SELECT request_hash, status_code, response FROM api_idempotency "
            "WHERE token_id = $1 AND key = $2",
            token_id,
            key,
        )
        if row is None:
            return None
        return Stored(row["request_hash"], row["status_code"], row["response"])

    async def save(self, token_id: uuid.UUID, key: str, stored: Stored) -> Stored:
        """Keep the first result for this key; return what is kept."""
        await self.pool.execute(
            "INSERT INTO api_idempotency (token_id, key, request_hash, status_code, response) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (token_id, key) DO NOTHING",
            token_id,
            key,
            stored.request_hash,
            stored.status_code,
            stored.response,
        )
        kept = await self.get(token_id, key)
        assert kept is not None
        return kept
