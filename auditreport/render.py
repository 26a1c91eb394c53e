"""Laying out the auditor's report: the raw record (jsonl, csv), the timeline, markdown,
html (a Jinja2 template in this package) and pdf (fpdf2). Renderers only lay the report
out; what it says is ``auditreport.model``'s.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout, XPos, YPos
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError

from auditreport.model import (
    AuditReport,
    ConflictEntry,
    Figure,
    FindingCount,
    LocalityCoverage,
    RecommendationEntry,
    ReportModel,
    VisitEntry,
)
from domain import events as ev
from domain import load_event
from domain.events import Event
from domain.host_time import local, localized
from eventstore.models import RecordedEvent

# -- the raw record: jsonl and csv -----------------------------------------------------------

COLUMNS = (
    "global_position",
    "transaction_id",
    "stream_id",
    "stream_version",
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "actor",
    "command_id",
    "command_type",
    "correlation_id",
    "causation_id",
    "workflow_id",
    "run_id",
    "previous_hash",
    "hash",
    "data",
)
"""The export's columns: every stored column of an event, its metadata flattened."""


def event_row(event: RecordedEvent) -> dict[str, Any]:
    """One event as the export's flat row; ``data`` stays as stored (not upcast), because
    the raw record is what the hash covers."""
    meta = event.metadata
    return {
        "global_position": event.global_position,
        "transaction_id": event.transaction_id,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_id": str(event.event_id),
        "type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "actor": meta.actor,
        "command_id": meta.command_id,
        "command_type": meta.command_type,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "workflow_id": meta.workflow_id,
        "run_id": meta.run_id,
        "previous_hash": event.previous_hash,
        "hash": event.hash,
        "data": event.data,
    }


def to_jsonl(events: Sequence[RecordedEvent]) -> str:
    """One JSON object per line, one line per event, in stream order."""
    return "".join(
        json.dumps(event_row(e), ensure_ascii=False, separators=(",", ":")) + "\n" for e in events
    )


