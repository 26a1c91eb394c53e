"""Events: facts the mission has recorded, named in the past tense.

Every event carries a literal ``type`` (the ``Event`` union's discriminator) and the
``schema_version`` of its shape, so an old event can be upcast when a shape changes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import Field, PositiveInt, TypeAdapter

from domain.values import (
    CitedFigure,
    CountryCode,
    DateWindow,
    DeadlineKind,
    DeliveryPurpose,
    Election,
    EvidenceItem,
    Finding,
    Frozen,
    Identifier,
    IntakeProgress,
    Line,
    ObserverRole,
    Phase,
    PhaseChecklist,
    Profile,
    Rating,
    Recipient,
    Recommendation,
    ReminderLadder,
    Sha256,
    StakeholderType,
    Text,
)


class EventBase(Frozen):
    schema_version: int = 1


class InvitationRegistered(EventBase):
    type: Literal["InvitationRegistered"] = "InvitationRegistered"
    mission_id: Identifier
    organisation: Line
    host_country: CountryCode
    inviting_authority: Line
    election: Election
    mission_window: DateWindow
    member_states: list[CountryCode]
    profile: Profile
    role_quotas: dict[ObserverRole, PositiveInt]
    registered_at: datetime
    time_zone: str | None = None
    """The host's IANA time zone (recorded since missions name one; an earlier record's
    zone is the one its host implies, see ``Mission.time_zone``)."""


class NeedsAssessmentRecorded(EventBase):
    type: Literal["NeedsAssessmentRecorded"] = "NeedsAssessmentRecorded"
    conducted_on: date
    summary: Text


class HeadOfMissionAppointed(EventBase):
    type: Literal["HeadOfMissionAppointed"] = "HeadOfMissionAppointed"
    name: Line
    title: Line


class ObserverNominated(EventBase):
    type: Literal["ObserverNominated"] = "ObserverNominated"
    observer_id: Identifier
    member_state: CountryCode
    name: Line
    role: ObserverRole
    code_of_conduct_signed: bool
    conflict_of_interest_declared: bool


class ObserverAccepted(EventBase):
    type: Literal["ObserverAccepted"] = "ObserverAccepted"
    observer_id: Identifier
    accepted_at: datetime


class ObserverWithdrawn(EventBase):
    type: Literal["ObserverWithdrawn"] = "ObserverWithdrawn"
    observer_id: Identifier
    reason: Text


class TeamFormed(EventBase):
    type: Literal["TeamFormed"] = "TeamFormed"
    team_id: Identifier
    observer_ids: list[Identifier]
    area: Line | None


class MissionDeployed(EventBase):
    type: Literal["MissionDeployed"] = "MissionDeployed"
    deployed_on: date


class MeetingRecorded(EventBase):
    type: Literal["MeetingRecorded"] = "MeetingRecorded"
    meeting_id: Identifier
    stakeholder_type: StakeholderType
    stakeholder_name: Line
    held_on: date
    participants: list[Line]
    topics: list[Line]
    summary: Text


class InterimReportPublished(EventBase):
    type: Literal["InterimReportPublished"] = "InterimReportPublished"
    report_id: Identifier
    published_on: date
    summary: Text


class ElectionDayOpened(EventBase):
    type: Literal["ElectionDayOpened"] = "ElectionDayOpened"
    opened_at: datetime
    polls_open_at: datetime | None = None
    """When the polls open; teams report opening by then plus the check-in grace."""
    check_in_grace_seconds: float | None = None
    check_ins_watched: bool = True
    """Whether teams' opening reports are awaited: not when the polls opened (plus the
    grace) before election day was opened in eom, as for a mission entered after the fact."""


class IntakeProgressed(EventBase):
    """What the intake holds so far, in aggregate: how the mission follows election day
    without a history event per report."""

    type: Literal["IntakeProgressed"] = "IntakeProgressed"
    progress: IntakeProgress


class CheckInMissed(EventBase):
    """A team sent no report of a phase by the time it was due: the coordinator is alerted."""

    type: Literal["CheckInMissed"] = "CheckInMissed"
    team_id: Identifier
    phase: Phase
    due_at: datetime


class CheckInCleared(EventBase):
    """A team alerted for a missing opening report has sent it: the alert is cleared."""

    type: Literal["CheckInCleared"] = "CheckInCleared"
    team_id: Identifier
    phase: Phase


class StationVisitRecorded(EventBase):
    type: Literal["StationVisitRecorded"] = "StationVisitRecorded"
    visit_id: Identifier
    station_id: Identifier
    locality: Line
    team_id: Identifier
    arrived_at: datetime
    departed_at: datetime
    checklists: list[PhaseChecklist]
    findings: list[Finding]
    corrects: Identifier | None = None


class StationReportsConflicted(EventBase):
    """Two or more teams reported the same station: every report is kept, the clash flagged."""

    type: Literal["StationReportsConflicted"] = "StationReportsConflicted"
    station_id: Identifier
    visit_ids: list[Identifier]
    team_ids: list[Identifier]


class ElectionDayClosed(EventBase):
    type: Literal["ElectionDayClosed"] = "ElectionDayClosed"
    closed_at: datetime
    stations_visited: int
    visits: int


class Coverage(Frozen):
    """What a statement's findings rest on, stated so that it cannot overclaim."""

    stations_visited: int
    visits: int
    localities: list[str]
    """The first ``LOCALITIES_LISTED`` localities visited, in order."""
    teams: int
    locality_count: int | None = None
    """How many localities were visited (unset in drafts made before it was kept: then
    as many as ``localities`` lists)."""


