"""Rendering a mission for a person: ``eom mission show`` and ``eom missions``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from domain.host_time import local
from domain.state import Mission, StationVisit
from eventstore.models import ChainCheck, RecordedEvent
from operations.reminders import Reminders
from workflows.client import MissionSummary


def missions_table(summaries: list[MissionSummary]) -> Table:
    table = Table(title="Missions")
    for column in ("mission", "stage", "host", "election", "E", "version"):
        table.add_column(column)
    for s in summaries:
        table.add_row(
            s.mission_id, s.stage, s.host_country, s.election, s.election_day, str(s.version)
        )
    return table


def _summary(event: RecordedEvent) -> str:
    data: dict[str, Any] = event.data
    keys = (
        "name",
        "observer_id",
        "team_id",
        "stakeholder_name",
        "station_id",
        "draft_id",
        "published_on",
        "new_date",
        "reason",
        "note",
    )
    parts = [f"{data[k]}" for k in keys if data.get(k)]
    if event.event_type == "InvitationRegistered":
        parts = [
            f"host {data['host_country']}",
            f"E {data['election']['date']}",
            data["organisation"],
        ]
    if event.event_type == "RecommendationsIssued":
        parts = [", ".join(r["id"] for r in data["recommendations"])]
    if event.event_type == "RecommendationsSent":
        parts = [", ".join(r["name"] for r in data["recipients"])]
    if event.event_type == "RecommendationsAcknowledged":
        parts = [data["recipient"]["name"], data["acknowledged_on"]]
    return "; ".join(str(p) for p in parts)[:80]


def mission_view(
    state: Mission,
    events: list[RecordedEvent],
    chain: ChainCheck,
    visits: Sequence[StationVisit] | None = None,
) -> Group:
    """The mission as a person reads it; ``visits`` is the mission's visits however they
    came (``intake.visits``), else those of its own stream. Times are in the host's zone."""
    election = state.election
    zone = state.time_zone
    visits = list(state.visits.values()) if visits is None else list(visits)
    stations = {v.station_id for v in visits}
    localities = sorted({v.locality for v in visits})
    window = state.mission_window
    head = state.head_of_mission
    lines = [
        f"[bold]{state.mission_id}[/]  stage [green]{state.stage.value if state.stage else '-'}[/]"
        f"  profile {state.profile.value}  version {state.version}",
        f"{state.organisation} in {state.host_country}",
        f"{election.name} ({election.type.value}), E = {election.date}" if election else "",
        f"mission window {window.start} .. {window.end}" if window else "",
        f"head of mission: {head.name}, {head.title}" if head else "head of mission: -",
        f"participating member states (other than the host): {', '.join(state.member_states)}",
        f"time zone: {zone or 'UTC'}"
        + (f" ({state.time_zone_note})" if state.time_zone_note else ""),
    ]
    observers = Table(title="Observers", expand=False)
    for column in ("id", "state", "name", "role", "status"):
        observers.add_column(column)
    for o in state.observers.values():
        observers.add_row(o.observer_id, o.member_state, o.name, o.role.value, o.status.value)

    facts = [
        f"meetings: {len(state.meetings)}",
        f"station visits: {len(visits)} at {len(stations)} stations in "
        f"{', '.join(localities) or '-'}",
        f"conflicting reports: {', '.join(state.conflicting_stations) or 'none'}",
    ]
    if state.publication:
        facts.append(
            f"statement {state.publication.draft_id} published {state.publication.published_on}"
            f" (sha256 {state.publication.text_sha256[:16]})"
        )
    for rec in state.recommendations.values():
        facts.append(
            escape(f"recommendation {rec.id} [{rec.priority.value}] to {rec.addressee.value}")
        )
    for delivery in state.deliveries.values():
        ack = delivery.acknowledged_on or "not acknowledged"
        facts.append(f"sent to {delivery.recipient.name} {delivery.sent_on}; {ack}")
    if state.cancellation_reason:
        facts.append(f"cancelled: {state.cancellation_reason}")

    timeline = Table(title="Timeline")
    for column in ("v", f"occurred ({zone or 'UTC'})", "recorded", "event", "actor", "about"):
        timeline.add_column(column, overflow="fold")
    for e in events:
        timeline.add_row(
            str(e.stream_version),
            _moment(e.occurred_at, zone),
            _moment(e.recorded_at, zone),
            e.event_type,
            e.metadata.actor or "",
            _summary(e),
        )
    chain_line = (
        f"hash chain: unbroken over {chain.events} events, head {chain.head_hash}"
        if chain.ok
        else "hash chain: BROKEN — "
        + "; ".join(f"v{b.stream_version}: {b.problem}" for b in chain.breaks)
    )
    return Group(
        Panel("\n".join(line for line in lines if line), title="Mission"),
        observers,
        Panel("\n".join(facts), title="Record"),
        timeline,
        chain_line,
    )


def print_mission(
    console: Console,
    state: Mission,
    events: list[RecordedEvent],
    chain: ChainCheck,
    visits: Sequence[StationVisit] | None = None,
) -> None:
    console.print(mission_view(state, events, chain, visits))


def reminders_table(found: Reminders) -> Table:
    """``eom reminders status``: a row per member state and deadline (``Reminders``)."""
    table = Table(title=f"Reminders — {found.mission_id}")
    for column in (
        "kind",
        "cycle",
        "member state",
        "deadline",
        "sent",
        "failures",
        "answered",
        "escalated",
        "next",
        "due",
    ):
        table.add_column(column)
    for row in found.ladders:
        paused = " (paused)" if row.paused else ""
        table.add_row(
            row.kind.value,
            str(row.cycle or ""),
            row.member_state,
            _moment(row.deadline, found.time_zone),
            str(row.sent),
            str(row.failures),
            "yes" if row.answered else "no",
            "yes" if row.escalated else "no",
            (row.next_purpose.value + paused) if row.next_purpose else "-",
            _moment(row.next_due, found.time_zone) if row.next_due else "-",
        )
    return table


def followup_table(states: list[Mission], *, now: datetime) -> Table:
    table = Table(title="Recommendation follow-up")
    for column in ("host", "mission", "recommendation", "priority", "latest rating", "overdue"):
        table.add_column(column, overflow="fold")
    for state in sorted(states, key=lambda s: (s.host_country or "", s.mission_id or "")):
        if not state.recommendations:
            continue
        overdue = [
            f"cycle {c.cycle}: {ms}"
            for c in state.evidence_cycles.values()
            if c.deadline < now
            for ms in c.member_states
            if ms not in c.submitted
        ]
        for rec in state.recommendations.values():
            ratings = state.ratings.get(rec.id, [])
            latest = (
                f"{ratings[-1].rating.value} ({ratings[-1].rated_on})" if ratings else "not rated"
            )
            table.add_row(
                state.host_country or "",
                state.mission_id or "",
                f"{rec.id}: {rec.text[:60]}",
                rec.priority.value,
                latest + (f", {len(ratings)} ratings kept" if len(ratings) > 1 else ""),
                ", ".join(overdue) or "-",
            )
    return table


def _moment(moment: datetime, zone: str | None) -> str:
    """An instant in the host's time with its offset, to the second."""
    return local(moment, zone).replace(microsecond=0).isoformat()
