"""``eom simulate election-day`` against the real API (uvicorn, the worker, PostgreSQL):
a fresh mission set up through the API and a simulated day's reports recorded exactly
once; the same day sent again answered as duplicates; a named mission that cannot take
the reports, or an API that is not there, refused with a message saying why."""

from __future__ import annotations

import asyncio
import json
import re
from itertools import islice

import httpx
import pytest
import pytest_asyncio
from conftest import RunningApi
from typer.testing import CliRunner

from cli import seed
from cli.services import NotRunning
from cli.simulate import (
    Ground,
    MissionNotReady,
    Outcome,
    Plan,
    send_reports,
    simulate,
    simulate_app,
)
from cli.stack import free_port
from intake.simulation import ElectionDay, polling_stations

PLAN = Plan(teams=3, stations=20, rate=500, reports=300, concurrency=8, seed=7)


async def receipts(api: RunningApi, mission_id: str) -> int:
    count = await api.missions.store.pool.fetchval(
        "SELECT count(*) FROM intake_receipts WHERE mission_id = $1", mission_id
    )
    assert isinstance(count, int)
    return count


@pytest_asyncio.fixture(scope="module")
async def simulated(running_api: RunningApi) -> Outcome:
    """A fresh mission set up through the API, then 300 reports of 3 teams."""
    return await simulate(running_api.url, running_api.token, PLAN)


async def test_every_distinct_submission_is_recorded_exactly_once(
    running_api: RunningApi, simulated: Outcome
) -> None:
    """Pins the run as a whole: the setup through the API opens an election day that
    takes every report; each distinct submission the generator produced has exactly one
    receipt in ``intake_receipts``; nothing is refused or left unacknowledged; every
    resent duplicate is answered ``duplicate``; corrections and conflicts are recorded."""
    outcome = simulated
    assert outcome.ground.created and outcome.ground.teams == ["team-1", "team-2", "team-3"]
    assert outcome.sent == PLAN.total
    distinct = {s.submission.submission_id for s in outcome.sendings}
    assert await receipts(running_api, outcome.ground.mission_id) == len(distinct)
    assert outcome.ok, outcome.problems
    assert not outcome.refused and outcome.not_acknowledged == 0
    assert outcome.acknowledged == outcome.sent == len(outcome.latencies)
    assert outcome.count("recorded") == len(distinct)
    duplicates = [
        a for s, a in zip(outcome.sendings, outcome.answers, strict=True) if s.why == "duplicate"
    ]
    assert duplicates and set(duplicates) == {"duplicate"}
    assert outcome.count("duplicate") == len(duplicates) == outcome.sent - len(distinct)
    assert outcome.corrections == sum(1 for s in outcome.sendings if s.why == "correction") > 0
    assert outcome.conflicts > 0
    assert outcome.achieved_rate > 0 and outcome.latency_ms(0.99) >= outcome.latency_ms(0.5)


async def test_the_same_day_sent_again_is_answered_as_duplicates(
    running_api: RunningApi, simulated: Outcome
) -> None:
    """Pins the named-mission path and idempotence: the same seed against the mission
    just set up finds its teams and stations through the API, and every report of the
    replayed day is answered ``duplicate`` with nothing new recorded."""
    mission_id = simulated.ground.mission_id
    before = await receipts(running_api, mission_id)
    again = await simulate(running_api.http, running_api.token, PLAN, mission_id=mission_id)
    assert not again.ground.created and again.ground.teams == simulated.ground.teams
    assert [s.submission for s in again.sendings] == [s.submission for s in simulated.sendings]
    assert again.ok and set(again.answers) == {"duplicate"}
    assert await receipts(running_api, mission_id) == before


@pytest.mark.parametrize(
    ("changes", "named", "says"),
    [
        ({"teams": 5}, True, r"has 3 team\(s\) with accepted observers .* --teams 5"),
        ({"stations": 25}, True, r"has not registered 5 of the 25 polling stations .*PS-00021"),
        ({}, False, r"no mission 'sim-nowhere'"),
    ],
)
async def test_a_named_mission_that_cannot_take_the_reports_says_what_is_missing(
    running_api: RunningApi,
    simulated: Outcome,
    changes: dict[str, int],
    named: bool,
    says: str,
) -> None:
    """Pins the refusals before anything is sent: more teams or stations than the named
    mission has, or a mission that does not exist, each named in the message."""
    plan = Plan(**{**PLAN.__dict__, **changes})
    mission_id = simulated.ground.mission_id if named else "sim-nowhere"
    before = await receipts(running_api, mission_id)
    with pytest.raises(MissionNotReady, match=says):
        await simulate(running_api.url, running_api.token, plan, mission_id=mission_id)
    assert await receipts(running_api, mission_id) == before


