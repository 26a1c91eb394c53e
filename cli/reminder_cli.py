"""``eom member-state``, ``eom ladder`` and ``eom outbox``: the reminders' directory, their
timing, and what was sent.

Sub-apps and a plain command function; ``cli.main`` registers them (this module does not
import it, which would be circular).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from activities.delivery import OutboxEntry, outbox
from activities.directory import (
    DEFAULT_LADDER,
    DirectoryError,
    Ladder,
    LadderPolicies,
    MemberStateContact,
    MemberStateDirectory,
    check_contact,
)
from cli.commands import InputError
from cli.services import open_missions
from domain.values import MAX_LADDER_SECONDS, DeadlineKind
from worker import Settings, configure_logging

T = TypeVar("T")

console = Console(width=None if sys.stdout.isatty() else 160)

member_state_app = typer.Typer(
    help="The member states reminders go to: e-mail, webhook, escalation contact.",
    no_args_is_help=True,
)
ladder_app = typer.Typer(
    help="When reminders go: offsets before a deadline, and the escalation after it.",
    no_args_is_help=True,
)


def _settings() -> Settings:
    """As ``cli.main``'s: warnings only, unless EOM_LOG_LEVEL says otherwise."""
    settings = Settings()
    if "EOM_LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


_DURATION = re.compile(r"\s*([0-9]{1,12})\s*([dhms]?)\s*")
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_offset(text: str, option: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, or ``0``."""
    match = _DURATION.fullmatch(text)
    if not match or (not match[2] and int(match[1]) != 0):
        raise InputError(f"{option}: {text!r} is not a duration like 7d, 12h, 30m, 45s or 0")
    seconds = int(match[1]) * _UNITS.get(match[2], 0)
    if seconds > MAX_LADDER_SECONDS:
        raise InputError(f"{option}: {text!r} is longer than {MAX_LADDER_SECONDS} seconds")
    return timedelta(seconds=seconds)


def parse_offsets(text: str, option: str = "--offsets") -> list[timedelta]:
    """A comma-separated list of durations: ``7d,2d,0``."""
    parts = [part for part in text.split(",") if part.strip()]
    return [parse_offset(part, option) for part in parts]


def format_offset(value: timedelta) -> str:
    """The largest unit that divides it exactly: ``7d``, ``36h``, ``0``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0"
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("every whole number of seconds has a unit")


@member_state_app.command("add")
def member_state_add(
    organisation: Annotated[str, typer.Option(help="the organisation it is a member of")],
    code: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. AZ")],
    name: Annotated[str, typer.Option(help="its name, as messages address it")],
    escalation_email: Annotated[
        str,
        typer.Option(
            help="the Secretariat or a permanent representative, told when a "
            "deadline passes unanswered"
        ),
    ],
    language: Annotated[str, typer.Option(help="language of its messages: en, ru, tr...")] = "en",
    email: Annotated[str | None, typer.Option(help="where reminders go by e-mail")] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="where reminders go by signed POST (preferred to e-mail)")
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="the webhook's HMAC-SHA256 secret (16+ characters)")
    ] = None,
    escalation_name: Annotated[
        str | None, typer.Option(help="the escalation contact's name")
    ] = None,
) -> None:
    """Add a member state to the directory, or replace its entry whole."""

    async def main() -> MemberStateContact:
        contact = MemberStateContact(
            organisation=organisation,
            code=code,
            name=name,
            language=language,
            email=email,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            escalation_email=escalation_email,
            escalation_name=escalation_name,
        )
        try:
            checked = check_contact(contact)  # refused before any service is contacted
        except DirectoryError as error:
            raise InputError(str(error)) from None
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await MemberStateDirectory(missions.store.pool).upsert(checked)

    stored = _run(main())
    channel = "webhook" if stored.webhook_url else "e-mail"
    console.print(
        f"member state {stored.code} ({stored.name}) of {stored.organisation}: reminders by "
        f"{channel}, escalation to {stored.escalation_email}",
        highlight=False,
    )


@member_state_app.command("list")
def member_state_list(
    organisation: Annotated[str | None, typer.Option(help="only this organisation's")] = None,
) -> None:
    """The directory (never the webhook secrets)."""

    async def main() -> list[MemberStateContact]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await MemberStateDirectory(missions.store.pool).list(organisation)

    contacts = _run(main())
    table = Table(title="Member states")
    for column in ("organisation", "code", "name", "language"):
        table.add_column(column)
    # Addresses are copied from here: never broken across lines.
    for column in ("e-mail", "webhook", "escalation"):
        table.add_column(column, no_wrap=True)
    for contact in contacts:
        escalation = contact.escalation_email
        if contact.escalation_name:
            escalation = f"{contact.escalation_name} <{escalation}>"
        table.add_row(
            contact.organisation,
            contact.code,
            contact.name,
            contact.language,
            contact.email or "",
            f"{contact.webhook_url} (signed)" if contact.webhook_url else "",
            escalation,
        )
    console.print(table)


