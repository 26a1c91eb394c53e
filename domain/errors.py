"""Refusals: one ``DomainError`` subclass per rule, each naming the rule it enforces.

``str(error)`` is ``"<rule>: <message>"`` so that a refusal reads the same in the CLI,
a Temporal update rejection, a log line and a test.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A command the mission's rules refuse. Nothing is recorded."""

    rule: ClassVar[str] = "domain_rule"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def _rule(name: str, doc: str) -> type[DomainError]:
    return type(
        "".join(part.title() for part in name.split("_")),
        (DomainError,),
        {"rule": name, "__doc__": doc, "__module__": __name__},
    )


MissionNotRegistered = _rule(
    "mission_not_registered", "A command other than the invitation on an unknown mission."
)
MissionAlreadyRegistered = _rule(
    "mission_already_registered", "An invitation for a mission id already in use."
)
MissionClosed = _rule("mission_closed", "Any command on a closed mission.")
MissionRecordFull = _rule(
    "mission_record_full",
    "A command that would take the mission's record past what its workflow carries.",
)
MissionCancelled = _rule("mission_cancelled", "Any command on a cancelled mission.")
StageSkipped = _rule("stage_skipped", "A command that belongs to a later stage.")
StageOver = _rule("stage_over", "A command whose stage has passed.")
DuplicateId = _rule("duplicate_id", "An id (observer, team, meeting, visit...) reused.")
UnknownReference = _rule(
    "unknown_reference", "A reference to an observer, team, draft or recipient that does not exist."
)
ElectionOutsideMissionWindow = _rule(
    "election_outside_mission_window", "Election day must fall inside the mission window."
)
HostAmongMemberStates = _rule(
    "host_among_member_states", "The host country is never a participating (observing) state."
)
ObserverFromHostCountry = _rule(
    "observer_from_host_country", "The host country never supplies observers."
)
MemberStateNotParticipating = _rule(
    "member_state_not_participating", "Only states asked to take part nominate observers."
)
RoleNotInProfile = _rule("role_not_in_profile", "The mission's profile has no such observer role.")
PledgeMissing = _rule(
    "pledge_missing",
    "An observer is accepted only with a signed code of conduct and conflict-of-interest "
    "declaration.",
)
RoleQuotaExceeded = _rule("role_quota_exceeded", "More accepted observers than the role quota.")
ObserverNotActive = _rule(
    "observer_not_active", "A withdrawn or not yet accepted observer cannot do this."
)
AlreadyAccepted = _rule("already_accepted", "The observer has already been accepted.")
MeetingOutsideMissionWindow = _rule(
    "meeting_outside_mission_window", "A meeting must be held inside the mission window."
)
MeetingNotBeforeElectionDay = _rule(
    "meeting_not_before_election_day", "Pre-election meetings are held before election day."
)
TimeZoneRequired = _rule(
    "time_zone_required",
    "A host with several time zones in the time-zone database names the mission's zone.",
)
TimeZoneNotInHost = _rule(
    "time_zone_not_in_host", "A mission's (or polling station's) zone is one of the host's zones."
)
DeadlinePassed = _rule(
    "deadline_passed",
    "A deadline already past when it is set is refused, unless recorded without reminders.",
)
StationElsewhere = _rule(
    "station_elsewhere", "A visit names the locality its polling station is registered in."
)
VisitNotOnElectionDay = _rule(
    "visit_not_on_election_day",
    "A station visit is dated election day; counting may run into the next morning.",
)
VisitTimesInverted = _rule("visit_times_inverted", "A visit cannot end before it starts.")
TeamNotActive = _rule("team_not_active", "A team with no accepted observer left cannot report.")
AlreadyAppointed = _rule(
    "already_appointed", "The head of mission named is already appointed, with that title."
)
NoHeadOfMission = _rule("no_head_of_mission", "The mission deploys only with a head of mission.")
NoAcceptedObservers = _rule(
    "no_accepted_observers", "The mission deploys only with at least one accepted observer."
)
StepNotInProfile = _rule(
    "step_not_in_profile", "A step (needs assessment, interim or final report) the profile lacks."
)
StepMissing = _rule(
    "step_missing", "A step the profile requires has not been done before moving on."
)
NoStationVisits = _rule(
    "no_station_visits", "Election day closes only after at least one station visit."
)
ElectionDayNotClosed = _rule(
    "election_day_not_closed", "The statement is drafted and published after election day closes."
)
DraftTextMismatch = _rule(
    "draft_text_mismatch", "An approval or publication must name the exact text of the draft."
)
ApproverNotHeadOfMission = _rule(
    "approver_not_head_of_mission", "Only the head of mission approves the statement."
)
AlreadyApproved = _rule("already_approved", "The head of mission approves one draft once.")
UnapprovedDraft = _rule(
    "unapproved_draft", "Only the exact draft the head of mission approved is published."
)
PublishedBeforeElectionDay = _rule(
    "published_before_election_day", "A statement is published on or after election day."
)
AlreadyPublished = _rule("already_published", "The statement has already been published.")
RecommendationsBeforeStatement = _rule(
    "recommendations_before_statement",
    "Recommendations are issued only after the statement is published.",
)
NoRecommendations = _rule("no_recommendations", "Nothing to send: no recommendations issued.")
RecipientNotEligible = _rule(
    "recipient_not_eligible", "Recommendations go to member states, the host and organisations."
)
AlreadySent = _rule("already_sent", "The recommendations were already sent to this recipient.")
NotSent = _rule("not_sent", "An acknowledgement from a recipient never sent the recommendations.")
AlreadyAcknowledged = _rule(
    "already_acknowledged", "The recipient has already acknowledged the recommendations."
)
PostponementNotLater = _rule(
    "postponement_not_later", "A postponement moves election day to a later date."
)
AlreadyAnswered = _rule("already_answered", "The member state has already answered this request.")
FollowUpNotOpen = _rule(
    "follow_up_not_open", "Follow-up needs recommendations sent, and ends only once."
)

