"""Value objects and vocabularies shared by commands, events and the mission state.

What a model accepts must be storable, hashable and deliverable: PostgreSQL's ``jsonb``
takes no NUL character, UTF-8 no lone surrogate, RFC 8785 (the hash's canonical JSON) no
integer beyond ±(2**53 - 1) and no NaN or Infinity, and an e-mail header no line break.
So every text, number, day and list a command, report or directory entry carries has a
type here that says what it may hold, and a refusal names the field and the rule.

Facts already recorded are read as they were recorded: validation under the
``RECORDED`` context (the event store's readers, the Temporal payloads between eom's own
processes, which their senders validated) skips the text, day and instant rules, so that
a rule added later never makes an earlier history unreadable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from domain.host_time import check_zone

RECORDED: Final[dict[str, Any]] = {"recorded": True}
"""Validation context for facts already recorded (see the module's docstring)."""


def recorded(info: ValidationInfo) -> bool:
    """Whether this validation reads a fact already recorded (the ``RECORDED`` context)."""
    context = info.context
    return isinstance(context, dict) and bool(context.get("recorded"))


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


CountryCode = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 code of a state (``KZ``, ``AZ``...)."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def is_identifier(value: str) -> bool:
    """Whether ``value`` is an ``Identifier`` as given (letters, digits and ``. _ : -``,
    starting with a letter or digit, at most 100 characters)."""
    return _IDENTIFIER.match(value) is not None


Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, strip_whitespace=True),
]
"""An id chosen by the caller: letters, digits and ``. _ : -``, at most 100 characters."""

# -- text --------------------------------------------------------------------------------------

LINE_MAX = 500
"""Characters in a single-line text: a name, a title, a place."""
TEXT_MAX = 100_000
"""Characters in a free text: a summary, a finding, a statement (about 15,000 words)."""

# What a text may not hold: control characters (Unicode category Cc: U+0000-U+001F and
# U+007F-U+009F; line feed and tab are allowed in free text, a carriage return there is
# read as a line break), lone surrogates (category Cs, which UTF-8 cannot encode), and in
# a single line the line and paragraph separators U+2028 and U+2029 too; and the explicit
# directional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make
# a text display in another order than it is recorded (a head of mission would approve
# what they did not read; Unicode TR 36's "bidirectional text spoofing"): right-to-left
# scripts need none of them. The same classes, in ECMA-262 syntax, are the "pattern" of
# the JSON schema that the API publishes.
_BIDI_CONTROLS = "\\u202a-\\u202e\\u2066-\\u2069"
_NOT_IN_LINE = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff" + _BIDI_CONTROLS
_NOT_IN_TEXT = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ud800-\\udfff" + _BIDI_CONTROLS
_FIRST_NOT_IN = {
    False: re.compile(f"[{_NOT_IN_LINE}]"),
    True: re.compile(f"[{_NOT_IN_TEXT}]"),
}


def _describe(char: str) -> str:
    if char == "\0":
        return "the NUL character (U+0000)"
    if char in "\n\r":
        return "a line break"
    if char == "\t":
        return "a tab"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X})"
    if char in "\u2028\u2029":
        return f"a line separator (U+{ord(char):04X})"
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return f"a directional formatting character (U+{ord(char):04X})"
    return f"the control character U+{ord(char):04X}"


