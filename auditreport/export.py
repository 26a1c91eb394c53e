"""A mission's record taken out of the event store, in one of five formats: what the CLI's
``eom audit export``, the API and the console all serve.

``jsonl`` and ``csv`` are the raw record (the mission's stream, then its election-day
streams), each event as stored, so that another tool can recompute the hash chains;
``md``, ``html`` and ``pdf`` are the auditor's report (``auditreport.model``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError

from analysis.figures import Analysis, mission_analysis
from auditreport.model import build_report
from auditreport.render import (
    FontNotFound,
    MissingGlyphs,
    to_csv,
    to_html,
    to_jsonl,
    to_markdown,
    to_pdf,
)
from domain import Mission, fold, load_event
from eventstore.store import EventStore
from intake.visits import intake_events, mission_visits


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    md = "md"
    html = "html"
    pdf = "pdf"

    @property
    def binary(self) -> bool:
        """Formats no terminal can show: refused there unless ``--output`` names a file."""
        return self is ExportFormat.pdf


EXPORT_MEDIA_TYPES: dict[ExportFormat, str] = {
    ExportFormat.jsonl: "application/x-ndjson",
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.md: "text/markdown; charset=utf-8",
    ExportFormat.html: "text/html; charset=utf-8",
    ExportFormat.pdf: "application/pdf",
}
"""What each format is served as (IANA media types)."""


class ExportUnavailable(Exception):
    """The export cannot be made here: no such mission stored, or no font for a PDF."""


class ExportRefused(Exception):
    """The record cannot be laid out as asked (a stream that is not a mission's, a text
    the PDF's fonts cannot show); another format may do."""


async def recounts(store: EventStore, state: Mission) -> dict[int, Analysis]:
    """The analysis of the mission's observation forms at each log position its drafts'
    cited figures were counted at: what the report checks them against."""
    positions = {f.as_of_position for draft in state.drafts.values() for f in draft.figures}
    mission_id = state.mission_id or ""
    return {
        p: await mission_analysis(store, mission_id, through_position=p) for p in sorted(positions)
    }


async def export_mission(store: EventStore, mission: str, fmt: ExportFormat) -> tuple[bytes, int]:
    """The export of ``mission`` in ``fmt`` and the number of events in it. Raises
    ``ExportUnavailable`` or ``ExportRefused``.

    The chain is verified first and the events read up to the head it verified, so the
    verdict printed in a report is about exactly the events the report shows, even while
    the mission keeps recording."""
    check = await store.verify_stream(mission)
    events = await store.read_stream(mission, to_version=check.events if check.ok else None)
    if not events:
        raise ExportUnavailable(f"no mission {mission!r} in the event store")
    if fmt in (ExportFormat.jsonl, ExportFormat.csv):
        # The raw record: the mission's stream, then its election-day streams (polling
        # stations and their reports, visits by command included), each event as stored,
        # so that every figure the reports cite (by version or log position) is here.
        raw = events + await intake_events(store, mission)
        write = to_jsonl if fmt is ExportFormat.jsonl else to_csv
        return write(raw).encode(), len(raw)
    try:
        state = fold(load_event(e.data) for e in events)
        visits = await mission_visits(store, mission, time_zone=state.time_zone)
        report = build_report(state, events, check, visits, await recounts(store, state))
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()[0]
        raise ExportRefused(
            f"{mission!r} cannot be read as a mission ({first}); "
            f"--format jsonl or csv exports its raw events"
        ) from None
    if fmt is ExportFormat.md:
        return to_markdown(report, events).encode(), len(events)
    if fmt is ExportFormat.html:
        return to_html(report, events).encode(), len(events)
    try:
        return to_pdf(report, events), len(events)
    except FontNotFound as error:
        raise ExportUnavailable(str(error)) from None
    except MissingGlyphs as error:
        raise ExportRefused(str(error)) from None
