"""``eom mission <command>``: one subcommand per domain command, built from its model.

Scalar fields become options (``--stakeholder-type political_party``), days and times take
plain ISO 8601 (``--held-on 2021-01-08``, ``--deadline 2021-10-15``, ``--polls-open-at
2021-01-10T07:00``), lists of scalars repeatable options (``--member-states AZ
--member-states KG``, or ``AZ,KG`` for state codes), structured fields JSON or YAML's
inline form (``--election '{name: Mazhilis, type: parliamentary, date: 2021-01-10}'``),
with short forms for two of them (``--mission-window 2021-01-06..2021-01-10``,
``--ladder 7d,2d,0,escalate=12h``). Every option's help shows its form with an example.
``--file`` reads all fields from a JSON or YAML file; options given alongside override it.
Each subcommand is an ordinary typer command whose signature is made from the model.
"""

from __future__ import annotations

import inspect
import re
import shlex
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.markup import escape

from cli.options import (
    InputError,
    load_document,
    parse_document,
    parse_moment,
    parse_offset,
)
from domain.commands import COMMAND_ADAPTER, COMMAND_TYPES, Command
from domain.values import (
    Addressee,
    Assessment,
    ElectionType,
    FindingCategory,
    ObserverRole,
    Phase,
    Priority,
    RecipientKind,
)