def to_csv(events: Sequence[RecordedEvent]) -> str:
    """The same rows as ``to_jsonl``, ``data`` as JSON text; empty cells for absent metadata."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for event in events:
        row = event_row(event)
        row["data"] = json.dumps(row["data"], ensure_ascii=False)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buffer.getvalue()


# -- the timeline --------------------------------------------------------------------------


class TimelineRow(ReportModel):
    version: int
    occurred_at: str
    recorded_at: str
    event: str
    actor: str
    summary: str
    hash: str


def timeline(events: Sequence[RecordedEvent], time_zone: str | None = None) -> list[TimelineRow]:
    """One row per event, with what a person needs to recognise it; times in
    ``time_zone`` (the host's), with their offset."""
    return [
        TimelineRow(
            version=e.stream_version,
            occurred_at=_time(local(e.occurred_at, time_zone)),
            recorded_at=_time(local(e.recorded_at, time_zone)),
            event=e.event_type,
            actor=e.metadata.actor or "",
            summary=summarize(e, time_zone),
            hash=e.hash,
        )
        for e in events
    ]


def summarize(recorded: RecordedEvent, time_zone: str | None = None) -> str:
    """A line saying what one event recorded, its instants in ``time_zone`` (the host's)
    with their offset; the raw data when it cannot be read."""
    try:
        event = load_event(recorded.data)
    except (ValueError, ValidationError):
        return json.dumps(recorded.data, ensure_ascii=False, sort_keys=True)[:200]
    return _summary(localized(event, time_zone))


def _summary(event: Event) -> str:
    match event:
        case ev.InvitationRegistered():
            return (
                f"{event.organisation}, invited by {event.inviting_authority} "
                f"({event.host_country}); election day {event.election.date}"
            )
        case ev.NeedsAssessmentRecorded():
            return f"conducted {event.conducted_on}: {event.summary}"
        case ev.HeadOfMissionAppointed():
            return f"{event.name}, {event.title}"
        case ev.ObserverNominated():
            return f"{event.name} ({event.member_state}, {event.role.value}) as {event.observer_id}"
        case ev.ObserverAccepted():
            return event.observer_id
        case ev.ObserverWithdrawn():
            return f"{event.observer_id}: {event.reason}"
        case ev.TeamFormed():
            area = f" in {event.area}" if event.area else ""
            return f"{event.team_id}: {', '.join(event.observer_ids)}{area}"
        case ev.MissionDeployed():
            return f"deployed on {event.deployed_on}"
        case ev.MeetingRecorded():
            return f"{event.held_on}, {event.stakeholder_name} ({event.stakeholder_type.value})"
        case ev.InterimReportPublished() | ev.FinalReportPublished():
            return f"{event.report_id} published on {event.published_on}"
        case ev.ElectionDayOpened():
            return f"opened at {_time(event.opened_at)}"
        case ev.StationVisitRecorded():
            return (
                f"{event.station_id} in {event.locality} by {event.team_id}, "
                f"{event.arrived_at:%H:%M}–{event.departed_at:%H:%M}; "
                f"{len(event.findings)} findings"
            )
        case ev.StationReportsConflicted():
            return (
                f"{event.station_id}: visits {', '.join(event.visit_ids)} "
                f"by {', '.join(event.team_ids)}"
            )
        case ev.ElectionDayClosed():
            return f"{event.stations_visited} stations, {event.visits} visits"
        case ev.StatementDrafted():
            return f"{event.draft_id}, sha256 {event.text_sha256[:16]}…"
        case ev.StatementApproved():
            return f"{event.draft_id} approved by {event.approved_by}"
        case ev.StatementPublished():
            return f"{event.draft_id} published on {event.published_on}, {event.venue}"
        case ev.RecommendationsIssued():
            return ", ".join(r.id for r in event.recommendations)
        case ev.RecommendationsSent():
            return (
                f"{', '.join(event.recommendation_ids)} to "
                f"{', '.join(r.name for r in event.recipients)} on {event.sent_on}"
            )
        case ev.RecommendationsAcknowledged():
            return f"{event.recipient.name} on {event.acknowledged_on}"
        case ev.NominationsRequested():
            return f"from {', '.join(event.member_states)} by {_time(event.deadline)}"
        case ev.NominationDeclined():
            return f"{event.member_state}: {event.reason}"
        case ev.ReminderSent():
            via = f" via {event.channel}" if event.channel else ""
            return (
                f"{event.kind.value} {event.purpose.value} {event.step} "
                f"to {event.member_state}{via}"
            )
        case ev.DeliveryFailed():
            return (
                f"{event.kind.value} {event.purpose.value} to {event.member_state} "
                f"failed: {event.error}"
            )
        case ev.DeadlineEscalated():
            via = f" via {event.channel}" if event.channel else ""
            return f"{event.kind.value} of {event.member_state} escalated{via}"
        case ev.EvidenceRequested():
            return (
                f"cycle {event.cycle} from {', '.join(event.member_states)} "
                f"by {_time(event.deadline)}"
            )
        case ev.EvidenceSubmitted():
            return f"{event.member_state}, cycle {event.cycle}: {len(event.evidence)} items"
        case ev.ImplementationRated():
            return f"{event.recommendation_id}: {event.rating.value} on {event.rated_on}"
        case ev.ReviewReopened():
            return f"for {event.new_mission_id}: {event.reason}"
        case ev.FollowUpEnded():
            return event.reason
        case ev.ElectionPostponed():
            return f"{event.previous_date} → {event.new_date}: {event.reason}"
        case ev.MissionClosed():
            return event.note or "closed"
        case ev.MissionCancelled():
            return event.reason
    return ""


# -- shared formatting -----------------------------------------------------------------------


def _time(moment: datetime) -> str:
    """To the second, with the UTC offset it carries (the report's instants are in the
    host's time zone); a time without an offset is shown as written."""
    return moment.isoformat(sep=" ", timespec="seconds")


def _minute(moment: datetime) -> str:
    """A station visit's time: to the minute, as observers note it (with its offset)."""
    return moment.isoformat(sep=" ", timespec="minutes")


def cited(item: Figure | VisitEntry | LocalityCoverage | ConflictEntry | FindingCount) -> str:
    """What cites a figure: its mission-stream versions, and the global log positions of
    the intake's reports it rests on (``v3–5; log 120, 133–140``)."""
    parts = [versions_label(item.versions)] if item.versions else []
    if item.positions:
        parts.append("log " + versions_label(item.positions).replace("v", ""))
    return "; ".join(parts) or "—"


def versions_label(versions: Iterable[int]) -> str:
    """``v3, v5–9``: provenance compressed into runs, so that a figure resting on fourteen
    consecutive visits does not need fourteen numbers."""
    ordered = sorted(set(versions))
    if not ordered:
        return "—"
    runs: list[list[int]] = [[ordered[0], ordered[0]]]
    for v in ordered[1:]:
        if v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"v{a}" if a == b else f"v{a}–{b}" for a, b in runs)


