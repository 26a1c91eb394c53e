"""Answer links: issued, resolved and refused against the session's PostgreSQL; judged
answered against missions' records; carried by every request and reminder to a member
state (by e-mail and by webhook, the same on every retry), never by an escalation, and
never kept in clear text by the outbox, the logs or a failure's text."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import structlog
from builders import member, nominate, record
from conftest import serving_app
from fastapi import FastAPI, Request, Response
from receivers import SECRET, Receiver, running_receiver
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from test_delivery import DEADLINE, contact, deliver, delivery_settings, plain, request

from accounts.answer_links import (
    DEFAULT_GRACE,
    AnswerLink,
    AnswerLinks,
    LinkRefused,
    answered,
    ensure_open,
    link_expiry,
    message_secret,
)
from activities.delivery import (
    LINK_WITHHELD,
    DeliveryActivities,
    DeliverySettings,
    outbox,
)
from activities.directory import MemberStateDirectory
from activities.templates import render
from cli import seed
from cli.services import Stack, answer_link_key, export_worker_settings
from cli.smtp_sink import SmtpSink
from domain import commands as c
from domain.values import DeadlineKind, DeliveryPurpose, EvidenceItem, Recipient, RecipientKind
from eventstore.store import EventStore
from worker import Settings, build_worker
from workflows.client import Missions
from workflows.messages import MissionTiming

CONSOLE = "https://console.example.org/eom"
KEY = "k" * 40
LINK = re.compile(re.escape(CONSOLE) + r"/answer/([A-Za-z0-9_-]{43})")
ORGANISATION_RECIPIENT = Recipient(kind=RecipientKind.international_organisation, name="OSCE/ODIHR")


@pytest.fixture
def organisation() -> str:
    return f"Links Organisation {uuid.uuid4().hex[:8]}"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail") as sink:
        yield sink


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


def settings(smtp_port: int = 1, **fields: object) -> DeliverySettings:
    return delivery_settings(smtp_port, console_url=CONSOLE + "/", answer_link_key=KEY, **fields)


def secrets_in(text: str) -> list[str]:
    return LINK.findall(text)


def mission_id() -> str:
    return f"links-{uuid.uuid4().hex[:8]}"


# --- issue, resolve, expire -------------------------------------------------------------


async def test_issue_and_resolve_store_only_the_hash(pool: asyncpg.Pool) -> None:
    """A link resolves to what it was issued for; the table holds its SHA-256 only; two
    links of one request are two secrets, both usable."""
    links = AnswerLinks(pool)
    mission = mission_id()
    now = datetime.now(UTC)

    secret = await links.issue(mission, " az ", DeadlineKind.nomination, 0, timedelta(days=3))
    other = await links.issue(mission, "AZ", "nomination", 0, timedelta(days=3))

    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) and secret != other
    link = await links.resolve(secret)
    assert (link.mission_id, link.recipient, link.kind, link.cycle, link.message_id) == (
        mission,
        "AZ",
        DeadlineKind.nomination,
        0,
        None,
    )
    assert now + timedelta(days=3) <= link.expires_at <= datetime.now(UTC) + timedelta(days=3)
    assert (await links.resolve(other)).recipient == "AZ"
    rows = await pool.fetch("SELECT a::text AS text, secret_sha256 FROM answer_links a")
    stored = "".join(r["text"] for r in rows)
    assert secret not in stored and other not in stored
    hashes = {bytes(r["secret_sha256"]) for r in rows}
    assert hashlib.sha256(secret.encode()).digest() in hashes


async def test_expired_and_unknown_links_are_refused(pool: asyncpg.Pool) -> None:
    """A link works until just before its expiry; at it, and for a secret never issued
    or a text that is no secret at all, it is refused with the reason."""
    links = AnswerLinks(pool)
    issued_at = datetime(2021, 1, 1, 12, tzinfo=UTC)
    secret = await links.issue(
        mission_id(), "KG", DeadlineKind.nomination, 0, timedelta(hours=1), now=issued_at
    )

    link = await links.resolve(secret, now=issued_at + timedelta(minutes=59))
    assert link.expires_at == issued_at + timedelta(hours=1)
    with pytest.raises(LinkRefused) as refused:
        await links.resolve(secret, now=issued_at + timedelta(hours=1))
    assert refused.value.reason == "expired" and "expired" in str(refused.value)
    with pytest.raises(LinkRefused) as refused:
        await links.resolve(secret)  # now: long after 2021
    assert refused.value.reason == "expired"
    for unknown in ("A" * 43, secret[:-1], secret + "A", "../../etc/passwd", "", "é" * 43):
        with pytest.raises(LinkRefused) as refused:
            await links.resolve(unknown)
        assert refused.value.reason == "unknown"


@pytest.mark.parametrize(
    ("recipient", "kind", "cycle", "ttl", "problem"),
    [
        ("OSCE/ODIHR", DeadlineKind.nomination, 0, timedelta(days=1), "goes to a member state"),
        ("OSCE/ODIHR", DeadlineKind.evidence, 1, timedelta(days=1), "ISO 3166-1"),
        ("AZ", DeadlineKind.evidence, 0, timedelta(days=1), "cycle 0: an evidence request"),
        ("AZ", DeadlineKind.nomination, 2, timedelta(days=1), "only evidence requests"),
        ("AZ", DeadlineKind.nomination, 0, timedelta(0), "ttl"),
        ("Org\nBcc: x", DeadlineKind.acknowledgement, 0, timedelta(days=1), "single line"),
        ("  ", DeadlineKind.acknowledgement, 0, timedelta(days=1), "must not be empty"),
    ],
)
async def test_issue_refuses_what_no_request_is(
    pool: asyncpg.Pool,
    recipient: str,
    kind: DeadlineKind,
    cycle: int,
    ttl: timedelta,
    problem: str,
) -> None:
    """A link for no possible request is refused at once, naming the field; none stored."""
    mission = mission_id()
    with pytest.raises(ValueError, match=problem):
        await AnswerLinks(pool).issue(mission, recipient, kind, cycle, ttl)
    assert not await pool.fetchval(
        "SELECT count(*) FROM answer_links WHERE mission_id = $1", mission
    )


async def test_issue_refuses_a_message_link_without_key_and_a_naive_time(
    pool: asyncpg.Pool,
) -> None:
    links = AnswerLinks(pool)
    with pytest.raises(ValueError, match=r"message_id: .* needs the key"):
        await links.issue("m", "AZ", "nomination", 0, timedelta(days=1), message_id="m.1")
    with pytest.raises(ValueError, match="now needs a time zone"):
        await links.issue("m", "AZ", "nomination", 0, timedelta(days=1), now=datetime(2021, 1, 1))
    with pytest.raises(ValueError, match="mission_id"):
        await links.issue(" ", "AZ", "nomination", 0, timedelta(days=1))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AnswerLinks(pool, key=b"short")


async def test_a_message_link_is_the_same_on_every_issue(pool: asyncpg.Pool) -> None:
    """Issued for one message, a link is derived: the same secret every time, one row;
    another message, or another key, gives another secret. An organisation's
    acknowledgement link keeps its name."""
    links = AnswerLinks(pool, key=KEY.encode())
    mission = mission_id()
    first = await links.issue(
        mission, "OSCE/ODIHR", "acknowledgement", 0, timedelta(days=5), message_id=f"{mission}.1"
    )
    again = await links.issue(
        mission, "OSCE/ODIHR", "acknowledgement", 0, timedelta(days=5), message_id=f"{mission}.1"
    )
    second = await links.issue(
        mission, "OSCE/ODIHR", "acknowledgement", 0, timedelta(days=5), message_id=f"{mission}.2"
    )

    assert first == again != second
    assert first == message_secret(
        KEY.encode(),
        message_id=f"{mission}.1",
        mission_id=mission,
        recipient="OSCE/ODIHR",
        kind=DeadlineKind.acknowledgement,
        cycle=0,
    )
    assert first != message_secret(
        b"another key of at least 32 bytes!!",
        message_id=f"{mission}.1",
        mission_id=mission,
        recipient="OSCE/ODIHR",
        kind=DeadlineKind.acknowledgement,
        cycle=0,
    )
    count = await pool.fetchval("SELECT count(*) FROM answer_links WHERE mission_id = $1", mission)
    assert count == 2
    link = await links.resolve(first)
    assert (link.recipient, link.message_id) == ("OSCE/ODIHR", f"{mission}.1")


def test_link_expiry_is_the_deadline_or_the_message_plus_the_grace() -> None:
    sent = datetime(2021, 1, 1, tzinfo=UTC)
    assert link_expiry(DEADLINE, sent) == DEADLINE + DEFAULT_GRACE
    late = DEADLINE + timedelta(days=2)
    assert link_expiry(DEADLINE, late, timedelta(days=1)) == late + timedelta(days=1)
    with pytest.raises(ValueError, match="positive"):
        link_expiry(DEADLINE, sent, timedelta(0))
    with pytest.raises(ValueError, match="time zone"):
        link_expiry(datetime(2021, 1, 3), sent)


# --- answered -----------------------------------------------------------------------------


def link_of(mission: str, recipient: str, kind: DeadlineKind, cycle: int = 0) -> AnswerLink:
    now = datetime.now(UTC)
    return AnswerLink(
        mission_id=mission,
        recipient=recipient,
        kind=kind,
        cycle=cycle,
        issued_at=now,
        expires_at=now + timedelta(days=1),
    )


def asked(mission: str) -> list[c.Command]:
    """A mission whose member states are asked to nominate observers."""
    return [
        seed.registration(mission),
        c.AppointHeadOfMission(name="Head", title="Envoy"),
        c.RequestNominations(deadline=datetime.now(UTC) + timedelta(days=3), reminders=False),
    ]


async def test_answered_nomination(store: EventStore) -> None:
    """A nomination request is answered by an observer nominated or by a decline."""
    waiting, answering = mission_id(), mission_id()
    state = await record(store, waiting, asked(waiting))
    assert not any(
        answered(state, link_of(waiting, code, DeadlineKind.nomination))
        for code in ("AZ", "KG", "TR")
    )
    ensure_open(state, link_of(waiting, "AZ", DeadlineKind.nomination))

    state = await record(
        store,
        answering,
        [
            *asked(answering),
            nominate("az-1", "AZ"),
            c.DeclineNomination(member_state="KG", reason="no budget this year"),
        ],
    )
    links = {code: link_of(answering, code, DeadlineKind.nomination) for code in ("AZ", "KG", "TR")}
    assert answered(state, links["AZ"]) and answered(state, links["KG"])
    assert not answered(state, links["TR"])
    with pytest.raises(LinkRefused) as refused:
        ensure_open(state, links["KG"])
    assert refused.value.reason == "reused"
    with pytest.raises(ValueError, match="not of"):
        answered(state, link_of(waiting, "AZ", DeadlineKind.nomination))


async def test_answered_acknowledgement_and_evidence(store: EventStore) -> None:
    """An acknowledgement request is answered by the recipient's acknowledgement (a state
    or an organisation); an evidence request by evidence for its own cycle."""
    mission = mission_id()
    commands = seed.mission(mission)
    sent = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.SendRecommendations))
    state = await record(
        store,
        mission,
        [
            *commands[: sent + 1],
            c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 1, 18)),
            c.AcknowledgeRecommendations(
                recipient=ORGANISATION_RECIPIENT, acknowledged_on=date(2021, 1, 19)
            ),
            c.RequestEvidence(
                cycle=1,
                member_states=["AZ", "KZ"],
                deadline=datetime.now(UTC) + timedelta(days=30),
                reminders=False,
            ),
            c.SubmitEvidence(
                member_state="KZ",
                cycle=1,
                evidence=[EvidenceItem(recommendation_id="R1", text="Ramps ordered.")],
            ),
        ],
    )
    ack = DeadlineKind.acknowledgement
    assert answered(state, link_of(mission, "AZ", ack))
    assert answered(state, link_of(mission, "OSCE/ODIHR", ack))
    assert not answered(state, link_of(mission, "KG", ack))
    evidence = DeadlineKind.evidence
    assert answered(state, link_of(mission, "KZ", evidence, 1))
    assert not answered(state, link_of(mission, "AZ", evidence, 1))
    assert not answered(state, link_of(mission, "KZ", evidence, 2))


# --- in every request and reminder ------------------------------------------------------

ANSWER_LINES = {
    "en": ("How to answer: ", "It works until 2021-02-02 18:00 UTC", "Or: "),
    "ru": ("Как ответить: ", "Она действует до 2021-02-02 18:00 UTC", "Или: "),
    "tr": ("Nasıl yanıt verilir: ", "2021-02-02 18:00 UTC tarihine kadar", "Ya da: "),
}


@pytest.mark.parametrize("language", list(ANSWER_LINES))
async def test_a_nomination_request_by_email_carries_its_link(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str, language: str
) -> None:
    """The e-mail's answer line, in the recipient's language, holds a link that resolves
    to this mission, member state and request, until the deadline plus 30 days; the
    outbox keeps the body with the link withheld."""
    await MemberStateDirectory(pool).upsert(contact(organisation, "KG", language=language))
    mission = mission_id()
    message = request(
        organisation,
        "KG",
        mission_id=mission,
        message_id=f"{mission}.nomination.0.KG.0",
        purpose="request",
        step=0,
    )

    await deliver(DeliveryActivities(pool, settings(sink.port)), message)

    (mail,) = sink.messages()
    text = plain(mail)
    (secret,) = secrets_in(text)
    answer, until, otherwise = ANSWER_LINES[language]
    assert f"{answer}{CONSOLE}/answer/{secret}\n" in text
    assert until in text and otherwise in text
    link = await AnswerLinks(pool).resolve(secret, now=DEADLINE)
    assert link == AnswerLink(
        mission_id=mission,
        recipient="KG",
        kind=DeadlineKind.nomination,
        cycle=0,
        expires_at=DEADLINE + timedelta(days=30),
        issued_at=link.issued_at,
        message_id=message.message_id,
    )
    (kept,) = await outbox(pool, mission_id=mission)
    assert kept.body is not None and secret not in kept.body and LINK_WITHHELD in kept.body
    assert kept.body == text.replace(f"{CONSOLE}/answer/{secret}", LINK_WITHHELD)


async def test_a_webhook_payload_carries_answer_url(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """An evidence reminder by webhook: ``answer_url`` (and the body) hold the link of
    that cycle's request, signed with the rest of the payload."""
    url, hook = receiver.hook()
    await MemberStateDirectory(pool).upsert(
        contact(organisation, "UZ", webhook_url=url, webhook_secret=SECRET)
    )
    mission = mission_id()
    message = request(
        organisation,
        "UZ",
        mission_id=mission,
        message_id=f"{mission}.evidence.2.UZ.1",
        kind="evidence",
        cycle=2,
    )

    await deliver(DeliveryActivities(pool, settings(answer_link_grace_days=3)), message)

    (received,) = hook.accepted
    payload = json.loads(received.body)
    (secret,) = secrets_in(payload["answer_url"])
    assert payload["answer_url"] == f"{CONSOLE}/answer/{secret}"
    assert payload["answer_url"] in payload["body"]
    link = await AnswerLinks(pool).resolve(secret, now=DEADLINE)
    assert (link.mission_id, link.recipient, link.kind, link.cycle) == (
        mission,
        "UZ",
        DeadlineKind.evidence,
        2,
    )
    assert datetime.fromisoformat(payload["answer_expires_at"]) == link.expires_at
    assert link.expires_at == DEADLINE + timedelta(days=3)


