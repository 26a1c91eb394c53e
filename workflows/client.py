"""How callers (CLI, HTTP API, tests) talk to missions: send a command, read a mission.

Commands go to the mission's workflow as
updates; reads come from the event store, the system of record, folded with ``evolve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from analysis.figures import with_figures
from domain import DomainError, Event, Mission, decide, fold, load_event, load_event_json
from domain.commands import CloseElectionDay, Command, DraftStatement, RegisterInvitation
from domain.decide import intake_progressed
from domain.values import DeadlineKind, RecipientKind, Stage
from eventstore.models import RecordedEvent
from eventstore.store import EventStore
from intake import commands as intake_commands
from intake.progress import progress
from intake.writer import Intake
from workflows.followup import FollowUpWorkflow, follow_up_workflow_id
from workflows.messages import (
    CommandRequest,
    CommandResult,
    FollowUpStatus,
    LadderStatus,
    MissionStart,
    MissionTiming,
)
from workflows.mission import INTAKE_COMMANDS, MissionWorkflow, check_carried, workflow_id
from workflows.reminders import ReminderLadderWorkflow, ladder_workflow_id

UPDATES_IN_FLIGHT = 8
"""Updates this process sends to one mission at once: Temporal admits 10 per workflow."""

_BUSY = (
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.ABORTED,
    RPCStatusCode.DEADLINE_EXCEEDED,
)
"""What the server answers while a workflow is too busy, or between two runs, to take an
update now: sent again."""

_ACCEPTED_UNFINISHED = "AcceptedUpdateCompletedWorkflow"
"""Temporal's failure of an update its run took and ended without answering."""
_TRY_AGAIN = {"mission_busy", _ACCEPTED_UNFINISHED}
"""Update failures after which the same update is sent again: the mission did not take
it (its rules send it back while the run is about to continue as new), or took it and
ended its run without answering (the next run answers it from its recent results, or
takes it)."""


@dataclass
class _Gate:
    places: asyncio.Semaphore
    users: int = 0


