"""The ``eom`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import structlog
import typer
import uvloop
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from accounts.links import SignInLinks, sign_in_url
from activities.delivery import DeliverySettings
from api.tokens import Role, TokenError, TokenStore, parse_duration
from api.tokens import describe as describe_token
from cli.api_client import ApiClient
from cli.audit import audit_app
from cli.commands import InputError, add_subcommands
from cli.demo import direct, ensure_people, run_demo, through_api
from cli.election_day import coverage_command, report_app, stations_app
from cli.forms import analysis as forms_analysis
from cli.forms import forms_app
from cli.reminder_cli import ladder_app, member_state_app, outbox_command
from cli.services import (
    APPEAR_WITHIN_SECONDS,
    NotRunning,
    Runtime,
    Serving,
    eom_command,
    invoked_as,
    open_missions,
    resolve,
    running_service,
    start_stack,
)
from cli.show import followup_table, missions_table, print_mission, reminders_table
from cli.simulate import simulate_app
from cli.smtp_sink import SmtpSink
from cli.stack import data_dir, free_port
from cli.users import user_app
from domain.commands import Command, DraftStatement
from domain.values import SAFE_INTEGER, DeadlineKind, check_text
from eventstore.projections import MISSIONS, Projector
from forms.collect import collect_settings, qr_svg, qr_terminal, settings_payload
from intake.coverage import COVERAGE
from intake.visits import mission_visits, with_visits
from operations.errors import InvalidInput, UnknownMission
from operations.reminders import LadderAction, signal_ladder
from operations.reminders import reminders as ladder_status
from worker import Settings, configure_logging, install_stop_signals, run_api, run_worker
from workflows.client import CommandRefused

T = TypeVar("T")

app = typer.Typer(
    help="eom: durable, event-sourced election observation missions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
mission_app = typer.Typer(help="Send a command to a mission, or show one.", no_args_is_help=True)
app.add_typer(mission_app, name="mission")

# Off a terminal (a pipe, a log file) tables get room instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _settings(*, quiet: bool = True) -> Settings:
    """Settings from the environment; client commands log warnings only, unless
    EOM_LOG_LEVEL says otherwise."""
    settings = Settings()
    if quiet and "EOM_LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


class _WithoutColorMessage(logging.Filter):
    """uvicorn puts an ANSI-coloured copy of each message in ``color_message``; eom's
    renderers colour on their own, and the copy would be printed as one more field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _service_logging(settings: Settings, *, log_file: Path | None = None) -> None:
    """Logging for the commands that run eom (``up``, ``worker``, ``api``).

    With ``log_file`` (``eom up``): every record at the configured level goes there as
    JSON lines, and the terminal shows the narrative and warnings only, unless
    ``EOM_LOG_LEVEL`` is set (then records at that level are shown too). The local SMTP
    sink's protocol chatter (aiosmtpd's ``mail.log``, a dozen lines per message) is kept
    to warnings; the sink logs one line per stored message itself."""
    configure_logging(settings)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(_WithoutColorMessage())
        if log_file is not None and "EOM_LOG_LEVEL" not in os.environ:
            handler.setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
    if log_file is None:
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=20_000_000, backupCount=2, encoding="utf-8"
    )
    # The same processors as worker.configure_logging's, always rendered as JSON.
    to_file.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    to_file.addFilter(_WithoutColorMessage())
    root.addHandler(to_file)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="run the seed mission once the service is up")] = False,
    ui: Annotated[bool, typer.Option(help="serve the Temporal Web UI")] = True,
) -> None:
    """Run the service: the worker and the HTTP API, plus any embedded service the
    environment does not point at (PostgreSQL from pgserver, the Temporal dev server).
    Ctrl-C stops everything it started; so does its end by any other means (the
    embedded services end with it). One `eom up` per data directory: a second is
    refused at once. Logs go to <data dir>/eom.log; the terminal shows warnings."""
    settings = Settings()
    _service_logging(settings, log_file=data_dir() / "eom.log")
    _run(_up(settings, demo=demo, ui=ui))