def _label(value: str) -> str:
    """An enum value as words: ``secrecy_of_vote`` -> ``secrecy of vote``."""
    return value.replace("_", " ")


def coverage_sentence(report: AuditReport) -> str:
    """The coverage claim a reader must not overstretch, in one sentence."""
    c = report.coverage
    places = ", ".join(x.locality for x in c.localities) or "no locality"
    return (
        f"{c.stations_visited.value} polling stations in {places}: "
        f"{c.visits.value} visits by {c.teams.value} teams"
    )


def chain_sentence(report: AuditReport) -> str:
    chain = report.chain
    if chain.ok:
        return f"Hash chain unbroken over {chain.events} events; head {chain.head_hash}"
    problems = [f"v{b.stream_version} {b.kind}: {b.problem}" for b in chain.breaks]
    return "Hash chain BROKEN: " + "; ".join(problems + chain.fingerprint_problems)


def _yes_no(value: bool | None) -> str:
    """An integrity check's answer: a failed one shouts."""
    return "—" if value is None else "yes" if value else "NO"


def _flag(value: bool) -> str:
    return "yes" if value else "no"


# -- markdown --------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|#]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
"""What Markdown could read as markup or raw HTML; an underscore inside a word
(``short_term``) is not emphasis, so it stays unescaped and readable."""


def _md(value: object) -> str:
    """Text made inert in Markdown: no markup, no raw HTML, no broken table cell."""
    text = " ".join(str(value).splitlines())
    return _MD_SPECIAL.sub(lambda match: "\\" + match.group(), text)


