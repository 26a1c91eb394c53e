"""``ReminderLadderWorkflow``: one member state, one deadline, one ladder.

A request goes out at once; reminders at each offset before the deadline (those already
past when the ladder starts are skipped); at the deadline plus ``escalate_after`` the
escalation contact is told. The ladder stops the moment the member state answers (the
mission workflow signals ``answered``). A delivery that fails for good escalates at once.
Every delivery, failure and escalation is reported to the mission workflow, which alone
writes the mission's stream; the ladder itself writes nothing.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from domain.commands import RecordDelivery
from domain.values import DeadlineKind, DeliveryPurpose, clean_text
from workflows.messages import CommandRequest, LadderStart, LadderStatus, NewDeadline

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryReceipt, DeliveryRequest

ANSWER_HINTS = {
    DeadlineKind.nomination: (
        "Reply with your observers' names and roles, each with a signed code of conduct "
        "and conflict-of-interest declaration, or tell the Secretariat you will send none."
    ),
    DeadlineKind.acknowledgement: (
        "Acknowledge receipt of the statement and recommendations to the Secretariat."
    ),
    DeadlineKind.evidence: (
        "Send the Secretariat evidence of what has been done on each recommendation."
    ),
}


def ladder_workflow_id(mission_workflow_id: str, kind: DeadlineKind, cycle: int, state: str) -> str:
    return f"{mission_workflow_id}/reminders/{kind.value}/{cycle}/{state}"


@workflow.defn
class ReminderLadderWorkflow:
    @workflow.init
    def __init__(self, start: LadderStart) -> None:
        self._start = start
        self._deadline = start.deadline
        self._step = start.first_step
        self._sent = 0
        self._answered = False
        self._stopped = False
        self._paused = False
        self._send_now = False
        self._rescheduled = False
        self._started_at: datetime | None = None

    @property
    def _last_step(self) -> int:
        return len(self._start.ladder.offsets_seconds) + 1

    def _purpose(self, step: int) -> DeliveryPurpose:
        if step == 0:
            return DeliveryPurpose.request
        if step == self._last_step:
            return DeliveryPurpose.escalation
        return DeliveryPurpose.reminder

    def _due(self, step: int) -> datetime:
        ladder = self._start.ladder
        if step == 0:
            assert self._started_at is not None
            return self._started_at
        if step == self._last_step:
            return self._deadline + timedelta(seconds=ladder.escalate_after_seconds)
        return self._deadline - timedelta(seconds=ladder.offsets_seconds[step - 1])

    def _skip_past_reminders(self) -> None:
        """Reminders due before the request went out are not sent late in a burst."""
        assert self._started_at is not None
        while (
            self._purpose(self._step) is DeliveryPurpose.reminder
            and self._due(self._step) < self._started_at
        ):
            self._step += 1

    @workflow.run
    async def run(self, start: LadderStart) -> LadderStatus:
        self._started_at = workflow.now()
        while self._step <= self._last_step and not (self._answered or self._stopped):
            if self._step > 0:
                self._skip_past_reminders()
            wait = (self._due(self._step) - workflow.now()).total_seconds()
            if wait > 0 and not self._send_now:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: (
                            self._answered
                            or self._stopped
                            or self._send_now
                            or self._rescheduled
                            or self._paused
                        ),
                        timeout=timedelta(seconds=wait),
                    )
            if self._paused:
                await workflow.wait_condition(
                    lambda: not self._paused or self._answered or self._stopped
                )
                continue
            if self._rescheduled:
                self._rescheduled = False
                continue
            if self._answered or self._stopped:
                break
            if not self._send_now and workflow.now() < self._due(self._step):
                continue
            self._send_now = False
            delivered = await self._deliver(self._step, self._purpose(self._step))
            if delivered or self._purpose(self._step) is DeliveryPurpose.escalation:
                self._step += 1
            else:
                # Could not reach the focal point at all: escalate now, not at the deadline.
                self._step = self._last_step
                self._send_now = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _deliver(self, step: int, purpose: DeliveryPurpose) -> bool:
        start = self._start
        message_id = (
            f"{start.mission_id}.{start.kind.value}.{start.cycle}.{start.member_state}.{step}"
        )
        timing = start.timing
        try:
            receipt: DeliveryReceipt = await workflow.execute_activity(
                "deliver_message",
                DeliveryRequest(
                    message_id=message_id,
                    mission_id=start.mission_id,
                    organisation=start.organisation,
                    member_state=start.member_state,
                    kind=start.kind.value,
                    purpose=purpose.value,
                    step=step,
                    cycle=start.cycle,
                    deadline=self._deadline,
                    mission_name=start.mission_name,
                    answer_hint=ANSWER_HINTS[start.kind],
                ),
                result_type=DeliveryReceipt,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timing.delivery_retry_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=60),
                    maximum_attempts=timing.delivery_attempts,
                    non_retryable_error_types=["DeliveryRejected", "RecipientUnknown"],
                ),
            )
        except ActivityError as error:
            cause = error.cause
            reason = (
                f"{cause.type}: {cause.message}"
                if isinstance(cause, ApplicationError)
                else str(cause or error)
            )
            await self._report(step, purpose, message_id, delivered=False, error=reason)
            return False
        self._sent += 1
        await self._report(
            step,
            purpose,
            message_id,
            delivered=True,
            channel=receipt.channel,
            address=receipt.address,
        )
        return True

    async def _report(
        self,
        step: int,
        purpose: DeliveryPurpose,
        message_id: str,
        *,
        delivered: bool,
        channel: str | None = None,
        address: str | None = None,
        error: str | None = None,
    ) -> None:
        start = self._start
        command = RecordDelivery(
            kind=start.kind,
            member_state=start.member_state,
            purpose=purpose,
            step=step,
            cycle=start.cycle,
            message_id=message_id,
            delivered=delivered,
            channel=channel,
            address=address,
            error=clean_text(error, multiline=True, max_length=2000) if error else None,
        )
        parent = workflow.get_external_workflow_handle(start.mission_workflow_id)
        try:
            await parent.signal(
                "record",
                CommandRequest(
                    command=command,
                    command_id=f"{message_id}.{'sent' if delivered else 'failed'}",
                    actor="system:reminders",
                    correlation_id=workflow.info().workflow_id,
                ),
            )
        except ApplicationError as error:
            # The mission's workflow has ended (its follow-up was ended meanwhile): the
            # message went out, and the outbox keeps it; the stream is closed to it.
            workflow.logger.warning("mission no longer records", extra={"error": str(error)})

    @workflow.signal
    def answered(self) -> None:
        self._answered = True

    @workflow.signal
    def stop(self) -> None:
        self._stopped = True

    @workflow.signal
    def pause(self) -> None:
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False

    @workflow.signal
    def send_now(self) -> None:
        """The coordinator wants the next message out now, not at its time."""
        self._send_now = True
        self._paused = False

    @workflow.signal
    def move_deadline(self, moved: NewDeadline) -> None:
        self._deadline = moved.deadline
        self._rescheduled = True

    @workflow.query
    def status(self) -> LadderStatus:
        done = self._answered or self._stopped or self._step > self._last_step
        started = self._started_at is not None
        return LadderStatus(
            kind=self._start.kind,
            member_state=self._start.member_state,
            cycle=self._start.cycle,
            deadline=self._deadline,
            next_step=self._step,
            next_purpose=None if done else self._purpose(self._step),
            next_due=None if done or not started else self._due(self._step),
            paused=self._paused,
            answered=self._answered,
            stopped=self._stopped,
            sent=self._sent,
        )
