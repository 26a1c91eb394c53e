"""``eom audit export``: a mission's record, taken out of the event store for people and tools
that will never run eom.

Two kinds of output. ``jsonl`` and ``csv`` are the raw record: one line per stored event with
every column, so that another tool can recompute the hash chain or load the history
elsewhere; they do not interpret the events, so even a stream this code cannot fold still
exports. ``md``, ``html`` and ``pdf`` are a report for a reader: the mission, its
participants, what it saw, what it said and recommended, and its timeline. Every figure in
the report names the stream versions of the events it rests on, so a reader can check any
claim against the raw record, and the report states whether the hash chain under it holds.

The report is built once (``build_report``, a pydantic model) and each renderer only lays it
out, so the three readable formats cannot disagree.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from fpdf import FPDF, FontFace
from fpdf.enums import TableBordersLayout, XPos, YPos
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, ValidationError

from cli.commands import InputError
from cli.services import NotRunning, open_missions
from domain import events as ev
from domain import evolve, fold, load_event, text_sha256
from domain.events import Event
from domain.host_time import local, localized
from domain.state import Mission, ReminderTrack, StationVisit
from domain.values import Assessment, DeadlineKind, DeliveryPurpose, FindingCategory, Stage
from eventstore.models import ChainBreak, ChainCheck, RecordedEvent
from eventstore.store import EventStore
from intake.visits import RecordedVisit, intake_events, mission_visits
from worker import Settings, configure_logging

# -- the report ------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figure(_Model):
    """A number stated by the report, with the versions of the events it is counted from."""

    value: int
    versions: list[int]
    positions: list[int] = []
    """Global log positions of the events outside the mission's stream it is counted from
    (reports recorded by the intake, in the polling stations' streams)."""


class StageChange(_Model):
    stage: Stage
    version: int
    occurred_at: datetime


class MissionHeader(_Model):
    mission_id: str
    organisation: str
    host_country: str
    inviting_authority: str
    election_name: str
    election_type: str
    election_date: date
    window_start: date
    window_end: date
    profile: str
    stage: Stage
    member_states: list[str]
    registered_at: datetime | None
    time_zone: str = "UTC"
    """The host's IANA zone: the report's times are in it, with their UTC offset."""
    time_zone_note: str | None = None
    deployed_on: date | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    cancellation_reason: str | None
    postponements: int
    stages: list[StageChange]
    """Each stage the mission entered, with the event that moved it there."""
    versions: list[int]
    """The invitation and any postponement: where the election, window and states come from."""


class HeadOfMissionEntry(_Model):
    name: str
    title: str
    versions: list[int]


class ObserverEntry(_Model):
    observer_id: str
    name: str
    member_state: str
    role: str
    status: str
    withdrawal_reason: str | None
    versions: list[int]


class TeamEntry(_Model):
    team_id: str
    area: str | None
    members: list[str]
    """``name (id)`` of each member as the team stands now, withdrawn ones included."""
    active: int
    versions: list[int]


class DeclinedEntry(_Model):
    member_state: str
    reason: str
    versions: list[int]


class Participants(_Model):
    head_of_mission: HeadOfMissionEntry | None
    observers: list[ObserverEntry]
    teams: list[TeamEntry]
    declined: list[DeclinedEntry]
    accepted: Figure


class MeetingEntry(_Model):
    meeting_id: str
    held_on: date
    stakeholder_type: str
    stakeholder_name: str
    participants: list[str]
    topics: list[str]
    summary: str
    versions: list[int]


class VisitEntry(_Model):
    visit_id: str
    station_id: str
    locality: str
    team_id: str
    arrived_at: datetime
    departed_at: datetime
    phases: list[str]
    concerns: int
    """Findings assessed as a concern or serious at this visit."""
    versions: list[int]
    positions: list[int] = []


class LocalityCoverage(_Model):
    locality: str
    stations: list[str]
    visits: int
    versions: list[int]
    positions: list[int] = []


class ConflictEntry(_Model):
    station_id: str
    visit_ids: list[str]
    team_ids: list[str]
    versions: list[int]
    positions: list[int] = []


class CoverageReport(_Model):
    """What the mission's findings rest on: so that no reader takes 14 stations for a country."""

    stations_visited: Figure
    visits: Figure
    teams: Figure
    localities: list[LocalityCoverage]
    conflicting_stations: list[ConflictEntry]
    visit_list: list[VisitEntry]


class FindingCount(_Model):
    category: FindingCategory
    assessment: Assessment
    count: int
    stations: int
    versions: list[int]
    positions: list[int] = []


class DraftEntry(_Model):
    draft_id: str
    title: str
    text: str
    text_sha256: str
    text_matches_sha256: bool
    """The stored text still hashes to the sha256 recorded with it."""
    claimed_stations: int
    claimed_visits: int
    claimed_localities: list[str]
    claimed_teams: int
    versions: list[int]


class ApprovalEntry(_Model):
    draft_id: str
    text_sha256: str
    approved_by: str
    approved_at: datetime
    versions: list[int]


class PublicationEntry(_Model):
    draft_id: str
    text_sha256: str
    published_on: date
    venue: str
    history_fingerprint: str | None
    fingerprint_matches: bool | None
    """Whether the fingerprint is still the hash of the event before the publication
    (None when the publication carries no fingerprint, as eom's first version wrote it)."""
    matches_approval: bool
    versions: list[int]


class StatementReport(_Model):
    drafts: list[DraftEntry]
    approval: ApprovalEntry | None
    publication: PublicationEntry | None

    @property
    def published_draft(self) -> DraftEntry | None:
        """The draft whose text was published (else the latest draft)."""
        wanted = self.publication.draft_id if self.publication else None
        for draft in self.drafts:
            if draft.draft_id == wanted:
                return draft
        return self.drafts[-1] if self.drafts else None


class DeliveryEntry(_Model):
    recipient_kind: str
    recipient: str
    sent_on: date
    sent_version: int
    acknowledged_on: date | None
    acknowledged_version: int | None


class RatingEntryReport(_Model):
    rating: str
    rated_on: date
    basis: str
    version: int


class EvidenceEntry(_Model):
    member_state: str
    cycle: int
    text: str
    version: int


class RecommendationEntry(_Model):
    id: str
    text: str
    priority: str
    addressee: str
    area: str
    versions: list[int]
    deliveries: list[DeliveryEntry]
    ratings: list[RatingEntryReport]
    evidence: list[EvidenceEntry]


class DeadlineEntry(_Model):
    kind: DeadlineKind
    cycle: int
    member_states: list[str]
    deadline: datetime
    version: int


class ReminderTrackEntry(_Model):
    kind: DeadlineKind
    cycle: int
    member_state: str
    sent: int
    failures: int
    escalated: bool
    answered: bool
    versions: list[int]


class RemindersReport(_Model):
    requests: Figure
    reminders: Figure
    failures: Figure
    escalations: Figure
    deadlines: list[DeadlineEntry]
    tracks: list[ReminderTrackEntry]


class ChainVerdict(_Model):
    ok: bool
    events: int
    head_hash: str
    breaks: list[ChainBreak]
    fingerprint_problems: list[str]


class AuditReport(_Model):
    """Everything a reader of ``md``, ``html`` or ``pdf`` is told, with its provenance."""

    mission: MissionHeader
    as_of_version: int
    as_of_recorded_at: datetime
    participants: Participants
    meetings: list[MeetingEntry]
    coverage: CoverageReport
    findings: list[FindingCount]
    statement: StatementReport
    recommendations: list[RecommendationEntry]
    reminders: RemindersReport
    chain: ChainVerdict


def build_report(
    state: Mission,
    events: list[RecordedEvent],
    chain: ChainCheck,
    visits: Sequence[RecordedVisit] | None = None,
) -> AuditReport:
    """The report on ``state``, which must be the fold of ``events``; ``visits`` are the
    mission's station visits however they were recorded (``intake.visits``), else those
    of its own stream.

    Values come from the state (what ``evolve`` made of the history); the versions beside
    them come from the events. Folding again here is cheap and guards the one thing that
    would make the report lie: a state from one history and provenance from another."""
    if not events or state.mission_id is None:
        raise ValueError("no registered mission in these events")
    typed = [(e.stream_version, load_event(e.data)) for e in events]
    stages: list[StageChange] = []
    folded = Mission()
    for (version, event), recorded in zip(typed, events, strict=True):
        before = folded.stage
        folded = evolve(folded, event)
        if folded.stage is not None and folded.stage is not before:
            stages.append(
                StageChange(stage=folded.stage, version=version, occurred_at=recorded.occurred_at)
            )
    if folded != state:
        raise ValueError(
            f"the state (version {state.version}) is not the fold of these "
            f"{len(events)} events (version {folded.version})"
        )
    index = _Index(typed)
    statement = _statement(state, index, events)
    problems = []
    if statement.publication and statement.publication.fingerprint_matches is False:
        problems.append(
            f"v{statement.publication.versions[0]}: the published statement's fingerprint "
            f"{(statement.publication.history_fingerprint or '')[:16]} no longer matches "
            f"version {statement.publication.versions[0] - 1}"
        )
    report = AuditReport(
        mission=_header(state, index, stages),
        as_of_version=events[-1].stream_version,
        as_of_recorded_at=events[-1].recorded_at,
        participants=_participants(state, index),
        meetings=[
            MeetingEntry(
                meeting_id=m.meeting_id,
                held_on=m.held_on,
                stakeholder_type=m.stakeholder_type.value,
                stakeholder_name=m.stakeholder_name,
                participants=list(m.participants),
                topics=list(m.topics),
                summary=m.summary,
                versions=[
                    v for v, e in index.of(ev.MeetingRecorded) if e.meeting_id == m.meeting_id
                ],
            )
            for m in sorted(state.meetings.values(), key=lambda m: (m.held_on, m.meeting_id))
        ],
        coverage=_coverage(_visits(state, index, visits)),
        findings=_findings(_visits(state, index, visits)),
        statement=statement,
        recommendations=_recommendations(state, index),
        reminders=_reminders(state, index),
        chain=ChainVerdict(
            ok=chain.ok and not problems,
            events=chain.events,
            head_hash=chain.head_hash,
            breaks=list(chain.breaks),
            fingerprint_problems=problems,
        ),
    )
    # A person reads the report's instants in the host's time, with their offset.
    return localized(report, state.time_zone)


E = TypeVar("E", bound=ev.EventBase)


class _Index:
    """The typed events with their versions, picked by type."""

    def __init__(self, typed: list[tuple[int, Event]]) -> None:
        self.typed = typed

    def of(self, kind: type[E]) -> list[tuple[int, E]]:
        return [(v, e) for v, e in self.typed if isinstance(e, kind)]

    def versions_of(self, kind: type[E]) -> list[int]:
        return [v for v, _ in self.of(kind)]


def _header(state: Mission, index: _Index, stages: list[StageChange]) -> MissionHeader:
    assert state.mission_id and state.election and state.mission_window and state.stage
    return MissionHeader(
        mission_id=state.mission_id,
        organisation=state.organisation or "",
        host_country=state.host_country or "",
        time_zone=state.time_zone or "UTC",
        time_zone_note=state.time_zone_note,
        inviting_authority=state.inviting_authority or "",
        election_name=state.election.name,
        election_type=state.election.type.value,
        election_date=state.election.date,
        window_start=state.mission_window.start,
        window_end=state.mission_window.end,
        profile=state.profile.value,
        stage=state.stage,
        member_states=list(state.member_states),
        registered_at=state.registered_at,
        deployed_on=state.deployed_on,
        closed_at=state.closed_at,
        cancelled_at=state.cancelled_at,
        cancellation_reason=state.cancellation_reason,
        postponements=state.postponements,
        stages=stages,
        versions=sorted(
            index.versions_of(ev.InvitationRegistered) + index.versions_of(ev.ElectionPostponed)
        ),
    )


def _participants(state: Mission, index: _Index) -> Participants:
    head = state.head_of_mission
    observers = [
        ObserverEntry(
            observer_id=o.observer_id,
            name=o.name,
            member_state=o.member_state,
            role=o.role.value,
            status=o.status.value,
            withdrawal_reason=o.withdrawal_reason,
            versions=_observer_versions(index, o.observer_id),
        )
        for o in state.observers.values()
    ]
    teams = []
    for team in state.teams.values():
        formed = [v for v, e in index.of(ev.TeamFormed) if e.team_id == team.team_id]
        ever = {
            oid
            for _, e in index.of(ev.TeamFormed)
            if e.team_id == team.team_id
            for oid in e.observer_ids
        }
        moved = [
            v
            for v, e in index.of(ev.TeamFormed)
            if e.team_id != team.team_id and ever & set(e.observer_ids)
        ]
        withdrawn = [v for v, e in index.of(ev.ObserverWithdrawn) if e.observer_id in ever]
        teams.append(
            TeamEntry(
                team_id=team.team_id,
                area=team.area,
                members=[
                    f"{state.observers[o].name} ({o})" if o in state.observers else o
                    for o in team.observer_ids
                ],
                active=len(state.active_members(team.team_id)),
                versions=sorted(
                    {v for v in formed + moved + withdrawn if v >= min(formed, default=0)}
                ),
            )
        )
    accepted = state.accepted_observers()
    return Participants(
        head_of_mission=(
            HeadOfMissionEntry(
                name=head.name,
                title=head.title,
                versions=index.versions_of(ev.HeadOfMissionAppointed),
            )
            if head
            else None
        ),
        observers=observers,
        teams=teams,
        declined=[
            DeclinedEntry(
                member_state=ms,
                reason=reason,
                versions=[v for v, e in index.of(ev.NominationDeclined) if e.member_state == ms],
            )
            for ms, reason in state.declined.items()
        ],
        accepted=Figure(
            value=len(accepted),
            versions=sorted(
                v
                for v, e in index.of(ev.ObserverAccepted)
                if e.observer_id in {o.observer_id for o in accepted}
            ),
        ),
    )


def _observer_versions(index: _Index, observer_id: str) -> list[int]:
    return sorted(
        [v for v, e in index.of(ev.ObserverNominated) if e.observer_id == observer_id]
        + [v for v, e in index.of(ev.ObserverAccepted) if e.observer_id == observer_id]
        + [v for v, e in index.of(ev.ObserverWithdrawn) if e.observer_id == observer_id]
    )


def _visits(state: Mission, index: _Index, visits: Sequence[RecordedVisit] | None) -> list[Cited]:
    """Each standing visit with what cites it: its mission-stream version (records made
    before visits went through the intake) or its global log position (the intake's)."""
    if visits is None:
        version_of = {e.visit_id: v for v, e in index.of(ev.StationVisitRecorded)}
        return [(v, [version_of[v.visit_id]], []) for v in state.visits.values()]
    return [
        (v, [v.stream_version], [])
        if v.stream_id == state.mission_id
        else (v, [], [v.global_position])
        for v in visits
    ]


Cited = tuple[StationVisit, list[int], list[int]]
"""A visit, the mission-stream versions and the global log positions that cite it."""


def _coverage(cited: list[Cited]) -> CoverageReport:
    cited = sorted(cited, key=lambda c: (c[0].arrived_at, c[0].visit_id))
    visits = [v for v, _, _ in cited]

    def versions(rows: Iterable[Cited]) -> list[int]:
        return sorted(n for _, vs, _ in rows for n in vs)

    def positions(rows: Iterable[Cited]) -> list[int]:
        return sorted(n for _, _, ps in rows for n in ps)

    def figure(value: int) -> Figure:
        return Figure(value=value, versions=versions(cited), positions=positions(cited))

    localities = []
    for locality in sorted({v.locality for v in visits}):
        here = [c for c in cited if c[0].locality == locality]
        localities.append(
            LocalityCoverage(
                locality=locality,
                stations=sorted({v.station_id for v, _, _ in here}),
                visits=len(here),
                versions=versions(here),
                positions=positions(here),
            )
        )
    conflicts = []
    for station in sorted({v.station_id for v in visits}):
        here = [c for c in cited if c[0].station_id == station]
        teams = sorted({v.team_id for v, _, _ in here})
        if len(teams) > 1:
            conflicts.append(
                ConflictEntry(
                    station_id=station,
                    visit_ids=[v.visit_id for v, _, _ in here],
                    team_ids=teams,
                    versions=versions(here),
                    positions=positions(here),
                )
            )
    concern = {Assessment.concern, Assessment.serious}
    return CoverageReport(
        stations_visited=figure(len({v.station_id for v in visits})),
        visits=figure(len(visits)),
        teams=figure(len({v.team_id for v in visits})),
        localities=localities,
        conflicting_stations=conflicts,
        visit_list=[
            VisitEntry(
                visit_id=v.visit_id,
                station_id=v.station_id,
                locality=v.locality,
                team_id=v.team_id,
                arrived_at=v.arrived_at,
                departed_at=v.departed_at,
                phases=[c.phase.value for c in v.checklists],
                concerns=sum(f.assessment in concern for f in v.findings),
                versions=vs,
                positions=ps,
            )
            for v, vs, ps in cited
        ],
    )


def _findings(cited: list[Cited]) -> list[FindingCount]:
    counts: Counter[tuple[FindingCategory, Assessment]] = Counter()
    versions: dict[tuple[FindingCategory, Assessment], set[int]] = {}
    positions: dict[tuple[FindingCategory, Assessment], set[int]] = {}
    stations: dict[tuple[FindingCategory, Assessment], set[str]] = {}
    for visit, vs, ps in cited:
        for finding in visit.findings:
            key = (finding.category, finding.assessment)
            counts[key] += 1
            versions.setdefault(key, set()).update(vs)
            positions.setdefault(key, set()).update(ps)
            stations.setdefault(key, set()).add(visit.station_id)
    categories, assessments = list(FindingCategory), list(Assessment)
    return [
        FindingCount(
            category=category,
            assessment=assessment,
            count=counts[category, assessment],
            stations=len(stations[category, assessment]),
            versions=sorted(versions[category, assessment]),
            positions=sorted(positions[category, assessment]),
        )
        for category, assessment in sorted(
            counts, key=lambda k: (categories.index(k[0]), assessments.index(k[1]))
        )
    ]


def _statement(state: Mission, index: _Index, events: list[RecordedEvent]) -> StatementReport:
    drafted = {e.draft_id: (v, e) for v, e in index.of(ev.StatementDrafted)}
    drafts = []
    for draft in state.drafts.values():
        version, event = drafted[draft.draft_id]
        drafts.append(
            DraftEntry(
                draft_id=draft.draft_id,
                title=draft.title,
                text=draft.text,
                text_sha256=draft.text_sha256,
                text_matches_sha256=text_sha256(draft.text) == draft.text_sha256,
                claimed_stations=event.coverage.stations_visited,
                claimed_visits=event.coverage.visits,
                claimed_localities=list(event.coverage.localities),
                claimed_teams=event.coverage.teams,
                versions=[version],
            )
        )
    approval = state.approval
    publication = state.publication
    published: PublicationEntry | None = None
    if publication is not None:
        version = index.versions_of(ev.StatementPublished)[-1]
        by_version = {e.stream_version: e for e in events}
        before = by_version.get(version - 1)
        fingerprint = publication.history_fingerprint
        published = PublicationEntry(
            draft_id=publication.draft_id,
            text_sha256=publication.text_sha256,
            published_on=publication.published_on,
            venue=publication.venue,
            history_fingerprint=fingerprint,
            fingerprint_matches=(
                None if fingerprint is None else before is not None and before.hash == fingerprint
            ),
            matches_approval=(
                approval is not None
                and approval.draft_id == publication.draft_id
                and approval.text_sha256 == publication.text_sha256
            ),
            versions=[version],
        )
    return StatementReport(
        drafts=drafts,
        approval=(
            ApprovalEntry(
                draft_id=approval.draft_id,
                text_sha256=approval.text_sha256,
                approved_by=approval.approved_by,
                approved_at=approval.approved_at,
                versions=index.versions_of(ev.StatementApproved)[-1:],
            )
            if approval
            else None
        ),
        publication=published,
    )


def _recommendations(state: Mission, index: _Index) -> list[RecommendationEntry]:
    acknowledgements = index.of(ev.RecommendationsAcknowledged)
    entries = []
    for rec in state.recommendations.values():
        deliveries = []
        for sent_version, sent in index.of(ev.RecommendationsSent):
            if rec.id not in sent.recommendation_ids:
                continue
            for recipient in sent.recipients:
                ack = next(
                    (
                        (v, a)
                        for v, a in acknowledgements
                        if v > sent_version and a.recipient.key == recipient.key
                    ),
                    None,
                )
                deliveries.append(
                    DeliveryEntry(
                        recipient_kind=recipient.kind.value,
                        recipient=recipient.name,
                        sent_on=sent.sent_on,
                        sent_version=sent_version,
                        acknowledged_on=ack[1].acknowledged_on if ack else None,
                        acknowledged_version=ack[0] if ack else None,
                    )
                )
        entries.append(
            RecommendationEntry(
                id=rec.id,
                text=rec.text,
                priority=rec.priority.value,
                addressee=rec.addressee.value,
                area=rec.area,
                versions=[
                    v
                    for v, e in index.of(ev.RecommendationsIssued)
                    if any(r.id == rec.id for r in e.recommendations)
                ],
                deliveries=deliveries,
                ratings=[
                    RatingEntryReport(
                        rating=e.rating.value, rated_on=e.rated_on, basis=e.basis, version=v
                    )
                    for v, e in index.of(ev.ImplementationRated)
                    if e.recommendation_id == rec.id
                ],
                evidence=[
                    EvidenceEntry(
                        member_state=e.member_state, cycle=e.cycle, text=item.text, version=v
                    )
                    for v, e in index.of(ev.EvidenceSubmitted)
                    for item in e.evidence
                    if item.recommendation_id == rec.id
                ],
            )
        )
    return entries


def _reminders(state: Mission, index: _Index) -> RemindersReport:
    def purpose(p: DeliveryPurpose) -> Figure:
        versions = [v for v, e in index.of(ev.ReminderSent) if e.purpose is p]
        return Figure(value=len(versions), versions=versions)

    deadlines = [
        DeadlineEntry(
            kind=DeadlineKind.nomination,
            cycle=0,
            member_states=list(e.member_states),
            deadline=e.deadline,
            version=v,
        )
        for v, e in index.of(ev.NominationsRequested)
    ]
    deadlines += [
        DeadlineEntry(
            kind=DeadlineKind.acknowledgement,
            cycle=0,
            member_states=[r.name for r in e.recipients],
            deadline=e.acknowledge_by,
            version=v,
        )
        for v, e in index.of(ev.RecommendationsSent)
        if e.acknowledge_by is not None
    ]
    deadlines += [
        DeadlineEntry(
            kind=DeadlineKind.evidence,
            cycle=e.cycle,
            member_states=list(e.member_states),
            deadline=e.deadline,
            version=v,
        )
        for v, e in index.of(ev.EvidenceRequested)
    ]

    def on_track(t: ReminderTrack) -> list[int]:
        return sorted(
            v
            for v, e in index.typed
            if isinstance(e, ev.ReminderSent | ev.DeliveryFailed | ev.DeadlineEscalated)
            and (e.kind, e.member_state, e.cycle) == (t.kind, t.member_state, t.cycle)
        )

    tracks = [
        ReminderTrackEntry(
            kind=t.kind,
            cycle=t.cycle,
            member_state=t.member_state,
            sent=t.sent,
            failures=t.failures,
            escalated=t.escalated,
            answered=state.answered(t.kind, t.member_state, t.cycle),
            versions=on_track(t),
        )
        for t in sorted(
            state.reminders.values(), key=lambda t: (t.kind.value, t.cycle, t.member_state)
        )
    ]
    failures = index.versions_of(ev.DeliveryFailed)
    escalations = index.versions_of(ev.DeadlineEscalated)
    return RemindersReport(
        requests=purpose(DeliveryPurpose.request),
        reminders=purpose(DeliveryPurpose.reminder),
        failures=Figure(value=len(failures), versions=failures),
        escalations=Figure(value=len(escalations), versions=escalations),
        deadlines=sorted(deadlines, key=lambda d: d.version),
        tracks=tracks,
    )


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


class TimelineRow(_Model):
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
    """The template lives in ``cli/report-templates`` (package data; a directory name that
    is not an identifier, so setuptools does not take it for an undeclared package)."""
    environment = Environment(
        loader=PackageLoader("cli", "report-templates"),
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


class FontFiles(_Model):
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


# -- the command -----------------------------------------------------------------------------


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


async def export_mission(store: EventStore, mission: str, fmt: ExportFormat) -> tuple[bytes, int]:
    """The export of ``mission`` in ``fmt`` and the number of events in it.

    The chain is verified first and the events read up to the head it verified, so the
    verdict printed in a report is about exactly the events the report shows, even while
    the mission keeps recording."""
    check = await store.verify_stream(mission)
    events = await store.read_stream(mission, to_version=check.events if check.ok else None)
    if not events:
        raise NotRunning(f"no mission {mission!r} in the event store")
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
        report = build_report(state, events, check, visits)
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()[0]
        raise InputError(
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
        raise NotRunning(str(error)) from None
    except MissingGlyphs as error:
        raise InputError(str(error)) from None


def output_path(mission: str, fmt: ExportFormat, output: Path | None) -> Path | None:
    """Where the export goes: ``None`` (stdout) unless ``--output`` names a file; a file
    is never written where nobody asked for one. Refuses, before any work is done, a
    place that cannot be written."""
    if output is None or str(output) == "-":
        return None
    if output.is_dir():
        raise InputError(f"--output {output} is a directory; name a file in it")
    if not output.parent.is_dir():
        raise InputError(f"--output {output}: no directory {output.parent}")
    return output


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so an interrupted export never leaves half a file
    that a reader could take for the whole record."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _settings() -> Settings:
    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def export_command(
    mission: Annotated[str, typer.Argument(help="the mission")],
    format: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="jsonl or csv (every event, raw), md, html or pdf"),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="file to write; default stdout ('-' alike), where a PDF goes only when "
            "it is not a terminal (a pipe, a redirection)",
        ),
    ] = None,
) -> None:
    """Export a mission's record from the event store alone (no Temporal): the raw events
    (jsonl, csv) or a report for a reader (md, html, pdf) in which every figure names the
    versions of the events behind it and the hash chain's verdict is stated. It goes to
    stdout unless ``-o`` names a file; a PDF is refused on a terminal."""
    target = output_path(mission, format, output)
    if target is None and format.binary and sys.stdout.isatty():
        raise InputError(
            f"not writing a PDF to the terminal: give -o {mission}.pdf (or another file), "
            "or redirect stdout"
        )

    async def main() -> tuple[bytes, int]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await export_mission(missions.store, mission, format)

    data, count = asyncio.run(main())
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomically(target, data)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None
    typer.echo(f"{mission}: {count} events, {format.value} written to {target}", err=True)
