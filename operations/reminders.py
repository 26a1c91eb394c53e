"""Reminder ladders to member states: per member state and deadline, what the record says
was sent and what the running ladder will do next; and pause, resume, send now.

The record (the mission's events) says what was sent, failed, answered and escalated;
each ladder's workflow (a Temporal query) says what is next, when, and whether it is
paused. Every deadline the mission set has a row, whether or not its ladder still runs.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.host_time import localized
from domain.state import Mission, track_key
from domain.values import DeadlineKind, DeliveryPurpose, RecipientKind
from operations.errors import InvalidInput, UnknownMission
from workflows.client import Missions
from workflows.messages import LadderStatus
from workflows.mission import workflow_id
from workflows.reminders import ladder_workflow_id

_COUNTRY = re.compile(r"^[A-Z]{2}$")


class LadderAction(StrEnum):
    """What a coordinator can tell a ladder (its workflow's signal of the same name)."""

    pause = "pause"
    """Nothing is sent until resumed."""
    resume = "resume"
    send_now = "send_now"
    """The next message goes out now, not at its time (a paused ladder resumes)."""


class LadderRow(BaseModel):
    """One member state's reminders for one deadline. Times are instants in the host's
    time zone, with their UTC offset."""

    kind: DeadlineKind
    cycle: int
    """The follow-up cycle (evidence deadlines); 0 for the others."""
    member_state: str
    deadline: datetime
    sent: int
    """Messages recorded as delivered (request, reminders, escalation)."""
    failures: int
    """Deliveries recorded as failed for good."""
    answered: bool
    """The member state gave what the deadline asks for (its ladder stops)."""
    escalated: bool
    live: bool
    """Its ladder's workflow answered (it may have ended); the fields below are its."""
    paused: bool
    stopped: bool
    next_purpose: DeliveryPurpose | None
    """What goes out next; ``None`` once the ladder is done (or not live)."""
    next_due: datetime | None


class Reminders(BaseModel):
    """Every reminder ladder of a mission: nominations, then acknowledgements of the
    recommendations, then each follow-up cycle's evidence."""

    mission_id: str
    time_zone: str | None
    ladders: list[LadderRow]


class LadderSignalled(BaseModel):
    """A ladder was told ``action``; its effect shows in its status a moment later."""

    mission_id: str
    kind: DeadlineKind
    cycle: int
    member_state: str
    action: LadderAction


def member_state_code(value: str) -> str:
    """``value`` as an ISO 3166-1 alpha-2 code (``az`` -> ``AZ``); ``InvalidInput`` on
    field ``member_state`` otherwise."""
    code = value.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise InvalidInput("member_state", f"{value!r} is not a two-letter country code (AZ)")
    return code


def deadlines(state: Mission) -> dict[tuple[DeadlineKind, int, str], datetime]:
    """Each (kind, cycle, member state) the mission set a deadline for, and that deadline,
    in the order the ladders start: nominations, acknowledgements, evidence by cycle."""
    found: dict[tuple[DeadlineKind, int, str], datetime] = {}
    if state.nomination_deadline is not None:
        for ms in state.member_states:
            found[DeadlineKind.nomination, 0, ms] = state.nomination_deadline
    if state.acknowledge_by is not None:
        for delivery in state.deliveries.values():
            if delivery.recipient.kind is not RecipientKind.international_organisation:
                found[DeadlineKind.acknowledgement, 0, delivery.recipient.name] = (
                    state.acknowledge_by
                )
    for cycle in state.evidence_cycles.values():
        for ms in cycle.member_states:
            found[DeadlineKind.evidence, cycle.cycle, ms] = cycle.deadline
    return found


def reminder_rows(state: Mission, live: list[LadderStatus]) -> Reminders:
    """The mission's ladders from its folded ``state`` and its ladders' ``live`` statuses
    (``Missions.ladders``), times in the host's time zone."""
    by_key = {(s.kind, s.cycle, s.member_state): s for s in live}
    rows = []
    for (kind, cycle, member_state), deadline in deadlines(state).items():
        track = state.reminders.get(track_key(kind, member_state, cycle))
        status = by_key.get((kind, cycle, member_state))
        rows.append(
            LadderRow(
                kind=kind,
                cycle=cycle,
                member_state=member_state,
                deadline=deadline,
                sent=track.sent if track else 0,
                failures=track.failures if track else 0,
                answered=state.answered(kind, member_state, cycle),
                escalated=bool(track and track.escalated),
                live=status is not None,
                paused=bool(status and status.paused),
                stopped=bool(status and status.stopped),
                next_purpose=status.next_purpose if status else None,
                next_due=status.next_due if status else None,
            )
        )
    return Reminders(
        mission_id=state.mission_id or "",
        time_zone=state.time_zone,
        ladders=localized(rows, state.time_zone),
    )


async def reminders(missions: Missions, mission_id: str) -> Reminders:
    """The mission's ladders now (``reminder_rows``). Raises ``UnknownMission``."""
    state = await missions.state(mission_id)
    if state.stage is None:
        raise UnknownMission(mission_id)
    return reminder_rows(state, await missions.ladders(mission_id))


async def ladder_running(
    missions: Missions, mission_id: str, kind: DeadlineKind, member_state: str, cycle: int
) -> bool:
    """Whether the ladder's workflow runs (it can take a signal)."""
    handle = missions.client.get_workflow_handle(
        ladder_workflow_id(workflow_id(mission_id), kind, cycle, member_state)
    )
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status is WorkflowExecutionStatus.RUNNING


def no_such_ladder(mission_id: str, kind: DeadlineKind, member_state: str, cycle: int) -> str:
    """How a ladder that does not run is named in a refusal."""
    return f"mission {mission_id} has no running {kind.value} ladder for {member_state}" + (
        f" in cycle {cycle}" if cycle else ""
    )


async def signal_ladder(
    missions: Missions,
    mission_id: str,
    action: LadderAction,
    kind: DeadlineKind,
    member_state: str,
    cycle: int = 0,
) -> LadderSignalled:
    """Tell one ladder ``action``. Raises ``InvalidInput`` (``member_state``, ``cycle``)
    and ``workflows.client.CommandRefused`` with rule ``no_such_ladder`` when that ladder
    does not run (never started, answered, ended)."""
    code = member_state_code(member_state)
    if cycle < 0:
        raise InvalidInput("cycle", f"{cycle} is not a follow-up cycle (0 or more)")
    await missions.signal_ladder(mission_id, kind, code, action.value, cycle)
    return LadderSignalled(
        mission_id=mission_id, kind=kind, cycle=cycle, member_state=code, action=action
    )
