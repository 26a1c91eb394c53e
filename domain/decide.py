"""``decide``: check a command against the mission's rules and say which events it causes.

Pure: the time comes in as ``now``; ids are the caller's. The same function validates a
Temporal update, runs in unit tests and tells the CLI why a closed mission refuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from domain import commands as c
from domain import errors as e
from domain import events as ev
from domain.commands import Command
from domain.events import Event
from domain.host_time import aware, country_zones, local, shown
from domain.state import Mission, Observer, ObserverStatus, track_key
from domain.values import (
    LOCALITIES_LISTED,
    PROFILE_RULES,
    CitedFigure,
    DeadlineKind,
    DeliveryPurpose,
    IntakeProgress,
    Phase,
    RecipientKind,
    Stage,
)

COUNTING_GRACE = time(12, 0)
"""Counting may run past midnight: a visit may end (or, for counting only, begin) on the
morning after election day, up to this time."""

_OPEN = {s for s in Stage if s not in (Stage.closed, Stage.cancelled)}


def text_sha256(text: str) -> str:
    """The fingerprint by which a head of mission approves one exact statement text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def decide(
    state: Mission,
    command: Command,
    *,
    now: datetime,
    intake_drained: bool = True,
    repeats_refused: bool = True,
    host_time: bool = True,
    intake_visits: bool = False,
) -> list[Event]:
    """The events ``command`` causes on ``state``, or a ``DomainError`` naming the rule.

    Closing election day depends on what the intake holds: with ``intake_drained`` false
    (before the intake has been drained and counted) only its other rules are checked, and
    no events are returned. ``repeats_refused`` false leaves out the rules that refuse an
    act done already (``already_approved``, ``already_appointed``), for histories recorded
    before them. ``host_time`` false judges times as they were written, for histories
    recorded before missions named their host's time zone; true reads every instant in
    the host's local time (a time without an offset is host-local) and refuses deadlines
    already past unless recorded without reminders. ``intake_visits`` true leaves a visit
    by command to the intake's rules (a registered station, dates in the station's own
    zone, conflicts and corrections, ``domain.submissions.admit``), as the mission
    workflow records it: only the mission's own rules (stage, team) are checked here."""
    if isinstance(command, c.RegisterInvitation):
        return _register(state, command, now, host_time=host_time)
    handler = _HANDLERS[type(command)]
    stages, name = _STAGES[type(command)]
    _require_stage(state, stages, name)
    if isinstance(command, c.CloseElectionDay) and not intake_drained:
        return []
    visit = isinstance(command, c.RecordStationVisit)
    if host_time:
        if not (visit and intake_visits):  # else read in the station's zone, by the intake
            command = in_host_time(command, state.time_zone)
        _refuse_past_deadline(command, now, state.time_zone)
    else:  # times as written: the record's zone plays no part
        state = state.model_copy(update={"time_zone": None})
    if isinstance(command, c.RecordStationVisit) and intake_visits:
        return _visiting_team(state, command)
    events = handler(state, command, now)
    if repeats_refused:
        _refuse_repeat(state, command)
    return events


def _refuse_repeat(state: Mission, command: Command) -> None:
    """An act that, done again, would record it twice: refused by its own rule."""
    match command:
        case c.AppointHeadOfMission():
            head = state.head_of_mission
            if head is not None and (head.name.casefold(), head.title) == (
                command.name.casefold(),
                command.title,
            ):
                raise e.AlreadyAppointed(
                    f"{head.name} is already the head of mission ({head.title})"
                )
        case c.ApproveStatement():
            approval = state.approval
            if approval is not None and (approval.draft_id, approval.text_sha256) == (
                command.draft_id,
                command.text_sha256,
            ):
                raise e.AlreadyApproved(
                    f"{approval.approved_by} approved draft {command.draft_id!r} on "
                    f"{approval.approved_at:%Y-%m-%d %H:%M} UTC; a draft is approved once"
                )


def in_host_time(command: Command, time_zone: str | None) -> Command:
    """``command`` with each time written without a UTC offset read as a local time in
    ``time_zone`` (the record then holds the instant, with its offset)."""
    local = {
        name: aware(value, time_zone)
        for name in type(command).model_fields
        if isinstance(value := getattr(command, name), datetime) and value.tzinfo is None
    }
    return command.model_copy(update=local) if local else command


_DEADLINES: dict[type, str] = {
    c.RequestNominations: "deadline",
    c.SendRecommendations: "acknowledge_by",
    c.RequestEvidence: "deadline",
}


def _refuse_past_deadline(command: Command, now: datetime, time_zone: str | None) -> None:
    """A deadline already past when it is set would send its reminders and escalate at
    once: refused, unless the command asks to record it without reminders (a mission
    entered after the fact)."""
    field = _DEADLINES.get(type(command))
    if field is None or not getattr(command, "reminders", True):
        return
    deadline = getattr(command, field)
    if deadline is not None and deadline <= now:
        raise e.DeadlinePassed(
            f"{field} {shown(deadline, time_zone)} is already past (now "
            f"{shown(now, time_zone)}): reminders would go out and escalate at once; set a "
            f"later {field}, or record it without reminders (reminders: false; "
            f"--no-reminders in the CLI)"
        )