async def test_a_retried_message_carries_the_same_link(
    pool: asyncpg.Pool, receiver: Receiver, organisation: str
) -> None:
    """A message retried (here by another worker process with the same key) carries the
    same link, stored once; the next reminder carries a link of its own, to the same
    request."""
    url, hook = receiver.hook(script=[503])
    await MemberStateDirectory(pool).upsert(
        contact(organisation, "TR", webhook_url=url, webhook_secret=SECRET)
    )
    mission = mission_id()
    first = request(organisation, "TR", mission_id=mission, message_id=f"{mission}.n.TR.1")

    with pytest.raises(ApplicationError, match="503"):
        await deliver(DeliveryActivities(pool, settings()), first)
    await deliver(DeliveryActivities(pool, settings()), first, attempt=2)
    second = request(organisation, "TR", mission_id=mission, message_id=f"{mission}.n.TR.2", step=2)
    await deliver(DeliveryActivities(pool, settings()), second)

    urls = [json.loads(r.body)["answer_url"] for r in hook.requests]
    assert len(urls) == 3 and urls[0] == urls[1] != urls[2]
    rows = await pool.fetch(
        "SELECT message_id FROM answer_links WHERE mission_id = $1 ORDER BY message_id", mission
    )
    assert [r["message_id"] for r in rows] == [first.message_id, second.message_id]
    links = [await AnswerLinks(pool).resolve(secrets_in(u)[0], now=DEADLINE) for u in urls]
    assert {(k.mission_id, k.recipient, k.kind, k.cycle) for k in links} == {
        (mission, "TR", DeadlineKind.nomination, 0)
    }


