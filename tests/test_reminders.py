"""Reminder ladders and recommendation follow-up on the real Temporal dev server, with a
real SMTP server (aiosmtpd) and a real HTTP receiver on loopback, and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from receivers import SECRET, Receiver, running_receiver
from temporalio.client import Client
from temporalio.worker import Worker

from activities.delivery import DeliverySettings
from activities.directory import MemberStateContact, MemberStateDirectory
from cli import seed
from cli.smtp_sink import SmtpSink
from domain import commands as c
from domain.values import DateWindow, DeadlineKind, ReminderLadder
from eventstore.store import EventStore
from worker import build_worker
from workflows.client import Missions
from workflows.followup import follow_up_workflow_id
from workflows.messages import MissionTiming
from workflows.mission import workflow_id
from workflows.reminders import ladder_workflow_id

ACTOR = "coordinator:test"
ESCALATION = "secretariat@council.example.org"
LATER = ReminderLadder(offsets_seconds=[60])
AZ_NOMINATION = c.NominateObserver(
    observer_id="az-1",
    member_state="AZ",
    name="AZ diplomat",
    code_of_conduct_signed=True,
    conflict_of_interest_declared=True,
)
"""AZ's answer to a request for nominations: its ladder stops."""
TIMING = MissionTiming(delivery_retry_seconds=0.5, delivery_attempts=4)


@dataclass
class Setting:
    client: Client
    store: EventStore
    task_queue: str
    organisation: str
    sink: SmtpSink
    receiver: Receiver
    delivery: DeliverySettings
    missions: Missions

    def worker(self) -> Worker:
        return build_worker(self.client, self.store, self.task_queue, delivery=self.delivery)

    async def contact(self, code: str, *, webhook: str | None = None) -> None:
        await MemberStateDirectory(self.store.pool).upsert(
            MemberStateContact(
                organisation=self.organisation,
                code=code,
                name=f"Member state {code}",
                email=f"focal.{code.lower()}@mfa.example.org",
                webhook_url=webhook,
                webhook_secret=SECRET if webhook else None,
                escalation_email=ESCALATION,
            )
        )

    async def mission(self, member_states: list[str]) -> str:
        """A registered mission of this organisation, forming (head appointed)."""
        mission_id = f"rem-{uuid.uuid4().hex[:8]}"
        registration = seed.registration(mission_id).model_copy(
            update={"organisation": self.organisation, "member_states": member_states}
        )
        await self.missions.execute(mission_id, registration, actor=ACTOR)
        await self.missions.execute(
            mission_id, c.AppointHeadOfMission(name="Head", title="Envoy"), actor=ACTOR
        )
        return mission_id

    async def request(self, mission_id: str, *, in_seconds: int, ladder: ReminderLadder) -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=in_seconds)
        await self.missions.execute(
            mission_id, c.RequestNominations(deadline=deadline, ladder=ladder), actor=ACTOR
        )

    def mail_to(self, address: str) -> list[str]:
        return [str(m["Message-ID"]) for m in self.sink.messages() if address in str(m["To"])]


