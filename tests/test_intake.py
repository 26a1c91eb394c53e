"""Election-day intake against the real services: reports recorded once and durably,
refusals that write nothing, the mission following in aggregate, and a simulated
election day of 10,000 reports with a restart in the middle."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client

from cli import seed
from domain import Stage
from domain import commands as c
from domain.submissions import IncidentReport, PollingStation, StationVisitReport
from domain.values import LOCALITIES_LISTED
from eventstore.projections import Projector
from eventstore.store import EventStore
from intake import progress
from intake.coverage import COVERAGE, coverage
from intake.simulation import ElectionDay, Sending, polling_stations
from intake.writer import Intake, IntakeUnavailable, SubmissionRefused, station_stream
from worker import build_worker
from workflows.client import Missions
from workflows.messages import MissionTiming

TEAMS = [f"team-{n}" for n in range(1, 5)]

STANDING = """
WITH reports AS MATERIALIZED (
    SELECT event_type, data FROM events
    WHERE stream_id LIKE $1 || '/stations/%'
      AND event_type IN ('StationVisitReported', 'IncidentReported')
), standing AS (
    SELECT * FROM reports WHERE data->>'submission_id' NOT IN (
        SELECT data->>'corrects' FROM reports WHERE data->>'corrects' IS NOT NULL)
)"""
"""The mission's reports straight from the event store, less those a correction replaced."""


@dataclass
class Election:
    mission_id: str
    missions: Missions
    intake: Intake
    stations: list[PollingStation]

    def visit(self, submission_id: str, **changes: object) -> StationVisitReport:
        report = StationVisitReport(
            submission_id=submission_id,
            mission_id=self.mission_id,
            station_id=self.stations[0].station_id,
            team_id="team-1",
            arrived_at=local(8),
            departed_at=local(9),
            checklists=[{"phase": "opening", "answers": {"opened_on_time": True}}],
            findings=[],
        )
        return report.model_copy(update=changes)


def local(hour: float) -> datetime:
    """``hour`` o'clock on the seed's election day, in UTC."""
    return datetime(2021, 1, 10, tzinfo=UTC) + timedelta(hours=hour - 6)


@pytest.fixture
def task_queue() -> str:
    return f"eom-intake-{uuid.uuid4().hex[:8]}"


async def open_election_day(
    client: Client, store: EventStore, task_queue: str, *, stations: int, grace_minutes: float
) -> tuple[Missions, str, list[PollingStation]]:
    """The seed mission up to an open election day, with ``stations`` registered."""
    missions = Missions(
        client=client,
        store=store,
        task_queue=task_queue,
        timing=MissionTiming(intake_poll_seconds=1),
    )
    mission_id = f"intake-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    opening = next(n for n, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    for command in commands[:opening]:
        await missions.execute(mission_id, command, actor="coordinator")
    intake = Intake(store)
    registered = polling_stations(stations, localities=5)
    await intake.register_stations(mission_id, registered, actor="coordinator")
    await missions.execute(
        mission_id,
        c.OpenElectionDay(polls_open_at=datetime.now(UTC), check_in_grace_minutes=grace_minutes),
        actor="coordinator",
    )
    await intake.close()
    return missions, mission_id, registered


@pytest_asyncio.fixture
async def election(client: Client, store: EventStore, task_queue: str) -> AsyncIterator[Election]:
    async with build_worker(client, store, task_queue):
        missions, mission_id, stations = await open_election_day(
            client, store, task_queue, stations=20, grace_minutes=60
        )
        async with Intake(store) as intake:
            yield Election(mission_id, missions, intake, stations)


async def recorded(pool: asyncpg.Pool, mission_id: str) -> tuple[int, int]:
    """(receipts, events in the mission's station streams)."""
    receipts = await pool.fetchval(
        "SELECT count(*) FROM intake_receipts WHERE mission_id = $1", mission_id
    )
    events = await pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id LIKE $1 || '/stations/%'", mission_id
    )
    return int(receipts), int(events)