@asynccontextmanager
async def serving(
    settings: Settings,
    *,
    ui: bool,
    api: bool,
    stop: asyncio.Event,
    reuse_running: bool,
    command: str,
) -> AsyncIterator[Serving]:
    """Embedded services as needed (or those of a running ``eom up``, with
    ``reuse_running``), the worker, and (with ``api``) the HTTP API on the configured
    port, or a free one if that is taken; all stopped on exit. Unless it reuses a running
    service, it holds the data directory (``cli.services.claim``) under ``command``."""
    if reuse_running:
        settings = await asyncio.to_thread(resolve, settings)
    stack = await start_stack(settings, ui=ui, command=command, hold=not reuse_running)
    tasks: list[asyncio.Task[None]] = []
    sink: SmtpSink | None = None
    try:
        settings = stack.settings
        delivery = DeliverySettings()
        if "EOM_SMTP_HOST" not in os.environ:
            # No mail server configured: a local sink keeps what would have been sent.
            sink = SmtpSink(data_dir() / "mail", port=free_port(delivery.smtp_port))
            sink.start()
            delivery = delivery.model_copy(
                update={"smtp_host": "127.0.0.1", "smtp_port": sink.port}
            )
        tasks.append(asyncio.create_task(run_worker(settings, stop=stop, delivery=delivery)))
        api_url: str | None = None
        if api:
            settings = settings.model_copy(update={"api_port": free_port(settings.api_port)})
            ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            tasks.append(
                asyncio.create_task(
                    run_api(
                        settings,
                        stop=stop,
                        on_start=lambda url: ready.set_result(url),
                        delivery=delivery,
                    )
                )
            )
            api_task = tasks[-1]
            waited: set[asyncio.Future[Any]] = {ready, api_task}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                await api_task  # it failed: let its error through
            api_url = ready.result()
        assert settings.database_url and settings.temporal_address
        stack.publish(
            Runtime(
                pid=os.getpid(),
                database_url=settings.database_url,
                temporal_address=settings.temporal_address,
                temporal_namespace=settings.temporal_namespace,
                task_queue=settings.task_queue,
                ui_url=stack.temporal.ui_url if stack.temporal else None,
                api_url=api_url,
                command=command,
            )
        )
        yield Serving(
            settings=settings,
            stack=stack,
            api_url=api_url,
            tasks=tasks,
            mail=f"{sink.directory} (SMTP sink on port {sink.port})" if sink else None,
        )
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        if sink is not None:
            sink.stop()
        stack.stop()


