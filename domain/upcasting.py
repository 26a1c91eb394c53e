"""Reading events written by earlier versions of eom.

An event's stored data carries its ``schema_version``. When a shape changes, the event
class's ``schema_version`` goes up and an upcaster here turns the previous shape into the
next one; ``load`` applies them in turn, so every reader (the workflow catching up, the
auditor's replay, the client's fold) sees only current models. Stored events are never
rewritten: the store is append-only, and the hash covers what was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from domain.events import EVENT_ADAPTER, EVENT_TYPES, Event
from domain.values import RECORDED

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v2 (reminders): the acknowledgement deadline and its ladder travel with the sending.
    ("RecommendationsSent", 1): lambda d: {**d, "acknowledge_by": None, "ladder": None},
    # v2 (audit): the statement names the history it was drawn from; unknown before.
    ("StatementPublished", 1): lambda d: {**d, "history_fingerprint": None},
}


def current_version(event_type: str) -> int:
    default = EVENT_TYPES[event_type].model_fields["schema_version"].default
    return int(default)


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` in the current shape of its event type."""
    event_type = data.get("type")
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    version = int(data.get("schema_version", 1))
    target = current_version(event_type)
    if version > target:
        raise ValueError(f"{event_type} v{version} is newer than this code understands (v{target})")
    while version < target:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        version += 1
        data = {**step(data), "schema_version": version}
    return data


def load(data: dict[str, Any]) -> Event:
    """A stored event's data as the current event model, read as it was recorded (the
    rules for new input, ``domain.values``, are not applied again)."""
    return EVENT_ADAPTER.validate_python(upcast(data), context=RECORDED)


def load_json(text: str | bytes) -> Event:
    """A stored event's data, given as JSON text, as the current event model.

    Current-version data is parsed and validated in one pass; anything else (an older
    version, or data that does not validate as it stands) goes through ``load``."""
    try:
        event = EVENT_ADAPTER.validate_json(text, context=RECORDED)
    except ValidationError:
        return load(json.loads(text))
    if event.schema_version != current_version(event.type):
        return load(json.loads(text))
    return event