async def test_an_escalation_carries_no_link(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """The escalation goes to the escalation contact, not the focal point: no link is
    made for it, and the templates refuse one."""
    await MemberStateDirectory(pool).upsert(contact(organisation, "AZ"))
    mission = mission_id()
    message = request(
        organisation,
        "AZ",
        mission_id=mission,
        message_id=f"{mission}.nomination.0.AZ.3",
        purpose="escalation",
        step=3,
    )

    await deliver(
        DeliveryActivities(pool, settings(sink.port)),
        message,
        scheduled=DEADLINE + timedelta(minutes=1),
    )

    (mail,) = sink.messages()
    assert "secretariat@" in str(mail["To"]) and "/answer/" not in plain(mail)
    assert "How to answer: " in plain(mail)
    assert not await pool.fetchval(
        "SELECT count(*) FROM answer_links WHERE mission_id = $1", mission
    )
    with pytest.raises(ValueError, match=r"escalation .* carries no answer link"):
        render(
            DeadlineKind.nomination,
            DeliveryPurpose.escalation,
            "en",
            mission_name="M",
            organisation="O",
            member_state_name="Azerbaijan",
            deadline=DEADLINE,
            answer_hint="Reply.",
            step=3,
            answer_url=f"{CONSOLE}/answer/{'x' * 43}",
            answer_expires_at=DEADLINE,
        )


async def test_the_secret_is_kept_out_of_the_outbox_logs_and_failures(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that refuses by quoting the link back: the failure the outbox, Temporal
    and the record keep says so with the link withheld; an e-mail sent: neither the
    outbox nor any log line (eom's or a library's, at DEBUG) holds the link."""
    app = FastAPI()
    quoted: list[str] = []

    @app.post("/hook")
    async def refuse(http: Request) -> Response:
        answer_url = (await http.json())["answer_url"]
        quoted.append(answer_url)
        return Response(f"refused: unknown field answer_url={answer_url}", status_code=400)

    caplog.set_level(logging.DEBUG)
    async with serving_app(app) as base:
        await MemberStateDirectory(pool).upsert(
            contact(organisation, "KG", webhook_url=f"{base}/hook", webhook_secret=SECRET)
        )
        await MemberStateDirectory(pool).upsert(contact(organisation, "AZ"))
        mission = mission_id()
        refused = request(organisation, "KG", mission_id=mission, message_id=f"{mission}.KG.1")
        mailed = request(organisation, "AZ", mission_id=mission, message_id=f"{mission}.AZ.1")
        activities = DeliveryActivities(pool, settings(sink.port))
        with structlog.testing.capture_logs() as logged:
            with pytest.raises(ApplicationError) as raised:
                await deliver(activities, refused)
            await deliver(activities, mailed)

    (quoted_url,) = quoted
    (mailed_secret,) = secrets_in(plain(sink.messages()[0]))
    withheld = [secrets_in(quoted_url)[0], mailed_secret]
    failure = raised.value
    assert failure.type == "DeliveryRejected" and failure.non_retryable
    assert "400" in failure.message and LINK_WITHHELD in failure.message
    kept = await outbox(pool, mission_id=mission)
    assert {e.status for e in kept} == {"sent", "failed"}
    texts = [
        failure.message,
        str(failure),
        json.dumps([e.model_dump(mode="json") for e in kept]),
        repr(logged),
        caplog.text,
    ]
    assert any(mission in text for text in texts[3:]), "the logs were captured"
    for secret in withheld:
        for text in texts:
            assert secret not in text


async def test_an_evidence_request_without_its_cycle_goes_without_a_link(
    pool: asyncpg.Pool, sink: SmtpSink, organisation: str
) -> None:
    """A request from a ladder started before requests said their cycle cannot be bound
    to its request: it goes as before, with the answer hint only."""
    await MemberStateDirectory(pool).upsert(contact(organisation, "AZ"))
    mission = mission_id()
    message = request(
        organisation, "AZ", mission_id=mission, message_id=f"{mission}.e.AZ.1", kind="evidence"
    )

    await deliver(DeliveryActivities(pool, settings(sink.port)), message)

    text = plain(sink.messages()[0])
    assert "/answer/" not in text and "How to answer: Reply to this message" in text


def test_delivery_settings_refuse_a_bad_console_url_or_key() -> None:
    for url, problem in (
        ("console.example.org", "http:// or https://"),
        ("ftp://console.example.org", "http:// or https://"),
        ("https://user:pw@console.example.org", "credentials"),
        ("https://console.example.org/?a=1", "query"),
    ):
        with pytest.raises(ValueError, match=problem):
            DeliverySettings.model_validate({"EOM_CONSOLE_URL": url})
    with pytest.raises(ValueError, match="EOM_ANSWER_LINK_KEY must have at least 32"):
        DeliverySettings.model_validate({"EOM_ANSWER_LINK_KEY": "short"})
    with pytest.raises(ValueError, match="greater than 0"):
        DeliverySettings.model_validate({"EOM_ANSWER_LINK_GRACE_DAYS": "0"})
    assert DeliverySettings().console_url == "http://127.0.0.1:8000"
    assert DeliverySettings().answer_link_grace == DEFAULT_GRACE


# --- the stack hands the worker its console URL and key ---------------------------------


def test_the_stack_hands_the_worker_the_api_url_and_a_lasting_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eom up` gives the worker's delivery settings the URL its API will listen on (the
    port chosen before the worker starts) and the data directory's key (owner-only,
    the same on the next start); what the environment sets wins; all is taken back when
    the stack stops."""
    monkeypatch.setenv("EOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EOM_CONSOLE_URL", raising=False)
    monkeypatch.delenv("EOM_ANSWER_LINK_KEY", raising=False)
    stack = Stack(settings=Settings())

    handed = export_worker_settings(
        stack, Settings.model_validate({"EOM_API_HOST": "0.0.0.0", "EOM_API_PORT": 0})
    )

    delivery = DeliverySettings()
    assert handed.api_port > 0
    assert delivery.console_url == f"http://127.0.0.1:{handed.api_port}"
    key_file = tmp_path / "data" / "answer-link.key"
    assert delivery.answer_link_key is not None
    key = delivery.answer_link_key.get_secret_value()
    assert key == key_file.read_text().strip() and len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert answer_link_key(tmp_path / "data") == key
    stack.stop()
    assert "EOM_CONSOLE_URL" not in os.environ and "EOM_ANSWER_LINK_KEY" not in os.environ

    monkeypatch.setenv("EOM_CONSOLE_URL", CONSOLE)
    again = Stack(settings=Settings())
    kept = export_worker_settings(again, Settings.model_validate({"EOM_API_PORT": 0}))
    assert kept.api_port == 0 and DeliverySettings().console_url == CONSOLE
    again.stop()
    assert os.environ["EOM_CONSOLE_URL"] == CONSOLE


# --- through the mission's workflow -----------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within}s"
        await asyncio.sleep(0.2)


async def test_the_seed_missions_requests_carry_links_to_their_own_request(
    client: Client, store: EventStore, sink: SmtpSink
) -> None:
    """The seed mission run by its workflow, nominations requested and follow-up cycles
    every few seconds: each nomination request and evidence request e-mailed to a focal
    point holds a link to that state's request (of that cycle); once the record holds
    the answers, the nomination links count as used."""
    organisation = f"Links Council {uuid.uuid4().hex[:8]}"
    directory = MemberStateDirectory(store.pool)
    for entry in seed.contacts():
        await directory.upsert(entry.model_copy(update={"organisation": organisation}))
    task_queue = f"eom-links-{uuid.uuid4().hex[:8]}"
    timing = MissionTiming(
        delivery_retry_seconds=0.5,
        delivery_attempts=4,
        follow_up_interval_seconds=2.0,
        evidence_window_seconds=3600.0,
    )
    missions = Missions(client=client, store=store, task_queue=task_queue, timing=timing)
    mission = mission_id()
    commands = seed.mission(
        mission,
        nominations=c.RequestNominations(deadline=datetime.now(UTC) + timedelta(hours=1)),
    )
    commands[0] = commands[0].model_copy(update={"organisation": organisation})
    links = AnswerLinks(store.pool)

    def mails(kind: str) -> list[tuple[str, str]]:
        """(message id, body) of each e-mail of ``kind`` for this mission."""
        found = []
        for mail in sink.messages():
            message_id = str(mail["Message-ID"]).strip("<>").removesuffix("@eom")
            if message_id.startswith(f"{mission}.{kind}."):
                found.append((message_id, plain(mail)))
        return found

    async with build_worker(
        client, store, task_queue, delivery=settings(sink.port, answer_link_grace_days=1)
    ):
        await missions.execute(mission, commands[0], actor="coordinator:test")
        await missions.execute(mission, commands[1], actor="coordinator:test")
        await missions.execute(mission, commands[2], actor="coordinator:test")

        async def asked_everyone() -> bool:
            return len(mails("nomination")) == len(seed.MEMBER_STATES)

        await eventually(asked_everyone)
        requests = mails("nomination")
        for message_id, body in requests:
            link = await links.resolve(secrets_in(body)[0])
            code = message_id.split(".")[-2]
            assert (link.mission_id, link.recipient, link.kind, link.cycle) == (
                mission,
                code,
                DeadlineKind.nomination,
                0,
            )
            assert not answered(await missions.state(mission), link)

        for command in commands[3:]:
            await missions.execute(mission, command, actor="coordinator:test")

        async def two_cycles_asked() -> bool:
            return len({m.split(".")[-3] for m, _ in mails("evidence")}) >= 2

        await eventually(two_cycles_asked)
        await missions.execute(mission, c.EndFollowUp(reason="test over"), actor="c:test")

    state = await missions.state(mission)
    for _, body in requests:
        link = await links.resolve(secrets_in(body)[0])
        with pytest.raises(LinkRefused, match="reused"):
            ensure_open(state, link)
    for message_id, body in mails("evidence"):
        link = await links.resolve(secrets_in(body)[0])
        _, cycle, recipient, _ = message_id.removeprefix(f"{mission}.").split(".")
        assert (link.kind, link.cycle, link.recipient) == (
            DeadlineKind.evidence,
            int(cycle),
            recipient,
        )
        assert not answered(state, link)
