"""The operations beneath the API and the console, through the API's routes on uvicorn,
over the real Temporal dev server, PostgreSQL and an SMTP server on loopback: reminder
ladders (status, pause, send now, resume), coverage, verification, replay."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from conftest import make_app, serving_app
from temporalio.client import Client
from test_audit import as_superuser
from test_cli import eom, service_env  # service_env: a CLI's environment (a fixture)

from activities.delivery import DeliverySettings
from activities.directory import MemberStateContact, MemberStateDirectory
from api.feed import EventFeed
from api.tokens import Role, TokenStore
from cli import seed
from cli.smtp_sink import SmtpSink
from domain import commands as c
from domain.host_time import local
from domain.values import ReminderLadder
from eventstore.store import EventStore
from intake.coverage import Coverage
from operations.coverage import mission_coverage
from worker import build_worker
from workflows.client import Missions
from workflows.messages import MissionTiming

__all__ = ["service_env"]

R = Role
ACTOR = "coordinator:test"
ZONE = "Asia/Almaty"


@dataclass
class Served:
    """The API over a worker that delivers to an SMTP server on loopback, with tokens
    for the organisation's coordinator and others."""

    http: httpx.AsyncClient
    missions: Missions
    tokens: TokenStore
    organisation: str
    directory: MemberStateDirectory

    async def token(self, role: Role, **scope: str) -> dict[str, str]:
        token, _ = await self.tokens.create(role=role, name="tester", **scope)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def coordinator(self) -> dict[str, str]:
        return await self.token(R.coordinator, organisation=self.organisation)

    async def mission(self, commands: int = 2, **changes: Any) -> str:
        """A mission of this organisation: its first ``commands`` seed commands given."""
        mission_id = f"ops-{uuid.uuid4().hex[:8]}"
        first, *rest = seed.mission(mission_id)[:commands]
        registration = first.model_copy(update={"organisation": self.organisation, **changes})
        for command in [registration, *rest]:
            await self.missions.execute(mission_id, command, actor=ACTOR)
        return mission_id


