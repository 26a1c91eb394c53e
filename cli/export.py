"""``eom audit export``: a mission's record, taken out of the event store for people and tools
that will never run eom. What it writes is the ``auditreport`` package's (shared with the
API and the console); this module is the command: where the export goes, and how its
refusals read in a terminal.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from auditreport import export
from auditreport.export import ExportFormat
from cli.commands import InputError
from cli.services import NotRunning, open_missions
from eventstore.store import EventStore
from worker import Settings, configure_logging

# -- the command -----------------------------------------------------------------------------


async def export_mission(store: EventStore, mission: str, fmt: ExportFormat) -> tuple[bytes, int]:
    """``auditreport.export.export_mission`` with its refusals as the CLI's: a mission or
    font not there is ``NotRunning``, a record that cannot be laid out is ``InputError``."""
    try:
        return await export.export_mission(store, mission, fmt)
    except export.ExportUnavailable as error:
        raise NotRunning(str(error)) from None
    except export.ExportRefused as error:
        raise InputError(str(error)) from None


def output_path(mission: str, fmt: ExportFormat, output: Path | None) -> Path | None:
    """Where the export goes: ``None`` (stdout) unless ``--output`` names a file; a file
    is never written where nobody asked for one. Refuses, before any work is done, a
    place that cannot be written."""
    if output is None or str(output) == "-":
        return None
    if output.is_dir():
        raise InputError(f"--output {output} is a directory; name a file in it")
    if not output.parent.is_dir():
        raise InputError(f"--output {output}: no directory {output.parent}")
    return output


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so an interrupted export never leaves half a file
    that a reader could take for the whole record."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _settings() -> Settings:
    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def export_command(
    mission: Annotated[str, typer.Argument(help="the mission")],
    format: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="jsonl or csv (every event, raw), md, html or pdf"),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="file to write; default stdout ('-' alike), where a PDF goes only when "
            "it is not a terminal (a pipe, a redirection)",
        ),
    ] = None,
) -> None:
    """Export a mission's record from the event store alone (no Temporal): the raw events
    (jsonl, csv) or a report for a reader (md, html, pdf) in which every figure names the
    versions of the events behind it and the hash chain's verdict is stated. It goes to
    stdout unless ``-o`` names a file; a PDF is refused on a terminal."""
    target = output_path(mission, format, output)
    if target is None and format.binary and sys.stdout.isatty():
        raise InputError(
            f"not writing a PDF to the terminal: give -o {mission}.pdf (or another file), "
            "or redirect stdout"
        )

    async def main() -> tuple[bytes, int]:
        async with open_missions(_settings(), need_temporal=False) as missions:
            return await export_mission(missions.store, mission, format)

    data, count = asyncio.run(main())
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomically(target, data)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None
    typer.echo(f"{mission}: {count} events, {format.value} written to {target}", err=True)
