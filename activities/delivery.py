"""Delivering reminders to member states: by e-mail (SMTP) or by a signed webhook.

One activity, ``deliver_message``, sends one message that the workflow has identified by
a deterministic ``message_id``. Temporal retries an activity whose outcome it does not
know, so the activity must be safe to run again:

- every attempt is recorded in the ``outbox``; an attempt that finds its message already
  ``sent`` sends nothing and returns the stored receipt;
- attempts at one message take turns (a transaction-level advisory lock on its id), so a
  retry started while a timed-out attempt is still running waits for it and then sees
  its outcome instead of sending alongside it;
- a send that succeeded but whose recording was lost (the process died in between) is
  sent again: delivery is at least once. For that case the e-mail carries
  ``Message-ID: <message_id@eom>`` and the webhook ``Idempotency-Key: message_id``, the
  same on every attempt, so the receiving side can drop the duplicate.

Failures are split by whether trying again can help. A recipient that does not exist or
refuses the message (SMTP 5xx, HTTP 4xx) fails the activity for good
(``DeliveryRejected``, non-retryable), so that the workflow can react; a server that is
down, slow or busy (connection errors, SMTP 4xx, HTTP 5xx, 408, 429, timeouts) raises a
retryable ``DeliveryUnavailable`` and Temporal tries again with backoff.

Requests and reminders carry the recipient's answer link (``accounts.answer_links``): in
the e-mail's body, on the answer line, and in the webhook's payload as ``answer_url``.
The link is made when the message is composed, derived from the message id under the
setting ``EOM_ANSWER_LINK_KEY``, so that every attempt at one message carries the same
link. Escalations carry none: they go to the escalation contact, not to the focal point.
The link is a secret of the recipient's: the outbox keeps the body with the link
withheld, and neither the logs nor a failure's text (which the outbox, Temporal and the
mission's record keep) ever hold it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

import aiosmtplib
import asyncpg
import httpx
import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.directory import MemberStateContact, MemberStateDirectory
from activities.templates import render, template_language
from domain.values import DeadlineKind, DeliveryPurpose, clean_text
from eventstore.store import Connection

log = structlog.get_logger("eom.delivery")

SIGNATURE_PREFIX = "sha256="
MAX_RETRY_AFTER = timedelta(hours=1)
"""A receiver's ``Retry-After`` is honoured up to this; beyond it Temporal's own backoff."""
LINK_WITHHELD = "[answer link withheld: sent only to the recipient]"
"""What the outbox keeps in a body where the message had its answer link."""
ANSWER_LINK_KEY_MIN_LENGTH = 32
"""The least length of ``EOM_ANSWER_LINK_KEY``, in characters."""


class Channel(StrEnum):
    email = "email"
    webhook = "webhook"


class DeliverySettings(BaseSettings):
    """Read from the environment. The defaults suit the embedded stack, whose SMTP sink
    listens on 127.0.0.1:8025 and keeps what it receives instead of passing it on."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    smtp_host: str = Field(default="127.0.0.1", validation_alias="EOM_SMTP_HOST")
    smtp_port: int = Field(default=8025, ge=1, le=65535, validation_alias="EOM_SMTP_PORT")
    smtp_starttls: bool = Field(default=False, validation_alias="EOM_SMTP_STARTTLS")
    smtp_username: str | None = Field(default=None, validation_alias="EOM_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="EOM_SMTP_PASSWORD")
    smtp_timeout_seconds: float = Field(
        default=30, gt=0, validation_alias="EOM_SMTP_TIMEOUT_SECONDS"
    )
    mail_from: str = Field(default="eom <eom@localhost>", validation_alias="EOM_MAIL_FROM")
    webhook_timeout_seconds: float = Field(
        default=10, gt=0, validation_alias="EOM_WEBHOOK_TIMEOUT_SECONDS"
    )
    """The whole webhook request, connection included; a receiver slower than this is
    treated as unavailable and tried again later."""
    console_url: str = Field(default="http://127.0.0.1:8000", validation_alias="EOM_CONSOLE_URL")
    """Where recipients reach the console: answer links are ``<console_url>/answer/...``.
    ``eom up`` sets it to the URL its API listens on unless it is set."""
    answer_link_key: SecretStr | None = Field(default=None, validation_alias="EOM_ANSWER_LINK_KEY")
    """The server key from which each message's answer link is derived (at least 32
    characters, e.g. ``secrets.token_urlsafe(32)``; one per deployment, never in the
    database). Unset, the worker draws one at start: a retry by another worker process
    then carries another link (both work). ``eom up`` keeps one in its data directory."""
    answer_link_grace_days: float = Field(
        default=30,
        gt=0,
        le=3660,
        validation_alias="EOM_ANSWER_LINK_GRACE_DAYS",
    )
    """How long after the deadline (or after the message, if it went later) its answer
    link still works, in days: 30 by default (``accounts.answer_links.DEFAULT_GRACE``),
    since late answers are still wanted."""

    @field_validator("console_url")
    @classmethod
    def _console_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"EOM_CONSOLE_URL {value!r} must be an http:// or https:// URL with a host"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                f"EOM_CONSOLE_URL {value!r} must not carry credentials, a query or a fragment"
            )
        return value.rstrip("/")

    @field_validator("answer_link_key")
    @classmethod
    def _answer_link_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < ANSWER_LINK_KEY_MIN_LENGTH:
            raise ValueError(
                f"EOM_ANSWER_LINK_KEY must have at least {ANSWER_LINK_KEY_MIN_LENGTH} characters"
            )
        return value

    @property
    def answer_link_grace(self) -> timedelta:
        return timedelta(days=self.answer_link_grace_days)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_MESSAGE_ID = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_ISO_CODE = re.compile(r"[A-Z]{2}")


