"""One test per rule of the mission's ``decide``: what it refuses, and what it still allows.

States are built by folding the seed mission's commands (``cli.seed``) up to a stage; each
refusal is checked for its ``DomainError`` subclass, the ``"<rule>: "`` prefix of its
message, the thing it names, and an unchanged state.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime

import pytest
from builders import meeting, member, nominate
from pydantic import BaseModel

from cli import seed
from domain import Mission, Profile, Stage, decide, fold, text_sha256
from domain import commands as c
from domain import errors as e
from domain import events as ev
from domain.commands import Command
from domain.errors import DomainError
from domain.events import Event
from domain.state import ObserverStatus
from domain.values import (
    DateWindow,
    ObserverRole,
    Phase,
    PhaseChecklist,
    Recipient,
    RecipientKind,
)

NOW = datetime(2021, 1, 5, 12, 0, tzinfo=UTC)
MISSION_ID = "tc-kz-2021"
SEED: list[Command] = seed.mission(MISSION_ID)
E = seed.ELECTION_DAY
HOM = seed.HEAD_OF_MISSION
SEED_DRAFT = next(cmd for cmd in SEED if isinstance(cmd, c.DraftStatement))
SHA = text_sha256(SEED_DRAFT.text)
OTHER_SHA = text_sha256("A different statement text.")


# -- helpers ----------------------------------------------------------------------------------


def events_of(state: Mission, command: Command) -> list[Event]:
    return decide(state, command, now=NOW)


def apply(state: Mission, command: Command) -> Mission:
    return fold(events_of(state, command), state)


def run(commands: Sequence[Command], state: Mission | None = None) -> Mission:
    current = state or Mission()
    for command in commands:
        current = apply(current, command)
    return current


def before(kind: type[BaseModel], *, skip: int = 0, commands: Sequence[Command] = SEED) -> Mission:
    """The state just before the ``skip``-th (0-based) command of type ``kind``."""
    prefix: list[Command] = []
    seen = 0
    for command in commands:
        if isinstance(command, kind):
            if seen == skip:
                return run(prefix)
            seen += 1
        prefix.append(command)
    raise AssertionError(f"no command {kind.__name__} #{skip} in the list")


def rule_name(error: type[DomainError]) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", error.__name__).lower()


def refuse(state: Mission, command: Command, error: type[DomainError], *named: str) -> DomainError:
    """Assert ``command`` is refused with exactly ``error``, naming ``named``, state intact."""
    snapshot = state.model_copy(deep=True)
    with pytest.raises(DomainError) as caught:
        decide(state, command, now=NOW)
    err = caught.value
    assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
    assert err.rule == rule_name(error)
    assert str(err).startswith(f"{rule_name(error)}: "), str(err)
    for name in named:
        assert name in err.message, f"{name!r} not named in {err.message!r}"
    assert state == snapshot
    return err


def visit(
    visit_id: str,
    arrived_at: datetime,
    departed_at: datetime,
    *,
    team: int = 4,
    phases: Sequence[Phase] = (Phase.voting, Phase.counting),
) -> c.RecordStationVisit:
    return seed.station_visit(14, team=team).model_copy(
        update={
            "visit_id": visit_id,
            "arrived_at": arrived_at,
            "departed_at": departed_at,
            "checklists": [PhaseChecklist(phase=p) for p in phases],
        }
    )


def registration(**update: object) -> c.RegisterInvitation:
    return seed.registration(MISSION_ID).model_copy(update=update)


def limited_mission() -> list[Command]:
    """A limited-profile (LEOM) mission: needs assessment, long-term observers, interim
    report, final report, on the seed's dates."""
    statement = c.DraftStatement(draft_id="statement-1", title="Preliminary", text="Findings.")
    sha = text_sha256(statement.text)
    return [
        registration(profile=Profile.limited),
        c.RecordNeedsAssessment(conducted_on=date(2020, 11, 20), summary="A LEOM is needed."),
        c.AppointHeadOfMission(name=HOM, title="Head of mission"),
        nominate("az-lto", role=ObserverRole.long_term_observer),
        c.AcceptObserver(observer_id="az-lto"),
        c.FormTeam(team_id="team-1", observer_ids=["az-lto"]),
        c.DeployMission(deployed_on=date(2021, 1, 6)),
        c.PublishInterimReport(
            report_id="interim-1", published_on=date(2021, 1, 7), summary="Campaign calm."
        ),
        c.OpenElectionDay(),
        seed.station_visit(1, team=1),
        c.CloseElectionDay(),
        statement,
        c.ApproveStatement(draft_id="statement-1", text_sha256=sha, approved_by=HOM),
        c.PublishStatement(draft_id="statement-1", text_sha256=sha, published_on=date(2021, 1, 11)),
        c.PublishFinalReport(
            report_id="final-1", published_on=date(2021, 3, 8), summary="Final report."
        ),
        c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS),
    ]


