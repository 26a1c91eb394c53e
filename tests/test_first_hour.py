"""A newcomer's first hour, scripted from the README's own commands.

The README's "The first hour" section holds two marked ``sh`` blocks: the first starts
``eom up`` in the background and runs the demo, the second is what to try next. This test
runs them as written (``.venv/bin/eom`` is this environment's ``eom``), in a fresh data
directory, and checks that each exits 0 without a traceback; a README line it does not
know how to run fails it, so the README and the test change together. Selected alone
with ``-m first_hour``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_processes import processes_using

pytestmark = pytest.mark.first_hour

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EOM = str(Path(sys.executable).with_name("eom"))
STEP_SECONDS = 150


def marked_blocks(text: str) -> dict[str, list[list[str]]]:
    """The ``sh`` block after each ``<!-- first-hour: NAME ... -->`` comment, as its
    command lines split into words (comments and blank lines dropped), by NAME."""
    blocks: dict[str, list[list[str]]] = {}
    pattern = re.compile(r"<!-- first-hour: (\w+)[^>]*-->\s*```sh\n(.*?)```", re.DOTALL)
    for name, body in pattern.findall(text):
        lines = [shlex.split(raw, comments=True) for raw in body.splitlines()]
        blocks[name] = [words for words in lines if words]
    return blocks


def as_argv(words: list[str]) -> tuple[list[str], bool]:
    """A README line as the argv to run here and whether it runs in the background
    (``&``); ``ValueError`` for a line this test does not know how to run."""
    background = words[-1] == "&"
    if background:
        words = words[:-1]
    if words[0] != ".venv/bin/eom":
        raise ValueError(f"the first-hour test does not know how to run {shlex.join(words)}")
    return [EOM, *words[1:]], background


def environment(directory: Path) -> dict[str, str]:
    """A newcomer's: nothing configured but a fresh data directory (and a free API port:
    the test may share the machine with another eom)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EOM_", "DATABASE_URL", "TEMPORAL_"))
    }
    env.update(EOM_DATA_DIR=str(directory), EOM_API_PORT="0", PYTHONUNBUFFERED="1")
    return env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )


def test_the_readme_first_hour(tmp_path: Path) -> None:
    """`eom up &`, `eom demo`, then each command the README shows next, as written, in a
    fresh data directory: every one exits 0 with no traceback, the demo's mission is the
    README's `tc-kz-2021`, the demo's closing hints run as printed, and once eom is
    stopped (`kill %1`) nothing it started is left."""
    blocks = marked_blocks(README.read_text(encoding="utf-8"))
    assert set(blocks) == {"start", "then"}, "the README's first-hour blocks are missing"
    start, then = blocks["start"], blocks["then"]
    assert [".venv/bin/eom", "up", "&"] in start, "the README starts eom up in the background"
    assert [".venv/bin/eom", "demo"] in start, "the README runs the demo"
    directory = tmp_path / "eom-data"
    env = environment(directory)
    background: list[subprocess.Popen[str]] = []
    logs = tmp_path / "eom-up.txt"
    try:
        for line in [*start, *then]:
            if line == ["kill", "%1"]:
                up = background[0]
                up.send_signal(signal.SIGTERM)
                assert up.wait(60) == 0, logs.read_text()
                continue
            argv, in_background = as_argv(line)
            if in_background:
                with logs.open("w") as sink:
                    background.append(
                        subprocess.Popen(
                            argv,
                            env=env,
                            cwd=ROOT,
                            stdin=subprocess.DEVNULL,
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                    )
                continue
            done = run(argv, env)
            assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
            assert "Traceback" not in done.stdout + done.stderr, (line, done.stderr[-3000:])
            if line == [".venv/bin/eom", "demo"]:
                assert "Mission tc-kz-2021 closed" in done.stdout, done.stdout[-2000:]
                hints = re.findall(r"^See its timeline: (.+)$", done.stdout, re.MULTILINE)
                assert hints, done.stdout[-1000:]
                hint = run(shlex.split(hints[0]), env)
                assert hint.returncode == 0 and "MissionClosed" in hint.stdout, hint.stderr
        output = logs.read_text()
        assert "eom is up" in output and "Traceback" not in output, output
        assert all(process.poll() is not None for process in background), "kill %1 ran"
        deadline = time.monotonic() + 30
        while processes_using(directory) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_using(directory) == []
    finally:
        for process in background:
            if process.poll() is None:
                process.kill()
                process.wait()
