"""``eom user``: the console's people. Add, list, change and disable them, and give one
a one-time sign-in link (printed for the operator, or e-mailed to the person).

A sub-app; ``cli.main`` registers it (this module does not import it, which would be
circular).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from accounts.directory import UserDirectory
from accounts.links import MAX_LINK_TTL, SignInLinks, sign_in_url
from accounts.mail import MailError, send_sign_in_link
from accounts.users import Language, User, UserError
from activities.delivery import DeliverySettings
from api.tokens import Role, TokenError, parse_duration
from cli.options import InputError
from cli.services import open_missions, read_runtime
from worker import Settings, configure_logging

T = TypeVar("T")

console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

user_app = typer.Typer(
    help="The console's people: who may sign in, with which role and scope.",
    no_args_is_help=True,
)

_FLAGS = {
    "email": "--email",
    "name": "--name",
    "language": "--language",
    "role": "--role",
    "organisation": "--organisation",
    "mission_id": "--mission",
    "member_state": "--member-state",
    "team_id": "--team",
    "ttl": "--ttl",
    "actor": "--actor",
}

Actor = Annotated[
    str, typer.Option(envvar="EOM_ACTOR", help="who makes the change (recorded in the event)")
]


def _settings() -> Settings:
    """As ``cli.main``'s: warnings only, unless EOM_LOG_LEVEL says otherwise."""
    settings = Settings()
    if "EOM_LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _refused(error: UserError) -> InputError:
    """The directory's refusal as the CLI reports it: naming the option."""
    flag = _FLAGS.get(error.field)
    message = str(error)
    if flag:
        message = flag + message.removeprefix(error.field)
    return InputError(message)


def describe(user: User) -> dict[str, str]:
    """A user as a row of ``eom user list``."""
    return {
        "email": user.email,
        "name": user.name,
        "role": user.role.value,
        "scope": user.scope,
        "language": user.language.value,
        "added": user.added_at.strftime("%Y-%m-%d %H:%M"),
        "status": (f"disabled {user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else "active"),
    }


def console_base_url(settings: Settings) -> str:
    """Where sign-in links point: ``EOM_CONSOLE_URL`` if set, else the running eom's API
    address (its runtime file), else the one the settings would serve on."""
    if settings.console_url:
        return settings.console_url
    runtime = read_runtime()
    if runtime is not None and runtime.api_url:
        return runtime.api_url.rstrip("/")
    return settings.console_base_url


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Option(help="their e-mail address (unique, any case)")],
    name: Annotated[str, typer.Option(help="their name, as the record shows it")],
    role: Annotated[Role, typer.Option(help="what they may do (the API's roles)")],
    language: Annotated[Language, typer.Option(help="the language they read")] = Language.en,
    organisation: Annotated[
        str | None, typer.Option(help="coordinator: only this organisation's missions")
    ] = None,
    mission: Annotated[
        str | None, typer.Option(help="head_of_mission, observer (member_state: optional)")
    ] = None,
    member_state: Annotated[str | None, typer.Option(help="member_state: its ISO code")] = None,
    team: Annotated[str | None, typer.Option(help="observer: the team")] = None,
    actor: Actor = "operator",
) -> None:
    """Add a person to the directory (recorded as a UserAdded event)."""

    async def main() -> User:
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                return await UserDirectory(missions.store).add(
                    email=email,
                    name=name,
                    role=role,
                    language=language,
                    organisation=organisation,
                    mission_id=mission,
                    member_state=member_state,
                    team_id=team,
                    actor=actor,
                )
            except UserError as error:
                raise _refused(error) from None

    user = _run(main())
    console.print(
        f"added {escape(user.name)} <{escape(user.email)}>: {user.role.value}, "
        f"scope {escape(user.scope)}, user id {user.user_id}",
        highlight=False,
        soft_wrap=True,
    )


@user_app.command("list")
def user_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON, one object per user")] = False,
) -> None:
    """Every user with their role, scope, language and status."""

    async def main() -> list[User]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await UserDirectory(missions.store).list()

    users = _run(main())
    if as_json:
        print(json.dumps([u.model_dump(mode="json") for u in users], indent=2))
        return
    table = Table(title="Console users")
    table.add_column("email", no_wrap=True)
    for column in ("name", "role", "scope", "language", "added", "status"):
        table.add_column(column, overflow="fold")
    for user in users:
        table.add_row(*(escape(v) for v in describe(user).values()))
    console.print(table)


@user_app.command("update")
def user_update(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    name: Annotated[str | None, typer.Option(help="their new name")] = None,
    language: Annotated[Language | None, typer.Option(help="their new language")] = None,
    actor: Actor = "operator",
) -> None:
    """Change a person's name or language (recorded as a UserUpdated event)."""
    if name is None and language is None:
        raise InputError("give --name or --language")

    async def main() -> User:
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                return await UserDirectory(missions.store).update(
                    email, name=name, language=language, actor=actor
                )
            except UserError as error:
                raise _refused(error) from None

    user = _run(main())
    console.print(
        f"{escape(user.email)}: {escape(user.name)}, {user.language.value}",
        highlight=False,
        soft_wrap=True,
    )


@user_app.command("disable")
def user_disable(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    actor: Actor = "operator",
) -> None:
    """Disable a person: their links are refused and their sessions end at once."""

    async def main() -> User:
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                return await UserDirectory(missions.store).disable(email, actor)
            except UserError as error:
                raise _refused(error) from None

    user = _run(main())
    assert user.disabled_at is not None
    console.print(
        f"{escape(user.email)} disabled since {user.disabled_at:%Y-%m-%d %H:%M:%S} UTC",
        highlight=False,
        soft_wrap=True,
    )


@user_app.command("link")
def user_link(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    ttl: Annotated[
        str, typer.Option(help=f"how long the link works: 15m, 2h, at most {MAX_LINK_TTL.days}d")
    ] = "15m",
    send: Annotated[
        bool, typer.Option("--send", help="e-mail it to the user instead of printing it")
    ] = False,
) -> None:
    """A one-time sign-in link for a user: printed (for the operator to pass on), or
    e-mailed to them in their language with --send. It works once, until it expires."""
    try:
        lifetime = parse_duration(ttl)
    except TokenError as error:
        raise InputError(str(error).replace("--expires", "--ttl")) from None
    settings = _settings()

    async def main() -> tuple[User, str, datetime]:
        async with open_missions(settings, need_temporal=False) as missions:
            user = await UserDirectory(missions.store).by_email(email)
            if user is None:
                raise InputError(f"no user has the address {email.strip()!r}")
            if user.disabled_at is not None:
                raise InputError(f"{user.email} is disabled")
            try:
                expires_at = datetime.now(UTC) + lifetime
                secret = await SignInLinks(missions.store.pool).issue(user, lifetime)
            except UserError as error:
                raise _refused(error) from None
        return user, sign_in_url(console_base_url(settings), secret), expires_at

    user, url, expires_at = _run(main())
    if not send:
        print(url)
        errors.print(
            f"a one-time sign-in link for {escape(user.email)}, valid for {ttl.strip()}; "
            "keep it secret",
            highlight=False,
        )
        return
    try:
        _run(send_sign_in_link(user, url, DeliverySettings(), expires_at=expires_at))
    except MailError as error:
        errors.print(f"error: {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"sign-in link sent to {escape(user.email)} ({user.language.value}), "
        f"valid for {ttl.strip()}",
        highlight=False,
        soft_wrap=True,
    )
