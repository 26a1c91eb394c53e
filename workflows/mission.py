"""``MissionWorkflow``: one durable process per mission (workflow id ``mission-<id>``).

It orchestrates only. Each coordinator command is a Temporal Update: the validator runs
``decide`` so a refused command is rejected before it enters the history; an accepted one
gets event ids from ``workflow.uuid4()`` (deterministic, so a retried append is recognised),
is appended through an activity at the expected version, folded with ``evolve`` and
answered with the new version.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

from domain import EVENT_ADAPTER, DomainError, Event, Mission, decide, evolve, fold
from domain.values import Stage
from eventstore.models import EventMetadata, NewEvent, RecordedEvent
from workflows.messages import (
    AppendRequest,
    CommandRequest,
    CommandResult,
    MissionOutcome,
    MissionStart,
    ReadRequest,
)

# Activities touch the database: the sandbox must not re-import (or police) them.
with workflow.unsafe.imports_passed_through():
    from activities.event_store import EventStoreActivities

MISSION_STAGE = SearchAttributeKey.for_keyword("MissionStage")
HOST_COUNTRY = SearchAttributeKey.for_keyword("HostCountry")

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=["ConcurrencyError", "IdempotencyConflict", "IntegrityError"],
)
STORE_ATTEMPT_TIMEOUT = timedelta(seconds=15)
STORE_TOTAL_TIMEOUT = timedelta(minutes=2)


def workflow_id(mission_id: str) -> str:
    return f"mission-{mission_id}"


def refusal(error: DomainError) -> ApplicationError:
    """A domain refusal as Temporal carries it: the rule is the error type."""
    return ApplicationError(error.message, error.rule, type=error.rule, non_retryable=True)


@workflow.defn
class MissionWorkflow:
    @workflow.init
    def __init__(self, start: MissionStart) -> None:
        self._start = start
        self._state = start.state or Mission()
        # Known before run() so that validators of the first update see the right state.
        self._ready = start.state is not None
        # One command at a time: the next waits until the previous is appended and folded.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, start: MissionStart) -> MissionOutcome:
        if not self._ready:
            await self._catch_up()
            self._ready = True
        if self._state.stage is None:
            try:
                await workflow.wait_condition(
                    lambda: self._state.stage is not None,
                    timeout=timedelta(seconds=start.registration_timeout_seconds),
                )
            except TimeoutError:
                workflow.logger.warning("mission never registered; ending")
        if self._state.stage is not None:
            await workflow.wait_condition(lambda: self._finished or self._history_long)
        # Updates in flight are answered before the run ends or continues as new.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state.stage is not None and not self._finished:
            workflow.continue_as_new(start.model_copy(update={"state": self._state}))
        return MissionOutcome(
            mission_id=start.mission_id, stage=self._state.stage, version=self._state.version
        )

    @property
    def _finished(self) -> bool:
        return self._state.stage in (Stage.closed, Stage.cancelled)

    @property
    def _history_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._start.max_history_events
        )

    @workflow.query
    def state(self) -> Mission:
        return self._state

    @workflow.update
    async def execute(self, request: CommandRequest) -> CommandResult:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            try:
                events = decide(self._state, request.command, now=workflow.now())
            except DomainError as error:
                # The state moved since validation (an earlier command in the queue).
                raise refusal(error) from None
            return await self._record(request, events)

    @execute.validator
    def validate(self, request: CommandRequest) -> None:
        try:
            decide(self._state, request.command, now=workflow.now())
        except DomainError as error:
            raise refusal(error) from None
        if self._history_long:
            # The run is about to continue as new; the caller retries on the next run.
            raise ApplicationError("the mission is moving to a new run; retry", type="mission_busy")

    async def _record(self, request: CommandRequest, events: list[Event]) -> CommandResult:
        info = workflow.info()
        metadata = EventMetadata(
            actor=request.actor,
            command_id=request.command_id,
            command_type=request.command.type,
            correlation_id=request.correlation_id or request.command_id,
            causation_id=request.causation_id or request.command_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
        )
        now = workflow.now()
        new_events = [
            NewEvent(
                event_id=workflow.uuid4(),
                event_type=event.type,
                schema_version=event.schema_version,
                data=event.model_dump(mode="json"),
                metadata=metadata,
                occurred_at=now,
            )
            for event in events
        ]
        request_append = AppendRequest(
            stream_id=self._start.mission_id,
            expected_version=self._state.version,
            events=new_events,
        )
        try:
            result = await workflow.execute_activity_method(
                EventStoreActivities.append_events,
                request_append,
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
        except ActivityError as error:
            # The append may or may not have committed: re-read the stream so that the
            # state matches the store whatever happened, and say which it was.
            before = self._state.version
            await self._catch_up()
            outcome = "it was recorded" if self._state.version > before else "nothing was recorded"
            raise ApplicationError(
                f"the event store did not confirm the command ({error.cause or error}); {outcome}",
                type="event_store_unavailable",
                non_retryable=True,
            ) from None
        for event in events:
            self._state = evolve(self._state, event)
        self._publish_search_attributes()
        workflow.logger.info(
            "command recorded",
            extra={"command": request.command.type, "version": self._state.version},
        )
        return CommandResult(
            mission_id=self._start.mission_id,
            command_id=request.command_id,
            stage=self._state.stage or Stage.invited,
            version=self._state.version,
            event_ids=[e.event_id for e in new_events],
            event_types=[e.type for e in events],
            global_positions=result.global_positions,
        )

    async def _catch_up(self) -> None:
        """Fold whatever the stream holds beyond the current version."""
        recorded: list[RecordedEvent] = await workflow.execute_activity_method(
            EventStoreActivities.read_stream,
            ReadRequest(stream_id=self._start.mission_id, after_version=self._state.version),
            retry_policy=STORE_RETRY,
            start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
        )
        self._state = fold((EVENT_ADAPTER.validate_python(r.data) for r in recorded), self._state)
        self._publish_search_attributes()

    def _publish_search_attributes(self) -> None:
        if self._state.stage is None or self._state.host_country is None:
            return
        workflow.upsert_search_attributes(
            [
                MISSION_STAGE.value_set(self._state.stage.value),
                HOST_COUNTRY.value_set(self._state.host_country),
            ]
        )
