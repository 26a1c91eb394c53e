"""How callers (CLI, HTTP API, tests) talk to missions: send a command, read a mission.

Commands go to the mission's workflow as
updates; reads come from the event store, the system of record, folded with ``evolve``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import EVENT_ADAPTER, DomainError, Event, Mission, decide, fold
from domain.commands import Command, RegisterInvitation
from eventstore.models import RecordedEvent
from eventstore.store import EventStore
from workflows.messages import CommandRequest, CommandResult, MissionStart
from workflows.mission import MissionWorkflow, workflow_id


class CommandRefused(Exception):
    """The mission refused a command; ``rule`` names the rule (or the failure kind)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class MissionSummary:
    mission_id: str
    stage: str
    host_country: str
    election: str
    election_day: str
    version: int


class Missions:
    """Coordinator-facing operations over the Temporal client and the event store."""

    def __init__(
        self,
        *,
        client: Client | None,
        store: EventStore,
        task_queue: str,
        max_history_events: int | None = None,
    ) -> None:
        self._client = client
        self.store = store
        self.task_queue = task_queue
        self.max_history_events = max_history_events

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("this operation needs Temporal, and no client was given")
        return self._client

    async def execute(
        self,
        mission_id: str,
        command: Command,
        *,
        actor: str,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandResult:
        """Send ``command``; return its result or raise ``CommandRefused``."""
        request = CommandRequest(
            command=command,
            command_id=command_id or str(uuid.uuid4()),
            actor=actor,
            correlation_id=correlation_id,
        )
        if isinstance(command, RegisterInvitation):
            if command.mission_id != mission_id:
                raise CommandRefused(
                    "mission_id_mismatch",
                    f"the invitation registers {command.mission_id!r}, not {mission_id!r}",
                )
            return await self._register(request, command)
        for attempt in range(50):
            try:
                handle = self.client.get_workflow_handle(workflow_id(mission_id))
                return await handle.execute_update(
                    MissionWorkflow.execute, request, id=request.command_id
                )
            except WorkflowUpdateFailedError as error:
                refused = _refusal(error)
                if refused.rule != "mission_busy":
                    raise refused from None
                await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
            except RPCError as error:
                if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    raise
                await self._explain_not_running(mission_id, command)
                raise CommandRefused("mission_not_running", str(error)) from None
        raise CommandRefused("mission_busy", "the mission stayed busy; try again")

    async def _register(
        self, request: CommandRequest, command: RegisterInvitation
    ) -> CommandResult:
        # The same decide the workflow runs: a bad invitation never starts a workflow.
        stored = await self.store.stream_version(command.mission_id)
        state = await self.state(command.mission_id) if stored else Mission()
        try:
            decide(state, command, now=datetime.now(UTC))
        except DomainError as error:
            raise CommandRefused(error.rule, error.message) from None
        start = MissionStart(mission_id=command.mission_id)
        if self.max_history_events is not None:
            start = start.model_copy(update={"max_history_events": self.max_history_events})
        operation = WithStartWorkflowOperation(
            MissionWorkflow.run,
            start,
            id=workflow_id(command.mission_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        try:
            return await self.client.execute_update_with_start_workflow(
                MissionWorkflow.execute,
                request,
                start_workflow_operation=operation,
                id=request.command_id,
            )
        except WorkflowUpdateFailedError as error:
            raise _refusal(error) from None
        except WorkflowAlreadyStartedError:
            raise CommandRefused(
                "mission_already_registered",
                f"mission {command.mission_id} is already registered",
            ) from None

    async def _explain_not_running(self, mission_id: str, command: Command) -> None:
        """No workflow runs for the mission: say why in the domain's words."""
        state = await self.state(mission_id)
        try:
            decide(state, command, now=datetime.now(UTC))
        except DomainError as error:
            raise CommandRefused(error.rule, error.message) from None

    async def check(self, mission_id: str, command: Command) -> list[Event]:
        """What ``command`` would record now, without recording it (a dry run against the
        stored history); ``CommandRefused`` if the rules refuse it."""
        state = await self.state(mission_id)
        try:
            return decide(state, command, now=datetime.now(UTC))
        except DomainError as error:
            raise CommandRefused(error.rule, error.message) from None

    async def events(self, mission_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(mission_id)

    async def state(self, mission_id: str, *, version: int | None = None) -> Mission:
        """The mission as its stored history says, optionally as of ``version``."""
        recorded = await self.store.read_stream(mission_id, to_version=version)
        return fold(EVENT_ADAPTER.validate_python(r.data) for r in recorded)

    async def live_state(self, mission_id: str) -> Mission:
        """The state the running workflow holds (a Temporal query)."""
        handle = self.client.get_workflow_handle(workflow_id(mission_id))
        return await handle.query(MissionWorkflow.state)

    async def list(self) -> list[MissionSummary]:
        summaries = []
        for stream_id, _ in await self.store.stream_ids():
            state = await self.state(stream_id)
            if state.stage is None or state.election is None:
                continue
            summaries.append(
                MissionSummary(
                    mission_id=stream_id,
                    stage=state.stage.value,
                    host_country=state.host_country or "",
                    election=state.election.name,
                    election_day=state.election.date.isoformat(),
                    version=state.version,
                )
            )
        return summaries


def _refusal(error: WorkflowUpdateFailedError) -> CommandRefused:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return CommandRefused(cause.type or "refused", cause.message)
    return CommandRefused("update_failed", str(cause or error))
