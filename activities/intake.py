"""Activities: what the mission workflow asks of the election-day intake, in aggregate.

Each is one query (or one transaction) over the intake's tables; all are safe to retry.
"""

from __future__ import annotations

from temporalio import activity

from domain import DomainError
from domain.commands import RecordStationVisit, RegisterPollingStations
from domain.values import IntakeProgress
from eventstore.store import EventStore
from intake import commands, progress
from intake.writer import Intake
from workflows.messages import (
    CheckInQuery,
    IntakeCommandRequest,
    IntakeCommandResult,
    IntakeDrained,
    IntakeQuery,
)


class IntakeActivities:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    @activity.defn(name="intake_progress")
    async def intake_progress(self, query: IntakeQuery) -> IntakeProgress:
        return await progress.progress(self.store, query.mission_id)

    @activity.defn(name="drain_intake")
    async def drain_intake(self, query: IntakeQuery) -> IntakeDrained:
        """Closing twice is closing once: a retry finds the gate closed and counts again."""
        counted, closed = await progress.close(self.store, query.mission_id)
        return IntakeDrained(progress=counted, closed=closed)

    @activity.defn(name="missing_check_ins")
    async def missing_check_ins(self, query: CheckInQuery) -> list[str]:
        return await progress.missing(self.store, query.mission_id, query.teams)

    @activity.defn(name="intake_command")
    async def intake_command(self, request: IntakeCommandRequest) -> IntakeCommandResult:
        """Record a mission command the intake holds (polling stations, a visit recorded
        by command) under the intake's rules. A refusal is answered (``refused_rule``,
        nothing recorded), not raised: it is the command's answer, not the activity's
        failure. A store failure is retried, and a retry of a visit recorded meanwhile is
        answered as the same submission."""
        command = request.request.command
        assert isinstance(command, RecordStationVisit | RegisterPollingStations)
        async with Intake(self.store, flushers=1) as intake:
            try:
                recorded = await commands.record(
                    intake, request.mission_id, command, actor=request.request.actor
                )
            except DomainError as error:
                return IntakeCommandResult(refused_rule=error.rule, refused_message=error.message)
        return IntakeCommandResult(**recorded.model_dump())
