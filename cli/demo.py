"""``eom demo``: the seed mission, registration to closure, through the running service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from rich.console import Console
from rich.markup import escape

from accounts.directory import UserDirectory
from accounts.users import User, UserError
from activities.directory import MemberStateDirectory
from api.tokens import Role, TokenStore
from cli import seed
from cli.api_client import ApiClient
from domain import commands as c
from domain.commands import Command
from domain.values import RecipientKind, ReminderLadder
from eventstore.store import EventStore
from workflows.client import CommandRefused, Missions
from workflows.messages import CommandResult

DEMO_ACTOR = "demo-coordinator@turkic-council"
SEED_MISSION_ID = "tc-kz-2021"
"""The first seed mission's id (the README's examples use it); later runs take
``tc-kz-2021-2``, ``-3``, ..."""


async def seed_mission_id(store: EventStore) -> str:
    """The first of ``tc-kz-2021``, ``tc-kz-2021-2``, ... that no stream uses: an
    interrupted demo leaves its mission where it stopped, and the next run starts anew."""
    candidate, number = SEED_MISSION_ID, 1
    while await store.stream_version(candidate) > 0:
        number += 1
        candidate = f"{SEED_MISSION_ID}-{number}"
    return candidate


def describe(command: Command) -> str:
    """A short line about a command, for the demo's progress."""
    match command:
        case c.RegisterInvitation():
            return (
                f"invitation from {command.inviting_authority}; E = {command.election.date}; "
                f"member states {', '.join(command.member_states)}"
            )
        case c.AppointHeadOfMission():
            return f"{command.name}, {command.title}"
        case c.NominateObserver():
            return f"{command.name} ({command.member_state}, {command.role.value})"
        case c.AcceptObserver():
            return command.observer_id
        case c.FormTeam():
            return f"{command.team_id}: {' + '.join(command.observer_ids)}"
        case c.RecordMeeting():
            return f"{command.held_on} {command.stakeholder_name}"
        case c.RecordStationVisit():
            phases = "/".join(cl.phase.value for cl in command.checklists)
            return (
                f"{command.station_id} {command.locality} by {command.team_id}, "
                f"{command.arrived_at:%d %b %H:%M}-{command.departed_at:%H:%M} ({phases})"
            )
        case c.DraftStatement():
            return command.title[:70] + "..."
        case c.ApproveStatement():
            return f"{command.approved_by} approves {command.draft_id} ({command.text_sha256[:12]})"
        case c.PublishStatement():
            return f"{command.published_on} at a {command.venue}"
        case c.IssueRecommendations():
            return ", ".join(f"{r.id} {r.area}" for r in command.recommendations)
        case c.SendRecommendations():
            return ", ".join(r.name for r in command.recipients)
        case c.AcknowledgeRecommendations():
            return f"{command.recipient.name} on {command.acknowledged_on}"
    return ""


Send = Callable[[str, Command], Awaitable[tuple[CommandResult, str]]]
"""Sends one command of a mission; returns its result and who sent it."""


def direct(missions: Missions) -> Send:
    """Commands straight to the workflow, as the demo coordinator."""

    async def send(mission_id: str, command: Command) -> tuple[CommandResult, str]:
        return await missions.execute(mission_id, command, actor=DEMO_ACTOR), DEMO_ACTOR

    return send


AUTOMATION_EVENTS = {
    "NominationsRequested",
    "ReminderSent",
    "DeliveryFailed",
    "DeadlineEscalated",
    "EvidenceRequested",
}


