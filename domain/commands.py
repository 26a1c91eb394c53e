"""Commands: what a coordinator (or head of mission) asks the mission to do.

Each is a frozen model with a literal ``type`` that discriminates the ``Command`` union,
so a command travels as plain JSON (CLI file, Temporal update, HTTP body) and comes
back as the right class.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, get_args

from pydantic import Field, TypeAdapter, ValidationInfo, model_validator

from domain.values import (
    Citation,
    CitedFigure,
    Count,
    CountryCode,
    DateWindow,
    Day,
    DeadlineKind,
    DeliveryPurpose,
    Election,
    EvidenceItem,
    Finding,
    Frozen,
    Identifier,
    Line,
    Moment,
    ObserverRole,
    PhaseChecklist,
    PollingStation,
    Profile,
    Quota,
    Rating,
    Recipient,
    Recommendation,
    ReminderLadder,
    Sha256,
    StakeholderType,
    Text,
    TimeZone,
    recorded,
)

MAX_COMMAND_BYTES = 256 * 1024
"""A command's JSON, at most: it travels in a Temporal update and again as its events'
data (each payload at most 2 MB; the ten updates a workflow takes at once, with their
events, within one 4 MB message)."""


class CommandBase(Frozen):
    """What every command shares: a bound on its size, whatever its fields hold."""

    @model_validator(mode="after")
    def _fits_a_message(self, info: ValidationInfo) -> Self:
        if not recorded(info):
            size = len(self.__pydantic_serializer__.to_json(self))
            if size > MAX_COMMAND_BYTES:
                raise ValueError(
                    f"the command is {size} bytes of JSON, more than {MAX_COMMAND_BYTES}: "
                    "send long texts in parts (a summary, not the minutes)"
                )
        return self


class RegisterInvitation(CommandBase):
    """Register the host's invitation: organisation, election, window, member states, profile."""

    type: Literal["register_invitation"] = "register_invitation"
    mission_id: Identifier
    organisation: Line
    host_country: CountryCode
    inviting_authority: Line
    election: Election
    mission_window: DateWindow
    member_states: list[CountryCode] = Field(min_length=1, max_length=250)
    profile: Profile = Profile.short_term
    role_quotas: dict[ObserverRole, Quota] = Field(default_factory=dict)
    time_zone: TimeZone | None = None
    """The host's IANA time zone (``Asia/Almaty``): election-day rules read instants in it,
    and times written without an offset are read as local there. Optional where the host
    has one zone in the time-zone database; required where it has several."""


class RecordNeedsAssessment(CommandBase):
    """Record the needs assessment (limited and full missions)."""

    type: Literal["record_needs_assessment"] = "record_needs_assessment"
    conducted_on: Day
    summary: Text


class AppointHeadOfMission(CommandBase):
    """Appoint (or replace) the head of mission; an invited mission starts forming."""

    type: Literal["appoint_head_of_mission"] = "appoint_head_of_mission"
    name: Line
    title: Line


class NominateObserver(CommandBase):
    """Record a member state's nomination of an observer."""

    type: Literal["nominate_observer"] = "nominate_observer"
    observer_id: Identifier
    member_state: CountryCode
    name: Line
    role: ObserverRole = ObserverRole.short_term_observer
    code_of_conduct_signed: bool = False
    conflict_of_interest_declared: bool = False


class AcceptObserver(CommandBase):
    """Accept a nominated observer (pledge, declaration and quota checked)."""

    type: Literal["accept_observer"] = "accept_observer"
    observer_id: Identifier


class WithdrawObserver(CommandBase):
    """Withdraw an observer's nomination or acceptance."""

    type: Literal["withdraw_observer"] = "withdraw_observer"
    observer_id: Identifier
    reason: Text


class FormTeam(CommandBase):
    """Form an observer team (re-pairs observers already in other teams)."""

    type: Literal["form_team"] = "form_team"
    team_id: Identifier
    observer_ids: list[Identifier] = Field(min_length=1, max_length=50)
    area: Line | None = None


class DeployMission(CommandBase):
    """Deploy the mission: formation ends, the pre-election stage begins."""

    type: Literal["deploy_mission"] = "deploy_mission"
    deployed_on: Day