def _require_stage(state: Mission, allowed: set[Stage], name: str) -> None:
    stage = state.stage
    if stage is None:
        raise e.MissionNotRegistered(f"no mission is registered here, so it cannot {name}")
    if stage is Stage.closed and not (stage in allowed and state.follow_up_ended_at is None):
        raise e.MissionClosed(f"mission {state.mission_id} is closed; cannot {name}")
    if stage is Stage.cancelled and stage not in allowed:
        raise e.MissionCancelled(
            f"mission {state.mission_id} was cancelled ({state.cancellation_reason}); cannot {name}"
        )
    if stage in allowed:
        return
    wanted = ", ".join(s.value for s in sorted(allowed, key=lambda s: s.order))
    if stage.order < min(s.order for s in allowed):
        raise e.StageSkipped(
            f"cannot {name} in stage {stage.value}: that belongs to stage {wanted}; "
            f"stages are not skipped"
        )
    raise e.StageOver(f"cannot {name} in stage {stage.value}: stage {wanted} is over")


def _unique(ids: Iterable[str], existing: Iterable[str], what: str) -> None:
    seen: set[str] = set(existing)
    for i in ids:
        if i in seen:
            raise e.DuplicateId(f"{what} id {i!r} is already used in this mission")
        seen.add(i)


def _election_day(state: Mission) -> date:
    assert state.election is not None
    return state.election.date


# -- invitation and formation --------------------------------------------------------------


def _register(
    state: Mission, cmd: c.RegisterInvitation, now: datetime, *, host_time: bool
) -> list[Event]:
    if state.stage is not None:
        raise e.MissionAlreadyRegistered(f"mission {state.mission_id} is already registered")
    time_zone = _host_zone(cmd) if host_time else cmd.time_zone
    if cmd.election.date not in cmd.mission_window:
        raise e.ElectionOutsideMissionWindow(
            f"election day {cmd.election.date} is outside the mission window "
            f"{cmd.mission_window.start}..{cmd.mission_window.end}"
        )
    if cmd.host_country in cmd.member_states:
        raise e.HostAmongMemberStates(
            f"{cmd.host_country} hosts the election and cannot be a participating member state"
        )
    _unique(cmd.member_states, [], "member state")
    roles = {role for role in cmd.role_quotas if role not in PROFILE_RULES[cmd.profile].roles}
    if roles:
        raise e.RoleNotInProfile(
            f"profile {cmd.profile.value} has no {', '.join(sorted(roles))} to set a quota for"
        )
    return [
        ev.InvitationRegistered(
            **cmd.model_dump(exclude={"type", "time_zone"}),
            registered_at=now,
            time_zone=time_zone,
        )
    ]


def _host_zone(cmd: c.RegisterInvitation) -> str:
    """The mission's zone: the one named, if the host uses it; else the host's only zone.
    A host with several zones in the time-zone database must name one."""
    zones = country_zones(cmd.host_country)
    if cmd.time_zone is not None:
        if zones and cmd.time_zone not in zones:
            raise e.TimeZoneNotInHost(
                f"time_zone {cmd.time_zone} is not a zone of {cmd.host_country} "
                f"(the time-zone database lists {', '.join(zones)})"
            )
        return cmd.time_zone
    if len(zones) == 1:
        return zones[0]
    if not zones:
        raise e.TimeZoneRequired(
            f"the time-zone database lists no zone for {cmd.host_country}: name the "
            f"mission's time_zone (an IANA zone such as UTC or Europe/Vienna)"
        )
    raise e.TimeZoneRequired(
        f"{cmd.host_country} has {len(zones)} time zones ({', '.join(zones)}): name the "
        f"one the mission reads election-day times in (time_zone)"
    )


def _needs_assessment(state: Mission, cmd: c.RecordNeedsAssessment, now: datetime) -> list[Event]:
    if not state.rules.needs_assessment:
        raise e.StepNotInProfile(f"a {state.profile.value} mission has no needs assessment")
    if state.needs_assessment_on is not None:
        raise e.DuplicateId(
            f"the needs assessment was already recorded ({state.needs_assessment_on})"
        )
    return [ev.NeedsAssessmentRecorded(conducted_on=cmd.conducted_on, summary=cmd.summary)]


def _appoint(state: Mission, cmd: c.AppointHeadOfMission, now: datetime) -> list[Event]:
    if (
        state.stage is Stage.invited
        and state.rules.needs_assessment
        and not state.needs_assessment_on
    ):
        raise e.StepMissing(
            f"a {state.profile.value} mission records its needs assessment before forming"
        )
    return [ev.HeadOfMissionAppointed(name=cmd.name, title=cmd.title)]


def _nominate(state: Mission, cmd: c.NominateObserver, now: datetime) -> list[Event]:
    if cmd.member_state == state.host_country:
        raise e.ObserverFromHostCountry(
            f"{cmd.name} is nominated by {cmd.member_state}, the host country; "
            f"observers come only from the other member states"
        )
    if cmd.member_state not in state.member_states:
        raise e.MemberStateNotParticipating(
            f"{cmd.member_state} is not among the participating member states "
            f"({', '.join(state.member_states)})"
        )
    if cmd.role not in state.rules.roles:
        raise e.RoleNotInProfile(f"a {state.profile.value} mission has no {cmd.role.value} role")
    _unique([cmd.observer_id], state.observers, "observer")
    return [ev.ObserverNominated(**cmd.model_dump(exclude={"type"}))]


