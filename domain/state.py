"""The mission's state: what folding its events with ``evolve`` yields."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import Field

from domain.values import (
    PROFILE_RULES,
    CitedFigure,
    CountryCode,
    CriticalAnswer,
    DateWindow,
    DeadlineKind,
    Election,
    EvidenceItem,
    Finding,
    Frozen,
    IntakeProgress,
    ObserverRole,
    PhaseChecklist,
    Profile,
    ProfileRules,
    Rating,
    Recipient,
    Recommendation,
    ReminderLadder,
    Stage,
    StakeholderType,
)


class ObserverStatus(StrEnum):
    nominated = "nominated"
    accepted = "accepted"
    withdrawn = "withdrawn"


class Observer(Frozen):
    observer_id: str
    member_state: CountryCode
    name: str
    role: ObserverRole
    code_of_conduct_signed: bool
    conflict_of_interest_declared: bool
    status: ObserverStatus = ObserverStatus.nominated
    withdrawal_reason: str | None = None


class Team(Frozen):
    team_id: str
    observer_ids: list[str]
    area: str | None = None


class HeadOfMission(Frozen):
    name: str
    title: str


class Meeting(Frozen):
    meeting_id: str
    stakeholder_type: StakeholderType
    stakeholder_name: str
    held_on: date
    participants: list[str]
    topics: list[str]
    summary: str


class StationVisit(Frozen):
    visit_id: str
    station_id: str
    locality: str
    team_id: str
    arrived_at: datetime
    departed_at: datetime
    checklists: list[PhaseChecklist]
    findings: list[Finding]
    corrects: str | None = None
    """The visit this one corrects (replaces), if any."""
    critical: list[CriticalAnswer] = Field(default_factory=list)
    """Its answers that met their form's ``eom:critical`` condition."""


class Report(Frozen):
    report_id: str
    published_on: date
    summary: str


class StatementDraft(Frozen):
    draft_id: str
    title: str
    text: str
    text_sha256: str
    figures: list[CitedFigure] = Field(default_factory=list)


class Approval(Frozen):
    draft_id: str
    text_sha256: str
    approved_by: str
    approved_at: datetime


class Publication(Frozen):
    draft_id: str
    text_sha256: str
    published_on: date
    venue: str
    history_fingerprint: str | None = None


class Delivery(Frozen):
    recipient: Recipient
    sent_on: date
    acknowledged_on: date | None = None


class ReminderTrack(Frozen):
    """What one member state has been sent for one deadline."""

    kind: DeadlineKind
    member_state: str
    cycle: int = 0
    sent: int = 0
    failures: int = 0
    last_step: int | None = None
    last_sent_message: str | None = None
    escalated: bool = False
    message_ids: list[str] = Field(default_factory=list)


class EvidenceCycle(Frozen):
    cycle: int
    member_states: list[str]
    deadline: datetime
    ladder: ReminderLadder | None = None
    submitted: dict[str, list[EvidenceItem]] = Field(default_factory=dict)
    reminders: bool = True


class RatingEntry(Frozen):
    rating: Rating
    rated_on: date
    basis: str


def track_key(kind: DeadlineKind, member_state: str, cycle: int = 0) -> str:
    return f"{kind.value}:{cycle}:{member_state}"