# -- the seed as a whole ----------------------------------------------------------------------


def test_seed_mission_folds_to_closed_with_14_visits() -> None:
    """The whole seed mission is accepted and folds to a closed mission with 14 visits."""
    state = run(SEED)
    assert state.stage is Stage.closed
    assert len(state.visits) == 14
    assert len(state.stations_visited) == 14
    assert state.conflicting_stations == {}
    assert state.publication is not None and state.publication.text_sha256 == SHA
    assert set(state.recommendations) == {"R1", "R2", "R3"}
    assert state.version == len(SEED) - 1  # the polling stations are the intake's


def test_decide_never_mutates_the_input_state() -> None:
    """decide leaves its input state equal to a deep copy taken before, accepted or refused."""
    state = Mission()
    refused_probe = c.OpenElectionDay()
    for command in SEED:
        for probe in (command, refused_probe):
            snapshot = state.model_copy(deep=True)
            with contextlib.suppress(DomainError):
                decide(state, probe, now=NOW)
            assert state == snapshot
        state = apply(state, command)


# -- invitation -------------------------------------------------------------------------------


def test_mission_not_registered() -> None:
    """A command other than the invitation on an empty mission is refused."""
    refuse(
        Mission(),
        c.AppointHeadOfMission(name=HOM, title="DSG"),
        e.MissionNotRegistered,
        "appoint a head of mission",
    )


def test_mission_already_registered() -> None:
    """A second invitation for a registered mission is refused, naming the mission."""
    state = run(SEED[:1])
    refuse(state, seed.registration("another-id"), e.MissionAlreadyRegistered, MISSION_ID)


def test_host_among_member_states() -> None:
    """The host country cannot be one of the participating member states."""
    cmd = registration(member_states=["AZ", "KZ", "TR"])
    refuse(Mission(), cmd, e.HostAmongMemberStates, "KZ")


def test_duplicate_member_state_at_registration() -> None:
    """A member state listed twice in the invitation is refused as a duplicate id."""
    cmd = registration(member_states=["AZ", "TR", "AZ"])
    refuse(Mission(), cmd, e.DuplicateId, "AZ")


def test_election_outside_mission_window() -> None:
    """Election day must fall inside the mission window."""
    cmd = registration(mission_window=DateWindow(start=date(2021, 1, 1), end=date(2021, 1, 9)))
    refuse(Mission(), cmd, e.ElectionOutsideMissionWindow, "2021-01-10", "2021-01-09")


def test_role_quota_for_role_not_in_profile() -> None:
    """A short-term mission cannot set a quota for long-term observers."""
    cmd = registration(role_quotas={ObserverRole.long_term_observer: 3})
    refuse(Mission(), cmd, e.RoleNotInProfile, "long_term_observer", "short_term")


# -- formation --------------------------------------------------------------------------------


def test_observer_from_host_country() -> None:
    """The host country (KZ) never supplies observers."""
    state = before(c.NominateObserver)
    refuse(state, nominate("kz-1", "KZ"), e.ObserverFromHostCountry, "KZ", "Observer kz-1")


def test_member_state_not_participating() -> None:
    """Only states asked to take part nominate observers."""
    state = before(c.NominateObserver)
    refuse(state, nominate("ru-1", "RU"), e.MemberStateNotParticipating, "RU")


def test_role_not_in_profile_on_nomination() -> None:
    """A short-term mission has no long-term observer role."""
    state = before(c.NominateObserver)
    cmd = nominate("az-lto", role=ObserverRole.long_term_observer)
    refuse(state, cmd, e.RoleNotInProfile, "long_term_observer", "short_term")


@pytest.mark.parametrize(
    ("coc", "coi", "missing", "signed"),
    [
        (False, True, "code-of-conduct pledge", "conflict-of-interest"),
        (True, False, "conflict-of-interest declaration", "code-of-conduct"),
        (False, False, "code-of-conduct pledge and conflict-of-interest declaration", None),
    ],
)
def test_pledge_missing_on_accept(coc: bool, coi: bool, missing: str, signed: str | None) -> None:
    """An observer is accepted only with both the code of conduct and the COI declaration."""
    state = apply(before(c.NominateObserver), nominate("az-x", coc=coc, coi=coi))
    err = refuse(state, c.AcceptObserver(observer_id="az-x"), e.PledgeMissing, "'az-x'", missing)
    if signed is not None:
        assert signed not in err.message