def _observer(state: Mission, observer_id: str) -> Observer:
    observer = state.observers.get(observer_id)
    if observer is None:
        raise e.UnknownReference(f"no observer {observer_id!r} has been nominated")
    return observer


def _accept(state: Mission, cmd: c.AcceptObserver, now: datetime) -> list[Event]:
    observer = _observer(state, cmd.observer_id)
    if observer.status is ObserverStatus.accepted:
        raise e.AlreadyAccepted(f"observer {cmd.observer_id!r} is already accepted")
    if observer.status is ObserverStatus.withdrawn:
        raise e.ObserverNotActive(f"observer {cmd.observer_id!r} was withdrawn")
    missing = [
        what
        for what, signed in (
            ("code-of-conduct pledge", observer.code_of_conduct_signed),
            ("conflict-of-interest declaration", observer.conflict_of_interest_declared),
        )
        if not signed
    ]
    if missing:
        raise e.PledgeMissing(
            f"observer {cmd.observer_id!r} has not signed the {' and '.join(missing)}"
        )
    quota = state.role_quotas.get(observer.role)
    if quota is not None and len(state.accepted_observers(observer.role)) >= quota:
        raise e.RoleQuotaExceeded(f"the quota of {quota} {observer.role.value} is already filled")
    return [ev.ObserverAccepted(observer_id=cmd.observer_id, accepted_at=now)]


def _withdraw(state: Mission, cmd: c.WithdrawObserver, now: datetime) -> list[Event]:
    observer = _observer(state, cmd.observer_id)
    if observer.status is ObserverStatus.withdrawn:
        raise e.ObserverNotActive(f"observer {cmd.observer_id!r} was already withdrawn")
    return [ev.ObserverWithdrawn(observer_id=cmd.observer_id, reason=cmd.reason)]


def _form_team(state: Mission, cmd: c.FormTeam, now: datetime) -> list[Event]:
    _unique([cmd.team_id], state.teams, "team")
    _unique(cmd.observer_ids, [], "observer (in one team)")
    for oid in cmd.observer_ids:
        if _observer(state, oid).status is not ObserverStatus.accepted:
            raise e.ObserverNotActive(f"observer {oid!r} is not accepted, so cannot join a team")
    return [ev.TeamFormed(team_id=cmd.team_id, observer_ids=cmd.observer_ids, area=cmd.area)]


def _deploy(state: Mission, cmd: c.DeployMission, now: datetime) -> list[Event]:
    if state.head_of_mission is None:
        raise e.NoHeadOfMission("appoint a head of mission before deploying")
    if not state.accepted_observers():
        raise e.NoAcceptedObservers("accept at least one observer before deploying")
    return [ev.MissionDeployed(deployed_on=cmd.deployed_on)]


# -- pre-election and election day ----------------------------------------------------------


def _meeting(state: Mission, cmd: c.RecordMeeting, now: datetime) -> list[Event]:
    _unique([cmd.meeting_id], state.meetings, "meeting")
    window = state.mission_window
    assert window is not None
    if cmd.held_on not in window:
        raise e.MeetingOutsideMissionWindow(
            f"meeting {cmd.meeting_id!r} on {cmd.held_on} is outside the mission window "
            f"{window.start}..{window.end}"
        )
    if cmd.held_on >= _election_day(state):
        raise e.MeetingNotBeforeElectionDay(
            f"meeting {cmd.meeting_id!r} on {cmd.held_on} is not before election day "
            f"{_election_day(state)}"
        )
    return [ev.MeetingRecorded(**cmd.model_dump(exclude={"type"}))]


def _interim(state: Mission, cmd: c.PublishInterimReport, now: datetime) -> list[Event]:
    if not state.rules.interim_report:
        raise e.StepNotInProfile(f"a {state.profile.value} mission publishes no interim report")
    if state.interim_report is not None:
        raise e.DuplicateId("the interim report was already published")
    return [ev.InterimReportPublished(**cmd.model_dump(exclude={"type"}))]


def _open_election_day(state: Mission, cmd: c.OpenElectionDay, now: datetime) -> list[Event]:
    if state.rules.interim_report and state.interim_report is None:
        raise e.StepMissing(
            f"a {state.profile.value} mission publishes its interim report before election day"
        )
    zone, election_day = state.time_zone, _election_day(state)
    polls_open_at: datetime | None = cmd.polls_open_at or now
    if cmd.polls_open_at is None and zone is not None and local(now, zone).date() != election_day:
        # Opened before or after the day (a mission entered after the fact): when the
        # polls opened is not known, and nobody is awaited now.
        polls_open_at = None
    grace = cmd.check_in_grace_minutes * 60
    due = polls_open_at + timedelta(seconds=grace) if polls_open_at else None
    return [
        ev.ElectionDayOpened(
            opened_at=now,
            polls_open_at=polls_open_at,
            check_in_grace_seconds=grace,
            # Polls that opened (plus the grace) before election day was opened here, as
            # for a mission entered after the fact: nobody is alerted for what is past.
            check_ins_watched=zone is None or (due is not None and due > now),
        )
    ]