__all__ = ["InputError", "add_subcommands", "build_command", "load_document", "read_file"]


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bare(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _is_scalar(annotation: Any) -> bool:
    annotation = _bare(annotation)
    return isinstance(annotation, type) and (
        issubclass(annotation, str | int | float | date | Enum)
        or annotation in (datetime, AwareDatetime)
    )


def _kind(name: str, field: FieldInfo) -> str:
    """How a field is given on the command line: flag, moment (a date and time), scalar,
    many (a repeatable option) or json (a structured value)."""
    annotation = _unwrap_optional(field.annotation)
    if annotation is bool:
        return "flag"
    if _bare(annotation) in (datetime, AwareDatetime):
        return "moment"
    if _is_scalar(annotation):
        return "scalar"
    if typing.get_origin(annotation) is list and _is_scalar(typing.get_args(annotation)[0]):
        return "many"
    return "json"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- what each option takes, said in its help --------------------------------------------------

DEADLINES = frozenset({"deadline", "acknowledge_by"})
"""Date-and-time fields where a bare day stands for its end (23:59:59, no offset)."""

CODE_LISTS = frozenset({"member_states"})
"""Lists of ISO codes: ``AZ,KG`` is taken for ``AZ`` and ``KG`` (no code has a comma)."""

HIDDEN = frozenset({("publish_statement", "history_fingerprint"), ("draft_statement", "figures")})
"""Fields the CLI does not offer: eom sets them, whatever a caller says."""

BY_DRAFT = frozenset({"approve_statement", "publish_statement"})
"""Commands that name a draft by id and its text by sha256: the sha256 may be left out,
and is then the named draft's own (``draft_sha256``)."""


def _one_of(values: type[Enum]) -> str:
    return ", ".join(str(v.value) for v in values)


@dataclass(frozen=True)
class Form:
    """What an option takes, in words, with examples as typed (the help quotes them for
    the shell where they need it)."""

    what: str
    examples: tuple[str, ...] = ()
    then: str = ""

    def help(self) -> str:
        text = self.what
        if self.examples:
            text += "; e.g. " + " or ".join(shlex.quote(e) for e in self.examples)
        return text + (f"; {self.then}" if self.then else "")


_LOCAL = "no offset: the host country's local time"
_STATES = "by ISO 3166-1 alpha-2 code: repeat the option or separate with commas"

FORMS: dict[str, Form] = {
    "election": Form(
        f"{{name, type, date}} as JSON or YAML, type one of {_one_of(ElectionType)}",
        ("{name: Mazhilis, type: parliamentary, date: 2021-01-10}",),
    ),
    "mission_window": Form(
        "the days the mission covers, both included: START..END, or {start, end}",
        ("2021-01-06..2021-01-10",),
    ),
    "member_states": Form(
        f"the participating member states, other than the host, {_STATES}", ("AZ,KG,TR,UZ",)
    ),
    "role_quotas": Form(
        f"most observers per role, {{ROLE: COUNT}} with roles {_one_of(ObserverRole)}",
        ("{short_term_observer: 20, core_team: 4}",),
    ),
    "checklists": Form(
        "one per phase observed, [{phase, answers: {QUESTION: true, false, a number or "
        f"text}}}}] with phases {_one_of(Phase)}; with form_id and form_version, the "
        "answers a form's questions take (eom forms show)",
        (
            "[{phase: opening, answers: {opened_on_time: true, ballot_boxes: 2}}]",
            "[{phase: voting, form_id: eom_voting, form_version: '2026113001', answers: "
            "{ballot_box_sealed: 'yes'}}]",
        ),
    ),
    "citations": Form(
        "figures of the observation forms the draft cites, [{form_id, question, answer, "
        "scope}] (answer left out: the stations that answered; scope all, locality:NAME "
        "or team:ID; eom analysis lists them); eom counts each as the draft is recorded",
        (
            "[{form_id: eom_voting, question: ballot_box_sealed, answer: 'no'}]",
            "[{form_id: eom_voting, question: ramp_available, scope: 'team:team-1'}]",
        ),
    ),
    "findings": Form(
        f"[{{category, assessment, note}}], assessments {_one_of(Assessment)}, categories "
        f"{_one_of(FindingCategory)}",
        ("[{category: accessibility, assessment: concern, note: no ramp}]",),
    ),
    "recommendations": Form(
        f"[{{id, text, priority, addressee, area}}], priorities {_one_of(Priority)}, "
        f"addressees {_one_of(Addressee)}",
        (
            "[{id: r1, text: Publish results per station, priority: priority, "
            "addressee: central_election_commission, area: results}]",
        ),
    ),
    "recipients": Form(
        f"[{{kind, name}}], kinds {_one_of(RecipientKind)}: a state by ISO code, an "
        "organisation by name",
        ("[{kind: member_state, name: AZ}, {kind: host_country, name: KZ}]",),
    ),
    "recipient": Form(
        f"{{kind, name}}, kinds {_one_of(RecipientKind)}: a state by ISO code, an "
        "organisation by name",
        ("{kind: member_state, name: AZ}",),
    ),
    "ladder": Form(
        "when to remind: durations before the deadline, comma-separated, then "
        "escalate=DURATION after it (at once if left out); or {offsets_seconds, "
        "escalate_after_seconds}",
        ("7d,2d,0,escalate=12h", "{offsets_seconds: [86400, 0], escalate_after_seconds: 0}"),
        then="default 7d,2d,0",
    ),
    "evidence": Form(
        "[{recommendation_id, text}]",
        ("[{recommendation_id: r1, text: Results are now published per station}]",),
    ),
    "deadline": Form(
        "a day (then its end, 23:59:59) or a date and time, with Z or +HH:MM if given in "
        f"another zone ({_LOCAL})",
        ("2021-10-15", "2021-10-15T12:00", "2021-10-15T06:00Z"),
    ),
    "acknowledge_by": Form(
        "when acknowledgements are due: a day (then its end, 23:59:59) or a date and time "
        f"({_LOCAL})",
        ("2022-06-30", "2022-06-30T12:00+06:00"),
    ),
    "polls_open_at": Form(
        f"when the polls open, a date and time ({_LOCAL})",
        ("2021-01-10T07:00", "2021-01-10T01:00Z"),
        then="default: now",
    ),
    "arrived_at": Form(f"a date and time ({_LOCAL})", ("2021-01-10T07:40",)),
    "departed_at": Form(f"a date and time ({_LOCAL})", ("2021-01-10T08:15",)),
    "text_sha256": Form(
        "the sha256 of the draft's text, 64 hex digits, as draft-statement prints it; "
        "left out, the named draft's own (the text is still exactly that draft's)"
    ),
    "check_in_grace_minutes": Form(
        "minutes after the polls open before a team without an opening report is reported missing",
        ("90",),
        then="default 60",
    ),
    "stations": Form(
        "[{station_id, locality, name, time_zone}]: name and time_zone optional (the "
        "station's own IANA zone where the host spans several)",
        (
            "[{station_id: NS-101, locality: Nur-Sultan}, "
            "{station_id: AQ-7, locality: Aqtobe, time_zone: Asia/Aqtobe}]",
        ),
    ),
    "time_zone": Form(
        "the host's IANA time zone, in which election-day times are read; required where "
        "the host has several zones",
        ("Asia/Almaty",),
    ),
    "reminders": Form(
        "--no-reminders records the request without reminders or escalation: needed when "
        "its deadline is already past (a mission entered after the fact)",
        then="default: reminded",
    ),
    "participants": Form("repeat for each person"),
    "topics": Form("repeat for each topic"),
    "observer_ids": Form("repeat for each observer", ("obs-az-1",)),
}
"""The form of each option that is not plain text, by field name."""

COMMAND_FORMS: dict[tuple[str, str], Form] = {
    ("request_evidence", "member_states"): Form(
        f"the states asked for evidence (participating states or the host), {_STATES}",
        ("AZ,KZ",),
    ),
}
"""Where one command's field means something else than the same name elsewhere."""

DAY = Form("a day, YYYY-MM-DD", ("2021-01-08",))


def option_form(command_type: str, name: str, field: FieldInfo) -> Form | None:
    """The form of ``--<name>`` in ``eom mission <command_type>``, said in its help: for a
    structured value, a date and time, a day or a list of codes, with examples."""
    found = COMMAND_FORMS.get((command_type, name)) or FORMS.get(name)
    if found is None and _bare(_unwrap_optional(field.annotation)) is date:
        found = DAY
    return found


def _parameter(command_type: str, name: str, field: FieldInfo) -> inspect.Parameter:
    flag = _flag(name)
    kind = _kind(name, field)
    annotation = _unwrap_optional(field.annotation)
    form = option_form(command_type, name, field)
    help_text = escape(form.help()) if form else None
    hint: Any
    if kind == "flag":
        hint = Annotated[bool | None, typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text)]
    elif kind == "scalar" and isinstance(annotation, type) and issubclass(annotation, Enum):
        hint = Annotated[annotation | None, typer.Option(flag, help=help_text)]
    elif kind == "scalar" and annotation is int:
        hint = Annotated[int | None, typer.Option(flag, help=help_text)]
    elif kind == "many":
        metavar = "CODES" if name in CODE_LISTS else "VALUE"
        hint = Annotated[
            list[str] | None,
            typer.Option(flag, metavar=metavar, help=help_text or "repeat for each value"),
        ]
    elif kind == "json":
        hint = Annotated[str | None, typer.Option(flag, metavar="VALUE", help=help_text)]
    elif kind == "moment":
        metavar = "DAY|DATETIME" if name in DEADLINES else "DATETIME"
        hint = Annotated[str | None, typer.Option(flag, metavar=metavar, help=help_text)]
    else:
        hint = Annotated[str | None, typer.Option(flag, help=help_text)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)