def _md_table(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = [
        "| " + " | ".join(headings) + " |",
        "|" + "|".join("---" for _ in headings) + "|",
    ]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def to_markdown(report: AuditReport, events: Sequence[RecordedEvent]) -> str:
    """The report as Markdown (GitHub-flavoured tables); every free text escaped."""
    m = report.mission
    out: list[str] = [
        f"# Audit report: {_md(m.mission_id)}",
        "",
        f"{_md(m.organisation)} — {_md(m.election_name)}, {m.election_date}",
        "",
        f"As of version {report.as_of_version}, recorded {_time(report.as_of_recorded_at)}.",
        f"**{_md(chain_sentence(report))}**",
        "",
        "## Mission",
        "",
    ]
    out += _md_table(("field", "value", "provenance"), _mission_rows(report))
    out += ["## Participants", ""]
    head = report.participants.head_of_mission
    if head:
        out += [
            f"Head of mission: {_md(head.name)}, {_md(head.title)} "
            f"({versions_label(head.versions)})",
            "",
        ]
    out += [f"### Observers ({report.participants.accepted.value} accepted)", ""]
    out += _md_table(
        ("id", "name", "state", "role", "status", "provenance"),
        _observer_rows(report),
    )
    out += ["### Teams", ""]
    out += _md_table(("team", "area", "members", "active", "provenance"), _team_rows(report))
    if report.participants.declined:
        out += ["### Declined to nominate", ""]
        out += _md_table(
            ("state", "reason", "provenance"),
            [
                (d.member_state, d.reason, versions_label(d.versions))
                for d in report.participants.declined
            ],
        )
    out += ["## Meetings", ""]
    out += _md_table(
        ("date", "stakeholder", "type", "topics", "summary", "provenance"), _meeting_rows(report)
    )
    out += ["## Coverage", "", f"{_md(coverage_sentence(report))}.", ""]
    out += _md_table(("figure", "value", "provenance"), _coverage_rows(report))
    out += _md_table(
        ("station", "locality", "team", "arrived", "departed", "phases", "concerns", "provenance"),
        _visit_rows(report),
    )
    out += ["## Findings", ""]
    out += _md_table(
        ("category", "assessment", "findings", "stations", "provenance"), _finding_rows(report)
    )
    out += ["## Statement", ""]
    out += _md_table(("step", "details", "provenance"), _statement_rows(report))
    draft = report.statement.published_draft
    if draft is not None:
        out += [f"### {_md(draft.title)}", ""]
        out += [f"> {_md(p)}" if p.strip() else ">" for p in draft.text.splitlines()]
        out += [""]
        if draft.figures:
            out += ["Figures the draft cites (observation forms):", ""]
            out += _md_table(FIGURE_COLUMNS, _figure_rows(report))
    out += ["## Recommendations", ""]
    for rec in report.recommendations:
        out += [
            f"### {_md(rec.id)} ({_md(_label(rec.priority))}, to {_md(_label(rec.addressee))}; "
            f"issued {versions_label(rec.versions)})",
            "",
            _md(rec.text),
            "",
        ]
        out += _md_table(
            ("recipient", "sent", "acknowledged"),
            _delivery_rows(rec),
        )
        if rec.ratings:
            out += _md_table(
                ("rating", "on", "basis", "provenance"),
                [(_label(r.rating), r.rated_on, r.basis, f"v{r.version}") for r in rec.ratings],
            )
        if rec.evidence:
            out += _md_table(
                ("state", "cycle", "evidence", "provenance"),
                [(e.member_state, e.cycle, e.text, f"v{e.version}") for e in rec.evidence],
            )
    out += ["## Reminders and escalations", ""]
    out += _md_table(("what", "count", "provenance"), _reminder_figure_rows(report))
    if report.reminders.tracks:
        out += _md_table(
            (
                "kind",
                "cycle",
                "state",
                "sent",
                "failures",
                "escalated",
                "answered",
                "provenance",
            ),
            _track_rows(report),
        )
    out += ["## Timeline", ""]
    out += _md_table(
        ("v", "occurred", "event", "actor", "summary"),
        [
            (r.version, r.occurred_at, r.event, r.actor, r.summary)
            for r in timeline(events, report.mission.time_zone)
        ],
    )
    out += ["## Hash chain", "", _md(chain_sentence(report)), ""]
    return "\n".join(out)


# rows shared by the Markdown and PDF renderers (the HTML template reads the report directly)


def _mission_rows(report: AuditReport) -> list[tuple[str, str, str]]:
    m = report.mission
    origin = versions_label(m.versions)
    rows = [
        ("organisation", m.organisation, origin),
        ("host country", m.host_country, origin),
        (
            "time zone",
            m.time_zone + (f" ({m.time_zone_note})" if m.time_zone_note else ""),
            origin,
        ),
        ("invited by", m.inviting_authority, origin),
        ("election", f"{m.election_name} ({m.election_type})", origin),
        ("election day", str(m.election_date), origin),
        ("mission window", f"{m.window_start} to {m.window_end}", origin),
        ("member states", ", ".join(m.member_states), origin),
        ("profile", _label(m.profile), origin),
    ]
    if m.postponements:
        rows.append(("postponements", str(m.postponements), origin))
    rows += [
        (f"stage: {_label(s.stage.value)}", _time(s.occurred_at), f"v{s.version}") for s in m.stages
    ]
    if m.cancellation_reason:
        rows.append(("cancelled", m.cancellation_reason, ""))
    return rows


def _observer_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            o.observer_id,
            o.name,
            o.member_state,
            _label(o.role),
            o.status + (f": {o.withdrawal_reason}" if o.withdrawal_reason else ""),
            versions_label(o.versions),
        )
        for o in report.participants.observers
    ]


def _team_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (t.team_id, t.area or "", "; ".join(t.members), str(t.active), versions_label(t.versions))
        for t in report.participants.teams
    ]


def _meeting_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            str(m.held_on),
            m.stakeholder_name,
            _label(m.stakeholder_type),
            ", ".join(m.topics),
            m.summary,
            versions_label(m.versions),
        )
        for m in report.meetings
    ]