async def test_a_report_is_recorded_once_and_resent_reports_get_the_first_receipt(
    election: Election, store: EventStore
) -> None:
    """A report lands in its station's stream; sending it again is answered with the first
    receipt and records nothing more."""
    report = election.visit("r-1", arrived_at=local(8), departed_at=local(9))
    [first] = await election.intake.submit(election.mission_id, [report], actor="observer")
    assert first.status == "recorded"
    assert first.stream_id == station_stream(election.mission_id, report.station_id)
    [again] = await election.intake.submit(election.mission_id, [report], actor="observer")
    assert again.status == "duplicate"
    assert again.model_dump(exclude={"status"}) == first.model_dump(exclude={"status"})
    assert await recorded(store.pool, election.mission_id) == (1, 1)
    [event] = await store.read_stream(first.stream_id)
    assert event.event_type == "StationVisitReported"
    assert event.data["locality"] == election.stations[0].locality
    assert event.metadata.actor == "observer" and event.metadata.command_id == "r-1"
    assert (await store.verify_stream(first.stream_id)).ok


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"arrived_at": local(8) - timedelta(days=366), "departed_at": local(9)}, "visit"),
        ({"station_id": "PS-99999"}, "unknown_station"),
        ({"team_id": "team-99"}, "unknown_team"),
        ({"mission_id": "another-mission"}, "wrong_mission"),
        ({"corrects": "never-sent"}, "correction_of_unknown_report"),
    ],
)
async def test_refused_submissions_write_nothing(
    election: Election, store: EventStore, changes: dict[str, object], rule: str
) -> None:
    """A wrong date, an unknown station or team, another mission, a correction of nothing:
    refused with the rule named, and nothing of the request is written (not even its
    valid reports)."""
    good = election.visit("ok-1", arrived_at=local(8), departed_at=local(9))
    bad = election.visit("bad-1", arrived_at=local(10), departed_at=local(11)).model_copy(
        update=changes
    )
    with pytest.raises(SubmissionRefused) as refused:
        await election.intake.submit(election.mission_id, [good, bad], actor="observer")
    [problem] = refused.value.problems
    assert problem.rule.startswith(rule) and problem.index == 1
    assert "bad-1" in problem.message or problem.submission_id == "bad-1"
    assert await recorded(store.pool, election.mission_id) == (0, 0)


async def test_a_used_id_for_a_different_report_is_refused(election: Election) -> None:
    """Same id, other content: refused, naming corrections as the way to change a report."""
    report = election.visit("r-7", arrived_at=local(8), departed_at=local(9))
    await election.intake.submit(election.mission_id, [report], actor="observer")
    changed = report.model_copy(update={"departed_at": local(10)})
    with pytest.raises(SubmissionRefused, match="correct"):
        await election.intake.submit(election.mission_id, [changed], actor="observer")