# -- election-day submissions (intake) -------------------------------------------------------

WrongMission = _rule(
    "wrong_mission", "A submission names another mission than the one it was sent to."
)
IntakeNotOpen = _rule(
    "intake_not_open", "Submissions are taken while election day is open, and only then."
)
UnknownStation = _rule(
    "unknown_station", "A submission names a polling station the mission has not registered."
)
UnknownTeam = _rule("unknown_team", "A submission names a team the mission has not formed.")
SubmissionIdReused = _rule(
    "submission_id_reused",
    "A submission id already stands for a different submission: a change is a correction.",
)
CorrectionOfUnknownReport = _rule(
    "correction_of_unknown_report", "A correction must name a report the mission holds."
)
AlreadyCorrected = _rule(
    "already_corrected",
    "A report is corrected once: a later change corrects the correction (no branching).",
)
CorrectionMismatch = _rule(
    "correction_mismatch", "A correction replaces a report of its own kind, by the same team."
)


class AnswerInvalid(DomainError):
    """An answer its form's question does not take: an unknown question, the wrong type, a
    choice not in the list, a failed constraint, a required answer missing where relevant."""

    rule = "answer_invalid"

    def __init__(self, question: str, detail: str, *, where: str = "") -> None:
        super().__init__(f"{where}question {question!r}: {detail}")
        self.question = question
        self.detail = detail


FormNotAssigned = _rule(
    "form_not_assigned",
    "A checklist names a form version the mission has not assigned, or is free (names no "
    "form) for a phase the mission observes with a form.",
)
FormFilledTwice = _rule(
    "form_filled_twice", "A station visit fills each of its forms once (one per phase)."
)
StationsInvalid = _rule(
    "stations_invalid", "A polling-station list with repeated ids or a station moved elsewhere."
)

RULES: frozenset[str] = frozenset(cls.rule for cls in DomainError.__subclasses__())
"""Every rule's name: the codes of the domain's refusals."""