def check_text(value: str, *, multiline: bool, max_length: int) -> str:
    """``value`` with surrounding white space removed, if it is text eom can store, hash
    and deliver: not empty, at most ``max_length`` characters, and none of the characters
    above (a single line takes no line break or tab either; in free text a carriage return
    is read as a line break, so CR LF becomes LF). Else ``ValueError`` naming the rule and
    the character's position."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters (has {len(value)})")
    found = _FIRST_NOT_IN[multiline].search(value)
    if found is not None:
        where = f"at character {found.start() + 1}"
        if not multiline and found.group() in "\n\r\t\u2028\u2029":
            raise ValueError(f"must be a single line ({_describe(found.group())} {where})")
        raise ValueError(f"must not contain {_describe(found.group())}, found {where}")
    return value


def clean_text(value: str, *, multiline: bool, max_length: int) -> str:
    """``value`` made storable whatever it holds, for text eom did not write itself (a
    mail server's or a webhook's answer, recorded as a delivery's error): every character
    ``check_text`` refuses becomes U+FFFD, and the text is cut to ``max_length``."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _FIRST_NOT_IN[multiline].sub("\ufffd", value).strip()
    return cleaned[:max_length] or "\ufffd"


@dataclass(frozen=True)
class TextRule:
    """The validator of ``Line``, ``Text`` and ``AnswerText``: ``check_text`` for new
    input, surrounding white space only for what was recorded."""

    multiline: bool
    max_length: int

    def __call__(self, value: str, info: ValidationInfo) -> str:
        if recorded(info):
            return value.strip()
        return check_text(value, multiline=self.multiline, max_length=self.max_length)


def _text_rule(*, multiline: bool, max_length: int) -> AfterValidator:
    return AfterValidator(TextRule(multiline, max_length))


def _text_schema(*, multiline: bool, max_length: int) -> WithJsonSchema:
    excluded = _NOT_IN_TEXT if multiline else _NOT_IN_LINE
    return WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": max_length,
            "pattern": f"^[^{excluded}]*$",
        }
    )


Line = Annotated[
    str,
    _text_rule(multiline=False, max_length=LINE_MAX),
    _text_schema(multiline=False, max_length=LINE_MAX),
]
"""A single line of text (a name, a title, a place): no control character, no line
break, at most ``LINE_MAX`` characters, surrounding white space removed."""

Text = Annotated[
    str,
    _text_rule(multiline=True, max_length=TEXT_MAX),
    _text_schema(multiline=True, max_length=TEXT_MAX),
]
"""Free text (a summary, a reason, a finding, a statement): line breaks and tabs allowed,
no other control character, at most ``TEXT_MAX`` characters."""

AnswerText = Annotated[
    str,
    _text_rule(multiline=True, max_length=10_000),
    _text_schema(multiline=True, max_length=10_000),
]
"""A checklist's written answer."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

# -- numbers, days, instants ------------------------------------------------------------------

SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader holds exactly (an IEEE double); RFC 8785 refuses
larger ones."""

SafeInt = Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
"""A count of people, steps or cycles: 0 to a million."""
Quota = Annotated[int, Field(ge=1, le=100_000)]
Version = Annotated[int, Field(ge=0, le=SAFE_INTEGER)]
"""A stream version or log position, as a query names it."""

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)


def _check_day(value: date, info: ValidationInfo) -> date:
    day = value.date() if isinstance(value, datetime) else value
    if not recorded(info) and not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must lie between {FIRST_DAY} and {LAST_DAY}")
    return value


Day = Annotated[date, AfterValidator(_check_day)]
"""A calendar day between ``FIRST_DAY`` and ``LAST_DAY``."""
Instant = Annotated[AwareDatetime, AfterValidator(_check_day)]
"""A moment with its UTC offset, between ``FIRST_DAY`` and ``LAST_DAY``."""
Moment = Annotated[datetime, AfterValidator(_check_day)]
"""A moment with its UTC offset, or a local time (read in the host's time zone), between
``FIRST_DAY`` and ``LAST_DAY``."""


def _check_time_zone(value: str, info: ValidationInfo) -> str:
    return value if recorded(info) else check_zone(value)


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_time_zone)]
"""An IANA time zone name (``Asia/Almaty``), as the time-zone database holds it."""

MAX_LADDER_SECONDS = 2**31 - 1
"""Reminder offsets and escalation delays, in seconds: at most about 68 years (the
directory stores them as ``integer``)."""

LadderSeconds = Annotated[int, Field(ge=0, le=MAX_LADDER_SECONDS)]