def _coverage_rows(report: AuditReport) -> list[tuple[str, ...]]:
    c = report.coverage
    rows: list[tuple[str, ...]] = [
        ("polling stations visited", str(c.stations_visited.value), cited(c.stations_visited)),
        ("visits", str(c.visits.value), cited(c.visits)),
        ("teams that visited", str(c.teams.value), cited(c.teams)),
    ]
    rows += [(f"stations in {x.locality}", str(len(x.stations)), cited(x)) for x in c.localities]
    rows += [
        (
            f"conflicting reports at {x.station_id}",
            f"{', '.join(x.visit_ids)} by {', '.join(x.team_ids)}",
            cited(x),
        )
        for x in c.conflicting_stations
    ]
    if not c.conflicting_stations:
        rows.append(("conflicting reports", "none", "—"))
    return rows


def _visit_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            v.station_id,
            v.locality,
            v.team_id,
            _minute(v.arrived_at),
            _minute(v.departed_at),
            ", ".join(v.phases),
            str(v.concerns),
            cited(v),
        )
        for v in report.coverage.visit_list
    ]


def _finding_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            _label(f.category.value),
            f.assessment.value,
            str(f.count),
            str(f.stations),
            cited(f),
        )
        for f in report.findings
    ]


FIGURE_COLUMNS = ("figure", "stations / asked", "as of", "counted again", "events")


def _figure_rows(report: AuditReport) -> list[tuple[str, str, str, str, str]]:
    """The published (else latest) draft's cited figures of the observation forms, each
    with what counting the log again up to the same position gives."""
    draft = report.statement.published_draft
    rows = []
    for f in draft.figures if draft else []:
        answer = f" = {f.answer}" if f.answer is not None else " (answered)"
        again = (
            "not counted"
            if f.matches is None
            else "same"
            if f.matches
            else f"DIFFERS: {f.recounted_stations} / {f.recounted_asked}"
        )
        rows.append(
            (
                f"{f.form_id}/{f.question}{answer} [{f.scope}]",
                f"{f.stations} / {f.asked} ({f.share:.0%})",
                f"position {f.as_of_position}",
                again,
                _positions(f.events),
            )
        )
    return rows


def _positions(positions: list[int], shown: int = 20) -> str:
    text = ", ".join(str(p) for p in positions[:shown])
    return text + (f" (+{len(positions) - shown} more)" if len(positions) > shown else "")


def _statement_rows(report: AuditReport) -> list[tuple[str, str, str]]:
    s = report.statement
    rows = [
        (
            f"drafted ({d.draft_id})",
            f"sha256 {d.text_sha256}; text matches: {_yes_no(d.text_matches_sha256)}; "
            f"claims {d.claimed_stations} stations, {d.claimed_visits} visits in "
            f"{', '.join(d.claimed_localities) or '-'} by {d.claimed_teams} teams",
            versions_label(d.versions),
        )
        for d in s.drafts
    ]
    if s.approval:
        a = s.approval
        rows.append(
            (
                f"approved ({a.draft_id})",
                f"by {a.approved_by} at {_time(a.approved_at)}; sha256 {a.text_sha256}",
                versions_label(a.versions),
            )
        )
    else:
        rows.append(("approved", "not yet", ""))
    if s.publication:
        p = s.publication
        fingerprint = (
            f"history fingerprint {p.history_fingerprint} "
            f"(matches the history: {_yes_no(p.fingerprint_matches)})"
            if p.history_fingerprint
            else "no history fingerprint recorded"
        )
        rows.append(
            (
                f"published ({p.draft_id})",
                f"on {p.published_on}, {p.venue}; sha256 {p.text_sha256} "
                f"(the approved text: {_yes_no(p.matches_approval)}); {fingerprint}",
                versions_label(p.versions),
            )
        )
    else:
        rows.append(("published", "not yet", ""))
    return rows


def _delivery_rows(rec: RecommendationEntry) -> list[tuple[str, str, str]]:
    return [
        (
            f"{d.recipient} ({_label(d.recipient_kind)})",
            f"{d.sent_on} (v{d.sent_version})",
            f"{d.acknowledged_on} (v{d.acknowledged_version})"
            if d.acknowledged_on
            else "not acknowledged",
        )
        for d in rec.deliveries
    ] or [("not sent", "", "")]


