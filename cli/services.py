"""Finding (or starting) the services a CLI command needs.

One process at a time runs a data directory's embedded services: it holds
``<data dir>/eom.lock`` (``flock``, exclusive; the kernel releases it when that process
dies, however it dies) and describes what it runs in ``<data dir>/runtime.json``. That is
``eom up``, ``eom demo --embedded`` when nothing runs, or a read-only command that opens
the embedded database because nothing runs. Other commands never wait on the lock: they
read ``runtime.json`` when ``DATABASE_URL`` / ``TEMPORAL_ADDRESS`` are not set (waiting
only while a service they can use is starting), and a second ``eom up`` is refused at
once, naming the one that runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from cli.stack import (
    EmbeddedPostgres,
    TemporalDevServer,
    data_dir,
    free_port,
    launch_postgres,
    launch_temporal_dev_server,
    prepare_postgres,
    stop_strays,
    wait_for_postgres,
    wait_for_temporal,
)
from eventstore.migrations import migrate
from eventstore.store import EventStore, create_pool
from worker import Settings, connect_client
from workflows.client import Missions

LOCK_FILE = "eom.lock"
RUNTIME_FILE = "runtime.json"
STARTING_WAIT_SECONDS = 180.0
"""How long a command waits for a service that is starting (a first start makes the
PostgreSQL cluster)."""
APPEAR_WITHIN_SECONDS = 5.0
"""How long a command that needs the service waits for one to show up when none runs."""
ANSWER_LINK_KEY_FILE = "answer-link.key"
"""The data directory's key for answer links (``EOM_ANSWER_LINK_KEY`` when not set)."""
CONSOLE_KEY_FILE = "console-session.key"
"""The data directory's key signing the console's session cookies
(``EOM_CONSOLE_SECRET_KEY`` when not set)."""
CLIENT_HOLDER_WAIT_SECONDS = 60.0
"""How long a command waits for another read-only command that has the embedded
database open."""


class NotRunning(Exception):
    """A service the command needs is not there (or the data directory is another's);
    reported as one line, exit code 3."""


@dataclass
class Runtime:
    """What the holder of a data directory runs (``runtime.json``)."""

    pid: int
    database_url: str | None
    temporal_address: str | None
    temporal_namespace: str
    task_queue: str
    ui_url: str | None
    api_url: str | None = None
    command: str = "eom up"
    """How the holder was invoked, for messages."""
    state: Literal["starting", "ready"] = "ready"
    serves: bool = True
    """Whether other commands may use its services (``eom up``, ``eom demo --embedded``);
    a read-only command holding the embedded database for itself does not serve."""


def runtime_path() -> Path:
    return data_dir() / RUNTIME_FILE


def _read_runtime_file() -> Runtime | None:
    try:
        raw = json.loads(runtime_path().read_text(encoding="utf-8"))
        known = {f.name for f in fields(Runtime)}
        return Runtime(**{k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def read_runtime() -> Runtime | None:
    """The data directory's holder, starting or ready, if a live process holds it; a
    ``runtime.json`` left by a process that died is ignored. Never waits."""
    runtime = _read_runtime_file()
    if runtime is None or not _alive(runtime.pid):
        return None
    if not lock_held(data_dir()):
        return None  # the pid was reused: its holder is gone
    return runtime


def write_runtime(runtime: Runtime) -> None:
    """Replace ``runtime.json`` whole (a reader never sees half of it)."""
    path = runtime_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(runtime), indent=2), encoding="utf-8")
    partial.replace(path)


def clear_runtime() -> None:
    """Remove ``runtime.json`` if this process wrote it."""
    runtime = _read_runtime_file()
    if runtime is not None and runtime.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            runtime_path().unlink()


class DataDirectoryLock:
    """``<directory>/eom.lock``, held exclusively (``flock``) by the process that runs
    the directory's embedded services. The descriptor is not inherited by children, so
    the kernel releases the lock when this process ends, even by ``kill -9``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


def lock_held(directory: Path) -> bool:
    """Whether a process holds ``directory``'s lock (a probe: a shared lock taken and
    dropped at once, never waited for)."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def invoked_as() -> str:
    """This command as typed, shortened, for messages (``eom mission show m-1``)."""
    words = " ".join(["eom", *sys.argv[1:]])
    return words if len(words) <= 80 else words[:77] + "..."


