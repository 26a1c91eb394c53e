"""``eom audit``: for someone who trusts neither the workflow engine nor the operators.

Everything here reads the event store and folds it with the domain's ``evolve``;
Temporal is not involved.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from cli.commands import InputError
from cli.export import export_command
from cli.services import NotRunning, open_missions
from cli.show import print_mission
from domain import fold, load_event_json
from domain.values import FIRST_DAY, LAST_DAY, SAFE_INTEGER
from eventstore.store import EventStore, read_stream_data_on
from operations.audit import fingerprint_problems as fingerprint_problems
from operations.audit import history_at as history_at
from operations.audit import replay as replay_mission
from operations.audit import verify_mission, verify_streams
from operations.errors import InvalidInput, UnknownMission
from worker import WORKFLOW_RUNNER, Settings, configure_logging, data_converter
from workflows.followup import FollowUpWorkflow
from workflows.mission import MissionWorkflow
from workflows.reminders import ReminderLadderWorkflow

audit_app = typer.Typer(
    help="Replay, verify and fingerprint missions' histories.", no_args_is_help=True
)
console = Console(width=None if sys.stdout.isatty() else 160)


def _settings() -> Settings:
    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


@audit_app.command("verify")
def verify(
    mission: Annotated[str | None, typer.Argument(help="a mission (or --all)")] = None,
    every: Annotated[bool, typer.Option("--all", help="every stream in the store")] = False,
) -> None:
    """Recompute every hash and chain link; name the first break of each stream (changed,
    removed, inserted or reordered event). Exits 1 on any break."""
    if (mission is None) == (not every):
        raise InputError("name one mission, or give --all")

    async def main() -> int:
        async with open_missions(_settings(), need_temporal=False) as missions:
            store = missions.store
            try:
                verified = (
                    await verify_streams(store, [s for s, _ in await store.stream_ids()])
                    if every
                    else await verify_mission(store, mission or "", election_day=False)
                )
            except UnknownMission as error:
                raise NotRunning(str(error)) from None
        table = Table(title="Hash-chain verification")
        for column in ("stream", "events", "head", "verdict"):
            table.add_column(column, overflow="fold")
        for verdict in verified.streams:
            table.add_row(
                verdict.stream_id,
                str(verdict.events),
                verdict.head_hash[:16],
                "[green]unbroken[/]" if verdict.ok else "[red]" + "; ".join(verdict.problems),
            )
        console.print(table)
        console.print(
            f"{verified.verified} stream(s) verified, {verified.broken} with breaks",
            style="red" if verified.broken else "green",
        )
        return 1 if verified.broken else 0

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)


@audit_app.command("fingerprint")
def fingerprint(mission: Annotated[str, typer.Argument(help="the mission")]) -> None:
    """The head of the mission's chain: version and hash (what a statement cites)."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            events = await missions.store.read_stream(mission)
            if not events:
                raise NotRunning(f"no mission {mission!r} in the event store")
            check = await missions.store.verify_stream(mission)
        console.print(
            f"{mission} v{events[-1].stream_version} {check.head_hash}",
            highlight=False,
            soft_wrap=True,
        )
        if not check.ok:
            console.print("[red]the chain is broken; see eom audit verify[/]")

    asyncio.run(main())


@audit_app.command("replay")
def replay(
    mission: Annotated[str | None, typer.Argument(help="a mission (or --all)")] = None,
    at: Annotated[
        datetime | None,
        typer.Option(
            help="as the store knew it at this time (ISO 8601; without an offset, the "
            "mission's host time)"
        ),
    ] = None,
    version: Annotated[
        int | None, typer.Option(min=1, max=SAFE_INTEGER, help="as of this version")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="replay every mission")] = False,
) -> None:
    """Rebuild a mission's state by folding its events with ``evolve`` (no Temporal) and
    print it with its timeline, as of a time or a version; ``--all`` replays every
    mission and reports throughput."""
    if (mission is None) == (not every):
        raise InputError("name one mission, or give --all")
    if at is not None and version is not None:
        raise InputError("give --at or --version, not both")
    if at is not None and not FIRST_DAY <= at.date() <= LAST_DAY:
        raise InputError(f"--at must lie between {FIRST_DAY} and {LAST_DAY}")

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            store = missions.store
            if every:
                await _replay_all(store)
                return
            assert mission is not None
            try:
                replayed = await replay_mission(store, mission, at=at, version=version)
            except UnknownMission as error:
                raise NotRunning(str(error)) from None
            except InvalidInput as problem:
                raise InputError(f"--{problem.field} {problem.message}") from None
            print_mission(console, replayed.state, replayed.events, replayed.chain)
            console.print(f"as of v{replayed.version}, recorded {replayed.recorded_at.isoformat()}")

    asyncio.run(main())


