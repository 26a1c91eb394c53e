"""MissionWorkflow on a real Temporal dev server, with the real activities and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import WorkflowExecutionStartedEventAttributes
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, Worker

from activities.event_store import EventStoreActivities
from cli import seed
from cli.audit import differences
from domain import Mission, Stage, decide, evolve, fold, load_event
from domain import commands as c
from domain import events as ev
from domain.commands import Command
from eventstore.models import AppendResult, EventMetadata, NewEvent
from eventstore.store import EventStore
from intake import progress
from intake.visits import mission_visits
from worker import WORKFLOW_RUNNER, build_worker, data_converter
from workflows.client import CommandRefused, Missions
from workflows.messages import AppendRequest, MissionOutcome
from workflows.mission import (
    HOST_COUNTRY,
    INTAKE_COMMANDS,
    MISSION_STAGE,
    MissionWorkflow,
    workflow_id,
)

HISTORIES = Path(__file__).parent / "histories"
ACTOR = "coordinator@turkic-council"
END_FOLLOW_UP = c.EndFollowUp(reason="test over")
AUTOMATION = {
    "NominationsRequested",
    "ReminderSent",
    "DeliveryFailed",
    "DeadlineEscalated",
    "EvidenceRequested",
    "FollowUpEnded",
}


@pytest.fixture
def task_queue() -> str:
    return f"eom-test-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def running_worker(
    client: Client, store: EventStore, task_queue: str
) -> AsyncIterator[Worker]:
    async with build_worker(client, store, task_queue) as worker:
        yield worker


def mission_handle(
    client: Client, mission_id: str
) -> WorkflowHandle[MissionWorkflow, MissionOutcome]:
    return client.get_workflow_handle_for(MissionWorkflow.run, workflow_id(mission_id))


def missions(
    client: Client, store: EventStore, task_queue: str, *, max_history_events: int | None = None
) -> Missions:
    return Missions(
        client=client, store=store, task_queue=task_queue, max_history_events=max_history_events
    )


def new_mission_id() -> str:
    return f"tc-kz-2021-{uuid.uuid4().hex[:8]}"


async def run_commands(api: Missions, mission_id: str, commands: Sequence[Command]) -> None:
    for command in commands:
        await api.execute(mission_id, command, actor=ACTOR)


async def update_count(client: Client, mission_id: str) -> int:
    history = await mission_handle(client, mission_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    )


async def test_seed_mission_end_to_end(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """The seed mission runs registration to closure; the store, the workflow's state and
    a fold of the stored events agree, and the chain is unbroken."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    await run_commands(api, mission_id, commands[:-1])

    live = await api.live_state(mission_id)
    stored = await api.state(mission_id)
    assert live == stored.for_decisions()
    assert live.stage is Stage.follow_up

    handle = mission_handle(client, mission_id)
    description = await handle.describe()
    assert description.typed_search_attributes.get(MISSION_STAGE) == "follow_up"
    assert description.typed_search_attributes.get(HOST_COUNTRY) == "KZ"

    result = await api.execute(mission_id, commands[-1], actor=ACTOR)
    assert result.stage is Stage.closed
    # Only the follow-up of a closed mission goes on; ending it ends the workflow.
    await api.execute(mission_id, END_FOLLOW_UP, actor=ACTOR)
    outcome = await handle.result()
    assert outcome.stage is Stage.closed

    events = await api.events(mission_id)
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    final = fold(load_event(e.data) for e in events)
    assert final.stage is Stage.closed and final.version == outcome.version == len(events)
    # Visits by command are the intake's, in the stations' streams: one record of visits.
    assert final.visits == {}
    visits = await mission_visits(store, mission_id, time_zone=final.time_zone)
    assert [v.visit_id for v in visits] == [f"visit-{n:02d}" for n in range(1, seed.STATIONS + 1)]
    assert final.time_zone == "Asia/Almaty"
    assert visits[0].arrived_at.isoformat() == "2021-01-10T06:45:00+06:00"
    first = events[0]
    assert first.metadata.actor == ACTOR
    assert first.metadata.workflow_id == workflow_id(mission_id)
    assert first.metadata.run_id and first.metadata.command_type == "register_invitation"
    assert (await store.verify_stream(mission_id)).ok
    published = next(e for e in events if e.event_type == "StatementPublished")
    before = next(e for e in events if e.stream_version == published.stream_version - 1)
    assert published.data["history_fingerprint"] == before.hash

    history = await handle.fetch_history()
    await Replayer(
        workflows=[MissionWorkflow], data_converter=data_converter, workflow_runner=WORKFLOW_RUNNER
    ).replay_workflow(history)
    record_as = os.environ.get("EOM_RECORD_HISTORY")
    if record_as:
        HISTORIES.mkdir(exist_ok=True)
        recorded = {"workflow_id": history.workflow_id, **json.loads(history.to_json())}
        (HISTORIES / f"{record_as}.json").write_text(json.dumps(recorded))