def _visit(state: Mission, cmd: c.RecordStationVisit, now: datetime) -> list[Event]:
    _unique([cmd.visit_id], state.visits, "visit")
    _check_visit_dates(cmd, _election_day(state), state.time_zone)
    _visiting_team(state, cmd)
    events: list[Event] = [ev.StationVisitRecorded(**cmd.model_dump(exclude={"type"}))]
    same_station = [v for v in state.visits.values() if v.station_id == cmd.station_id]
    teams = sorted({v.team_id for v in same_station} | {cmd.team_id})
    if len(teams) > 1:
        events.append(
            ev.StationReportsConflicted(
                station_id=cmd.station_id,
                visit_ids=[v.visit_id for v in same_station] + [cmd.visit_id],
                team_ids=teams,
            )
        )
    return events


def _stations(state: Mission, cmd: c.RegisterPollingStations, now: datetime) -> list[Event]:
    """Polling stations are the intake's (their own stream, read by every report): the
    mission's rules only say when they may be registered; the intake records them."""
    return []


def _visiting_team(state: Mission, cmd: c.RecordStationVisit) -> list[Event]:
    """The team of a visit is formed and has an accepted observer (the intake records the
    visit itself: no event here)."""
    if cmd.team_id not in state.teams:
        raise e.UnknownReference(f"no team {cmd.team_id!r} has been formed")
    if not state.active_members(cmd.team_id):
        raise e.TeamNotActive(f"team {cmd.team_id!r} has no accepted observer left")
    return []


def _check_visit_dates(
    cmd: c.RecordStationVisit, election_day: date, time_zone: str | None
) -> None:
    check_on_election_day(
        f"visit {cmd.visit_id!r}",
        cmd.arrived_at,
        cmd.departed_at,
        counting_only=all(cl.phase in (Phase.counting, Phase.tabulation) for cl in cmd.checklists),
        election_day=election_day,
        time_zone=time_zone,
    )


def check_on_election_day(
    what: str,
    start: datetime,
    end: datetime,
    *,
    counting_only: bool,
    election_day: date,
    time_zone: str | None,
) -> None:
    """The date guard of everything observed at a station: it happens on election day
    in the station's local time (``time_zone``; ``None`` reads times as written, for
    records made before missions named a zone); counting may run into the next morning
    (and, counting only, begin there). Raises ``VisitTimesInverted`` or
    ``VisitNotOnElectionDay``."""
    if time_zone is not None:
        start, end = local(start, time_zone), local(end, time_zone)
    if end < start:
        raise e.VisitTimesInverted(f"{what} ends at {end} before it starts at {start}")
    morning_after = election_day + timedelta(days=1)

    def in_grace(moment: datetime) -> bool:
        return moment.date() == morning_after and moment.time() <= COUNTING_GRACE

    start_ok = start.date() == election_day or (counting_only and in_grace(start))
    end_ok = end.date() == election_day or in_grace(end)
    if not (start_ok and end_ok):
        span = (
            start.isoformat() if start == end else f"from {start.isoformat()} to {end.isoformat()}"
        )
        where = f" in {time_zone}" if time_zone is not None else ""
        raise e.VisitNotOnElectionDay(
            f"{what} is dated {start.date()}{where} ({span}), but election day is "
            f"{election_day}; counting may run until {COUNTING_GRACE.strftime('%H:%M')} on "
            f"{morning_after}"
        )


def _close_election_day(state: Mission, cmd: c.CloseElectionDay, now: datetime) -> list[Event]:
    if not state.visits_recorded:
        raise e.NoStationVisits("no polling-station visit has been recorded")
    return [
        ev.ElectionDayClosed(
            closed_at=now,
            stations_visited=_coverage(state).stations_visited,
            visits=state.visits_recorded,
        )
    ]


def _coverage(state: Mission) -> ev.Coverage:
    """What the recorded visits cover: the intake's aggregate (which counts the mission's
    own visits too) once the mission has it, else the mission's own visits."""
    if state.intake is not None:
        return ev.Coverage(
            stations_visited=state.intake.stations_visited,
            visits=state.intake.visits,
            localities=state.intake.localities,
            locality_count=state.intake.localities_visited,
            teams=state.intake.teams,
        )
    return ev.Coverage(
        stations_visited=len(state.stations_visited),
        visits=len(state.visits),
        localities=state.localities[:LOCALITIES_LISTED],
        locality_count=len(state.localities),
        teams=len({v.team_id for v in state.visits.values()}),
    )


def intake_progressed(state: Mission, progress: IntakeProgress) -> list[Event]:
    """The intake's aggregate, when it says something the mission does not know yet."""
    if state.stage is not Stage.election_day or progress == state.intake:
        return []
    return [ev.IntakeProgressed(progress=progress)]


