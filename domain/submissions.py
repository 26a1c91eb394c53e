"""Election-day submissions: what observers send from polling stations, and the rules that
admit them.

Pure, like the rest of the domain. The intake (``intake/``) looks up what these rules need
(the mission as its history says it is, the registered stations, earlier submissions) and
appends what they return to one stream per polling station, outside the mission workflow:
a mission can take tens of thousands of reports without its workflow history growing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from domain import errors as e
from domain import events as ev
from domain.decide import check_on_election_day
from domain.errors import AnswerInvalid
from domain.forms import (
    Conditions,
    FormDefinition,
    assigned_for,
    check_answers,
    critical_answers,
)
from domain.host_time import aware, country_zones
from domain.state import Mission
from domain.values import (
    CriticalAnswer,
    Finding,
    FindingCategory,
    Frozen,
    Identifier,
    Moment,
    Phase,
    PhaseChecklist,
    PollingStation,
    Stage,
    Text,
)

# -- what observers send ------------------------------------------------------------------


class _SubmissionBase(Frozen):
    submission_id: Identifier
    """Chosen by the observer's device: sending it again is acknowledged with the first
    result, never recorded twice."""
    mission_id: Identifier
    station_id: Identifier
    team_id: Identifier
    corrects: Identifier | None = None
    """The submission id of an earlier report of the same team that this one replaces.
    The earlier report stays in the record; counts use the latest correction."""


class StationVisitReport(_SubmissionBase):
    """A team's visit to a polling station: its checklist answers per phase, its findings."""

    kind: Literal["station_visit"] = "station_visit"
    arrived_at: Moment
    """With its UTC offset, or a local time at the station (the station's zone, else the
    mission's)."""
    departed_at: Moment
    checklists: list[PhaseChecklist] = Field(min_length=1, max_length=8)
    findings: list[Finding] = Field(default_factory=list, max_length=200)


class IncidentReport(_SubmissionBase):
    """Something a team saw at a station that the mission must know about now."""

    kind: Literal["incident"] = "incident"
    observed_at: Moment
    phase: Phase
    category: FindingCategory
    serious: bool = False
    description: Text


__all__ = ["PollingStation"]  # defined with the values; stations are registered here

Submission = Annotated[StationVisitReport | IncidentReport, Field(discriminator="kind")]
SUBMISSION_ADAPTER: TypeAdapter[Submission] = TypeAdapter(Submission)


def content_sha256(submission: StationVisitReport | IncidentReport) -> str:
    """What a resubmission is compared by: the submission's canonical content."""
    encoded = json.dumps(
        submission.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    ).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def phases(submission: StationVisitReport | IncidentReport) -> list[Phase]:
    if isinstance(submission, IncidentReport):
        return [submission.phase]
    return sorted({c.phase for c in submission.checklists}, key=list(Phase).index)


# -- polling stations ----------------------------------------------------------------------


class PollingStationsRegistered(ev.EventBase):
    """Polling stations the mission may report from (in the stream ``<mission>/stations``)."""

    type: Literal["PollingStationsRegistered"] = "PollingStationsRegistered"
    stations: list[PollingStation]


def _described(station: PollingStation) -> str:
    zone = station.time_zone or "the mission's"
    return f"{station.locality!r}, name {station.name!r}, time zone {zone}"


def register_stations(
    registered: Mapping[str, PollingStation],
    stations: Sequence[PollingStation],
    *,
    host_country: str | None = None,
) -> PollingStationsRegistered | None:
    """The stations of ``stations`` not registered yet, or ``None`` when all are.

    Registering a station again as it is changes nothing; registering it elsewhere (another
    locality, name or zone) is refused: reports already counted under it would move. A
    station's own zone is one of ``host_country``'s (``TimeZoneNotInHost``)."""
    if not stations:
        raise e.StationsInvalid("the polling-station list is empty")
    zones = country_zones(host_country) if host_country else ()
    seen: dict[str, PollingStation] = {}
    for station in stations:
        if station.time_zone is not None and zones and station.time_zone not in zones:
            raise e.TimeZoneNotInHost(
                f"station {station.station_id!r} names time_zone {station.time_zone}, which "
                f"is not a zone of {host_country} ({', '.join(zones)})"
            )
        if station.station_id in seen and seen[station.station_id] != station:
            raise e.StationsInvalid(f"station {station.station_id!r} is listed twice, differently")
        seen[station.station_id] = station
        known = registered.get(station.station_id)
        if known is not None and known != station:
            raise (
                e.StationsInvalid(
                    f"station {station.station_id!r} is registered as {_described(known)}; it "
                    f"cannot become {_described(station)}: reports counted under it would move"
                )
                if known.locality == station.locality
                else e.StationsInvalid(
                    f"station {station.station_id!r} is registered in {known.locality!r}"
                    f"{f' as {known.name!r}' if known.name else ''}; it cannot move to "
                    f"{station.locality!r}{f' as {station.name!r}' if station.name else ''}"
                )
            )
    new = [s for s in seen.values() if s.station_id not in registered]
    return PollingStationsRegistered(stations=new) if new else None


