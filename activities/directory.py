"""Who is reminded, how, and when: the member-state directory and the reminder ladders.

A reminder that cannot be delivered is worse than none, because the mission believes it
was sent. So the directory refuses, at entry time, anything that would only fail later:
a malformed address, a webhook that is not http(s), a webhook without the secret its
requests are signed with, an entry with no channel at all. Each refusal is a
``DirectoryError`` whose message names the problem.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise
from typing import Annotated, Any

import asyncpg
import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from domain.values import LINE_MAX, MAX_LADDER_SECONDS, DeadlineKind, check_text
from eventstore.store import Connection

Database = asyncpg.Pool | Connection
"""A pool, or one connection when the caller needs the read inside its own transaction."""

MIN_SECRET_LENGTH = 16
MAX_SECONDS = MAX_LADDER_SECONDS
"""The database stores seconds as ``integer``: about 68 years."""
MAX_OFFSETS = 20
"""Reminders before one deadline, at most (as ``domain.values.ReminderLadder`` allows)."""


class DirectoryError(ValueError):
    """A directory entry or a ladder that cannot be accepted; the message names why."""


class MemberStateContact(BaseModel):
    """How one member state of one organisation is reached.

    Reminders go by webhook when one is configured, else by e-mail; escalations always go
    by e-mail to the escalation contact (the Secretariat or a permanent representative),
    since they are for people, not for the member state's systems."""

    model_config = ConfigDict(frozen=True)

    organisation: str
    code: str
    name: str
    language: str = "en"
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    escalation_email: str
    escalation_name: str | None = None


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
_EMAIL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})*\.{_TLD}$")
_CODE = re.compile(r"^[A-Z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


def check_email(address: str, what: str = "e-mail") -> str:
    """A plain ``local@domain.tld`` address (ASCII; an internationalised domain is given
    in its ``xn--`` form). Deliverability is the mail server's business, syntax is ours."""
    address = address.strip()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise DirectoryError(f"{what} {address!r} is not an e-mail address like name@example.org")
    return address


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host, and no credentials in it (they would be shown
    wherever the address is: logs, the outbox, ``eom member-state list``)."""
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        raise DirectoryError(f"webhook URL {url!r} is empty or contains spaces")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise DirectoryError(f"webhook URL {url!r} is not a URL: {error}") from None
    if parsed.scheme not in ("http", "https"):
        raise DirectoryError(f"webhook URL {url!r} must start with http:// or https://")
    if not parsed.host:
        raise DirectoryError(f"webhook URL {url!r} has no host")
    if parsed.userinfo:
        raise DirectoryError(
            f"webhook URL for {parsed.host} must not carry credentials; the signature "
            "authenticates eom"
        )
    return url


def _line(field: str, value: str) -> str:
    """A name as messages show it (in an e-mail's headers too): one line, no control
    character, at most ``LINE_MAX`` characters (``domain.values.check_text``)."""
    try:
        return check_text(value, multiline=False, max_length=LINE_MAX)
    except ValueError as error:
        raise DirectoryError(f"{field} {value!r} {error}") from None


def check_contact(contact: MemberStateContact) -> MemberStateContact:
    """The entry as it is stored (code upper-case, language lower-case, whitespace
    trimmed), or a ``DirectoryError`` naming the first problem."""
    organisation = _line("organisation", contact.organisation)
    code = contact.code.strip().upper()
    if not _CODE.fullmatch(code):
        raise DirectoryError(f"member state {contact.code!r} is not an ISO 3166-1 alpha-2 code")
    name = _line("name", contact.name)
    language = (contact.language or "en").strip().replace("_", "-")
    primary, _, rest = language.partition("-")
    language = primary.lower() + (f"-{rest}" if rest else "")
    if not _LANGUAGE.fullmatch(language):
        raise DirectoryError(f"language {contact.language!r} is not a language tag like en or ru")
    email = check_email(contact.email, "e-mail") if contact.email else None
    webhook_url = check_webhook_url(contact.webhook_url) if contact.webhook_url else None
    secret = contact.webhook_secret.get_secret_value() if contact.webhook_secret else None
    if secret and not secret.isprintable():
        raise DirectoryError(
            f"webhook secret for {code} must be printable characters only (it is stored "
            "and sent as text)"
        )
    if webhook_url and not secret:
        raise DirectoryError(
            f"webhook URL for {code} needs a webhook secret: its requests are signed with it"
        )
    if secret and not webhook_url:
        raise DirectoryError(f"a webhook secret for {code} is given without a webhook URL")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise DirectoryError(
            f"webhook secret for {code} is too short: at least {MIN_SECRET_LENGTH} characters"
        )
    if not email and not webhook_url:
        raise DirectoryError(f"member state {code} needs an e-mail address or a webhook URL")
    escalation_email = check_email(contact.escalation_email, "escalation e-mail")
    escalation_name = (
        _line("escalation name", contact.escalation_name)
        if contact.escalation_name and contact.escalation_name.strip()
        else None
    )
    return MemberStateContact(
        organisation=organisation,
        code=code,
        name=name,
        language=language,
        email=email,
        webhook_url=webhook_url,
        webhook_secret=SecretStr(secret) if secret else None,
        escalation_email=escalation_email,
        escalation_name=escalation_name,
    )


_CONTACT_COLUMNS = (
    "organisation, code, name, language, email, webhook_url, webhook_secret, "
    "escalation_email, escalation_name"
)


def _contact(row: asyncpg.Record) -> MemberStateContact:
    return MemberStateContact.model_validate(dict(row))


class MemberStateDirectory:
    """The ``member_states`` table: one entry per (organisation, ISO code)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(self, contact: MemberStateContact) -> MemberStateContact:
        """Add the entry, or replace the one with the same organisation and code (an
        entry is replaced whole: a channel left out is removed)."""
        contact = check_contact(contact)
        secret = contact.webhook_secret.get_secret_value() if contact.webhook_secret else None
        row = await self.db.fetchrow(
            f"INSERT INTO member_states ({_CONTACT_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (organisation, code) DO UPDATE SET "
            " name = EXCLUDED.name, language = EXCLUDED.language, email = EXCLUDED.email,"
            " webhook_url = EXCLUDED.webhook_url, webhook_secret = EXCLUDED.webhook_secret,"
            " escalation_email = EXCLUDED.escalation_email,"
            " escalation_name = EXCLUDED.escalation_name, updated_at = clock_timestamp() "
            f"RETURNING {_CONTACT_COLUMNS}",
            contact.organisation,
            contact.code,
            contact.name,
            contact.language,
            contact.email,
            contact.webhook_url,
            secret,
            contact.escalation_email,
            contact.escalation_name,
        )
        assert row is not None
        return _contact(row)

    async def get(self, organisation: str, code: str) -> MemberStateContact | None:
        row = await self.db.fetchrow(
            f"SELECT {_CONTACT_COLUMNS} FROM member_states WHERE organisation = $1 AND code = $2",
            organisation.strip(),
            code.strip().upper(),
        )
        return _contact(row) if row is not None else None

    async def remove(self, organisation: str, code: str) -> bool:
        """Whether there was such an entry."""
        removed = await self.db.fetchval(
            "DELETE FROM member_states WHERE organisation = $1 AND code = $2 RETURNING true",
            organisation.strip(),
            code.strip().upper(),
        )
        return bool(removed)

    async def list(self, organisation: str | None = None) -> list[MemberStateContact]:
        """Every entry (or one organisation's), by organisation and code."""
        rows = await self.db.fetch(
            f"SELECT {_CONTACT_COLUMNS} FROM member_states "
            "WHERE $1::text IS NULL OR organisation = $1 ORDER BY organisation, code",
            organisation.strip() if organisation else None,
        )
        return [_contact(r) for r in rows]


def _whole_seconds(value: timedelta, what: str) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"{what} {value} is negative")
    if value.microseconds:
        raise ValueError(f"{what} {value} is not a whole number of seconds")
    if value.total_seconds() > MAX_SECONDS:
        raise ValueError(f"{what} {value} is too long")
    return value


Offset = Annotated[timedelta, Field(description="how long before the deadline")]


class Ladder(BaseModel):
    """When reminders go for one kind of request: ``offsets`` before the deadline,
    largest first (given in any order, they are sorted), then the escalation
    ``escalate_after`` the deadline has passed unanswered."""

    model_config = ConfigDict(frozen=True)

    offsets: list[Offset]
    escalate_after: timedelta = timedelta(0)

    @field_validator("offsets")
    @classmethod
    def _decreasing(cls, offsets: list[timedelta]) -> list[timedelta]:
        for offset in offsets:
            _whole_seconds(offset, "reminder offset")
        ordered = sorted(offsets, reverse=True)
        for earlier, later in pairwise(ordered):
            if earlier == later:
                raise ValueError(f"reminder offset {earlier} is given twice")
        return ordered

    @field_validator("escalate_after")
    @classmethod
    def _escalation(cls, value: timedelta) -> timedelta:
        return _whole_seconds(value, "escalation delay")


DEFAULT_LADDER = Ladder(
    offsets=[timedelta(days=7), timedelta(days=2), timedelta(0)],
    escalate_after=timedelta(0),
)
"""For an organisation that has set none: a week before, two days before, at the deadline,
and the escalation as soon as it has passed."""


def _problem(error: ValidationError) -> str:
    first: dict[str, Any] = dict(error.errors()[0])
    message = str(first.get("msg", error))
    return message.removeprefix("Value error, ")


class LadderPolicies:
    """The ``reminder_ladders`` table: one ladder per (organisation, kind)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, organisation: str, kind: DeadlineKind | str) -> Ladder | None:
        """The organisation's ladder, or ``None`` (callers then use ``DEFAULT_LADDER``)."""
        row = await self.db.fetchrow(
            "SELECT offsets_seconds, escalate_after_seconds FROM reminder_ladders "
            "WHERE organisation = $1 AND kind = $2",
            organisation.strip(),
            _kind(kind).value,
        )
        if row is None:
            return None
        return Ladder(
            offsets=[timedelta(seconds=s) for s in row["offsets_seconds"]],
            escalate_after=timedelta(seconds=row["escalate_after_seconds"]),
        )

    async def set(
        self,
        organisation: str,
        kind: DeadlineKind | str,
        offsets: list[timedelta],
        escalate_after: timedelta = timedelta(0),
    ) -> Ladder:
        """Store (or replace) the ladder; return it as stored, offsets largest first."""
        if not organisation.strip():
            raise DirectoryError("a ladder needs its organisation")
        organisation = _line("organisation", organisation)
        if len(offsets) > MAX_OFFSETS:
            raise DirectoryError(f"a ladder has at most {MAX_OFFSETS} reminders")
        try:
            ladder = Ladder(offsets=offsets, escalate_after=escalate_after)
        except ValidationError as error:
            raise DirectoryError(_problem(error)) from None
        await self.db.execute(
            "INSERT INTO reminder_ladders (organisation, kind, offsets_seconds,"
            " escalate_after_seconds) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (organisation, kind) DO UPDATE SET"
            " offsets_seconds = EXCLUDED.offsets_seconds,"
            " escalate_after_seconds = EXCLUDED.escalate_after_seconds,"
            " updated_at = clock_timestamp()",
            organisation.strip(),
            _kind(kind).value,
            [int(o.total_seconds()) for o in ladder.offsets],
            int(ladder.escalate_after.total_seconds()),
        )
        return ladder


def _kind(kind: DeadlineKind | str) -> DeadlineKind:
    try:
        return DeadlineKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in DeadlineKind)
        raise DirectoryError(f"reminder kind {kind!r} is not one of {known}") from None
