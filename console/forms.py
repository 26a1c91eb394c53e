"""HTML forms for the domain's commands, drawn from the commands' own models.

A command's form is its pydantic model read field by field (``form_fields``): a choice
lists the domain's own options (an enum's members), a date is a date input, a moment a
local date and time (read in the host's time zone, as the command path reads a time
without an offset), free text a text area, a nested model a fieldset, a list of models
repeated fieldsets. What the browser sends back is rebuilt into the model's shape
(``parse_form``) and validated by the model itself, so a form can accept nothing the
API would refuse; a field the model refuses is named by its form name.

Pure: no web framework here, only the models and the posted pairs.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from domain.values import TextRule

ROWS_SHOWN = 1
"""Rows a list of models shows at first (``add another`` asks the server for more)."""

MAX_ROWS = 500
"""Rows a posted list may name at most: indexes beyond are refused, not allocated."""


@dataclass
class FormField:
    """One input (or group of inputs) of a command's form.

    ``kind`` is one of ``text``, ``textarea``, ``lines`` (a list of short values, one per
    line), ``pairs`` (a mapping written ``key = value`` per line), ``number``, ``integer``,
    ``checkbox``, ``date``, ``datetime``, ``choice``, ``group`` (a nested model: its
    ``children``), ``rows`` (a list of models: ``children`` is one row's fields, named
    with ``{index}`` where the row's index goes), or ``keyed`` (a mapping from an enum's
    members: one child per member)."""

    name: str
    label: str
    kind: str
    required: bool
    description: str = ""
    choices: list[str] = field(default_factory=list)
    default: str = ""
    children: list[FormField] = field(default_factory=list)
    minimum: int | float | None = None
    maximum: int | float | None = None
    suggestions: list[str] = field(default_factory=list)
    """Values the mission already knows for this field (ids of its observers, drafts...),
    offered as the input's suggestions."""

    def row(self, index: int) -> list[FormField]:
        """A ``rows`` field's children for row ``index``, their names filled in."""
        return [_named(child, self.name, index) for child in self.children]


def _named(template: FormField, prefix: str, index: int) -> FormField:
    marker = f"{prefix}.{{index}}"
    return FormField(
        name=template.name.replace(marker, f"{prefix}.{index}", 1),
        label=template.label,
        kind=template.kind,
        required=template.required,
        description=template.description,
        choices=template.choices,
        default=template.default,
        children=[_named(c, prefix, index) for c in template.children],
        minimum=template.minimum,
        maximum=template.maximum,
        suggestions=template.suggestions,
    )


