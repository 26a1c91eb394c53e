"""Delivering reminders to member states, against real receivers: an aiosmtpd SMTP server
and a uvicorn HTTP server on loopback, and the session's PostgreSQL. The activity runs in
Temporal's ``ActivityEnvironment`` (its ``activity.info()``), as a worker would run it; a
retry is simply the activity called again with the same request."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from receivers import SECRET, Receiver, running_receiver
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.delivery import (
    Channel,
    DeliveryActivities,
    DeliveryReceipt,
    DeliveryRequest,
    DeliverySettings,
    OutboxEntry,
    outbox,
    sign,
    verify_signature,
)
from activities.directory import (
    DEFAULT_LADDER,
    DirectoryError,
    LadderPolicies,
    MemberStateContact,
    MemberStateDirectory,
)
from activities.templates import format_deadline, render
from cli.smtp_sink import SmtpSink
from cli.stack import free_port
from domain.values import DeadlineKind, DeliveryPurpose

DEADLINE = datetime(2021, 1, 3, 18, 0, tzinfo=UTC)
DEADLINE_TEXT = "2021-01-03 18:00 UTC"
MISSION_NAME = "Turkic Council observation mission, Kazakhstan 2021"
ANSWER_HINT = "Reply to this message with your observers' names."


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail") as sink:
        yield sink


class RefusingHandler:
    """An SMTP server that knows no such mailbox."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return f"550 5.1.1 <{address}>: mailbox unavailable"