def test_role_quota_exceeded() -> None:
    """A third short-term observer is refused when the quota is two."""
    commands = [registration(role_quotas={ObserverRole.short_term_observer: 2}), *SEED[1:]]
    state = before(c.AcceptObserver, skip=2, commands=commands)
    assert len(state.accepted_observers()) == 2
    refuse(
        state,
        c.AcceptObserver(observer_id="kg-cec"),
        e.RoleQuotaExceeded,
        "2",
        "short_term_observer",
    )


def test_unknown_observer() -> None:
    """Accepting an observer never nominated is an unknown reference."""
    state = before(c.AcceptObserver)
    refuse(state, c.AcceptObserver(observer_id="ghost"), e.UnknownReference, "'ghost'")


def test_already_accepted() -> None:
    """An observer cannot be accepted twice."""
    state = before(c.FormTeam)
    refuse(state, c.AcceptObserver(observer_id="az-cec"), e.AlreadyAccepted, "'az-cec'")


def test_withdrawn_observer_not_active() -> None:
    """A withdrawn observer can be neither accepted nor withdrawn again."""
    state = apply(before(c.AcceptObserver), c.WithdrawObserver(observer_id="az-cec", reason="ill"))
    assert state.observers["az-cec"].status is ObserverStatus.withdrawn
    refuse(state, c.AcceptObserver(observer_id="az-cec"), e.ObserverNotActive, "'az-cec'")
    again = c.WithdrawObserver(observer_id="az-cec", reason="ill")
    refuse(state, again, e.ObserverNotActive, "'az-cec'")


def test_team_member_not_accepted() -> None:
    """Only accepted observers join a team."""
    state = before(c.AcceptObserver)
    cmd = c.FormTeam(team_id="team-x", observer_ids=["az-cec"])
    refuse(state, cmd, e.ObserverNotActive, "'az-cec'")


def test_no_accepted_observers_on_deploy() -> None:
    """The mission deploys only with at least one accepted observer."""
    state = before(c.NominateObserver)
    refuse(state, c.DeployMission(deployed_on=date(2021, 1, 6)), e.NoAcceptedObservers)


@pytest.mark.parametrize(
    ("kind", "command", "reused"),
    [
        (c.AcceptObserver, nominate("az-cec"), "'az-cec'"),
        (c.DeployMission, c.FormTeam(team_id="team-1", observer_ids=["az-cec"]), "'team-1'"),
        (
            c.OpenElectionDay,
            meeting("mfa-deputy-minister", date(2021, 1, 7)),
            "'mfa-deputy-minister'",
        ),
        (c.CloseElectionDay, seed.station_visit(1, team=1), "'visit-01'"),
        (
            c.ApproveStatement,
            c.DraftStatement(draft_id="statement-1", title="Again", text="Other text."),
            "'statement-1'",
        ),
        (
            c.SendRecommendations,
            c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS[:1]),
            "'R1'",
        ),
    ],
    ids=["observer", "team", "meeting", "visit", "draft", "recommendation"],
)
def test_reused_id(kind: type[BaseModel], command: Command, reused: str) -> None:
    """An observer, team, meeting, visit, draft or recommendation id cannot be reused."""
    refuse(before(kind), command, e.DuplicateId, reused)


# -- stages -----------------------------------------------------------------------------------


def test_stage_skipped() -> None:
    """Opening election day while still forming skips a stage."""
    state = before(c.DeployMission)
    assert state.stage is Stage.forming
    refuse(
        state,
        c.OpenElectionDay(),
        e.StageSkipped,
        "open election day",
        "forming",
        "pre_election",
    )


def test_stage_over() -> None:
    """A pre-election meeting cannot be recorded once election day is open."""
    state = before(c.RecordStationVisit)
    assert state.stage is Stage.election_day
    refuse(
        state,
        meeting("late", date(2021, 1, 8)),
        e.StageOver,
        "record a meeting",
        "election_day",
        "pre_election",
    )


CLOSED_PROBES: list[Command] = [
    c.CancelMission(reason="too late"),
    c.CloseMission(),
    c.AppointHeadOfMission(name="Someone", title="New head"),
    seed.station_visit(1, team=1),
    c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS[:1]),
    c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 2, 1)),
]


