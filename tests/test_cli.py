"""The `eom` command line, run as a user runs it: a separate process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from test_intake import open_election_day

from cli import seed
from cli.commands import InputError, build_command
from eventstore.store import EventStore
from worker import build_worker

EOM = str(Path(sys.executable).with_name("eom"))


@dataclass
class Run:
    code: int
    out: str
    err: str


async def eom(*args: str, env: dict[str, str], within: float = 120) -> Run:
    process = await asyncio.create_subprocess_exec(
        EOM,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "EOM_TASK_QUEUE", "EOM_LOG_LEVEL")
    }
    env["EOM_DATA_DIR"] = str(tmp_path / "eom-data")
    return env


@pytest_asyncio.fixture
async def service_env(
    tmp_path: Path, database_url: str, temporal_address: str, client: Client, store: EventStore
) -> AsyncIterator[dict[str, str]]:
    """Environment for a CLI process talking to this session's services, with a worker
    running on a task queue of its own."""
    task_queue = f"eom-cli-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, store, task_queue):
        yield {
            **base_env(tmp_path),
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": temporal_address,
            "EOM_TASK_QUEUE": task_queue,
        }


def test_bad_input_names_the_field() -> None:
    """Validation errors name the field and the problem in one line."""
    with pytest.raises(InputError, match=r"invalid record_meeting: held_on: .*date"):
        build_command(
            "record_meeting",
            {
                "meeting_id": "m1",
                "stakeholder_type": "media",
                "stakeholder_name": "Khabar TV",
                "held_on": "8 January",
                "summary": "Interview",
            },
        )
    with pytest.raises(InputError, match="unknown field"):
        build_command("open_election_day", {"when": "now"})


async def test_bad_option_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """A malformed date is refused before anything is contacted: exit 2, one line naming
    the option as it was typed."""
    run = await eom(
        "mission",
        "record-meeting",
        "m-1",
        "--meeting-id",
        "cec",
        "--stakeholder-type",
        "central_election_commission",
        "--stakeholder-name",
        "CEC",
        "--held-on",
        "2021-13-45",
        "--summary",
        "s",
        env=base_env(tmp_path),
    )
    assert run.code == 2
    assert run.err.strip().count("\n") == 0
    assert "--held-on: Input should be a valid date" in run.err


async def test_input_eom_cannot_store_or_send_is_refused_at_once(tmp_path: Path) -> None:
    """What the store, the hash or the mail could not take is refused before anything is
    contacted, exit 2 naming the field: a quota beyond 2**53 in a registration file, a NUL
    in a summary, a line break in a member state's name, a version beyond the store's."""
    invitation = seed.registration("m-1").model_dump(mode="json")
    invitation["role_quotas"] = {"short_term_observer": 9007199254740993}
    registration = tmp_path / "invitation.json"
    registration.write_text(json.dumps(invitation), encoding="utf-8")
    meeting = tmp_path / "meeting.json"
    meeting.write_text(
        '{"meeting_id": "cec", "stakeholder_type": "media", "stakeholder_name": "Khabar",'
        ' "held_on": "2021-01-08", "summary": "Briefing\\u0000 on procedures"}',
        encoding="utf-8",
    )
    env = base_env(tmp_path)
    runs = {
        "role_quotas.short_term_observer": await eom(
            "mission", "register-invitation", "m-1", "--file", str(registration), env=env
        ),
        "summary": await eom("mission", "record-meeting", "m-1", "--file", str(meeting), env=env),
        "name": await eom(
            "member-state",
            "add",
            "--organisation",
            "Turkic Council",
            "--code",
            "AZ",
            "--name",
            "Azerbaijan\r\nBcc: x@example.org",
            "--email",
            "focal@mfa.example.az",
            "--escalation-email",
            "secretariat@example.org",
            env=env,
        ),
        "--version": await eom("mission", "show", "m-1", "--version", str(2**64), env=env),
        "--expires": await eom(
            "token",
            "create",
            "--role",
            "auditor",
            "--name",
            "a",
            "--expires",
            "9" * 14 + "d",
            env=env,
        ),
        "--offsets": await eom(
            "ladder",
            "set",
            "--organisation",
            "TC",
            "--kind",
            "nomination",
            "--offsets",
            "99999999999d",
            env=env,
        ),
    }
    documents = {
        "digits.json": '{"name": ' + "9" * 5000 + ', "title": "t"}',
        "deep.json": "[" * 5000 + "]" * 5000,
        "keys.yaml": "1: a\nname: n\n",
    }
    for name, text in documents.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        runs[name] = await eom(
            "mission", "appoint-head-of-mission", "m-1", "--file", str(tmp_path / name), env=env
        )
    (tmp_path / "latin1.yaml").write_bytes("name: Türkiye\n".encode("latin-1"))
    runs["latin1.yaml"] = await eom(
        "mission",
        "appoint-head-of-mission",
        "m-1",
        "--file",
        str(tmp_path / "latin1.yaml"),
        env=env,
    )
    for field, run in runs.items():
        assert run.code == 2, (field, run.err)
        assert field in run.err, (field, run.err)
        assert "Traceback" not in run.err
    # Bytes that are not UTF-8 in an argument (a mission id typed in another encoding).
    process = await asyncio.create_subprocess_exec(
        EOM,
        "mission",
        "show",
        b"atk\xff",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2 and b"not UTF-8" in err
    assert not (tmp_path / "eom-data").exists(), "nothing was started"


async def test_mission_commands_from_options_and_files(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    """Register from a YAML file, appoint by options, see a refusal, show the timeline."""
    mission_id = f"cli-{uuid.uuid4().hex[:8]}"
    invitation = tmp_path / "invitation.yaml"
    invitation.write_text(
        "organisation: Turkic Council\n"
        "host_country: KZ\n"
        "inviting_authority: Central Election Commission of Kazakhstan\n"
        "election: {name: Mazhilis and Maslikhats, type: parliamentary, date: 2021-01-10}\n"
        "mission_window: {start: 2021-01-06, end: 2021-01-10}\n"
        "member_states: [AZ, KG, TR, UZ]\ntime_zone: Asia/Almaty\n",
        encoding="utf-8",
    )
    registered = await eom(
        "mission", "register-invitation", mission_id, "--file", str(invitation), env=service_env
    )
    assert registered.code == 0, registered.err
    assert "v1" in registered.out and "invited" in registered.out

    appointed = await eom(
        "mission",
        "appoint-head-of-mission",
        mission_id,
        "--name",
        "Ömer Kocaman",
        "--title",
        "Deputy Secretary General",
        "--actor",
        "secretariat@tc",
        env=service_env,
    )
    assert appointed.code == 0, appointed.err
    assert "forming" in appointed.out

    refused = await eom(
        "mission",
        "nominate-observer",
        mission_id,
        "--observer-id",
        "kz-1",
        "--member-state",
        "KZ",
        "--name",
        "Host national",
        env=service_env,
    )
    assert refused.code == 1
    assert "observer_from_host_country" in refused.err

    shown = await eom("mission", "show", mission_id, env=service_env)
    assert shown.code == 0, shown.err
    assert "HeadOfMissionAppointed" in shown.out and "secretariat@tc" in shown.out
    assert "hash chain: unbroken over 2 events" in shown.out

    listed = await eom("missions", env=service_env)
    assert mission_id in listed.out


async def test_demo_embedded_runs_the_seed_mission_to_closure(tmp_path: Path) -> None:
    """`eom demo --embedded` starts its own stack, asks the member states other than the
    host for observers (the first answers before any reminder, so its ladder stops),
    closes the seed mission and starts its follow-up; exits 0. The timeline can then be
    shown from the embedded database, and the outbox lists the messages."""
    env = base_env(tmp_path)
    demo = await eom("demo", "--embedded", "--pace", "3", env=env, within=300)
    assert demo.code == 0, demo.err[-2000:]
    assert "refused" in demo.out and "visit_not_on_election_day" in demo.out
    for state in ("AZ", "KG", "TR", "UZ"):
        assert f"request 0 to {state} (nomination)" in demo.out
    assert "to KZ (nomination)" not in demo.out
    assert "reminder 1 to AZ (nomination)" not in demo.out
    assert "follow-up cycle 1 opened" in demo.out
    match = re.search(
        r"Mission (\S+) closed: (\d+) events in PostgreSQL, hash chain unbroken", demo.out
    )
    assert match, demo.out[-2000:]
    mission_id = match[1]

    shown = await eom("mission", "show", mission_id, env=env, within=120)
    assert shown.code == 0, shown.err[-2000:]
    assert "stage closed" in shown.out and "MissionClosed" in shown.out
    assert f"hash chain: unbroken over {match[2]} events" in shown.out

    outbox = await eom("outbox", "--mission", mission_id, env=env, within=120)
    assert outbox.code == 0, outbox.err[-2000:]
    assert "focal-point.az@mfa.example.org" in outbox.out and "sent" in outbox.out


async def test_demo_through_the_api(tmp_path: Path) -> None:
    """`eom demo --via api --embedded` drives the seed mission over HTTP, each command
    with the token of whoever gives it, and exits 0."""
    demo = await eom(
        "demo", "--embedded", "--via", "api", "--pace", "1", env=base_env(tmp_path), within=300
    )
    assert demo.code == 0, demo.err[-2000:]
    assert "(member_state AZ via API)" in demo.out
    assert "(observer team-1 via API)" in demo.out
    assert "(head_of_mission" in demo.out and "visit_not_on_election_day" in demo.out
    assert re.search(r"Mission \S+ closed: \d+ events in PostgreSQL, hash chain unbroken", demo.out)


async def test_audit_verify_catches_tampering_and_replays_at_a_version(
    tmp_path: Path, service_env: dict[str, str], store: EventStore
) -> None:
    """`eom audit verify` is clean on an untouched mission and exits 1 naming the break
    after a superuser edits a row behind the triggers; `eom audit replay --version`
    shows the state as of that version."""
    mission_id = f"audit-{uuid.uuid4().hex[:8]}"
    invitation = tmp_path / "invitation.json"
    invitation.write_text(
        '{"organisation": "Turkic Council", "host_country": "KZ",'
        ' "inviting_authority": "CEC", "member_states": ["AZ"],'
        ' "election": {"name": "Mazhilis", "type": "parliamentary", "date": "2021-01-10"},'
        ' "mission_window": {"start": "2021-01-06", "end": "2021-01-10"},'
        ' "time_zone": "Asia/Almaty"}',
        encoding="utf-8",
    )
    for args in (
        ("register-invitation", mission_id, "--file", str(invitation)),
        ("appoint-head-of-mission", mission_id, "--name", "Head", "--title", "Envoy"),
    ):
        assert (await eom("mission", *args, env=service_env)).code == 0
    clean = await eom("audit", "verify", mission_id, env=service_env)
    assert clean.code == 0 and "unbroken" in clean.out
    replayed = await eom("audit", "replay", mission_id, "--version", "1", env=service_env)
    assert replayed.code == 0 and "stage invited" in replayed.out
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"nobody\"') "
            "WHERE stream_id = $1 AND stream_version = 2",
            mission_id,
        )
    broken = await eom("audit", "verify", mission_id, env=service_env)
    assert broken.code == 1
    assert "v2 changed" in broken.out


async def test_audit_diff_workflows_and_projection_rebuild(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    """`eom audit diff` finds the live workflow and the replay in agreement; `eom audit
    workflows` replays the committed histories; `eom projections rebuild` runs."""
    mission_id = f"diff-{uuid.uuid4().hex[:8]}"
    invitation = tmp_path / "invitation.yaml"
    invitation.write_text(
        "organisation: Turkic Council\nhost_country: KZ\ninviting_authority: CEC\n"
        "election: {name: Mazhilis, type: parliamentary, date: 2021-01-10}\n"
        "mission_window: {start: 2021-01-06, end: 2021-01-10}\nmember_states: [AZ]\n"
        "time_zone: Asia/Almaty\n",
        encoding="utf-8",
    )
    registered = await eom(
        "mission", "register-invitation", mission_id, "--file", str(invitation), env=service_env
    )
    assert registered.code == 0, registered.err
    agree = await eom("audit", "diff", mission_id, env=service_env)
    assert agree.code == 0 and "agree at v1" in agree.out
    histories = sorted(str(p) for p in (Path(__file__).parent / "histories").glob("*.json"))
    replayed = await eom("audit", "workflows", *histories, env=service_env)
    assert replayed.code == 0 and f"{len(histories)} histories replayed, 0 failed" in replayed.out
    rebuilt = await eom("projections", "rebuild", env=service_env)
    assert rebuilt.code == 0 and "projected" in rebuilt.out


async def test_election_day_from_the_coordinators_desk(
    tmp_path: Path, service_env: dict[str, str], client: Client, store: EventStore
) -> None:
    """Stations imported from CSV, paper forms entered (once, however often sent; refused
    whole when one is wrong), and the coverage printed with the events behind it."""
    _, mission_id, stations = await open_election_day(
        client, store, service_env["EOM_TASK_QUEUE"], stations=2, grace_minutes=60
    )
    listing = tmp_path / "stations.csv"
    listing.write_text(
        "station_id,locality,name\n"
        f"{stations[0].station_id},{stations[0].locality},{stations[0].name}\n"
        "NS-200,Nur-Sultan,School 12\nNS-201,Nur-Sultan,\n",
        encoding="utf-8",
    )
    imported = await eom("stations", "import", mission_id, str(listing), env=service_env)
    assert imported.code == 0, imported.err
    # The seed registers its own stations; the fixture two more; the file two more.
    assert "2 station(s) registered" in imported.out
    assert f"{seed.STATIONS + 4} in all" in imported.out
    broken = tmp_path / "broken.csv"
    broken.write_text("station,where\nX,Y\n", encoding="utf-8")
    refused = await eom("stations", "import", mission_id, str(broken), env=service_env)
    assert refused.code == 2 and "no column locality, station_id" in refused.err

    forms = tmp_path / "forms.yaml"
    day = "2021-01-10T{}:00+06:00"
    forms.write_text(
        "reports:\n"
        f"  - {{kind: station_visit, submission_id: paper-1, mission_id: {mission_id},\n"
        f"     station_id: NS-200, team_id: team-1, arrived_at: '{day.format('07:00')}',\n"
        f"     departed_at: '{day.format('08:10')}',\n"
        "     checklists: [{phase: opening, answers: {opened_on_time: true}}],\n"
        "     findings: [{category: accessibility, assessment: concern, note: no ramp}]}\n"
        f"  - {{kind: incident, submission_id: paper-2, mission_id: {mission_id},\n"
        f"     station_id: NS-201, team_id: team-2, observed_at: '{day.format('11:30')}',\n"
        "     phase: voting, category: voter_influence, description: leaflets at the door}\n",
        encoding="utf-8",
    )
    entered = await eom("report", "submit", mission_id, str(forms), env=service_env)
    assert entered.code == 0, entered.err
    assert entered.out.count("recorded") == 2
    again = await eom("report", "submit", mission_id, str(forms), env=service_env)
    assert again.code == 0 and again.out.count("duplicate") == 2

    slip = tmp_path / "slip.yaml"
    slip.write_text(
        forms.read_text(encoding="utf-8")
        .replace("paper-1", "paper-3")
        .replace("paper-2", "paper-4")
        .replace("2021-01-10T07", "2020-01-10T07"),
        encoding="utf-8",
    )
    wrong = await eom("report", "submit", mission_id, str(slip), env=service_env)
    assert wrong.code == 2 and "visit_not_on_election_day" in wrong.err
    assert "nothing recorded" in wrong.err

    shown = await eom("coverage", mission_id, "--trace", env=service_env)
    assert shown.code == 0, shown.err
    assert "2 reports, 1 station visits" in shown.out and "1 incidents" in shown.out
    assert "accessibility" in shown.out and "voter_influence" in shown.out
    as_json = await eom("coverage", mission_id, "--json", env=service_env)
    found = json.loads(as_json.out)
    assert (found["visits"], found["stations_registered"]) == (1, seed.STATIONS + 4)


async def test_forms_from_the_command_line(
    tmp_path: Path, service_env: dict[str, str], client: Client, store: EventStore
) -> None:
    """The standard set and an XLSForm imported and assigned (again: nothing new), a form
    refused at import naming its row, the forms listed and shown, an observer's token
    printed with ODK Collect's QR code, and the analysis as JSON and CSV."""
    _, mission_id, _ = await open_election_day(
        client, store, service_env["EOM_TASK_QUEUE"], stations=2, grace_minutes=60
    )
    standard = await eom("forms", "import", mission_id, "--standard", env=service_env)
    assert standard.code == 0, standard.err
    assert (
        standard.out.count("published and assigned")
        + standard.out.count("already published; assigned")
        == 4
    )
    quick = Path(__file__).with_name("forms") / "quick_check.md"
    first = await eom("forms", "import", mission_id, str(quick), env=service_env)
    assert first.code == 0, first.err
    again = await eom("forms", "import", mission_id, str(quick), env=service_env)
    assert again.code == 0 and "already published" in again.out
    bad = tmp_path / "bad.md"
    bad.write_text(
        "| survey |\n| | type | name | label | constraint |\n| | text | station_id | S | |\n"
        "| | integer | n | N | . <= today() |\n| settings |\n| | form_id | version | phase |\n"
        "| | bad | 1 | voting |\n",
        encoding="utf-8",
    )
    refused = await eom("forms", "import", mission_id, str(bad), env=service_env)
    assert refused.code == 2 and "today()" in refused.err and "'n'" in refused.err
    listed = await eom("forms", "list", mission_id, "--json", env=service_env)
    assert {f["form_id"] for f in json.loads(listed.out)} == {
        "eom_opening",
        "eom_voting",
        "eom_counting",
        "eom_tabulation",
        "quick_check",
    }
    shown = await eom("forms", "show", "quick_check", "--language", "ru", env=service_env)
    assert shown.code == 0 and "Урна опечатана" in shown.out
    qr_file = tmp_path / "team-1.svg"
    created = await eom(
        "token",
        "create",
        "--role",
        "observer",
        "--name",
        "Team 1",
        "--mission",
        mission_id,
        "--team",
        "team-1",
        "--qr-file",
        str(qr_file),
        env=service_env,
    )
    assert created.code == 0, created.err
    token = created.out.strip()
    assert re.fullmatch(r"eom_[0-9a-f]{32}", token)
    assert f"/openrosa/key/{token}/missions/{mission_id}" in created.err
    assert "▀" in created.err or "█" in created.err  # the QR code, drawn in the terminal
    assert qr_file.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    analysed = await eom("analysis", mission_id, "--json", env=service_env)
    assert analysed.code == 0, analysed.err
    assert json.loads(analysed.out)["mission_id"] == mission_id
    as_csv = await eom("analysis", mission_id, "--csv", env=service_env)
    assert as_csv.out.splitlines()[0].startswith("phase,form_id,question,scope,answer")
