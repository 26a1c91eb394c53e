"""Principals and their bearer tokens.

A token is ``eom_<32 hex>``: 128 random bits. Only its SHA-256 is stored — a fast hash is
right for a random secret of that size (there is nothing to brute-force, unlike a
password). Tokens expire and can be revoked; every accepted command records the
principal as its actor.

The API may keep what a lookup found for a few seconds (``cache_seconds``): a device
sending reports by the thousand then costs no database round trip per request. Expiry is
checked on every request; a revocation made through the same store is seen at once, one
made elsewhere (``eom token revoke``) within ``cache_seconds``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from domain.values import IDENTIFIER_PATTERN, check_text

TOKEN_PREFIX = "eom_"
_TOKEN = re.compile(r"^eom_[0-9a-f]{32}$")


class Role(StrEnum):
    coordinator = "coordinator"
    head_of_mission = "head_of_mission"
    observer = "observer"
    member_state = "member_state"
    auditor = "auditor"


SCOPES: dict[Role, tuple[set[str], set[str]]] = {
    # role: (scope fields required, scope fields allowed)
    Role.coordinator: (set(), {"organisation"}),
    Role.head_of_mission: ({"mission_id"}, {"mission_id"}),
    Role.observer: ({"mission_id", "team_id"}, {"mission_id", "team_id"}),
    Role.member_state: ({"member_state"}, {"member_state", "mission_id"}),
    Role.auditor: (set(), set()),
}


class TokenError(ValueError):
    """A token request that cannot be granted (named scope missing or not allowed)."""


class Principal(BaseModel):
    """Who is calling, and what their token lets them reach."""

    model_config = ConfigDict(frozen=True)

    token_id: uuid.UUID
    name: str
    role: Role
    organisation: str | None = None
    mission_id: str | None = None
    member_state: str | None = None
    team_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    email: str | None = None
    """A person of the console's user directory (a token has none)."""

    @property
    def actor(self) -> str:
        """What the events' metadata records as the actor: ``role:name@scope``, the
        person's e-mail after their name (``coordinator:Aigerim Bekova
        (a.bekova@turkic.example)@Turkic Council``)."""
        scope = self.member_state or self.mission_id or self.organisation or "all"
        who = f"{self.name} ({self.email})" if self.email else self.name
        return f"{self.role.value}:{who}@{scope}"

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