# -- from what was typed to the command's fields -----------------------------------------------

_WINDOW = re.compile(r"\s*([^.{\s]+)\s*\.\.\s*([^.\s]+)\s*")


def _window(text: str) -> Any:
    match = _WINDOW.fullmatch(text)
    if match is None:
        return parse_document(text, "--mission-window")
    return {"start": match[1], "end": match[2]}


def _ladder(text: str) -> Any:
    if text.strip().startswith("{"):
        return parse_document(text, "--ladder")
    offsets: list[int] = []
    escalate = 0
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, equals, value = part.partition("=")
        if equals and key.strip() == "escalate":
            escalate = int(parse_offset(value, "--ladder escalate").total_seconds())
        elif equals:
            raise InputError(f"--ladder: {part!r} is neither a duration nor escalate=DURATION")
        else:
            offsets.append(int(parse_offset(part, "--ladder").total_seconds()))
    # Offsets are a set of moments before the deadline: any order typed is the same ladder.
    return {"offsets_seconds": sorted(offsets, reverse=True), "escalate_after_seconds": escalate}


def option_value(name: str, field: FieldInfo, value: Any) -> Any:
    """What an option's value stands for in the command's fields (``--<name>`` typed as
    ``value``): a structured value read, a date and time in ISO form (naive when typed
    without an offset), a list of codes split on commas. Raises ``InputError`` naming the
    option."""
    kind = _kind(name, field)
    if kind == "moment":
        bare_day: Literal["end", "refuse"] = "end" if name in DEADLINES else "refuse"
        return parse_moment(value, _flag(name), bare_day=bare_day).isoformat()
    if kind == "many" and name in CODE_LISTS:
        return [code.strip() for item in value for code in item.split(",") if code.strip()]
    if kind == "json":
        if name == "mission_window":
            return _window(value)
        if name == "ladder":
            return _ladder(value)
        return parse_document(value, _flag(name))
    if isinstance(value, Enum):
        return value.value
    return value


