"""Console sessions: a random secret (the cookie's content, 256 bits) per signed-in
person, stored only as its SHA-256 (``console_sessions``). A session ends when it
expires, when it is ended (sign-out), or when its user is disabled (the directory ends
every open session of theirs in the transaction that records it, and a lookup checks the
user too).

The CSRF token is per session and derived from its secret (HMAC-SHA256 of a fixed
label, keyed with the secret): nothing more is stored, the token is the same for the
whole session, and no one without the secret can compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from accounts.directory import USER_COLUMNS, user_from_row
from accounts.links import check_ttl, hash_secret, is_secret, new_secret
from accounts.users import User, UserError
from api.tokens import Principal

log = structlog.get_logger("eom.accounts")

MAX_SESSION_TTL = timedelta(days=30)
"""A session lives 30 days at most."""

_CSRF_LABEL = b"eom console csrf token v1"


def csrf_token_for(secret: str) -> str:
    """The session's CSRF token: URL-safe base64 (no padding, 43 characters) of
    HMAC-SHA256(key=secret, message=a fixed label)."""
    digest = hmac.new(secret.encode("utf-8", "surrogatepass"), _CSRF_LABEL, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class StartedSession:
    """What starting a session gives back once: the secret (for the cookie), its CSRF
    token (for the forms), and when it expires (aware, UTC)."""

    secret: str
    csrf_token: str
    expires_at: datetime
    session_id: uuid.UUID

    def __repr__(self) -> str:  # the secret stays out of reprs, hence out of logs
        return f"StartedSession(session_id={self.session_id}, expires_at={self.expires_at})"


@dataclass(frozen=True)
class Session:
    """An open session, as a lookup finds it: its id (the principal's ``token_id``), its
    user, its CSRF token, and its times (aware)."""

    session_id: uuid.UUID
    user: User
    csrf_token: str
    started_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return (
            f"Session(session_id={self.session_id}, user_id={self.user.user_id}, "
            f"expires_at={self.expires_at})"
        )

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` (a form's or a header's) is this session's CSRF token,
        compared in constant time; False for None or a non-ASCII text."""
        if token is None:
            return False
        try:
            given = token.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(given, self.csrf_token.encode("ascii"))

    @property
    def principal(self) -> Principal:
        """The API's principal for this session: the user's role and scope, its actor
        naming the person (``User.principal``)."""
        return self.user.principal(self.session_id, expires_at=self.expires_at)


class Sessions:
    """Console sessions over the database pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def start(self, user: User, ttl: timedelta) -> StartedSession:
        """A new session for ``user``, valid for ``ttl`` (at most ``MAX_SESSION_TTL``).
        Raises ``UserError``: ``ttl`` out of range, or ``user`` disabled or not in the
        directory."""
        check_ttl(ttl, MAX_SESSION_TTL)
        secret = new_secret()
        session_id = uuid.uuid4()
        expires_at = await self.pool.fetchval(
            "INSERT INTO console_sessions (session_id, session_hash, user_id, expires_at) "
            "SELECT $1, $2, user_id, clock_timestamp() + $4::interval FROM console_users "
            "WHERE user_id = $3 AND disabled_at IS NULL RETURNING expires_at",
            session_id,
            hash_secret(secret),
            user.user_id,
            ttl,
        )
        if expires_at is None:
            raise UserError("user", f"{user.email} is disabled or not in the directory")
        log.info("session started", session_id=str(session_id), user_id=str(user.user_id))
        return StartedSession(
            secret=secret,
            csrf_token=csrf_token_for(secret),
            expires_at=expires_at,
            session_id=session_id,
        )

    async def lookup(self, secret: str) -> Session | None:
        """The open session whose secret this is; None when there is none: unknown (or
        not a secret at all), expired, ended, or its user disabled."""
        if not is_secret(secret):
            return None
        prefixed = ", ".join(f"u.{c} AS u_{c}" for c in USER_COLUMNS.split(", "))
        row = await self.pool.fetchrow(
            f"SELECT s.session_id, s.started_at, s.expires_at, {prefixed} "
            "FROM console_sessions AS s JOIN console_users AS u USING (user_id) "
            "WHERE s.session_hash = $1 AND s.ended_at IS NULL "
            "AND s.expires_at > clock_timestamp() AND u.disabled_at IS NULL",
            hash_secret(secret),
        )
        if row is None:
            return None
        return Session(
            session_id=row["session_id"],
            user=user_from_row(row, prefix="u_"),
            csrf_token=csrf_token_for(secret),
            started_at=row["started_at"],
            expires_at=row["expires_at"],
        )

    async def end(self, secret: str) -> bool:
        """End the session (sign-out); whether an open one was ended (False for an
        unknown or already ended one: ending is idempotent)."""
        if not is_secret(secret):
            return False
        status = await self.pool.execute(
            "UPDATE console_sessions SET ended_at = clock_timestamp() "
            "WHERE session_hash = $1 AND ended_at IS NULL",
            hash_secret(secret),
        )
        ended = status.split()[-1] != "0"
        if ended:
            log.info("session ended")
        return ended

    async def end_all(self, user: User) -> int:
        """End every open session of ``user``; how many were open."""
        status = await self.pool.execute(
            "UPDATE console_sessions SET ended_at = clock_timestamp() "
            "WHERE user_id = $1 AND ended_at IS NULL",
            user.user_id,
        )
        return int(status.split()[-1])
