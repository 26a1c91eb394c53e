"""Answer links: how a focal point answers a request from the message that asked.

Every request and reminder to a member state carries a link to the console page
``/answer/{secret}``, where its focal point nominates observers (or declines),
acknowledges the recommendations, or sends evidence per recommendation. A link is bound
to one request: a mission, a recipient (a state by ISO code, or an international
organisation by name), a deadline kind and, for evidence, a follow-up cycle. A request
may have many links (each message carries its own); all of them stop working once the
mission's record shows the request answered (``answered``; the console refuses such a
link as ``reused``), and each stops at its own ``expires_at``.

The secret is a bearer credential of 256 bits, URL-safe base64 (43 characters). Only its
SHA-256 is stored (table ``answer_links``), so the table gives nobody a usable link.

A message that is retried must carry the same link (delivery is idempotent by message
id), yet the stored hash cannot give the secret back. A message's secret is therefore
derived, not drawn: HMAC-SHA256 under a server key of what the link is bound to and the
message id (``message_secret``). The key lives outside the database (a setting, or a file
of the data directory), so reading the database gives neither the links nor the means to
make them; changing the key leaves the links already issued working (their hashes are
stored) and only changes those of messages composed afterwards. A link issued without a
message id is drawn at random.

Expiry, chosen for the delivery activity (``link_expiry``): the request's deadline, or the
time the message was due if that is later, plus a grace (30 days by default, the setting
``EOM_ANSWER_LINK_GRACE_DAYS``): a focal point may answer late, and escalation asks the
state to answer still, so a link outlives its deadline, but not for ever.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict

from domain.state import Mission
from domain.values import LINE_MAX, DeadlineKind, check_text
from eventstore.store import Connection

SECRET_BYTES = 32
"""Entropy of a secret: 256 bits, written as 43 URL-safe base64 characters."""
KEY_MIN_BYTES = 32
"""The least length of the server key that derives messages' secrets."""
DEFAULT_GRACE = timedelta(days=30)
"""How long after its deadline a message's link still works, by default."""

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_ISO_CODE = re.compile(r"[A-Za-z]{2}")

RefusalReason = Literal["unknown", "expired", "reused"]

_REFUSALS: dict[str, str] = {
    "unknown": "this answer link is not known (mistyped, or not one of eom's)",
    "expired": "this answer link has expired; the message's sender can send a new one",
    "reused": "this request has been answered already; the link no longer works",
}

Database = asyncpg.Pool | Connection


class LinkRefused(Exception):
    """An answer link that may not be used; ``reason`` is ``unknown`` (no such link, or
    not a link at all), ``expired`` or ``reused`` (its request is answered)."""

    def __init__(self, reason: RefusalReason) -> None:
        self.reason: RefusalReason = reason
        super().__init__(f"{reason}: {_REFUSALS[reason]}")


class AnswerLink(BaseModel):
    """What a link is bound to: the request of ``recipient`` (an ISO 3166-1 alpha-2 code,
    or an organisation's name) for ``kind`` in mission ``mission_id`` (``cycle``: the
    follow-up cycle of an evidence request, from 1; 0 for the other kinds), usable until
    ``expires_at`` (aware, UTC); ``message_id``: the message that carried it, if any."""

    model_config = ConfigDict(frozen=True)

    mission_id: str
    recipient: str
    kind: DeadlineKind
    cycle: int
    expires_at: AwareDatetime
    issued_at: AwareDatetime
    message_id: str | None = None