def check_ins_missed(state: Mission, teams: list[str], *, due_at: datetime) -> list[Event]:
    """Teams that sent no opening report by ``due_at``, each alerted once."""
    if state.stage is not Stage.election_day:
        return []
    return [
        ev.CheckInMissed(team_id=team, phase=Phase.opening, due_at=due_at)
        for team in sorted(set(teams))
        if team not in state.missed_check_ins
    ]


def check_ins_cleared(state: Mission, still_missing: list[str]) -> list[Event]:
    """Teams alerted for a missing opening report that have sent one since (they are not
    in ``still_missing``): each alert is cleared."""
    if state.stage is not Stage.election_day:
        return []
    return [
        ev.CheckInCleared(team_id=team, phase=Phase.opening)
        for team in sorted(state.missed_check_ins)
        if team not in still_missing
    ]


# -- statement, report, recommendations ------------------------------------------------------


def _statement_stage(state: Mission, name: str) -> None:
    if (
        state.stage is not None
        and state.stage.order < Stage.statement.order
        and state.stage in _OPEN
    ):
        raise e.ElectionDayNotClosed(
            f"cannot {name} while the mission is in stage {state.stage.value}: "
            f"election day must be closed first"
        )
    if state.publication is not None:
        raise e.AlreadyPublished(
            f"the statement was published on {state.publication.published_on}; cannot {name}"
        )


def _draft(state: Mission, cmd: c.DraftStatement, now: datetime) -> list[Event]:
    _unique([cmd.draft_id], state.drafts, "statement draft")
    return [
        ev.StatementDrafted(
            draft_id=cmd.draft_id,
            title=cmd.title,
            text=cmd.text,
            text_sha256=text_sha256(cmd.text),
            coverage=_coverage(state),
            figures=_cited(cmd),
        )
    ]


def _cited(cmd: c.DraftStatement) -> list[CitedFigure]:
    """The figure of each citation, in the citations' order (the figures are counted by
    eom before the command reaches the mission); a citation no figure answers is refused:
    the forms have no such question, answer or scope."""
    found = {(f.form_id, f.question, f.answer, f.scope): f for f in cmd.figures}
    figures = []
    for n, citation in enumerate(cmd.citations):
        key = (citation.form_id, citation.question, citation.answer, citation.scope)
        figure = found.get(key)
        if figure is None:
            answer = f" = {citation.answer!r}" if citation.answer is not None else ""
            raise e.UnknownReference(
                f"citations.{n}: no figure of the observation forms for "
                f"{citation.form_id}/{citation.question}{answer} in scope {citation.scope!r} "
                "(eom analysis lists the figures there are)"
            )
        figures.append(figure)
    return figures


def _draft_named(state: Mission, draft_id: str, sha: str) -> None:
    draft = state.drafts.get(draft_id)
    if draft is None:
        raise e.UnknownReference(f"no statement draft {draft_id!r}")
    if draft.text_sha256 != sha:
        raise e.DraftTextMismatch(
            f"draft {draft_id!r} has text sha256 {draft.text_sha256}, not {sha}"
        )


def _approve(state: Mission, cmd: c.ApproveStatement, now: datetime) -> list[Event]:
    _draft_named(state, cmd.draft_id, cmd.text_sha256)
    head = state.head_of_mission
    if head is None or head.name.casefold() != cmd.approved_by.strip().casefold():
        raise e.ApproverNotHeadOfMission(
            f"{cmd.approved_by} is not the head of mission" + (f" ({head.name})" if head else "")
        )
    return [
        ev.StatementApproved(
            draft_id=cmd.draft_id,
            text_sha256=cmd.text_sha256,
            approved_by=head.name,
            approved_at=now,
        )
    ]


def _publish(state: Mission, cmd: c.PublishStatement, now: datetime) -> list[Event]:
    approval = state.approval
    if approval is None:
        raise e.UnapprovedDraft("the head of mission has approved no draft yet")
    if (approval.draft_id, approval.text_sha256) != (cmd.draft_id, cmd.text_sha256):
        raise e.UnapprovedDraft(
            f"draft {cmd.draft_id!r} (sha256 {cmd.text_sha256[:12]}...) is not the exact draft "
            f"approved by the head of mission ({approval.draft_id!r}, sha256 "
            f"{approval.text_sha256[:12]}...)"
        )
    if cmd.published_on < _election_day(state):
        raise e.PublishedBeforeElectionDay(
            f"publication on {cmd.published_on} precedes election day {_election_day(state)}"
        )
    return [ev.StatementPublished(**cmd.model_dump(exclude={"type"}))]


def _final_report(state: Mission, cmd: c.PublishFinalReport, now: datetime) -> list[Event]:
    if state.publication is None:
        raise e.StepMissing("the final report follows the published statement")
    if state.final_report is not None:
        raise e.DuplicateId("the final report was already published")
    return [ev.FinalReportPublished(**cmd.model_dump(exclude={"type"}))]


def _issue(state: Mission, cmd: c.IssueRecommendations, now: datetime) -> list[Event]:
    if state.publication is None:
        raise e.RecommendationsBeforeStatement(
            "recommendations are issued only after the statement is published"
        )
    if state.rules.final_report and state.final_report is None:
        raise e.StepMissing(
            f"a {state.profile.value} mission issues its recommendations with the final report"
        )
    _unique([r.id for r in cmd.recommendations], state.recommendations, "recommendation")
    return [ev.RecommendationsIssued(recommendations=cmd.recommendations)]


