"""``eom forms``: observation forms. Import an XLSForm (or eom's standard set) into the
mission's organisation's library and assign it to the mission; list and show them.

A sub-app; ``cli.main`` registers it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analysis.figures import mission_analysis
from cli.commands import InputError
from cli.services import open_missions
from domain.values import Phase
from forms.library import STANDARD_SET, FormError, FormLibrary, StoredForm
from forms.xlsform import XLSFORM_SUFFIXES, FormImportError
from worker import Settings, configure_logging

console = Console(width=None if sys.stdout.isatty() else 160)

forms_app = typer.Typer(
    help="Observation forms (XLSForm): import, assign, list, show.", no_args_is_help=True
)

Actor = Annotated[
    str, typer.Option(envvar="EOM_ACTOR", help="who publishes (recorded in the event)")
]


def _settings() -> Settings:
    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    return settings


def standard_files() -> list[Path]:
    """eom's standard set: opening, voting, counting, tabulation."""
    return sorted(p for p in STANDARD_SET.glob("*.md") if p.name != "README.md")


@forms_app.command("import")
def forms_import(
    mission: Annotated[str, typer.Argument(help="the mission the form is assigned to")],
    files: Annotated[
        list[Path] | None,
        typer.Argument(help=f"XLSForm files ({', '.join(XLSFORM_SUFFIXES)})"),
    ] = None,
    standard: Annotated[
        bool, typer.Option("--standard", help="eom's standard set (opening ... tabulation)")
    ] = False,
    phase: Annotated[
        Phase | None, typer.Option(help="the form's phase, if its settings sheet names none")
    ] = None,
    actor: Actor = "coordinator",
) -> None:
    """Convert each XLSForm with pyxform, publish it as a form version in the mission's
    organisation's library (the same version again changes nothing) and assign it to the
    mission."""
    paths = [*(files or []), *(standard_files() if standard else [])]
    if not paths:
        raise InputError("files: name XLSForm files, or --standard for eom's standard set")

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            state = await missions.state(mission)
            if state.organisation is None:
                raise InputError(f"mission: {mission!r} is not registered")
            library = FormLibrary(missions.store)
            for path in paths:
                try:
                    stored, published = await library.import_file(
                        mission, state.organisation, path, phase=phase, actor=actor
                    )
                except (FormImportError, FormError) as error:
                    raise InputError(str(error)) from None
                said = "published and assigned" if published else "already published; assigned"
                console.print(
                    f"{escape(stored.form_id)} version {escape(stored.version)} "
                    f"({stored.form.phase.value}, {len(stored.form.questions)} questions): "
                    f"{said} to {escape(mission)}",
                    highlight=False,
                )

    asyncio.run(main())


@forms_app.command("assign")
def forms_assign(
    mission: Annotated[str, typer.Argument(help="the mission")],
    form_id: Annotated[str, typer.Argument(help="a form of the organisation's library")],
    version: Annotated[str | None, typer.Option(help="the version (default: latest)")] = None,
    actor: Actor = "coordinator",
) -> None:
    """Assign a form of the mission's organisation's library to the mission."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            state = await missions.state(mission)
            if state.organisation is None:
                raise InputError(f"mission: {mission!r} is not registered")
            try:
                stored, _ = await FormLibrary(missions.store).assign(
                    mission, state.organisation, form_id, version, actor=actor
                )
            except FormError as error:
                raise InputError(str(error)) from None
        console.print(
            f"{escape(stored.form_id)} version {escape(stored.version)} assigned to "
            f"{escape(mission)}",
            highlight=False,
        )

    asyncio.run(main())


def _table(title: str, forms: list[StoredForm]) -> Table:
    table = Table(title=title)
    for column in ("organisation", "form", "version", "phase", "title", "questions", "hash"):
        table.add_column(column)
    for s in forms:
        table.add_row(
            s.organisation,
            s.form_id,
            s.version,
            s.form.phase.value,
            s.form.title,
            str(len(s.form.questions)),
            s.xform_md5,
        )
    return table


@forms_app.command("list")
def forms_list(
    mission: Annotated[
        str | None, typer.Argument(help="a mission (default: every library's forms)")
    ] = None,
    organisation: Annotated[str | None, typer.Option(help="one organisation's library")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
) -> None:
    """The forms assigned to a mission, or those of the libraries."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            library = FormLibrary(missions.store)
            forms = (
                await library.mission_forms(mission)
                if mission
                else await library.library(organisation)
            )
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "organisation": s.organisation,
                            "form_id": s.form_id,
                            "version": s.version,
                            "phase": s.form.phase.value,
                            "title": s.form.title,
                            "questions": len(s.form.questions),
                            "xform_md5": s.xform_md5,
                        }
                        for s in forms
                    ],
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return
        console.print(_table(f"forms of {mission}" if mission else "form libraries", forms))

    asyncio.run(main())