class RecordMeeting(CommandBase):
    """Record a pre-election meeting with a stakeholder."""

    type: Literal["record_meeting"] = "record_meeting"
    meeting_id: Identifier
    stakeholder_type: StakeholderType
    stakeholder_name: Line
    held_on: Day
    participants: list[Line] = Field(default_factory=list, max_length=200)
    topics: list[Line] = Field(default_factory=list, max_length=100)
    summary: Text


class PublishInterimReport(CommandBase):
    """Publish the interim report (limited and full missions)."""

    type: Literal["publish_interim_report"] = "publish_interim_report"
    report_id: Identifier
    published_on: Day
    summary: Text


class OpenElectionDay(CommandBase):
    """Open election day: station visits can be recorded."""

    type: Literal["open_election_day"] = "open_election_day"
    polls_open_at: Moment | None = None
    """When the polls open (default: now; without an offset, in host time). A team with
    no opening report by then plus ``check_in_grace_minutes`` is reported missing."""
    check_in_grace_minutes: float = Field(default=60, gt=0, le=24 * 60)


class RecordStationVisit(CommandBase):
    """Record a team's polling-station visit with its checklists and findings."""

    type: Literal["record_station_visit"] = "record_station_visit"
    visit_id: Identifier
    station_id: Identifier
    locality: Line
    """The polling station's locality, as it is registered."""
    team_id: Identifier
    arrived_at: Moment
    departed_at: Moment
    checklists: list[PhaseChecklist] = Field(min_length=1, max_length=8)
    findings: list[Finding] = Field(default_factory=list, max_length=200)
    corrects: Identifier | None = None
    """The id of an earlier visit of the same team that this one replaces (the earlier
    stays in the record; counts use the latest correction)."""


class RegisterPollingStations(CommandBase):
    """Register polling stations observers may report from (one registered already, as it
    is, changes nothing; one registered elsewhere is refused)."""

    type: Literal["register_polling_stations"] = "register_polling_stations"
    stations: list[PollingStation] = Field(min_length=1, max_length=1000)


class CloseElectionDay(CommandBase):
    """Close election day: the statement stage begins."""

    type: Literal["close_election_day"] = "close_election_day"


class DraftStatement(CommandBase):
    """Draft the preliminary statement; its coverage is recorded with it, and the
    figures of the observation forms it cites, as eom counts them when it is recorded."""

    type: Literal["draft_statement"] = "draft_statement"
    draft_id: Identifier
    title: Line
    text: Text
    citations: list[Citation] = Field(default_factory=list, max_length=50)
    figures: list[CitedFigure] = Field(
        default_factory=list,
        max_length=50,
        json_schema_extra={"readOnly": True},
        description="filled by eom from its count of the forms' answers: what is sent is replaced",
    )


class ApproveStatement(CommandBase):
    """Approve one exact draft (by its text's sha256) as head of mission."""

    type: Literal["approve_statement"] = "approve_statement"
    draft_id: Identifier
    text_sha256: Sha256
    approved_by: Line


class PublishStatement(CommandBase):
    """Publish the approved draft, e.g. at a press conference."""

    type: Literal["publish_statement"] = "publish_statement"
    draft_id: Identifier
    text_sha256: Sha256
    published_on: Day
    venue: Line = "press conference"
    history_fingerprint: Sha256 | None = None
    """Set by the mission workflow, not the caller: the hash of the last event recorded
    before publication, so that the statement names the history it was drawn from."""


class PublishFinalReport(CommandBase):
    """Publish the final report."""

    type: Literal["publish_final_report"] = "publish_final_report"
    report_id: Identifier
    published_on: Day
    summary: Text


class IssueRecommendations(CommandBase):
    """Issue recommendations (id, text, priority, addressee, area)."""

    type: Literal["issue_recommendations"] = "issue_recommendations"
    recommendations: list[Recommendation] = Field(min_length=1, max_length=500)


class SendRecommendations(CommandBase):
    """Send the recommendations to member states, the host, organisations."""

    type: Literal["send_recommendations"] = "send_recommendations"
    recipients: list[Recipient] = Field(min_length=1, max_length=300)
    sent_on: Day
    acknowledge_by: Moment | None = None
    """States are reminded until they acknowledge, and escalated after this (without an
    offset, in host time)."""
    ladder: ReminderLadder | None = None
    reminders: bool = True
    """False: record without reminders (needed when ``acknowledge_by`` is already past)."""


