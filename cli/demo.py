"""``eom demo``: the seed mission, registration to closure, through the running service."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from rich.console import Console

from api.tokens import Role, TokenStore
from cli import seed
from cli.api_client import ApiClient
from domain import commands as c
from domain.commands import Command
from domain.values import RecipientKind
from eventstore.store import EventStore
from workflows.client import CommandRefused, Missions
from workflows.messages import CommandResult

DEMO_ACTOR = "demo-coordinator@turkic-council"


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


async def run_demo(
    send: Send, store: EventStore, console: Console, *, mission_id: str | None = None
) -> str:
    """Drive the seed mission through every stage; return its id."""
    mission_id = mission_id or f"tc-kz-2021-{uuid.uuid4().hex[:6]}"
    console.print(
        f"[bold]Seed mission[/]: Turkic Council observes Kazakhstan's parliamentary "
        f"elections of 10 January 2021 — mission id [cyan]{mission_id}[/]"
    )
    commands = seed.mission(mission_id)
    for command in commands:
        result, sender = await send(mission_id, command)
        console.print(
            f"  v{result.version:<3} [green]{result.stage.value:<13}[/] "
            f"{command.type:<28} {describe(command)}  [dim]({sender})[/]",
            highlight=False,
            soft_wrap=True,
        )
        if isinstance(command, c.OpenElectionDay):
            await _show_refusal(send, console, mission_id, seed.the_2020_slip())
    check = await store.verify_stream(mission_id)
    chain = "unbroken" if check.ok else f"BROKEN: {check.breaks}"
    console.print(
        f"[bold]Mission {mission_id} closed[/]: {check.events} events in PostgreSQL, "
        f"hash chain {chain}, head {check.head_hash[:16]}"
    )
    console.print(f"See its timeline: [cyan]eom mission show {mission_id}[/]")
    return mission_id


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
