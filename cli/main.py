"""The ``eom`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from cli.commands import InputError, add_subcommands
from cli.demo import run_demo
from cli.missions import CommandRefused
from cli.services import (
    NotRunning,
    Runtime,
    clear_runtime,
    open_missions,
    read_runtime,
    resolve,
    start_stack,
    write_runtime,
)
from cli.show import missions_table, print_mission
from worker import Settings, configure_logging, install_stop_signals, run_worker

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


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="run the seed mission once the service is up")] = False,
    ui: Annotated[bool, typer.Option(help="serve the Temporal Web UI")] = True,
) -> None:
    """Run the service: the worker, and any embedded service not configured by the
    environment (PostgreSQL from pgserver, the Temporal dev server). Ctrl-C stops it."""
    _run(_up(_settings(quiet=False), demo=demo, ui=ui))


async def _up(settings: Settings, *, demo: bool, ui: bool) -> None:
    running = read_runtime()
    if running is not None and running.pid != os.getpid():
        raise NotRunning(f"eom is already running (pid {running.pid}); stop it first")
    stop = asyncio.Event()
    install_stop_signals(stop)
    stack = await start_stack(settings, ui=ui)
    settings = stack.settings
    assert settings.database_url and settings.temporal_address
    ui_url = stack.temporal.ui_url if stack.temporal else None
    write_runtime(
        Runtime(
            pid=os.getpid(),
            database_url=settings.database_url,
            temporal_address=settings.temporal_address,
            temporal_namespace=settings.temporal_namespace,
            task_queue=settings.task_queue,
            ui_url=ui_url,
        )
    )
    try:
        console.print(f"[bold]eom is up[/] — Temporal at {settings.temporal_address}")
        if ui_url:
            console.print(f"Temporal Web UI: [cyan]{ui_url}[/]")
        console.print(
            "PostgreSQL: "
            + ("embedded (pgserver)" if stack.postgres else "DATABASE_URL")
            + f"; task queue {settings.task_queue}. Ctrl-C stops everything."
        )
        worker = asyncio.create_task(run_worker(settings, stop=stop))
        if demo:
            async with open_missions(settings) as missions:
                await run_demo(missions, console)
            if ui_url:
                console.print(f"Temporal Web UI: [cyan]{ui_url}[/] (Ctrl-C to stop)")
        await worker
    finally:
        clear_runtime()
        stack.stop()
        console.print("eom stopped")


@app.command()
def worker() -> None:
    """Run only the worker, against DATABASE_URL and TEMPORAL_ADDRESS."""
    settings = _settings(quiet=False)
    if not settings.database_url or not settings.temporal_address:
        raise NotRunning("the worker needs DATABASE_URL and TEMPORAL_ADDRESS")

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_worker(settings, stop=stop)

    _run(main())


@app.command()
def demo(
    embedded: Annotated[
        bool, typer.Option(help="start (and afterwards stop) an embedded stack of its own")
    ] = False,
    mission_id: Annotated[str | None, typer.Option(help="id for the seed mission")] = None,
) -> None:
    """Drive the seed mission (Turkic Council, Kazakhstan 2021) through every stage."""
    _run(_demo(_settings(), embedded=embedded, mission_id=mission_id))


async def _demo(settings: Settings, *, embedded: bool, mission_id: str | None) -> None:
    if not embedded:
        async with open_missions(settings) as missions:
            await run_demo(missions, console, mission_id=mission_id)
        return
    settings = resolve(settings)
    stack = await start_stack(settings, ui=False)
    stop = asyncio.Event()
    try:
        worker_task = asyncio.create_task(run_worker(stack.settings, stop=stop))
        try:
            async with open_missions(stack.settings) as missions:
                await run_demo(missions, console, mission_id=mission_id)
        finally:
            stop.set()
            await worker_task
    finally:
        stack.stop()


@app.command("missions")
def list_missions() -> None:
    """List missions from the event store."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            console.print(missions_table(await missions.list()))

    _run(main())


@mission_app.command("show")
def show(
    mission_id: str,
    version: Annotated[int | None, typer.Option(help="the state as of this version")] = None,
) -> None:
    """A mission's stage, participants, record and whole timeline, from its events."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            events = await missions.store.read_stream(mission_id, to_version=version)
            if not events:
                raise NotRunning(f"no mission {mission_id!r} in the event store")
            state = await missions.state(mission_id, version=version)
            chain = await missions.store.verify_stream(mission_id)
            print_mission(console, state, events, chain)

    _run(main())


def _send(mission_id: str, command: Any, actor: str) -> None:
    async def main() -> None:
        async with open_missions(_settings()) as missions:
            result = await missions.execute(mission_id, command, actor=actor)
        console.print(
            f"{command.type} recorded: mission {result.mission_id} v{result.version}, "
            f"stage {result.stage.value}; events {', '.join(result.event_types)}",
            highlight=False,
        )

    _run(main())


add_subcommands(mission_app, _send)


def run() -> None:
    """Entry point: every expected failure is one line on stderr and a non-zero exit."""
    try:
        app(prog_name="eom")
    except CommandRefused as refused:
        errors.print(f"refused: {refused}", highlight=False)
        sys.exit(1)
    except InputError as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(2)
    except NotRunning as error:
        errors.print(f"error: {error}", highlight=False)
        sys.exit(3)