async def test_the_command_reports_a_clean_day_and_exits_zero(
    running_api: RunningApi, database_url: str
) -> None:
    """Pins the command as typed: ``eom simulate election-day --api URL`` with the
    service's database in DATABASE_URL sets up a mission, sends the reports, prints the
    summary table and exits 0."""
    arguments = ["election-day", "--teams", "2", "--stations", "10", "--rate", "400"]
    arguments += ["--reports", "60", "--api", running_api.url]
    result = await asyncio.to_thread(
        CliRunner().invoke,
        simulate_app,
        arguments,
        env={"DATABASE_URL": database_url, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    mission_id = re.search(r"Mission (sim-[0-9a-f]+) \(set up\)", result.output)
    assert mission_id, result.output
    assert re.search(r"acknowledged\s*│\s*60\s*│", result.output), result.output
    assert re.search(r"refused\s*│\s*0\s*│", result.output), result.output
    assert 0 < await receipts(running_api, mission_id[1]) <= 60


async def test_an_unreachable_api_says_how_to_start_the_service(running_api: RunningApi) -> None:
    """Pins the first check: no API at the URL is one message naming `eom up`."""
    with pytest.raises(NotRunning, match=r"eom up"):
        await simulate(f"http://127.0.0.1:{free_port()}", running_api.token, PLAN)


async def test_devices_resend_until_acknowledged_and_count_refusals_by_rule() -> None:
    """Pins the device's answers to trouble, against a scripted API: a connection error
    and a 503 send the same request again, a 429 waits and is counted, a 422 counts the
    report it names (by the submission id in its message, even where the path's position
    points elsewhere) under its rule and sends the rest again; a refusal makes the run
    not ok."""
    ground = Ground("m-1", seed.ELECTION_DAY, ["team-1"], polling_stations(3), created=False)
    day = ElectionDay(ground.mission_id, ground.election_day, ground.teams, ground.stations)
    sendings = [s for s in islice(day.sendings(40), 40) if s.why == "report"][:4]
    bad = sendings[-1].submission.submission_id
    calls: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        ids = [r["submission_id"] for r in json.loads(request.content)["reports"]]
        calls.append(ids)
        assert request.headers["authorization"] == "Bearer device-token"
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {}})
        if len(calls) == 3:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {}})
        if bad in ids:
            message = f"unknown_station: submission {bad!r} names polling station 'PS-9'"
            error = {"status": 422, "code": "unknown_station", "message": "1 report(s) refused"}
            error["fields"] = [{"path": "reports[0]", "message": message}]
            return httpx.Response(422, json={"error": error})
        receipts = [{"submission_id": i, "status": "recorded", "conflict": False} for i in ids]
        return httpx.Response(200, json={"receipts": receipts})

    plan = Plan(teams=1, stations=3, rate=1e9, reports=4)  # all four due at once
    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(base_url="http://eom.test", transport=transport) as http:
        outcome = await send_reports(http, ground, plan, sendings, {"team-1": "device-token"})
    assert dict(outcome.refused) == {"unknown_station": 1}
    assert outcome.answers == ["recorded", "recorded", "recorded", "refused"]
    assert outcome.rate_limited == 1 and outcome.resends >= 3
    assert calls[0] == calls[1] == calls[2]  # the same request, sent again as it was
    assert calls[3].index(bad) > 0  # so "reports[0]" points at another report
    assert not outcome.ok and outcome.not_acknowledged == 0
    assert len(outcome.latencies) == 3
    assert any(bad in problem for problem in outcome.problems)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--teams", "0"], r"--teams"),
        (["--stations", "0"], r"--stations"),
        (["--rate", "0"], r"must be above 0"),
        (["--rate", "-3"], r"must be above 0"),
    ],
)
def test_bad_input_is_refused_by_the_command_line(arguments: list[str], says: str) -> None:
    """Pins the typer validation: N >= 1, M >= 1, R > 0, refused before any service is
    contacted (exit code 2, the option named)."""
    result = CliRunner().invoke(simulate_app, ["election-day", *arguments], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert re.search(says, result.output), result.output