@member_state_app.command("remove")
def member_state_remove(
    organisation: Annotated[str, typer.Option(help="the organisation it is a member of")],
    code: Annotated[str, typer.Option(help="its ISO 3166-1 alpha-2 code")],
) -> None:
    """Remove a member state from the directory."""

    async def main() -> bool:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await MemberStateDirectory(missions.store.pool).remove(organisation, code)

    if not _run(main()):
        raise InputError(f"no member state {code.upper()} of {organisation!r} in the directory")
    console.print(f"member state {code.upper()} of {organisation} removed", highlight=False)


@ladder_app.command("set")
def ladder_set(
    organisation: Annotated[str, typer.Option(help="whose reminders")],
    kind: Annotated[DeadlineKind, typer.Option(help="which requests")],
    offsets: Annotated[str, typer.Option(help="before the deadline, comma-separated: 7d,2d,0")],
    escalate_after: Annotated[
        str, typer.Option(help="after the deadline: 0 (at once), 12h, 3d")
    ] = "0",
) -> None:
    """Set when an organisation's reminders of one kind go."""
    parsed = parse_offsets(offsets)
    delay = parse_offset(escalate_after, "--escalate-after")

    async def main() -> Ladder:
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                return await LadderPolicies(missions.store.pool).set(
                    organisation, kind, parsed, delay
                )
            except DirectoryError as error:
                raise InputError(str(error)) from None

    ladder = _run(main())
    console.print(
        f"{kind.value} reminders of {organisation}: {_describe_offsets(ladder)} before the "
        f"deadline; escalation {format_offset(ladder.escalate_after)} after it",
        highlight=False,
    )


def _describe_offsets(ladder: Ladder) -> str:
    return ", ".join(format_offset(o) for o in ladder.offsets) or "none"


@ladder_app.command("show")
def ladder_show(organisation: Annotated[str, typer.Option(help="whose ladders")]) -> None:
    """An organisation's ladder for each kind (the default where it has set none)."""

    async def main() -> list[tuple[DeadlineKind, Ladder | None]]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            policies = LadderPolicies(missions.store.pool)
            return [(kind, await policies.get(organisation, kind)) for kind in DeadlineKind]

    table = Table(title=f"Reminder ladders of {organisation}")
    for column in ("kind", "reminders before the deadline", "escalation after", "source"):
        table.add_column(column)
    for kind, ladder in _run(main()):
        shown = ladder or DEFAULT_LADDER
        table.add_row(
            kind.value,
            _describe_offsets(shown),
            format_offset(shown.escalate_after),
            "set" if ladder else "default",
        )
    console.print(table)


def _when(entry: OutboxEntry) -> str:
    moment: datetime = entry.sent_at or entry.updated_at
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _status(entry: OutboxEntry) -> str:
    tries = "1 attempt" if entry.attempts == 1 else f"{entry.attempts} attempts"
    text = f"{entry.status} ({tries})"
    if entry.status == "failed" and entry.error:
        text += f": {entry.error[:120]}"
    return text


def outbox_command(
    mission: Annotated[str | None, typer.Option(help="only this mission's messages")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="at most this many, the latest")
    ] = 200,
) -> None:
    """Messages to member states: sent, or failed so far (with the last error)."""

    async def main() -> list[OutboxEntry]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await outbox(missions.store.pool, mission_id=mission, limit=limit)

    entries = _run(main())
    table = Table(title="Outbox" + (f" of {mission}" if mission else ""))
    for column in ("time", "mission", "member state", "kind", "purpose", "channel", "address"):
        table.add_column(column, no_wrap=True)
    table.add_column("status", min_width=len("failed (99 attempts)"))
    table.add_column("subject")
    for entry in reversed(entries):  # oldest first, as a log reads
        table.add_row(
            _when(entry),
            entry.mission_id,
            entry.member_state,
            entry.kind.value,
            entry.purpose.value,
            entry.channel.value if entry.channel else "",
            entry.address or "",
            _status(entry),
            entry.subject or "",
        )
    console.print(table)
