"""Values typed on the command line, read the way a person writes them: durations
(``7d``), dates and times (``2021-10-15``, ``2021-01-10T07:00``, ``...T12:00Z``), and
documents (a JSON or YAML file, or JSON / YAML's inline form as an option's value).

Every refusal is an ``InputError`` naming the option and the form it expects; the
commands report it as one line, exit code 2.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from domain.values import MAX_LADDER_SECONDS


class InputError(Exception):
    """Bad input: reported as one line naming the problem, exit code 2."""


# -- durations ---------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*([0-9]{1,12})\s*([dhms]?)\s*")
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_offset(text: str, option: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, or ``0``, at most ``MAX_LADDER_SECONDS``; else
    ``InputError`` naming ``option``."""
    match = _DURATION.fullmatch(text)
    if not match or (not match[2] and int(match[1]) != 0):
        raise InputError(f"{option}: {text!r} is not a duration like 7d, 12h, 30m, 45s or 0")
    seconds = int(match[1]) * _UNITS.get(match[2], 0)
    if seconds > MAX_LADDER_SECONDS:
        raise InputError(f"{option}: {text!r} is longer than {MAX_LADDER_SECONDS} seconds")
    return timedelta(seconds=seconds)


def parse_offsets(text: str, option: str = "--offsets") -> list[timedelta]:
    """A comma-separated list of durations: ``7d,2d,0``."""
    parts = [part for part in text.split(",") if part.strip()]
    return [parse_offset(part, option) for part in parts]


def format_offset(value: timedelta) -> str:
    """The largest unit that divides it exactly: ``7d``, ``36h``, ``0``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0"
    for unit, size in _UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("every whole number of seconds has a unit")


# -- dates and times ---------------------------------------------------------------------------

_MOMENT = re.compile(
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[Tt ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)

DAY_END = time(23, 59, 59)
"""What a bare day means where a moment is due by then (a deadline): its last second."""

MOMENT_FORMS = "2021-01-10T07:00, 2021-01-10T01:00Z or 2021-01-10T07:00+06:00"


def parse_moment(
    text: str, option: str, *, bare_day: Literal["end", "start", "refuse"] = "refuse"
) -> datetime:
    """A date and time as ISO 8601 writes it: ``YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]]``, then
    ``Z``, ``+HH:MM`` or ``+HHMM`` if it carries an offset, which is kept as given (never
    turned into UTC). Without one the result is naive: whoever reads it decides the zone
    (for a mission's command, the host country's). A bare day ``YYYY-MM-DD`` is its last
    second (``DAY_END``, naive) with ``bare_day="end"``, its midnight with ``"start"``,
    and refused with ``"refuse"``.

    Raises ``InputError`` naming ``option``: not of these forms, or no such day or time
    (``2021-02-30``, ``24:00``, an offset of a day or more)."""
    value = text.strip()
    match = _MOMENT.fullmatch(value)
    if match is None:
        day_form = "" if bare_day == "refuse" else ", or a day like 2021-10-15"
        raise InputError(f"{option}: {text!r} is not a date and time like {MOMENT_FORMS}{day_form}")
    try:
        if match["time"] is None:
            day = date.fromisoformat(match["day"])
            if bare_day == "refuse":
                raise InputError(
                    f"{option}: {text!r} is a day; give the time too, e.g. {match['day']}T07:00"
                )
            return datetime.combine(day, DAY_END if bare_day == "end" else time())
        offset = (match["offset"] or "").upper()
        return datetime.fromisoformat(f"{match['day']}T{match['time']}{offset}")
    except ValueError as error:
        raise InputError(f"{option}: {text!r} is no real date and time ({error})") from None


def parse_since(text: str, option: str, *, now: datetime) -> datetime:
    """A moment to look back to: a duration before ``now`` (aware; ``2d``, ``12h``, as
    ``parse_offset`` reads them) or a date and time (``parse_moment``; a bare day is its
    midnight; no offset means UTC, as the times eom lists are). Returns an aware
    datetime; ``InputError`` naming ``option`` when it is neither."""
    if _DURATION.fullmatch(text):
        return now - parse_offset(text, option)
    if _MOMENT.fullmatch(text.strip()) is None:
        raise InputError(
            f"{option}: {text!r} is neither a duration like 2d or 12h nor a date and time "
            "like 2021-01-10 or 2021-01-10T07:00Z (UTC without an offset)"
        )
    moment = parse_moment(text, option, bare_day="start")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- documents ---------------------------------------------------------------------------------


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


def parse_document(text: str, source: str) -> Any:
    """JSON or YAML text (YAML's inline form too: ``{name: Mazhilis, date: 2021-01-10}``)
    as Python values, or ``InputError`` naming ``source`` (a file, or an option) and why:
    neither JSON nor YAML, a number beyond what Python parses (4,300 digits), nesting too
    deep, a mapping whose keys are not all text. JSON is tried first, so that what JSON
    says is never read YAML's way."""
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError):
        try:
            loaded = yaml.load(text, Loader=_PlainLoader)
        except yaml.YAMLError as error:
            raise InputError(f"{source} is neither JSON nor YAML: {_problem(error)}") from None
        except (ValueError, RecursionError) as error:
            raise InputError(f"{source} cannot be read: {type(error).__name__}: {error}") from None
    _text_keys(loaded, source)
    return loaded


def _problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: what, and where (line and column from 1)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{error.problem}{where}"
    return " ".join(str(error).split())


def load_document(path: Path) -> Any:
    """A JSON or YAML file's content (``parse_document``), or ``InputError`` saying why it
    cannot be read: not there, not UTF-8, or as ``parse_document`` refuses it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (byte {error.start})") from None
    return parse_document(text, str(path))


def _text_keys(value: Any, source: str, where: str = "") -> None:
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise InputError(f"{source}: key {key!r}{at and f' in {at}'} is not text")
                stack.append((inner, f"{at}.{key}" if at else key))
        elif isinstance(item, list):
            stack.extend((inner, f"{at}[{n}]") for n, inner in enumerate(item))