def _reminder_figure_rows(report: AuditReport) -> list[tuple[str, str, str]]:
    r = report.reminders
    figures = [
        ("requests sent", r.requests),
        ("reminders sent", r.reminders),
        ("deliveries failed", r.failures),
        ("deadlines escalated", r.escalations),
    ]
    rows = [(label, str(f.value), versions_label(f.versions)) for label, f in figures]
    return rows + [
        (
            f"{d.kind.value} deadline" + (f" (cycle {d.cycle})" if d.cycle else ""),
            f"{_time(d.deadline)} for {', '.join(d.member_states)}",
            f"v{d.version}",
        )
        for d in r.deadlines
    ]


def _track_rows(report: AuditReport) -> list[tuple[str, ...]]:
    return [
        (
            t.kind.value,
            str(t.cycle or ""),
            t.member_state,
            str(t.sent),
            str(t.failures),
            _flag(t.escalated),
            _flag(t.answered),
            versions_label(t.versions),
        )
        for t in report.reminders.tracks
    ]


# -- html ------------------------------------------------------------------------------------


@functools.cache
def _jinja() -> Environment:
    """The template lives in ``auditreport/report-templates`` (package data; a directory
    name that is not an identifier, so setuptools does not take it for an undeclared
    package)."""
    environment = Environment(
        loader=PackageLoader("auditreport", "report-templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["versions"] = versions_label
    environment.filters["cited"] = cited
    environment.filters["time"] = _time
    environment.filters["minute"] = _minute
    environment.filters["label"] = _label
    environment.filters["flag"] = _flag
    return environment


def to_html(report: AuditReport, events: Sequence[RecordedEvent]) -> str:
    """The report as one self-contained HTML page (inline CSS, no script, no external
    asset); Jinja2 escapes every value, so hostile text in the record stays text."""
    return (
        _jinja()
        .get_template("audit_report.html")
        .render(
            report=report,
            timeline=timeline(events, report.mission.time_zone),
            coverage=coverage_sentence(report),
            chain_line=chain_sentence(report),
            statement_rows=_statement_rows(report),
            figure_rows=_figure_rows(report),
            figure_columns=FIGURE_COLUMNS,
            reminder_rows=_reminder_figure_rows(report),
        )
    )


# -- pdf -------------------------------------------------------------------------------------


class PdfFontError(RuntimeError):
    """The PDF cannot be written faithfully with the fonts at hand."""


class FontNotFound(PdfFontError):
    """No Unicode TrueType font was found on this machine."""


class MissingGlyphs(PdfFontError):
    """The font lacks a character the report needs."""


class FontFiles(ReportModel):
    family: str
    regular: Path
    bold: Path


_FONT_FAMILIES = (
    ("DejaVu Sans", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    ("Noto Sans", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    ("Liberation Sans", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    ("FreeSans", "FreeSans.ttf", "FreeSansBold.ttf"),
)
"""Unicode TrueType families, best first: DejaVu covers every script the seed's languages
(Kazakh, Russian, Turkish, Azerbaijani, Uzbek) are written in."""

_FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
    Path("/Library/Fonts"),
    Path("/System/Library/Fonts"),
)


def _matplotlib_fonts() -> Path | None:
    """matplotlib's bundled DejaVu, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


@functools.cache
def find_font() -> FontFiles:
    """A Unicode TTF for the PDF: the machine's own fonts first, then a font a Python
    package ships. There is no fallback to the PDF core fonts: they are Latin-1 only and
    would silently drop "Ö" from a head of mission's name."""
    for family, regular, bold in _FONT_FAMILIES:
        for directory in _FONT_DIRS:
            if not directory.is_dir():
                continue
            found = next(directory.rglob(regular), None)
            if found is not None:
                heavy = found.with_name(bold)
                return FontFiles(
                    family=family, regular=found, bold=heavy if heavy.is_file() else found
                )
    bundled = _matplotlib_fonts()
    if bundled is not None and (bundled / "DejaVuSans.ttf").is_file():
        heavy = bundled / "DejaVuSans-Bold.ttf"
        return FontFiles(
            family="DejaVu Sans",
            regular=bundled / "DejaVuSans.ttf",
            bold=heavy if heavy.is_file() else bundled / "DejaVuSans.ttf",
        )
    searched = ", ".join(str(d) for d in _FONT_DIRS)
    wanted = ", ".join(r for _, r, _ in _FONT_FAMILIES)
    raise FontNotFound(
        f"no Unicode TrueType font for the PDF: looked for {wanted} under {searched} and in "
        f"matplotlib; install one (Debian/Ubuntu: apt-get install fonts-dejavu-core) or "
        f"export --format html"
    )


_INK = (33, 37, 41)
_MUTED = (100, 110, 120)
_RULE = (200, 205, 210)
_HEAD_FILL = (233, 236, 239)
_OK = (25, 120, 60)
_BAD = (176, 32, 32)


class _ReportPdf(FPDF):
    """A4 portrait with a running footer naming the mission and the page."""

    def __init__(self, font: FontFiles, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.add_font("Report", "", str(font.regular))
        self.add_font("Report", "B", str(font.bold))
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=16)
        self.set_text_color(*_INK)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font("Report", "", 7)
        self.set_text_color(*_MUTED)
        self.cell(0, 4, self.footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 4, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(*_INK)

    def heading(self, text: str, level: int = 0) -> None:
        size = (14, 11)[min(level, 1)]
        if self.get_y() > self.h - 45:  # never strand a heading at the foot of a page
            self.add_page()
        self.ln(3 if level else 5)
        self.start_section(text, level=level)
        self.set_font("Report", "B", size)
        self.multi_cell(0, size * 0.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if level == 0:
            self.set_draw_color(*_RULE)
            self.line(self.l_margin, self.get_y() + 0.5, self.w - self.r_margin, self.get_y() + 0.5)
        self.ln(2)

    def para(self, text: str, *, size: float = 9, bold: bool = False) -> None:
        self.set_font("Report", "B" if bold else "", size)
        self.multi_cell(0, size * 0.48, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def grid(
        self,
        headings: Sequence[str] | None,
        rows: Sequence[Sequence[object]],
        widths: Sequence[float],
        *,
        size: float = 7.5,
    ) -> None:
        """A table that fpdf2 breaks across pages, repeating its headings."""
        self.set_font("Report", "", size)
        self.set_draw_color(*_RULE)
        with self.table(
            col_widths=tuple(widths),
            text_align="LEFT",
            v_align="TOP",
            line_height=size * 0.45,
            padding=(0.8, 1.2),
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            headings_style=FontFace(emphasis="BOLD", fill_color=_HEAD_FILL),
            first_row_as_headings=headings is not None,
            repeat_headings=1,
            width=self.epw,
        ) as table:
            if headings is not None:
                heading_row = table.row()
                for text in headings:
                    heading_row.cell(text)
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(str(value))
        self.ln(3)


def to_pdf(
    report: AuditReport, events: Sequence[RecordedEvent], *, font: FontFiles | None = None
) -> bytes:
    """The report as an A4 PDF with a Unicode TrueType font (``find_font`` unless given).
    A character the font cannot draw is an error naming it, never a silent gap."""
    m = report.mission
    pdf = _ReportPdf(
        font or find_font(),
        f"eom audit report — {m.mission_id} — as of v{report.as_of_version}, "
        f"head {report.chain.head_hash[:16]}",
    )
    pdf.set_title(f"Audit report: {m.mission_id}")
    pdf.set_subject(f"{m.organisation}: {m.election_name}")
    pdf.set_creator("eom audit export")
    pdf.add_page()

    pdf.set_font("Report", "B", 18)
    pdf.multi_cell(
        0, 8, f"Audit report: {m.mission_id}", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.para(f"{m.organisation}\n{m.election_name}, {m.election_date}", size=10)
    pdf.set_text_color(*_MUTED)
    pdf.para(
        f"As of version {report.as_of_version}, recorded {_time(report.as_of_recorded_at)}. "
        "Each figure names the stream versions (v…) of the events it rests on; "
        "the jsonl and csv exports hold those events in full.",
        size=8,
    )
    pdf.set_text_color(*(_OK if report.chain.ok else _BAD))
    pdf.para(chain_sentence(report), size=9, bold=True)
    pdf.set_text_color(*_INK)

    pdf.heading("Mission")
    pdf.grid(None, _mission_rows(report), (38, 117, 25))

    pdf.heading("Participants")
    head = report.participants.head_of_mission
    if head:
        pdf.para(
            f"Head of mission: {head.name}, {head.title} ({versions_label(head.versions)})",
            bold=True,
        )
    pdf.heading(f"Observers ({report.participants.accepted.value} accepted)", 1)
    pdf.grid(
        ("id", "name", "state", "role", "status", "provenance"),
        _observer_rows(report),
        (24, 50, 12, 34, 34, 26),
    )
    pdf.heading("Teams", 1)
    pdf.grid(
        ("team", "area", "members", "active", "provenance"),
        _team_rows(report),
        (18, 25, 99, 13, 25),
    )
    if report.participants.declined:
        pdf.heading("Declined to nominate", 1)
        pdf.grid(
            ("state", "reason", "provenance"),
            [
                (d.member_state, d.reason, versions_label(d.versions))
                for d in report.participants.declined
            ],
            (20, 135, 25),
        )

    pdf.heading("Meetings")
    pdf.grid(
        ("date", "stakeholder", "type", "topics", "summary", "prov."),
        _meeting_rows(report),
        (20, 36, 22, 30, 60, 12),
    )

    pdf.heading("Coverage")
    pdf.para(coverage_sentence(report) + ".", bold=True)
    pdf.grid(("figure", "value", "provenance"), _coverage_rows(report), (70, 70, 40))
    pdf.heading("Station visits", 1)
    pdf.grid(
        ("station", "locality", "team", "arrived", "departed", "phases", "concerns", "prov."),
        _visit_rows(report),
        (16, 22, 14, 27, 27, 30, 16, 28),
    )

    pdf.heading("Findings")
    pdf.grid(
        ("category", "assessment", "findings", "stations", "provenance"),
        _finding_rows(report),
        (50, 30, 20, 20, 60),
    )

    pdf.heading("Statement")
    pdf.grid(("step", "details", "provenance"), _statement_rows(report), (32, 128, 20))
    draft = report.statement.published_draft
    if draft is not None:
        pdf.heading(draft.title, 1)
        pdf.para(draft.text, size=8.5)
        if draft.figures:
            pdf.grid(FIGURE_COLUMNS, _figure_rows(report), (52, 30, 28, 30, 40))

    pdf.heading("Recommendations")
    for rec in report.recommendations:
        pdf.heading(
            f"{rec.id} ({_label(rec.priority)}, to {_label(rec.addressee)}; "
            f"issued {versions_label(rec.versions)})",
            1,
        )
        pdf.para(rec.text)
        pdf.grid(("recipient", "sent", "acknowledged"), _delivery_rows(rec), (70, 55, 55))
        if rec.ratings:
            pdf.grid(
                ("rating", "on", "basis", "prov."),
                [(_label(r.rating), r.rated_on, r.basis, f"v{r.version}") for r in rec.ratings],
                (30, 25, 105, 20),
            )
        if rec.evidence:
            pdf.grid(
                ("state", "cycle", "evidence", "prov."),
                [(e.member_state, e.cycle, e.text, f"v{e.version}") for e in rec.evidence],
                (20, 15, 125, 20),
            )

    pdf.heading("Reminders and escalations")
    pdf.grid(("what", "count", "provenance"), _reminder_figure_rows(report), (50, 90, 40))
    if report.reminders.tracks:
        pdf.grid(
            ("kind", "cycle", "state", "sent", "failures", "escalated", "answered", "prov."),
            _track_rows(report),
            (30, 14, 16, 14, 18, 20, 20, 48),
        )

    pdf.heading("Timeline")
    pdf.grid(
        ("v", "occurred", "event", "actor", "summary"),
        [
            (r.version, r.occurred_at, r.event, r.actor, r.summary)
            for r in timeline(events, report.mission.time_zone)
        ],
        (8, 33, 41, 36, 62),
        size=7,
    )
    pdf.heading("Hash chain")
    pdf.para(chain_sentence(report))

    for key, used in pdf.fonts.items():
        missing = sorted(set(getattr(used, "missing_glyphs", [])))
        if missing:
            chars = ", ".join(f"{chr(c)!r} (U+{c:04X})" for c in missing[:10])
            raise MissingGlyphs(
                f"the PDF font ({key}) has no glyph for {chars}"
                + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                + "; export --format html, which the browser renders with its own fonts"
            )
    return bytes(pdf.output())