class DeliveryRequest(BaseModel):
    """One message to one member state, as the workflow asks for it.

    ``message_id`` must be the same every time the workflow asks for the same message
    (e.g. ``<mission>.<state>.<kind>.<purpose>.<step>``): it is the outbox key, the
    e-mail's ``Message-ID`` and the webhook's ``Idempotency-Key``. It is restricted to
    the characters an RFC 5322 message id allows unquoted (letters, digits, dots between
    parts, and ``!#$%&'*+/=?^_`{|}~-``; no colon, no ``@``)."""

    model_config = ConfigDict(frozen=True)

    message_id: str = Field(min_length=1, max_length=200)
    mission_id: str = Field(min_length=1)
    organisation: str = Field(min_length=1)
    member_state: str
    kind: DeadlineKind
    purpose: DeliveryPurpose
    step: int = Field(default=0, ge=0)
    """Reminders count from 1; the request and the escalation do not show it."""
    cycle: int = Field(default=0, ge=0)
    """The follow-up cycle of an evidence request (from 1); 0 for the other kinds. The
    answer link is bound to it: an evidence request without it goes without a link."""
    deadline: AwareDatetime
    mission_name: str = Field(min_length=1)
    answer_hint: str = Field(min_length=1)
    """How to answer, in a sentence: a URL, an ``eom`` command, an address."""

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str) -> str:
        if not _MESSAGE_ID.fullmatch(value):
            raise ValueError(
                f"message id {value!r} may hold only letters, digits, dots between parts and "
                "!#$%&'*+/=?^_`{|}~- (it becomes the e-mail's Message-ID)"
            )
        return value

    @field_validator("member_state")
    @classmethod
    def _member_state(cls, value: str) -> str:
        value = value.strip().upper()
        if not _ISO_CODE.fullmatch(value):
            raise ValueError(f"member state {value!r} is not an ISO 3166-1 alpha-2 code")
        return value


