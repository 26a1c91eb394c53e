"""What `eom mission` options take: dates and times as typed, structured values with their
form and an example in the help, the statement approved and published by its draft's id."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, create_model
from temporalio.client import Client
from test_cli import base_env, eom, service_env  # noqa: F401 (a fixture)

from cli import seed
from cli.commands import (
    COMMAND_FORMS,
    FORMS,
    HIDDEN,
    _kind,
    build_command,
    option_form,
    option_value,
)
from cli.options import InputError, parse_document, parse_moment, parse_since
from domain import commands as c
from domain.commands import COMMAND_TYPES
from domain.values import DateWindow, StakeholderType
from eventstore.store import EventStore
from workflows.client import Missions


def _field(command_type: str, name: str) -> Any:
    return COMMAND_TYPES[command_type].model_fields[name]


def test_times_are_passed_on_as_typed() -> None:
    """A time without an offset stays without one (the host's local time, for the domain
    to place); Z and +06:00 are kept as given, never turned into UTC; a bare day is the
    end of that day for a deadline and refused where a time is needed."""
    deadline = _field("request_nominations", "deadline")
    polls = _field("open_election_day", "polls_open_at")
    assert option_value("polls_open_at", polls, "2021-01-10T07:00") == "2021-01-10T07:00:00"
    assert option_value("deadline", deadline, "2021-10-15") == "2021-10-15T23:59:59"
    assert option_value("deadline", deadline, "2021-10-15T12:00Z") == "2021-10-15T12:00:00+00:00"
    assert option_value("deadline", deadline, "2021-10-15 18:00+06:00") == (
        "2021-10-15T18:00:00+06:00"
    )
    assert option_value("deadline", deadline, "2021-10-15T18:00+0600") == (
        "2021-10-15T18:00:00+06:00"
    )
    ack = _field("send_recommendations", "acknowledge_by")
    assert option_value("acknowledge_by", ack, "2022-06-30") == "2022-06-30T23:59:59"
    assert parse_moment("2021-01-10T07:00:30.25", "--x").tzinfo is None
    # The command carries what was typed, offset and all.
    command = build_command(
        "request_nominations",
        {"deadline": option_value("deadline", deadline, "2021-10-15T18:00+06:00")},
    )
    assert isinstance(command, c.RequestNominations)
    assert command.deadline.utcoffset() == timedelta(hours=6)


@pytest.mark.parametrize(
    ("name", "typed", "says"),
    [
        ("polls_open_at", "2021-01-10", "--polls-open-at: '2021-01-10' is a day; give the time"),
        ("polls_open_at", "tomorrow 7am", "--polls-open-at: 'tomorrow 7am' is not a date and"),
        ("deadline", "15/10/2021", "--deadline: '15/10/2021' is not a date and time like"),
        ("deadline", "2021-02-30", "--deadline: '2021-02-30' is no real date and time"),
        ("deadline", "2021-10-15T24:00", "is no real date and time (hour must be in 0..23)"),
        ("deadline", "2021-10-15T12:00+24:00", "--deadline: '2021-10-15T12:00+24:00' is no real"),
        ("deadline", '"2021-10-15T12:00:00Z"', "is not a date and time like"),
        ("arrived_at", "07:40", "--arrived-at: '07:40' is not a date and time"),
    ],
)
def test_a_time_eom_cannot_read_is_named_with_the_forms_it_takes(
    name: str, typed: str, says: str
) -> None:
    """Each refusal is one line naming the option and what it takes."""
    command_type = {
        "polls_open_at": "open_election_day",
        "deadline": "request_nominations",
        "arrived_at": "record_station_visit",
    }[name]
    with pytest.raises(InputError) as refused:
        option_value(name, _field(command_type, name), typed)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_short_forms_of_structured_options() -> None:
    """A window as START..END, member states separated by commas, a ladder as durations
    (in any order) with its escalation, a structured value in YAML's inline form; each
    equal to the JSON it stands for."""
    window = option_value(
        "mission_window", _field("register_invitation", "mission_window"), "2021-01-06..2021-01-10"
    )
    assert DateWindow.model_validate(window) == DateWindow.model_validate(
        parse_document('{"start": "2021-01-06", "end": "2021-01-10"}', "--mission-window")
    )
    states = option_value(
        "member_states", _field("register_invitation", "member_states"), ["az, KG", "TR"]
    )
    assert states == ["az", "KG", "TR"]
    ladder = option_value("ladder", _field("request_nominations", "ladder"), "2d,7d,0,escalate=12h")
    assert ladder == {"offsets_seconds": [604_800, 172_800, 0], "escalate_after_seconds": 43_200}
    election = option_value(
        "election",
        _field("register_invitation", "election"),
        "{name: Mazhilis, type: parliamentary, date: 2021-01-10}",
    )
    assert election == parse_document(
        '{"name": "Mazhilis", "type": "parliamentary", "date": "2021-01-10"}', "--election"
    ) | {"date": datetime(2021, 1, 10).date()}
    for name, typed, says in (
        ("ladder", "7d,esc=1d", "--ladder: 'esc=1d' is neither a duration nor escalate="),
        ("ladder", "a week", "--ladder: 'a week' is not a duration"),
        ("election", "{name: M, type: parliamentary", "--election is neither JSON nor YAML"),
        ("election", "{1: M}", "--election: key 1 is not text"),
    ):
        command_type = "request_nominations" if name == "ladder" else "register_invitation"
        with pytest.raises(InputError, match="^" + says.replace("(", r"\(")):
            option_value(name, _field(command_type, name), typed)


def _structured(command_type: str, name: str) -> bool:
    field = _field(command_type, name)
    return _kind(name, field) in ("json", "moment") or name == "member_states"


def test_every_structured_option_shows_its_form_with_examples_that_work() -> None:
    """Every option that takes a structured value, a date and time or a list of codes has
    a help saying its form with at least one example, and each example, read as the
    option reads it, is a valid value of its field (a time as a date and time: where it
    has no offset, its zone is the domain's to decide)."""
    checked = 0
    for command_type, model in COMMAND_TYPES.items():
        for name, field in model.model_fields.items():
            if name in ("type", "mission_id") or (command_type, name) in HIDDEN:
                continue
            form = option_form(command_type, name, field)
            if not _structured(command_type, name):
                continue
            assert form is not None and form.examples, f"{command_type} --{name}"
            assert "e.g." in form.help()
            for example in form.examples:
                typed: Any = [example] if _kind(name, field) == "many" else example
                value = option_value(name, field, typed)
                if _kind(name, field) == "moment":
                    TypeAdapter(datetime).validate_python(value)
                else:
                    annotation: Any = field.annotation
                    probe = create_model("Probe", value=(annotation, field))
                    probe.model_validate({"value": value})
                checked += 1
    assert checked >= 20
    assert "other than the host" in FORMS["member_states"].help()
    assert "or the host" in COMMAND_FORMS["request_evidence", "member_states"].help()


def test_since_is_a_duration_back_or_a_moment_in_utc() -> None:
    """`--since 2d` is two days before now; a day is its midnight, a time without an
    offset UTC (the outbox's times are), one with an offset as given."""
    now = datetime(2021, 1, 10, 12, 0, tzinfo=UTC)
    assert parse_since("2d", "--since", now=now) == now - timedelta(days=2)
    assert parse_since("2021-01-05", "--since", now=now) == datetime(2021, 1, 5, tzinfo=UTC)
    assert parse_since("2021-01-05T10:00", "--since", now=now) == datetime(
        2021, 1, 5, 10, tzinfo=UTC
    )
    assert parse_since("2021-01-05T10:00+06:00", "--since", now=now).utcoffset() == timedelta(
        hours=6
    )
    assert parse_since("2021-01-05T10:00+06:00", "--since", now=now) == datetime(
        2021, 1, 5, 10, tzinfo=timezone(timedelta(hours=6))
    )
    with pytest.raises(InputError, match=r"^--since: 'last week' is neither a duration"):
        parse_since("last week", "--since", now=now)


async def test_bad_times_and_values_are_refused_before_anything_is_contacted(
    tmp_path: Path,
) -> None:
    """No service runs: a time, a ladder or a structured value eom cannot read is one
    line naming the option, exit 2, and nothing is started."""
    env = base_env(tmp_path)
    runs = {
        "--deadline": await eom(
            "mission", "request-nominations", "m-1", "--deadline", "15/10/2021", env=env
        ),
        "--polls-open-at": await eom(
            "mission", "open-election-day", "m-1", "--polls-open-at", "2021-01-10", env=env
        ),
        "--ladder": await eom(
            "mission",
            "request-nominations",
            "m-1",
            "--deadline",
            "2021-10-15",
            "--ladder",
            "7 days",
            env=env,
        ),
        "--mission-window": await eom(
            "mission",
            "register-invitation",
            "m-1",
            "--organisation",
            "TC",
            "--host-country",
            "KZ",
            "--inviting-authority",
            "CEC",
            "--election",
            "{name: M, type: parliamentary, date: 2021-01-10}",
            "--mission-window",
            "2021-01-10..2021-01-06",
            "--member-states",
            "AZ",
            env=env,
        ),
    }
    for option, run in runs.items():
        assert run.code == 2, (option, run.err)
        assert run.err.strip().count("\n") == 0 and option in run.err, run.err
        assert "Traceback" not in run.err
    assert "window ends (2021-01-06) before it starts" in runs["--mission-window"].err
    assert not (tmp_path / "eom-data").exists(), "nothing was started"


async def test_help_shows_each_structured_option_with_an_example(tmp_path: Path) -> None:
    """`--help` at 100 columns shows the form of --election, --mission-window and
    --member-states (the states other than the host) with examples, and that a bare day
    for a deadline is its end."""
    env = {**base_env(tmp_path), "COLUMNS": "100"}
    registration = await eom("mission", "register-invitation", "--help", env=env)
    assert registration.code == 0, registration.err
    text = " ".join(registration.out.replace("│", " ").split())
    assert "2021-01-06..2021-01-10" in text
    assert "{name: Mazhilis, type: parliamentary, date: 2021-01-10}" in text
    assert "other than the host" in text
    nominations = await eom("mission", "request-nominations", "--help", env=env)
    text = " ".join(nominations.out.replace("│", " ").split())
    assert "a day (then its end, 23:59:59)" in text and "7d,2d,0,escalate=12h" in text
    meeting = await eom("mission", "record-meeting", "--help", env=env)
    assert StakeholderType.parliament.value in meeting.out


async def test_a_mission_by_plain_options_and_its_statement_by_draft_id(
    tmp_path: Path,
    service_env: dict[str, str],  # noqa: F811 (the fixture)
    client: Client,
    store: EventStore,
) -> None:
    """Registered with plain forms, a meeting with a parliament committee recorded, and
    the statement drafted (its full sha256 printed), approved and published by its draft
    id alone: the text approved and published is exactly that draft's."""
    mission_id = f"options-{uuid.uuid4().hex[:8]}"
    expected = seed.registration(mission_id)
    assert expected.election is not None
    registered = await eom(
        "mission",
        "register-invitation",
        mission_id,
        "--organisation",
        expected.organisation,
        "--host-country",
        "kz",
        "--inviting-authority",
        expected.inviting_authority,
        "--election",
        f"{{name: {expected.election.name}, type: parliamentary, date: 2021-01-10}}",
        "--mission-window",
        "2021-01-06..2021-01-10",
        "--member-states",
        "AZ,KG",
        "--member-states",
        "TR,UZ",
        "--time-zone",
        "Asia/Almaty",
        env=service_env,
    )
    assert registered.code == 0, registered.err
    missions = Missions(client=client, store=store, task_queue=service_env["EOM_TASK_QUEUE"])
    state = await missions.state(mission_id)
    assert (state.election, state.mission_window, state.member_states) == (
        expected.election,
        expected.mission_window,
        expected.member_states,
    )

    commands = seed.mission(mission_id)[1:]
    opening = next(n for n, cmd in enumerate(commands) if isinstance(cmd, c.OpenElectionDay))
    drafting = next(n for n, cmd in enumerate(commands) if isinstance(cmd, c.DraftStatement))
    for command in commands[:opening]:
        await missions.execute(mission_id, command, actor="coordinator")
    meeting = await eom(
        "mission",
        "record-meeting",
        mission_id,
        "--meeting-id",
        "mazhilis-committee",
        "--stakeholder-type",
        "parliament",
        "--stakeholder-name",
        "Mazhilis Committee on Legislation",
        "--held-on",
        "2021-01-08",
        "--summary",
        "Electoral law amendments of 2020",
        env=service_env,
    )
    assert meeting.code == 0, meeting.err
    for command in commands[opening:drafting]:
        await missions.execute(mission_id, command, actor="coordinator")

    text = "The elections were held in a calm atmosphere.\n\nFundamental freedoms were limited."
    sha = hashlib.sha256(text.encode()).hexdigest()
    drafted = await eom(
        "mission",
        "draft-statement",
        mission_id,
        "--draft-id",
        "statement-cli",
        "--title",
        "Preliminary statement",
        "--text",
        text,
        env=service_env,
    )
    assert drafted.code == 0, drafted.err
    assert f"draft statement-cli: text sha256 {sha}" in drafted.out
    assert "approve-statement" in drafted.out

    unknown = await eom(
        "mission",
        "approve-statement",
        mission_id,
        "--draft-id",
        "statement-2",
        "--approved-by",
        seed.HEAD_OF_MISSION,
        env=service_env,
    )
    assert unknown.code == 2
    assert unknown.err.strip() == (
        f"error: --draft-id: mission {mission_id} has no draft 'statement-2' "
        "(drafts: statement-cli)"
    )
    approved = await eom(
        "mission",
        "approve-statement",
        mission_id,
        "--draft-id",
        "statement-cli",
        "--approved-by",
        seed.HEAD_OF_MISSION,
        env=service_env,
    )
    assert approved.code == 0, approved.err
    assert sha in approved.out
    published = await eom(
        "mission",
        "publish-statement",
        mission_id,
        "--draft-id",
        "statement-cli",
        "--published-on",
        "2021-01-11",
        env=service_env,
    )
    assert published.code == 0, published.err

    state = await missions.state(mission_id)
    assert state.publication is not None and state.publication.text_sha256 == sha
    assert state.drafts["statement-cli"].text == text
    assert state.meetings["mazhilis-committee"].stakeholder_type is StakeholderType.parliament


async def test_reminder_commands_are_reached_as_the_readme_writes_them(tmp_path: Path) -> None:
    """`eom reminders send-now MISSION --member-state AZ` names its command first; the
    status view stays `eom reminders MISSION` (nothing else is swallowed as a mission)."""
    env = base_env(tmp_path)
    for command, says in (("send-now", "Send the next reminder"), ("pause", "Pause")):
        shown = await eom("reminders", command, "--help", env=env)
        assert shown.code == 0 and says in shown.out, shown.err
    status = await eom("reminders", "status", "--help", env=env)
    assert status.code == 0 and "what is due next" in status.out