def _busy(seconds: float) -> CommandRefused:
    waited = f" for {seconds:g} s" if seconds else ""
    return CommandRefused(
        "mission_busy",
        f"the mission is taking other commands and could not take this one{waited}; "
        "nothing was recorded: send it again",
    )


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
        timing: MissionTiming | None = None,
        busy_seconds: float = 30.0,
        answer_seconds: float = 300.0,
    ) -> None:
        self._client = client
        self.store = store
        self.task_queue = task_queue
        self.max_history_events = max_history_events
        self.timing = timing
        self.busy_seconds = busy_seconds
        """How long a command waits for a busy mission before ``mission_busy``."""
        self.answer_seconds = answer_seconds
        """How long a command the mission may have taken waits for its answer before
        ``mission_unresponsive`` (longer than an append's retries, two minutes)."""
        self._gates: dict[str, _Gate] = {}

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
        """Send ``command``; return its result or raise ``CommandRefused``.

        A burst of commands to one mission waits its turn instead of failing: Temporal
        admits at most 10 updates in flight per workflow (RESOURCE_EXHAUSTED beyond), so
        this process sends at most ``UPDATES_IN_FLIGHT`` to a mission at once and retries,
        with the same update id, what the server turns away for the moment (too many
        updates, a run continuing as new, an RPC that timed out). Only when the mission
        stays busy for ``busy_seconds`` is the command refused with ``mission_busy``
        (nothing recorded; the caller may send it again); one it may have taken but did
        not answer in ``answer_seconds`` is ``mission_unresponsive``."""
        if isinstance(command, DraftStatement):
            command = await with_figures(self.store, mission_id, command)
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
        deadline = time.monotonic() + self.busy_seconds
        async with self._turn(mission_id, deadline):
            return await self._update(mission_id, request, deadline)

    @contextlib.asynccontextmanager
    async def _turn(self, mission_id: str, deadline: float) -> AsyncIterator[None]:
        """One of this process's ``UPDATES_IN_FLIGHT`` places for the mission, waited for
        until ``deadline`` (then ``mission_busy``)."""
        gate = self._gates.get(mission_id)
        if gate is None:
            gate = self._gates[mission_id] = _Gate(asyncio.Semaphore(UPDATES_IN_FLIGHT))
        gate.users += 1
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await gate.places.acquire()
            except TimeoutError:
                raise _busy(self.busy_seconds) from None
            try:
                yield
            finally:
                gate.places.release()
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[mission_id]

    async def _update(
        self, mission_id: str, request: CommandRequest, deadline: float
    ) -> CommandResult:
        """Send the update until the mission answers it. Turned away before the mission
        took it (too many updates, a run ending), it is sent again until ``deadline``,
        then ``mission_busy`` (nothing recorded). Once it may have been taken (an RPC
        that timed out), it is sent again with its id for up to ``answer_seconds``, then
        ``mission_unresponsive`` (it may still be recorded)."""
        handle = self.client.get_workflow_handle(workflow_id(mission_id))
        answer_by: float | None = None  # set once the mission may have taken it
        for attempt in itertools.count():
            sent = time.monotonic()
            try:
                return await handle.execute_update(
                    MissionWorkflow.execute,
                    request,
                    id=request.command_id,
                    rpc_timeout=timedelta(
                        seconds=max(1.0, (answer_by or sent + self.answer_seconds) - sent)
                    ),
                )
            except WorkflowUpdateFailedError as error:
                refused = _refusal(error)
                if refused.rule not in _TRY_AGAIN:
                    raise refused from None
                if refused.rule == _ACCEPTED_UNFINISHED:
                    answer_by = answer_by or sent + self.answer_seconds
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                # Sent again under its id, the workflow runs it once.
                answer_by = answer_by or sent + self.answer_seconds
            except RPCError as error:
                if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    # Between two runs (continue-as-new), or not running at all.
                    if not await self._running(mission_id):
                        await self._explain_not_running(mission_id, request.command)
                        raise CommandRefused("mission_not_running", str(error)) from None
                elif error.status not in _BUSY:
                    raise
            now = time.monotonic()
            if answer_by is not None and now >= answer_by:
                raise CommandRefused(
                    "mission_unresponsive",
                    f"the mission took no decision on the command in {self.answer_seconds:g} s; "
                    "it may still be recorded: send it again with the same Idempotency-Key "
                    "to learn its result",
                )
            if answer_by is None and now >= deadline:
                raise _busy(self.busy_seconds)
            # Jittered, growing pauses: the callers waiting on one mission spread out.
            await asyncio.sleep(min(0.02 * 2 ** min(attempt, 6), 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    async def _running(self, mission_id: str) -> bool:
        try:
            described = await self.client.get_workflow_handle(workflow_id(mission_id)).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status is WorkflowExecutionStatus.RUNNING

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
        start = self._start(command.mission_id)
        # The event store says whether the mission exists (checked above, and by the
        # workflow's own rules): a run that ended without a registration leaves the id
        # free (ALLOW_DUPLICATE), and a run still waiting for one (an earlier attempt the
        # store refused) takes this one (USE_EXISTING), whose rules refuse a mission
        # registered meanwhile.
        operation = WithStartWorkflowOperation(
            MissionWorkflow.run,
            start,
            id=workflow_id(command.mission_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
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
        except RPCError as error:
            if error.status in _BUSY:
                raise _busy(0) from None
            raise

    async def _explain_not_running(self, mission_id: str, command: Command) -> None:
        """No workflow runs for the mission: say why in the domain's words."""
        state = await self.state(mission_id)
        try:
            decide(state, command, now=datetime.now(UTC))
        except DomainError as error:
            raise CommandRefused(error.rule, error.message) from None

    async def check(
        self, mission_id: str, command: Command
    ) -> list[Event] | list[intake_commands.IntakeEvent]:
        """What ``command`` would record now, without recording it (a dry run against the
        stored history, deciding as the workflow would: closing election day counts what
        the intake holds first); ``CommandRefused`` if the rules refuse it."""
        state = await self.state(mission_id)
        if isinstance(command, DraftStatement):
            command = await with_figures(self.store, mission_id, command)
        try:
            counted: list[Event] = []
            if isinstance(command, CloseElectionDay) and state.stage is Stage.election_day:
                counted = intake_progressed(state, await progress(self.store, mission_id))
                state = fold(counted, state)
            events = counted + decide(state, command, now=datetime.now(UTC), intake_visits=True)
            check_carried(state, events)
            if isinstance(command, INTAKE_COMMANDS):
                # Recorded by the intake, under its rules (registered stations, dates in
                # the station's time, conflicts): checked there as they would be.
                return await intake_commands.check(
                    Intake(self.store, flushers=0), mission_id, command
                )
            return events
        except DomainError as error:
            raise CommandRefused(error.rule, error.message) from None

    def _start(self, mission_id: str, *, restored: bool = False) -> MissionStart:
        """A mission workflow's input, with this client's settings."""
        start = MissionStart(mission_id=mission_id, restored=restored)
        if self.max_history_events is not None:
            start = start.model_copy(update={"max_history_events": self.max_history_events})
        if self.timing is not None:
            start = start.model_copy(update={"timing": self.timing})
        return start

    async def restore(self, mission_id: str) -> str:
        """Start a fresh workflow for a mission whose workflow was lost (e.g. past the
        namespace's retention): it folds the stored stream and goes on from there, with
        the same state and no new event, and restarts the reminder ladders and follow-up
        lost with it. Returns the new run id."""
        state = await self.state(mission_id)
        if state.stage is None:
            raise CommandRefused("mission_not_registered", f"no mission {mission_id!r} is stored")
        start = self._start(mission_id, restored=True)
        try:
            handle = await self.client.start_workflow(
                MissionWorkflow.run,
                start,
                id=workflow_id(mission_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            raise CommandRefused(
                "mission_running",
                f"mission {mission_id} has a running workflow; nothing to restore",
            ) from None
        assert handle.result_run_id is not None
        # The new run folds the stream in an activity first; answer once it has.
        for _ in range(200):
            if await handle.query(MissionWorkflow.version) >= state.version:
                return handle.result_run_id
            await asyncio.sleep(0.05)
        raise CommandRefused(
            "restore_incomplete", f"mission {mission_id} did not catch up with its stream"
        )

    async def events(self, mission_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(mission_id)

    async def state(self, mission_id: str, *, version: int | None = None) -> Mission:
        """The mission as its stored history says, optionally as of ``version``."""
        recorded = await self.store.read_stream(mission_id, to_version=version)
        return fold(load_event(r.data) for r in recorded)

    async def live_state(self, mission_id: str) -> Mission:
        """The state the running workflow holds (a Temporal query): the state for
        decisions, without free texts (``Mission.for_decisions``)."""
        handle = self.client.get_workflow_handle(workflow_id(mission_id))
        return await handle.query(MissionWorkflow.state)

    async def ladders(self, mission_id: str) -> list[LadderStatus]:
        """The live status of every reminder ladder the mission has started."""
        state = await self.state(mission_id)
        found = []
        for track in _ladder_keys(state):
            handle = self.client.get_workflow_handle(
                ladder_workflow_id(workflow_id(mission_id), *track)
            )
            try:
                found.append(await handle.query(ReminderLadderWorkflow.status))
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
        return found

    async def signal_ladder(
        self, mission_id: str, kind: DeadlineKind, member_state: str, signal: str, cycle: int = 0
    ) -> None:
        """Pause, resume or send-now a ladder (``signal`` is the ladder's signal name)."""
        handle = self.client.get_workflow_handle(
            ladder_workflow_id(workflow_id(mission_id), kind, cycle, member_state)
        )
        try:
            await handle.signal(signal)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise CommandRefused(
                    "no_such_ladder",
                    f"mission {mission_id} has no running {kind.value} ladder for "
                    f"{member_state}" + (f" in cycle {cycle}" if cycle else ""),
                ) from None
            raise

    async def follow_up(self, mission_id: str) -> FollowUpStatus | None:
        handle = self.client.get_workflow_handle(follow_up_workflow_id(workflow_id(mission_id)))
        try:
            return await handle.query(FollowUpWorkflow.status)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def registered(self, mission_id: str) -> Mission:
        """The mission as its registration alone says (organisation, host, member states:
        what scopes are judged by), or an empty state: one read of one event, the same
        whether the mission is long or short."""
        return fold(
            load_event(r.data)
            for r in await self.store.read_stream(mission_id, to_version=1)
            if r.event_type == "InvitationRegistered"
        )

    async def list(self, *, where: Callable[[Mission], bool] | None = None) -> list[MissionSummary]:
        """Every mission in the store (streams that open with an invitation), or those
        whose registration ``where`` accepts: only those are folded."""
        summaries = []
        for mission_id, data in await self.store.registrations():
            if where is not None and not where(fold([load_event_json(data)])):
                continue
            state = await self.state(mission_id)
            if state.stage is None or state.election is None:
                continue
            summaries.append(
                MissionSummary(
                    mission_id=mission_id,
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


def _ladder_keys(state: Mission) -> list[tuple[DeadlineKind, int, str]]:
    keys = []
    if state.nomination_deadline is not None:
        keys += [(DeadlineKind.nomination, 0, ms) for ms in state.member_states]
    if state.acknowledge_by is not None:
        keys += [
            (DeadlineKind.acknowledgement, 0, d.recipient.name)
            for d in state.deliveries.values()
            if d.recipient.kind is not RecipientKind.international_organisation
        ]
    for cycle in state.evidence_cycles.values():
        keys += [(DeadlineKind.evidence, cycle.cycle, ms) for ms in cycle.member_states]
    return keys