# -- what the intake records ----------------------------------------------------------------


class StationVisitReported(ev.EventBase):
    type: Literal["StationVisitReported"] = "StationVisitReported"
    mission_id: str
    submission_id: Identifier
    station_id: Identifier
    locality: str
    team_id: Identifier
    arrived_at: datetime
    departed_at: datetime
    checklists: list[PhaseChecklist]
    findings: list[Finding]
    corrects: Identifier | None = None
    critical: list[CriticalAnswer] = Field(default_factory=list)
    """Answers meeting their form's ``eom:critical`` condition: alerts as they arrive."""


class IncidentReported(ev.EventBase):
    type: Literal["IncidentReported"] = "IncidentReported"
    mission_id: str
    submission_id: Identifier
    station_id: Identifier
    locality: str
    team_id: Identifier
    observed_at: datetime
    phase: Phase
    category: FindingCategory
    serious: bool
    description: str
    corrects: Identifier | None = None


class SubmissionsConflicted(ev.EventBase):
    """Two or more teams reported the same station: every report is kept, the clash
    flagged (in the station's stream; the mission learns the count)."""

    type: Literal["SubmissionsConflicted"] = "SubmissionsConflicted"
    station_id: Identifier
    submission_ids: list[Identifier]
    team_ids: list[Identifier]


Report = StationVisitReported | IncidentReported

StationEvent = Annotated[
    StationVisitReported | IncidentReported | SubmissionsConflicted,
    Field(discriminator="type"),
]
STATION_EVENT_ADAPTER: TypeAdapter[StationEvent] = TypeAdapter(StationEvent)


# -- the rules -------------------------------------------------------------------------------


class IntakeContext(Frozen):
    """What the rules need to know of a mission to admit its submissions."""

    mission_id: str
    stage: Stage | None
    election_day: date | None
    teams: frozenset[str]
    """Teams with at least one accepted observer."""
    stations: dict[str, PollingStation]
    time_zone: str | None = None
    """The mission's zone, in which station times are read (unless a station has its own)."""
    host_country: str | None = None
    forms: dict[str, FormDefinition] = Field(default_factory=dict)
    """The form versions assigned to the mission, by ``form_key``."""

    @classmethod
    def of(
        cls,
        mission: Mission,
        stations: Iterable[PollingStation],
        forms: Iterable[FormDefinition] = (),
    ) -> IntakeContext:
        return cls(
            forms={f.key: f for f in forms},
            mission_id=mission.mission_id or "",
            stage=mission.stage,
            time_zone=mission.time_zone,
            host_country=mission.host_country,
            election_day=mission.election.date if mission.election else None,
            teams=frozenset(t for t in mission.teams if mission.active_members(t)),
            stations={s.station_id: s for s in stations},
        )


class EarlierReport(Frozen):
    """What the intake holds of a submission already recorded."""

    submission_id: str
    kind: str
    station_id: str
    team_id: str
    content_sha256: str
    corrected_by: str | None = None
    """The submission id of the correction that already replaces it, if any."""


def admit(
    context: IntakeContext,
    submission: StationVisitReport | IncidentReport,
    *,
    corrected: EarlierReport | None = None,
    conditions: Conditions | None = None,
) -> Report:
    """The event recording ``submission``, or the ``DomainError`` of the first rule it
    breaks. ``corrected`` is the report that ``submission.corrects`` names, if the mission
    holds it; ``conditions`` evaluates the forms' expressions (needed once the mission has
    forms)."""
    what = f"submission {submission.submission_id!r}"
    if submission.mission_id != context.mission_id:
        raise e.WrongMission(
            f"{what} is for mission {submission.mission_id!r}, but was sent to mission "
            f"{context.mission_id!r}"
        )
    if context.stage is not Stage.election_day or context.election_day is None:
        stage = context.stage.value if context.stage else "not registered"
        raise e.IntakeNotOpen(
            f"mission {context.mission_id!r} is {stage}: submissions are taken while "
            f"election day is open"
        )
    if submission.team_id not in context.teams:
        raise e.UnknownTeam(
            f"{what} names team {submission.team_id!r}, which mission {context.mission_id!r} "
            f"has not formed (or which has no accepted observer left)"
        )
    station = context.stations.get(submission.station_id)
    if station is None:
        raise e.UnknownStation(
            f"{what} names polling station {submission.station_id!r}, which mission "
            f"{context.mission_id!r} has not registered"
        )
    time_zone = station.time_zone or context.time_zone
    if isinstance(submission, StationVisitReport):
        times = {
            "arrived_at": aware(submission.arrived_at, time_zone),
            "departed_at": aware(submission.departed_at, time_zone),
        }
        start, end = times["arrived_at"], times["departed_at"]
    else:
        times = {"observed_at": aware(submission.observed_at, time_zone)}
        start = end = times["observed_at"]
    counting = {Phase.counting, Phase.tabulation}
    check_on_election_day(
        what,
        start,
        end,
        counting_only=set(phases(submission)) <= counting,
        election_day=context.election_day,
        time_zone=time_zone,
    )
    if submission.corrects is not None:
        _check_correction(submission, corrected)
    # The record holds instants: a local time is stored with the station's offset.
    fields = {**submission.model_dump(exclude={"kind"}), **times}
    if isinstance(submission, StationVisitReport):
        critical = _checked_forms(context, submission, conditions)
        return StationVisitReported(**fields, locality=station.locality, critical=critical)
    return IncidentReported(**fields, locality=station.locality)