class DeliveryReceipt(BaseModel):
    """Where the message went and when; ``already_sent`` when this attempt found it sent
    by an earlier one and sent nothing."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    channel: Channel
    address: str
    sent_at: datetime
    already_sent: bool = False


class OutboxEntry(BaseModel):
    """One message's latest state: sent, or failed (with the last error) so far."""

    message_id: str
    mission_id: str
    organisation: str
    member_state: str
    kind: DeadlineKind
    purpose: DeliveryPurpose
    channel: Channel | None
    address: str | None
    subject: str | None
    body: str | None
    status: Literal["sent", "failed"]
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 over ``<timestamp>.<body>``. The timestamp is signed
    with the body so that a captured request cannot be replayed later."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: float = 300,
    now: datetime | None = None,
) -> bool:
    """Whether a webhook request is eom's: ``header`` (``X-Eom-Signature``) signs exactly
    ``body`` (the raw bytes received) at ``timestamp`` (``X-Eom-Timestamp``), and that
    timestamp lies within ``tolerance_seconds`` of ``now``. For receivers, and tests."""
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        return False
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - stamp) > tolerance_seconds:
        return False
    # Compared in constant time: a timing difference must not reveal the signature.
    return hmac.compare_digest(sign(secret, stamp, body).encode(), header.strip().encode())


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type="DeliveryRejected", non_retryable=True)


def _unavailable(message: str, retry_after: timedelta | None = None) -> ApplicationError:
    return ApplicationError(
        message, type="DeliveryUnavailable", non_retryable=False, next_retry_delay=retry_after
    )


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value.isdigit():
        return None
    return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class AnswerLinkText:
    """A message's answer link: its secret, its URL and when it stops working."""

    secret: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class _Message:
    channel: Channel
    address: str
    recipient_name: str | None
    secret: str | None
    language: str
    subject: str
    body: str
    link: AnswerLinkText | None = None

    @property
    def stored_body(self) -> str:
        """The body as the outbox keeps it: the answer link withheld."""
        return self.withhold(self.body)

    def withhold(self, text: str) -> str:
        if self.link is None:
            return text
        return text.replace(self.link.url, LINK_WITHHELD).replace(self.link.secret, "[withheld]")


def _compose(
    request: DeliveryRequest,
    contact: MemberStateContact,
    *,
    now: datetime,
    link: AnswerLinkText | None = None,
) -> _Message:
    """Escalations go to people (the escalation contact, by e-mail); everything else to
    the member state, by its webhook when it has one. ``link``, the recipient's answer
    link, goes into a request or reminder (never into an escalation)."""
    if request.purpose is DeliveryPurpose.escalation:
        channel, address, name = Channel.email, contact.escalation_email, contact.escalation_name
    elif contact.webhook_url:
        channel, address, name = Channel.webhook, contact.webhook_url, contact.name
    else:
        assert contact.email, "the directory guarantees a channel"
        channel, address, name = Channel.email, contact.email, contact.name
    subject, body = render(
        request.kind,
        request.purpose,
        contact.language,
        mission_name=request.mission_name,
        organisation=request.organisation,
        member_state_name=contact.name,
        deadline=request.deadline,
        answer_hint=request.answer_hint,
        step=request.step,
        now=now,
        answer_url=link.url if link else None,
        answer_expires_at=link.expires_at if link else None,
    )
    secret = contact.webhook_secret.get_secret_value() if contact.webhook_secret else None
    return _Message(
        channel=channel,
        address=address,
        recipient_name=name,
        secret=secret if channel is Channel.webhook else None,
        language=template_language(request.kind, request.purpose, contact.language),
        subject=subject,
        body=body,
        link=link,
    )


def _without_link(error: BaseException, message: _Message) -> BaseException:
    """``error``, or (when its text holds the message's answer link, as a receiver that
    echoes what it got would make it) the same failure with the link withheld."""
    link = message.link
    text = error.message if isinstance(error, ApplicationError) else str(error)
    if link is None or link.secret not in text:
        return error
    if isinstance(error, ApplicationError):
        return ApplicationError(
            message.withhold(text),
            type=error.type,
            non_retryable=error.non_retryable,
            next_retry_delay=error.next_retry_delay,
        )
    return ApplicationError(
        f"{type(error).__name__}: {message.withhold(text)}", type=type(error).__name__
    )