def secret_sha256(secret: str) -> bytes:
    """The 32-byte SHA-256 of a secret's ASCII text: what the table keeps."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def answer_url(base: str, secret: str) -> str:
    """The console page of a link: ``<base>/answer/<secret>`` (``base`` without a
    trailing slash, e.g. ``http://127.0.0.1:8000``)."""
    return f"{base.rstrip('/')}/answer/{secret}"


def link_expiry(
    deadline: datetime, sent_at: datetime, grace: timedelta = DEFAULT_GRACE
) -> datetime:
    """When a message's link stops working: the later of ``deadline`` and ``sent_at`` (when
    the message was due), plus ``grace``; aware, in UTC. Raises ``ValueError`` for a naive
    datetime or a grace that is not positive."""
    if deadline.utcoffset() is None or sent_at.utcoffset() is None:
        raise ValueError("deadline and sent_at need a time zone (naive datetimes are ambiguous)")
    if grace <= timedelta(0):
        raise ValueError(f"the grace of an answer link must be positive, got {grace}")
    return (max(deadline, sent_at) + grace).astimezone(UTC)


def _recipient(value: str, kind: DeadlineKind) -> str:
    text = value.strip()
    if _ISO_CODE.fullmatch(text):
        return text.upper()
    if kind is not DeadlineKind.acknowledgement:
        raise ValueError(
            f"recipient {value!r}: a {kind.value} request goes to a member state, named by "
            "its ISO 3166-1 alpha-2 code"
        )
    try:
        return check_text(text, multiline=False, max_length=LINE_MAX)
    except ValueError as error:
        raise ValueError(f"recipient {value!r}: {error}") from None


def _cycle(kind: DeadlineKind, cycle: int) -> int:
    if kind is DeadlineKind.evidence and cycle < 1:
        raise ValueError(f"cycle {cycle}: an evidence request belongs to a cycle from 1")
    if kind is not DeadlineKind.evidence and cycle != 0:
        raise ValueError(f"cycle {cycle}: only evidence requests have a cycle (give 0)")
    return cycle


def message_secret(
    key: bytes,
    *,
    message_id: str,
    mission_id: str,
    recipient: str,
    kind: DeadlineKind,
    cycle: int,
) -> str:
    """The secret of the link that message ``message_id`` carries: HMAC-SHA256 under
    ``key`` (at least ``KEY_MIN_BYTES`` bytes) of the message id and what the link is bound
    to, URL-safe base64 without padding (43 characters). The same on every retry of the
    message. Raises ``ValueError`` for a short key."""
    if len(key) < KEY_MIN_BYTES:
        raise ValueError(f"the answer-link key must have at least {KEY_MIN_BYTES} bytes")
    bound = "\x00".join(("eom answer link", message_id, mission_id, recipient, kind.value))
    digest = hmac.new(key, f"{bound}\x00{cycle}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def answered(mission: Mission, link: AnswerLink) -> bool:
    """Whether ``mission``'s record (its folded state) shows the request of ``link``
    answered: for a nomination, the state nominated an observer or declined; for an
    acknowledgement, the recipient acknowledged the recommendations; for evidence, the
    state submitted evidence for the link's cycle. Pure. Raises ``ValueError`` if the
    mission is not the link's."""
    if mission.mission_id != link.mission_id:
        raise ValueError(
            f"the link is of mission {link.mission_id!r}, not of {mission.mission_id!r}"
        )
    return mission.answered(link.kind, link.recipient, link.cycle)


def ensure_open(mission: Mission, link: AnswerLink) -> None:
    """Raise ``LinkRefused("reused")`` if ``mission``'s record shows the link's request
    answered (see ``answered``); return otherwise."""
    if answered(mission, link):
        raise LinkRefused("reused")


class AnswerLinks:
    """The ``answer_links`` table, on a pool or on a connection (to issue inside the
    caller's transaction). ``key`` (at least ``KEY_MIN_BYTES`` bytes) derives the
    secrets of links issued for a message; without it only random links can be issued."""

    def __init__(self, db: Database, *, key: bytes | None = None) -> None:
        if key is not None and len(key) < KEY_MIN_BYTES:
            raise ValueError(f"the answer-link key must have at least {KEY_MIN_BYTES} bytes")
        self.db = db
        self._key = key

    async def issue(
        self,
        mission_id: str,
        recipient: str,
        kind: DeadlineKind | str,
        cycle: int,
        ttl: timedelta,
        *,
        message_id: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """A link to the request of ``recipient`` (ISO code, upper-cased; or, for an
        acknowledgement, an organisation's name) for ``kind`` (and ``cycle``, from 1 for
        evidence, else 0) in ``mission_id``, usable for ``ttl`` from ``now`` (aware; the
        current time by default). Returns the secret, which is stored only as its SHA-256.

        With ``message_id`` the secret is derived (``message_secret``) and issuing again
        for the same message returns the same secret and stores nothing new; without it
        the secret is random. Raises ``ValueError`` naming the field for an empty mission
        id, a bad recipient or cycle, a ttl that is not positive, a naive ``now``, or a
        ``message_id`` without a key."""
        kind = DeadlineKind(kind)
        if not mission_id.strip():
            raise ValueError("mission_id must not be empty")
        recipient = _recipient(recipient, kind)
        cycle = _cycle(kind, cycle)
        if ttl <= timedelta(0):
            raise ValueError(f"ttl {ttl}: an answer link must be usable for some time")
        moment = now if now is not None else datetime.now(UTC)
        if moment.utcoffset() is None:
            raise ValueError("now needs a time zone (naive datetimes are ambiguous)")
        if message_id is None:
            secret = secrets.token_urlsafe(SECRET_BYTES)
        elif self._key is None:
            raise ValueError("message_id: a message's link is derived, and needs the key")
        else:
            secret = message_secret(
                self._key,
                message_id=message_id,
                mission_id=mission_id,
                recipient=recipient,
                kind=kind,
                cycle=cycle,
            )
        await self.db.execute(
            "INSERT INTO answer_links (secret_sha256, mission_id, recipient, kind, cycle,"
            " message_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (secret_sha256) DO NOTHING",
            secret_sha256(secret),
            mission_id,
            recipient,
            kind.value,
            cycle,
            message_id,
            moment + ttl,
        )
        return secret

    async def resolve(self, secret: str, *, now: datetime | None = None) -> AnswerLink:
        """What the link ``secret`` is bound to. Raises ``LinkRefused("unknown")`` for a
        text that is not a secret or a secret never issued, ``LinkRefused("expired")`` when
        ``now`` (aware; the current time by default) is at or after its ``expires_at``.
        Whether its request is answered is the record's to say: see ``ensure_open``."""
        if not _SECRET.fullmatch(secret):
            raise LinkRefused("unknown")
        row = await self.db.fetchrow(
            "SELECT mission_id, recipient, kind, cycle, expires_at, issued_at, message_id "
            "FROM answer_links WHERE secret_sha256 = $1",
            secret_sha256(secret),
        )
        if row is None:
            raise LinkRefused("unknown")
        link = AnswerLink.model_validate(dict(row))
        if (now if now is not None else datetime.now(UTC)) >= link.expires_at:
            raise LinkRefused("expired")
        return link
