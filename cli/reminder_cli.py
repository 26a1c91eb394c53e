"""``eom member-state``, ``eom ladder`` and ``eom outbox``: the reminders' directory, their
timing, and what was sent.

Sub-apps and a plain command function; ``cli.main`` registers them (this module does not
import it, which would be circular).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
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
from cli.options import InputError, format_offset, parse_offset, parse_offsets, parse_since
from cli.services import open_missions
from domain.values import DeadlineKind, DeliveryPurpose
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


class OutboxStatus(StrEnum):
    sent = "sent"
    failed = "failed"


_CODE = re.compile(r"[A-Za-z]{2}")


def outbox_command(
    mission: Annotated[str | None, typer.Option(help="only this mission's messages")] = None,
    member_state: Annotated[
        str | None,
        typer.Option(
            "--member-state",
            "--recipient",
            help="only those to this state, by ISO code (a member state, or the host asked "
            "for evidence); e.g. AZ",
        ),
    ] = None,
    kind: Annotated[DeadlineKind | None, typer.Option(help="only this kind of request")] = None,
    purpose: Annotated[
        DeliveryPurpose | None, typer.Option(help="only requests, reminders or escalations")
    ] = None,
    status: Annotated[OutboxStatus | None, typer.Option(help="only sent, or only failed")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="only those last tried since: a duration back (2d, 12h) or a day or date "
            "and time, UTC without an offset; e.g. 2d or 2021-01-05 or 2021-01-05T10:00+06:00"
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="at most this many, the latest")
    ] = 200,
    as_json: Annotated[
        bool, typer.Option("--json", help="print them as a JSON array, bodies included")
    ] = False,
) -> None:
    """Messages to member states, oldest first: when, to whom, what, by which channel and
    address, and whether it was sent or failed so far (with the last error). Times are UTC."""
    if member_state is not None and not _CODE.fullmatch(member_state.strip()):
        raise InputError(f"--member-state: {member_state!r} is not an ISO 3166-1 alpha-2 code")
    code = member_state.strip().upper() if member_state else None
    after = parse_since(since, "--since", now=datetime.now(UTC)) if since else None

    async def main() -> list[OutboxEntry]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await outbox(
                missions.store.pool,
                mission_id=mission,
                member_state=code,
                kind=kind,
                purpose=purpose,
                status=status.value if status else None,
                since=after,
                limit=limit,
            )

    entries = list(reversed(_run(main())))  # oldest first, as a log reads
    if as_json:
        typer.echo(
            json.dumps([e.model_dump(mode="json") for e in entries], indent=2, ensure_ascii=False)
        )
        return
    filters = [
        f"mission {mission}" if mission else "",
        f"to {code}" if code else "",
        " ".join(x.value for x in (kind, purpose, status) if x is not None),
        f"since {after:%Y-%m-%d %H:%M:%S %Z}" if after else "",
    ]
    console.print(
        escape(
            outbox_listing(
                entries, filters=[f for f in filters if f], limit=limit, by_mission=not mission
            )
        ),
        highlight=False,
        soft_wrap=True,
    )


def outbox_listing(
    entries: list[OutboxEntry], *, filters: list[str], limit: int, by_mission: bool = True
) -> str:
    """The outbox for a person, in lines that fit the terminal (``COLUMNS`` if set, else
    the terminal's width, else the console's; never fewer than 60 columns). Per message a
    line with when (UTC), mission (unless ``by_mission`` is false: the filters name it),
    state, kind and purpose, and status; then, indented, the channel and address (never
    broken), the subject, the last error."""
    width = max(shutil.get_terminal_size((console.width, 24)).columns, 60)
    heading = f"Outbox{' (' + ', '.join(filters) + ')' if filters else ''}: "
    heading += f"{len(entries)} message{'' if len(entries) == 1 else 's'}"
    if len(entries) == limit:
        heading += f", the latest {limit} (--limit for more)"
    lines = [heading + (", oldest first; times UTC" if entries else "")]
    missions = max((len(e.mission_id) + 2 for e in entries if by_mission), default=0)
    what = max((len(f"{e.kind.value} {e.purpose.value}") for e in entries), default=0)
    for entry in entries:
        moment = (entry.sent_at or entry.updated_at).astimezone(UTC)
        tries = "1 attempt" if entry.attempts == 1 else f"{entry.attempts} attempts"
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S}  {entry.mission_id if by_mission else '':<{missions}}"
            f"{entry.member_state}  {entry.kind.value + ' ' + entry.purpose.value:<{what}}  "
            f"{entry.status} ({tries})"
        )
        details = [
            f"{entry.channel.value} {entry.address}"
            if entry.channel and entry.address
            else "no channel yet (not in the directory when tried)",
            entry.subject or "",
            f"error: {entry.error}" if entry.status == "failed" and entry.error else "",
        ]
        for detail in details:
            if detail:
                lines += textwrap.wrap(
                    detail,
                    width=width,
                    initial_indent="    ",
                    subsequent_indent="      ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
    return "\n".join(lines)