@pytest.mark.parametrize("command", CLOSED_PROBES, ids=lambda cmd: cmd.type)
def test_any_command_on_closed_mission(command: Command) -> None:
    """A closed mission whose follow-up has ended refuses every command, naming it."""
    ended = run([*SEED, c.EndFollowUp(reason="review complete")])
    refuse(ended, command, e.MissionClosed, MISSION_ID)


def test_only_follow_up_continues_on_a_closed_mission() -> None:
    """While its follow-up runs, a closed mission takes follow-up commands only."""
    closed = run(SEED)
    assert closed.stage is Stage.closed and closed.follow_up_active
    rated = apply(
        closed,
        c.RateImplementation(
            recommendation_id="R1", rating="partially", rated_on=date(2021, 7, 1), basis="ramps"
        ),
    )
    assert [r.rating.value for r in rated.ratings["R1"]] == ["partially"]
    refuse(closed, c.AppointHeadOfMission(name="X", title="Y"), e.MissionClosed, MISSION_ID)


@pytest.mark.parametrize("command", CLOSED_PROBES, ids=lambda cmd: cmd.type)
def test_any_command_on_cancelled_mission(command: Command) -> None:
    """A cancelled mission refuses every command, naming the mission and the reason."""
    state = apply(before(c.OpenElectionDay), c.CancelMission(reason="invitation withdrawn"))
    assert state.stage is Stage.cancelled
    refuse(state, command, e.MissionCancelled, MISSION_ID, "invitation withdrawn")


def test_registration_on_closed_mission() -> None:
    """Even a closed mission's id cannot be registered again."""
    refuse(run(SEED), seed.registration(MISSION_ID), e.MissionAlreadyRegistered, MISSION_ID)


# -- pre-election -----------------------------------------------------------------------------


def test_meeting_outside_mission_window() -> None:
    """A meeting before the mission window opens is refused."""
    state = before(c.RecordMeeting)
    cmd = meeting("early", date(2021, 1, 5))
    refuse(state, cmd, e.MeetingOutsideMissionWindow, "'early'", "2021-01-05", "2021-01-06")


def test_meeting_on_election_day() -> None:
    """A pre-election meeting cannot be held on election day itself."""
    state = before(c.RecordMeeting)
    refuse(state, meeting("on-e", E), e.MeetingNotBeforeElectionDay, "'on-e'", "2021-01-10")


def test_meeting_after_election_day() -> None:
    """A meeting after election day is refused even inside a window that extends past E."""
    window = DateWindow(start=date(2021, 1, 6), end=date(2021, 1, 12))
    commands = [registration(mission_window=window), *SEED[1:]]
    state = before(c.RecordMeeting, commands=commands)
    cmd = meeting("after-e", date(2021, 1, 11))
    refuse(state, cmd, e.MeetingNotBeforeElectionDay, "'after-e'", "2021-01-11")


def test_postponement_not_later() -> None:
    """A postponement to the same day or an earlier one is refused."""
    state = before(c.RecordMeeting)
    for new_date in (E, date(2021, 1, 9)):
        cmd = c.PostponeElection(new_date=new_date, reason="not really")
        refuse(state, cmd, e.PostponementNotLater, str(new_date), "2021-01-10")


def test_postponement_moves_election_day_and_window() -> None:
    """Postponing moves E and the window; a meeting valid only in the new window is accepted."""
    state = before(c.RecordMeeting)
    late_meeting = meeting("new-window", date(2021, 1, 14))
    refuse(state, late_meeting, e.MeetingOutsideMissionWindow, "'new-window'")

    new_e = date(2021, 1, 17)
    events = events_of(state, c.PostponeElection(new_date=new_e, reason="pandemic"))
    assert len(events) == 1 and isinstance(events[0], ev.ElectionPostponed)
    postponed = fold(events, state)
    assert postponed.election is not None and postponed.election.date == new_e
    assert postponed.mission_window == DateWindow(start=date(2021, 1, 13), end=new_e)
    assert postponed.postponements == 1

    accepted = apply(postponed, late_meeting)
    assert "new-window" in accepted.meetings
    refuse(postponed, meeting("old-window", date(2021, 1, 7)), e.MeetingOutsideMissionWindow)


# -- profiles ---------------------------------------------------------------------------------


def test_needs_assessment_not_in_short_term_profile() -> None:
    """A short-term mission has no needs assessment."""
    state = run(SEED[:1])
    cmd = c.RecordNeedsAssessment(conducted_on=date(2020, 12, 1), summary="Assessed.")
    refuse(state, cmd, e.StepNotInProfile, "short_term", "needs assessment")


