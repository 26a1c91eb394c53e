"""``eom audit export``: the raw record (jsonl, csv) matches the store event for event, and
the readable report (md, html, pdf) carries the seed mission's facts with their provenance,
escapes what the record says, and states the chain's verdict."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from auditreport import render as export
from auditreport.export import ExportFormat
from auditreport.model import build_report
from auditreport.render import COLUMNS, MissingGlyphs, to_pdf
from cli import seed
from cli.commands import InputError
from cli.export import export_mission, output_path
from cli.services import NotRunning
from domain import Mission, decide, fold
from domain import commands as c
from domain.commands import Command
from domain.values import DeadlineKind, DeliveryPurpose, EvidenceItem, Rating, StakeholderType
from eventstore.models import EventMetadata, NewEvent, RecordedEvent
from eventstore.store import EventStore

HOSTILE_SUMMARY = "<script>alert('eom')</script> & more"


@dataclass
class Seeded:
    mission_id: str
    events: list[RecordedEvent]
    state: Mission


def _with_extra_meeting(commands: list[Command], meeting: c.RecordMeeting) -> list[Command]:
    opening = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    return [*commands[:opening], meeting, *commands[opening:]]


async def record(store: EventStore, mission_id: str, commands: list[Command]) -> Seeded:
    """Decide and append each command as the workflow would, without Temporal; unlike
    ``builders.record`` with the workflow's full metadata (the approval in the head of
    mission's name) and the published statement's history fingerprint."""
    state = Mission()
    now = datetime(2021, 1, 5, 9, 0, tzinfo=UTC)
    head_hash: str | None = None
    for n, command in enumerate(commands):
        if isinstance(command, c.PublishStatement):
            command = command.model_copy(update={"history_fingerprint": head_hash})
        now += timedelta(minutes=5)
        events = decide(state, command, now=now)
        if not events:  # polling stations: the intake's, not the mission stream's
            continue
        actor = (
            f"head_of_mission:{seed.HEAD_OF_MISSION}@{mission_id}"
            if isinstance(command, c.ApproveStatement)
            else "coordinator:TC Secretariat@Turkic Council"
        )
        command_id = f"{mission_id}-cmd-{n}"
        result = await store.append(
            stream_id=mission_id,
            expected_version=state.version,
            events=[
                NewEvent.of(
                    e,
                    event_id=uuid.uuid4(),
                    occurred_at=now,
                    metadata=EventMetadata(
                        actor=actor,
                        command_id=command_id,
                        command_type=command.type,
                        correlation_id=f"corr-{n}",
                        causation_id=command_id,
                        workflow_id=f"mission-{mission_id}",
                        run_id="run-1",
                    ),
                )
                for e in events
            ],
        )
        head_hash = result.head_hash
        state = fold(events, state)
    return Seeded(mission_id, await store.read_stream(mission_id), state)


@pytest_asyncio.fixture
async def seeded(store: EventStore) -> AsyncIterator[Seeded]:
    """The seed mission, registration to closure, plus one meeting whose text is hostile."""
    mission_id = f"export-{uuid.uuid4().hex[:8]}"
    hostile = c.RecordMeeting(
        meeting_id="hostile-ngo",
        stakeholder_type=StakeholderType.civil_society,
        stakeholder_name="<b>Watchdog</b> | NGO",
        held_on=date(2021, 1, 8),
        participants=[seed.HEAD_OF_MISSION],
        topics=["observer access"],
        summary=HOSTILE_SUMMARY,
    )
    yield await record(store, mission_id, _with_extra_meeting(seed.mission(mission_id), hostile))


async def exported(store: EventStore, mission_id: str, fmt: ExportFormat) -> str:
    data, _ = await export_mission(store, mission_id, fmt)
    return data.decode("utf-8")


def version_of(events: list[RecordedEvent], event_type: str) -> list[int]:
    return [e.stream_version for e in events if e.event_type == event_type]


async def test_jsonl_matches_the_events_one_to_one(store: EventStore, seeded: Seeded) -> None:
    """One JSON line per stored event, in order, with every column and all metadata."""
    text = await exported(store, seeded.mission_id, ExportFormat.jsonl)
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == len(seeded.events) > 50
    for line, event in zip(lines, seeded.events, strict=True):
        assert list(line) == list(COLUMNS)
        assert line["global_position"] == event.global_position
        assert line["stream_version"] == event.stream_version
        assert line["event_id"] == str(event.event_id)
        assert line["type"] == event.event_type
        assert line["schema_version"] == event.schema_version
        assert datetime.fromisoformat(line["occurred_at"]) == event.occurred_at
        assert datetime.fromisoformat(line["recorded_at"]) == event.recorded_at
        assert EventMetadata.model_validate({k: line[k] for k in EventMetadata.model_fields}) == (
            event.metadata
        )
        assert (line["previous_hash"], line["hash"]) == (event.previous_hash, event.hash)
        assert line["data"] == event.data
    approval = next(x for x in lines if x["type"] == "StatementApproved")
    assert approval["actor"] == f"head_of_mission:Ömer Kocaman@{seeded.mission_id}"
    assert approval["command_type"] == "approve_statement"
    assert approval["workflow_id"] == f"mission-{seeded.mission_id}"


async def test_csv_has_one_row_per_event(store: EventStore, seeded: Seeded) -> None:
    """The csv module reads back a header of every column and one row per event, data as JSON."""
    text = await exported(store, seeded.mission_id, ExportFormat.csv)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert len(rows) == len(seeded.events)
    for row, event in zip(rows, seeded.events, strict=True):
        assert int(row["stream_version"]) == event.stream_version
        assert row["event_id"] == str(event.event_id)
        assert row["hash"] == event.hash
        assert row["command_id"] == event.metadata.command_id
        assert json.loads(row["data"]) == event.data


async def test_the_report_cites_the_events_behind_each_figure(
    store: EventStore, seeded: Seeded
) -> None:
    """Coverage, findings, statement and recommendations name the versions they rest on."""
    events = seeded.events
    report = build_report(seeded.state, events, await store.verify_stream(seeded.mission_id))
    visits = version_of(events, "StationVisitRecorded")
    assert report.coverage.stations_visited.value == 14
    assert report.coverage.stations_visited.versions == visits
    assert [(x.locality, len(x.stations)) for x in report.coverage.localities] == [
        ("Nur-Sultan", 14)
    ]
    ramps = next(f for f in report.findings if f.category.value == "accessibility")
    assert (ramps.count, ramps.assessment.value) == (4, "concern")
    assert len(ramps.versions) == 4 and set(ramps.versions) <= set(visits)
    publication = report.statement.publication
    assert publication is not None
    assert publication.versions == version_of(events, "StatementPublished")
    assert publication.published_on == date(2021, 1, 11)
    assert publication.fingerprint_matches and publication.matches_approval
    assert report.statement.approval and report.statement.approval.approved_by == "Ömer Kocaman"
    issued = version_of(events, "RecommendationsIssued")
    acknowledged = version_of(events, "RecommendationsAcknowledged")
    assert [r.id for r in report.recommendations] == ["R1", "R2", "R3"]
    for rec in report.recommendations:
        assert rec.versions == issued
        assert sorted(d.acknowledged_version for d in rec.deliveries if d.acknowledged_version) == (
            acknowledged
        )
    assert report.chain.ok and report.chain.head_hash == events[-1].hash


def follow_up_commands(mission_id: str) -> list[Command]:
    """The seed with the member states asked for observers (one reminded, one unreachable
    and escalated) and a first evidence cycle after closure, with two ratings of R1."""
    deadline = datetime(2021, 1, 6, 12, tzinfo=UTC)
    commands = seed.mission(mission_id, nominations=c.RequestNominations(deadline=deadline))
    asked = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.RequestNominations))
    nomination = DeadlineKind.nomination
    deliveries: list[Command] = [
        c.RecordDelivery(
            kind=nomination,
            member_state="AZ",
            purpose=DeliveryPurpose.request,
            step=0,
            message_id="msg-az-0",
            delivered=True,
            channel="email",
            address="focal-point.az@mfa.example.org",
        ),
        c.RecordDelivery(
            kind=nomination,
            member_state="KG",
            purpose=DeliveryPurpose.request,
            step=0,
            message_id="msg-kg-0",
            delivered=False,
            error="550 mailbox unavailable",
        ),
        c.RecordDelivery(
            kind=nomination,
            member_state="KG",
            purpose=DeliveryPurpose.escalation,
            step=1,
            message_id="msg-kg-esc",
            delivered=True,
            channel="email",
            address="secretariat@turkic-council.example.org",
        ),
    ]
    follow_up: list[Command] = [
        c.RequestEvidence(cycle=1, member_states=["KZ"], deadline=datetime(2021, 7, 1, tzinfo=UTC)),
        c.SubmitEvidence(
            member_state="KZ",
            cycle=1,
            evidence=[EvidenceItem(recommendation_id="R1", text="Ramps at 40% of stations")],
        ),
        c.RateImplementation(
            recommendation_id="R1",
            rating=Rating.partially,
            rated_on=date(2021, 7, 15),
            basis="Ramps at 40% of stations",
        ),
        c.RateImplementation(
            recommendation_id="R1",
            rating=Rating.mostly,
            rated_on=date(2022, 1, 15),
            basis="Ramps at 85% of stations",
        ),
    ]
    return [*commands[: asked + 1], *deliveries, *commands[asked + 1 :], *follow_up]


async def test_reminders_and_follow_up_carry_their_versions(store: EventStore) -> None:
    """Requests, failures, escalations, evidence and every rating (earlier ones kept) are
    reported with the versions of their events, in every readable format."""
    mission_id = f"export-{uuid.uuid4().hex[:8]}"
    seeded = await record(store, mission_id, follow_up_commands(mission_id))
    events = seeded.events
    report = build_report(seeded.state, events, await store.verify_stream(mission_id))
    reminders = report.reminders
    assert reminders.requests.versions == version_of(events, "ReminderSent")
    assert reminders.failures.versions == version_of(events, "DeliveryFailed")
    assert reminders.escalations.versions == version_of(events, "DeadlineEscalated")
    counts = [f.value for f in (reminders.requests, reminders.failures, reminders.escalations)]
    assert counts == [1, 1, 1]
    assert [(d.kind, d.version) for d in reminders.deadlines] == [
        (DeadlineKind.nomination, *version_of(events, "NominationsRequested")),
        (DeadlineKind.evidence, *version_of(events, "EvidenceRequested")),
    ]
    kg = next(t for t in reminders.tracks if t.member_state == "KG")
    assert (kg.failures, kg.escalated, kg.answered) == (1, True, True)
    failed, escalated = (
        version_of(events, "DeliveryFailed"),
        version_of(events, "DeadlineEscalated"),
    )
    assert kg.versions == failed + escalated
    r1 = next(r for r in report.recommendations if r.id == "R1")
    assert [(x.rating, x.version) for x in r1.ratings] == list(
        zip(["partially", "mostly"], version_of(events, "ImplementationRated"), strict=True)
    )
    assert [(x.member_state, x.version) for x in r1.evidence] == [
        ("KZ", version_of(events, "EvidenceSubmitted")[0])
    ]
    markdown = await exported(store, mission_id, ExportFormat.md)
    html = await exported(store, mission_id, ExportFormat.html)
    for text in (markdown, html):
        assert "Ramps at 85% of stations" in text and "550 mailbox unavailable" in text
        assert "deadlines escalated" in text
    data, _ = await export_mission(store, mission_id, ExportFormat.pdf)
    assert data.startswith(b"%PDF-")


async def test_markdown_carries_the_record(store: EventStore, seeded: Seeded) -> None:
    """Markdown has the coverage, the publication date, R1–R3 with their versions, the
    timeline, and hostile text escaped out of markup."""
    text = await exported(store, seeded.mission_id, ExportFormat.md)
    issued = version_of(seeded.events, "RecommendationsIssued")[0]
    assert "14 polling stations in Nur-Sultan" in text
    assert "on 2021-01-11, press conference, Nur-Sultan" in text
    for rec in ("R1", "R2", "R3"):
        assert re.search(rf"^### {rec} \(.*issued v{issued}\)$", text, re.MULTILINE), rec
    assert "## Timeline" in text
    for event in seeded.events:
        assert f"| {event.stream_version} | " in text
    assert "Hash chain unbroken" in text
    assert "<script>" not in text and r"\<script\>" in text
    assert r"\<b\>Watchdog\</b\> \| NGO" in text


async def test_html_carries_the_record_and_escapes_it(store: EventStore, seeded: Seeded) -> None:
    """The HTML page has the same facts, a timeline row per event, no external asset, and
    the hostile meeting summary as escaped text."""
    text = await exported(store, seeded.mission_id, ExportFormat.html)
    issued = version_of(seeded.events, "RecommendationsIssued")[0]
    assert "14 polling stations in Nur-Sultan" in text
    assert "2021-01-11" in text and "Ömer Kocaman" in text
    for rec in ("R1", "R2", "R3"):
        assert re.search(rf"<h3>{rec}\b.*?issued v{issued}</span></h3>", text, re.DOTALL), rec
    for event in seeded.events:
        assert f'<tr id="v{event.stream_version}">' in text
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#39;eom&#39;)&lt;/script&gt; &amp; more" in text
    assert "&lt;b&gt;Watchdog&lt;/b&gt;" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)


async def test_pdf_is_a_pdf_with_the_report_and_the_timeline(
    store: EventStore, seeded: Seeded
) -> None:
    """The PDF is a PDF; its text has the head of mission's name intact, every section and
    the timeline."""
    data, _ = await export_mission(store, seeded.mission_id, ExportFormat.pdf)
    assert data.startswith(b"%PDF-")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF's text is not checked")
    process = await asyncio.create_subprocess_exec(
        pdftotext,
        "-layout",
        "-",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(data)
    assert process.returncode == 0
    text = out.decode("utf-8")
    assert "Ömer Kocaman" in text
    for heading in ("Mission", "Participants", "Meetings", "Coverage", "Findings"):
        assert re.search(rf"^\s*{heading}\s*$", text, re.MULTILINE), heading
    assert "14 polling stations in Nur-Sultan" in text
    assert "Timeline" in text and "RecommendationsIssued" in text and "MissionClosed" in text
    assert "Hash chain unbroken" in text


async def test_a_broken_chain_is_the_reports_verdict(store: EventStore, seeded: Seeded) -> None:
    """An event changed behind the triggers makes every readable format say BROKEN."""
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"someone else\"') "
            "WHERE stream_id = $1 AND stream_version = 3",
            seeded.mission_id,
        )
    markdown = await exported(store, seeded.mission_id, ExportFormat.md)
    html = await exported(store, seeded.mission_id, ExportFormat.html)
    assert "Hash chain BROKEN: v3 changed" in markdown
    assert 'class="verdict bad"' in html and "v3 changed" in html


async def test_a_character_the_font_lacks_is_an_error(store: EventStore) -> None:
    """A glyph the PDF font cannot draw is named in an error, not dropped from the page."""
    mission_id = f"export-{uuid.uuid4().hex[:8]}"
    odd = c.RecordMeeting(
        meeting_id="odd",
        stakeholder_type=StakeholderType.media,
        stakeholder_name="Unassigned \u0378 code point",
        held_on=date(2021, 1, 8),
        participants=["someone"],
        topics=["glyphs"],
        summary="A character no font draws.",
    )
    seeded = await record(store, mission_id, _with_extra_meeting(seed.mission(mission_id), odd))
    report = build_report(seeded.state, seeded.events, await store.verify_stream(seeded.mission_id))
    with pytest.raises(MissingGlyphs, match="U\\+0378"):
        to_pdf(report, seeded.events)
    with pytest.raises(InputError, match="U\\+0378"):
        await export_mission(store, mission_id, ExportFormat.pdf)


def test_no_unicode_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without a Unicode TTF on the machine or in matplotlib, the error names what to install."""
    monkeypatch.setattr(export, "_FONT_DIRS", (tmp_path,))
    monkeypatch.setattr(export, "_matplotlib_fonts", lambda: None)
    export.find_font.cache_clear()
    try:
        with pytest.raises(export.FontNotFound, match=r"DejaVuSans\.ttf.*fonts-dejavu-core"):
            export.find_font()
    finally:
        export.find_font.cache_clear()