def read_file(path: Path) -> dict[str, Any]:
    """A command's fields from a JSON or YAML file (a mapping), or ``InputError``."""
    loaded = load_document(path)
    if not isinstance(loaded, dict):
        raise InputError(f"{path} must hold a mapping of field names to values")
    return loaded


def describe_validation_error(
    command_type: str, error: ValidationError, *, options: frozenset[str] = frozenset()
) -> str:
    """One line: each problem at its place, a field given as an option named as that
    option (``--held-on: ...``), one from a file by its name (``held_on: ...``)."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"] if part != command_type]
        if parts and parts[0] in options:
            parts[0] = _flag(parts[0]) + (":" if len(parts) > 1 else "")
            location = " ".join([parts[0], ".".join(parts[1:])]).strip()
        else:
            location = ".".join(parts)
        problems.append(f"{location or 'command'}: {item['msg']}")
    return f"invalid {command_type}: " + "; ".join(problems)


def build_command(
    command_type: str,
    values: dict[str, Any],
    *,
    mission_id: str | None = None,
    options: frozenset[str] = frozenset(),
) -> Command:
    """Validate raw values into the command model, or raise ``InputError`` (fields named
    in ``options`` were given as options, and are named so)."""
    model: type[BaseModel] = COMMAND_TYPES[command_type]
    unknown = sorted(set(values) - set(model.model_fields) - {"type"})
    if unknown:
        raise InputError(f"invalid {command_type}: unknown field(s) {', '.join(unknown)}")
    payload = {**values, "type": command_type}
    if mission_id is not None and "mission_id" in model.model_fields:
        given = payload.get("mission_id")
        if given not in (None, mission_id):
            raise InputError(f"the file registers mission {given!r}, not {mission_id!r}")
        payload["mission_id"] = mission_id
    try:
        return COMMAND_ADAPTER.validate_python(payload)
    except ValidationError as error:
        raise InputError(describe_validation_error(command_type, error, options=options)) from None


Send = Callable[[str, Command, str], None]
DraftSha256 = Callable[[str, str], str]
"""``(mission_id, draft_id) -> the sha256 of that draft's text``, or ``InputError``."""


def _subcommand(
    command_type: str, model: type[BaseModel], send: Send, draft_sha256: DraftSha256
) -> Callable[..., None]:
    fields = {
        n: f
        for n, f in model.model_fields.items()
        if n not in ("type", "mission_id") and (command_type, n) not in HIDDEN
    }

    def callback(**given: Any) -> None:
        mission_id = given.pop("mission_id")
        actor = given.pop("actor")
        path = given.pop("file")
        values: dict[str, Any] = read_file(path) if path else {}
        options = set()
        for name, value in given.items():
            if value is None or value == []:
                continue
            values[name] = option_value(name, fields[name], value)
            options.add(name)
        typed = frozenset(options)
        if command_type in BY_DRAFT and not values.get("text_sha256"):
            # Every other field is checked before the mission is read (a well-formed
            # stand-in for the sha256); the command sent carries the draft's own.
            build_command(
                command_type,
                {**values, "text_sha256": "0" * 64},
                mission_id=mission_id,
                options=typed,
            )
            values["text_sha256"] = draft_sha256(mission_id, values["draft_id"])
        command = build_command(command_type, values, mission_id=mission_id, options=typed)
        send(mission_id, command, actor)

    parameters = [
        inspect.Parameter(
            "mission_id",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help="the mission's id")],
        ),
        inspect.Parameter(
            "file",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option("--file", dir_okay=False, help="JSON or YAML with the fields"),
            ],
        ),
        inspect.Parameter(
            "actor",
            inspect.Parameter.KEYWORD_ONLY,
            default="coordinator",
            annotation=Annotated[
                str,
                typer.Option(envvar="EOM_ACTOR", help="who gives the command (recorded)"),
            ],
        ),
        *(_parameter(command_type, name, field) for name, field in fields.items()),
    ]
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    callback.__doc__ = (model.__doc__ or "").strip() or command_type.replace("_", " ").capitalize()
    return callback


def add_subcommands(app: typer.Typer, send: Send, *, draft_sha256: DraftSha256) -> None:
    """Register ``eom mission <command-type>`` for every domain command; ``send`` carries
    a validated command to the mission, ``draft_sha256`` looks a draft's text hash up for
    approve-statement and publish-statement given a draft id alone."""
    for command_type, model in COMMAND_TYPES.items():
        app.command(command_type.replace("_", "-"))(
            _subcommand(command_type, model, send, draft_sha256)
        )