def email_message(
    *,
    message_id: str,
    mail_from: str,
    to_address: str,
    to_name: str | None,
    subject: str,
    body: str,
    language: str,
) -> EmailMessage:
    """The e-mail to send, every header checked: ``DeliveryRejected`` (non-retryable) if
    it cannot be composed (a header that would not be one line, say), since composing
    it again would fail again. ``message_id`` becomes ``Message-ID: <message_id@eom>``."""
    mail = EmailMessage()
    try:
        mail["From"] = mail_from
        mail["To"] = Address(display_name=to_name or "", addr_spec=to_address)
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = f"<{message_id}@eom>"
        # RFC 3834: no out-of-office replies to a machine.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(body)
        # After set_content, which clears every Content-* header.
        mail["Content-Language"] = language
        mail.as_bytes()  # a header the policy cannot fold fails here, not at the relay
    except (ValueError, TypeError, UnicodeError) as error:
        raise _rejected(f"the e-mail to {to_address} cannot be composed: {error}") from None
    return mail


async def send_email(settings: DeliverySettings, mail: EmailMessage, *, address: str) -> None:
    """Send ``mail`` to ``address`` through the configured SMTP relay. A refusal for good
    (5xx) raises ``DeliveryRejected``, one worth retrying (4xx, a server down or slow,
    eom's login refused) ``DeliveryUnavailable``: both ``ApplicationError``s, whose
    messages name the server and the address, never the mail's content."""
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        await aiosmtplib.send(
            mail,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        refusals = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
        if all(r.code >= 500 for r in error.recipients):
            raise _rejected(f"the mail server refused {address}: {refusals}") from None
        raise _unavailable(f"the mail server deferred {address}: {refusals}") from None
    except aiosmtplib.SMTPAuthenticationError as error:
        # Our credentials, not the recipient: fixable by an operator, so retried.
        raise _unavailable(
            f"the mail server {server} refused eom's login ({error.code} {error.message}); "
            "check EOM_SMTP_USERNAME and EOM_SMTP_PASSWORD"
        ) from None
    except aiosmtplib.SMTPResponseException as error:
        text = f"the mail server {server} answered {error.code} {error.message}"
        raise (_rejected(text) if error.code >= 500 else _unavailable(text)) from None
    except (aiosmtplib.SMTPException, OSError) as error:
        raise _unavailable(
            f"the mail server {server} is unavailable: {type(error).__name__}: {error}"
        ) from None


_OUTBOX_COLUMNS = (
    "message_id, mission_id, organisation, member_state, kind, purpose, channel, address, "
    "subject, body, status, attempts, error, created_at, updated_at, sent_at"
)


async def _record(
    conn: Connection,
    request: DeliveryRequest,
    message: _Message | None,
    error: BaseException | None,
) -> asyncpg.Record:
    """Upsert the message's outbox row for this attempt: ``sent`` without an error,
    ``failed`` with one; either way one attempt more."""
    row = await conn.fetchrow(
        "INSERT INTO outbox (message_id, mission_id, organisation, member_state, kind, purpose,"
        " channel, address, subject, body, status, attempts, error, sent_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text, 1, $12,"
        " CASE WHEN $11::text = 'sent' THEN clock_timestamp() END) "
        "ON CONFLICT (message_id) DO UPDATE SET"
        " mission_id = EXCLUDED.mission_id, organisation = EXCLUDED.organisation,"
        " member_state = EXCLUDED.member_state, kind = EXCLUDED.kind,"
        " purpose = EXCLUDED.purpose, channel = EXCLUDED.channel,"
        " address = EXCLUDED.address, subject = EXCLUDED.subject, body = EXCLUDED.body,"
        " status = EXCLUDED.status, attempts = outbox.attempts + 1, error = EXCLUDED.error,"
        " sent_at = EXCLUDED.sent_at, updated_at = clock_timestamp() "
        f"RETURNING {_OUTBOX_COLUMNS}",
        request.message_id,
        request.mission_id,
        request.organisation,
        request.member_state,
        request.kind.value,
        request.purpose.value,
        message.channel.value if message else None,
        message.address if message else None,
        message.subject if message else None,
        message.stored_body if message else None,
        "failed" if error is not None else "sent",
        _describe(error) if error is not None else None,
    )
    assert row is not None
    return row


def _describe(error: BaseException) -> str:
    """The error as the outbox and the mission's record keep it: one storable text, whatever
    a remote server answered."""
    if isinstance(error, ApplicationError) and error.type:
        text = f"{error.type}: {error.message}"
    else:
        text = f"{type(error).__name__}: {error}"
    return clean_text(text, multiline=True, max_length=2000)


class DeliveryActivities:
    """The delivery activity, bound to the database pool and the delivery settings (both
    owned by the composition root)."""

    def __init__(self, pool: asyncpg.Pool, settings: DeliverySettings) -> None:
        self.pool = pool
        self.settings = settings
        if settings.answer_link_key is not None:
            self._link_key = settings.answer_link_key.get_secret_value().encode()
        else:
            self._link_key = secrets.token_bytes(32)
            log.warning(
                "EOM_ANSWER_LINK_KEY is not set: answer links are derived from a key of this "
                "process, so a message retried by another process carries another link"
            )

    async def _answer_link(
        self, request: DeliveryRequest, *, sent_at: datetime
    ) -> AnswerLinkText | None:
        """The answer link of a request or reminder (the same for every attempt at it),
        issued if it was not; None for an escalation, and for an evidence request that
        does not say its cycle."""
        # Imported here: the accounts package's own start-up imports this module (its
        # sign-in e-mail goes out through ``send_email``).
        from accounts.answer_links import AnswerLinks, answer_url, link_expiry

        if request.purpose is DeliveryPurpose.escalation:
            return None
        if request.kind is DeadlineKind.evidence and request.cycle < 1:
            log.warning("evidence request without its cycle: sent without an answer link")
            return None
        expires_at = link_expiry(request.deadline, sent_at, self.settings.answer_link_grace)
        # Committed before the message goes (on the pool, not in the attempt's
        # transaction): a focal point may open the link the moment it arrives. Issuing it
        # again on a retry changes nothing (the secret is derived from the message id).
        secret = await AnswerLinks(self.pool, key=self._link_key).issue(
            request.mission_id,
            request.member_state,
            request.kind,
            request.cycle,
            expires_at - sent_at,
            message_id=request.message_id,
            now=sent_at,
        )
        return AnswerLinkText(
            secret=secret, url=answer_url(self.settings.console_url, secret), expires_at=expires_at
        )

    @activity.defn(name="deliver_message")
    async def deliver(self, request: DeliveryRequest) -> DeliveryReceipt:
        """Send one message, once; see the module's docstring for what a retry does."""
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            mission_id=request.mission_id,
            member_state=request.member_state,
            message_id=request.message_id,
            workflow_id=info.workflow_id,
            activity="deliver_message",
            attempt=info.attempt,
        ):
            return await self._deliver(request, scheduled=info.scheduled_time)

    async def _deliver(self, request: DeliveryRequest, *, scheduled: datetime) -> DeliveryReceipt:
        failure: BaseException
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"eom.outbox:{request.message_id}",
            )
            sent = await conn.fetchrow(
                "SELECT channel, address, sent_at FROM outbox "
                "WHERE message_id = $1 AND status = 'sent'",
                request.message_id,
            )
            if sent is not None:
                log.info("message already sent", channel=sent["channel"], sent_at=sent["sent_at"])
                return DeliveryReceipt(
                    message_id=request.message_id,
                    channel=Channel(sent["channel"]),
                    address=sent["address"],
                    sent_at=sent["sent_at"],
                    already_sent=True,
                )
            contact = await MemberStateDirectory(conn).get(
                request.organisation, request.member_state
            )
            if contact is None:
                failure = ApplicationError(
                    f"member state {request.member_state} of {request.organisation!r} is not "
                    "in the directory (add it with `eom member-state add`)",
                    type="RecipientUnknown",
                    non_retryable=True,
                )
                await _record(conn, request, None, failure)
                log.error("recipient unknown", organisation=request.organisation)
            else:
                # The time the message was scheduled, not this attempt's: every retry of
                # one message says the same, and carries the same answer link.
                link = await self._answer_link(request, sent_at=scheduled)
                message = _compose(request, contact, now=scheduled, link=link)
                try:
                    if message.channel is Channel.webhook:
                        await self._post(request, message)
                    else:
                        await self._mail(request, message)
                except Exception as error:
                    failure = _without_link(error, message)
                    row = await _record(conn, request, message, failure)
                    retryable = not (
                        isinstance(failure, ApplicationError) and failure.non_retryable
                    )
                    (log.warning if retryable else log.error)(
                        "delivery failed",
                        channel=message.channel.value,
                        address=message.address,
                        attempts=row["attempts"],
                        retryable=retryable,
                        error=_describe(failure),
                    )
                else:
                    row = await _record(conn, request, message, None)
                    log.info(
                        "message sent",
                        channel=message.channel.value,
                        address=message.address,
                        attempts=row["attempts"],
                        language=message.language,
                        answer_link=message.link is not None,
                    )
                    return DeliveryReceipt(
                        message_id=request.message_id,
                        channel=message.channel,
                        address=message.address,
                        sent_at=row["sent_at"],
                    )
        # Raised after the transaction commits, so that the failed attempt stays recorded.
        raise failure

    async def _mail(self, request: DeliveryRequest, message: _Message) -> None:
        settings = self.settings
        mail = email_message(
            message_id=request.message_id,
            mail_from=settings.mail_from,
            to_address=message.address,
            to_name=message.recipient_name,
            subject=message.subject,
            body=message.body,
            language=message.language,
        )
        await send_email(settings, mail, address=message.address)

    async def _post(self, request: DeliveryRequest, message: _Message) -> None:
        assert message.secret is not None
        payload = {
            "message_id": request.message_id,
            "mission_id": request.mission_id,
            "kind": request.kind.value,
            "purpose": request.purpose.value,
            "step": request.step,
            "deadline": request.deadline.astimezone(UTC).isoformat(),
            "member_state": request.member_state,
            "subject": message.subject,
            "body": message.body,
            "answer_url": message.link.url if message.link else None,
            "answer_expires_at": (
                message.link.expires_at.astimezone(UTC).isoformat() if message.link else None
            ),
        }
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": request.message_id,
            "X-Eom-Timestamp": timestamp,
            "X-Eom-Signature": sign(message.secret, timestamp, raw),
        }
        limit = self.settings.webhook_timeout_seconds
        try:
            # httpx's timeout is per phase (connect, each read); this bounds the whole.
            async with (
                asyncio.timeout(limit),
                httpx.AsyncClient(timeout=limit, follow_redirects=False) as http,
            ):
                response = await http.post(message.address, content=raw, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise _unavailable(
                f"webhook {message.address} did not answer within {limit:g} s"
            ) from None
        except httpx.HTTPError as error:
            raise _unavailable(
                f"webhook {message.address} is unreachable: {type(error).__name__}: {error}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"webhook {message.address} answered {status}"
        text = " ".join(response.text.split())[:200]
        if text:
            detail += f": {text}"
        if status >= 500 or status in (408, 429):
            raise _unavailable(detail, _retry_after(response))
        # 4xx, and redirects (a moved webhook is a directory entry to correct).
        raise _rejected(detail)


async def outbox(
    pool: asyncpg.Pool,
    *,
    mission_id: str | None = None,
    member_state: str | None = None,
    kind: DeadlineKind | None = None,
    purpose: DeliveryPurpose | None = None,
    status: Literal["sent", "failed"] | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[OutboxEntry]:
    """The latest ``limit`` messages that match every filter given, most recent attempt
    first: of one mission, to one member state (ISO code), of one deadline kind, of one
    purpose, with one status, whose latest attempt was at or after ``since`` (aware)."""
    rows = await pool.fetch(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox "
        "WHERE ($1::text IS NULL OR mission_id = $1) AND ($2::text IS NULL OR member_state = $2)"
        " AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR purpose = $4)"
        " AND ($5::text IS NULL OR status = $5) AND ($6::timestamptz IS NULL OR updated_at >= $6)"
        " ORDER BY updated_at DESC, message_id LIMIT $7",
        mission_id,
        member_state,
        kind.value if kind else None,
        purpose.value if purpose else None,
        status,
        since,
        limit,
    )
    return [OutboxEntry.model_validate(dict(r)) for r in rows]