def _send(state: Mission, cmd: c.SendRecommendations, now: datetime) -> list[Event]:
    if not state.recommendations:
        raise e.NoRecommendations("no recommendations have been issued")
    publication = state.publication
    if publication is not None and cmd.sent_on < publication.published_on:
        raise e.RecommendationsBeforeStatement(
            f"sent on {cmd.sent_on}, before the statement was published on "
            f"{publication.published_on}"
        )
    _unique([r.key for r in cmd.recipients], [], "recipient")
    for r in cmd.recipients:
        sent = state.deliveries.get(r.key)
        if sent is not None:
            raise e.AlreadySent(f"the recommendations were sent to {r.name} on {sent.sent_on}")
        if r.kind is RecipientKind.member_state and r.name not in state.member_states:
            raise e.RecipientNotEligible(f"{r.name} is not a participating member state")
        if r.kind is RecipientKind.host_country and r.name != state.host_country:
            raise e.RecipientNotEligible(f"{r.name} is not the host country ({state.host_country})")
    return [
        ev.RecommendationsSent(
            recipients=cmd.recipients,
            recommendation_ids=list(state.recommendations),
            sent_on=cmd.sent_on,
            acknowledge_by=cmd.acknowledge_by,
            ladder=cmd.ladder,
            reminders=cmd.reminders,
        )
    ]


def _acknowledge(state: Mission, cmd: c.AcknowledgeRecommendations, now: datetime) -> list[Event]:
    delivery = state.deliveries.get(cmd.recipient.key)
    if delivery is None:
        raise e.NotSent(f"the recommendations were never sent to {cmd.recipient.name}")
    if delivery.acknowledged_on is not None:
        raise e.AlreadyAcknowledged(
            f"{cmd.recipient.name} acknowledged them on {delivery.acknowledged_on}"
        )
    if cmd.acknowledged_on < delivery.sent_on:
        raise e.NotSent(
            f"acknowledged on {cmd.acknowledged_on}, before they were sent ({delivery.sent_on})"
        )
    return [ev.RecommendationsAcknowledged(**cmd.model_dump(exclude={"type"}))]


# -- changes of plan ---------------------------------------------------------------------------


def _postpone(state: Mission, cmd: c.PostponeElection, now: datetime) -> list[Event]:
    previous = _election_day(state)
    if cmd.new_date <= previous:
        raise e.PostponementNotLater(
            f"the new election day {cmd.new_date} is not after the current one {previous}"
        )
    window = state.mission_window
    assert window is not None
    shift = cmd.new_date - previous
    return [
        ev.ElectionPostponed(
            previous_date=previous,
            new_date=cmd.new_date,
            mission_window=window.model_copy(
                update={"start": window.start + shift, "end": window.end + shift}
            ),
            reason=cmd.reason,
        )
    ]


def _close(state: Mission, cmd: c.CloseMission, now: datetime) -> list[Event]:
    return [ev.MissionClosed(closed_at=now, note=cmd.note)]


def _cancel(state: Mission, cmd: c.CancelMission, now: datetime) -> list[Event]:
    return [ev.MissionCancelled(cancelled_at=now, reason=cmd.reason)]


# -- deadlines, reminders and follow-up ------------------------------------------------------


def _request_nominations(state: Mission, cmd: c.RequestNominations, now: datetime) -> list[Event]:
    if state.nomination_deadline is not None:
        raise e.DuplicateId(
            f"nominations were already requested (deadline {state.nomination_deadline})"
        )
    waiting = [ms for ms in state.member_states if not state.answered(DeadlineKind.nomination, ms)]
    return [
        ev.NominationsRequested(
            member_states=waiting,
            deadline=cmd.deadline,
            ladder=cmd.ladder,
            reminders=cmd.reminders,
        )
    ]


def _decline(state: Mission, cmd: c.DeclineNomination, now: datetime) -> list[Event]:
    if cmd.member_state not in state.member_states:
        raise e.MemberStateNotParticipating(
            f"{cmd.member_state} is not among the participating member states "
            f"({', '.join(state.member_states)})"
        )
    if state.answered(DeadlineKind.nomination, cmd.member_state):
        raise e.AlreadyAnswered(f"{cmd.member_state} has already nominated observers or declined")
    return [ev.NominationDeclined(member_state=cmd.member_state, reason=cmd.reason)]


def _record_delivery(state: Mission, cmd: c.RecordDelivery, now: datetime) -> list[Event]:
    track = state.reminders.get(track_key(cmd.kind, cmd.member_state, cmd.cycle))
    if cmd.delivered and track is not None and cmd.message_id in track.message_ids:
        raise e.DuplicateId(f"message {cmd.message_id} is already recorded as delivered")
    common = {
        "kind": cmd.kind,
        "member_state": cmd.member_state,
        "cycle": cmd.cycle,
        "message_id": cmd.message_id,
    }
    if not cmd.delivered:
        return [
            ev.DeliveryFailed(
                **common,
                purpose=cmd.purpose,
                step=cmd.step,
                error=cmd.error or "delivery failed",
            )
        ]
    if cmd.purpose is DeliveryPurpose.escalation:
        return [ev.DeadlineEscalated(**common, channel=cmd.channel, address=cmd.address)]
    return [
        ev.ReminderSent(
            **common, purpose=cmd.purpose, step=cmd.step, channel=cmd.channel, address=cmd.address
        )
    ]