async def test_corrections_name_an_earlier_report_and_say_nothing_of_other_teams(
    election: Election, store: EventStore
) -> None:
    """A report cannot correct itself, two reports cannot correct each other, and a
    correction sent with its report comes after it; a refusal tells a team nothing of
    another team's reports (which id, which station, which team). Dry runs say the
    same as the real requests, resends and reused ids included."""
    mission = election.mission_id
    first = election.visit("c-1", arrived_at=local(8), departed_at=local(9))
    itself = first.model_copy(update={"submission_id": "c-self", "corrects": "c-self"})
    x = first.model_copy(update={"submission_id": "c-x", "corrects": "c-y"})
    y = first.model_copy(update={"submission_id": "c-y", "corrects": "c-x"})
    late = first.model_copy(update={"submission_id": "c-fix", "corrects": "c-1"})
    for request in ([itself], [x, y], [late, first]):
        for check in (election.intake.check, None):
            with pytest.raises(SubmissionRefused, match="correction_of_unknown_report"):
                if check is not None:
                    await check(mission, request)
                else:
                    await election.intake.submit(mission, request, actor="observer")
    await election.intake.submit(mission, [first, late], actor="observer")  # in order: fine
    # Another team reusing team-1's id learns nothing of team-1's report.
    other = first.model_copy(
        update={"team_id": "team-2", "station_id": election.stations[3].station_id}
    )
    for attempt in (
        election.intake.check(mission, [other]),
        election.intake.submit(mission, [other], actor="o"),
    ):
        with pytest.raises(SubmissionRefused, match="submission_id_reused") as refused:
            await attempt
        assert "team-1" not in str(refused.value)
        assert first.station_id not in str(refused.value)
    # A report is corrected once: a later change corrects the correction.
    twice = [late.model_copy(update={"submission_id": f"c-again-{n}"}) for n in range(2)]
    for request in ([twice[0]], twice):
        with pytest.raises(SubmissionRefused, match="already_corrected"):
            await election.intake.submit(mission, request, actor="observer")
    chained = late.model_copy(update={"submission_id": "c-fix-2", "corrects": "c-fix"})
    await election.intake.submit(mission, [chained], actor="observer")
    racing = [
        chained.model_copy(update={"submission_id": f"c-race-{n}", "corrects": "c-fix-2"})
        for n in range(6)
    ]
    async with Intake(store) as elsewhere:  # another API process, its own batches
        outcomes = await asyncio.gather(
            *(
                (election.intake, elsewhere)[n % 2].submit(mission, [r], actor="observer")
                for n, r in enumerate(racing)
            ),
            return_exceptions=True,
        )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(
        isinstance(o, SubmissionRefused) and o.rule == "already_corrected"
        for o in outcomes
        if isinstance(o, BaseException)
    )
    # The same report again is recorded nothing new, dry run or not.
    assert await election.intake.check(mission, [first]) == []
    [again] = await election.intake.submit(mission, [first], actor="observer")
    assert again.status == "duplicate"
    changed = first.model_copy(update={"departed_at": local(9.5)})
    with pytest.raises(SubmissionRefused, match="submission_id_reused"):
        await election.intake.check(mission, [changed])


async def test_the_mission_counts_every_locality_and_names_the_first_hundred(
    election: Election, store: EventStore
) -> None:
    """A national mission visits thousands of localities: the aggregate the workflow takes
    names the first ``LOCALITIES_LISTED`` (a workflow's messages are at most 2 MB) and
    counts them all; the statement's coverage says the count."""
    many = [
        PollingStation(station_id=f"far-{n:03d}", locality=f"Aul {n:03d} " + "Қ" * 400)
        for n in range(LOCALITIES_LISTED + 20)
    ]
    await election.intake.register_stations(election.mission_id, many, actor="coordinator")
    await election.intake.submit(
        election.mission_id,
        [election.visit(f"far-{n:03d}", station_id=s.station_id) for n, s in enumerate(many)],
        actor="observer",
    )
    counted = await progress.progress(store, election.mission_id)
    assert len(counted.localities) == LOCALITIES_LISTED
    assert counted.localities == sorted(counted.localities)
    assert counted.localities_visited == LOCALITIES_LISTED + 20


async def test_corrections_and_conflicts_are_kept_and_counted_once(
    election: Election, store: EventStore
) -> None:
    """A correction is a new event naming the original; another team at the same station
    is kept and flagged; the mission's count has one visit per corrected report."""
    original = election.visit("v-1", arrived_at=local(8), departed_at=local(9))
    fix = original.model_copy(
        update={"submission_id": "v-1-fix", "corrects": "v-1", "departed_at": local(9.5)}
    )
    other_team = original.model_copy(update={"submission_id": "v-2", "team_id": "team-2"})
    wrong_team_fix = fix.model_copy(update={"submission_id": "v-1-fix2", "team_id": "team-3"})
    await election.intake.submit(election.mission_id, [original], actor="observer")
    [corrected] = await election.intake.submit(election.mission_id, [fix], actor="observer")
    [flagged] = await election.intake.submit(election.mission_id, [other_team], actor="observer")
    # Another team's report is answered as one the mission does not hold.
    with pytest.raises(SubmissionRefused, match="correction_of_unknown_report") as refused:
        await election.intake.submit(election.mission_id, [wrong_team_fix], actor="observer")
    assert "team-1" not in str(refused.value)
    assert not corrected.conflict and flagged.conflict
    events = await store.read_stream(flagged.stream_id)
    assert [e.event_type for e in events] == [
        "StationVisitReported",
        "StationVisitReported",
        "StationVisitReported",
        "SubmissionsConflicted",
    ]
    assert events[1].data["corrects"] == "v-1"
    assert events[3].data["team_ids"] == ["team-1", "team-2"]
    counted = await progress.progress(store, election.mission_id)
    assert (counted.reports, counted.visits, counted.corrections, counted.conflicts) == (
        3,
        2,
        1,
        1,
    )