@pytest_asyncio.fixture(scope="module")
async def served(
    client: Client, pool: Any, database_url: str, tmp_path_factory: Any
) -> AsyncIterator[Served]:
    store = EventStore(pool)
    task_queue = f"eom-ops-{uuid.uuid4().hex[:8]}"
    organisation = f"Council {uuid.uuid4().hex[:8]}"
    missions = Missions(
        client=client,
        store=store,
        task_queue=task_queue,
        timing=MissionTiming(delivery_retry_seconds=0.5, delivery_attempts=4),
    )
    feed = EventFeed(store, database_url, fallback=2.0)
    await feed.start()
    mail: Path = tmp_path_factory.mktemp("mail")
    with SmtpSink(mail) as sink:
        delivery = DeliverySettings(smtp_host="127.0.0.1", smtp_port=sink.port)
        app = make_app(missions, pool, feed, submission_rate="100000/minute")
        async with (
            build_worker(client, store, task_queue, delivery=delivery),
            serving_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield Served(http, missions, TokenStore(pool), organisation, MemberStateDirectory(pool))
    await feed.stop()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30) -> None:
    """Poll ``check`` until it holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within}s"
        await asyncio.sleep(0.2)


def problem(response: httpx.Response) -> tuple[int, str, list[str]]:
    error = response.json()["error"]
    return response.status_code, error["code"], [f["path"] for f in error.get("fields") or []]


async def test_pause_send_now_and_resume_show_in_the_ladder_status(
    served: Served, service_env: dict[str, str]
) -> None:
    """A nomination ladder of AZ: its request goes out; paused, the status says so (in
    ``eom reminders`` too); sent now, one more message is recorded and the ladder runs
    again; paused, then resumed by ``eom reminders resume``, the status follows. Times
    are in the host's zone."""
    await served.directory.upsert(
        MemberStateContact(
            organisation=served.organisation,
            code="AZ",
            name="Member state AZ",
            email="focal.az@mfa.example.org",
            escalation_email="secretariat@council.example.org",
        )
    )
    mission_id = await served.mission(member_states=["AZ"])
    deadline = datetime.now(UTC) + timedelta(hours=1)
    await served.missions.execute(
        mission_id,
        c.RequestNominations(deadline=deadline, ladder=ReminderLadder(offsets_seconds=[600, 60])),
        actor=ACTOR,
    )
    coordinator = await served.coordinator()
    base = f"/v1/missions/{mission_id}/reminders"

    async def ladder() -> dict[str, Any]:
        response = await served.http.get(base, headers=coordinator)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mission_id"] == mission_id and body["time_zone"] == ZONE
        (row,) = body["ladders"]
        return dict(row)

    async def told(action: str) -> None:
        response = await served.http.post(f"{base}/nomination/az/{action}", headers=coordinator)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "mission_id": mission_id,
            "kind": "nomination",
            "cycle": 0,
            "member_state": "AZ",
            "action": action.replace("-", "_"),
        }

    async def shows(**expected: Any) -> bool:
        row = await ladder()
        return all(row[k] == v for k, v in expected.items())

    await eventually(lambda: shows(sent=1, live=True, next_purpose="reminder"))
    row = await ladder()
    assert (row["kind"], row["member_state"], row["paused"], row["answered"]) == (
        "nomination",
        "AZ",
        False,
        False,
    )
    assert row["deadline"].endswith("+05:00") or row["deadline"].endswith("+06:00")
    assert datetime.fromisoformat(row["deadline"]) == deadline
    assert datetime.fromisoformat(row["next_due"]) == deadline - timedelta(seconds=600)

    await told("pause")
    await eventually(lambda: shows(paused=True, sent=1))
    await told("send-now")
    await eventually(lambda: shows(paused=False, sent=2))
    await told("pause")
    await eventually(lambda: shows(paused=True))
    status = await eom("reminders", mission_id, env=service_env)
    assert status.code == 0, status.err
    assert re.search(r"nomination .* AZ .* 2 .* no .* no .* reminder \(paused\)", status.out)
    resumed = await eom("reminders", "resume", mission_id, "--member-state", "az", env=service_env)
    assert resumed.code == 0 and "nomination ladder of AZ: resume sent" in resumed.out
    await eventually(lambda: shows(paused=False, sent=2, next_purpose="reminder"))
    status = await eom("reminders", mission_id, env=service_env)
    assert "(paused)" not in status.out and "reminder" in status.out

    # A dry run says whether the ladder runs, and tells it nothing.
    dry = await served.http.post(
        f"{base}/nomination/AZ/pause", params={"dry_run": "true"}, headers=coordinator
    )
    assert dry.json() == {"accepted": True, "event_types": [], "events": [], "refusal": None}
    assert not (await ladder())["paused"]