@pytest.fixture
def refusing_smtp() -> Iterator[int]:
    controller = Controller(RefusingHandler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
def organisation() -> str:
    return f"Test Organisation {uuid.uuid4().hex[:8]}"


def contact(organisation: str, code: str = "AZ", **fields: object) -> MemberStateContact:
    values: dict[str, object] = {
        "organisation": organisation,
        "code": code,
        "name": "Azerbaijan",
        "language": "en",
        "email": f"focal-point.{code.lower()}@mfa.example.org",
        "escalation_email": "secretariat@organisation.example.org",
        "escalation_name": "The Secretariat",
    }
    values.update(fields)
    return MemberStateContact.model_validate(values)


def request(organisation: str, code: str = "AZ", **fields: object) -> DeliveryRequest:
    values: dict[str, object] = {
        "message_id": f"m-{uuid.uuid4().hex[:8]}.nomination.0.{code}.1",
        "mission_id": "tc-kz-2021",
        "organisation": organisation,
        "member_state": code,
        "kind": "nomination",
        "purpose": "reminder",
        "step": 1,
        "deadline": DEADLINE,
        "mission_name": MISSION_NAME,
        "answer_hint": ANSWER_HINT,
    }
    values.update(fields)
    return DeliveryRequest.model_validate(values)


def delivery_settings(smtp_port: int = 1, **fields: object) -> DeliverySettings:
    return DeliverySettings.model_validate(
        {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, **fields}
    )


async def deliver(
    activities: DeliveryActivities,
    message: DeliveryRequest,
    *,
    attempt: int = 1,
    scheduled: datetime = DEADLINE - timedelta(days=2),
) -> DeliveryReceipt:
    """The activity as a worker runs it: attempt ``attempt`` of a message scheduled at
    ``scheduled`` (two days before the deadline, by default)."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        activity_type="deliver_message",
        attempt=attempt,
        scheduled_time=scheduled,
        current_attempt_scheduled_time=datetime.now(UTC),
    )
    return await environment.run(activities.deliver, message)


async def entry(pool: asyncpg.Pool, message: DeliveryRequest) -> OutboxEntry:
    entries = [e for e in await outbox(pool, mission_id=message.mission_id, limit=10_000)]
    (found,) = [e for e in entries if e.message_id == message.message_id]
    return found


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content


# --- e-mail -----------------------------------------------------------------------------


async def test_email_in_the_recipients_language_with_a_deterministic_message_id(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """E-mail goes in the member state's language, with Message-ID <message_id@eom>."""
    await MemberStateDirectory(pool).upsert(
        contact(organisation, "TR", name="Türkiye", language="tr", email="odak@mfa.example.org")
    )
    message = request(organisation, "TR", step=2)
    activities = DeliveryActivities(pool, delivery_settings(sink.port))

    receipt = await deliver(activities, message)

    assert receipt == DeliveryReceipt(
        message_id=message.message_id,
        channel=Channel.email,
        address="odak@mfa.example.org",
        sent_at=receipt.sent_at,
        already_sent=False,
    )
    (mail,) = sink.messages()
    assert mail["Message-ID"] == f"<{message.message_id}@eom>"
    assert mail["To"].addresses[0].addr_spec == "odak@mfa.example.org"
    assert mail["Content-Language"] == "tr"
    assert mail["Subject"].startswith("2. hatırlatma:")
    text = plain(mail)
    assert "Sayın yetkililer" in text
    assert MISSION_NAME in text and DEADLINE_TEXT in text and ANSWER_HINT in text
    assert "Kalan süre: 2 gün." in text
    assert (await entry(pool, message)).status == "sent"


async def test_a_sent_email_is_not_sent_again(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """A retried e-mail that was sent returns the first receipt and sends nothing."""
    await MemberStateDirectory(pool).upsert(contact(organisation))
    message = request(organisation)
    activities = DeliveryActivities(pool, delivery_settings(sink.port))

    first = await deliver(activities, message)
    again = await deliver(activities, message, attempt=2)

    assert again.already_sent and not first.already_sent
    assert (again.channel, again.address, again.sent_at) == (
        first.channel,
        first.address,
        first.sent_at,
    )
    assert sink.count == 1


async def test_webhook_is_preferred_and_escalation_goes_to_the_escalation_contact(
    pool: asyncpg.Pool, sink: SmtpSink, receiver: Receiver, organisation: str
) -> None:
    """With a webhook, reminders go there; an escalation goes by e-mail to the contact."""
    url, hook = receiver.hook()
    await MemberStateDirectory(pool).upsert(
        contact(organisation, webhook_url=url, webhook_secret=SECRET)
    )
    activities = DeliveryActivities(pool, delivery_settings(sink.port))

    reminded = await deliver(activities, request(organisation))
    escalated = await deliver(
        activities,
        request(organisation, purpose="escalation", step=3),
        scheduled=DEADLINE + timedelta(minutes=1),
    )

    assert (reminded.channel, reminded.address) == (Channel.webhook, url)
    assert len(hook.accepted) == 1
    assert (escalated.channel, escalated.address) == (
        Channel.email,
        "secretariat@organisation.example.org",
    )
    (mail,) = sink.messages()
    assert mail["To"].addresses[0].addr_spec == "secretariat@organisation.example.org"
    assert mail["To"].addresses[0].display_name == "The Secretariat"
    assert "Azerbaijan has not nominated observers" in mail["Subject"]
    assert MISSION_NAME in plain(mail) and ANSWER_HINT in plain(mail)


async def test_smtp_recipient_refused_is_rejected_for_good(
    pool: asyncpg.Pool, refusing_smtp: int, organisation: str
) -> None:
    """SMTP 550 for the recipient: a non-retryable DeliveryRejected, recorded as failed."""
    await MemberStateDirectory(pool).upsert(contact(organisation))
    message = request(organisation)
    activities = DeliveryActivities(pool, delivery_settings(refusing_smtp))

    with pytest.raises(ApplicationError) as raised:
        await deliver(activities, message)

    assert raised.value.type == "DeliveryRejected"
    assert raised.value.non_retryable
    assert "550" in raised.value.message
    recorded = await entry(pool, message)
    assert (recorded.status, recorded.attempts) == ("failed", 1)
    assert recorded.error is not None and "DeliveryRejected" in recorded.error


async def test_an_unreachable_mail_server_is_retried(pool: asyncpg.Pool, organisation: str) -> None:
    """No SMTP server listening: a retryable error, and the attempt is in the outbox."""
    await MemberStateDirectory(pool).upsert(contact(organisation))
    message = request(organisation)
    activities = DeliveryActivities(pool, delivery_settings(free_port()))

    with pytest.raises(ApplicationError) as raised:
        await deliver(activities, message)

    assert raised.value.type == "DeliveryUnavailable"
    assert not raised.value.non_retryable
    assert (await entry(pool, message)).status == "failed"


# --- webhooks ---------------------------------------------------------------------------


async def test_webhook_is_signed_and_a_tampered_body_fails_verification(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """The receiver verifies the HMAC signature; any change to the body breaks it."""
    url, hook = receiver.hook()
    await MemberStateDirectory(pool).upsert(
        contact(organisation, language="ru", webhook_url=url, webhook_secret=SECRET)
    )
    message = request(organisation)

    await deliver(DeliveryActivities(pool, delivery_settings()), message)

    (received,) = hook.accepted
    assert received.verified
    assert received.headers["idempotency-key"] == message.message_id
    payload = json.loads(received.body)
    assert payload["message_id"] == message.message_id
    assert payload["member_state"] == "AZ"
    assert (payload["kind"], payload["purpose"], payload["step"]) == ("nomination", "reminder", 1)
    assert datetime.fromisoformat(payload["deadline"]) == DEADLINE
    assert payload["subject"].startswith("Напоминание № 1")
    assert MISSION_NAME in payload["body"] and ANSWER_HINT in payload["body"]

    timestamp = received.headers["x-eom-timestamp"]
    signature = received.headers["x-eom-signature"]
    tampered = received.body.replace(b'"step":1', b'"step":2')
    assert tampered != received.body
    assert not verify_signature(SECRET, timestamp, tampered, signature)
    assert not verify_signature("another-secret-0123456789", timestamp, received.body, signature)
    stale = datetime.now(UTC) + timedelta(minutes=10)
    assert not verify_signature(SECRET, timestamp, received.body, signature, now=stale)
    assert verify_signature(
        SECRET, timestamp, received.body, sign(SECRET, timestamp, received.body)
    )


async def test_retries_after_503_deliver_exactly_once(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """Two 503s then 200 over three attempts: one message received, one 'sent' entry with
    three attempts; a fourth attempt sends nothing."""
    url, hook = receiver.hook(script=[503, 503])
    await MemberStateDirectory(pool).upsert(
        contact(organisation, email=None, webhook_url=url, webhook_secret=SECRET)
    )
    message = request(organisation)
    activities = DeliveryActivities(pool, delivery_settings())

    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as raised:
            await deliver(activities, message, attempt=attempt)
        assert not raised.value.non_retryable
        assert "503" in raised.value.message
        assert (await entry(pool, message)).status == "failed"
    receipt = await deliver(activities, message, attempt=3)

    assert not receipt.already_sent
    assert len(hook.accepted) == 1
    recorded = await entry(pool, message)
    assert (recorded.status, recorded.attempts, recorded.error) == ("sent", 3, None)
    assert recorded.sent_at == receipt.sent_at

    fourth = await deliver(activities, message, attempt=4)

    assert fourth.already_sent
    assert len(hook.accepted) == 1 and len(hook.requests) == 3
    assert (await entry(pool, message)).attempts == 3


async def test_concurrent_attempts_take_turns_and_send_once(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """A retry that starts while an earlier attempt is still sending waits for it, then
    finds the message sent: one request reaches the receiver."""
    url, hook = receiver.hook(hang=True)
    await MemberStateDirectory(pool).upsert(
        contact(organisation, webhook_url=url, webhook_secret=SECRET)
    )
    message = request(organisation)
    activities = DeliveryActivities(pool, delivery_settings(webhook_timeout_seconds=30))

    first = asyncio.create_task(deliver(activities, message, attempt=1))
    await asyncio.wait_for(hook.arrived.wait(), 10)
    second = asyncio.create_task(deliver(activities, message, attempt=2))
    async with asyncio.timeout(10):
        # PostgreSQL tells of a waiting lock only through pg_locks: the second attempt
        # waits on the message's advisory lock (a bigint key, split in two oids).
        while not await pool.fetchval(  # noqa: ASYNC110
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint)"
            "     = hashtextextended('eom.outbox:' || $1, 0)",
            message.message_id,
        ):
            await asyncio.sleep(0.01)
    receiver.release.set()
    receipts = await asyncio.gather(first, second)

    assert [r.already_sent for r in receipts] == [False, True]
    assert len(hook.requests) == 1 and len(hook.accepted) == 1
    assert (await entry(pool, message)).attempts == 1


async def test_http_400_is_rejected_for_good(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """HTTP 400 from the webhook: a non-retryable DeliveryRejected."""
    url, _ = receiver.hook(script=[400])
    await MemberStateDirectory(pool).upsert(
        contact(organisation, webhook_url=url, webhook_secret=SECRET)
    )
    message = request(organisation)

    with pytest.raises(ApplicationError) as raised:
        await deliver(DeliveryActivities(pool, delivery_settings()), message)

    assert raised.value.type == "DeliveryRejected"
    assert raised.value.non_retryable
    assert "400" in raised.value.message
    recorded = await entry(pool, message)
    assert (recorded.status, recorded.channel, recorded.address) == ("failed", Channel.webhook, url)


async def test_a_hanging_webhook_times_out_and_is_retried(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """A receiver that never answers fails the attempt (retryable) after the timeout."""
    url, hook = receiver.hook(hang=True)
    await MemberStateDirectory(pool).upsert(
        contact(organisation, webhook_url=url, webhook_secret=SECRET)
    )
    activities = DeliveryActivities(pool, delivery_settings(webhook_timeout_seconds=1))

    started = time.monotonic()
    with pytest.raises(ApplicationError) as raised:
        await deliver(activities, request(organisation))
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 3, elapsed
    assert raised.value.type == "DeliveryUnavailable"
    assert not raised.value.non_retryable
    assert "did not answer within 1 s" in raised.value.message
    assert len(hook.requests) == 1 and not hook.accepted


async def test_unknown_member_state_is_recipient_unknown(
    pool: asyncpg.Pool, organisation: str
) -> None:
    """A member state missing from the directory: non-retryable RecipientUnknown."""
    message = request(organisation, "KG")

    with pytest.raises(ApplicationError) as raised:
        await deliver(DeliveryActivities(pool, delivery_settings()), message)

    assert raised.value.type == "RecipientUnknown"
    assert raised.value.non_retryable
    assert "KG" in raised.value.message and organisation in raised.value.message
    recorded = await entry(pool, message)
    assert (recorded.status, recorded.channel, recorded.address) == ("failed", None, None)


def test_message_ids_must_fit_a_message_id_header() -> None:
    """A message id that would break the Message-ID header (a colon, a space) is refused."""
    for bad in ("mission:AZ:1", "with space", "a@b", "trailing.", ""):
        with pytest.raises(ValueError, match=r"message id|at least 1"):
            request("Org", message_id=bad)
    assert request("Org", message_id="tc-kz-2021.nomination.0.AZ.1").member_state == "AZ"


# --- the directory and the ladders ------------------------------------------------------


async def test_directory_round_trip(pool: asyncpg.Pool, organisation: str) -> None:
    """Upsert normalises and replaces whole; get, list, remove; secrets stay out of repr."""
    directory = MemberStateDirectory(pool)
    stored = await directory.upsert(
        contact(
            organisation,
            " kg ",
            name="Kyrgyzstan",
            email=None,
            language="RU-kg",
            webhook_url="https://mfa.example.kg/eom",
            webhook_secret=SECRET,
        )
    )
    assert (stored.code, stored.language) == ("KG", "ru-kg")
    assert SECRET not in repr(stored) and SECRET not in str(stored.model_dump())
    assert await directory.get(organisation, "kg") == stored

    replaced = await directory.upsert(contact(organisation, "KG", name="Kyrgyz Republic"))
    assert replaced.webhook_url is None and replaced.name == "Kyrgyz Republic"
    await directory.upsert(contact(organisation, "AZ"))
    assert [c.code for c in await directory.list(organisation)] == ["AZ", "KG"]

    assert await directory.remove(organisation, "kg")
    assert not await directory.remove(organisation, "KG")
    assert await directory.get(organisation, "KG") is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"email": "not an address"}, "e-mail 'not an address' is not an e-mail address"),
        ({"email": "focal@localhost"}, "is not an e-mail address"),
        ({"escalation_email": "secretariat"}, "escalation e-mail 'secretariat'"),
        (
            {"webhook_url": "ftp://mfa.example.az/hook", "webhook_secret": SECRET},
            "must start with http:// or https://",
        ),
        ({"webhook_url": "https:///no-host", "webhook_secret": SECRET}, "no host"),
        (
            {"webhook_url": "https://user:pw@mfa.example.az/", "webhook_secret": SECRET},
            "must not carry credentials",
        ),
        ({"webhook_url": "https://mfa.example.az/hook"}, "needs a webhook secret"),
        ({"webhook_secret": SECRET}, "without a webhook URL"),
        (
            {"webhook_url": "https://mfa.example.az/hook", "webhook_secret": "short"},
            "too short",
        ),
        ({"email": None}, "needs an e-mail address or a webhook URL"),
        ({"code": "AZE"}, "'AZE' is not an ISO 3166-1 alpha-2 code"),
        ({"code": "1A"}, "is not an ISO 3166-1 alpha-2 code"),
        ({"language": "english!"}, "not a language tag"),
        ({"name": "  "}, "name '  ' must not be empty"),
        ({"name": "Azerbaijan\r\nBcc: x@example.org"}, "must be a single line (a line break"),
        ({"name": "Azerbaijan\u2028Bcc"}, "must be a single line"),
        ({"name": "Azer\x00baijan"}, "must not contain the NUL character"),
        ({"escalation_name": "Secretariat\nBcc: x@example.org"}, "must be a single line"),
        (
            {"webhook_url": "https://mfa.example.az/hook", "webhook_secret": SECRET + "\x00"},
            "must be printable",
        ),
    ],
)
async def test_directory_refuses_what_would_fail_later(
    pool: asyncpg.Pool, organisation: str, fields: dict[str, object], problem: str
) -> None:
    """Each invalid entry is refused with a DirectoryError naming the problem."""
    with pytest.raises(DirectoryError, match=problem.replace("(", r"\(")):
        await MemberStateDirectory(pool).upsert(
            MemberStateContact.model_validate(contact(organisation).model_dump() | fields)
        )
    assert await MemberStateDirectory(pool).list(organisation) == []


async def test_ladders(pool: asyncpg.Pool, organisation: str) -> None:
    """Ladders are stored per organisation and kind, offsets largest first; bad ones are
    refused; an organisation without one gets None (and uses the default)."""
    policies = LadderPolicies(pool)
    assert await policies.get(organisation, "nomination") is None
    assert DEFAULT_LADDER.offsets == [timedelta(days=7), timedelta(days=2), timedelta(0)]
    assert DEFAULT_LADDER.escalate_after == timedelta(0)

    stored = await policies.set(
        organisation,
        DeadlineKind.evidence,
        [timedelta(0), timedelta(days=14), timedelta(days=30)],
        timedelta(days=3),
    )
    assert stored.offsets == [timedelta(days=30), timedelta(days=14), timedelta(0)]
    assert await policies.get(organisation, "evidence") == stored
    assert await policies.get(organisation, "nomination") is None

    for offsets, escalate, problem in (
        ([timedelta(days=-1)], timedelta(0), "negative"),
        ([timedelta(days=1), timedelta(days=1)], timedelta(0), "given twice"),
        ([timedelta(seconds=1.5)], timedelta(0), "whole number of seconds"),
        ([timedelta(days=1)], timedelta(hours=-1), "escalation delay .* is negative"),
    ):
        with pytest.raises(DirectoryError, match=problem):
            await policies.set(organisation, "nomination", offsets, escalate)
    with pytest.raises(DirectoryError, match="reminder kind 'visits' is not one of"):
        await policies.set(organisation, "visits", [], timedelta(0))
    assert await policies.get(organisation, "nomination") is None


# --- templates --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DeadlineKind))
@pytest.mark.parametrize("purpose", list(DeliveryPurpose))
def test_every_kind_and_purpose_renders_in_english(
    kind: DeadlineKind, purpose: DeliveryPurpose
) -> None:
    """Each kind x purpose has an English text naming mission, deadline and how to answer."""
    subject, body = render(
        kind,
        purpose,
        "en",
        mission_name=MISSION_NAME,
        organisation="Turkic Council",
        member_state_name="Azerbaijan",
        deadline=DEADLINE,
        answer_hint=ANSWER_HINT,
        step=2,
        now=DEADLINE + timedelta(seconds=1)
        if purpose is DeliveryPurpose.escalation
        else DEADLINE - timedelta(days=2),
    )
    assert "\n" not in subject and MISSION_NAME in subject
    assert MISSION_NAME in body and DEADLINE_TEXT in body and ANSWER_HINT in body
    assert "Azerbaijan" in subject + body and "Dear colleagues" in body
    what = {
        DeadlineKind.nomination: "nominat",
        DeadlineKind.acknowledgement: "acknowledg",
        DeadlineKind.evidence: "evidence",
    }[kind]
    assert what in subject.lower() and what in body.lower()
    if purpose is DeliveryPurpose.reminder:
        assert subject.startswith("Reminder 2:")
        assert "Time left: 2 days." in body
    if purpose is DeliveryPurpose.escalation:
        assert "Azerbaijan has not" in subject and "The deadline has passed." in body


@pytest.mark.parametrize(
    ("language", "purpose", "expected"),
    [
        ("ru", DeliveryPurpose.request, "Уважаемые коллеги"),
        ("ru-RU", DeliveryPurpose.reminder, "Напоминание № 3"),
        ("tr", DeliveryPurpose.request, "Sayın yetkililer"),
        ("TR", DeliveryPurpose.reminder, "3. hatırlatma"),
    ],
)
def test_nomination_in_russian_and_turkish(
    language: str, purpose: DeliveryPurpose, expected: str
) -> None:
    """Nomination requests and reminders are written in Russian and Turkish."""
    subject, body = render(
        DeadlineKind.nomination,
        purpose,
        language,
        mission_name=MISSION_NAME,
        organisation="Turkic Council",
        member_state_name="Kyrgyzstan",
        deadline=DEADLINE,
        answer_hint=ANSWER_HINT,
        step=3,
        now=DEADLINE - timedelta(hours=5, minutes=30),
    )
    assert expected in subject + body
    assert "Dear colleagues" not in body
    assert MISSION_NAME in body and DEADLINE_TEXT in body and ANSWER_HINT in body
    if purpose is DeliveryPurpose.reminder:
        assert ("Осталось: 5 часов 30 минут." if language.startswith("ru") else "") in body
        assert ("Kalan süre: 5 saat 30 dakika." if language == "TR" else "") in body


@pytest.mark.parametrize(
    ("language", "kind", "purpose"),
    [
        ("xx", DeadlineKind.nomination, DeliveryPurpose.reminder),
        ("not a language", DeadlineKind.nomination, DeliveryPurpose.request),
        ("ru", DeadlineKind.acknowledgement, DeliveryPurpose.reminder),
        ("tr", DeadlineKind.nomination, DeliveryPurpose.escalation),
    ],
)
def test_missing_translations_fall_back_to_english(
    language: str, kind: DeadlineKind, purpose: DeliveryPurpose
) -> None:
    """An unknown language, or a text not translated yet, is written in English."""
    _, body = render(
        kind,
        purpose,
        language,
        mission_name=MISSION_NAME,
        organisation="Turkic Council",
        member_state_name="Türkiye",
        deadline=DEADLINE,
        answer_hint=ANSWER_HINT,
        step=1,
        now=DEADLINE,
    )
    assert body.startswith("Dear colleagues")
    assert MISSION_NAME in body and DEADLINE_TEXT in body and ANSWER_HINT in body


def test_remaining_time_and_deadline_formats() -> None:
    """Reminders say how long is left, rounded; an early escalation says it is early;
    deadlines are UTC, naive ones refused."""

    def left(remaining: timedelta, language: str = "en") -> str:
        _, body = render(
            "nomination",
            "reminder",
            language,
            mission_name=MISSION_NAME,
            organisation="TC",
            member_state_name="AZ",
            deadline=DEADLINE,
            answer_hint=ANSWER_HINT,
            step=1,
            now=DEADLINE - remaining,
        )
        return body

    assert "Time left: 7 days." in left(timedelta(days=7) - timedelta(seconds=2))
    assert "Time left: 1 day 6 hours." in left(timedelta(hours=30))
    assert "Time left: 45 minutes." in left(timedelta(minutes=45))
    assert "The deadline is now." in left(timedelta(0))
    assert "Осталось: 2 дня." in left(timedelta(days=2), "ru")
    assert "Осталось: 21 день." in left(timedelta(days=21), "ru")
    _, early = render(
        "nomination",
        "escalation",
        "en",
        mission_name=MISSION_NAME,
        organisation="TC",
        member_state_name="AZ",
        deadline=DEADLINE,
        answer_hint=ANSWER_HINT,
        step=4,
        now=DEADLINE - timedelta(days=1),
    )
    assert "The deadline has not passed yet" in early
    assert format_deadline(datetime(2021, 1, 4, 0, 0, tzinfo=UTC) + timedelta(hours=-6)) == (
        DEADLINE_TEXT
    )
    with pytest.raises(ValueError, match="time zone"):
        format_deadline(datetime(2021, 1, 3, 18, 0))


# --- the SMTP sink ----------------------------------------------------------------------


async def test_smtp_sink_stores_messages(tmp_path: Path) -> None:
    """The sink keeps each message as an .eml file and parses them back, in order."""
    import aiosmtplib

    with SmtpSink(tmp_path / "inbox", port=0) as sink:
        for n in (1, 2):
            mail = EmailMessage()
            mail["From"] = "eom@localhost"
            mail["To"] = "focal-point@mfa.example.org"
            mail["Subject"] = f"Сообщение {n}"
            mail.set_content(f"body {n}")
            await aiosmtplib.send(mail, hostname="127.0.0.1", port=sink.port)
        assert sink.count == 2
        assert [m["Subject"] for m in sink.messages()] == ["Сообщение 1", "Сообщение 2"]
        assert len(sink.files()) == 2 and all(f.suffix == ".eml" for f in sink.files())
    assert [m["Subject"] for m in SmtpSink(tmp_path / "inbox").messages()] == [
        "Сообщение 1",
        "Сообщение 2",
    ]


# --- the command line -------------------------------------------------------------------

_CLI = """
import sys, typer
from cli.commands import InputError
from cli.reminder_cli import ladder_app, member_state_app, outbox_command
app = typer.Typer(pretty_exceptions_enable=False)
app.add_typer(member_state_app, name="member-state")
app.add_typer(ladder_app, name="ladder")
app.command("outbox")(outbox_command)
try:
    app(prog_name="eom")
except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
"""


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CLI,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_directory_ladder_and_outbox(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """member-state add/list/remove, ladder set/show and outbox, as a user runs them; the
    secret is never printed; bad input is one line and exit code 2."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "EOM_LOG_LEVEL")},
        "DATABASE_URL": database_url,
        "EOM_DATA_DIR": str(tmp_path / "eom-data"),
        "COLUMNS": "200",
    }
    code, out, err = await cli(
        "member-state", "add", "--organisation", organisation, "--code", "uz",
        "--name", "Uzbekistan", "--language", "uz", "--webhook-url",
        "https://mfa.example.uz/eom", "--webhook-secret", SECRET,
        "--escalation-email", "secretariat@organisation.example.org",
        env=env,
    )  # fmt: skip
    assert code == 0, err
    assert "UZ" in out and "webhook" in out

    code, out, err = await cli("member-state", "list", "--organisation", organisation, env=env)
    assert code == 0, err
    assert "https://mfa.example.uz/eom (signed)" in out and SECRET not in out

    code, out, err = await cli(
        "member-state", "add", "--organisation", organisation, "--code", "UZB",
        "--name", "Uzbekistan", "--email", "a@b.example.org",
        "--escalation-email", "secretariat@organisation.example.org",
        env=env,
    )  # fmt: skip
    assert (
        code == 2 and err.strip() == "error: member state 'UZB' is not an ISO 3166-1 alpha-2 code"
    )

    code, out, err = await cli(
        "ladder", "set", "--organisation", organisation, "--kind", "acknowledgement",
        "--offsets", "2d,7d,0", "--escalate-after", "12h",
        env=env,
    )  # fmt: skip
    assert code == 0, err
    assert "7d, 2d, 0 before the deadline; escalation 12h after it" in out
    code, out, err = await cli("ladder", "show", "--organisation", organisation, env=env)
    assert code == 0, err
    assert "7d, 2d, 0" in out and "12h" in out and "default" in out

    code, _, err = await cli(
        "ladder", "set", "--organisation", organisation, "--kind", "nomination",
        "--offsets", "7 days", env=env,
    )  # fmt: skip
    assert code == 2 and "--offsets: '7 days' is not a duration" in err

    await MemberStateDirectory(pool).upsert(contact(organisation, "AZ"))
    message = request(organisation, "AZ", mission_id=f"cli-{uuid.uuid4().hex[:8]}")
    await deliver(DeliveryActivities(pool, delivery_settings(sink.port)), message)
    code, out, err = await cli("outbox", "--mission", message.mission_id, env=env)
    assert code == 0, err
    assert "focal-point.az@mfa.example.org" in out and "sent (1 attempt)" in out

    code, out, err = await cli(
        "member-state", "remove", "--organisation", organisation, "--code", "uz", env=env
    )
    assert code == 0, err
    code, out, err = await cli(
        "member-state", "remove", "--organisation", organisation, "--code", "uz", env=env
    )
    assert code == 2 and "no member state UZ" in err


async def test_outbox_reads_at_100_columns_filters_and_prints_json(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """`eom outbox` at 100 columns: a message is a line of when, mission, state, kind and
    status, then its channel and address, subject and error, no line wider than 100;
    `--json` gives every field, oldest first; the filters (member state or its alias
    --recipient, kind, purpose, status, since) combine; a bad filter is one line, exit 2."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "EOM_LOG_LEVEL")},
        "DATABASE_URL": database_url,
        "EOM_DATA_DIR": str(tmp_path / "eom-data"),
        "COLUMNS": "100",
    }
    mission_id = f"outbox-{uuid.uuid4().hex[:8]}"
    await MemberStateDirectory(pool).upsert(contact(organisation, "AZ"))
    activities = DeliveryActivities(pool, delivery_settings(sink.port))
    await deliver(activities, request(organisation, "AZ", mission_id=mission_id))
    with pytest.raises(ApplicationError):  # not in the directory: failed, for good
        await deliver(activities, request(organisation, "KG", mission_id=mission_id))
    acknowledgement = request(
        organisation,
        "AZ",
        mission_id=mission_id,
        message_id=f"m-{uuid.uuid4().hex[:8]}.acknowledgement.0.AZ.0",
        kind="acknowledgement",
        purpose="request",
        step=0,
    )
    await deliver(activities, acknowledgement)

    code, out, err = await cli("outbox", "--mission", mission_id, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"Outbox (mission {mission_id}): 3 messages, oldest first")
    assert max(len(line) for line in lines) <= 100, out
    headers = [line for line in lines[1:] if not line.startswith(" ")]
    assert len(headers) == 3 and len(lines) <= 1 + 3 * 4, out
    assert mission_id not in "".join(headers), "the heading names the mission, once"
    assert "nomination reminder" in headers[0] and "sent (1 attempt)" in headers[0]
    assert " KG " in headers[1] and "failed (1 attempt)" in headers[1]
    assert "acknowledgement request" in headers[2]
    assert "    email focal-point.az@mfa.example.org" in lines
    assert any(line.startswith("    error: ") and "KG" in line for line in lines)

    async def listed(*filters: str) -> list[dict[str, object]]:
        code, out, err = await cli("outbox", "--mission", mission_id, "--json", *filters, env=env)
        assert code == 0, err
        found: list[dict[str, object]] = json.loads(out)
        return found

    everything = await listed()
    assert [e["member_state"] for e in everything] == ["AZ", "KG", "AZ"]
    assert {"message_id", "channel", "address", "subject", "body", "status", "error"} <= set(
        everything[0]
    )
    assert [e["status"] for e in await listed("--recipient", "kg")] == ["failed"]
    assert [e["kind"] for e in await listed("--member-state", "AZ")] == [
        "nomination",
        "acknowledgement",
    ]
    assert [e["purpose"] for e in await listed("--kind", "acknowledgement")] == ["request"]
    assert [e["member_state"] for e in await listed("--status", "failed")] == ["KG"]
    assert len(await listed("--purpose", "reminder", "--status", "sent")) == 1
    assert len(await listed("--since", "1h")) == 3
    assert await listed("--since", "2199-01-01") == []

    for bad, option in (("--member-state", "AZE"), ("--since", "yesterday")):
        code, out, err = await cli("outbox", bad, option, env=env)
        assert code == 2 and err.strip().count("\n") == 0 and bad in err, err
