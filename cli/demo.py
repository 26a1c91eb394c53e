"""``eom demo``: the seed mission, registration to closure, through the running service."""

from __future__ import annotations

import uuid

from rich.console import Console

from cli import seed
from cli.missions import CommandRefused, Missions
from domain import commands as c
from domain.commands import Command

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


async def run_demo(missions: Missions, console: Console, *, mission_id: str | None = None) -> str:
    """Drive the seed mission through every stage; return its id."""
    mission_id = mission_id or f"tc-kz-2021-{uuid.uuid4().hex[:6]}"
    console.print(
        f"[bold]Seed mission[/]: Turkic Council observes Kazakhstan's parliamentary "
        f"elections of 10 January 2021 — mission id [cyan]{mission_id}[/]"
    )
    commands = seed.mission(mission_id)
    for command in commands:
        result = await missions.execute(mission_id, command, actor=DEMO_ACTOR)
        console.print(
            f"  v{result.version:<3} [green]{result.stage.value:<13}[/] "
            f"{command.type:<28} {describe(command)}",
            highlight=False,
            soft_wrap=True,
        )
        if isinstance(command, c.OpenElectionDay):
            await _show_refusal(missions, console, mission_id, seed.the_2020_slip())
    check = await missions.store.verify_stream(mission_id)
    chain = "unbroken" if check.ok else f"BROKEN: {check.breaks}"
    console.print(
        f"[bold]Mission {mission_id} closed[/]: {check.events} events in PostgreSQL, "
        f"hash chain {chain}, head {check.head_hash[:16]}"
    )
    console.print(f"See its timeline: [cyan]eom mission show {mission_id}[/]")
    return mission_id


async def _show_refusal(
    missions: Missions, console: Console, mission_id: str, command: Command
) -> None:
    """The statement's own "10 January 2020" date, caught by the visit date guard."""
    try:
        await missions.execute(mission_id, command, actor=DEMO_ACTOR)
    except CommandRefused as refused:
        console.print(
            f"  [yellow]refused[/] {command.type:<28} {refused}", highlight=False, soft_wrap=True
        )
        return
    raise RuntimeError("the 2020 date slip was accepted; the visit date guard is broken")