async def _up(settings: Settings, *, demo: bool, ui: bool) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    # A closed terminal stops eom as Ctrl-C does (its children would end with it anyway).
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stop.set)
    eom = eom_command()
    directory = data_dir()
    started = False
    try:
        async with serving(
            settings, ui=ui, api=True, stop=stop, reuse_running=False, command="eom up"
        ) as service:
            started = True
            settings = service.settings
            ui_url = service.stack.temporal.ui_url if service.stack.temporal else None
            console.print(f"[bold]eom is up[/] — console: [cyan]{service.api_url}/[/]")
            console.print(f"Temporal at {settings.temporal_address}", highlight=False)
            if ui_url:
                console.print(f"Temporal Web UI: [cyan]{ui_url}[/]")
            console.print(f"HTTP API: [cyan]{service.api_url}/v1[/]")
            console.print(f"OpenAPI docs: [cyan]{service.api_url}/v1/docs[/]")
            if service.mail:
                console.print(
                    f"Mail: kept in {service.mail}; `{eom} outbox` lists it",
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(
                "PostgreSQL: "
                + ("embedded (pgserver)" if service.stack.postgres else "DATABASE_URL")
                + f"; task queue {settings.task_queue}",
                highlight=False,
            )
            console.print(
                f"Data: {directory}; logs in {directory / 'eom.log'}. Ctrl-C stops everything.",
                highlight=False,
                soft_wrap=True,
            )
            if demo:
                async with open_missions(settings) as missions:
                    mission_id = await run_demo(direct(missions), missions.store, console, eom=eom)
                    coordinator = await ensure_people(missions.store, mission_id)
                    secret = await SignInLinks(missions.store.pool).issue(
                        coordinator, timedelta(hours=12)
                    )
                console.print(
                    f"Console: [cyan]{service.api_url}/[/]; sign in as the demo coordinator "
                    f"({coordinator.name}) within 12 hours, once: "
                    f"[cyan]{sign_in_url(settings.console_base_url, secret)}[/] "
                    f"(others: `{eom} user link EMAIL`)",
                    highlight=False,
                    soft_wrap=True,
                )
                if ui_url:
                    console.print(f"Temporal Web UI: [cyan]{ui_url}[/] (Ctrl-C to stop)")
            await stop.wait()
    finally:
        if started:
            console.print("eom stopped")


@app.command()
def worker() -> None:
    """Run only the worker, against DATABASE_URL and TEMPORAL_ADDRESS."""
    settings = Settings()
    _service_logging(settings)
    if not settings.database_url or not settings.temporal_address:
        raise NotRunning("the worker needs DATABASE_URL and TEMPORAL_ADDRESS")

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_worker(settings, stop=stop)

    _run(main())


@app.command()
def api() -> None:
    """Run only the HTTP API (EOM_API_HOST:EOM_API_PORT), against DATABASE_URL and
    TEMPORAL_ADDRESS; workers run elsewhere."""
    settings = Settings()
    _service_logging(settings)
    if not settings.database_url or not settings.temporal_address:
        raise NotRunning("the API needs DATABASE_URL and TEMPORAL_ADDRESS")

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_api(
            settings,
            stop=stop,
            on_start=lambda url: console.print(f"HTTP API: {url}/v1 — docs {url}/v1/docs"),
        )

    # The API process alone runs on uvloop (with uvicorn's httptools parser): per request,
    # the event loop's own share is a fifth of the API's CPU on the standard loop.
    uvloop.run(main())


class Via(StrEnum):
    direct = "direct"
    api = "api"


@app.command()
def demo(
    embedded: Annotated[
        bool, typer.Option(help="start (and afterwards stop) an embedded stack of its own")
    ] = False,
    via: Annotated[
        Via, typer.Option(help="send commands straight to the workflows, or through the API")
    ] = Via.direct,
    mission_id: Annotated[
        str | None,
        typer.Option(help="id for the seed mission (default: tc-kz-2021, else -2, -3...)"),
    ] = None,
    pace: Annotated[
        float, typer.Option(min=1, help="seconds between the nomination reminders")
    ] = 4,
) -> None:
    """Drive the seed mission (Turkic Council, Kazakhstan 2021) through every stage,
    with nomination reminders to the member states stopping as each answers. An
    interrupted demo leaves its mission where it was; the next run starts another."""
    _run(_demo(_settings(), embedded=embedded, via=via, mission_id=mission_id, pace=pace))


async def _demo(
    settings: Settings, *, embedded: bool, via: Via, mission_id: str | None, pace: float
) -> None:
    if not embedded:
        configured = bool(settings.database_url and settings.temporal_address)
        appear = 0.0 if configured else APPEAR_WITHIN_SECONDS
        runtime = await asyncio.to_thread(running_service, appear_within=appear)
        if runtime is None and not configured:
            raise NotRunning(
                "eom is not running: start it with `eom up`, or run `eom demo --embedded`"
            )
        settings = resolve(settings)
        api_url = os.environ.get("EOM_API_URL") or (runtime.api_url if runtime else None)
        await _demo_on(settings, via=via, api_url=api_url, mission_id=mission_id, pace=pace)
        return
    stop = asyncio.Event()
    async with serving(
        settings,
        ui=False,
        api=via is Via.api,
        stop=stop,
        reuse_running=True,
        command=invoked_as(),
    ) as service:
        await _demo_on(
            service.settings, via=via, api_url=service.api_url, mission_id=mission_id, pace=pace
        )


async def _demo_on(
    settings: Settings, *, via: Via, api_url: str | None, mission_id: str | None, pace: float
) -> None:
    eom = eom_command()
    async with open_missions(settings) as missions:
        if via is Via.direct:
            await run_demo(
                direct(missions),
                missions.store,
                console,
                mission_id=mission_id,
                pace=pace,
                eom=eom,
            )
            return
        if not api_url:
            raise NotRunning("no API to send to: start eom with `eom up` or set EOM_API_URL")
        async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
            send = through_api(ApiClient(http), TokenStore(missions.store.pool))
            await run_demo(send, missions.store, console, mission_id=mission_id, pace=pace, eom=eom)


class _StatusByDefault(TyperGroup):
    """``eom reminders MISSION`` is ``eom reminders status MISSION``; ``eom reminders
    pause|resume|send-now MISSION ...`` name their command first. (An optional argument
    on the group itself would swallow the command's name.)"""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["status", *args]
        return super().parse_args(ctx, args)


reminders_app = typer.Typer(
    cls=_StatusByDefault,
    help="Reminder ladders to member states: status (the default), pause, resume, send now.",
    no_args_is_help=True,
)
app.add_typer(reminders_app, name="reminders")


@reminders_app.command("status")
def reminders(mission: Annotated[str, typer.Argument(help="the mission")]) -> None:
    """Per member state: what was sent and when, what is due next, escalations."""

    async def main() -> None:
        async with open_missions(_settings()) as missions:
            try:
                found = await ladder_status(missions, mission)
            except UnknownMission as error:
                raise NotRunning(str(error)) from None
        console.print(reminders_table(found))

    _run(main())


def _ladder_command(signal: str, doc: str) -> None:
    def command(
        mission: Annotated[str, typer.Argument(help="the mission")],
        member_state: Annotated[str, typer.Option(help="ISO code of the member state")],
        kind: Annotated[DeadlineKind, typer.Option(help="which deadline")] = (
            DeadlineKind.nomination
        ),
        cycle: Annotated[
            int, typer.Option(min=0, max=1_000_000, help="follow-up cycle (evidence)")
        ] = 0,
    ) -> None:
        async def main() -> None:
            async with open_missions(_settings()) as missions:
                try:
                    await signal_ladder(
                        missions, mission, LadderAction(signal), kind, member_state, cycle
                    )
                except InvalidInput as problem:
                    field = problem.field.replace("_", "-")
                    raise InputError(f"--{field}: {problem.message}") from None
            console.print(f"{kind.value} ladder of {member_state.upper()}: {signal} sent")

        _run(main())

    command.__doc__ = doc
    reminders_app.command(signal.replace("_", "-"))(command)


_ladder_command("pause", "Pause a member state's reminders (nothing is sent until resumed).")
_ladder_command("resume", "Resume a paused ladder.")
_ladder_command("send_now", "Send the next reminder of a ladder now.")

app.add_typer(member_state_app, name="member-state")
app.add_typer(audit_app, name="audit")
app.add_typer(ladder_app, name="ladder")
app.command("outbox")(outbox_command)

followup_app = typer.Typer(help="Recommendation follow-up across missions.", no_args_is_help=True)
app.add_typer(followup_app, name="followup")


@followup_app.command("board")
def followup_board() -> None:
    """Each recommendation's latest rating, and which evidence is overdue, by host."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            states = [await missions.state(s.mission_id) for s in await missions.list()]
        console.print(followup_table(states, now=datetime.now(UTC)))

    _run(main())


token_app = typer.Typer(help="Bearer tokens for the HTTP API.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="what the holder may do")],
    name: Annotated[str, typer.Option(help="who holds it (recorded as the actor)")],
    organisation: Annotated[
        str | None, typer.Option(help="coordinator: only this organisation's missions")
    ] = None,
    mission: Annotated[
        str | None, typer.Option(help="head_of_mission, observer (member_state: optional)")
    ] = None,
    member_state: Annotated[str | None, typer.Option(help="member_state: its ISO code")] = None,
    team: Annotated[str | None, typer.Option(help="observer: the team")] = None,
    expires: Annotated[str | None, typer.Option(help="lifetime: 90d, 12h, 30m")] = None,
    qr_file: Annotated[
        Path | None,
        typer.Option("--qr-file", help="observer: also write ODK Collect's QR code (SVG) here"),
    ] = None,
) -> None:
    """Issue a token; it is printed once and only its hash is stored. For an observer,
    also the QR code that configures ODK Collect for the team's mission (shown once,
    with the token in its server URL)."""

    async def main() -> None:
        try:
            lifetime = parse_duration(expires) if expires else None
            async with open_missions(_settings(), need_temporal=False) as missions:
                token, principal = await TokenStore(missions.store.pool).create(
                    role=role,
                    name=name,
                    organisation=organisation,
                    mission_id=mission,
                    member_state=member_state,
                    team_id=team,
                    expires_in=lifetime,
                )
        except TokenError as error:
            raise InputError(str(error)) from None
        console.print(token, highlight=False, soft_wrap=True)
        errors.print(
            f"token {principal.token_id} for {principal.actor}; keep it secret, it is not "
            "shown again",
            highlight=False,
        )
        if principal.role is Role.observer and principal.mission_id and principal.team_id:
            settings = collect_settings(
                base_url=_settings().console_base_url,
                token=token,
                mission_id=principal.mission_id,
                team_id=principal.team_id,
            )
            payload = settings_payload(settings)
            errors.print(
                "ODK Collect: scan this code (Projects > Add project > Configure with QR "
                "code), or enter the server URL "
                f"{settings['general']['server_url']}",
                highlight=False,
                soft_wrap=True,
            )
            errors.print(qr_terminal(payload), highlight=False, soft_wrap=True)
            if qr_file is not None:
                qr_file.write_text(qr_svg(payload), encoding="utf-8")
                errors.print(f"the QR code is in {qr_file}", highlight=False)

    _run(main())


@token_app.command("list")
def token_list() -> None:
    """Tokens with their role, scope, expiry and status (never the secrets)."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            principals = await TokenStore(missions.store.pool).list()
        now = datetime.now(UTC)
        table = Table(title="API tokens")
        for column in ("id", "name", "role", "scope", "expires", "status"):
            table.add_column(column)
        for principal in principals:
            table.add_row(*describe_token(principal, now).values())
        console.print(table)

    _run(main())


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="the token's id")]) -> None:
    """Revoke a token: it is refused from now on."""

    async def main() -> None:
        try:
            parsed = uuid.UUID(token_id)
        except ValueError:
            raise InputError(f"{token_id!r} is not a token id (a UUID)") from None
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                principal = await TokenStore(missions.store.pool).revoke(parsed)
            except TokenError as error:
                raise InputError(str(error)) from None
        console.print(f"token {principal.token_id} ({principal.actor}) revoked")

    _run(main())


