"""One-time sign-in links: a random secret (256 bits, URL-safe) that signs a person in
once, within its lifetime. Only its SHA-256 is stored (``console_sign_in_links``): a
fast hash is right for a random secret of that size, there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
import structlog

from accounts.directory import USER_COLUMNS, user_from_row
from accounts.users import User, UserError

log = structlog.get_logger("eom.accounts")

MAX_LINK_TTL = timedelta(days=7)
"""A sign-in link lives a week at most (the CLI's default is 15 minutes)."""

SECRET_BYTES = 32
"""256 random bits: ``secrets.token_urlsafe(32)``, 43 characters."""

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")

RefusalReason = Literal["unknown", "used", "expired", "disabled"]


class LinkRefused(Exception):
    """A sign-in link that signs nobody in; ``reason`` says why: ``unknown`` (never
    issued, or not a link at all), ``used`` (redeemed already), ``expired``,
    ``disabled`` (its user has been disabled)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(f"sign-in link refused: {reason}")
        self.reason: RefusalReason = reason


def hash_secret(secret: str) -> str:
    """The SHA-256 of a secret (link or session), as 64 hex digits: what is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A new random secret: 256 bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def is_secret(text: str) -> bool:
    """Whether ``text`` has the shape of a secret ``new_secret`` makes."""
    return _SECRET.fullmatch(text) is not None


def sign_in_url(base: str, secret: str) -> str:
    """``<base>/sign-in/<secret>``: the page that redeems a link. ``base`` is the
    console's absolute http(s) URL (a trailing slash is dropped). ``ValueError`` for a
    base that is not one, or a secret ``new_secret`` did not make."""
    parts = urlsplit(base.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"console URL {base!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"console URL {base!r} must not have a query or fragment")
    if not is_secret(secret):
        raise ValueError("not a sign-in secret")
    return f"{base.strip().rstrip('/')}/sign-in/{secret}"


def duration_text(value: timedelta) -> str:
    """``7d``, ``1h 30m``, ``45s``: a lifetime as people write it."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or f"{value.total_seconds():g}s"


def check_ttl(ttl: timedelta, maximum: timedelta) -> timedelta:
    """``ttl`` if it lies in (0, ``maximum``]; else ``UserError('ttl')``."""
    if ttl <= timedelta(0):
        raise UserError("ttl", "must be longer than zero")
    if ttl > maximum:
        raise UserError(
            "ttl", f"must be at most {duration_text(maximum)} (given {duration_text(ttl)})"
        )
    return ttl


class SignInLinks:
    """Sign-in links over the database pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def issue(self, user: User, ttl: timedelta) -> str:
        """A new link's secret for ``user``, valid for ``ttl`` (at most ``MAX_LINK_TTL``)
        and once; the user's earlier links that were not used expire now. The secret is
        returned, never stored. Raises ``UserError``: ``ttl`` out
        of range, or ``user`` disabled or not in the directory."""
        check_ttl(ttl, MAX_LINK_TTL)
        secret = new_secret()
        async with self.pool.acquire() as conn, conn.transaction():
            # The newest link is the one that works: those issued before it expire now.
            await conn.execute(
                "UPDATE console_sign_in_links SET expires_at = clock_timestamp() "
                "WHERE user_id = $1 AND used_at IS NULL AND expires_at > clock_timestamp()",
                user.user_id,
            )
            issued = await conn.fetchval(
                "INSERT INTO console_sign_in_links (link_hash, user_id, expires_at) "
                "SELECT $1, user_id, clock_timestamp() + $3::interval FROM console_users "
                "WHERE user_id = $2 AND disabled_at IS NULL RETURNING expires_at",
                hash_secret(secret),
                user.user_id,
                ttl,
            )
        if issued is None:
            raise UserError("user", f"{user.email} is disabled or not in the directory")
        log.info("sign-in link issued", user_id=str(user.user_id), expires_at=issued.isoformat())
        return secret

    async def redeem(self, secret: str) -> User:
        """The user a link signs in, marking it used: at most once, whoever redeems it
        at the same time (the link's row is locked). Raises ``LinkRefused`` with its
        reason (checked in this order): ``unknown``, ``used``, ``expired``, ``disabled``.
        A refused link is left as it was."""
        if not is_secret(secret):
            raise LinkRefused("unknown")
        prefixed = ", ".join(f"u.{c} AS u_{c}" for c in USER_COLUMNS.split(", "))
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT l.link_hash, l.used_at, l.expires_at <= clock_timestamp() AS expired, "
                f"{prefixed} FROM console_sign_in_links AS l "
                "JOIN console_users AS u USING (user_id) "
                "WHERE l.link_hash = $1 FOR UPDATE OF l",
                hash_secret(secret),
            )
            reason: RefusalReason | None
            if row is None:
                reason = "unknown"
            elif row["used_at"] is not None:
                reason = "used"
            elif row["expired"]:
                reason = "expired"
            elif row["u_disabled_at"] is not None:
                reason = "disabled"
            else:
                reason = None
                await conn.execute(
                    "UPDATE console_sign_in_links SET used_at = clock_timestamp() "
                    "WHERE link_hash = $1",
                    row["link_hash"],
                )
        if reason is not None:
            log.info("sign-in link refused", reason=reason)
            raise LinkRefused(reason)
        assert row is not None
        user = user_from_row(row, prefix="u_")
        log.info("sign-in link redeemed", user_id=str(user.user_id))
        return user
