"""``eom mission <command>``: one subcommand per domain command, built from its model.

Scalar fields become options (``--stakeholder-type political_party``), lists of scalars
repeatable options (``--member-states AZ --member-states KG``), structured fields take
JSON (``--election '{"name": ..., "type": "parliamentary", "date": "2021-01-10"}'``).
``--file`` reads all fields from a JSON or YAML file; options given alongside override it.
Each subcommand is an ordinary typer command whose signature is made from the model.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from domain.commands import COMMAND_ADAPTER, COMMAND_TYPES, Command


class InputError(Exception):
    """Bad input: reported as one line naming the problem, exit code 2."""


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_scalar(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return isinstance(annotation, type) and (
        issubclass(annotation, str | int | float | date | Enum)
        or annotation in (datetime, AwareDatetime)
    )


def _kind(name: str, field: FieldInfo) -> str:
    """How a field is given on the command line: flag, scalar, many or json."""
    annotation = _unwrap_optional(field.annotation)
    if annotation is bool:
        return "flag"
    if _is_scalar(annotation):
        return "scalar"
    if typing.get_origin(annotation) is list and _is_scalar(typing.get_args(annotation)[0]):
        return "many"
    return "json"


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    kind = _kind(name, field)
    annotation = _unwrap_optional(field.annotation)
    hint: Any
    if kind == "flag":
        hint = Annotated[bool | None, typer.Option(f"{flag}/--no-{flag[2:]}")]
    elif kind == "scalar" and isinstance(annotation, type) and issubclass(annotation, Enum):
        hint = Annotated[annotation | None, typer.Option(flag)]
    elif kind == "scalar" and annotation is int:
        hint = Annotated[int | None, typer.Option(flag)]
    elif kind == "many":
        hint = Annotated[list[str] | None, typer.Option(flag, help="repeat for each value")]
    elif kind == "json":
        hint = Annotated[str | None, typer.Option(flag, metavar="JSON", help="as JSON")]
    else:
        hint = Annotated[str | None, typer.Option(flag)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)


def _parse_json_option(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"--{name.replace('_', '-')} is not valid JSON: {error.msg}") from None


def load_document(path: Path) -> Any:
    """A JSON or YAML file's content (YAML is a superset of JSON), or ``InputError``
    saying why it cannot be read: not there, not UTF-8, not JSON nor YAML, a number
    beyond what Python parses (4,300 digits), nesting too deep, a mapping whose keys are
    not all text."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (byte {error.start})") from None
    try:
        loaded = yaml.load(text, Loader=_PlainLoader)
    except yaml.YAMLError as error:
        raise InputError(f"{path} is neither JSON nor YAML: {error}") from None
    except (ValueError, RecursionError) as error:
        raise InputError(f"{path} cannot be read: {type(error).__name__}: {error}") from None
    _text_keys(loaded, path)
    return loaded


class _PlainLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases (``&a``, ``*a``): no eom input needs
    them, and they let a few lines stand for a structure without end (an alias inside
    itself) or of billions of items."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not taken in eom's input", None
            )
        return super().compose_node(parent, index)


def _text_keys(value: Any, path: Path, where: str = "") -> None:
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise InputError(f"{path}: key {key!r}{at and f' in {at}'} is not text")
                stack.append((inner, f"{at}.{key}" if at else key))
        elif isinstance(item, list):
            stack.extend((inner, f"{at}[{n}]") for n, inner in enumerate(item))


def read_file(path: Path) -> dict[str, Any]:
    loaded = load_document(path)
    if not isinstance(loaded, dict):
        raise InputError(f"{path} must hold a mapping of field names to values")
    return loaded


def describe_validation_error(command_type: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if part != command_type)
        problems.append(f"{location or 'command'}: {item['msg']}")
    return f"invalid {command_type}: " + "; ".join(problems)


def build_command(
    command_type: str, values: dict[str, Any], *, mission_id: str | None = None
) -> Command:
    """Validate raw values into the command model, or raise ``InputError``."""
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
        raise InputError(describe_validation_error(command_type, error)) from None


Send = Callable[[str, Command, str], None]


def _subcommand(command_type: str, model: type[BaseModel], send: Send) -> Callable[..., None]:
    fields = {n: f for n, f in model.model_fields.items() if n not in ("type", "mission_id")}

    def callback(**given: Any) -> None:
        mission_id = given.pop("mission_id")
        actor = given.pop("actor")
        path = given.pop("file")
        values: dict[str, Any] = read_file(path) if path else {}
        for name, value in given.items():
            if value is None or value == []:
                continue
            if _kind(name, fields[name]) == "json":
                value = _parse_json_option(name, value)
            elif isinstance(value, Enum):
                value = value.value
            values[name] = value
        send(mission_id, build_command(command_type, values, mission_id=mission_id), actor)

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
        *(_parameter(name, field) for name, field in fields.items()),
    ]
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    callback.__doc__ = (model.__doc__ or "").strip() or command_type.replace("_", " ").capitalize()
    return callback


def add_subcommands(app: typer.Typer, send: Send) -> None:
    """Register ``eom mission <command-type>`` for every domain command."""
    for command_type, model in COMMAND_TYPES.items():
        app.command(command_type.replace("_", "-"))(_subcommand(command_type, model, send))