class FormErrors(ValueError):
    """What the model refused, by form field name (``election.date``,
    ``recommendations.0.text``; ``""`` for the form as a whole)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k or 'form'}: {v}" for k, v in problems.items()))
        self.problems = problems


def label_of(name: str) -> str:
    """A field's name as people read it: ``polls_open_at`` -> ``Polls open at``."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def form_fields(model: type[BaseModel], *, prefix: str = "") -> list[FormField]:
    """The inputs of ``model``'s form, in the model's field order; the discriminating
    ``type`` field of a command is left out (the form's address names the command), and
    so are fields eom fills itself (``readOnly`` in their schema)."""
    fields: list[FormField] = []
    for name, info in model.model_fields.items():
        if name == "type" and get_origin(info.annotation) is Literal:
            continue
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("readOnly"):
            continue
        fields.append(_field(f"{prefix}{name}", name, info.annotation, info))
    return fields


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """The annotation without ``Annotated`` and ``None``: (type, optional, metadata)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(members) < len(get_args(annotation))
            if len(members) != 1:
                return annotation, optional, metadata
            annotation = members[0]
        else:
            return annotation, optional, metadata


def _multiline(metadata: Iterable[Any]) -> bool:
    return any(
        isinstance(getattr(m, "func", None), TextRule) and m.func.multiline for m in metadata
    )


def _bounds(metadata: Iterable[Any]) -> tuple[int | float | None, int | float | None]:
    low: int | float | None = None
    high: int | float | None = None
    for item in metadata:
        for entry in getattr(item, "metadata", [item]):
            low = getattr(entry, "ge", None) if getattr(entry, "ge", None) is not None else low
            high = getattr(entry, "le", None) if getattr(entry, "le", None) is not None else high
    return low, high


def _default(info: FieldInfo | None) -> str:
    if info is None or info.is_required():
        return ""
    value = info.get_default(call_default_factory=True)
    if value is None or isinstance(value, (list, dict, BaseModel)):
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "on" if value else ""
    return str(value)


def _field(name: str, key: str, annotation: Any, info: FieldInfo | None) -> FormField:
    kind_of, optional, metadata = _unwrap(annotation)
    if info is not None:
        metadata = [*metadata, *info.metadata]
    required = (info is None or info.is_required()) and not optional
    made = FormField(
        name=name,
        label=label_of(key),
        kind="text",
        required=required,
        description=(info.description or "") if info else "",
        default=_default(info),
    )
    origin = get_origin(kind_of)
    if origin is list:
        (item,) = get_args(kind_of)
        item_type, _, _ = _unwrap(item)
        if isinstance(item_type, type) and issubclass(item_type, BaseModel):
            made.kind = "rows"
            made.children = form_fields(item_type, prefix=f"{name}.{{index}}.")
            if not made.required:
                # Rows of a list that may be empty: a row left empty is dropped, so the
                # browser must not insist on its inputs (one half filled is still named
                # by the model's "missing" error), and nothing is prefilled (a default
                # would keep an unwanted row; the model's default applies once left out).
                _not_required(made.children)
                _no_defaults(made.children)
        else:
            made.kind = "lines"
        return made
    if origin is dict:
        key_type, value_type = get_args(kind_of)
        key_type, _, _ = _unwrap(key_type)
        if isinstance(key_type, type) and issubclass(key_type, Enum):
            made.kind = "keyed"
            made.children = [
                _field(f"{name}.{member.value}", member.value, value_type, None)
                for member in key_type
            ]
            for child in made.children:
                child.required = False
        else:
            made.kind = "pairs"
        return made
    if origin is Literal:
        made.kind = "choice"
        made.choices = [str(a) for a in get_args(kind_of)]
    elif isinstance(kind_of, type) and issubclass(kind_of, BaseModel):
        made.kind = "group"
        made.children = form_fields(kind_of, prefix=f"{name}.")
        if not made.required:
            # Left empty, an optional group is left out (the mission's own default
            # applies, e.g. the organisation's reminder ladder): nothing is prefilled.
            _no_defaults(made.children)
    elif isinstance(kind_of, type) and issubclass(kind_of, Enum):
        made.kind = "choice"
        made.choices = [str(m.value) for m in kind_of]
    elif kind_of is bool:
        made.kind = "checkbox"
        made.required = False
    elif kind_of is int or kind_of is float:
        made.kind = "integer" if kind_of is int else "number"
        made.minimum, made.maximum = _bounds(metadata)
    elif kind_of is datetime:
        made.kind = "datetime"
    elif kind_of is date:
        made.kind = "date"
    elif _multiline(metadata):
        made.kind = "textarea"
    return made


def _not_required(fields: list[FormField]) -> None:
    for item in fields:
        item.required = False
        _not_required(item.children)


def _no_defaults(fields: list[FormField]) -> None:
    for item in fields:
        item.default = ""
        _no_defaults(item.children)


_INDEX = re.compile(r"^(0|[1-9][0-9]{0,3})$")


def parse_form(
    model: type[BaseModel],
    pairs: Iterable[tuple[str, str]],
    *,
    fixed: Mapping[str, Any] | None = None,
) -> BaseModel:
    """``model`` from a posted form's ``pairs`` (name, value), with ``fixed`` values set
    whatever the form says. Empty inputs are left out (the model's default, or its
    "missing" error, applies); a row of a list whose inputs are all empty is dropped.
    Raises ``FormErrors`` naming each refused field by its form name."""
    shape = {f.name: f for f in _flatten(form_fields(model))}
    data: dict[str, Any] = {}
    problems: dict[str, str] = {}
    filled: set[str] = set()  # rows given something more than a preset choice
    for name, raw in pairs:
        value = raw.strip() if isinstance(raw, str) else raw
        if name.startswith("_") or value == "":
            continue
        template = _template_name(name)
        spec = shape.get(template)
        if spec is None:
            problems[name] = "is not a field of this form"
            continue
        _put(data, name.split("."), _typed(spec, value), problems, name)
        if spec.kind not in ("choice", "checkbox"):
            parts = name.split(".")
            filled.update(".".join(parts[:i]) for i in range(1, len(parts)))
    for spec in shape.values():
        if spec.kind == "checkbox" and "{index}" not in spec.name:
            _default_false(data, spec.name.split("."))
    _compact(data, filled)
    if fixed:
        data.update(fixed)
    if problems:
        raise FormErrors(problems)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise FormErrors(named_problems(error)) from None


def _flatten(fields: list[FormField]) -> Iterable[FormField]:
    for item in fields:
        yield item
        yield from _flatten(item.children)


def _template_name(name: str) -> str:
    return ".".join("{index}" if _INDEX.match(part) else part for part in name.split("."))


def _typed(spec: FormField, value: str) -> Any:
    if spec.kind == "lines":
        return [line.strip() for line in value.splitlines() if line.strip()]
    if spec.kind == "pairs":
        pairs: dict[str, str] = {}
        for line in value.splitlines():
            if line.strip():
                key, _, answer = line.partition("=")
                pairs[key.strip()] = answer.strip()
        return pairs
    if spec.kind == "checkbox":
        return value not in ("", "off", "false")
    return value


def _put(
    data: dict[str, Any], path: list[str], value: Any, problems: dict[str, str], name: str
) -> None:
    """Set ``value`` at ``path`` in ``data``; list indexes become dict keys until
    ``_compact`` turns them into lists in index order."""
    here = data
    for part in path[:-1]:
        if _INDEX.match(part) and int(part) >= MAX_ROWS:
            problems[name] = f"at most {MAX_ROWS} rows"
            return
        here = here.setdefault(part, {})
        if not isinstance(here, dict):
            problems[name] = "is given twice"
            return
    here[path[-1]] = value


def _default_false(data: dict[str, Any], path: list[str]) -> None:
    here = data
    for part in path[:-1]:
        here = here.setdefault(part, {})
    here.setdefault(path[-1], False)


def _compact(data: dict[str, Any], filled: set[str], path: str = "") -> None:
    """Rows (dicts keyed by index) become lists in index order, leaving out rows given
    nothing but preset choices (a row of a list shows its selects already chosen)."""
    for key, value in list(data.items()):
        here = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            _compact(value, filled, here)
            if value and all(_INDEX.match(k) for k in value):
                rows = sorted(value, key=int)
                data[key] = [value[k] for k in rows if f"{here}.{k}" in filled]
                if not data[key]:
                    del data[key]
            elif not value:
                del data[key]


def named_problems(error: ValidationError) -> dict[str, str]:
    """What a model refused, by dotted field name (``recommendations.0.text``), each
    with pydantic's message (a validator's own message as it wrote it)."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.setdefault(name, message)
    return problems