class AcknowledgeRecommendations(CommandBase):
    """Record a recipient's acknowledgement of the recommendations."""

    type: Literal["acknowledge_recommendations"] = "acknowledge_recommendations"
    recipient: Recipient
    acknowledged_on: Day


class RequestNominations(CommandBase):
    """Ask every participating member state to nominate observers by a deadline; each is
    reminded until it nominates or declines, then escalated."""

    type: Literal["request_nominations"] = "request_nominations"
    deadline: Moment
    """Without an offset, in host time."""
    ladder: ReminderLadder | None = None
    reminders: bool = True
    """False: record without reminders (needed when the deadline is already past, as for
    a mission entered after the fact)."""


class DeclineNomination(CommandBase):
    """Record a member state's answer that it will send no observer."""

    type: Literal["decline_nomination"] = "decline_nomination"
    member_state: CountryCode
    reason: Text


class RecordDelivery(CommandBase):
    """Record a reminder, request or escalation delivered (or not) to a member state."""

    type: Literal["record_delivery"] = "record_delivery"
    kind: DeadlineKind
    member_state: CountryCode
    purpose: DeliveryPurpose
    step: Count
    cycle: Count = 0
    message_id: Line
    delivered: bool
    channel: Line | None = None
    address: Line | None = None
    error: Text | None = None


class RequestEvidence(CommandBase):
    """Open a follow-up cycle: ask the host and member states for implementation evidence."""

    type: Literal["request_evidence"] = "request_evidence"
    cycle: Count = Field(ge=1)
    member_states: list[CountryCode] = Field(min_length=1, max_length=250)
    deadline: Moment
    """Without an offset, in host time."""
    ladder: ReminderLadder | None = None
    reminders: bool = True
    """False: record without reminders (needed when the deadline is already past)."""


class SubmitEvidence(CommandBase):
    """Record a state's evidence of implementation for a follow-up cycle."""

    type: Literal["submit_evidence"] = "submit_evidence"
    member_state: CountryCode
    cycle: Count = Field(ge=1)
    evidence: list[EvidenceItem] = Field(min_length=1, max_length=500)


class RateImplementation(CommandBase):
    """Rate a recommendation's implementation (earlier ratings are kept)."""

    type: Literal["rate_implementation"] = "rate_implementation"
    recommendation_id: Identifier
    rating: Rating
    rated_on: Day
    basis: Text


class ReopenReview(CommandBase):
    """A new election in the host country reopens the review of these recommendations."""

    type: Literal["reopen_review"] = "reopen_review"
    new_mission_id: Identifier
    reason: Text


class EndFollowUp(CommandBase):
    """End the follow-up of a closed mission: its record becomes fully read-only."""

    type: Literal["end_follow_up"] = "end_follow_up"
    reason: Text


class PostponeElection(CommandBase):
    """Postpone the election: election day and the mission window move."""

    type: Literal["postpone_election"] = "postpone_election"
    new_date: Day
    reason: Text


class CloseMission(CommandBase):
    """Close the mission; its record becomes read-only."""

    type: Literal["close_mission"] = "close_mission"
    note: Text | None = None


class CancelMission(CommandBase):
    """Cancel the mission, with the reason."""

    type: Literal["cancel_mission"] = "cancel_mission"
    reason: Text


Command = Annotated[
    RegisterInvitation
    | RecordNeedsAssessment
    | AppointHeadOfMission
    | NominateObserver
    | AcceptObserver
    | WithdrawObserver
    | FormTeam
    | DeployMission
    | RecordMeeting
    | PublishInterimReport
    | OpenElectionDay
    | RegisterPollingStations
    | RecordStationVisit
    | CloseElectionDay
    | DraftStatement
    | ApproveStatement
    | PublishStatement
    | PublishFinalReport
    | IssueRecommendations
    | SendRecommendations
    | AcknowledgeRecommendations
    | RequestNominations
    | DeclineNomination
    | RecordDelivery
    | RequestEvidence
    | SubmitEvidence
    | RateImplementation
    | ReopenReview
    | EndFollowUp
    | PostponeElection
    | CloseMission
    | CancelMission,
    Field(discriminator="type"),
]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)

COMMAND_TYPES: dict[str, type[Frozen]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Command)[0])
}
"""Command type name -> model, in lifecycle order (the CLI builds one subcommand each)."""