def eom_command() -> str:
    """How to run this eom again from the current directory: ``eom`` when that is what
    ``PATH`` finds, else the script's path (relative below the current directory)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "eom" or not script.exists():
        script = Path(sys.executable).with_name("eom")
        if not script.exists():
            return "eom"
    found = shutil.which("eom")
    if found and Path(found).resolve() == script.resolve():
        return "eom"
    try:
        shown = str(script.absolute().relative_to(Path.cwd()))
    except ValueError:
        shown = str(script.absolute())
    return shlex.quote(shown)


def claim(
    command: str, *, serves: bool, wait_for_readers: float = CLIENT_HOLDER_WAIT_SECONDS
) -> DataDirectoryLock:
    """Become the data directory's holder and say so in ``runtime.json`` (``starting``).

    Raises ``NotRunning`` at once when a service holds it (a second ``eom up``), naming
    it; waits up to ``wait_for_readers`` seconds for a read-only command that has the
    embedded database open."""
    directory = data_dir()
    lock = DataDirectoryLock(directory)
    deadline = time.monotonic() + wait_for_readers
    told = False
    while not lock.try_acquire():
        holder = _read_runtime_file()
        if holder is not None and _alive(holder.pid) and holder.serves:
            where = f", API {holder.api_url}" if holder.api_url else ""
            state = " (starting)" if holder.state == "starting" else ""
            raise NotRunning(
                f"eom is already running on {directory} (`{holder.command}`, pid "
                f"{holder.pid}{where}){state}: use it, or stop it first"
            )
        if time.monotonic() > deadline:
            who = f"`{holder.command}` (pid {holder.pid})" if holder else "another process"
            raise NotRunning(f"the data directory {directory} is in use by {who}")
        if holder is not None and _alive(holder.pid) and not told:
            print(
                f"waiting for `{holder.command}` (pid {holder.pid}) to finish with {directory}",
                file=sys.stderr,
            )
            told = True
        # A reader's probe holds the lock for microseconds; a read-only command, seconds.
        time.sleep(0.1)
    write_runtime(
        Runtime(
            pid=os.getpid(),
            database_url=None,
            temporal_address=None,
            temporal_namespace="default",
            task_queue="",
            ui_url=None,
            command=command,
            state="starting",
            serves=serves,
        )
    )
    return lock


def running_service(
    *, wait: float = STARTING_WAIT_SECONDS, appear_within: float = 0.0
) -> Runtime | None:
    """The service (``eom up``, ``eom demo --embedded``) running on this data directory,
    waiting up to ``wait`` seconds while it starts, and up to ``appear_within`` seconds
    for one to show up at all (an ``eom up &`` typed just before); ``None`` if there is
    none.

    Raises ``NotRunning`` if it is still starting after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    appear_by = time.monotonic() + appear_within
    told = False
    while True:
        runtime = read_runtime()
        if runtime is None or not runtime.serves:
            if time.monotonic() >= appear_by:
                return None
        elif runtime.state == "ready":
            return runtime
        elif time.monotonic() > deadline:
            raise NotRunning(
                f"`{runtime.command}` (pid {runtime.pid}) is still starting after "
                f"{wait:.0f}s; see its output"
            )
        elif not told:
            print(f"waiting for `{runtime.command}` (pid {runtime.pid}) to start", file=sys.stderr)
            told = True
        time.sleep(0.2)


def resolve(settings: Settings, *, appear_within: float = 0.0) -> Settings:
    """Fill unset addresses from the service running on the data directory (waiting
    while it starts; see ``running_service``)."""
    if settings.database_url and settings.temporal_address:
        return settings
    runtime = running_service(appear_within=appear_within)
    if runtime is None:
        return settings
    updates = {}
    if not settings.database_url and runtime.database_url:
        updates["database_url"] = runtime.database_url
    if not settings.temporal_address and runtime.temporal_address:
        updates["temporal_address"] = runtime.temporal_address
        updates["temporal_namespace"] = runtime.temporal_namespace
        updates["task_queue"] = runtime.task_queue
    return settings.model_copy(update=updates)


@dataclass
class Stack:
    """Services started by this process (and stopped by it), and the data directory's
    lock while it holds it."""

    settings: Settings
    lock: DataDirectoryLock | None = None
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    exported: list[str] = field(default_factory=list)
    """Variables this stack put in the process's environment for the worker."""

    def publish(self, runtime: Runtime) -> None:
        """Say what this holder runs (``runtime.json``); only while it holds the lock."""
        if self.lock is not None:
            write_runtime(runtime)

    def stop(self) -> None:
        """The dev server, then PostgreSQL, then the lock (and ``runtime.json``); the
        variables it exported leave the environment."""
        for name in self.exported:
            os.environ.pop(name, None)
        self.exported = []
        try:
            if self.temporal is not None:
                self.temporal.stop()
            if self.postgres is not None:
                self.postgres.stop()
        finally:
            if self.lock is not None:
                clear_runtime()
                self.lock.release()
                self.lock = None