projections_app = typer.Typer(help="Read models kept from the event log.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
app.add_typer(stations_app, name="stations")
app.add_typer(report_app, name="report")
app.command("coverage")(coverage_command)
app.add_typer(simulate_app, name="simulate")
app.add_typer(user_app, name="user")
app.add_typer(forms_app, name="forms")
app.command("analysis")(forms_analysis)


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Empty the read models (mission list, timelines, election-day coverage) and rebuild
    them from the log."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            for projection in (MISSIONS, COVERAGE):
                started = time.perf_counter()
                count = await Projector(missions.store, projection).rebuild()
                console.print(
                    f"{projection.name}: projected {count} events in "
                    f"{time.perf_counter() - started:.2f}s"
                )

    _run(main())


@app.command("missions")
def list_missions() -> None:
    """List missions from the event store."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            console.print(missions_table(await missions.list()))

    _run(main())


@mission_app.command("restore")
def restore(mission_id: str) -> None:
    """Start a fresh workflow from a mission's stored stream when its workflow was lost:
    same state, no new event."""

    async def main() -> None:
        async with open_missions(_settings()) as missions:
            run_id = await missions.restore(mission_id)
            state = await missions.live_state(mission_id)
        console.print(
            f"mission {mission_id} restored (run {run_id}) at v{state.version}, "
            f"stage {state.stage.value if state.stage else '-'}"
        )

    _run(main())


@mission_app.command("show")
def show(
    mission_id: str,
    version: Annotated[
        int | None, typer.Option(min=1, max=SAFE_INTEGER, help="the state as of this version")
    ] = None,
) -> None:
    """A mission's stage, participants, record and whole timeline, from its events."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            events = await missions.store.read_stream(mission_id, to_version=version)
            if not events:
                raise NotRunning(f"no mission {mission_id!r} in the event store")
            state = await missions.state(mission_id, version=version)
            chain = await missions.store.verify_stream(mission_id)
            visits = await mission_visits(
                missions.store, mission_id, time_zone=state.time_zone, as_of_version=version
            )
            print_mission(console, with_visits(state, visits), events, chain)

    _run(main())


def _send(mission_id: str, command: Command, actor: str) -> None:
    try:
        actor = check_text(actor, multiline=False, max_length=200)
    except ValueError as error:
        raise InputError(f"--actor {actor!r} {error}") from None

    async def main() -> None:
        async with open_missions(_settings()) as missions:
            result = await missions.execute(mission_id, command, actor=actor)
            recorded = await missions.store.read_stream(
                mission_id,
                from_version=result.version - len(result.event_types) + 1,
                to_version=result.version,
            )
        console.print(
            f"{command.type} recorded: mission {result.mission_id} v{result.version}, "
            f"stage {result.stage.value}; events {', '.join(result.event_types)}",
            highlight=False,
        )
        for event in recorded:
            if event.event_type in ("StatementDrafted", "StatementApproved", "StatementPublished"):
                # In full: approve-statement and publish-statement name the text by it.
                console.print(
                    f"draft {event.data['draft_id']}: text sha256 {event.data['text_sha256']}",
                    highlight=False,
                    soft_wrap=True,
                )
        if isinstance(command, DraftStatement):
            console.print(
                f"approve it: eom mission approve-statement {mission_id} --draft-id "
                f"{command.draft_id} --approved-by NAME",
                highlight=False,
                soft_wrap=True,
            )

    _run(main())


def _draft_sha256(mission_id: str, draft_id: str) -> str:
    """The sha256 of a draft's text, as the mission's history records it."""

    async def main() -> str:
        async with open_missions(_settings(), need_temporal=False) as missions:
            state = await missions.state(mission_id)
        if state.stage is None:
            raise NotRunning(f"no mission {mission_id!r} in the event store")
        draft = state.drafts.get(draft_id)
        if draft is None:
            drafts = ", ".join(state.drafts) or "none yet"
            raise InputError(
                f"--draft-id: mission {mission_id} has no draft {draft_id!r} (drafts: {drafts})"
            )
        return draft.text_sha256

    return _run(main())


add_subcommands(mission_app, _send, draft_sha256=_draft_sha256)


def run() -> None:
    """Entry point: every expected failure is one line on stderr and a non-zero exit."""
    for position, argument in enumerate(sys.argv[1:], start=1):
        # Bytes that are not UTF-8 reach Python as lone surrogates (PEP 383): no name,
        # id or text eom stores can hold them.
        if any("\ud800" <= char <= "\udfff" for char in argument):
            errors.print(f"error: argument {position} ({argument!r}) is not UTF-8 text")
            sys.exit(2)
    try:
        app(prog_name="eom")
    except CommandRefused as refused:
        errors.print(f"refused: {refused}", highlight=False)
        # Bad input is exit code 2 wherever it was found (here, or by the event store).
        sys.exit(2 if refused.rule in ("invalid_input", "mission_id_mismatch") else 1)
    except InputError as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)
    except NotRunning as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(3)


if __name__ == "__main__":
    run()