def test_interim_report_not_in_short_term_profile() -> None:
    """A short-term mission publishes no interim report."""
    state = before(c.RecordMeeting)
    cmd = c.PublishInterimReport(report_id="i-1", published_on=date(2021, 1, 7), summary="Calm.")
    refuse(state, cmd, e.StepNotInProfile, "short_term", "interim report")


def test_limited_profile_needs_assessment_before_head_of_mission() -> None:
    """A limited mission records its needs assessment before a head of mission is appointed."""
    state = before(c.RecordNeedsAssessment, commands=limited_mission())
    cmd = c.AppointHeadOfMission(name=HOM, title="Head")
    refuse(state, cmd, e.StepMissing, "limited", "needs assessment")


def test_limited_profile_interim_report_before_election_day() -> None:
    """A limited mission publishes its interim report before election day opens."""
    state = before(c.PublishInterimReport, commands=limited_mission())
    assert state.stage is Stage.pre_election
    refuse(state, c.OpenElectionDay(), e.StepMissing, "limited", "interim report")


def test_limited_profile_final_report_before_recommendations() -> None:
    """A limited mission issues recommendations only with (after) its final report."""
    commands = limited_mission()
    state = before(c.PublishFinalReport, commands=commands)
    assert state.publication is not None
    cmd = c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS)
    refuse(state, cmd, e.StepMissing, "limited", "final report")
    assert run(commands).stage is Stage.follow_up


def test_final_report_before_statement() -> None:
    """The final report follows the published statement."""
    state = before(c.PublishStatement)
    cmd = c.PublishFinalReport(report_id="f-1", published_on=date(2021, 3, 1), summary="Final.")
    refuse(state, cmd, e.StepMissing, "final report", "statement")


# -- election day -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        seed.the_2020_slip(),
        seed.station_visit(1, team=1, on=date(2021, 1, 9)),
        seed.station_visit(1, team=1, on=date(2021, 1, 11)),
    ],
    ids=["2020-slip", "day-before", "day-after"],
)
def test_visit_not_on_election_day(command: c.RecordStationVisit) -> None:
    """A station visit dated other than E is refused, the seed's "10 January 2020" included."""
    state = before(c.RecordStationVisit)
    day = str(command.arrived_at.date())
    refuse(state, command, e.VisitNotOnElectionDay, repr(command.visit_id), day, "2021-01-10")


def test_seed_2020_slip_names_2020() -> None:
    """The seed's slip is refused as dated 2020-01-10, against election day 2021-01-10."""
    state = before(c.RecordStationVisit)
    err = refuse(state, seed.the_2020_slip(), e.VisitNotOnElectionDay, "'visit-slip'")
    assert "dated 2020-01-10" in err.message and "election day is 2021-01-10" in err.message


def test_counting_visit_past_midnight_accepted() -> None:
    """A counting visit from the evening of E to 02:30 on E+1 is accepted."""
    state = before(c.RecordStationVisit)
    cmd = visit("late-count", datetime(2021, 1, 10, 20, 0), datetime(2021, 1, 11, 2, 30))
    events = events_of(state, cmd)
    assert [type(x) for x in events] == [ev.StationVisitRecorded]
    assert "late-count" in fold(events, state).visits


def test_counting_only_visit_arriving_after_midnight_accepted() -> None:
    """A counting-only visit may arrive after midnight, on the morning after E."""
    state = before(c.RecordStationVisit)
    cmd = visit(
        "tabulation",
        datetime(2021, 1, 11, 0, 30),
        datetime(2021, 1, 11, 3, 0),
        phases=[Phase.counting, Phase.tabulation],
    )
    assert "tabulation" in apply(state, cmd).visits


def test_voting_visit_arriving_after_midnight_refused() -> None:
    """Only a counting visit may start on the morning after E; a voting visit may not."""
    state = before(c.RecordStationVisit)
    cmd = visit("voting-late", datetime(2021, 1, 11, 0, 30), datetime(2021, 1, 11, 1, 0))
    refuse(state, cmd, e.VisitNotOnElectionDay, "'voting-late'", "2021-01-11")


def test_counting_visit_ending_after_noon_next_day_refused() -> None:
    """A counting visit ending after noon on E+1 is refused."""
    state = before(c.RecordStationVisit)
    cmd = visit("too-late", datetime(2021, 1, 10, 20, 0), datetime(2021, 1, 11, 12, 30))
    refuse(state, cmd, e.VisitNotOnElectionDay, "'too-late'", "2021-01-11T12:30", "12:00")


