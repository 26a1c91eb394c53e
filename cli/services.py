"""Finding (or starting) the services a CLI command needs.

``eom up`` records what it started in ``<data dir>/runtime.json``; other commands read it
when ``DATABASE_URL`` / ``TEMPORAL_ADDRESS`` are not set. Read-only commands open the
embedded database directly when nothing runs, so a mission can be shown offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from cli.stack import (
    EmbeddedPostgres,
    TemporalDevServer,
    data_dir,
    start_embedded_postgres,
    start_temporal_dev_server,
    wait_for_temporal,
)
from eventstore.migrations import migrate
from eventstore.store import EventStore, create_pool
from worker import Settings, connect_client
from workflows.client import Missions


class NotRunning(Exception):
    """A service the command needs is not there; reported as one line, exit code 3."""


@dataclass
class Runtime:
    pid: int
    database_url: str
    temporal_address: str
    temporal_namespace: str
    task_queue: str
    ui_url: str | None
    api_url: str | None = None


def runtime_path() -> Path:
    return data_dir() / "runtime.json"


def read_runtime() -> Runtime | None:
    try:
        runtime = Runtime(**json.loads(runtime_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(runtime.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return runtime  # alive, under another user
    return runtime


def write_runtime(runtime: Runtime) -> None:
    path = runtime_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(runtime), indent=2), encoding="utf-8")


def clear_runtime() -> None:
    with contextlib.suppress(FileNotFoundError):
        runtime_path().unlink()


def resolve(settings: Settings) -> Settings:
    """Fill unset addresses from a running ``eom up``."""
    runtime = read_runtime()
    if runtime is None:
        return settings
    updates = {}
    if not settings.database_url:
        updates["database_url"] = runtime.database_url
    if not settings.temporal_address:
        updates["temporal_address"] = runtime.temporal_address
        updates["temporal_namespace"] = runtime.temporal_namespace
        updates["task_queue"] = runtime.task_queue
    return settings.model_copy(update=updates)


@dataclass
class Stack:
    """Services started by this process (and stopped by it)."""

    settings: Settings
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None

    def stop(self) -> None:
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            self.postgres.stop()


def embedded_database() -> EmbeddedPostgres:
    return start_embedded_postgres(data_dir() / "postgres")


async def start_stack(settings: Settings, *, ui: bool = True) -> Stack:
    """Start what the settings do not point at: embedded PostgreSQL, the dev server."""
    stack = Stack(settings=settings)
    try:
        if not settings.database_url:
            stack.postgres = await asyncio.to_thread(embedded_database)
            settings = settings.model_copy(update={"database_url": stack.postgres.url})
        if not settings.temporal_address:
            directory = data_dir()
            stack.temporal = await asyncio.to_thread(
                lambda: start_temporal_dev_server(
                    port=7233,
                    ui=ui,
                    db_file=directory / "temporal.db",
                    log_path=directory / "temporal.log",
                    namespace=settings.temporal_namespace,
                )
            )
            settings = settings.model_copy(update={"temporal_address": stack.temporal.address})
            await wait_for_temporal(stack.temporal.address, settings.temporal_namespace)
    except BaseException:
        stack.stop()
        raise
    stack.settings = settings
    return stack


@dataclass
class Serving:
    """A running service: its settings, what was started for it, where its API is."""

    settings: Settings
    stack: Stack
    api_url: str | None
    tasks: list[asyncio.Task[None]]
    mail: str | None = None


@asynccontextmanager
async def open_missions(
    settings: Settings, *, need_temporal: bool = True
) -> AsyncIterator[Missions]:
    """A ``Missions`` client on the running service (or, read-only, on the embedded
    database when nothing runs)."""
    settings = resolve(settings)
    embedded: EmbeddedPostgres | None = None
    if not settings.database_url:
        if need_temporal:
            raise NotRunning(
                "eom is not running: start it with `eom up` (or set DATABASE_URL and "
                "TEMPORAL_ADDRESS)"
            )
        embedded = await asyncio.to_thread(embedded_database)
        settings = settings.model_copy(update={"database_url": embedded.url})
    if need_temporal and not settings.temporal_address:
        raise NotRunning(
            "Temporal is not reachable: start eom with `eom up` or set TEMPORAL_ADDRESS"
        )
    assert settings.database_url
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        client = await connect_client(settings) if need_temporal else None
        yield Missions(client=client, store=EventStore(pool), task_queue=settings.task_queue)
    finally:
        await pool.close()
        if embedded is not None:
            embedded.stop()
