"""``FollowUpWorkflow``: the years after a mission, one per mission.

Every ``follow_up_interval`` it opens an evidence cycle (the mission workflow records it
and starts a reminder ladder per state); a new election in the same host country reopens
the review at once. It runs for years: it continues as new with its state (cycles done,
reopenings) well before Temporal's history limits.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from domain.commands import ReopenReview, RequestEvidence
from workflows.messages import CommandRequest, FollowUpStart, FollowUpStatus, Reopen


def follow_up_workflow_id(mission_workflow_id: str) -> str:
    return f"{mission_workflow_id}/follow-up"


@workflow.defn
class FollowUpWorkflow:
    @workflow.init
    def __init__(self, start: FollowUpStart) -> None:
        self._start = start
        self._cycles_done = start.cycles_done
        self._reopened = list(start.reopened_for)
        self._pending: list[Reopen] = []
        self._stopped = False
        self._next_due: datetime | None = None

    @workflow.run
    async def run(self, start: FollowUpStart) -> FollowUpStatus:
        if start.counted_from is not None:
            return await self._on_the_record_clock(start, start.counted_from)
        timing = start.timing
        while not self._stopped:
            self._cycles_done += 1
            await self._tell_mission(
                RequestEvidence(
                    cycle=self._cycles_done,
                    member_states=start.member_states,
                    deadline=workflow.now() + timedelta(seconds=timing.evidence_window_seconds),
                    ladder=start.ladder,
                ),
                f"cycle-{self._cycles_done}",
            )
            self._next_due = workflow.now() + timedelta(seconds=timing.follow_up_interval_seconds)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._stopped or bool(self._pending),
                    timeout=timedelta(seconds=timing.follow_up_interval_seconds),
                )
            await self._reopen_pending()
            if not self._stopped and (
                workflow.info().is_continue_as_new_suggested()
                or workflow.info().get_current_history_length() >= timing.follow_up_history_events
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    start.model_copy(
                        update={"cycles_done": self._cycles_done, "reopened_for": self._reopened}
                    )
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _on_the_record_clock(
        self, start: FollowUpStart, counted_from: datetime
    ) -> FollowUpStatus:
        """Cycle n opens ``follow_up_interval`` after cycle n-1, counted from when the
        recommendations went out (``counted_from``), and is due ``evidence_window`` after
        it opens. A mission entered after the fact records its first cycle at once, without
        reminders if its deadline is past; cycles that would have opened and closed before
        the mission was entered are not invented (nobody was asked); a cycle still open now
        is recorded with its reminders."""
        timing = start.timing
        interval = timedelta(seconds=timing.follow_up_interval_seconds)
        window = timedelta(seconds=timing.evidence_window_seconds)
        opening = start.next_opening or counted_from
        while not self._stopped:
            self._next_due = opening
            delay = (opening - workflow.now()).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._stopped or bool(self._pending),
                        timeout=timedelta(seconds=delay),
                    )
            await self._reopen_pending()
            if self._stopped:
                break
            if workflow.now() < opening:
                continue  # woken by a reopening: the cycle is not due yet
            self._cycles_done += 1
            deadline = opening + window
            await self._tell_mission(
                RequestEvidence(
                    cycle=self._cycles_done,
                    member_states=start.member_states,
                    deadline=deadline,
                    ladder=start.ladder,
                    reminders=deadline > workflow.now(),
                ),
                f"cycle-{self._cycles_done}",
            )
            opening = next_cycle_opening(counted_from, opening, interval, window, workflow.now())
            if not self._stopped and (
                workflow.info().is_continue_as_new_suggested()
                or workflow.info().get_current_history_length() >= timing.follow_up_history_events
            ):
                # A reopening signalled while the cycle was being told is told before the
                # run moves on: continue-as-new would otherwise drop it.
                await self._reopen_pending()
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._pending:
                    continue
                workflow.continue_as_new(
                    start.model_copy(
                        update={
                            "cycles_done": self._cycles_done,
                            "reopened_for": self._reopened,
                            "next_opening": opening,
                        }
                    )
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _reopen_pending(self) -> None:
        while self._pending:
            reopen = self._pending.pop(0)
            if reopen.new_mission_id in self._reopened:
                continue
            self._reopened.append(reopen.new_mission_id)
            await self._tell_mission(
                ReopenReview(
                    new_mission_id=reopen.new_mission_id,
                    reason=f"a new election in {reopen.host_country} was registered",
                ),
                f"reopen-{reopen.new_mission_id}",
            )

    async def _tell_mission(self, command: RequestEvidence | ReopenReview, key: str) -> None:
        """The mission workflow records it (and starts the ladders): it alone writes."""
        parent = workflow.get_external_workflow_handle(self._start.mission_workflow_id)
        try:
            await parent.signal(
                "record",
                CommandRequest(
                    command=command,
                    command_id=f"{self._start.mission_id}.follow-up.{key}",
                    actor="system:follow-up",
                    correlation_id=workflow.info().workflow_id,
                ),
            )
        except ApplicationError:
            # The mission's workflow has ended: nothing is left to follow up.
            self._stopped = True

    @workflow.signal
    def reopen(self, reopen: Reopen) -> None:
        self._pending.append(reopen)

    @workflow.signal
    def stop(self) -> None:
        self._stopped = True

    @workflow.query
    def status(self) -> FollowUpStatus:
        return FollowUpStatus(
            mission_id=self._start.mission_id,
            cycles_done=self._cycles_done,
            next_cycle_due=None if self._stopped else self._next_due,
            reopened_for=self._reopened,
            stopped=self._stopped,
        )


def next_cycle_opening(
    origin: datetime, last: datetime, interval: timedelta, window: timedelta, now: datetime
) -> datetime:
    """The opening after ``last`` on the grid ``origin + k * interval``: the next one, or,
    when that is past already (a mission entered after the fact), the latest one past if
    its cycle is still open (its deadline, opening plus ``window``, ahead), else the first
    one ahead. Cycles wholly missed are not invented; nor is one opened per missed step."""
    following = last + interval
    if following > now:
        return following
    latest = origin + ((now - origin) // interval) * interval
    return latest if latest + window > now else latest + interval