async def test_an_unknown_mission_is_not_running(store: EventStore) -> None:
    """Exporting a mission the store has never seen is the 'not there' error, in any format."""
    for fmt in (ExportFormat.jsonl, ExportFormat.html):
        with pytest.raises(NotRunning, match="no mission 'no-such-mission'"):
            await export_mission(store, "no-such-mission", fmt)


async def test_a_stream_that_is_no_mission_exports_raw_only(store: EventStore) -> None:
    """A stream eom cannot fold still exports as jsonl; a report on it is refused as input."""
    stream_id = f"export-raw-{uuid.uuid4().hex[:8]}"
    await store.append(
        stream_id=stream_id,
        expected_version=0,
        events=[
            NewEvent(
                event_id=uuid.uuid4(),
                event_type="Noted",
                schema_version=1,
                data={"type": "Noted", "text": "Nur-Sultan — Ömer"},
                occurred_at=datetime(2021, 1, 10, tzinfo=UTC),
            )
        ],
    )
    line = json.loads(await exported(store, stream_id, ExportFormat.jsonl))
    assert line["data"]["text"] == "Nur-Sultan — Ömer"
    with pytest.raises(InputError, match="cannot be read as a mission"):
        await export_mission(store, stream_id, ExportFormat.md)


def test_where_each_format_goes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every format goes to stdout unless --output names a file ('-' is stdout too);
    nothing is written in the current directory unasked; bad paths are refused."""
    monkeypatch.chdir(tmp_path)
    for fmt in ExportFormat:
        assert output_path("m-1", fmt, None) is None
        assert output_path("m-1", fmt, Path("-")) is None
    assert output_path("m-1", ExportFormat.md, Path("r.md")) == Path("r.md")
    assert output_path("m-1", ExportFormat.pdf, tmp_path / "r.pdf") == tmp_path / "r.pdf"
    with pytest.raises(InputError, match="is a directory"):
        output_path("m-1", ExportFormat.csv, tmp_path)
    with pytest.raises(InputError, match="no directory"):
        output_path("m-1", ExportFormat.csv, tmp_path / "missing" / "r.csv")


async def test_the_command_writes_files_and_stdout(
    seeded: Seeded, database_url: str, tmp_path: Path
) -> None:
    """Run as a process: html and pdf go to stdout when it is a pipe, and a file is written
    only where -o names one (announced on stderr); jsonl on stdout; an unknown mission
    fails with the store's answer. Nothing is left in the current directory."""
    env = {**os.environ, "DATABASE_URL": database_url, "EOM_DATA_DIR": str(tmp_path / "data")}
    program = "import typer; from cli.export import export_command; typer.run(export_command)"

    async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", program, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )

    html = await run(seeded.mission_id, "--format", "html")
    assert html.returncode == 0, html.stderr.decode()
    assert "14 polling stations in Nur-Sultan" in html.stdout.decode()
    pdf = await run(seeded.mission_id, "--format", "pdf")
    assert pdf.returncode == 0, pdf.stderr.decode()
    assert pdf.stdout.startswith(b"%PDF-")
    written = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert written == [], "nothing written unasked"

    named = await run(seeded.mission_id, "--format", "html", "-o", "report.html")
    assert named.returncode == 0, named.stderr.decode()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "14 polling stations in Nur-Sultan" in page and not named.stdout
    assert f"{len(seeded.events)} events, html written to report.html" in named.stderr.decode()

    jsonl = await run(seeded.mission_id, "-f", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr.decode()
    assert [json.loads(x)["hash"] for x in jsonl.stdout.decode().splitlines()] == [
        e.hash for e in seeded.events
    ]

    missing = await run("no-such-mission", "--format", "md")
    assert missing.returncode != 0
    assert "no mission 'no-such-mission' in the event store" in missing.stderr.decode()
    written = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
    assert not [name for name in written if name.startswith("no-such-mission")]


async def test_a_pdf_is_not_written_to_a_terminal(
    seeded: Seeded, database_url: str, tmp_path: Path
) -> None:
    """`eom audit export --format pdf` with a terminal for stdout and no -o: one line
    naming -o, exit 2, no file anywhere, no byte of PDF on the terminal."""
    env = {**os.environ, "DATABASE_URL": database_url, "EOM_DATA_DIR": str(tmp_path / "data")}
    terminal, side = pty.openpty()
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli.main", "audit", "export", seeded.mission_id, "-f", "pdf"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=side,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        os.set_blocking(terminal, False)
        try:
            shown = os.read(terminal, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(side)
        os.close(terminal)
    error = done.stderr.decode()
    assert done.returncode == 2, error
    assert error.strip() == (
        f"error: not writing a PDF to the terminal: give -o {seeded.mission_id}.pdf (or "
        "another file), or redirect stdout"
    )
    assert b"%PDF" not in shown
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("*.pdf")))