async def _replay_all(store: EventStore) -> None:
    streams = await store.stream_ids()
    started = time.perf_counter()
    total = 0
    missions = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("replaying", total=len(streams))
        async with store.connection() as conn:
            for stream_id, _ in streams:
                data = await read_stream_data_on(conn, stream_id)
                try:
                    state = fold(load_event_json(d) for d in data)
                except ValueError:
                    progress.advance(task)
                    continue  # not a mission stream
                missions += state.stage is not None
                total += len(data)
                progress.advance(task)
    elapsed = time.perf_counter() - started
    console.print(
        f"{missions} missions, {total} events replayed in {elapsed:.2f}s "
        f"({total / elapsed if elapsed else 0:.0f} events/s)"
    )


def differences(replayed: object, live: object, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as ``path: replayed != live``."""
    if isinstance(replayed, dict) and isinstance(live, dict):
        found = []
        for key in sorted(set(replayed) | set(live), key=str):
            found += differences(
                replayed.get(key), live.get(key), f"{path}.{key}" if path else str(key)
            )
        return found
    if isinstance(replayed, list) and isinstance(live, list) and len(replayed) == len(live):
        return [
            d
            for i, (a, b) in enumerate(zip(replayed, live, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return (
        [] if replayed == live else [f"{path or 'state'}: replayed {replayed!r} != live {live!r}"]
    )


@audit_app.command("diff")
def diff(mission: Annotated[str, typer.Argument(help="the mission")]) -> None:
    """The state replayed from the store against the live workflow's: any difference is a
    finding (exit 1)."""

    async def main() -> int:
        async with open_missions(_settings()) as missions:
            replayed = await missions.state(mission)
            if replayed.stage is None:
                raise NotRunning(f"no mission {mission!r} in the event store")
            live = await missions.live_state(mission)
        # The workflow holds the state its rules need (no free texts): compared as such.
        found = differences(
            replayed.for_decisions().model_dump(mode="json"), live.model_dump(mode="json")
        )
        for finding in found:
            console.print(f"[red]finding[/] {finding}", highlight=False, soft_wrap=True)
        console.print(
            f"{mission}: replay and live workflow agree at v{replayed.version}"
            if not found
            else f"{mission}: {len(found)} difference(s)",
            style="red" if found else "green",
        )
        return 1 if found else 0

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)


@audit_app.command("workflows")
def workflows(
    files: Annotated[list[Path] | None, typer.Argument(help="workflow history JSON files")] = None,
    from_server: Annotated[
        bool, typer.Option("--from-server", help="replay the server's mission histories")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="at most this many from the server")
    ] = 100,
) -> None:
    """Replay stored workflow histories against the current code (Temporal's Replayer):
    a change that would break running missions fails here before it is deployed."""
    if not files and not from_server:
        raise InputError("give history files, or --from-server")

    async def main() -> int:
        replayer = Replayer(
            workflows=[MissionWorkflow, ReminderLadderWorkflow, FollowUpWorkflow],
            data_converter=data_converter,
            workflow_runner=WORKFLOW_RUNNER,
        )
        histories = [load_history(path) for path in files or []]
        if from_server:
            async with open_missions(_settings()) as missions:
                async for execution in missions.client.list_workflows(
                    "WorkflowType = 'MissionWorkflow'", limit=limit
                ):
                    handle = missions.client.get_workflow_handle(
                        execution.id, run_id=execution.run_id
                    )
                    histories.append(await handle.fetch_history())
        failures = 0
        for history in histories:
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            if result.replay_failure is not None:
                failures += 1
                console.print(f"[red]{history.workflow_id}[/]: {result.replay_failure}")
        console.print(
            f"{len(histories)} histories replayed, {failures} failed",
            style="red" if failures else "green",
        )
        return 1 if failures else 0

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)


def load_history(path: Path) -> WorkflowHistory:
    """A history file (as `temporal workflow show --output json` writes it, optionally
    with the ``workflow_id`` it ran under)."""
    try:
        recorded = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read a workflow history from {path}: {error}") from None
    return WorkflowHistory.from_json(recorded.pop("workflow_id", path.stem), recorded)


audit_app.command("export")(export_command)
