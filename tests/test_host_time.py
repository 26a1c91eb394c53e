"""The host's clock: one instant, one verdict, whatever UTC offset it is written with; a
time without an offset is host-local; deadlines and cycles follow the record's dates.

Pure: the rules of ``decide`` and ``admit`` on states folded from the seed mission
(Kazakhstan, election day 2021-01-10, Asia/Almaty at UTC+6 then).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli import seed
from domain import Mission, Stage, decide, fold
from domain import commands as c
from domain import errors as e
from domain import events as ev
from domain.commands import Command
from domain.evolve import registered_zone
from domain.host_time import country_zones, local, sent_instant, shown
from domain.submissions import IntakeContext, StationVisitReport, admit
from domain.values import Phase, PhaseChecklist, PollingStation
from workflows.followup import next_cycle_opening

NOW = datetime(2021, 1, 5, 12, 0, tzinfo=UTC)
E = seed.ELECTION_DAY


def _run(commands: list[Command], now: datetime = NOW) -> Mission:
    state = Mission()
    for command in commands:
        state = fold(decide(state, command, now=now), state)
    return state


def _until(kind: type) -> list[Command]:
    commands = seed.mission("tc-kz-2021")
    return commands[: next(i for i, cmd in enumerate(commands) if isinstance(cmd, kind))]


ELECTION_DAY_OPEN = _run([*_until(c.OpenElectionDay), c.OpenElectionDay()])


def _visit(phase: Phase, arrived: str, departed: str | None = None) -> c.RecordStationVisit:
    return c.RecordStationVisit(
        visit_id="v-1",
        station_id="NS-101",
        locality="Nur-Sultan",
        team_id="team-1",
        arrived_at=datetime.fromisoformat(arrived),
        departed_at=datetime.fromisoformat(departed or arrived),
        checklists=[PhaseChecklist(phase=phase)],
    )


def _verdict(command: Command, state: Mission = ELECTION_DAY_OPEN) -> str:
    try:
        decide(state, command, now=NOW)
    except e.DomainError as error:
        return error.rule
    return "accepted"


@pytest.mark.parametrize(
    ("phase", "written", "verdict"),
    [
        (Phase.opening, "2021-01-10T05:45+06:00", "accepted"),
        (Phase.opening, "2021-01-09T23:45+00:00", "accepted"),  # the same instant
        (Phase.opening, "2021-01-10T05:45", "accepted"),  # host-local
        (Phase.voting, "2021-01-11T09:00+06:00", "visit_not_on_election_day"),
        (Phase.voting, "2021-01-10T17:00-10:00", "visit_not_on_election_day"),  # the same
        (Phase.voting, "2021-01-10T23:30+06:00", "accepted"),
        (Phase.voting, "2021-01-10T18:30+00:00", "visit_not_on_election_day"),  # 00:30 local
        (Phase.counting, "2021-01-11T11:30+06:00", "accepted"),  # counting grace
        (Phase.counting, "2021-01-11T05:30+00:00", "accepted"),  # the same instant
        (Phase.counting, "2021-01-11T12:30+06:00", "visit_not_on_election_day"),
    ],
)
def test_one_instant_one_verdict_in_host_time(phase: Phase, written: str, verdict: str) -> None:
    """Election day is the host's: a visit's instants are read in Asia/Almaty."""
    assert _verdict(_visit(phase, written)) == verdict


def test_a_visit_ending_after_midnight_local_counts_by_local_time() -> None:
    """Counting from 22:00 to 01:30 local (16:00Z to 19:30Z) runs into the grace."""
    command = _visit(Phase.counting, "2021-01-10T16:00+00:00", "2021-01-10T19:30+00:00")
    assert _verdict(command) == "accepted"


def test_registration_names_the_zone_where_the_host_has_several() -> None:
    registration = seed.registration("kz-x").model_copy(update={"time_zone": None})
    assert len(country_zones("KZ")) > 1
    with pytest.raises(e.TimeZoneRequired, match="Asia/Almaty"):
        decide(Mission(), registration, now=NOW)
    wrong = registration.model_copy(update={"time_zone": "Europe/Istanbul"})
    with pytest.raises(e.TimeZoneNotInHost, match="Europe/Istanbul"):
        decide(Mission(), wrong, now=NOW)
    with pytest.raises(ValidationError, match="time_zone"):
        c.RegisterInvitation.model_validate(
            {**registration.model_dump(mode="json"), "time_zone": "Mars/Olympus"}
        )
    single = registration.model_copy(update={"host_country": "AZ", "member_states": ["TR"]})
    [event] = decide(Mission(), single, now=NOW)
    assert isinstance(event, ev.InvitationRegistered) and event.time_zone == "Asia/Baku"


def test_records_made_before_zones_upcast_to_the_implied_zone_or_utc_with_a_note() -> None:
    old = ev.InvitationRegistered(
        **seed.registration("kz-old").model_dump(exclude={"type", "time_zone"}),
        registered_at=NOW,
    )
    assert registered_zone(old)[0] == "UTC" and "KZ has 7 zones" in (registered_zone(old)[1] or "")
    baku = old.model_copy(update={"host_country": "AZ"})
    assert registered_zone(baku) == ("Asia/Baku", None)
    assert fold([old]).time_zone == "UTC" and fold([old]).time_zone_note


def test_times_without_offset_are_host_local_in_the_record() -> None:
    """Polls opening at 07:00 are 07:00 in Almaty (01:00Z); the record holds the instant."""
    state = _run(_until(c.OpenElectionDay))
    [opened] = decide(state, c.OpenElectionDay(polls_open_at=datetime(2021, 1, 10, 7, 0)), now=NOW)
    assert isinstance(opened, ev.ElectionDayOpened)
    assert opened.polls_open_at == datetime(2021, 1, 10, 1, 0, tzinfo=UTC)
    assert shown(opened.polls_open_at, "Asia/Almaty") == "2021-01-10T07:00:00+06:00"


def test_polls_opened_in_the_past_raise_no_check_in_alerts() -> None:
    state = _run(_until(c.OpenElectionDay))
    on_the_day = datetime(2021, 1, 10, 1, 0, tzinfo=UTC)  # 07:00 in Almaty
    [opened] = decide(state, c.OpenElectionDay(), now=on_the_day)
    assert isinstance(opened, ev.ElectionDayOpened) and opened.check_ins_watched
    assert opened.polls_open_at == on_the_day
    late = NOW + timedelta(days=400)
    # Opened long after the day, polls not given: when they opened is not known, and
    # nobody is awaited.
    [entered] = decide(state, c.OpenElectionDay(), now=late)
    assert isinstance(entered, ev.ElectionDayOpened) and not entered.check_ins_watched
    assert entered.polls_open_at is None
    [past] = decide(
        state,
        c.OpenElectionDay(polls_open_at=datetime(2021, 1, 10, 7, 0)),
        now=late,
    )
    assert isinstance(past, ev.ElectionDayOpened) and not past.check_ins_watched
    assert fold([past], state).check_in_due_at is None


def test_a_deadline_already_past_is_refused_unless_recorded_without_reminders() -> None:
    state = _run(_until(c.NominateObserver)[:2])
    past = c.RequestNominations(deadline=datetime(2021, 1, 1, 12, 0))  # host-local, past
    with pytest.raises(e.DeadlinePassed, match="deadline 2021-01-01T12:00:00\\+06:00"):
        decide(state, past, now=NOW)
    [requested] = decide(state, past.model_copy(update={"reminders": False}), now=NOW)
    assert isinstance(requested, ev.NominationsRequested) and not requested.reminders
    future = c.RequestNominations(deadline=datetime(2021, 1, 6))
    [requested] = decide(state, future, now=NOW)
    assert isinstance(requested, ev.NominationsRequested) and requested.reminders


def test_histories_recorded_before_host_time_are_judged_as_written() -> None:
    """``host_time=False`` (replaying old runs): dates as written, no deadline rule."""
    written_in_utc = _visit(Phase.opening, "2021-01-09T23:45+00:00")
    with pytest.raises(e.VisitNotOnElectionDay):
        decide(ELECTION_DAY_OPEN, written_in_utc, now=NOW, host_time=False)
    state = _run(_until(c.NominateObserver)[:2])
    past = c.RequestNominations(deadline=datetime(2021, 1, 1, 12, 0, tzinfo=UTC))
    assert decide(state, past, now=NOW, host_time=False)


def test_a_station_with_its_own_zone_reads_reports_in_it() -> None:
    """Aqtobe (UTC+5) reads 23:30Z on the 9th as 04:30 on the 10th; Almaty as 05:30."""
    stations = [
        PollingStation(station_id="AQ-1", locality="Aqtobe", time_zone="Asia/Aqtobe"),
        PollingStation(station_id="NS-101", locality="Nur-Sultan"),
    ]
    context = IntakeContext.of(ELECTION_DAY_OPEN, stations)
    report = StationVisitReport(
        submission_id="s-1",
        mission_id="tc-kz-2021",
        station_id="AQ-1",
        team_id="team-1",
        arrived_at=datetime(2021, 1, 10, 6, 30),  # local at the station: 01:30Z
        departed_at=datetime(2021, 1, 10, 7, 30),
        checklists=[PhaseChecklist(phase=Phase.opening)],
    )
    recorded = admit(context, report)
    assert recorded.arrived_at == datetime(2021, 1, 10, 1, 30, tzinfo=UTC)  # type: ignore[union-attr]
    assert local(recorded.arrived_at, "Asia/Aqtobe").hour == 6  # type: ignore[union-attr]


def test_evidence_cycles_follow_the_date_the_recommendations_were_sent() -> None:
    interval, window = timedelta(days=182), timedelta(days=60)
    origin = sent_instant(date(2021, 1, 15), "Asia/Almaty", NOW)
    assert origin == datetime(2021, 1, 14, 18, 0, tzinfo=UTC)  # midnight in Almaty
    today = datetime(2021, 1, 15, 9, 0, tzinfo=UTC)
    assert sent_instant(date(2021, 1, 15), "Asia/Almaty", today) == today
    # Entered years later: the cycles wholly past are skipped, the current one is next.
    now = origin + 5 * interval + timedelta(days=10)
    following = next_cycle_opening(origin, origin, interval, window, now)
    assert following == origin + 5 * interval  # open for another 50 days
    assert following + window > now
    soon = origin + timedelta(days=1)
    assert next_cycle_opening(origin, origin, interval, window, soon) == origin + interval


def test_registering_stations_checks_their_zone_against_the_host() -> None:
    assert ELECTION_DAY_OPEN.stage is Stage.election_day
    with pytest.raises(e.TimeZoneNotInHost, match="Europe/Berlin"):
        from domain.submissions import register_stations

        register_stations(
            {},
            [PollingStation(station_id="X", locality="Y", time_zone="Europe/Berlin")],
            host_country="KZ",
        )


def test_a_short_interval_entered_late_opens_one_cycle_not_one_per_missed_step() -> None:
    """Seconds-long cycles counted from 2021: the next opening is now's, not 2021's."""
    origin = datetime(2021, 1, 14, 18, 0, tzinfo=UTC)
    now = datetime(2026, 11, 30, 12, 0, 0, 500_000, tzinfo=UTC)
    interval, window = timedelta(seconds=1), timedelta(days=60)
    following = next_cycle_opening(origin, origin, interval, window, now)
    assert now - interval < following <= now
    assert next_cycle_opening(origin, following, interval, window, now) > now


def test_a_visit_by_command_is_judged_in_its_stations_zone_whichever_path() -> None:
    """Aqtau (UTC+5 in 2021) in a mission on Almaty's time (UTC+6): counting until 11:30 in
    Aqtau on the morning after is within the grace; the workflow's rules leave the dates
    to the intake, which reads them in the station's zone, as it does for a report."""
    from intake.commands import visit_report

    visit = _visit(Phase.counting, "2021-01-11T11:00+05:00", "2021-01-11T11:30+05:00")
    visit = visit.model_copy(update={"station_id": "AQ-1", "locality": "Aqtau"})
    assert decide(ELECTION_DAY_OPEN, visit, now=NOW, intake_visits=True) == []
    stations = [PollingStation(station_id="AQ-1", locality="Aqtau", time_zone="Asia/Aqtau")]
    context = IntakeContext.of(ELECTION_DAY_OPEN, stations)
    recorded = admit(context, visit_report("tc-kz-2021", visit))
    assert local(recorded.departed_at, "Asia/Aqtau").hour == 11  # type: ignore[union-attr]
    naive = visit.model_copy(update={"departed_at": datetime(2021, 1, 11, 11, 30)})
    again = admit(context, visit_report("tc-kz-2021", naive))
    assert again.departed_at == recorded.departed_at  # type: ignore[union-attr]
    late = visit.model_copy(update={"departed_at": datetime(2021, 1, 11, 12, 30)})
    with pytest.raises(e.VisitNotOnElectionDay, match="Asia/Aqtau"):
        admit(context, visit_report("tc-kz-2021", late))


def test_a_stations_file_takes_a_time_zone_column_and_refuses_unknown_ones(
    tmp_path: Path,
) -> None:
    from cli.commands import InputError
    from cli.election_day import read_stations

    listing = tmp_path / "stations.csv"
    listing.write_text("station_id,locality,time_zone\nAQ-1,Aqtau,Asia/Aqtau\n", "utf-8")
    assert read_stations(listing)[0].time_zone == "Asia/Aqtau"
    listing.write_text("station_id,locality,zone\nAQ-1,Aqtau,Asia/Aqtau\n", "utf-8")
    with pytest.raises(InputError, match="zone"):
        read_stations(listing)
