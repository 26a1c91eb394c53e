"""Activities that read an organisation's reminder policy."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.directory import LadderPolicies
from domain.values import ReminderLadder
from workflows.messages import LadderQuery


class PolicyActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.ladders = LadderPolicies(pool)

    @activity.defn(name="ladder_policy")
    async def ladder_policy(self, query: LadderQuery) -> ReminderLadder | None:
        """The organisation's ladder for this kind of deadline, if it has set one."""
        ladder = await self.ladders.get(query.organisation, query.kind.value)
        if ladder is None:
            return None
        return ReminderLadder(
            offsets_seconds=[int(offset.total_seconds()) for offset in ladder.offsets],
            escalate_after_seconds=int(ladder.escalate_after.total_seconds()),
        )