class StatementDrafted(EventBase):
    type: Literal["StatementDrafted"] = "StatementDrafted"
    draft_id: Identifier
    title: Line
    text: Text
    text_sha256: Sha256
    coverage: Coverage
    figures: list[CitedFigure] = Field(default_factory=list)
    """The figures of the observation forms the draft cites, as counted when drafted."""


class StatementApproved(EventBase):
    type: Literal["StatementApproved"] = "StatementApproved"
    draft_id: Identifier
    text_sha256: Sha256
    approved_by: Line
    approved_at: datetime


class StatementPublished(EventBase):
    schema_version: int = 2
    type: Literal["StatementPublished"] = "StatementPublished"
    draft_id: Identifier
    text_sha256: Sha256
    published_on: date
    venue: Line
    history_fingerprint: Sha256 | None = None
    """Hash of the last event before this one: the history the statement was drawn from."""


class FinalReportPublished(EventBase):
    type: Literal["FinalReportPublished"] = "FinalReportPublished"
    report_id: Identifier
    published_on: date
    summary: Text


class RecommendationsIssued(EventBase):
    type: Literal["RecommendationsIssued"] = "RecommendationsIssued"
    recommendations: list[Recommendation]


class RecommendationsSent(EventBase):
    schema_version: int = 2
    type: Literal["RecommendationsSent"] = "RecommendationsSent"
    recipients: list[Recipient]
    recommendation_ids: list[Identifier]
    sent_on: date
    acknowledge_by: datetime | None = None
    ladder: ReminderLadder | None = None
    reminders: bool = True
    """False: recorded without reminders (an acknowledgement date already past)."""


class RecommendationsAcknowledged(EventBase):
    type: Literal["RecommendationsAcknowledged"] = "RecommendationsAcknowledged"
    recipient: Recipient
    acknowledged_on: date


class NominationsRequested(EventBase):
    type: Literal["NominationsRequested"] = "NominationsRequested"
    member_states: list[CountryCode]
    deadline: datetime
    ladder: ReminderLadder | None
    reminders: bool = True
    """False: recorded without reminders (a deadline already past when it was set)."""


class NominationDeclined(EventBase):
    type: Literal["NominationDeclined"] = "NominationDeclined"
    member_state: CountryCode
    reason: Text


class ReminderSent(EventBase):
    """A request or reminder reached a member state's focal point."""

    type: Literal["ReminderSent"] = "ReminderSent"
    kind: DeadlineKind
    member_state: CountryCode
    purpose: DeliveryPurpose
    step: int
    cycle: int
    message_id: Line
    channel: Line | None
    address: Line | None


class DeliveryFailed(EventBase):
    type: Literal["DeliveryFailed"] = "DeliveryFailed"
    kind: DeadlineKind
    member_state: CountryCode
    purpose: DeliveryPurpose
    step: int
    cycle: int
    message_id: Line
    error: Text


class DeadlineEscalated(EventBase):
    """The deadline passed unanswered (or the state could not be reached): escalated."""

    type: Literal["DeadlineEscalated"] = "DeadlineEscalated"
    kind: DeadlineKind
    member_state: CountryCode
    cycle: int
    message_id: Line
    channel: Line | None
    address: Line | None


class EvidenceRequested(EventBase):
    type: Literal["EvidenceRequested"] = "EvidenceRequested"
    cycle: int
    member_states: list[CountryCode]
    deadline: datetime
    ladder: ReminderLadder | None
    reminders: bool = True
    """False: recorded without reminders (a cycle whose dates are past)."""


class EvidenceSubmitted(EventBase):
    type: Literal["EvidenceSubmitted"] = "EvidenceSubmitted"
    member_state: CountryCode
    cycle: int
    evidence: list[EvidenceItem]


class ImplementationRated(EventBase):
    type: Literal["ImplementationRated"] = "ImplementationRated"
    recommendation_id: Identifier
    rating: Rating
    rated_on: date
    basis: Text


class ReviewReopened(EventBase):
    type: Literal["ReviewReopened"] = "ReviewReopened"
    new_mission_id: Identifier
    reason: Text


class FollowUpEnded(EventBase):
    type: Literal["FollowUpEnded"] = "FollowUpEnded"
    reason: Text
    ended_at: datetime


class ElectionPostponed(EventBase):
    type: Literal["ElectionPostponed"] = "ElectionPostponed"
    previous_date: date
    new_date: date
    mission_window: DateWindow
    reason: Text


class MissionClosed(EventBase):
    type: Literal["MissionClosed"] = "MissionClosed"
    closed_at: datetime
    note: Text | None


class MissionCancelled(EventBase):
    type: Literal["MissionCancelled"] = "MissionCancelled"
    cancelled_at: datetime
    reason: Text


Event = Annotated[
    InvitationRegistered
    | NeedsAssessmentRecorded
    | HeadOfMissionAppointed
    | ObserverNominated
    | ObserverAccepted
    | ObserverWithdrawn
    | TeamFormed
    | MissionDeployed
    | MeetingRecorded
    | InterimReportPublished
    | ElectionDayOpened
    | IntakeProgressed
    | CheckInMissed
    | CheckInCleared
    | StationVisitRecorded
    | StationReportsConflicted
    | ElectionDayClosed
    | StatementDrafted
    | StatementApproved
    | StatementPublished
    | FinalReportPublished
    | RecommendationsIssued
    | RecommendationsSent
    | RecommendationsAcknowledged
    | NominationsRequested
    | NominationDeclined
    | ReminderSent
    | DeliveryFailed
    | DeadlineEscalated
    | EvidenceRequested
    | EvidenceSubmitted
    | ImplementationRated
    | ReviewReopened
    | FollowUpEnded
    | ElectionPostponed
    | MissionClosed
    | MissionCancelled,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}