async def test_unknown_ladders_and_bad_input_are_named(served: Served) -> None:
    """A ladder that does not run is 404 ``unknown_ladder`` (a dry run says so in its
    answer); a malformed kind, member state or cycle is a 422 naming it; a head of
    mission may read the ladders but not tell them; another organisation's coordinator
    is told the mission does not exist."""
    mission_id = await served.mission()
    coordinator = await served.coordinator()
    base = f"/v1/missions/{mission_id}/reminders"
    missing = await served.http.post(f"{base}/nomination/KG/send-now", headers=coordinator)
    assert problem(missing)[:2] == (404, "unknown_ladder")
    assert "no running nomination ladder for KG" in missing.json()["error"]["message"]
    dry = await served.http.post(
        f"{base}/evidence/KG/resume", params={"dry_run": "true", "cycle": 2}, headers=coordinator
    )
    assert dry.status_code == 200
    assert dry.json()["accepted"] is False
    assert dry.json()["refusal"]["code"] == "unknown_ladder"
    assert "in cycle 2" in dry.json()["refusal"]["message"]
    for path, params, field in (
        (f"{base}/deadline/AZ/pause", {}, "path.kind"),
        (f"{base}/nomination/A1/pause", {}, "path.member_state"),
        (f"{base}/nomination/AZE/pause", {}, "path.member_state"),
        (f"{base}/nomination/AZ/pause", {"cycle": "-1"}, "query.cycle"),
    ):
        response = await served.http.post(path, params=params, headers=coordinator)
        assert problem(response) == (422, "invalid_input", [field]), path
    assert (await served.http.get(base, headers=coordinator)).json()["ladders"] == []

    head = await served.token(R.head_of_mission, mission_id=mission_id)
    assert (await served.http.get(base, headers=head)).status_code == 200
    refused = await served.http.post(f"{base}/nomination/AZ/pause", headers=head)
    assert problem(refused)[:2] == (403, "forbidden")
    other = await served.token(R.coordinator, organisation="Another Organisation")
    for response in (
        await served.http.get(base, headers=other),
        await served.http.post(f"{base}/nomination/AZ/pause", headers=other),
        await served.http.get(f"/v1/missions/{mission_id}/coverage", headers=other),
        await served.http.get(f"/v1/missions/{mission_id}/verify", headers=other),
        await served.http.get(f"/v1/missions/{mission_id}/replay?version=1", headers=other),
    ):
        assert problem(response)[:2] == (404, "unknown_mission")


async def test_coverage_is_what_the_projection_holds(served: Served) -> None:
    """The election-day coverage of a mission whose teams visited stations: the route
    answers what ``eom coverage`` computes, caught up with the log (each call projects
    what the log holds)."""
    commands = seed.mission("x")
    upto = next(i for i, cmd in enumerate(commands) if isinstance(cmd, c.CloseElectionDay))
    mission_id = await served.mission(upto + 1)
    auditor = await served.token(R.auditor)
    answers: list[Coverage] = []

    async def all_visits_counted() -> bool:
        # The log is projected in commit-safe order: a write still in flight elsewhere
        # holds back what follows it, for a moment.
        response = await served.http.get(f"/v1/missions/{mission_id}/coverage", headers=auditor)
        assert response.status_code == 200, response.text
        answers.append(Coverage.model_validate(response.json()))
        return answers[-1].visits == seed.STATIONS

    await eventually(all_visits_counted)
    found = answers[-1]
    assert found.mission_id == mission_id and found.stations_registered > 0
    assert found.teams and all(t.positions for t in found.teams)
    again = await mission_coverage(served.missions.store, mission_id, catch_up=False)
    assert again.model_dump(exclude={"projected_through"}) == found.model_dump(
        exclude={"projected_through"}
    )