async def test_refused_command_leaves_no_trace(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """A refused update returns the rule's message and writes neither an event nor a
    history entry."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    await run_commands(api, mission_id, seed.mission(mission_id)[:2])
    before_version = await store.stream_version(mission_id)
    before_updates = await update_count(client, mission_id)

    host_observer = c.NominateObserver(
        observer_id="kz-1",
        member_state="KZ",
        name="Host national",
        code_of_conduct_signed=True,
        conflict_of_interest_declared=True,
    )
    with pytest.raises(CommandRefused) as refused:
        await api.execute(mission_id, host_observer, actor=ACTOR)
    assert refused.value.rule == "observer_from_host_country"
    assert "host country" in refused.value.message

    with pytest.raises(CommandRefused) as skipped:
        await api.execute(mission_id, c.OpenElectionDay(), actor=ACTOR)
    assert skipped.value.rule == "stage_skipped"

    assert await store.stream_version(mission_id) == before_version
    assert await update_count(client, mission_id) == before_updates


async def test_seed_date_slip_is_refused_through_the_workflow(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """The statement's "10 January 2020" would be refused at the door."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    open_day = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    await run_commands(api, mission_id, commands[: open_day + 1])
    with pytest.raises(CommandRefused) as refused:
        await api.execute(mission_id, seed.the_2020_slip(), actor=ACTOR)
    assert refused.value.rule == "visit_not_on_election_day"
    assert "2020-01-10" in refused.value.message and "2021-01-10" in refused.value.message


async def test_registration_is_checked_before_any_workflow_starts(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """A bad invitation is refused without starting a workflow; a second registration of
    the same mission is refused as already registered."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    bad = seed.registration(mission_id).model_copy(update={"member_states": ["AZ", "KZ"]})
    with pytest.raises(CommandRefused) as refused:
        await api.execute(mission_id, bad, actor=ACTOR)
    assert refused.value.rule == "host_among_member_states"
    assert await store.stream_version(mission_id) == 0

    await api.execute(mission_id, seed.registration(mission_id), actor=ACTOR)
    with pytest.raises(CommandRefused) as again:
        await api.execute(mission_id, seed.registration(mission_id), actor=ACTOR)
    assert again.value.rule == "mission_already_registered"


async def test_commands_on_a_closed_mission_are_refused(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """After closure the workflow has ended; a command gets the domain's reason."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    await run_commands(api, mission_id, seed.mission(mission_id)[:2])
    await api.execute(
        mission_id, c.CancelMission(reason="election postponed sine die"), actor=ACTOR
    )
    await mission_handle(client, mission_id).result()
    with pytest.raises(CommandRefused) as refused:
        await api.execute(
            mission_id, c.AppointHeadOfMission(name="Someone", title="Envoy"), actor=ACTOR
        )
    assert refused.value.rule == "mission_cancelled"
    with pytest.raises(CommandRefused) as unknown:
        await api.execute("no-such-mission", c.OpenElectionDay(), actor=ACTOR)
    assert unknown.value.rule == "mission_not_registered"


async def test_worker_restart_mid_mission_loses_and_duplicates_nothing(
    client: Client, store: EventStore, task_queue: str
) -> None:
    """A worker stopped mid-mission and a new one started: the mission finishes with
    the same events as an uninterrupted run, versions contiguous, no duplicates."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    half = len(commands) // 2
    async with build_worker(client, store, task_queue):
        await run_commands(api, mission_id, commands[:half])
    # No worker now: the workflow waits on the server, its state in its history.
    async with build_worker(client, store, task_queue):
        await run_commands(api, mission_id, [*commands[half:], END_FOLLOW_UP])
        await mission_handle(client, mission_id).result()
    events = await api.events(mission_id)
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    recorded = [e.event_type for e in events if e.event_type not in AUTOMATION]
    assert recorded == _event_types(commands)
    assert (await store.verify_stream(mission_id)).ok


def _event_types(commands: Sequence[Command]) -> list[str]:
    """The event types an uninterrupted run of ``commands`` records in the mission's
    stream (closing election day records the intake's count first; stations and visits
    are recorded in the intake's streams)."""
    current, types = Mission(), list[str]()
    for command in commands:
        if isinstance(command, c.CloseElectionDay):
            types.append("IntakeProgressed")
        for event in decide(current, command, now=datetime.now(UTC)):
            current = evolve(current, event)
            if not isinstance(command, INTAKE_COMMANDS):
                types.append(event.type)
    return types


async def test_long_missions_continue_as_new_with_their_state(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """With a low history limit the workflow continues as new several times; each run
    starts from the carried state, and the end state equals the stored history's fold."""
    api = missions(client, store, task_queue, max_history_events=100)
    mission_id = new_mission_id()
    await run_commands(api, mission_id, [*seed.mission(mission_id), END_FOLLOW_UP])
    handle = mission_handle(client, mission_id)
    outcome = await handle.result()
    assert outcome.stage is Stage.closed
    runs = [
        execution
        async for execution in client.list_workflows(f"WorkflowId = '{workflow_id(mission_id)}'")
    ]
    assert len(runs) >= 3
    stored = await api.state(mission_id)
    assert stored.stage is Stage.closed and stored.version == outcome.version


async def test_a_mission_whose_texts_outgrow_a_payload_goes_on(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """Meetings whose summaries, participants and topics are each within their bounds add
    up to a mission beyond Temporal's 2 MB payload limit. The workflow holds only what
    its rules need, so it continues as new (carrying that), answers its queries, takes
    every later command, and rests when idle (no run after run)."""
    api = missions(client, store, task_queue, max_history_events=100)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    first_meeting = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.RecordMeeting))
    await run_commands(api, mission_id, commands[:first_meeting])
    for n in range(16):  # each command within its bound (256 KB of JSON)
        await api.execute(
            mission_id,
            c.RecordMeeting(
                meeting_id=f"long-{n}",
                stakeholder_type="civil_society",
                stakeholder_name="Civil society coalition",
                held_on=seed.ELECTION_DAY.replace(day=7),
                participants=[f"{n}-{p} " + "Қ" * 200 for p in range(100)],
                topics=[f"{t} " + "ü" * 200 for t in range(50)],
                summary="Қазақстан сайлау комиссиясы. " * 2_500,
            ),
            actor=ACTOR,
        )
    stored = await api.state(mission_id)
    assert len(stored.model_dump_json().encode()) > 3_000_000
    # The seed's own meetings, election day opened, visits recorded.
    await run_commands(api, mission_id, commands[first_meeting : first_meeting + 12])
    live = await api.live_state(mission_id)
    assert live == (await api.state(mission_id)).for_decisions()

    async def runs() -> int:
        return len(
            [
                execution
                async for execution in client.list_workflows(
                    f"WorkflowId = '{workflow_id(mission_id)}'"
                )
            ]
        )

    before = await runs()
    assert before >= 2, "the mission continued as new"
    await asyncio.sleep(3)
    assert await runs() == before, "an idle mission does not continue as new"


async def test_a_mission_that_does_not_answer_is_unresponsive_and_then_answers_once(
    client: Client, store: EventStore, task_queue: str
) -> None:
    """With its worker gone, a command the mission took is answered
    ``mission_unresponsive`` once ``answer_seconds`` pass (it may still be recorded); when
    the worker is back the command is recorded, and sent again with its id it gets its
    first result, recorded once."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    async with build_worker(client, store, task_queue):
        await run_commands(api, mission_id, commands[:2])
    impatient = Missions(
        client=client, store=store, task_queue=task_queue, answer_seconds=2, busy_seconds=2
    )
    nomination = commands[2]
    with pytest.raises(CommandRefused) as refused:
        await impatient.execute(mission_id, nomination, actor=ACTOR, command_id="nominate-1")
    assert refused.value.rule == "mission_unresponsive"
    assert "may still be recorded" in refused.value.message
    async with build_worker(client, store, task_queue):
        again = await api.execute(mission_id, nomination, actor=ACTOR, command_id="nominate-1")
    assert again.event_types == ["ObserverNominated"]
    events = await api.events(mission_id)
    assert [e.event_type for e in events].count("ObserverNominated") == 1


def load_history(path: Path) -> WorkflowHistory:
    """A committed history, with the workflow id it ran under (child ids derive from it)."""
    recorded = json.loads(path.read_bytes())
    return WorkflowHistory.from_json(recorded.pop("workflow_id", workflow_id(path.stem)), recorded)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_committed_histories_replay(path: Path) -> None:
    """Determinism: histories recorded by earlier code replay against the current code."""
    history = load_history(path)
    await Replayer(
        workflows=[MissionWorkflow], data_converter=data_converter, workflow_runner=WORKFLOW_RUNNER
    ).replay_workflow(history)


class AppendThenLoseTheAnswer(EventStoreActivities):
    """The first attempt of every append commits and then fails, as if the worker died
    between the commit and reporting it; Temporal retries the activity."""

    @activity.defn(name="append_events")
    async def append_events(self, request: AppendRequest) -> AppendResult:
        result = await super().append_events(request)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost before reporting the append")
        assert result.replayed
        return result


async def test_retried_appends_are_recognised_not_duplicated(
    client: Client, store: EventStore, task_queue: str
) -> None:
    """Every append's first attempt commits but is reported lost; the retries return the
    stored result, so each command's events are written exactly once."""
    async with build_worker(client, store, task_queue, events=AppendThenLoseTheAnswer(store)):
        api = missions(client, store, task_queue)
        mission_id = new_mission_id()
        commands = seed.mission(mission_id)[:6]
        await run_commands(api, mission_id, commands)
        live = await api.live_state(mission_id)
    events = await api.events(mission_id)
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert [e.event_type for e in events] == _event_types(commands)
    assert live == (await api.state(mission_id)).for_decisions()


async def test_a_lost_workflow_is_restored_from_its_stream(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """With its workflow gone, a mission restarts from the stored stream: the same state
    as a replay, no new event, and it takes the next command."""
    api = missions(client, store, task_queue)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    await run_commands(api, mission_id, commands[:10])
    await mission_handle(client, mission_id).terminate(reason="lost, as past retention")
    version = await store.stream_version(mission_id)
    with pytest.raises(CommandRefused):
        await api.execute(mission_id, commands[10], actor=ACTOR)
    await api.restore(mission_id)
    live, replayed = await api.live_state(mission_id), await api.state(mission_id)
    assert (
        differences(replayed.for_decisions().model_dump(mode="json"), live.model_dump(mode="json"))
        == []
    )
    assert await store.stream_version(mission_id) == version
    with pytest.raises(CommandRefused) as running:
        await api.restore(mission_id)
    assert running.value.rule == "mission_running"
    result = await api.execute(mission_id, commands[10], actor=ACTOR)
    assert result.version == version + 1
    assert (await store.verify_stream(mission_id)).ok


async def test_ten_thousand_visits_by_command_carry_a_small_state_over_continue_as_new(
    client: Client, store: EventStore, task_queue: str, running_worker: Worker
) -> None:
    """A mission whose stream holds 10,000 visits recorded by command (the records made
    before visits went through the intake), its workflow lost and restored: the state the
    workflow folds and carries over continue-as-new stays far below Temporal's 2 MB limit,
    and every read path still counts the 10,000 visits."""
    api = missions(client, store, task_queue, max_history_events=100)
    mission_id = new_mission_id()
    commands = seed.mission(mission_id)
    opening = next(n for n, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    await run_commands(api, mission_id, commands[: opening + 1])
    await mission_handle(client, mission_id).terminate(reason="lost, as past retention")
    template = seed.station_visit(5, team=1)
    version = await store.stream_version(mission_id)
    for first in range(0, 10_000, 1_000):
        batch = [
            NewEvent.of(
                ev.StationVisitRecorded(
                    **template.model_dump(exclude={"type"})
                    | {"visit_id": f"paper-{n:05d}", "station_id": f"PS-{n:05d}"}
                ),
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                metadata=EventMetadata(actor=ACTOR, command_type="record_station_visit"),
            )
            for n in range(first, first + 1_000)
        ]
        await store.append(stream_id=mission_id, expected_version=version, events=batch)
        version += len(batch)

    await api.restore(mission_id)
    live = await api.live_state(mission_id)
    assert live.version == version and live.visits == {}
    stations = c.RegisterPollingStations(
        stations=[{"station_id": "PS-00000", "locality": template.locality}]
    )
    started: WorkflowExecutionStartedEventAttributes | None = None
    for _ in range(40):  # commands (recording nothing new) until the run moves on
        await api.execute(mission_id, stations, actor=ACTOR)
        history = await mission_handle(client, mission_id).fetch_history()
        attributes = history.events[0].workflow_execution_started_event_attributes
        if attributes.continued_execution_run_id:
            started = attributes
            break
    assert started is not None, "the mission continued as new"
    carried = sum(len(p.data) for p in started.input.payloads)
    assert carried < 100_000, f"the carried state is {carried} bytes"
    assert (await progress.progress(store, mission_id)).visits == 10_000
    assert len(await mission_visits(store, mission_id)) == 10_000
