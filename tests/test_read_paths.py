"""One answer to every question: visits recorded by command and reports through the intake
are the mission's visits alike, and every read path gives the same figures as a direct SQL
count of the event store (against the real services: API, CLI, intake, projection, export).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
from conftest import RunningApi
from test_cli import base_env, eom
from test_reminders import eventually

from api.tokens import Role
from auditreport.model import build_report
from cli import seed
from domain import commands as c
from domain import events as ev
from domain import fold, load_event
from eventstore.projections import Projector
from eventstore.store import EventStore
from intake import progress
from intake.coverage import COVERAGE, coverage
from intake.visits import mission_visits
from workflows.client import Missions
from workflows.messages import MissionTiming

# Standing visits straight from the event store: the intake's reports (less those a
# correction replaced) and the mission stream's own StationVisitRecorded events.
DIRECT = """
WITH reports AS MATERIALIZED (
    SELECT data FROM events
    WHERE stream_id LIKE $1 || '/stations/%' AND event_type = 'StationVisitReported'
), standing AS (
    SELECT data FROM reports WHERE data->>'submission_id' NOT IN (
        SELECT data->>'corrects' FROM reports WHERE data->>'corrects' IS NOT NULL)
    UNION ALL
    SELECT data FROM events WHERE stream_id = $1 AND event_type = 'StationVisitRecorded'
)
SELECT count(*) AS visits, count(DISTINCT data->>'station_id') AS stations,
       count(DISTINCT data->>'team_id') AS teams