async def test_verify_names_a_tampered_event_and_is_scoped(served: Served) -> None:
    """An untouched mission verifies; after a superuser rewrites one event's actor behind
    the triggers, its verdict names the break at that version, for the mission and in
    the store-wide verification. A coordinator of an organisation verifies its own
    missions' streams only; an auditor every stream."""
    mission_id = await served.mission(3)
    coordinator = await served.coordinator()
    path = f"/v1/missions/{mission_id}/verify"
    clean = await served.http.get(path, headers=coordinator)
    assert clean.status_code == 200, clean.text
    assert clean.json()["ok"] and clean.json()["verified"] == 1
    (verdict,) = clean.json()["streams"]
    assert (verdict["stream_id"], verdict["events"], verdict["problems"]) == (mission_id, 3, [])

    await as_superuser(
        served.missions.store,
        (
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"nobody\"') "
            "WHERE stream_id = $1 AND stream_version = 2",
            (mission_id,),
        ),
    )
    broken = (await served.http.get(path, headers=coordinator)).json()
    assert (broken["ok"], broken["broken"]) == (False, 1)
    (verdict,) = broken["streams"]
    assert verdict["first_problem"].startswith("v2 changed")
    assert [(b["stream_version"], b["kind"]) for b in verdict["breaks"]] == [(2, "changed")]

    every = await served.http.get("/v1/verify", headers=await served.token(R.auditor))
    assert every.status_code == 200
    by_stream = {v["stream_id"]: v for v in every.json()["streams"]}
    assert not by_stream[mission_id]["ok"]
    assert every.json()["verified"] == len(by_stream) > 1

    ours = (await served.http.get("/v1/verify", headers=coordinator)).json()
    streams = {v["stream_id"] for v in ours["streams"]}
    assert mission_id in streams
    assert all(s.split("/")[0].startswith("ops-") for s in streams)
    other = await served.token(R.coordinator, organisation=f"Nobody {uuid.uuid4().hex[:6]}")
    assert (await served.http.get("/v1/verify", headers=other)).json()["streams"] == []
    head = await served.token(R.head_of_mission, mission_id=mission_id)
    assert problem(await served.http.get("/v1/verify", headers=head))[:2] == (403, "forbidden")


async def test_replay_at_a_version_and_a_time_agrees_with_the_cli(
    served: Served, service_env: dict[str, str]
) -> None:
    """The replay route and ``eom audit replay`` give the same version for a version and
    for a time between two events written in host time without an offset; a time before
    the mission, or neither or both of version and time, is a 422 naming the field."""
    mission_id = await served.mission(4)
    auditor = await served.token(R.auditor)
    path = f"/v1/missions/{mission_id}/replay"
    recorded = await served.missions.store.read_stream(mission_id)

    at_version = await served.http.get(path, params={"version": 3}, headers=auditor)
    assert at_version.status_code == 200, at_version.text
    body = at_version.json()
    assert (body["version"], body["state"]["version"], len(body["events"])) == (3, 3, 3)
    assert body["chain"]["breaks"] == []
    assert datetime.fromisoformat(body["recorded_at"]) == recorded[2].recorded_at
    cli = await eom("audit", "replay", mission_id, "--version", "3", env=service_env)
    assert cli.code == 0, cli.err
    assert f"as of v3, recorded {recorded[2].recorded_at.isoformat()}" in cli.out

    between = recorded[1].recorded_at + (recorded[2].recorded_at - recorded[1].recorded_at) / 2
    naive = local(between, ZONE).replace(tzinfo=None).isoformat()
    at_time = await served.http.get(path, params={"at": naive}, headers=auditor)
    assert at_time.status_code == 200, at_time.text
    assert at_time.json()["version"] == 2
    assert datetime.fromisoformat(at_time.json()["at"]) == between
    assert re.search(r"[+-]0[56]:00$", at_time.json()["at"])
    cli = await eom("audit", "replay", mission_id, "--at", naive, env=service_env)
    assert cli.code == 0, cli.err
    assert f"as of v2, recorded {recorded[1].recorded_at.isoformat()}" in cli.out

    before = local(recorded[0].recorded_at - timedelta(minutes=5), ZONE).replace(tzinfo=None)
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"at": before.isoformat()}, "query.at"),
        ({}, "query.at"),
        ({"at": naive, "version": 2}, "query.at"),
        ({"at": "1899-12-31T12:00:00"}, "query.at"),
        ({"version": 0}, "query.version"),
        ({"at": "yesterday"}, "query.at"),
    ]
    for params, field in cases:
        response = await served.http.get(path, params=params, headers=auditor)
        assert problem(response) == (422, "invalid_input", [field]), params
    refused = await served.http.get(path, params={"at": before.isoformat()}, headers=auditor)
    assert "before the mission" in refused.json()["error"]["message"]
    cli = await eom("audit", "replay", mission_id, "--at", before.isoformat(), env=service_env)
    assert cli.code != 0 and "before the mission" in cli.out + cli.err