def test_visit_times_inverted() -> None:
    """A visit cannot depart before it arrives."""
    state = before(c.RecordStationVisit)
    cmd = visit("inverted", datetime(2021, 1, 10, 11, 0), datetime(2021, 1, 10, 10, 0))
    refuse(state, cmd, e.VisitTimesInverted, "'inverted'", "10:00", "11:00")


def test_visit_by_unknown_team() -> None:
    """A visit by a team never formed is an unknown reference."""
    state = before(c.RecordStationVisit)
    cmd = seed.station_visit(1, team=9)
    refuse(state, cmd, e.UnknownReference, "'team-9'")


def test_visit_by_team_without_accepted_observer() -> None:
    """A team whose observers were all withdrawn cannot report a visit."""
    state = run(
        [
            c.WithdrawObserver(observer_id="az-cec", reason="ill"),
            c.WithdrawObserver(observer_id="kg-diplomat", reason="recalled"),
        ],
        before(c.RecordStationVisit),
    )
    refuse(state, seed.station_visit(1, team=1), e.TeamNotActive, "'team-1'")


def test_two_teams_at_one_station_conflict_and_both_visits_kept() -> None:
    """A second team reporting the same station flags a conflict; both visits are kept."""
    state = before(c.CloseElectionDay)
    first = state.visits["visit-01"]
    second = seed.station_visit(1, team=2).model_copy(update={"visit_id": "visit-15"})
    events = events_of(state, second)
    assert [type(x) for x in events] == [ev.StationVisitRecorded, ev.StationReportsConflicted]
    conflict = events[1]
    assert isinstance(conflict, ev.StationReportsConflicted)
    assert conflict.station_id == first.station_id == "NS-101"
    assert conflict.visit_ids == ["visit-01", "visit-15"]
    assert conflict.team_ids == ["team-1", "team-2"]
    after = fold(events, state)
    assert after.visits["visit-01"] == first
    assert after.visits["visit-15"].team_id == "team-2"
    assert after.conflicting_stations == {"NS-101": ["visit-01", "visit-15"]}


def test_same_team_revisiting_a_station_is_no_conflict() -> None:
    """One team visiting a station twice is not a conflict."""
    state = before(c.CloseElectionDay)
    again = seed.station_visit(1, team=1).model_copy(update={"visit_id": "visit-15"})
    events = events_of(state, again)
    assert [type(x) for x in events] == [ev.StationVisitRecorded]


def test_no_station_visits_on_close() -> None:
    """Election day closes only after at least one station visit."""
    refuse(before(c.RecordStationVisit), c.CloseElectionDay(), e.NoStationVisits)


# -- statement --------------------------------------------------------------------------------


def test_publish_before_election_day_closed() -> None:
    """Publishing while election day is still open is refused."""
    state = before(c.CloseElectionDay)
    cmd = c.PublishStatement(draft_id="statement-1", text_sha256=SHA, published_on=E)
    refuse(state, cmd, e.ElectionDayNotClosed, "publish the statement", "election_day")


def test_draft_before_election_day_closed() -> None:
    """Drafting the statement before election day (here: pre-election) is refused."""
    state = before(c.OpenElectionDay)
    cmd = c.DraftStatement(draft_id="early", title="Early", text="Too early.")
    refuse(state, cmd, e.ElectionDayNotClosed, "draft the statement", "pre_election")


def test_publish_without_approval() -> None:
    """A draft nobody approved cannot be published."""
    state = before(c.ApproveStatement)
    cmd = c.PublishStatement(
        draft_id="statement-1", text_sha256=SHA, published_on=date(2021, 1, 11)
    )
    refuse(state, cmd, e.UnapprovedDraft, "approved no draft")


def test_publish_other_draft_than_approved() -> None:
    """Publishing a draft id other than the approved one is refused."""
    other = c.DraftStatement(draft_id="statement-2", title="Other", text="A different text.")
    state = apply(before(c.PublishStatement), other)
    cmd = c.PublishStatement(
        draft_id="statement-2",
        text_sha256=text_sha256(other.text),
        published_on=date(2021, 1, 11),
    )
    refuse(state, cmd, e.UnapprovedDraft, "'statement-2'", "'statement-1'")


def test_publish_other_text_than_approved() -> None:
    """Publishing the approved draft id with another text's sha is refused."""
    state = before(c.PublishStatement)
    cmd = c.PublishStatement(
        draft_id="statement-1", text_sha256=OTHER_SHA, published_on=date(2021, 1, 11)
    )
    refuse(state, cmd, e.UnapprovedDraft, "'statement-1'", OTHER_SHA[:12], SHA[:12])


