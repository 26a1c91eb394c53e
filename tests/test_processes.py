"""Processes that end with their parent: `eom up` and `eom demo --embedded` run as a user
runs them, killed as a user (or the machine) kills them, and the process table checked.

"Left behind" means any process whose command line names the data directory or whose
working directory is inside it: the Temporal dev server (``--db-filename``), the
PostgreSQL postmaster (``-D``) and its backends (which run in the cluster's directory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import psutil

from cli.stack import free_port

EOM = str(Path(sys.executable).with_name("eom"))
READY_SECONDS = 180.0


def processes_using(directory: Path) -> list[str]:
    """Each live process that names ``directory`` in its command line or works inside
    it, as ``"pid command line"``."""
    inside = str(directory)
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = process.info["cmdline"] or []
        cwd = process.info["cwd"] or ""
        if any(inside in arg for arg in cmdline) or cwd == inside or cwd.startswith(inside + "/"):
            found.append(f"{process.info['pid']} {' '.join(cmdline)}")
    return found


def left_behind(directory: Path, *, within: float = 30.0) -> list[str]:
    """What still uses ``directory`` once ``within`` seconds have passed (or sooner,
    as soon as nothing does)."""
    deadline = time.monotonic() + within
    while (found := processes_using(directory)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def environment(directory: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EOM_", "DATABASE_URL", "TEMPORAL_"))
    }
    env.update(EOM_DATA_DIR=str(directory), EOM_API_PORT="0", PYTHONUNBUFFERED="1")
    return env


def start_up(directory: Path, output: Path) -> subprocess.Popen[bytes]:
    with output.open("ab") as sink:
        return subprocess.Popen(
            [EOM, "up", "--no-ui"],
            env=environment(directory),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_ready(directory: Path, process: subprocess.Popen[bytes], output: Path) -> dict[str, str]:
    """``runtime.json`` once ``process`` says it is ready."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()
        try:
            runtime = json.loads((directory / "runtime.json").read_text())
        except (OSError, ValueError):
            runtime = {}
        if runtime.get("pid") == process.pid and runtime.get("state") == "ready":
            return dict(runtime)
        time.sleep(0.2)
    raise AssertionError(f"eom up was not ready in {READY_SECONDS}s: {output.read_text()}")


def eom(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EOM, *args],
        env=environment(directory),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_kill_9_of_eom_up_leaves_no_process_and_the_next_up_works(tmp_path: Path) -> None:
    """`kill -9` of `eom up` takes its Temporal dev server and its PostgreSQL with it
    (the kernel signals them); a new `eom up` on the same data directory starts, serves
    a command, and stops on Ctrl-C leaving nothing either; a read with eom stopped opens
    the embedded database itself, says which, and leaves nothing."""
    directory, output = tmp_path / "eom-data", tmp_path / "up.txt"
    first = start_up(directory, output)
    started = [first]
    try:
        wait_ready(directory, first, output)
        running = processes_using(directory)
        assert any("start-dev" in p for p in running), running
        assert any("postgres -D" in p for p in running), running
        first.kill()
        first.wait()
        assert left_behind(directory) == []

        second = start_up(directory, output)
        started.append(second)
        wait_ready(directory, second, output)
        listed = eom("missions", directory=directory)
        assert listed.returncode == 0, listed.stderr
        second.send_signal(signal.SIGINT)
        assert second.wait(60) == 0, output.read_text()
        assert left_behind(directory) == []
        assert "Traceback" not in output.read_text()
        assert not (directory / "runtime.json").exists()

        offline = eom("missions", directory=directory)
        assert offline.returncode == 0, offline.stderr
        assert f"reading the embedded database in {directory / 'postgres'}" in offline.stderr
        assert left_behind(directory) == []
    finally:
        stop_all(started)


def test_a_second_eom_up_on_a_live_data_directory_is_refused(tmp_path: Path) -> None:
    """While `eom up` runs, another `eom up` on its data directory exits 3 with one line
    naming the directory and the running one's pid, starting nothing; the first goes on
    serving."""
    directory, output = tmp_path / "eom-data", tmp_path / "up.txt"
    first = start_up(directory, output)
    try:
        wait_ready(directory, first, output)
        before = sorted(processes_using(directory))
        second = eom("up", "--no-ui", directory=directory)
        assert second.returncode == 3, (second.stdout, second.stderr)
        assert f"eom is already running on {directory}" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr and second.stdout == ""
        assert sorted(processes_using(directory)) == before
        assert json.loads((directory / "runtime.json").read_text())["pid"] == first.pid
        assert eom("missions", directory=directory).returncode == 0
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0
        assert left_behind(directory) == []
    finally:
        stop_all([first])


def test_an_interrupted_demo_can_be_run_again(tmp_path: Path) -> None:
    """`eom demo --embedded` killed (-9) in the middle of its mission leaves no process
    behind; run again on the same data directory, it starts the next seed mission
    (`tc-kz-2021-2`) and closes it, and leaves nothing either."""
    directory = tmp_path / "eom-data"
    demo = subprocess.Popen(
        [EOM, "demo", "--embedded", "--pace", "1"],
        env=environment(directory),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    registered = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "register_invitation" in line:
                registered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert registered.wait(READY_SECONDS), "".join(lines)
        assert "mission id tc-kz-2021\n" in "".join(lines)
        demo.kill()
        demo.wait()
        reader.join(10)
        assert left_behind(directory) == []

        again = eom("demo", "--embedded", "--pace", "1", directory=directory)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert "mission id tc-kz-2021-2" in again.stdout
        assert "Mission tc-kz-2021-2 closed" in again.stdout
        assert left_behind(directory) == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_what_an_earlier_eom_left_running_is_stopped_before_the_next_starts(
    tmp_path: Path,
) -> None:
    """A dev server still running on the data directory's SQLite file and a PostgreSQL
    daemonised on its cluster (as an eom from before this change left them after a
    `kill -9`) are stopped by the next `eom up` before it starts its own, instead of a
    second dev server sharing the file."""
    directory, output = tmp_path / "eom-data", tmp_path / "up.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, about XDG_RUNTIME_DIR
        import pgserver

    directory.mkdir()
    # pg_ctl daemonises the postmaster: it is no child of this process.
    postmaster = pgserver.get_server(directory / "postgres", cleanup_mode=None).get_pid()
    stray = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("temporal")),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--db-filename",
            str(directory / "temporal.db"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    up = start_up(directory, output)
    try:
        runtime = wait_ready(directory, up, output)
        assert stray.wait(30) is not None
        assert not psutil.pid_exists(postmaster)
        postmasters = [p for p in processes_using(directory) if "postgres -D" in p]
        assert len(postmasters) == 1 and str(postmaster) not in postmasters[0]
        assert runtime["database_url"]
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, output.read_text()
        assert left_behind(directory) == []
    finally:
        stop_all([up, stray])
