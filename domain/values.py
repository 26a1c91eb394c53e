"""Value objects and vocabularies shared by commands, events and the mission state."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


CountryCode = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 code of a state (``KZ``, ``AZ``...)."""

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", strip_whitespace=True),
]
"""An id chosen by the caller: letters, digits and ``. _ : -``, at most 100 characters."""

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
"""Non-empty free text."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Frozen(BaseModel):
    """Base of every domain model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(StrEnum):
    """A mission's lifecycle stage, in order; ``cancelled`` can follow any open stage."""

    invited = "invited"
    forming = "forming"
    pre_election = "pre_election"
    election_day = "election_day"
    statement = "statement"
    follow_up = "follow_up"
    closed = "closed"
    cancelled = "cancelled"

    @property
    def order(self) -> int:
        return _STAGE_ORDER.index(self)


_STAGE_ORDER = [
    Stage.invited,
    Stage.forming,
    Stage.pre_election,
    Stage.election_day,
    Stage.statement,
    Stage.follow_up,
    Stage.closed,
    Stage.cancelled,
]


class Profile(StrEnum):
    """How much of the lifecycle a mission runs (DOMAIN.md, "Mission profiles")."""

    short_term = "short_term"
    limited = "limited"
    full = "full"


class ObserverRole(StrEnum):
    core_team = "core_team"
    long_term_observer = "long_term_observer"
    short_term_observer = "short_term_observer"


class ProfileRules(Frozen):
    """The optional parts of the lifecycle a profile switches on."""

    needs_assessment: bool
    interim_report: bool
    final_report: bool
    roles: frozenset[ObserverRole]


PROFILE_RULES: dict[Profile, ProfileRules] = {
    Profile.short_term: ProfileRules(
        needs_assessment=False,
        interim_report=False,
        final_report=False,
        roles=frozenset({ObserverRole.core_team, ObserverRole.short_term_observer}),
    ),
    Profile.limited: ProfileRules(
        needs_assessment=True,
        interim_report=True,
        final_report=True,
        roles=frozenset({ObserverRole.core_team, ObserverRole.long_term_observer}),
    ),
    Profile.full: ProfileRules(
        needs_assessment=True,
        interim_report=True,
        final_report=True,
        roles=frozenset(ObserverRole),
    ),
}


class ElectionType(StrEnum):
    parliamentary = "parliamentary"
    presidential = "presidential"
    local = "local"
    referendum = "referendum"
    general = "general"
    other = "other"


class Election(Frozen):
    name: Text
    type: ElectionType
    date: date


class DateWindow(Frozen):
    """An inclusive range of days."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> DateWindow:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


class StakeholderType(StrEnum):
    foreign_ministry = "foreign_ministry"
    central_election_commission = "central_election_commission"
    regional_election_commission = "regional_election_commission"
    local_administration = "local_administration"
    political_party = "political_party"
    candidate = "candidate"
    civil_society = "civil_society"
    media = "media"
    international_organisation = "international_organisation"
    other_mission = "other_mission"
    other = "other"


class Phase(StrEnum):
    """Election-day phases a station visit can observe."""

    opening = "opening"
    voting = "voting"
    counting = "counting"
    tabulation = "tabulation"


class FindingCategory(StrEnum):
    observer_access = "observer_access"
    procedures = "procedures"
    voter_influence = "voter_influence"
    campaigning = "campaigning"
    voter_information = "voter_information"
    secrecy_of_vote = "secrecy_of_vote"
    health_measures = "health_measures"
    observers_present = "observers_present"
    participation = "participation"
    technical = "technical"
    accessibility = "accessibility"
    counting = "counting"
    other = "other"


class Assessment(StrEnum):
    positive = "positive"
    concern = "concern"
    serious = "serious"


class Finding(Frozen):
    category: FindingCategory
    assessment: Assessment
    note: Text


class PhaseChecklist(Frozen):
    """Answers to one phase's checklist: question key -> answer."""

    phase: Phase
    answers: dict[Identifier, bool | int | str] = Field(default_factory=dict)


class Priority(StrEnum):
    priority = "priority"
    other = "other"


class Addressee(StrEnum):
    parliament = "parliament"
    central_election_commission = "central_election_commission"
    government = "government"
    judiciary = "judiciary"
    political_parties = "political_parties"
    media_regulator = "media_regulator"
    other = "other"


class Recommendation(Frozen):
    id: Identifier
    text: Text
    priority: Priority
    addressee: Addressee
    area: Text


class RecipientKind(StrEnum):
    member_state = "member_state"
    host_country = "host_country"
    international_organisation = "international_organisation"


class Recipient(Frozen):
    """Who receives the recommendations: a state (by ISO code) or an organisation (by name)."""

    kind: RecipientKind
    name: Text

    @model_validator(mode="after")
    def _state_by_code(self) -> Recipient:
        if self.kind is not RecipientKind.international_organisation:
            code = self.name.upper()
            if len(code) != 2 or not code.isalpha() or not code.isascii():
                raise ValueError(
                    f"a {self.kind.value} recipient is named by its ISO 3166-1 alpha-2 "
                    f"code, got {self.name!r}"
                )
            object.__setattr__(self, "name", code)
        return self

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.name}"


class DeadlineKind(StrEnum):
    """What a member state is asked for, with a deadline and a reminder ladder."""

    nomination = "nomination"
    acknowledgement = "acknowledgement"
    evidence = "evidence"


class DeliveryPurpose(StrEnum):
    request = "request"
    reminder = "reminder"
    escalation = "escalation"


class ReminderLadder(Frozen):
    """When to remind before a deadline, and when to escalate after it.

    Offsets are seconds before the deadline (``[604800, 172800, 0]``: a week, two days,
    on the day); durations are data, so tests run a ladder in seconds."""

    offsets_seconds: list[int] = Field(default_factory=lambda: [604_800, 172_800, 0])
    escalate_after_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ReminderLadder:
        if any(o < 0 for o in self.offsets_seconds):
            raise ValueError("reminder offsets are seconds before the deadline, never negative")
        if self.offsets_seconds != sorted(set(self.offsets_seconds), reverse=True):
            raise ValueError("reminder offsets must be distinct and in decreasing order")
        return self


class Rating(StrEnum):
    """ODIHR's scale for the implementation of a recommendation."""

    fully = "fully"
    mostly = "mostly"
    partially = "partially"
    not_implemented = "not_implemented"


class EvidenceItem(Frozen):
    recommendation_id: Identifier
    text: Text


class IntakeProgress(Frozen):
    """Election-day intake in aggregate, as the mission learns it (never report by report):
    counted over every station-visit report, through the intake or the mission's own
    command, corrections counted once."""

    reports: int = Field(default=0, ge=0)
    """Submissions recorded, corrections included."""
    visits: int = Field(default=0, ge=0)
    """Station visits, each counted once however often corrected."""
    incidents: int = Field(default=0, ge=0)
    corrections: int = Field(default=0, ge=0)
    stations_visited: int = Field(default=0, ge=0)
    localities: list[str] = Field(default_factory=list)
    teams: int = Field(default=0, ge=0)
    conflicts: int = Field(default=0, ge=0)
    """Stations reported by more than one team."""
    through_position: int = Field(default=0, ge=0)
    """The last global log position counted."""