def _follow_up_open(state: Mission, name: str) -> None:
    if not state.deliveries:
        raise e.FollowUpNotOpen(f"cannot {name}: no recommendations have been sent")
    if state.follow_up_ended_at is not None:
        raise e.FollowUpNotOpen(f"cannot {name}: the follow-up ended {state.follow_up_ended_at}")


def _request_evidence(state: Mission, cmd: c.RequestEvidence, now: datetime) -> list[Event]:
    _follow_up_open(state, "request evidence")
    if cmd.cycle != state.last_cycle + 1:
        raise e.DuplicateId(
            f"follow-up cycle {cmd.cycle} is not the next one ({state.last_cycle + 1})"
        )
    eligible = {*state.member_states, state.host_country}
    strangers = [ms for ms in cmd.member_states if ms not in eligible]
    if strangers:
        raise e.RecipientNotEligible(
            f"{', '.join(strangers)} neither hosts nor takes part in this mission"
        )
    _unique(cmd.member_states, [], "member state (in one request)")
    return [
        ev.EvidenceRequested(
            cycle=cmd.cycle,
            member_states=cmd.member_states,
            deadline=cmd.deadline,
            ladder=cmd.ladder,
            reminders=cmd.reminders,
        )
    ]


def _submit_evidence(state: Mission, cmd: c.SubmitEvidence, now: datetime) -> list[Event]:
    _follow_up_open(state, "submit evidence")
    cycle = state.evidence_cycles.get(cmd.cycle)
    if cycle is None:
        raise e.UnknownReference(f"no follow-up cycle {cmd.cycle} was opened")
    if cmd.member_state not in cycle.member_states:
        raise e.RecipientNotEligible(
            f"cycle {cmd.cycle} asked {', '.join(cycle.member_states)}, not {cmd.member_state}"
        )
    for item in cmd.evidence:
        if item.recommendation_id not in state.recommendations:
            raise e.UnknownReference(f"no recommendation {item.recommendation_id!r}")
    return [
        ev.EvidenceSubmitted(member_state=cmd.member_state, cycle=cmd.cycle, evidence=cmd.evidence)
    ]


def _rate(state: Mission, cmd: c.RateImplementation, now: datetime) -> list[Event]:
    _follow_up_open(state, "rate an implementation")
    if cmd.recommendation_id not in state.recommendations:
        raise e.UnknownReference(f"no recommendation {cmd.recommendation_id!r}")
    return [ev.ImplementationRated(**cmd.model_dump(exclude={"type"}))]


def _reopen(state: Mission, cmd: c.ReopenReview, now: datetime) -> list[Event]:
    _follow_up_open(state, "reopen the review")
    _unique([cmd.new_mission_id], state.reopened_for, "reopening mission")
    return [ev.ReviewReopened(new_mission_id=cmd.new_mission_id, reason=cmd.reason)]


def _end_follow_up(state: Mission, cmd: c.EndFollowUp, now: datetime) -> list[Event]:
    if state.follow_up_ended_at is not None:
        raise e.FollowUpNotOpen(f"the follow-up already ended {state.follow_up_ended_at}")
    return [ev.FollowUpEnded(reason=cmd.reason, ended_at=now)]


_S = Stage
_STAGES: dict[type, tuple[set[Stage], str]] = {
    c.RecordNeedsAssessment: ({_S.invited}, "record the needs assessment"),
    c.AppointHeadOfMission: (
        {_S.invited, _S.forming, _S.pre_election},
        "appoint a head of mission",
    ),
    c.NominateObserver: ({_S.forming, _S.pre_election}, "nominate an observer"),
    c.AcceptObserver: ({_S.forming, _S.pre_election}, "accept an observer"),
    c.WithdrawObserver: ({_S.forming, _S.pre_election, _S.election_day}, "withdraw an observer"),
    c.FormTeam: ({_S.forming, _S.pre_election}, "form a team"),
    c.DeployMission: ({_S.forming}, "deploy the mission"),
    c.RecordMeeting: ({_S.pre_election}, "record a meeting"),
    c.PublishInterimReport: ({_S.pre_election}, "publish the interim report"),
    c.OpenElectionDay: ({_S.pre_election}, "open election day"),
    c.RecordStationVisit: ({_S.election_day}, "record a station visit"),
    c.RegisterPollingStations: (
        {_S.invited, _S.forming, _S.pre_election, _S.election_day, _S.statement, _S.follow_up},
        "register polling stations",
    ),
    c.CloseElectionDay: ({_S.election_day}, "close election day"),
    c.DraftStatement: (set(_OPEN), "draft the statement"),
    c.ApproveStatement: (set(_OPEN), "approve the statement"),
    c.PublishStatement: (set(_OPEN), "publish the statement"),
    c.PublishFinalReport: ({_S.statement, _S.follow_up}, "publish the final report"),
    c.IssueRecommendations: (set(_OPEN), "issue recommendations"),
    c.SendRecommendations: ({_S.follow_up}, "send the recommendations"),
    c.AcknowledgeRecommendations: (
        {_S.follow_up, _S.closed},
        "record an acknowledgement",
    ),
    c.RequestNominations: ({_S.forming, _S.pre_election}, "request nominations"),
    c.DeclineNomination: ({_S.forming, _S.pre_election}, "decline a nomination"),
    c.RecordDelivery: (set(Stage), "record a delivery"),
    c.RequestEvidence: ({_S.follow_up, _S.closed}, "request evidence"),
    c.SubmitEvidence: ({_S.follow_up, _S.closed}, "submit evidence"),
    c.RateImplementation: ({_S.follow_up, _S.closed}, "rate an implementation"),
    c.ReopenReview: ({_S.follow_up, _S.closed}, "reopen the review"),
    c.EndFollowUp: ({_S.follow_up, _S.closed}, "end the follow-up"),
    c.PostponeElection: ({_S.invited, _S.forming, _S.pre_election}, "postpone the election"),
    c.CloseMission: ({_S.follow_up}, "close the mission"),
    c.CancelMission: (set(_OPEN), "cancel the mission"),
}


