"""``MissionWorkflow``: one durable process per mission (workflow id ``mission-<id>``).

It orchestrates only. Each coordinator command is a Temporal Update: the validator runs
``decide`` so a refused command is rejected before it enters the history; an accepted one
gets event ids from ``workflow.uuid4()`` (deterministic, so a retried append is recognised),
is appended through an activity at the expected version, folded with ``evolve`` and
answered with the new version.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ExternalWorkflowHandle, ParentClosePolicy

from domain import DomainError, Event, Mission, decide, errors, evolve, fold, load_event
from domain import events as ev
from domain.commands import (
    CloseElectionDay,
    Command,
    PublishStatement,
    RecordStationVisit,
    RegisterPollingStations,
)
from domain.decide import check_ins_cleared, check_ins_missed, intake_progressed
from domain.host_time import sent_instant
from domain.state import track_key
from domain.values import DeadlineKind, IntakeProgress, RecipientKind, ReminderLadder, Stage
from eventstore.models import AppendResult, EventMetadata, NewEvent, RecordedEvent
from workflows.followup import FollowUpWorkflow, follow_up_workflow_id, next_cycle_opening
from workflows.messages import (
    AppendRequest,
    CheckInQuery,
    CommandRequest,
    CommandResult,
    FoldedStream,
    FollowUpsQuery,
    FollowUpStart,
    IntakeCommandRequest,
    IntakeCommandResult,
    IntakeDrained,
    IntakeQuery,
    LadderQuery,
    LadderStart,
    MissionOutcome,
    MissionStart,
    NewDeadline,
    ReadRequest,
    Reopen,
)
from workflows.reminders import ReminderLadderWorkflow, ladder_workflow_id

# Activities touch the database: the sandbox must not re-import (or police) them.
with workflow.unsafe.imports_passed_through():
    from activities.event_store import EventStoreActivities
    from activities.intake import IntakeActivities

AUTOMATION_PATCH = "reminders-and-follow-up"
INTAKE_PATCH = "election-day-intake"
EDGE_RULES_PATCH = "repeated-acts-refused"
"""The patch of the rules added at the edge (the id of its first rule, kept so that the
runs that recorded it replay)."""
FOLDED_READS_PATCH = "state-folded-by-activity"
INTAKE_COMMANDS = (RecordStationVisit, RegisterPollingStations)
ONE_RECORD_PATCH = "host-time-one-record"
"""Election-day times read in the host's zone, deadlines already past refused, visits by
command recorded through the intake (one record of visits), check-in alerts cleared."""

NOMINATIONS_CLOSE_PATCH = "nominations-close-on-election-day"
"""Nomination reminders stop once election day opens (the delegation is formed: a late
nomination could no longer be recorded, nor a decline); a restored mission restarts none
after it."""

MISSION_STAGE = SearchAttributeKey.for_keyword("MissionStage")
HOST_COUNTRY = SearchAttributeKey.for_keyword("HostCountry")

DATA_ERRORS = ("UnstorableEvent", "StoreDataError")
"""The append activity's errors that say the events' data cannot be stored."""

STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=[
        "ConcurrencyError",
        "IdempotencyConflict",
        "IntegrityError",
        *DATA_ERRORS,
    ],
)
STORE_ATTEMPT_TIMEOUT = timedelta(seconds=15)
STORE_TOTAL_TIMEOUT = timedelta(minutes=2)


MAX_UPDATES_PER_RUN = 1_000
"""Updates one run takes before it continues as new (Temporal admits 2,000 to a run)."""
RECENT_RESULTS = 200
"""Commands' results kept (and carried over continue-as-new) to answer a command sent
again with the same id."""


MAX_CARRIED_STATE = 1_000_000
"""Bytes of JSON the state for decisions may reach: it is carried over continue-as-new
and answered to queries, Temporal payloads of at most 2 MB."""


def check_carried(state: Mission, events: list[Event]) -> None:
    """``MissionRecordFull`` if ``events`` would take the mission's state for decisions
    past ``MAX_CARRIED_STATE`` (thousands of recommendations, observers or visits by
    command, say): the workflow could no longer carry it."""
    after = fold(events, state).for_decisions()
    size = len(after.__pydantic_serializer__.to_json(after))
    if size > MAX_CARRIED_STATE:
        raise errors.MissionRecordFull(
            f"the mission's record would hold {size} bytes of ids and names, more than its "
            f"workflow carries ({MAX_CARRIED_STATE}); nothing was recorded"
        )


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
        # What decisions need, never the free texts (``Mission.for_decisions``): the
        # state is carried over continue-as-new and answered to queries, both payloads
        # of at most 2 MB, however long the mission's summaries and statements are.
        self._state = (start.state or Mission()).for_decisions()
        self._head_hash = start.head_hash
        # Known before run() so that validators of the first update see the right state.
        self._ready = start.state is not None
        # One command at a time: the next waits until the previous is appended and folded.
        self._lock = asyncio.Lock()
        self._automation_on: bool | None = None
        self._intake_on: bool | None = None
        self._edge_rules_on: bool | None = None
        self._one_record_on: bool | None = None
        self._check_ins_done = False
        self._results = {r.command_id: r for r in start.recent_results}
        # Temporal admits at most 2,000 updates to one run; this run continues as new
        # well before.
        self._updates_taken = 0
        self._updates_in_flight = 0

    @property
    def _automation(self) -> bool:
        """Reminders and follow-up came after the first missions ran: histories recorded
        before them replay without (``workflow.patched``), new runs have them."""
        if self._automation_on is None:
            self._automation_on = workflow.patched(AUTOMATION_PATCH)
        return self._automation_on

    @property
    def _intake(self) -> bool:
        """Election-day intake (reports outside the workflow, counted in aggregate) came
        after the first missions ran: their histories replay without it."""
        if self._intake_on is None:
            self._intake_on = workflow.patched(INTAKE_PATCH)
        return self._intake_on

    @property
    def _edge_rules(self) -> bool:
        """Rules that came after the first missions ran, so that their histories replay
        without them: an act done already is refused (a second approval of one draft),
        and so is a command that would take the record past what the workflow carries."""
        if self._edge_rules_on is None:
            self._edge_rules_on = workflow.patched(EDGE_RULES_PATCH)
        return self._edge_rules_on

    @property
    def _one_record(self) -> bool:
        """Host time, past deadlines refused, visits through the intake and check-in
        alerts cleared came after the first missions ran: their histories replay without."""
        if self._one_record_on is None:
            self._one_record_on = workflow.patched(ONE_RECORD_PATCH)
        return self._one_record_on

    def _decide(self, state: Mission, command: Command, **flags: bool) -> list[Event]:
        events = decide(
            state,
            command,
            now=workflow.now(),
            repeats_refused=self._edge_rules_on is not False,
            host_time=self._one_record_on is not False,
            intake_visits=self._one_record_on is not False,
            **flags,
        )
        if self._edge_rules_on is not False:
            check_carried(state, events)
        return events

    @workflow.run
    async def run(self, start: MissionStart) -> MissionOutcome:
        _ = self._automation  # decided once, at the start, for the predicates below
        _ = self._intake
        _ = self._edge_rules
        _ = self._one_record
        if not self._ready:
            await self._catch_up()
            self._ready = True
        if start.restored and self._automation and self._state.stage is not None:
            async with self._lock:
                await self._resume_automation()
        if self._state.stage is None:
            try:
                await workflow.wait_condition(
                    lambda: self._state.stage is not None,
                    timeout=timedelta(seconds=start.registration_timeout_seconds),
                )
            except TimeoutError:
                workflow.logger.warning("mission never registered; ending")
        if self._state.stage is not None:
            await self._live()
        # Updates in flight are answered before the run ends or continues as new.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state.stage is not None and not self._finished:
            workflow.continue_as_new(
                start.model_copy(
                    update={
                        "state": self._state,
                        "head_hash": self._head_hash,
                        "recent_results": list(self._results.values()),
                        "restored": False,
                    }
                )
            )
        return MissionOutcome(
            mission_id=start.mission_id, stage=self._state.stage, version=self._state.version
        )

    async def _live(self) -> None:
        """Until the mission finishes (or its history is long): on election day, count
        what the intake holds every ``intake_poll_seconds`` and alert the coordinator of
        teams whose opening report has not come once it is due."""

        def done() -> bool:
            return self._finished or self._history_long

        def following() -> bool:
            return self._intake and self._state.stage is Stage.election_day

        while not done():
            if not following():
                await workflow.wait_condition(lambda: done() or following())
                continue
            wake = self._start.timing.intake_poll_seconds
            due = self._state.check_in_due_at
            if due is not None and not self._check_ins_done:
                wake = max(0.0, min(wake, (due - workflow.now()).total_seconds()))
            try:
                await workflow.wait_condition(
                    lambda: done() or not following(), timeout=timedelta(seconds=wake)
                )
            except TimeoutError:
                await self._follow_intake()

    async def _follow_intake(self) -> None:
        async with self._lock:
            if self._state.stage is not Stage.election_day:
                return
            try:
                await self._count_intake()
            except (ActivityError, ApplicationError) as error:
                # Counted again at the next poll: a mission must not fail because the
                # store was away for a while on election day.
                workflow.logger.error("intake not counted", extra={"error": str(error)})

    async def _count_intake(self) -> None:
        # By name, typed with the sandbox's own models: the activity module is passed
        # through, and its classes are not the ones the domain's events expect.
        counted = await workflow.execute_activity(
            "intake_progress",
            IntakeQuery(mission_id=self._start.mission_id),
            result_type=IntakeProgress,
            retry_policy=STORE_RETRY,
            start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
        )
        events = intake_progressed(self._state, counted)
        due = self._state.check_in_due_at
        checking_in = due is not None and not self._check_ins_done and workflow.now() >= due
        if checking_in and due is not None:
            state = self._state
            teams = [t for t in state.teams if state.active_members(t)]
            missing: list[str] = await workflow.execute_activity_method(
                IntakeActivities.missing_check_ins,
                CheckInQuery(mission_id=self._start.mission_id, teams=teams),
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
            events += check_ins_missed(state, missing, due_at=due)
        elif self._state.missed_check_ins and self._one_record:
            alerted = sorted(self._state.missed_check_ins)
            still: list[str] = await workflow.execute_activity_method(
                IntakeActivities.missing_check_ins,
                CheckInQuery(mission_id=self._start.mission_id, teams=alerted),
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
            events += check_ins_cleared(fold(events, self._state), still)
        if events:
            await self._record_events(
                events, EventMetadata(actor="eom", command_type="follow_intake")
            )
        if checking_in:
            self._check_ins_done = True

    @property
    def _finished(self) -> bool:
        """Cancelled, or closed with no follow-up left to run ("only follow-up may
        continue" on a closed mission)."""
        stage = self._state.stage
        return stage is Stage.cancelled or (
            stage is Stage.closed and not (self._automation and self._state.follow_up_active)
        )

    @property
    def _history_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._start.max_history_events
            or self._updates_taken >= MAX_UPDATES_PER_RUN
        )

    @workflow.query
    def state(self) -> Mission:
        return self._state

    @workflow.query
    def version(self) -> int:
        """The version of the state the workflow holds (a state too large for a query's
        answer still has one)."""
        return self._state.version

    @workflow.update
    async def execute(self, request: CommandRequest) -> CommandResult:
        self._updates_taken += 1
        self._updates_in_flight += 1
        try:
            return await self._execute(request)
        finally:
            self._updates_in_flight -= 1

    async def _execute(self, request: CommandRequest) -> CommandResult:
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            earlier = self._results.get(request.command_id)
            if earlier is not None:
                return earlier  # this command again, after the run that took it ended
            command = request.command
            if isinstance(command, PublishStatement):
                # The statement names the exact history it was drawn from.
                command = command.model_copy(update={"history_fingerprint": self._head_hash})
                request = request.model_copy(update={"command": command})
            try:
                if isinstance(command, CloseElectionDay) and self._intake:
                    events = await self._drain_intake(command)
                else:
                    events = self._decide(self._state, command)
            except DomainError as error:
                # The state moved since validation (an earlier command in the queue).
                raise refusal(error) from None
            if isinstance(command, INTAKE_COMMANDS) and self._one_record:
                return await self._through_intake(request)
            return await self._record(request, events)

    async def _through_intake(self, request: CommandRequest) -> CommandResult:
        """Polling stations and visits recorded by command are the intake's: the same
        rules and the same record as observers' reports (the mission's rules, stage and
        team, were checked by ``decide``)."""
        try:
            recorded = await workflow.execute_activity(
                "intake_command",
                IntakeCommandRequest(mission_id=self._start.mission_id, request=request),
                result_type=IntakeCommandResult,
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                raise ApplicationError(
                    cause.message, cause.type, type=cause.type, non_retryable=True
                ) from None
            raise ApplicationError(
                f"the intake did not confirm the command ({cause or error}); send it again "
                "(a visit recorded meanwhile is answered as recorded)",
                type="event_store_unavailable",
                non_retryable=True,
            ) from None
        if recorded.refused_rule is not None:
            raise ApplicationError(
                recorded.refused_message or recorded.refused_rule,
                recorded.refused_rule,
                type=recorded.refused_rule,
                non_retryable=True,
            )
        answer = CommandResult(
            mission_id=self._start.mission_id,
            command_id=request.command_id,
            stage=self._state.stage or Stage.invited,
            version=self._state.version,
            event_ids=recorded.event_ids,
            event_types=recorded.event_types,
            global_positions=recorded.global_positions,
        )
        return self._remember(answer)

    async def _drain_intake(self, command: CloseElectionDay) -> list[Event]:
        """Election day closes on everything the intake acknowledged: drain and count it
        first (later submissions are refused), then let the rules decide."""
        drained = await workflow.execute_activity(
            "drain_intake",
            IntakeQuery(mission_id=self._start.mission_id),
            result_type=IntakeDrained,
            retry_policy=STORE_RETRY,
            start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
        )
        events = intake_progressed(self._state, drained.progress)
        counted = fold(events, self._state)
        return events + self._decide(counted, command)

    @execute.validator
    def validate(self, request: CommandRequest) -> None:
        if request.command_id in self._results:
            return  # answered with its first result
        if not self._ready:
            return  # the state is still being read: the handler decides once it is
        if self._history_long and self._updates_in_flight:
            # The run is to continue as new once its updates in flight are done: taking
            # more would let a burst grow the history past Temporal's limits (the run
            # then terminated). The caller sends it again, and the next run takes it.
            # With none in flight, this one is taken: a rejected update's workflow task
            # is dropped from the history, so only an accepted one lets run() see the
            # length and continue as new.
            raise ApplicationError(
                "the mission is continuing as new; send the command again",
                type="mission_busy",
                non_retryable=True,
            )
        # Whether election day may close depends on the intake, counted in the handler
        # (validators are read-only: the intake patch is not known here before run()).
        try:
            self._decide(self._state, request.command, intake_drained=self._intake_on is False)
        except DomainError as error:
            raise refusal(error) from None

    @workflow.signal
    async def record(self, request: CommandRequest) -> None:
        """Facts from the mission's own ladders and follow-up (deliveries, escalations,
        evidence cycles): recorded in turn with coordinators' commands. A fact the rules
        refuse (a duplicate, a mission cancelled meanwhile) is logged and dropped."""
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            try:
                events = self._decide(self._state, request.command)
            except DomainError as error:
                workflow.logger.warning(
                    "system fact refused", extra={"rule": error.rule, "detail": error.message}
                )
                return
            try:
                await self._record(request, events)
            except ApplicationError as error:
                workflow.logger.error("system fact not recorded", extra={"error": str(error)})

    async def _record(self, request: CommandRequest, events: list[Event]) -> CommandResult:
        metadata = EventMetadata(
            actor=request.actor,
            command_id=request.command_id,
            command_type=request.command.type,
            correlation_id=request.correlation_id or request.command_id,
            causation_id=request.causation_id or request.command_id,
        )
        new_events, result = await self._record_events(events, metadata)
        workflow.logger.info(
            "command recorded",
            extra={"command": request.command.type, "version": self._state.version},
        )
        answer = CommandResult(
            mission_id=self._start.mission_id,
            command_id=request.command_id,
            stage=self._state.stage or Stage.invited,
            version=self._state.version,
            event_ids=[e.event_id for e in new_events],
            event_types=[e.type for e in events],
            global_positions=result.global_positions,
        )
        return self._remember(answer)

    def _remember(self, answer: CommandResult) -> CommandResult:
        """Keep the answer for this command id (the most recent ones, carried over
        continue-as-new): the same command again gets it."""
        self._results[answer.command_id] = answer
        while len(self._results) > RECENT_RESULTS:
            del self._results[next(iter(self._results))]
        return answer

    async def _record_events(
        self, events: list[Event], metadata: EventMetadata
    ) -> tuple[list[NewEvent], AppendResult]:
        """Append ``events`` at the current version, fold them and react to them."""
        info = workflow.info()
        metadata = metadata.model_copy(
            update={"workflow_id": info.workflow_id, "run_id": info.run_id}
        )
        now = workflow.now()
        new_events = [
            NewEvent.of(event, event_id=workflow.uuid4(), occurred_at=now, metadata=metadata)
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
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type in DATA_ERRORS:
                # The store refused the data itself, in a transaction that wrote nothing:
                # a bad input, answered at once (the caller's retry would fail alike).
                raise ApplicationError(
                    f"{cause.message}; nothing was recorded"
                    if "nothing was recorded" not in cause.message
                    else cause.message,
                    type="invalid_input",
                    non_retryable=True,
                ) from None
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
        self._state = self._state.for_decisions()
        self._head_hash = result.head_hash
        self._publish_search_attributes()
        await self._react(events)
        return new_events, result

    async def _catch_up(self) -> None:
        """Bring the state up to what the stream holds. An activity folds the stream and
        returns the state for decisions, so that neither the history nor a payload holds
        the mission's events (runs recorded before read the events themselves)."""
        if workflow.patched(FOLDED_READS_PATCH):
            folded = await workflow.execute_activity(
                "fold_stream",
                ReadRequest(
                    stream_id=self._start.mission_id,
                    after_version=0,
                    visits=self._one_record_on is False,
                ),
                result_type=FoldedStream,
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
            if folded.state.version > self._state.version:
                self._state = folded.state
                self._head_hash = folded.head_hash
        else:
            recorded: list[RecordedEvent] = await workflow.execute_activity_method(
                EventStoreActivities.read_stream,
                ReadRequest(stream_id=self._start.mission_id, after_version=self._state.version),
                retry_policy=STORE_RETRY,
                start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
            )
            self._state = fold((load_event(r.data) for r in recorded), self._state)
            self._state = self._state.for_decisions()
            if recorded:
                self._head_hash = recorded[-1].hash
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

    # -- automation: what recorded events set in motion -------------------------------------

    async def _react(self, events: list[Event]) -> None:
        if not self._automation:
            return
        state = self._state
        for event in events:
            match event:
                case ev.NominationsRequested() | ev.EvidenceRequested() if not event.reminders:
                    continue  # recorded without reminders: its dates are past
                case ev.NominationsRequested():
                    ladder = event.ladder or await self._ladder(DeadlineKind.nomination)
                    for member_state in event.member_states:
                        await self._start_ladder(
                            DeadlineKind.nomination, member_state, event.deadline, ladder
                        )
                case ev.ObserverNominated() | ev.NominationDeclined():
                    await self._signal_ladder(
                        DeadlineKind.nomination, event.member_state, 0, "answered"
                    )
                case ev.RecommendationsSent():
                    if event.acknowledge_by is not None and event.reminders:
                        ladder = event.ladder or await self._ladder(DeadlineKind.acknowledgement)
                        for recipient in event.recipients:
                            if recipient.kind is not RecipientKind.international_organisation:
                                await self._start_ladder(
                                    DeadlineKind.acknowledgement,
                                    recipient.name,
                                    event.acknowledge_by,
                                    ladder,
                                )
                    await self._start_follow_up(event.sent_on)
                case ev.RecommendationsAcknowledged():
                    await self._signal_ladder(
                        DeadlineKind.acknowledgement, event.recipient.name, 0, "answered"
                    )
                case ev.EvidenceRequested():
                    ladder = event.ladder or await self._ladder(DeadlineKind.evidence)
                    for member_state in event.member_states:
                        await self._start_ladder(
                            DeadlineKind.evidence,
                            member_state,
                            event.deadline,
                            ladder,
                            cycle=event.cycle,
                        )
                case ev.EvidenceSubmitted():
                    await self._signal_ladder(
                        DeadlineKind.evidence, event.member_state, event.cycle, "answered"
                    )
                case ev.ElectionPostponed():
                    if state.nomination_deadline is not None:
                        for member_state in state.member_states:
                            await self._signal_ladder(
                                DeadlineKind.nomination,
                                member_state,
                                0,
                                "move_deadline",
                                NewDeadline(deadline=state.nomination_deadline),
                            )
                case ev.ElectionDayOpened() if workflow.patched(NOMINATIONS_CLOSE_PATCH):
                    for member_state in state.member_states:
                        if not state.answered(DeadlineKind.nomination, member_state):
                            await self._signal_ladder(
                                DeadlineKind.nomination, member_state, 0, "stop"
                            )
                case ev.MissionCancelled() | ev.FollowUpEnded():
                    await self._stop_automation()
                case ev.InvitationRegistered():
                    await self._reopen_earlier_reviews(event)

    async def _resume_automation(self) -> None:
        """After the workflow was lost and restored from the stream: restart each ladder
        whose deadline is still unanswered and not escalated (from the step after the last
        one recorded, so no request goes out twice), and the follow-up if it still runs.
        A ladder or follow-up still running is left as it is."""
        state = self._state
        if state.stage in (Stage.closed, Stage.cancelled) and not state.follow_up_active:
            return
        waiting: list[tuple[DeadlineKind, str, int, datetime, ReminderLadder | None]] = []
        nominations_open = state.stage in (Stage.forming, Stage.pre_election)
        if (
            state.nomination_deadline is not None
            and state.nomination_reminders
            and (nominations_open or not workflow.patched(NOMINATIONS_CLOSE_PATCH))
        ):
            waiting += [
                (DeadlineKind.nomination, ms, 0, state.nomination_deadline, state.nomination_ladder)
                for ms in state.member_states
            ]
        if state.acknowledge_by is not None and state.acknowledgement_reminders:
            waiting += [
                (
                    DeadlineKind.acknowledgement,
                    d.recipient.name,
                    0,
                    state.acknowledge_by,
                    state.acknowledgement_ladder,
                )
                for d in state.deliveries.values()
                if d.recipient.kind is not RecipientKind.international_organisation
            ]
        for cycle in state.evidence_cycles.values():
            if cycle.reminders:
                waiting += [
                    (DeadlineKind.evidence, ms, cycle.cycle, cycle.deadline, cycle.ladder)
                    for ms in cycle.member_states
                ]
        for kind, member_state, cycle_no, deadline, ladder in waiting:
            track = state.reminders.get(track_key(kind, member_state, cycle_no))
            if state.answered(kind, member_state, cycle_no) or (track and track.escalated):
                continue
            await self._start_ladder(
                kind,
                member_state,
                deadline,
                ladder or await self._ladder(kind),
                cycle=cycle_no,
                first_step=0 if track is None or track.last_step is None else track.last_step + 1,
            )
        if state.follow_up_active and state.deliveries:
            await self._start_follow_up(min(d.sent_on for d in state.deliveries.values()))

    async def _ladder(self, kind: DeadlineKind) -> ReminderLadder:
        """The organisation's ladder for this kind of deadline, or the default one."""
        found: ReminderLadder | None = await workflow.execute_activity(
            "ladder_policy",
            LadderQuery(organisation=self._state.organisation or "", kind=kind),
            result_type=ReminderLadder | None,  # type: ignore[arg-type]
            retry_policy=STORE_RETRY,
            start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
        )
        return found or ReminderLadder()

    async def _start_ladder(
        self,
        kind: DeadlineKind,
        member_state: str,
        deadline: datetime,
        ladder: ReminderLadder,
        *,
        cycle: int = 0,
        first_step: int = 0,
    ) -> None:
        state = self._state
        parent = workflow.info().workflow_id
        # Ladders outlive a run of this workflow (continue-as-new) by design.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                ReminderLadderWorkflow.run,
                LadderStart(
                    mission_id=self._start.mission_id,
                    mission_workflow_id=parent,
                    organisation=state.organisation or "",
                    mission_name=state.election.name if state.election else "",
                    member_state=member_state,
                    kind=kind,
                    cycle=cycle,
                    deadline=deadline,
                    ladder=ladder,
                    timing=self._start.timing,
                    first_step=first_step,
                ),
                id=ladder_workflow_id(parent, kind, cycle, member_state),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    async def _start_follow_up(self, sent_on: date) -> None:
        state = self._state
        parent = workflow.info().workflow_id
        states = sorted({*state.member_states, state.host_country or ""} - {""})
        counted_from = (
            sent_instant(sent_on, state.time_zone, workflow.now()) if self._one_record else None
        )
        timing = self._start.timing
        next_opening = None
        if counted_from is not None and state.evidence_cycles:
            # Restarted after cycles were recorded: the next one, on the same clock.
            window = timedelta(seconds=timing.evidence_window_seconds)
            last_opening = state.evidence_cycles[state.last_cycle].deadline - window
            next_opening = next_cycle_opening(
                counted_from,
                last_opening,
                timedelta(seconds=timing.follow_up_interval_seconds),
                window,
                workflow.now(),
            )
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                FollowUpWorkflow.run,
                FollowUpStart(
                    mission_id=self._start.mission_id,
                    mission_workflow_id=parent,
                    member_states=states,
                    timing=self._start.timing,
                    counted_from=counted_from,
                    cycles_done=state.last_cycle,
                    next_opening=next_opening,
                    reopened_for=list(state.reopened_for),
                ),
                id=follow_up_workflow_id(parent),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    async def _signal_ladder(
        self,
        kind: DeadlineKind,
        member_state: str,
        cycle: int,
        signal: str,
        arg: NewDeadline | None = None,
    ) -> None:
        handle = workflow.get_external_workflow_handle(
            ladder_workflow_id(workflow.info().workflow_id, kind, cycle, member_state)
        )
        await _signal_quietly(handle, signal, arg)

    async def _stop_automation(self) -> None:
        state = self._state
        for member_state in state.member_states:
            await self._signal_ladder(DeadlineKind.nomination, member_state, 0, "stop")
        for delivery in state.deliveries.values():
            await self._signal_ladder(
                DeadlineKind.acknowledgement, delivery.recipient.name, 0, "stop"
            )
        for cycle in state.evidence_cycles.values():
            for member_state in cycle.member_states:
                await self._signal_ladder(DeadlineKind.evidence, member_state, cycle.cycle, "stop")
        follow_up = workflow.get_external_workflow_handle(
            follow_up_workflow_id(workflow.info().workflow_id)
        )
        await _signal_quietly(follow_up, "stop", None)

    async def _reopen_earlier_reviews(self, registered: ev.InvitationRegistered) -> None:
        """A later election in the same host, observed by the same organisation, reopens
        the reviews of that organisation's earlier missions there (another organisation's
        mission never writes into them; the same election registered again is not new)."""
        host_country = registered.host_country
        earlier: list[str] = await workflow.execute_activity(
            "missions_hosted_by",
            FollowUpsQuery(
                host_country=host_country,
                exclude_mission_id=self._start.mission_id,
                organisation=registered.organisation,
                election_day=registered.election.date,
            ),
            result_type=list[str],
            retry_policy=STORE_RETRY,
            start_to_close_timeout=STORE_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=STORE_TOTAL_TIMEOUT,
        )
        reopen = Reopen(new_mission_id=self._start.mission_id, host_country=host_country)
        await asyncio.gather(
            *(
                _signal_quietly(
                    workflow.get_external_workflow_handle(
                        follow_up_workflow_id(workflow_id(mission_id))
                    ),
                    "reopen",
                    reopen,
                )
                for mission_id in earlier
            )
        )


async def _signal_quietly(handle: ExternalWorkflowHandle[Any], signal: str, arg: Any) -> None:
    """Signal a ladder or follow-up that may have finished (or never started): such a
    signal has nobody left to act on it, which is fine."""
    try:
        if arg is None:
            await handle.signal(signal)
        else:
            await handle.signal(signal, arg)
    except ApplicationError:
        return  # nobody left to tell