async def test_the_mission_follows_the_intake_and_closing_drains_it(
    election: Election, store: EventStore
) -> None:
    """The workflow learns the aggregate on its timer; closing election day counts every
    acknowledged report, and a report after that is refused."""
    reports = [
        election.visit(f"d-{n}", station_id=s.station_id, arrived_at=local(8), departed_at=local(9))
        for n, s in enumerate(election.stations[:5])
    ]
    await election.intake.submit(election.mission_id, reports, actor="observer")
    for _ in range(50):
        state = await election.missions.live_state(election.mission_id)
        if state.intake is not None and state.intake.visits == 5:
            break
        await asyncio.sleep(0.2)
    assert state.intake is not None and state.intake.stations_visited == 5
    result = await election.missions.execute(
        election.mission_id, c.CloseElectionDay(), actor="coordinator"
    )
    assert result.event_types == ["ElectionDayClosed"] or result.event_types == [
        "IntakeProgressed",
        "ElectionDayClosed",
    ]
    closed = await election.missions.state(election.mission_id)
    assert closed.stage is Stage.statement and closed.visits_recorded == 5
    late = election.visit("late-1", arrived_at=local(20), departed_at=local(21))
    with pytest.raises(SubmissionRefused, match="intake_not_open"):
        await election.intake.submit(election.mission_id, [late], actor="observer")
    # a report sent before the close and resent after it is still answered
    [again] = await election.intake.submit(election.mission_id, reports[:1], actor="observer")
    assert again.status == "duplicate"


async def test_a_team_silent_at_opening_raises_an_alert(
    client: Client, store: EventStore, task_queue: str
) -> None:
    """No opening report by polls-open + grace: a CheckInMissed event per silent team."""
    async with build_worker(client, store, task_queue):
        missions, mission_id, stations = await open_election_day(
            client, store, task_queue, stations=4, grace_minutes=2 / 60
        )
        async with Intake(store) as intake:
            report = StationVisitReport(
                submission_id="open-1",
                mission_id=mission_id,
                station_id=stations[0].station_id,
                team_id="team-1",
                arrived_at=local(7),
                departed_at=local(8),
                checklists=[{"phase": "opening", "answers": {}}],
            )
            await intake.submit(mission_id, [report], actor="observer")
        for _ in range(60):
            state = await missions.state(mission_id)
            if state.missed_check_ins:
                break
            await asyncio.sleep(0.25)
        assert sorted(state.missed_check_ins) == ["team-2", "team-3", "team-4"]
        events = [e for e in await store.read_stream(mission_id) if e.event_type == "CheckInMissed"]
        assert len(events) == 3 and {e.metadata.actor for e in events} == {"eom"}