class Mission(Frozen):
    """One election observation mission, as its history says it is now.

    ``version`` counts the events folded into it: the stream version it reflects.
    """

    version: int = 0
    mission_id: str | None = None
    stage: Stage | None = None
    profile: Profile = Profile.short_term
    organisation: str | None = None
    host_country: CountryCode | None = None
    inviting_authority: str | None = None
    election: Election | None = None
    mission_window: DateWindow | None = None
    member_states: list[CountryCode] = Field(default_factory=list)
    role_quotas: dict[ObserverRole, int] = Field(default_factory=dict)
    registered_at: datetime | None = None
    time_zone: str | None = None
    """The host's IANA time zone, in which election-day rules read instants. A mission
    registered before missions named one has the zone its host implies (the host's only
    zone), or UTC where the host has several (``time_zone_note`` says so)."""
    time_zone_note: str | None = None
    needs_assessment_on: date | None = None
    head_of_mission: HeadOfMission | None = None
    observers: dict[str, Observer] = Field(default_factory=dict)
    teams: dict[str, Team] = Field(default_factory=dict)
    deployed_on: date | None = None
    meetings: dict[str, Meeting] = Field(default_factory=dict)
    interim_report: Report | None = None
    visits: dict[str, StationVisit] = Field(default_factory=dict)
    conflicting_stations: dict[str, list[str]] = Field(default_factory=dict)
    polls_open_at: datetime | None = None
    check_in_grace_seconds: float | None = None
    check_ins_watched: bool = True
    intake: IntakeProgress | None = None
    """Election-day intake in aggregate, once the mission has heard of it."""
    missed_check_ins: dict[str, datetime] = Field(default_factory=dict)
    """Teams that sent no opening report in time, with when it was due."""
    drafts: dict[str, StatementDraft] = Field(default_factory=dict)
    approval: Approval | None = None
    publication: Publication | None = None
    final_report: Report | None = None
    recommendations: dict[str, Recommendation] = Field(default_factory=dict)
    deliveries: dict[str, Delivery] = Field(default_factory=dict)
    postponements: int = 0
    nomination_deadline: datetime | None = None
    nomination_ladder: ReminderLadder | None = None
    nomination_reminders: bool = True
    declined: dict[str, str] = Field(default_factory=dict)
    acknowledge_by: datetime | None = None
    acknowledgement_ladder: ReminderLadder | None = None
    acknowledgement_reminders: bool = True
    reminders: dict[str, ReminderTrack] = Field(default_factory=dict)
    evidence_cycles: dict[int, EvidenceCycle] = Field(default_factory=dict)
    ratings: dict[str, list[RatingEntry]] = Field(default_factory=dict)
    reopened_for: list[str] = Field(default_factory=list)
    follow_up_ended_at: datetime | None = None
    closed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancellation_reason: str | None = None

    @property
    def rules(self) -> ProfileRules:
        return PROFILE_RULES[self.profile]

    def accepted_observers(self, role: ObserverRole | None = None) -> list[Observer]:
        return [
            o
            for o in self.observers.values()
            if o.status is ObserverStatus.accepted and (role is None or o.role is role)
        ]

    def active_members(self, team_id: str) -> list[str]:
        team = self.teams.get(team_id)
        if team is None:
            return []
        return [
            oid
            for oid in team.observer_ids
            if self.observers[oid].status is ObserverStatus.accepted
        ]

    def answered(self, kind: DeadlineKind, member_state: str, cycle: int = 0) -> bool:
        """Has the member state given what this deadline asks for?"""
        match kind:
            case DeadlineKind.nomination:
                return member_state in self.declined or any(
                    o.member_state == member_state for o in self.observers.values()
                )
            case DeadlineKind.acknowledgement:
                return any(
                    d.recipient.name == member_state and d.acknowledged_on is not None
                    for d in self.deliveries.values()
                )
            case DeadlineKind.evidence:
                found = self.evidence_cycles.get(cycle)
                return found is not None and member_state in found.submitted
        return False

    @property
    def follow_up_active(self) -> bool:
        """Recommendations went out and nobody ended their follow-up (nor the mission)."""
        return (
            bool(self.deliveries)
            and self.follow_up_ended_at is None
            and self.stage is not Stage.cancelled
        )

    @property
    def last_cycle(self) -> int:
        return max(self.evidence_cycles, default=0)

    @property
    def stations_visited(self) -> set[str]:
        return {v.station_id for v in self.visits.values()}

    @property
    def localities(self) -> list[str]:
        return sorted({v.locality for v in self.visits.values()})

    @property
    def visits_recorded(self) -> int:
        """Station visits through any path: the intake's count covers the mission's own."""
        return self.intake.visits if self.intake is not None else len(self.visits)

    def for_decisions(self, *, visits: bool = True) -> Mission:
        """This state without the free texts no rule reads (meeting summaries, visits'
        checklists and findings, statement texts, reports, recommendations' texts,
        evidence, reasons): what the mission's workflow holds and carries over
        continue-as-new, whatever the texts add up to. ``decide`` gives the same verdicts
        on it; readers fold the full state from the event store. ``visits`` false leaves
        out the visits of the mission's own stream too (where visits go through the
        intake, whose rules and counts hold them)."""
        return self.model_copy(
            update={
                "observers": {
                    k: o.model_copy(
                        update={
                            "withdrawal_reason": o.withdrawal_reason and o.withdrawal_reason[:0]
                        }
                    )
                    for k, o in self.observers.items()
                },
                "meetings": {
                    k: m.model_copy(update={"summary": "", "participants": [], "topics": []})
                    for k, m in self.meetings.items()
                },
                "visits": {
                    k: v.model_copy(update={"checklists": [], "findings": []})
                    for k, v in self.visits.items()
                }
                if visits
                else {},
                "conflicting_stations": self.conflicting_stations if visits else {},
                "interim_report": _without_summary(self.interim_report),
                "final_report": _without_summary(self.final_report),
                "drafts": {k: d.model_copy(update={"text": ""}) for k, d in self.drafts.items()},
                "recommendations": {
                    k: r.model_copy(update={"text": ""}) for k, r in self.recommendations.items()
                },
                "declined": {k: "" for k in self.declined},
                "evidence_cycles": {
                    n: c.model_copy(update={"submitted": {k: [] for k in c.submitted}})
                    for n, c in self.evidence_cycles.items()
                },
                "ratings": {
                    k: [r.model_copy(update={"basis": ""}) for r in entries]
                    for k, entries in self.ratings.items()
                },
                "cancellation_reason": (
                    None if self.cancellation_reason is None else self.cancellation_reason[:200]
                ),
            }
        )

    @property
    def check_in_due_at(self) -> datetime | None:
        """When teams' opening reports are due (polls open plus the grace)."""
        if (
            self.polls_open_at is None
            or self.check_in_grace_seconds is None
            or not self.check_ins_watched
        ):
            return None
        return self.polls_open_at + timedelta(seconds=self.check_in_grace_seconds)


def _without_summary(report: Report | None) -> Report | None:
    return None if report is None else report.model_copy(update={"summary": ""})


def _blank(text: str | None) -> str | None:
    """Gone, but still saying whether there was one."""
    return None if text is None else ""