def _checked_forms(
    context: IntakeContext, report: StationVisitReport, conditions: Conditions | None
) -> list[CriticalAnswer]:
    """Each checklist's answers checked against the form it names (``AnswerInvalid``
    naming the checklist and the question; ``FormNotAssigned``); the critical answers."""
    critical: list[CriticalAnswer] = []
    seen: set[str] = set()
    for n, checklist in enumerate(report.checklists):
        where = f"checklist {n} ({checklist.phase.value})"
        form = assigned_for(
            context.forms, checklist.form_id, checklist.form_version, checklist.phase
        )
        if form is None:
            continue
        if form.form_id in seen:
            raise e.FormFilledTwice(f"{where}: form {form.form_id!r} is filled once per visit")
        seen.add(form.form_id)
        if conditions is None:
            raise ValueError("a mission with forms needs conditions to check answers with")
        try:
            check_answers(form, checklist.answers, conditions)
        except AnswerInvalid as invalid:
            raise AnswerInvalid(
                invalid.question, invalid.detail, where=f"{where}, form {form.form_id!r}: "
            ) from None
        critical += [
            CriticalAnswer(
                form_id=form.form_id,
                phase=form.phase,
                question=name,
                answer=checklist.answers[name],
            )
            for name in critical_answers(form, checklist.answers, conditions)
        ]
    return critical


def _check_correction(
    submission: StationVisitReport | IncidentReport, corrected: EarlierReport | None
) -> None:
    """A correction replaces a report sent before it, by the same team, of its kind.
    Another team's report is answered as one the mission does not hold: a team learns
    nothing of another's reports from a refusal."""
    what = f"correction {submission.submission_id!r}"
    if (
        corrected is None
        or corrected.submission_id != submission.corrects
        or corrected.submission_id == submission.submission_id
        or corrected.team_id != submission.team_id
    ):
        raise e.CorrectionOfUnknownReport(
            f"{what} corrects submission {submission.corrects!r}, which team "
            f"{submission.team_id!r} has not sent before it"
        )
    if corrected.corrected_by is not None and corrected.corrected_by != submission.submission_id:
        raise e.AlreadyCorrected(
            f"{what} corrects report {corrected.submission_id!r}, which correction "
            f"{corrected.corrected_by!r} already replaces: correct that one instead"
        )
    if corrected.kind != submission.kind:
        raise e.CorrectionMismatch(
            f"{what} is a {submission.kind} report; it cannot replace {corrected.kind} report "
            f"{corrected.submission_id!r}"
        )


def is_resubmission(
    earlier: EarlierReport, submission: StationVisitReport | IncidentReport
) -> Literal[True]:
    """A submission id seen before: the same submission again (acknowledged with the first
    result), or a different one under a used id (refused)."""
    if earlier.content_sha256 != content_sha256(submission):
        if earlier.team_id != submission.team_id:  # another team's: nothing said of it
            raise e.SubmissionIdReused(
                f"submission id {submission.submission_id!r} is already used in this "
                "mission; send the report under an id of its own (a UUID)"
            )
        raise e.SubmissionIdReused(
            f"submission id {submission.submission_id!r} was already used for a different "
            f"{earlier.kind} report (station {earlier.station_id!r}); send a change as a new "
            f"submission that corrects it"
        )
    return True


def conflict(
    station_id: str, earlier: Sequence[tuple[str, str]], report: Report
) -> SubmissionsConflicted | None:
    """A second team's visit report for a station: both are kept, and the clash flagged
    (again each time another team joins). ``earlier`` is the station's earlier visit
    reports as (submission id, team id)."""
    if not isinstance(report, StationVisitReported):
        return None
    teams = {team for _, team in earlier}
    if not teams or report.team_id in teams:
        return None
    return SubmissionsConflicted(
        station_id=station_id,
        submission_ids=[s for s, _ in earlier] + [report.submission_id],
        team_ids=sorted(teams | {report.team_id}),
    )