async def start_stack(
    settings: Settings,
    *,
    ui: bool = True,
    temporal: bool = True,
    command: str = "eom up",
    serves: bool = True,
    hold: bool = False,
) -> Stack:
    """Start what the settings do not point at: embedded PostgreSQL and (with
    ``temporal``) the dev server, both ending with this process, after taking the data
    directory (``claim``; ``hold`` takes it even when nothing embedded is needed).

    Raises ``NotRunning`` if another process runs the data directory, ``RuntimeError``
    if a service does not start."""
    need_postgres = not settings.database_url
    need_temporal = temporal and not settings.temporal_address
    stack = Stack(settings=settings)
    if not (need_postgres or need_temporal or hold):
        running = await asyncio.to_thread(read_runtime) if serves else None
        if running is not None and running.serves and running.api_url:
            export_worker_settings(stack, settings, api_url=running.api_url)
        return stack
    stack.lock = await asyncio.to_thread(claim, command, serves=serves)
    try:
        directory = data_dir()
        await asyncio.to_thread(stop_strays, directory)
        # Children are started from this (the main) thread; waits run in threads.
        if need_temporal:
            stack.temporal = launch_temporal_dev_server(
                port=7233,
                ui=ui,
                db_file=directory / "temporal.db",
                log_path=directory / "temporal.log",
                namespace=settings.temporal_namespace,
            )
        if need_postgres:
            cluster = await asyncio.to_thread(prepare_postgres, directory / "postgres")
            stack.postgres = launch_postgres(cluster)
            await asyncio.to_thread(wait_for_postgres, stack.postgres)
            settings = settings.model_copy(update={"database_url": stack.postgres.url})
        if stack.temporal is not None:
            await asyncio.to_thread(stack.temporal.wait_ready)
            settings = settings.model_copy(update={"temporal_address": stack.temporal.address})
            await wait_for_temporal(stack.temporal.address, settings.temporal_namespace)
        if serves:
            # After the children started: they need not inherit the key.
            settings = export_worker_settings(stack, settings)
    except BaseException:
        stack.stop()
        raise
    stack.settings = settings
    return stack


def answer_link_key(directory: Path) -> str:
    """The answer-link key kept in ``directory`` (``answer-link.key``, readable by its
    owner only), made on first use: 43 URL-safe characters."""
    return kept_key(directory, ANSWER_LINK_KEY_FILE)


def kept_key(directory: Path, name: str) -> str:
    """The key kept in ``directory``'s file ``name`` (readable by its owner only), made
    on first use: 43 URL-safe characters (256 random bits)."""
    path = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(handle, "w", encoding="ascii") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="ascii").strip()


def export_worker_settings(
    stack: Stack, settings: Settings, *, api_url: str | None = None
) -> Settings:
    """Hand the worker's delivery settings what only the stack knows, unless the
    environment sets them: ``EOM_CONSOLE_URL``, the URL of the API the stack serves (the
    answer links' base), and ``EOM_ANSWER_LINK_KEY``, the data directory's key (so that a
    retried message carries the same answer link after a restart). They go into this
    process's environment, where ``DeliverySettings()`` reads them, until ``stack`` stops.

    The API's URL is ``api_url`` (a running service's) or else made from ``settings``: the
    worker starts before the API, so the API's port is chosen here (the configured one if
    free) and returned in the settings, for the API to listen on."""
    exported: dict[str, str] = {}
    if "EOM_CONSOLE_URL" not in os.environ:
        if api_url is None:
            settings = settings.model_copy(update={"api_port": free_port(settings.api_port)})
            api_url = settings.console_base_url
        exported["EOM_CONSOLE_URL"] = api_url
    if "EOM_ANSWER_LINK_KEY" not in os.environ:
        exported["EOM_ANSWER_LINK_KEY"] = answer_link_key(data_dir())
    if settings.console_secret_key is None:
        # The console's sessions outlive a restart of eom up.
        key = SecretStr(kept_key(data_dir(), CONSOLE_KEY_FILE))
        settings = settings.model_copy(update={"console_secret_key": key})
    os.environ.update(exported)
    stack.exported += list(exported)
    return settings


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
    database when nothing runs: it then says which data directory it reads, on stderr).

    Raises ``NotRunning`` when a needed service is not there."""
    # A command that needs the service gives an `eom up` started a moment ago the time
    # to say so (both spend their first seconds importing).
    appear = APPEAR_WITHIN_SECONDS if need_temporal else 0.0
    settings = await asyncio.to_thread(resolve, settings, appear_within=appear)
    stack: Stack | None = None
    if not settings.database_url:
        if need_temporal:
            raise NotRunning(
                "eom is not running: start it with `eom up` (or set DATABASE_URL and "
                "TEMPORAL_ADDRESS)"
            )
        print(
            f"eom is not running: reading the embedded database in {data_dir() / 'postgres'}",
            file=sys.stderr,
        )
        stack = await start_stack(settings, temporal=False, command=invoked_as(), serves=False)
        settings = stack.settings
    if need_temporal and not settings.temporal_address:
        raise NotRunning(
            "Temporal is not reachable: start eom with `eom up` or set TEMPORAL_ADDRESS"
        )
    try:
        assert settings.database_url
        pool = await create_pool(settings.database_url, max_size=4)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            client = await connect_client(settings) if need_temporal else None
            yield Missions(client=client, store=EventStore(pool), task_queue=settings.task_queue)
        finally:
            await pool.close()
    finally:
        if stack is not None:
            stack.stop()