async def run_demo(
    send: Send,
    store: EventStore,
    console: Console,
    *,
    mission_id: str | None = None,
    pace: float = 4.0,
    eom: str = "eom",
) -> str:
    """Drive the seed mission through every stage; return its id (``mission_id``, else
    ``seed_mission_id``).

    Member states are asked to nominate observers with a reminder ladder ``pace`` seconds
    apart; they answer one after another (the first at once, the last after the second
    reminder), so each ladder can be seen stopping when its state answers. The closing
    hints name the CLI as ``eom`` (how this one is run: ``eom_command``)."""
    mission_id = mission_id or await seed_mission_id(store)
    await ensure_directory(store.pool, console)
    console.print(
        f"[bold]Seed mission[/]: Turkic Council observes Kazakhstan's parliamentary "
        f"elections of 10 January 2021 — mission id [cyan]{mission_id}[/]"
    )
    started = datetime.now(UTC)
    step = max(1, round(pace))
    commands = seed.mission(
        mission_id,
        nominations=c.RequestNominations(
            deadline=started + timedelta(seconds=4 * step),
            ladder=ReminderLadder(offsets_seconds=[3 * step, step], escalate_after_seconds=step),
        ),
        acknowledge_by=started + timedelta(days=30),
    )
    # When each member state gets round to answering, in seconds after the request.
    answers_at = dict(zip(seed.MEMBER_STATES, (1, step + 1, step + 2, 3 * step + 1), strict=True))
    shown = Shown()
    for command in commands:
        if isinstance(command, c.NominateObserver) and command.member_state in answers_at:
            due = started + timedelta(seconds=answers_at.pop(command.member_state))
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await shown.automation(store, mission_id, console)
        result, sender = await send(mission_id, command)
        console.print(
            f"  v{result.version:<3} [green]{result.stage.value:<13}[/] "
            f"{command.type:<28} {describe(command)}  [dim]({sender})[/]",
            highlight=False,
            soft_wrap=True,
        )
        await shown.automation(store, mission_id, console)
        if isinstance(command, c.OpenElectionDay):
            await _show_refusal(send, console, mission_id, seed.the_2020_slip())
    await asyncio.sleep(1.5)
    await shown.automation(store, mission_id, console)
    check = await store.verify_stream(mission_id)
    chain = "unbroken" if check.ok else f"BROKEN: {check.breaks}"
    console.print(
        f"[bold]Mission {mission_id} closed[/]: {check.events} events in PostgreSQL, "
        f"hash chain {chain}, head {check.head_hash[:16]}; its follow-up goes on"
    )
    # Printed whole (no wrapping), to be copied as they are.
    eom = escape(eom)
    console.print(
        f"See its timeline: [cyan]{eom} mission show {mission_id}[/]",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Reminders: [cyan]{eom} reminders {mission_id}[/]; messages: [cyan]{eom} outbox[/]",
        highlight=False,
        soft_wrap=True,
    )
    return mission_id


def describe_automation(event_type: str, data: dict[str, Any]) -> str:
    match event_type:
        case "ReminderSent":
            return (
                f"{data['purpose']} {data['step']} to {data['member_state']} ({data['kind']}) "
                f"by {data['channel']} to {data['address']}"
            )
        case "DeadlineEscalated":
            return f"{data['member_state']} did not answer: escalated to {data['address']}"
        case "DeliveryFailed":
            return f"{data['member_state']}: {data['error']}"
        case "NominationsRequested":
            return f"deadline {data['deadline']} for {', '.join(data['member_states'])}"
        case "EvidenceRequested":
            return (
                f"follow-up cycle {data['cycle']} opened: evidence asked of "
                f"{', '.join(data['member_states'])} by {data['deadline'][:10]}"
            )
    return ""


async def ensure_directory(pool: asyncpg.Pool, console: Console) -> None:
    """The seed states' focal points, unless the directory already has them."""
    directory = MemberStateDirectory(pool)
    added = []
    for contact in seed.contacts():
        if await directory.get(contact.organisation, contact.code) is None:
            await directory.upsert(contact)
            added.append(contact.code)
    if added:
        console.print(f"Member-state directory: added focal points for {', '.join(added)}")