async def test_a_simulated_election_day_loses_and_duplicates_nothing(
    client: Client, store: EventStore, task_queue: str
) -> None:
    """10,000 sendings (duplicates, corrections, conflicts, late arrivals), teams sending
    concurrently, the intake and the Temporal worker restarted in the middle: every
    distinct report recorded exactly once, and the mission's count equals a direct count."""
    worker = build_worker(client, store, task_queue)
    await worker.__aenter__()
    missions, mission_id, stations = await open_election_day(
        client, store, task_queue, stations=300, grace_minutes=600
    )
    day = ElectionDay(
        mission_id=mission_id,
        election_day=seed.ELECTION_DAY,
        teams=TEAMS,
        stations=stations,
    )
    by_team: dict[str, list[Sending]] = defaultdict(list)
    sendings = list(day.sendings(10_000))
    assert len(sendings) >= 10_000
    for sending in sendings:
        by_team[sending.submission.team_id].append(sending)
    acknowledged: dict[str, str] = {}
    intake = Intake(store, max_batch=200)
    halfway = asyncio.Event()
    sent = 0

    async def device(queue: list[Sending]) -> None:
        """A team's device: one request at a time (1 to 4 reports), resent until answered."""
        nonlocal sent
        position = 0
        while position < len(queue):
            chunk = [s.submission for s in queue[position : position + 1 + position % 4]]
            try:
                receipts = await intake.submit(mission_id, chunk, actor="observer")
            except IntakeUnavailable:
                await asyncio.sleep(0.05)
                continue  # not acknowledged: send it again
            for receipt in receipts:
                acknowledged.setdefault(receipt.submission_id, str(receipt.event_id))
                assert acknowledged[receipt.submission_id] == str(receipt.event_id)
            position += len(chunk)
            sent += len(chunk)
            if sent >= len(sendings) // 2:
                halfway.set()

    async def restart() -> None:
        nonlocal intake, worker
        await halfway.wait()
        crashed = intake
        intake = Intake(store, max_batch=200)  # devices resend to the new one
        await crashed.abort()
        await worker.__aexit__(None, None, None)
        worker = build_worker(client, store, task_queue)
        await worker.__aenter__()

    try:
        await asyncio.gather(*(device(q) for q in by_team.values()), restart())
        distinct = {s.submission.submission_id for s in sendings}
        assert set(acknowledged) == distinct
        pool = store.pool
        receipts, events = await recorded(pool, mission_id)
        conflicts = await pool.fetchval(
            "SELECT count(*) FROM events WHERE stream_id LIKE $1 || '/stations/%' "
            "AND event_type = 'SubmissionsConflicted'",
            mission_id,
        )
        assert receipts == len(distinct) and events == len(distinct) + conflicts
        reported = await pool.fetch(
            "SELECT data->>'submission_id' AS id, count(*) FROM events "
            "WHERE stream_id LIKE $1 || '/stations/%' AND event_type IN "
            "('StationVisitReported', 'IncidentReported') GROUP BY 1",
            mission_id,
        )
        assert {r["id"] for r in reported} == distinct and {r["count"] for r in reported} == {1}
        corrected = {s.submission.corrects for s in sendings if s.submission.corrects is not None}
        visits = {
            s.submission.submission_id
            for s in sendings
            if isinstance(s.submission, StationVisitReport)
        }
        incidents = {
            s.submission.submission_id for s in sendings if isinstance(s.submission, IncidentReport)
        }
        direct_visits = await pool.fetchval(
            f"{STANDING} SELECT count(*) FROM standing WHERE event_type = 'StationVisitReported'",
            mission_id,
        )
        assert direct_visits == len(visits - corrected)
        result = await missions.execute(mission_id, c.CloseElectionDay(), actor="coordinator")
        assert "ElectionDayClosed" in result.event_types
        state = await missions.state(mission_id)
        assert state.intake is not None
        assert state.intake.reports == len(distinct)
        assert state.intake.visits == direct_visits
        assert state.intake.incidents == len(incidents - corrected)
        assert state.intake.corrections == len(corrected) or state.intake.corrections == sum(
            1 for s in distinct if "-fix" in s
        )
        await Projector(store, COVERAGE).run_once()
        found = await coverage(pool, mission_id)
        assert (found.reports, found.visits) == (len(distinct), direct_visits)
        assert found.stations_visited == await pool.fetchval(
            f"{STANDING} SELECT count(DISTINCT data->>'station_id') FROM standing "
            "WHERE event_type = 'StationVisitReported'",
            mission_id,
        )
        assert sum(f.count for f in found.findings) == await pool.fetchval(
            f"{STANDING} SELECT sum(CASE WHEN event_type = 'IncidentReported' THEN 1 "
            "ELSE jsonb_array_length(data->'findings') END) FROM standing",
            mission_id,
        )
        assert {c.station_id for c in found.conflicts} == set(
            await pool.fetchval(
                "SELECT coalesce(array_agg(DISTINCT data->>'station_id'), '{}') FROM events "
                "WHERE stream_id LIKE $1 || '/stations/%' AND event_type = 'SubmissionsConflicted'",
                mission_id,
            )
        )
        for stream_id in {station_stream(mission_id, s.station_id) for s in stations}:
            check = await store.verify_stream(stream_id)
            assert check.ok, check.breaks
    finally:
        await intake.close()
        await worker.__aexit__(None, None, None)