def test_approval_by_someone_other_than_head_of_mission() -> None:
    """Only the head of mission approves the statement."""
    state = before(c.ApproveStatement)
    cmd = c.ApproveStatement(draft_id="statement-1", text_sha256=SHA, approved_by="Baghdad Amreyev")
    refuse(state, cmd, e.ApproverNotHeadOfMission, "Baghdad Amreyev", HOM)


def test_approval_with_wrong_sha() -> None:
    """An approval must name the exact text (sha256) of the draft."""
    state = before(c.ApproveStatement)
    cmd = c.ApproveStatement(draft_id="statement-1", text_sha256=OTHER_SHA, approved_by=HOM)
    refuse(state, cmd, e.DraftTextMismatch, "'statement-1'", OTHER_SHA, SHA)


def test_approval_of_unknown_draft() -> None:
    """Approving a draft that does not exist is an unknown reference."""
    state = before(c.ApproveStatement)
    cmd = c.ApproveStatement(draft_id="statement-9", text_sha256=SHA, approved_by=HOM)
    refuse(state, cmd, e.UnknownReference, "'statement-9'")


def test_publication_dated_before_election_day() -> None:
    """A statement cannot be published before election day."""
    state = before(c.PublishStatement)
    cmd = c.PublishStatement(draft_id="statement-1", text_sha256=SHA, published_on=date(2021, 1, 9))
    refuse(state, cmd, e.PublishedBeforeElectionDay, "2021-01-09", "2021-01-10")


def test_publication_on_election_day_accepted() -> None:
    """Publication on election day itself is allowed (on or after E)."""
    state = before(c.PublishStatement)
    cmd = c.PublishStatement(draft_id="statement-1", text_sha256=SHA, published_on=E)
    published = apply(state, cmd)
    assert published.publication is not None and published.publication.published_on == E


def test_already_published() -> None:
    """Once published, the statement is neither published again nor redrafted."""
    state = before(c.IssueRecommendations)
    again = c.PublishStatement(
        draft_id="statement-1", text_sha256=SHA, published_on=date(2021, 1, 12)
    )
    refuse(state, again, e.AlreadyPublished, "2021-01-11")
    redraft = c.DraftStatement(draft_id="statement-2", title="Later", text="Later text.")
    refuse(state, redraft, e.AlreadyPublished, "2021-01-11", "draft the statement")


# -- recommendations --------------------------------------------------------------------------


def test_recommendations_before_statement_in_early_stage() -> None:
    """Recommendations cannot be issued in the pre-election stage."""
    state = before(c.OpenElectionDay)
    cmd = c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS)
    refuse(state, cmd, e.RecommendationsBeforeStatement, "pre_election")


def test_recommendations_before_statement_published() -> None:
    """Recommendations cannot be issued in the statement stage before publication."""
    state = before(c.PublishStatement)
    assert state.stage is Stage.statement
    cmd = c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS)
    refuse(state, cmd, e.RecommendationsBeforeStatement, "published")


def test_send_to_non_participating_member_state() -> None:
    """Recommendations go to participating member states only (not RU, not the host as one)."""
    state = before(c.SendRecommendations)
    for code in ("RU", "KZ"):
        cmd = c.SendRecommendations(recipients=[member(code)], sent_on=date(2021, 1, 15))
        refuse(state, cmd, e.RecipientNotEligible, code)


def test_send_to_wrong_host_country() -> None:
    """A host-country recipient must be the mission's host."""
    state = before(c.SendRecommendations)
    wrong = Recipient(kind=RecipientKind.host_country, name="UZ")
    cmd = c.SendRecommendations(recipients=[wrong], sent_on=date(2021, 1, 15))
    refuse(state, cmd, e.RecipientNotEligible, "UZ", "KZ")


def test_send_twice_to_one_recipient() -> None:
    """Recommendations already sent to a recipient are not sent to it again."""
    state = before(c.AcknowledgeRecommendations)
    cmd = c.SendRecommendations(recipients=[member("AZ")], sent_on=date(2021, 1, 20))
    refuse(state, cmd, e.AlreadySent, "AZ", "2021-01-15")


def test_recipient_listed_twice_in_one_sending() -> None:
    """One sending naming a recipient twice is refused as a duplicate."""
    state = before(c.SendRecommendations)
    cmd = c.SendRecommendations(recipients=[member("AZ"), member("AZ")], sent_on=date(2021, 1, 15))
    refuse(state, cmd, e.DuplicateId, "member_state:AZ")


