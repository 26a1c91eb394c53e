"""Mission commands that the intake records: polling stations, and station visits.

A visit recorded by command (a paper form typed in at the mission's office) is a report
like one an observer sends: it is checked by the same rules (a registered station, dates
on election day in the station's time, conflicts between teams), recorded in the station's
stream and counted by every read path alike. The mission workflow checks the mission's own
rules (stage, team) and hands the command here, so that its history and carried state do
not grow with the visits.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain import errors as e
from domain.commands import RecordStationVisit, RegisterPollingStations
from domain.submissions import PollingStationsRegistered, Report, StationVisitReport
from intake.writer import Intake, SubmissionRefused

IntakeCommand = RecordStationVisit | RegisterPollingStations
IntakeEvent = PollingStationsRegistered | Report


class IntakeRecorded(BaseModel):
    """What the intake recorded for one command: its events, where they are."""

    model_config = ConfigDict(frozen=True)

    event_ids: list[UUID]
    event_types: list[str]
    global_positions: list[int]


def visit_report(mission_id: str, command: RecordStationVisit) -> StationVisitReport:
    """The report a visit recorded by command makes: its visit id is the submission id."""
    return StationVisitReport(
        submission_id=command.visit_id,
        mission_id=mission_id,
        station_id=command.station_id,
        team_id=command.team_id,
        arrived_at=command.arrived_at,
        departed_at=command.departed_at,
        checklists=command.checklists,
        findings=command.findings,
        corrects=command.corrects,
    )


async def _check_locality(intake: Intake, mission_id: str, command: RecordStationVisit) -> None:
    context = await intake.context(mission_id, refresh=True)
    station = context.stations.get(command.station_id)
    if station is not None and station.locality != command.locality:
        raise e.StationElsewhere(
            f"visit {command.visit_id!r} names locality {command.locality!r}, but polling "
            f"station {command.station_id!r} is registered in {station.locality!r}"
        )


_RULE_ERRORS = {cls.rule: cls for cls in e.DomainError.__subclasses__()}


def _refused(refused: SubmissionRefused, visit_id: str) -> e.DomainError:
    """The first problem of a one-report request, as the rule it breaks, naming the visit
    as the command did."""
    problem = refused.problems[0]
    message = problem.message.replace(f"submission {visit_id!r}", f"visit {visit_id!r}")
    return _RULE_ERRORS.get(problem.rule, e.DomainError)(message)


async def record(
    intake: Intake, mission_id: str, command: IntakeCommand, *, actor: str
) -> IntakeRecorded:
    """Record ``command`` through the intake. Raises ``DomainError`` (the rule broken,
    nothing recorded), or ``IntakeUnavailable`` (nothing recorded; send it again)."""
    if isinstance(command, RegisterPollingStations):
        registered = await intake.register_stations(mission_id, command.stations, actor=actor)
        return IntakeRecorded(
            event_ids=list(registered.event_ids),
            event_types=["PollingStationsRegistered"] if registered.added else [],
            global_positions=list(registered.global_positions),
        )
    await _check_locality(intake, mission_id, command)
    try:
        [receipt] = await intake.submit(
            mission_id, [visit_report(mission_id, command)], actor=actor
        )
    except SubmissionRefused as refused:
        raise _refused(refused, command.visit_id) from None
    # A visit sent again, the same, is answered with where it was first recorded.
    types = ["StationVisitReported"] + (["SubmissionsConflicted"] if receipt.conflict else [])
    return IntakeRecorded(
        event_ids=[receipt.event_id],
        event_types=types,
        global_positions=[receipt.global_position],
    )


async def check(intake: Intake, mission_id: str, command: IntakeCommand) -> list[IntakeEvent]:
    """The events ``record`` would record now, or ``DomainError``; nothing is recorded."""
    if isinstance(command, RegisterPollingStations):
        event = await intake.check_stations(mission_id, command.stations)
        return [event] if event is not None else []
    await _check_locality(intake, mission_id, command)
    try:
        return list(await intake.check(mission_id, [visit_report(mission_id, command)]))
    except SubmissionRefused as refused:
        raise _refused(refused, command.visit_id) from None