class Frozen(BaseModel):
    """Base of every domain model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


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
    name: Line
    type: ElectionType
    date: Day


class DateWindow(Frozen):
    """An inclusive range of days."""

    start: Day
    end: Day

    @model_validator(mode="after")
    def _ordered(self) -> DateWindow:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


class StakeholderType(StrEnum):
    """Whom a pre-election meeting was held with."""

    foreign_ministry = "foreign_ministry"
    parliament = "parliament"
    """A chamber of parliament, a senate, or one of their committees."""
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


ChoiceName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]


class PhaseChecklist(Frozen):
    """Answers to one phase's checklist: question name -> answer. A checklist naming a
    form version (``form_id`` and ``form_version``) is checked against that form's
    questions (``domain.forms.check_answers``); one naming none is a free checklist, as
    reports were before forms (and are where a mission has no form for the phase)."""

    phase: Phase
    form_id: Identifier | None = None
    form_version: Identifier | None = None
    answers: dict[
        Identifier,
        bool | SafeInt | float | AnswerText | Annotated[list[ChoiceName], Field(max_length=200)],
    ] = Field(default_factory=dict, max_length=500)

    @model_validator(mode="after")
    def _form_named_whole(self) -> PhaseChecklist:
        if (self.form_id is None) != (self.form_version is None):
            raise ValueError("a checklist names both form_id and form_version, or neither")
        return self


Answer = bool | int | float | str | list[str]
"""An answer as a checklist holds it (``PhaseChecklist.answers``)."""


class CriticalAnswer(Frozen):
    """An answer that met its question's ``eom:critical`` condition (``domain.forms``)."""

    form_id: Identifier
    phase: Phase
    question: Identifier
    answer: Answer


class Citation(Frozen):
    """A figure of the observation forms a statement draft cites: the polling stations
    that gave ``answer`` to ``form_id``'s ``question`` (or answered it, without
    ``answer``), out of those asked, in ``scope`` (``all``, ``locality:<name>`` or
    ``team:<id>``)."""

    form_id: Identifier
    question: Identifier
    answer: ChoiceName | None = None
    scope: Line = "all"


class CitedFigure(Citation):
    """A citation with its figure as eom counted it when the draft was recorded."""

    stations: Count
    asked: Count
    share: float = Field(ge=0, le=1)
    events: list[int] = Field(default_factory=list, max_length=100_000)
    """Global log positions of the visits behind the count."""
    as_of_position: int = Field(ge=0)
    """The last global log position the count includes."""


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
    area: Line


class RecipientKind(StrEnum):
    member_state = "member_state"
    host_country = "host_country"
    international_organisation = "international_organisation"


class Recipient(Frozen):
    """Who receives the recommendations: a state (by ISO code) or an organisation (by name)."""

    kind: RecipientKind
    name: Line

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

    offsets_seconds: list[LadderSeconds] = Field(
        default_factory=lambda: [604_800, 172_800, 0], max_length=20
    )
    escalate_after_seconds: LadderSeconds = 0

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


LOCALITIES_LISTED = 100
"""Localities an aggregate names at most (it counts them all)."""


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
    """The localities visited, in order, the first ``LOCALITIES_LISTED`` of them: a
    national mission's thousands would not fit the messages a workflow takes."""
    locality_count: int | None = Field(default=None, ge=0)
    """How many localities were visited (unset in counts made before it was kept:
    then as many as ``localities`` lists)."""
    teams: int = Field(default=0, ge=0)
    conflicts: int = Field(default=0, ge=0)
    """Stations reported by more than one team."""
    through_position: int = Field(default=0, ge=0)
    """The last global log position counted."""

    @property
    def localities_visited(self) -> int:
        return len(self.localities) if self.locality_count is None else self.locality_count


class PollingStation(Frozen):
    """A polling station the mission may report from."""

    station_id: Identifier
    locality: Line
    name: Line | None = None
    time_zone: TimeZone | None = None
    """The station's own IANA zone, where the host spans several; else the mission's."""