def test_acknowledge_not_sent() -> None:
    """A recipient the recommendations were never sent to cannot acknowledge them."""
    state = before(c.SendRecommendations)
    cmd = c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 1, 18))
    refuse(state, cmd, e.NotSent, "AZ")


def test_acknowledge_before_sent() -> None:
    """An acknowledgement dated before the sending is refused."""
    state = before(c.AcknowledgeRecommendations)
    cmd = c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 1, 14))
    refuse(state, cmd, e.NotSent, "2021-01-14", "2021-01-15")


def test_already_acknowledged() -> None:
    """A recipient acknowledges only once."""
    state = before(c.CloseMission)
    cmd = c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 1, 20))
    refuse(state, cmd, e.AlreadyAcknowledged, "AZ", "2021-01-18")


def test_recommendations_sent_before_the_statement_was_published() -> None:
    """Recommendations cannot be dated as sent before the statement they follow."""
    state = before(c.SendRecommendations)
    cmd = c.SendRecommendations(recipients=seed.RECIPIENTS[:1], sent_on=date(2021, 1, 10))
    refuse(state, cmd, e.RecommendationsBeforeStatement, "2021-01-10", "2021-01-11")


def test_country_codes_are_normalised() -> None:
    """A lower-case or padded ISO code is read as the code, not refused."""
    cmd = nominate("az-x", " az ")
    assert cmd.member_state == "AZ"
    with pytest.raises(ValueError, match="pattern"):
        nominate("az-y", "AZE")


def test_visit_times_of_mixed_kinds_are_read_alike() -> None:
    """One local and one offset-carrying time: the local one is read in host time, so both
    are instants and compare (08:30 in Almaty is 02:30Z)."""
    state = before(c.RecordStationVisit)
    visit = seed.station_visit(1, team=1)
    mixed = visit.model_copy(update={"departed_at": datetime(2021, 1, 10, 2, 30, tzinfo=UTC)})
    [recorded] = events_of(state, mixed)
    assert isinstance(recorded, ev.StationVisitRecorded)
    assert recorded.arrived_at == datetime(2021, 1, 10, 0, 45, tzinfo=UTC)
    late = visit.model_copy(update={"departed_at": datetime(2021, 1, 10, 0, 30, tzinfo=UTC)})
    refuse(state, late, e.VisitTimesInverted, "'visit-01'")


@pytest.mark.parametrize("control", ["\u202a", "\u202d", "\u202e", "\u2066", "\u2067", "\u2069"])
def test_text_that_would_display_in_another_order_is_refused(control: str) -> None:
    """A directional override or isolate makes a text read otherwise than it is recorded
    (a head of mission approving a statement, a name on a list): refused, named."""
    with pytest.raises(
        ValueError, match=f"directional formatting character \\(U\\+{ord(control):04X}"
    ):
        c.DraftStatement(draft_id="d1", title="Statement", text=f"Line one\n{control}evil")
    with pytest.raises(ValueError, match="directional formatting"):
        c.AppointHeadOfMission(name=f"Name{control}", title="Head")
    # Right-to-left scripts need none of them.
    assert c.DraftStatement(draft_id="d1", title="بيان", text="שלום עולם").text == "שלום עולם"


def test_the_commands_offered_now_are_those_whose_rules_the_content_cannot_change() -> None:
    """What a form may offer: a stage's commands, less those refused whatever they say
    (the statement before election day closes, recommendations before the statement, a
    step the profile has not, an approval without a draft)."""
    from domain.decide import commands_allowed

    commands = seed.mission("m-offered")
    registered = run(commands[:1])
    offered = set(commands_allowed(registered))
    assert c.AppointHeadOfMission in offered
    assert not offered & {
        c.DraftStatement,
        c.ApproveStatement,
        c.PublishStatement,
        c.IssueRecommendations,
        c.RecordNeedsAssessment,
    }
    until_draft = next(i for i, x in enumerate(commands) if isinstance(x, c.DraftStatement))
    closed = run(commands[:until_draft])
    offered = set(commands_allowed(closed))
    assert {c.DraftStatement, c.IssueRecommendations} <= offered
    assert not offered & {c.ApproveStatement, c.PublishStatement, c.RecordStationVisit}
    published = run(commands[: until_draft + 3])
    assert published.publication is not None
    assert c.DraftStatement not in commands_allowed(published)