@pytest_asyncio.fixture
async def setting(client: Client, store: EventStore, tmp_path: Path) -> AsyncIterator[Setting]:
    with SmtpSink(tmp_path / "mail") as sink:
        async with running_receiver() as receiver:
            task_queue = f"eom-reminders-{uuid.uuid4().hex[:8]}"
            yield Setting(
                client=client,
                store=store,
                task_queue=task_queue,
                organisation=f"Council {uuid.uuid4().hex[:8]}",
                sink=sink,
                receiver=receiver,
                delivery=DeliverySettings(
                    smtp_host="127.0.0.1", smtp_port=sink.port, webhook_timeout_seconds=3
                ),
                missions=Missions(client=client, store=store, task_queue=task_queue, timing=TIMING),
            )


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30, what: str = ""
) -> None:
    """Poll ``check`` until it holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.2)


async def automation(store: EventStore, mission_id: str, member_state: str) -> list[str]:
    """``ReminderSent:<purpose>:<step>``, ``DeadlineEscalated``, ``DeliveryFailed:<step>``
    for one member state, in order."""
    found = []
    for event in await store.read_stream(mission_id):
        data = event.data
        if data.get("member_state") != member_state:
            continue
        match event.event_type:
            case "ReminderSent":
                found.append(f"ReminderSent:{data['purpose']}:{data['step']}")
            case "DeliveryFailed":
                found.append(f"DeliveryFailed:{data['step']}")
            case "DeadlineEscalated":
                found.append("DeadlineEscalated")
    return found


def has(
    store: EventStore, mission_id: str, member_state: str, entry: str
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return entry in await automation(store, mission_id, member_state)

    return check


async def test_ladder_stops_on_answer_and_escalates_silence(setting: Setting) -> None:
    """Two member states: one answers after the first reminder and hears nothing more;
    the other never answers, gets every reminder, and is escalated after the deadline."""
    await setting.contact("AZ")
    await setting.contact("KG")
    async with setting.worker():
        mission_id = await setting.mission(["AZ", "KG"])
        ladder = ReminderLadder(offsets_seconds=[4, 2], escalate_after_seconds=1)
        await setting.request(mission_id, in_seconds=6, ladder=ladder)
        store = setting.store
        await eventually(has(store, mission_id, "AZ", "ReminderSent:reminder:1"), what="AZ r1")
        await setting.missions.execute(mission_id, AZ_NOMINATION, actor=ACTOR)
        await eventually(has(store, mission_id, "KG", "DeadlineEscalated"), what="KG escalated")
        await asyncio.sleep(1.5)  # room for anything that should not come
        statuses = {s.member_state: s for s in await setting.missions.ladders(mission_id)}
    assert await automation(store, mission_id, "AZ") == [
        "ReminderSent:request:0",
        "ReminderSent:reminder:1",
    ]
    assert await automation(store, mission_id, "KG") == [
        "ReminderSent:request:0",
        "ReminderSent:reminder:1",
        "ReminderSent:reminder:2",
        "DeadlineEscalated",
    ]
    assert statuses["AZ"].answered and not statuses["KG"].answered
    assert len(setting.mail_to("focal.az@mfa.example.org")) == 2
    assert len(setting.mail_to("focal.kg@mfa.example.org")) == 3
    escalations = [m for m in setting.sink.messages() if ESCALATION in str(m["To"])]
    assert len(escalations) == 1 and "Member state KG" in escalations[0].get_content()
    state = await setting.missions.state(mission_id)
    assert state.reminders["nomination:0:KG"].escalated
    assert not state.reminders["nomination:0:AZ"].escalated


async def test_a_delivery_failing_twice_is_sent_once(setting: Setting) -> None:
    """A webhook answering 503 twice, then 200: one message received (signature checked),
    one sent event, three attempts in the outbox."""
    url, hook = setting.receiver.hook(script=[503, 503])
    await setting.contact("TR", webhook=url)
    async with setting.worker():
        mission_id = await setting.mission(["TR"])
        await setting.request(
            mission_id, in_seconds=3600, ladder=ReminderLadder(offsets_seconds=[60])
        )
        await eventually(has(setting.store, mission_id, "TR", "ReminderSent:request:0"))
    assert len(hook.requests) == 3 and all(r.verified for r in hook.requests)
    assert len(hook.accepted) == 1
    assert await automation(setting.store, mission_id, "TR") == ["ReminderSent:request:0"]
    attempts = await setting.store.pool.fetchval(
        "SELECT attempts FROM outbox WHERE mission_id = $1", mission_id
    )
    assert attempts == 3


async def test_a_permanent_failure_escalates_at_once(setting: Setting) -> None:
    """A webhook that rejects the request (400) is not retried: the failure is recorded
    and the escalation contact is told straight away, long before the deadline."""
    url, hook = setting.receiver.hook(script=[400])
    await setting.contact("UZ", webhook=url)
    async with setting.worker():
        mission_id = await setting.mission(["UZ"])
        await setting.request(
            mission_id, in_seconds=3600, ladder=ReminderLadder(offsets_seconds=[60])
        )
        await eventually(has(setting.store, mission_id, "UZ", "DeadlineEscalated"))
    assert len(hook.requests) == 1
    assert await automation(setting.store, mission_id, "UZ") == [
        "DeliveryFailed:0",
        "DeadlineEscalated",
    ]
    failure = next(
        e for e in await setting.store.read_stream(mission_id) if e.event_type == "DeliveryFailed"
    )
    assert "DeliveryRejected" in failure.data["error"]
    assert len([m for m in setting.sink.messages() if ESCALATION in str(m["To"])]) == 1


async def test_a_worker_restart_mid_ladder_loses_and_repeats_nothing(setting: Setting) -> None:
    """The worker stops after the first reminder and comes back after the second was
    due: the ladder resumes, every step goes out exactly once, then the escalation."""
    await setting.contact("KG")
    ladder = ReminderLadder(offsets_seconds=[5, 3], escalate_after_seconds=1)
    store = setting.store
    async with setting.worker():
        mission_id = await setting.mission(["KG"])
        await setting.request(mission_id, in_seconds=7, ladder=ladder)
        await eventually(has(store, mission_id, "KG", "ReminderSent:reminder:1"))
    await asyncio.sleep(3)  # reminder 2 falls due while no worker runs
    assert "ReminderSent:reminder:2" not in await automation(store, mission_id, "KG")
    async with setting.worker():
        await eventually(has(store, mission_id, "KG", "DeadlineEscalated"), within=40)
        await asyncio.sleep(1)
    assert await automation(store, mission_id, "KG") == [
        "ReminderSent:request:0",
        "ReminderSent:reminder:1",
        "ReminderSent:reminder:2",
        "DeadlineEscalated",
    ]
    ids = setting.mail_to("focal.kg@mfa.example.org") + setting.mail_to(ESCALATION)
    assert len(ids) == 4 and len(set(ids)) == 4


async def test_follow_up_continues_as_new_with_its_state_and_reopens(
    client: Client, setting: Setting
) -> None:
    """The follow-up asks for evidence every interval, continues as new under a low
    history limit keeping its cycle count, keeps earlier ratings, and a new election in
    the same host country reopens the review."""
    for code in ("AZ", "KG", "TR", "UZ", "KZ"):
        await setting.contact(code)
    timing = TIMING.model_copy(
        update={"follow_up_interval_seconds": 3.0, "follow_up_history_events": 12}
    )
    missions = Missions(
        client=client, store=setting.store, task_queue=setting.task_queue, timing=timing
    )
    mission_id = f"fu-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    commands[0] = commands[0].model_copy(update={"organisation": setting.organisation})
    async with setting.worker():
        for command in commands:
            await missions.execute(mission_id, command, actor=ACTOR)
        for rating in ("not_implemented", "partially"):
            await missions.execute(
                mission_id,
                c.RateImplementation(
                    recommendation_id="R1",
                    rating=rating,
                    rated_on=datetime.now(UTC).date(),
                    basis="evidence",
                ),
                actor=ACTOR,
            )

        async def cycles() -> bool:
            return (await missions.state(mission_id)).last_cycle >= 4

        await eventually(cycles, what="four follow-up cycles")
        runs = [
            run
            async for run in client.list_workflows(
                f"WorkflowId = '{follow_up_workflow_id(workflow_id(mission_id))}'"
            )
        ]
        assert len(runs) >= 2, "the follow-up continued as new"
        status = await missions.follow_up(mission_id)
        assert status is not None and status.cycles_done >= 4

        # Only a later election in the same host, registered by the same organisation,
        # reopens the review: not another organisation's mission there, nor the same
        # election registered again.
        base = seed.registration("x").model_copy(update={"organisation": setting.organisation})
        later = base.election.model_copy(update={"date": date(2023, 3, 19)})
        later_window = DateWindow(start=date(2023, 3, 15), end=date(2023, 3, 20))
        others = {
            f"kz-odihr-{uuid.uuid4().hex[:8]}": {
                "organisation": "OSCE/ODIHR",
                "election": later,
                "mission_window": later_window,
            },
            f"kz-again-{uuid.uuid4().hex[:8]}": {},
        }
        newer = f"kz-next-{uuid.uuid4().hex[:8]}"
        for other, changes in others.items():
            await missions.execute(
                other,
                base.model_copy(update={"mission_id": other, **changes}),
                actor=ACTOR,
            )
        await missions.execute(
            newer,
            base.model_copy(
                update={"mission_id": newer, "election": later, "mission_window": later_window}
            ),
            actor=ACTOR,
        )

        async def reopened() -> bool:
            return newer in (await missions.state(mission_id)).reopened_for

        # Every earlier KZ mission of the session still in follow-up is reopened too, each
        # through its follow-up workflow and back: on a loaded machine that takes a while.
        await eventually(reopened, within=90, what="review reopened")
        assert (await missions.state(mission_id)).reopened_for == [newer]
        await missions.execute(mission_id, c.EndFollowUp(reason="test over"), actor=ACTOR)
        await client.get_workflow_handle(workflow_id(mission_id)).result()
    state = await missions.state(mission_id)
    assert sorted(state.evidence_cycles) == list(range(1, state.last_cycle + 1))
    assert [r.rating.value for r in state.ratings["R1"]] == ["not_implemented", "partially"]
    assert state.follow_up_ended_at is not None
    kinds = {e.event_type for e in await missions.events(mission_id)}
    assert {"EvidenceRequested", "ReviewReopened", "FollowUpEnded"} <= kinds


async def test_a_hanging_endpoint_delays_no_other_member_state(setting: Setting) -> None:
    """One state's webhook hangs; another state's request goes out meanwhile."""
    url, hook = setting.receiver.hook(hang=True)
    await setting.contact("AZ", webhook=url)
    await setting.contact("KG")
    async with setting.worker():
        mission_id = await setting.mission(["AZ", "KG"])
        await setting.request(mission_id, in_seconds=3600, ladder=LATER)
        await eventually(has(setting.store, mission_id, "KG", "ReminderSent:request:0"), within=8)
        assert hook.requests, "AZ's endpoint was called"
        assert await automation(setting.store, mission_id, "AZ") == []
        setting.receiver.release.set()
        await eventually(has(setting.store, mission_id, "AZ", "ReminderSent:request:0"))


async def test_postponement_moves_the_ladder(setting: Setting) -> None:
    """Postponing the election moves the nomination deadline, and the ladder with it:
    the reminder that was due six seconds after the request is not sent."""
    await setting.contact("KG")
    async with setting.worker():
        mission_id = await setting.mission(["KG"])
        await setting.request(mission_id, in_seconds=6, ladder=ReminderLadder(offsets_seconds=[4]))
        await eventually(has(setting.store, mission_id, "KG", "ReminderSent:request:0"))
        postpone = c.PostponeElection(
            new_date=seed.ELECTION_DAY + timedelta(days=7), reason="court"
        )
        await setting.missions.execute(mission_id, postpone, actor=ACTOR)
        await asyncio.sleep(7)  # the reminder was due six seconds after the request
        [status] = await setting.missions.ladders(mission_id)
    assert await automation(setting.store, mission_id, "KG") == ["ReminderSent:request:0"]
    state = await setting.missions.state(mission_id)
    assert state.nomination_deadline == status.deadline
    assert status.deadline - datetime.now(UTC) > timedelta(days=6)


async def test_pause_and_send_now(setting: Setting) -> None:
    """A paused ladder sends nothing; send-now sends the next reminder at once."""
    await setting.contact("KG")
    async with setting.worker():
        mission_id = await setting.mission(["KG"])
        await setting.request(mission_id, in_seconds=3600, ladder=LATER)
        await eventually(has(setting.store, mission_id, "KG", "ReminderSent:request:0"))
        kind = DeadlineKind.nomination
        await setting.missions.signal_ladder(mission_id, kind, "KG", "pause")
        await eventually(lambda: _paused(setting, mission_id), what="paused")
        await setting.missions.signal_ladder(mission_id, kind, "KG", "send_now")
        await eventually(has(setting.store, mission_id, "KG", "ReminderSent:reminder:1"))
        [status] = await setting.missions.ladders(mission_id)
    assert not status.paused and status.next_purpose is not None
    assert status.next_purpose.value == "escalation"


async def test_nomination_reminders_stop_when_election_day_opens(setting: Setting) -> None:
    """The delegation is formed once election day opens: a state that never answered is
    no longer reminded (a late nomination could not be recorded), nor escalated."""
    for code in ("AZ", "KG"):
        await setting.contact(code)
    async with setting.worker():
        mission_id = await setting.mission(["AZ", "KG"])
        await setting.request(mission_id, in_seconds=3600, ladder=LATER)
        await eventually(has(setting.store, mission_id, "KG", "ReminderSent:request:0"))
        for command in (
            c.NominateObserver(
                observer_id="az-1",
                member_state="AZ",
                name="Observer of AZ",
                code_of_conduct_signed=True,
                conflict_of_interest_declared=True,
            ),
            c.AcceptObserver(observer_id="az-1"),
            c.FormTeam(team_id="t1", observer_ids=["az-1"]),
            c.DeployMission(deployed_on=date(2021, 1, 6)),
            c.OpenElectionDay(),
        ):
            await setting.missions.execute(mission_id, command, actor=ACTOR)

        async def stopped() -> bool:
            ladders = await setting.missions.ladders(mission_id)
            return any(s.member_state == "KG" and s.stopped for s in ladders)

        await eventually(stopped, what="KG's nomination ladder stopped")
        kg = [s for s in await setting.missions.ladders(mission_id) if s.member_state == "KG"]
    assert kg[0].next_purpose is None


async def _paused(setting: Setting, mission_id: str) -> bool:
    return all(s.paused for s in await setting.missions.ladders(mission_id))


async def test_a_restored_mission_restarts_its_lost_ladders_where_the_record_left_them(
    setting: Setting,
) -> None:
    """The mission's workflow and its ladders are lost (terminated, as past retention).
    Restored from the stream, the mission restarts the ladder of the state that has not
    answered, from the step after the last one recorded: no request goes out twice, the
    next reminder and the escalation come; the state that answered gets nothing."""
    await setting.contact("AZ")
    await setting.contact("KG")
    async with setting.worker():
        mission_id = await setting.mission(["AZ", "KG"])
        ladder = ReminderLadder(offsets_seconds=[4], escalate_after_seconds=1)
        await setting.request(mission_id, in_seconds=12, ladder=ladder)
        store = setting.store
        await eventually(has(store, mission_id, "KG", "ReminderSent:request:0"), what="KG asked")
        await eventually(has(store, mission_id, "AZ", "ReminderSent:request:0"), what="AZ asked")
        await setting.missions.execute(mission_id, AZ_NOMINATION, actor=ACTOR)
        parent = workflow_id(mission_id)
        for handle_id in (
            parent,
            ladder_workflow_id(parent, DeadlineKind.nomination, 0, "KG"),
        ):
            await setting.client.get_workflow_handle(handle_id).terminate(reason="lost")
        await setting.missions.restore(mission_id)
        await eventually(has(store, mission_id, "KG", "DeadlineEscalated"), what="KG escalated")
        await asyncio.sleep(1)
    kg = await automation(store, mission_id, "KG")
    # The request is not sent again; the reminder comes unless its time passed while the
    # mission was being restored (a ladder skips reminders already past); the escalation.
    assert kg in (
        ["ReminderSent:request:0", "ReminderSent:reminder:1", "DeadlineEscalated"],
        ["ReminderSent:request:0", "DeadlineEscalated"],
    ), kg
    assert await automation(store, mission_id, "AZ") == ["ReminderSent:request:0"]
    assert len(setting.mail_to("focal.kg@mfa.example.org")) == len(kg) - 1