MAX_LIFETIME = timedelta(days=3660)
"""A token lives ten years at most."""


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or ``45s`` (ASCII digits), at most ``MAX_LIFETIME``;
    else ``TokenError``."""
    match = re.fullmatch(r"\s*([0-9]{1,15})\s*([dhms])\s*", text)
    if not match:
        raise TokenError(f"--expires {text!r} is not a duration like 90d, 12h, 30m or 45s")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[match[2]]
    amount = int(match[1])
    per_day = {"d": 1, "h": 24, "m": 24 * 60, "s": 24 * 3600}[match[2]]
    if amount > MAX_LIFETIME.days * per_day:
        raise TokenError(f"--expires {text!r} is longer than {MAX_LIFETIME.days} days")
    return timedelta(**{unit: amount})


_FLAGS = {
    "organisation": "--organisation",
    "mission_id": "--mission",
    "member_state": "--member-state",
    "team_id": "--team",
}


def _check_scope(role: Role, given: dict[str, str | None]) -> None:
    required, allowed = SCOPES[role]
    present = {k for k, v in given.items() if v}
    missing = required - present
    if missing:
        flags = ", ".join(_FLAGS[m] for m in sorted(missing))
        raise TokenError(f"{role.value} tokens need {flags}")
    extra = present - allowed
    if extra:
        flags = ", ".join(_FLAGS[m] for m in sorted(extra))
        raise TokenError(f"{role.value} tokens take no {flags}")
    state = given.get("member_state")
    if state and not re.fullmatch(r"[A-Z]{2}", state):
        raise TokenError(f"member state {state!r} is not an ISO 3166-1 alpha-2 code")


def _line(flag: str, value: str) -> str:
    """A name the events record in their actor (``role:name@scope``): one short line."""
    try:
        return check_text(value, multiline=False, max_length=200)
    except ValueError as error:
        raise TokenError(f"{flag} {value!r} {error}") from None


_COLUMNS = (
    "token_id, name, role, organisation, mission_id, member_state, team_id, created_at, "
    "expires_at, revoked_at"
)


def _principal(row: asyncpg.Record) -> Principal:
    return Principal.model_validate(dict(row))


_CACHE_ENTRIES = 100_000
"""Tokens whose lookups an API process keeps at most (a few MB)."""


class TokenStore:
    def __init__(self, pool: asyncpg.Pool, *, cache_seconds: float = 0.0) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(
        self,
        *,
        role: Role,
        name: str,
        organisation: str | None = None,
        mission_id: str | None = None,
        member_state: str | None = None,
        team_id: str | None = None,
        expires_in: timedelta | None = None,
        issued_to: uuid.UUID | None = None,
    ) -> tuple[str, Principal]:
        """A new token (returned once, never stored) and its principal; ``issued_to`` is
        the console person it is issued to (disabling them revokes it)."""
        member_state = member_state.strip().upper() if member_state else None
        name = _line("--name", name)
        organisation = _line("--organisation", organisation) if organisation else None
        for flag, value in (("--mission", mission_id), ("--team", team_id)):
            if value and not re.fullmatch(IDENTIFIER_PATTERN, value):
                raise TokenError(
                    f"{flag} {value!r} is not an id (letters, digits and . _ : -, at most 100)"
                )
        _check_scope(
            role,
            {
                "organisation": organisation,
                "mission_id": mission_id,
                "member_state": member_state,
                "team_id": team_id,
            },
        )
        if expires_in is not None and expires_in <= timedelta(0):
            raise TokenError("a token's expiry must lie in the future")
        token = TOKEN_PREFIX + secrets.token_hex(16)
        expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
        row = await self.pool.fetchrow(
            f"INSERT INTO api_tokens (token_id, token_hash, name, role, organisation, "
            f"mission_id, member_state, team_id, expires_at, issued_to) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}",
            uuid.uuid4(),
            hash_token(token),
            name.strip(),
            role.value,
            organisation,
            mission_id,
            member_state,
            team_id,
            expires_at,
            issued_to,
        )
        assert row is not None
        return token, _principal(row)

    async def authenticate(self, token: str) -> tuple[Principal | None, str]:
        """The token's principal and its status (``active``, ``expired``, ``revoked``,
        ``unknown``, ``malformed``)."""
        if not _TOKEN.match(token):
            return None, "malformed"
        digest = hash_token(token)
        principal = self._cached(digest)
        if principal is None:
            row = await self.pool.fetchrow(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = $1", digest
            )
            if row is None:
                return None, "unknown"
            principal = _principal(row)
            self._keep(digest, principal)
        return principal, principal.status(datetime.now(UTC))

    def _cached(self, digest: str) -> Principal | None:
        found = self._cache.get(digest)
        if found is None or time.monotonic() - found[0] >= self.cache_seconds:
            return None
        return found[1]

    def _keep(self, digest: str, principal: Principal) -> None:
        if self.cache_seconds <= 0:
            return
        now = time.monotonic()
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache = {
                d: kept for d, kept in self._cache.items() if now - kept[0] < self.cache_seconds
            }
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
        self._cache[digest] = (now, principal)

    async def list(self) -> list[Principal]:
        rows = await self.pool.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at")
        return [_principal(r) for r in rows]

    async def revoke(self, token_id: uuid.UUID) -> Principal:
        row = await self.pool.fetchrow(
            f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, clock_timestamp()) "
            f"WHERE token_id = $1 RETURNING {_COLUMNS}",
            token_id,
        )
        if row is None:
            raise TokenError(f"no token {token_id}")
        self._cache = {d: kept for d, kept in self._cache.items() if kept[1].token_id != token_id}
        return _principal(row)


def describe(principal: Principal, now: datetime) -> dict[str, Any]:
    return {
        "id": str(principal.token_id),
        "name": principal.name,
        "role": principal.role.value,
        "scope": ", ".join(
            f"{k}={v}"
            for k, v in (
                ("organisation", principal.organisation),
                ("mission", principal.mission_id),
                ("member_state", principal.member_state),
                ("team", principal.team_id),
            )
            if v
        )
        or "all",
        "expires": principal.expires_at.isoformat() if principal.expires_at else "never",
        "status": principal.status(now),
    }
