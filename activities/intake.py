"""Activities: what the mission workflow asks of the election-day intake, in aggregate.

Each is one query (or one transaction) over the intake's tables; all are safe to retry.
"""

from __future__ import annotations

from temporalio import activity

from domain.values import IntakeProgress
from eventstore.store import EventStore
from intake import progress
from workflows.messages import CheckInQuery, IntakeDrained, IntakeQuery


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
