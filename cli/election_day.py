"""``eom coverage``, ``eom stations import`` and ``eom report submit``: election day from
the coordinator's desk (paper forms go through the same intake as observers' devices)."""

from __future__ import annotations

import asyncio
import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from cli.commands import InputError, load_document
from cli.services import NotRunning, open_missions
from domain import DomainError
from domain.submissions import PollingStation, Submission
from intake.coverage import Coverage
from intake.writer import Intake, SubmissionRefused
from operations.coverage import mission_coverage
from operations.errors import UnknownMission
from worker import Settings, configure_logging

console = Console(width=None if sys.stdout.isatty() else 160)

stations_app = typer.Typer(help="Polling stations a mission reports from.", no_args_is_help=True)
report_app = typer.Typer(help="Reports entered from paper forms.", no_args_is_help=True)

_SUBMISSIONS: TypeAdapter[list[Submission]] = TypeAdapter(list[Submission])


def _settings() -> Settings:
    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def _positions(positions: list[int], *, trace: bool) -> str:
    if not trace:
        return str(len(positions))
    shown = ", ".join(str(p) for p in positions[:12])
    return shown + (f" ... (+{len(positions) - 12})" if len(positions) > 12 else "")


def coverage_command(
    mission: Annotated[str, typer.Argument(help="the mission")],
    trace: Annotated[
        bool, typer.Option(help="list the global log positions behind each figure")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print it as JSON")] = False,
    catch_up: Annotated[
        bool, typer.Option(help="project what the log holds before reading (else as is)")
    ] = True,
) -> None:
    """Election-day coverage: stations visited per locality and phase, each team's reports
    and missed check-ins, findings by category, conflicts. Each figure counts the events
    behind it (``--trace`` lists their log positions); corrections replace what they
    correct."""

    async def main() -> Coverage:
        async with open_missions(_settings(), need_temporal=False) as missions:
            try:
                return await mission_coverage(missions.store, mission, catch_up=catch_up)
            except UnknownMission as error:
                raise NotRunning(str(error)) from None

    found = asyncio.run(main())
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    print_coverage(found, trace=trace)


def print_coverage(found: Coverage, *, trace: bool = False) -> None:
    evidence = "log positions" if trace else "events"
    console.print(
        f"[bold]{found.mission_id}[/]: {found.reports} reports, {found.visits} station visits "
        f"({found.corrections} corrections), {found.incidents} incidents; "
        f"{_stations_line(found)}",
        highlight=False,
    )
    localities = Table(title="Stations visited per locality and phase")
    for column in ("locality", "registered", "phase", "visited", evidence):
        localities.add_column(column, overflow="fold")
    for row in found.localities:
        localities.add_row(
            row.locality,
            str(row.registered),
            row.phase or "-",
            str(row.stations_visited),
            _positions(row.positions, trace=trace),
        )
    console.print(localities)
    teams = Table(title="Teams")
    for column in ("team", "reports", "stations", "phases", "missed check-in", evidence):
        teams.add_column(column, overflow="fold")
    for team in found.teams:
        teams.add_row(
            team.team_id,
            str(team.reports),
            str(team.stations_visited),
            ", ".join(team.phases) or "-",
            "[red]" + ", ".join(team.missed) if team.missed else "",
            _positions(team.positions, trace=trace),
        )
    console.print(teams)
    findings = Table(title="Findings by category")
    for column in ("category", "assessment", "count", evidence):
        findings.add_column(column, overflow="fold")
    for finding in found.findings:
        findings.add_row(
            finding.category,
            finding.assessment,
            str(finding.count),
            _positions(finding.positions, trace=trace),
        )
    console.print(findings)
    if found.conflicts:
        conflicts = Table(title="Stations reported by more than one team")
        for column in ("station", "teams", "reports", "flagged at"):
            conflicts.add_column(column, overflow="fold")
        for conflict in found.conflicts:
            conflicts.add_row(
                conflict.station_id,
                ", ".join(conflict.team_ids),
                ", ".join(conflict.submission_ids),
                str(conflict.position),
            )
        console.print(conflicts)
    console.print(f"projected through log position {found.projected_through}", style="dim")


def read_stations(path: Path) -> list[PollingStation]:
    """A CSV with a header: ``station_id``, ``locality`` and optionally ``name`` and
    ``time_zone`` (the station's own IANA zone, where the host spans several). Another
    column is refused (``InputError``), so that nothing typed is silently dropped."""
    try:
        # utf-8-sig: a spreadsheet's CSV export often opens with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    if not rows:
        raise InputError(f"{path} lists no stations (a header and one row per station)")
    missing = {"station_id", "locality"} - set(rows[0])
    if missing:
        raise InputError(f"{path} has no column {', '.join(sorted(missing))}")
    unknown = set(rows[0]) - {"station_id", "locality", "name", "time_zone"}
    if unknown:
        raise InputError(
            f"{path} has column {', '.join(sorted(map(str, unknown)))}, which a polling station "
            "does not have (columns: station_id, locality, name, time_zone)"
        )
    stations = []
    for line, row in enumerate(rows, start=2):
        try:
            stations.append(
                PollingStation(
                    station_id=row["station_id"],
                    locality=row["locality"],
                    name=row.get("name") or None,
                    time_zone=row.get("time_zone") or None,
                )
            )
        except ValidationError as error:
            problem = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
            raise InputError(f"{path}, line {line}: {problem}") from None
    return stations


@stations_app.command("import")
def stations_import(
    mission: Annotated[str, typer.Argument(help="the mission")],
    path: Annotated[Path, typer.Argument(help="CSV: station_id, locality[, name][, time_zone]")],
    actor: Annotated[str, typer.Option(envvar="EOM_ACTOR", help="who registers them")] = (
        "coordinator"
    ),
) -> None:
    """Register polling stations; those registered already, unchanged, are skipped."""
    stations = read_stations(path)

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            intake = Intake(missions.store)
            try:
                done = await intake.register_stations(mission, stations, actor=actor)
            except DomainError as error:
                raise InputError(str(error)) from None
        console.print(
            f"{done.added} station(s) registered for {mission}; {done.registered} in all",
            highlight=False,
        )

    asyncio.run(main())


def read_submissions(path: Path) -> list[Any]:
    """Reports from a JSON or YAML file: one, a list, or ``{"reports": [...]}``."""
    loaded = load_document(path)
    if isinstance(loaded, dict) and "reports" in loaded:
        loaded = loaded["reports"]
    listed = loaded if isinstance(loaded, list) else [loaded]
    try:
        return _SUBMISSIONS.validate_python(listed)
    except ValidationError as error:
        problems = "; ".join(
            f"report {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise InputError(f"{path}: {problems}") from None


@report_app.command("submit")
def report_submit(
    mission: Annotated[str, typer.Argument(help="the mission")],
    path: Annotated[Path, typer.Argument(help="JSON or YAML: one report, or a list")],
    actor: Annotated[str, typer.Option(envvar="EOM_ACTOR", help="who enters them")] = (
        "coordinator"
    ),
) -> None:
    """Enter reports from paper forms: recorded like a device's (sending the same file
    again records nothing twice); if any is refused, none is recorded."""
    submissions = read_submissions(path)

    async def main() -> None:
        async with (
            open_missions(_settings(), need_temporal=False) as missions,
            Intake(missions.store) as intake,
        ):
            try:
                receipts = await intake.submit(mission, submissions, actor=actor)
            except SubmissionRefused as refused:
                raise InputError(
                    "nothing recorded: "
                    + "; ".join(
                        f"report {p.index + 1} ({p.submission_id}) {p.rule}: {p.message}"
                        for p in refused.problems
                    )
                ) from None
        for receipt in receipts:
            console.print(
                f"{receipt.submission_id}: {receipt.status} in {receipt.stream_id} "
                f"v{receipt.stream_version}"
                + (" [yellow](conflict flagged)[/]" if receipt.conflict else ""),
                highlight=False,
            )

    asyncio.run(main())


def _stations_line(found: Coverage) -> str:
    """Stations visited against those registered, naming any visited but not registered
    (records made before visits had to name a registered station)."""
    registered = found.stations_visited - found.stations_unregistered
    line = f"{registered} of {found.stations_registered} registered stations visited"
    if found.stations_unregistered:
        line += (
            f", and {found.stations_unregistered} "
            f"station{'s' if found.stations_unregistered != 1 else ''} visited but not registered"
        )
    return line