def _statement_step(
    handler: Callable[[Mission, Any, datetime], list[Event]], name: str
) -> Callable[[Mission, Any, datetime], list[Event]]:
    def checked(state: Mission, cmd: Any, now: datetime) -> list[Event]:
        _statement_stage(state, name)
        return handler(state, cmd, now)

    return checked


def _recommendations_step(
    state: Mission, cmd: c.IssueRecommendations, now: datetime
) -> list[Event]:
    if state.stage is not None and state.stage.order < Stage.statement.order:
        raise e.RecommendationsBeforeStatement(
            f"the mission is in stage {state.stage.value}: recommendations come after the "
            f"statement is published"
        )
    return _issue(state, cmd, now)


_HANDLERS: dict[type, Callable[[Mission, Any, datetime], list[Event]]] = {
    c.RecordNeedsAssessment: _needs_assessment,
    c.AppointHeadOfMission: _appoint,
    c.NominateObserver: _nominate,
    c.AcceptObserver: _accept,
    c.WithdrawObserver: _withdraw,
    c.FormTeam: _form_team,
    c.DeployMission: _deploy,
    c.RecordMeeting: _meeting,
    c.PublishInterimReport: _interim,
    c.OpenElectionDay: _open_election_day,
    c.RecordStationVisit: _visit,
    c.RegisterPollingStations: _stations,
    c.CloseElectionDay: _close_election_day,
    c.DraftStatement: _statement_step(_draft, "draft the statement"),
    c.ApproveStatement: _statement_step(_approve, "approve the statement"),
    c.PublishStatement: _statement_step(_publish, "publish the statement"),
    c.PublishFinalReport: _final_report,
    c.IssueRecommendations: _recommendations_step,
    c.SendRecommendations: _send,
    c.AcknowledgeRecommendations: _acknowledge,
    c.RequestNominations: _request_nominations,
    c.DeclineNomination: _decline,
    c.RecordDelivery: _record_delivery,
    c.RequestEvidence: _request_evidence,
    c.SubmitEvidence: _submit_evidence,
    c.RateImplementation: _rate,
    c.ReopenReview: _reopen,
    c.EndFollowUp: _end_follow_up,
    c.PostponeElection: _postpone,
    c.CloseMission: _close,
    c.CancelMission: _cancel,
}


def commands_allowed(state: Mission) -> list[type[c.CommandBase]]:
    """The commands whose stage rule lets them be given now, in the lifecycle's order
    (``_STAGES``): what a form may offer. Their other rules are judged when one is given
    (or dry-run) with its content."""
    allowed = []
    for command_type, (stages, name) in _STAGES.items():
        try:
            _require_stage(state, stages, name)
            _ahead_of_content(state, command_type, name)
        except e.DomainError:
            continue
        allowed.append(command_type)
    return allowed


def _ahead_of_content(state: Mission, command_type: type, name: str) -> None:
    """The rules a command meets whatever it says, besides its stages: the statement's
    steps wait for election day to close (and end with its publication), recommendations
    for the statement, the needs assessment and interim report for a profile that has
    them, approval for a draft, publication for an approval."""
    if command_type in (c.DraftStatement, c.ApproveStatement, c.PublishStatement):
        _statement_stage(state, name)
    if command_type is c.ApproveStatement and not state.drafts:
        raise e.UnknownReference("no draft to approve")
    if command_type is c.PublishStatement and state.approval is None:
        raise e.UnknownReference("no approved draft to publish")
    if (
        command_type is c.IssueRecommendations
        and state.stage is not None
        and state.stage.order < Stage.statement.order
    ):
        raise e.RecommendationsBeforeStatement(name)
    if command_type is c.RecordNeedsAssessment and not state.rules.needs_assessment:
        raise e.StepNotInProfile(name)
    if command_type is c.PublishInterimReport and not state.rules.interim_report:
        raise e.StepNotInProfile(name)
