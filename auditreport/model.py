"""The auditor's report on one mission: a pydantic model built once from the mission's
stream (``build_report``) and laid out by every renderer (``auditreport.render``), so the
readable formats cannot disagree. Every figure names the events it rests on: stream
versions of the mission's own events, global log positions of the intake's reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
)

from analysis.figures import Analysis, figure_of
from domain import events as ev
from domain import evolve, load_event, text_sha256
from domain.events import Event
from domain.host_time import localized
from domain.state import Mission, ReminderTrack, StationVisit
from domain.values import (
    Assessment,
    CitedFigure,
    DeadlineKind,
    DeliveryPurpose,
    FindingCategory,
    Stage,
)
from eventstore.models import ChainBreak, ChainCheck, RecordedEvent
from intake.visits import RecordedVisit

# -- the report ------------------------------------------------------------------------------


class ReportModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figure(ReportModel):
    """A number stated by the report, with the versions of the events it is counted from."""

    value: int
    versions: list[int]
    positions: list[int] = []
    """Global log positions of the events outside the mission's stream it is counted from
    (reports recorded by the intake, in the polling stations' streams)."""


class StageChange(ReportModel):
    stage: Stage
    version: int
    occurred_at: datetime


class MissionHeader(ReportModel):
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


class HeadOfMissionEntry(ReportModel):
    name: str
    title: str
    versions: list[int]


class ObserverEntry(ReportModel):
    observer_id: str
    name: str
    member_state: str
    role: str
    status: str
    withdrawal_reason: str | None
    versions: list[int]


class TeamEntry(ReportModel):
    team_id: str
    area: str | None
    members: list[str]
    """``name (id)`` of each member as the team stands now, withdrawn ones included."""
    active: int
    versions: list[int]


class DeclinedEntry(ReportModel):
    member_state: str
    reason: str
    versions: list[int]


class Participants(ReportModel):
    head_of_mission: HeadOfMissionEntry | None
    observers: list[ObserverEntry]
    teams: list[TeamEntry]
    declined: list[DeclinedEntry]
    accepted: Figure


class MeetingEntry(ReportModel):
    meeting_id: str
    held_on: date
    stakeholder_type: str
    stakeholder_name: str
    participants: list[str]
    topics: list[str]
    summary: str
    versions: list[int]


class VisitEntry(ReportModel):
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


class LocalityCoverage(ReportModel):
    locality: str
    stations: list[str]
    visits: int
    versions: list[int]
    positions: list[int] = []


class ConflictEntry(ReportModel):
    station_id: str
    visit_ids: list[str]
    team_ids: list[str]
    versions: list[int]
    positions: list[int] = []


class CoverageReport(ReportModel):
    """What the mission's findings rest on: so that no reader takes 14 stations for a country."""

    stations_visited: Figure
    visits: Figure
    teams: Figure
    localities: list[LocalityCoverage]
    conflicting_stations: list[ConflictEntry]
    visit_list: list[VisitEntry]


class FindingCount(ReportModel):
    category: FindingCategory
    assessment: Assessment
    count: int
    stations: int
    versions: list[int]
    positions: list[int] = []


class CitedFigureEntry(ReportModel):
    """A figure of the observation forms a draft cites, as recorded with the draft, and
    as counted again from the log up to the same position."""

    form_id: str
    question: str
    answer: str | None
    scope: str
    stations: int
    asked: int
    share: float
    events: list[int]
    as_of_position: int
    recounted_stations: int | None = None
    recounted_asked: int | None = None
    matches: bool | None = None
    """The count again from the log gives the same stations, asked and events (``None``
    where the report was made without counting again)."""


class DraftEntry(ReportModel):
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
    figures: list[CitedFigureEntry] = []


class ApprovalEntry(ReportModel):
    draft_id: str
    text_sha256: str
    approved_by: str
    approved_at: datetime
    versions: list[int]


class PublicationEntry(ReportModel):
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


class StatementReport(ReportModel):
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


class DeliveryEntry(ReportModel):
    recipient_kind: str
    recipient: str
    sent_on: date
    sent_version: int
    acknowledged_on: date | None
    acknowledged_version: int | None


class RatingEntryReport(ReportModel):
    rating: str
    rated_on: date
    basis: str
    version: int


class EvidenceEntry(ReportModel):
    member_state: str
    cycle: int
    text: str
    version: int


class RecommendationEntry(ReportModel):
    id: str
    text: str
    priority: str
    addressee: str
    area: str
    versions: list[int]
    deliveries: list[DeliveryEntry]
    ratings: list[RatingEntryReport]
    evidence: list[EvidenceEntry]


class DeadlineEntry(ReportModel):
    kind: DeadlineKind
    cycle: int
    member_states: list[str]
    deadline: datetime
    version: int


class ReminderTrackEntry(ReportModel):
    kind: DeadlineKind
    cycle: int
    member_state: str
    sent: int
    failures: int
    escalated: bool
    answered: bool
    versions: list[int]


class RemindersReport(ReportModel):
    requests: Figure
    reminders: Figure
    failures: Figure
    escalations: Figure
    deadlines: list[DeadlineEntry]
    tracks: list[ReminderTrackEntry]


class ChainVerdict(ReportModel):
    ok: bool
    events: int
    head_hash: str
    breaks: list[ChainBreak]
    fingerprint_problems: list[str]


class AuditReport(ReportModel):
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
    recounts: Mapping[int, Analysis] | None = None,
) -> AuditReport:
    """The report on ``state``, which must be the fold of ``events``; ``visits`` are the
    mission's station visits however they were recorded (``intake.visits``), else those
    of its own stream; ``recounts`` the analysis of the observation forms at each log
    position a draft's cited figures were counted at, to check them against.

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
    statement = _statement(state, index, events, recounts or {})
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


def _cited(figure: CitedFigure, recount: Analysis | None) -> CitedFigureEntry:
    again = figure_of(recount, figure) if recount is not None else None
    return CitedFigureEntry(
        **figure.model_dump(),
        recounted_stations=again.stations if again else None,
        recounted_asked=again.asked if again else None,
        matches=None
        if recount is None
        else again is not None
        and (again.stations, again.asked, again.events)
        == (figure.stations, figure.asked, figure.events),
    )


def _statement(
    state: Mission,
    index: _Index,
    events: list[RecordedEvent],
    recounts: Mapping[int, Analysis],
) -> StatementReport:
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
                figures=[_cited(f, recounts.get(f.as_of_position)) for f in event.figures],
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