class Shown:
    """Prints what the mission's automation recorded since it last looked."""

    def __init__(self) -> None:
        self.version = 0

    async def automation(self, store: EventStore, mission_id: str, console: Console) -> None:
        for event in await store.read_stream(mission_id, from_version=self.version + 1):
            self.version = event.stream_version
            if event.event_type not in AUTOMATION_EVENTS:
                continue
            what = describe_automation(event.event_type, event.data)
            console.print(
                f"  v{event.stream_version:<3} [magenta]{'automation':<13}[/] "
                f"{event.event_type:<28} {what}",
                highlight=False,
                soft_wrap=True,
            )


async def _show_refusal(send: Send, console: Console, mission_id: str, command: Command) -> None:
    """The statement's own "10 January 2020" date, caught by the visit date guard."""
    try:
        await send(mission_id, command)
    except CommandRefused as refused:
        console.print(
            f"  [yellow]refused[/] {command.type:<28} {refused}", highlight=False, soft_wrap=True
        )
        return
    raise RuntimeError("the 2020 date slip was accepted; the visit date guard is broken")


def through_api(api: ApiClient, tokens: TokenStore) -> Send:
    """Each command through the HTTP API, with the token of whoever gives it in a real
    mission: member states nominate and acknowledge, observers report their visits, the
    head of mission approves, the coordinator does the rest."""
    issued: dict[tuple[Role, str], str] = {}

    async def token(
        role: Role,
        scope: str,
        *,
        name: str | None = None,
        mission_id: str | None = None,
        member_state: str | None = None,
        team_id: str | None = None,
    ) -> str:
        if (role, scope) not in issued:
            issued[role, scope], _ = await tokens.create(
                role=role,
                name=name or f"demo {role.value} {scope}",
                mission_id=mission_id,
                member_state=member_state,
                team_id=team_id,
            )
        return issued[role, scope]

    async def send(mission_id: str, command: Command) -> tuple[CommandResult, str]:
        match command:
            case c.NominateObserver():
                role, scope = Role.member_state, command.member_state
                key = await token(role, scope, member_state=scope, mission_id=mission_id)
            case c.AcknowledgeRecommendations() if command.recipient.kind is not (
                RecipientKind.international_organisation
            ):
                role, scope = Role.member_state, command.recipient.name
                key = await token(role, scope, member_state=scope, mission_id=mission_id)
            case c.RecordStationVisit():
                role, scope = Role.observer, command.team_id
                key = await token(role, scope, mission_id=mission_id, team_id=scope)
            case c.ApproveStatement():
                role, scope = Role.head_of_mission, mission_id
                key = await token(role, scope, mission_id=mission_id, name=command.approved_by)
            case _:
                role, scope = Role.coordinator, "secretariat"
                key = await token(role, scope, name="demo secretariat")
        result = await api.execute(mission_id, command, token=key)
        return result, f"{role.value} {scope} via API"

    return send


DEMO_COORDINATOR = "coordinator@turkic-council.example.org"
"""The demo's coordinator in the console's user directory (the Secretariat's)."""
DEMO_AUDITOR = "auditor@court-of-auditors.example.org"


async def ensure_people(store: EventStore, mission_id: str) -> User:
    """The demo's people in the console's directory (added once, kept after): the
    Turkic Council's coordinator, the seed mission's head of mission and an auditor.
    Returns the coordinator."""
    directory = UserDirectory(store)
    wanted: list[dict[str, Any]] = [
        {
            "email": DEMO_COORDINATOR,
            "name": "Aigerim Bekova",
            "role": Role.coordinator,
            "organisation": seed.ORGANISATION,
        },
        {
            "email": "head-of-mission@turkic-council.example.org",
            "name": seed.HEAD_OF_MISSION,
            "role": Role.head_of_mission,
            "language": "tr",
            "mission_id": mission_id,
        },
        {"email": DEMO_AUDITOR, "name": "Court of Auditors", "role": Role.auditor},
    ]
    for person in wanted:
        if await directory.by_email(person["email"]) is None:
            # Added meanwhile by another run: it is there.
            with contextlib.suppress(UserError):
                await directory.add(actor="eom demo", **person)
    coordinator = await directory.by_email(DEMO_COORDINATOR)
    assert coordinator is not None
    return coordinator