@forms_app.command("show")
def forms_show(
    form_id: Annotated[str, typer.Argument(help="the form")],
    version: Annotated[str | None, typer.Option(help="the version (default: latest)")] = None,
    organisation: Annotated[str | None, typer.Option(help="whose library")] = None,
    language: Annotated[str, typer.Option(help="labels in: en, ru, tr")] = "en",
    xform: Annotated[bool, typer.Option("--xform", help="print the XForm itself")] = False,
) -> None:
    """A form version's questions: type, label, required, skip logic, constraint,
    critical condition."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            found = [
                s
                for s in await FormLibrary(missions.store).library(organisation)
                if s.form_id == form_id and (version is None or s.version == version)
            ]
        if not found:
            raise InputError(
                f"form_id: no form {form_id!r}" + (f" version {version!r}" if version else "")
            )
        stored = found[-1]
        if xform:
            print(stored.xform)
            return
        form = stored.form
        table = Table(
            title=f"{form.title}: {form.form_id} version {form.version} ({form.phase.value})"
        )
        for column in (
            "question",
            "type",
            "label",
            "required",
            "relevant",
            "constraint",
            "critical",
        ):
            table.add_column(column)
        for q in form.questions:
            table.add_row(
                q.name,
                q.type.value + (f" ({', '.join(c.name for c in q.choices)})" if q.choices else ""),
                q.label(language),
                "yes" if q.required else "",
                " and ".join(q.relevant),
                q.constraint or "",
                q.critical or "",
            )
        console.print(table)

    asyncio.run(main())


def analysis(
    mission: Annotated[str, typer.Argument(help="the mission")],
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="as CSV, one row per answer")] = False,
    language: Annotated[str, typer.Option(help="labels in: en, ru, tr")] = "en",
) -> None:
    """Per question of the mission's forms: stations that gave each answer out of those
    asked, overall, by locality and by team, with the log positions of the visits behind
    each count (a corrected report counts once; conflicting stations are named)."""

    async def main() -> None:
        async with open_missions(_settings(), need_temporal=False) as missions:
            found = await mission_analysis(missions.store, mission, language=language)
        if as_json:
            print(found.model_dump_json(indent=2))
            return
        if as_csv:
            out = csv.writer(sys.stdout)
            out.writerow(
                [
                    "phase",
                    "form_id",
                    "question",
                    "scope",
                    "answer",
                    "stations",
                    "asked",
                    "share",
                    "events",
                ]
            )
            for f in found.figures:
                for c in f.counts:
                    out.writerow(
                        [
                            f.phase,
                            f.form_id,
                            f.question,
                            f.scope,
                            c.answer,
                            c.stations,
                            f.asked,
                            c.share,
                            " ".join(map(str, c.events)),
                        ]
                    )
            return
        table = Table(
            title=f"{mission}: {found.stations_observed} stations observed, as of log "
            f"position {found.as_of_position}"
        )
        for column in ("phase", "question", "scope", "answers (stations/asked)", "conflicts"):
            table.add_column(column)
        for f in found.figures:
            if f.scope != "all" or not f.counts:
                continue
            table.add_row(
                f.phase,
                f"{f.question}\n{f.label}",
                f.scope,
                ", ".join(f"{c.answer} {c.stations}/{f.asked} ({c.share:.0%})" for c in f.counts),
                ", ".join(f.conflicting_stations),
            )
        console.print(table)

    asyncio.run(main())