FROM standing
"""


async def _seeded(
    missions: Missions, prefix: str, *, open_election_day: bool
) -> tuple[str, list[c.Command]]:
    """A new seed mission, recorded up to election day (opened, or about to be), and the
    seed's commands."""
    mission_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    opening = next(n for n, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    for command in commands[: opening + open_election_day]:
        await missions.execute(mission_id, command, actor="coordinator")
    return mission_id, commands


def _report(
    submission_id: str, mission_id: str, station: str, team: str, **extra: object
) -> dict[str, object]:
    return {
        "kind": "station_visit",
        "submission_id": submission_id,
        "mission_id": mission_id,
        "station_id": station,
        "team_id": team,
        # Written in UTC: 09:00-10:00 in Almaty.
        "arrived_at": "2021-01-10T03:00:00Z",
        "departed_at": "2021-01-10T04:00:00Z",
        "checklists": [{"phase": "voting", "answers": {"secrecy_ensured": True}}],
        **extra,
    }


async def test_every_read_path_counts_the_same_visits(
    running_api: RunningApi,
    pool: asyncpg.Pool,
    store: EventStore,
    database_url: str,
    tmp_path: Path,
) -> None:
    api, missions = running_api.http, running_api.missions
    mission_id, commands = await _seeded(missions, "reads", open_election_day=True)
    coordinator = {"Authorization": f"Bearer {await running_api.token(Role.coordinator)}"}

    # Four visits by command, through the API: the first teams' opening visits.
    for n in range(1, 5):
        visit = seed.station_visit(n, team=n).model_dump(mode="json", exclude={"type"})
        answer = await api.post(
            f"/v1/missions/{mission_id}/record-station-visit", json=visit, headers=coordinator
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["event_types"][0] == "StationVisitReported"
    # A visit by command follows the intake's rules: an unregistered station is refused.
    stray = seed.station_visit(5, team=1).model_copy(update={"station_id": "NS-999"})
    refused = await api.post(
        f"/v1/missions/{mission_id}/record-station-visit",
        json=stray.model_dump(mode="json", exclude={"type"}),
        headers=coordinator,
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "unknown_station"
    # ... and the same visit again is the same visit, recorded once.
    again = await api.post(
        f"/v1/missions/{mission_id}/record-station-visit",
        json=seed.station_visit(1, team=1).model_dump(mode="json", exclude={"type"}),
        headers=coordinator,
    )
    assert again.status_code == 200, again.text

    # Reports through the intake: a new station, a second team at a station visited by
    # command (a conflict across paths), and a report corrected once.
    token = await running_api.token(Role.observer, mission_id=mission_id, team_id="team-2")
    observer = {"Authorization": f"Bearer {token}"}
    batch = [
        _report("r-1", mission_id, "NS-105", "team-2"),
        _report("r-2", mission_id, "NS-101", "team-2"),
        _report("r-3", mission_id, "NS-106", "team-2"),
        _report("r-3-fix", mission_id, "NS-106", "team-2", corrects="r-3"),
    ]
    sent = await api.post(
        f"/v1/missions/{mission_id}/reports", json={"reports": batch}, headers=observer
    )
    assert sent.status_code in (200, 201), sent.text
    assert any(r["conflict"] for r in sent.json()["receipts"])

    direct = await pool.fetchrow(DIRECT, mission_id)
    assert direct is not None
    expected = (direct["visits"], direct["stations"])
    assert expected == (7, 6)  # 4 by command, 3 standing reports; NS-101 twice

    # The API: all visits to a coordinator, a team's own to its observer.
    listed = (await api.get(f"/v1/missions/{mission_id}/visits", headers=coordinator)).json()
    assert (len(listed), len({v["station_id"] for v in listed})) == expected
    assert listed[0]["arrived_at"] == "2021-01-10T06:45:00+06:00"  # host time, with offset
    # The mission's times are shown in host time, with their offset.
    mission = (await api.get(f"/v1/missions/{mission_id}", headers=coordinator)).json()
    assert mission["time_zone"] == "Asia/Almaty"
    assert len(mission["visits"]) == expected[0]
    assert list(mission["conflicting_stations"]) == ["NS-101"]
    almaty = ZoneInfo("Asia/Almaty")  # +06:00 in 2021, +05:00 since March 2024
    for field in ("registered_at",):
        moment = datetime.fromisoformat(mission[field])
        assert moment.utcoffset() == almaty.utcoffset(moment.replace(tzinfo=None)), mission[field]
    own = (await api.get(f"/v1/missions/{mission_id}/visits", headers=observer)).json()
    assert {v["team_id"] for v in own} == {"team-2"} and len(own) == 4

    # The intake's aggregate, which closing election day and the statement draft record.
    counted = await progress.progress(store, mission_id)
    assert (counted.visits, counted.stations_visited) == expected
    assert counted.conflicts == 1

    # The coverage read model (projection).
    await Projector(store, COVERAGE).run_once()
    found = await coverage(pool, mission_id)
    assert (found.visits, found.stations_visited) == expected
    assert found.stations_unregistered == 0
    assert [x.station_id for x in found.conflicts] == ["NS-101"]

    # Election day closed and a statement drafted: its coverage is the same.
    await missions.execute(mission_id, c.CloseElectionDay(), actor="coordinator")
    draft = next(cmd for cmd in commands if isinstance(cmd, c.DraftStatement))
    await missions.execute(mission_id, draft, actor="coordinator")
    events = await store.read_stream(mission_id)
    drafted = next(load_event(e.data) for e in events if e.event_type == "StatementDrafted")
    assert isinstance(drafted, ev.StatementDrafted)
    assert (drafted.coverage.visits, drafted.coverage.stations_visited) == expected

    # The auditor's report (exports) and the CLI's view of the mission.
    state = fold(load_event(e.data) for e in events)
    visits = await mission_visits(store, mission_id, time_zone=state.time_zone)
    report = build_report(state, events, await store.verify_stream(mission_id), visits)
    assert (report.coverage.visits.value, report.coverage.stations_visited.value) == expected
    assert [x.station_id for x in report.coverage.conflicting_stations] == ["NS-101"]
    assert report.coverage.visits.positions and not report.coverage.visits.versions
    env = {**base_env(tmp_path), "DATABASE_URL": database_url}
    shown = await eom("mission", "show", mission_id, env=env)
    assert shown.code == 0, shown.err
    line = re.search(r"station visits: (\d+) at (\d+) stations", shown.out)
    assert line is not None and (int(line[1]), int(line[2])) == expected
    assert "time zone: Asia/Almaty" in shown.out
    assert "conflicting reports: NS-101" in shown.out
    replayed = await eom("audit", "replay", mission_id, env=env)
    assert replayed.code == 0, replayed.err
    assert f"station visits: {expected[0]} at {expected[1]} stations" in replayed.out
    # As of the head's version: every visit recorded since that event too.
    at_head = await eom("mission", "show", mission_id, "--version", str(state.version), env=env)
    assert f"station visits: {expected[0]} at {expected[1]} stations" in at_head.out
    early = await eom("mission", "show", mission_id, "--version", "3", env=env)
    assert "station visits: 0 at 0 stations" in early.out, early.out
    exported = await eom("audit", "export", mission_id, "--format", "md", env=env)
    assert exported.code == 0, exported.err
    assert f"| visits | {expected[0]} |" in exported.out
    assert "| time zone | Asia/Almaty |" in exported.out
    # The raw export holds every event the report cites, the intake's streams included.
    raw = await eom("audit", "export", mission_id, "--format", "jsonl", env=env)
    assert raw.code == 0, raw.err
    rows = [json.loads(line) for line in raw.out.splitlines()]
    positions = {row["global_position"] for row in rows}
    assert set(report.coverage.visits.positions) <= positions
    assert sum(row["type"] == "StationVisitReported" for row in rows) == 8  # r-3 kept too
    assert "2021-01-10 06:45+06:00" in exported.out  # the first visit, in host time


async def test_a_check_in_alert_is_cleared_by_the_teams_opening_report(
    running_api: RunningApi, store: EventStore
) -> None:
    """Polls open now with a short grace: the teams that sent nothing are alerted; one
    team's opening report then clears its alert, the others stay."""
    base = running_api.missions
    missions = Missions(
        client=base.client,
        store=store,
        task_queue=base.task_queue,
        timing=MissionTiming(intake_poll_seconds=1),
    )
    mission_id, _ = await _seeded(missions, "checkin", open_election_day=False)
    await missions.execute(
        mission_id,
        c.OpenElectionDay(polls_open_at=datetime.now(UTC), check_in_grace_minutes=0.02),
        actor="coordinator",
    )

    async def alerted() -> set[str]:
        return set((await missions.state(mission_id)).missed_check_ins)

    async def any_alerted() -> bool:
        return bool(await alerted())

    await eventually(any_alerted, within=30, what="check-in alerts")
    teams = await alerted()
    assert "team-1" in teams
    # The opening report of team 1 (a paper form typed in: election day was 2021-01-10).
    await missions.execute(mission_id, seed.station_visit(1, team=1), actor="coordinator")

    async def cleared() -> bool:
        return "team-1" not in await alerted()

    await eventually(cleared, within=30, what="team-1's alert cleared")
    assert (await alerted()) == teams - {"team-1"}
    kinds = [e.event_type for e in await store.read_stream(mission_id)]
    assert "CheckInMissed" in kinds and "CheckInCleared" in kinds


async def test_one_instant_one_verdict_through_the_api(running_api: RunningApi) -> None:
    """The issue's examples on the real services, both paths (a visit by command and a
    report through the intake), each instant in two writings: E = 2021-01-10 in Almaty."""
    api, missions = running_api.http, running_api.missions
    mission_id, _ = await _seeded(missions, "zones", open_election_day=True)
    coordinator = {"Authorization": f"Bearer {await running_api.token(Role.coordinator)}"}
    cases = [
        ("opening", "2021-01-10T05:45:00+06:00", True),
        ("opening", "2021-01-09T23:45:00Z", True),
        ("voting", "2021-01-11T09:00:00+06:00", False),
        ("voting", "2021-01-10T17:00:00-10:00", False),
    ]
    for n, (phase, written, accepted) in enumerate(cases):
        visit = seed.station_visit(1, team=1).model_dump(mode="json", exclude={"type"}) | {
            "visit_id": f"cmd-{n}",
            "arrived_at": written,
            "departed_at": written,
            "checklists": [{"phase": phase, "answers": {}}],
        }
        by_command = await api.post(
            f"/v1/missions/{mission_id}/record-station-visit", json=visit, headers=coordinator
        )
        report = _report(f"rep-{n}", mission_id, "NS-102", "team-2") | {
            "arrived_at": written,
            "departed_at": written,
            "checklists": [{"phase": phase, "answers": {}}],
        }
        by_report = await api.post(
            f"/v1/missions/{mission_id}/reports", json={"reports": [report]}, headers=coordinator
        )
        if accepted:
            assert by_command.status_code == 200, (written, by_command.text)
            assert by_report.status_code in (200, 201), (written, by_report.text)
        else:
            assert by_command.status_code == 409, (written, by_command.text)
            assert by_command.json()["error"]["code"] == "visit_not_on_election_day"
            assert by_report.status_code == 422, (written, by_report.text)
            assert "visit_not_on_election_day" in by_report.text
    listed = (await api.get(f"/v1/missions/{mission_id}/visits", headers=coordinator)).json()
    # Both accepted writings of 05:45 in Almaty are shown as that one local time.
    assert {v["arrived_at"] for v in listed} == {"2021-01-10T05:45:00+06:00"}

    # A station on its own zone (Aqtobe, UTC+5 in 2021): counting until 11:30 there on the
    # morning after is within the grace, and is shown in the station's time.
    aqtobe = {"station_id": "AQ-1", "locality": "Aqtobe", "time_zone": "Asia/Aqtobe"}
    registered = await api.post(
        f"/v1/missions/{mission_id}/stations", json={"stations": [aqtobe]}, headers=coordinator
    )
    assert registered.status_code == 200, registered.text
    counting = seed.station_visit(14, team=3).model_dump(mode="json", exclude={"type"}) | {
        "visit_id": "aq-count",
        "station_id": "AQ-1",
        "locality": "Aqtobe",
        "arrived_at": "2021-01-11T11:00:00+06:00",
        "departed_at": "2021-01-11T12:30:00+06:00",  # 11:30 in Aqtobe
        "checklists": [{"phase": "counting", "answers": {}}],
    }
    recorded = await api.post(
        f"/v1/missions/{mission_id}/record-station-visit", json=counting, headers=coordinator
    )
    assert recorded.status_code == 200, recorded.text
    listed = (await api.get(f"/v1/missions/{mission_id}/visits", headers=coordinator)).json()
    [aq] = [v for v in listed if v["station_id"] == "AQ-1"]
    assert aq["departed_at"] == "2021-01-11T11:30:00+05:00"


async def test_the_api_serves_the_exports_the_cli_writes(running_api: RunningApi) -> None:
    """GET /export gives an auditor each format, as `eom audit export` makes it; an
    observer may not; an unknown format is refused naming the field."""
    api, missions = running_api.http, running_api.missions
    mission_id, _ = await _seeded(missions, "export", open_election_day=True)
    auditor = {"Authorization": f"Bearer {await running_api.token(Role.auditor)}"}
    report = await api.get(f"/v1/missions/{mission_id}/export", headers=auditor)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
    assert "| time zone | Asia/Almaty |" in report.text
    raw = await api.get(f"/v1/missions/{mission_id}/export?format=jsonl", headers=auditor)
    assert raw.status_code == 200
    assert [json.loads(line)["stream_version"] for line in raw.text.splitlines()][:2] == [1, 2]
    assert f'filename="{mission_id}.jsonl"' in raw.headers["content-disposition"]
    html = await api.get(f"/v1/missions/{mission_id}/export?format=html", headers=auditor)
    assert html.status_code == 200 and "<html" in html.text
    wrong = await api.get(f"/v1/missions/{mission_id}/export?format=docx", headers=auditor)
    assert wrong.status_code == 422 and "format" in wrong.text
    token = await running_api.token(Role.observer, mission_id=mission_id, team_id="team-1")
    observer = {"Authorization": f"Bearer {token}"}
    refused = await api.get(f"/v1/missions/{mission_id}/export", headers=observer)
    assert refused.status_code == 403
