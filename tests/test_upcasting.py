"""Schema evolution: events written by earlier versions of eom still replay.

``tests/corpus/seed_v1.jsonl`` holds the seed mission's events exactly as eom's first
version wrote them (taken from the append inputs of the committed workflow history);
``seed_v1.state.json`` is the state they fold to. Both are frozen: a change to an event's
shape must come with an upcaster that keeps this test green."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain import EVENT_TYPES, Mission, fold, load_event, load_event_json
from domain.upcasting import UPCASTERS, current_version, upcast

CORPUS = Path(__file__).parent / "corpus"


def corpus() -> list[dict[str, Any]]:
    lines = (CORPUS / "seed_v1.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_the_frozen_corpus_replays_to_the_frozen_state() -> None:
    """Old-version events, upcast on read, fold to the same state as ever."""
    events = corpus()
    assert any(e["schema_version"] < current_version(e["type"]) for e in events)
    expected = Mission.model_validate(
        json.loads((CORPUS / "seed_v1.state.json").read_text(encoding="utf-8"))
    )
    folded = fold(load_event(e) for e in events)
    # Missions name their host's time zone since; a record made before reads as the zone
    # its host implies, or (Kazakhstan has several) UTC, with a note saying so.
    assert folded.time_zone == "UTC" and "KZ has 7 zones" in (folded.time_zone_note or "")
    assert folded == expected.model_copy(
        update={"time_zone": folded.time_zone, "time_zone_note": folded.time_zone_note}
    )


def test_json_text_loads_as_the_dict_does() -> None:
    """The replay path that parses stored JSON text directly upcasts old versions too, and
    gives the same events as decoding first."""
    lines = (CORPUS / "seed_v1.jsonl").read_text(encoding="utf-8").splitlines()
    assert [load_event_json(line) for line in lines] == [load_event(e) for e in corpus()]
    current = [load_event(e).model_dump_json() for e in corpus()]
    assert [load_event_json(text) for text in current] == [load_event(e) for e in corpus()]


def test_every_older_version_has_an_upcaster() -> None:
    """No event type can move to a new version without a way up from each older one."""
    for event_type in EVENT_TYPES:
        for version in range(1, current_version(event_type)):
            assert (event_type, version) in UPCASTERS, f"{event_type} v{version}"


def test_upcasting_reaches_the_current_shape() -> None:
    """A v1 statement publication comes out as v2, with no history fingerprint known."""
    old = next(e for e in corpus() if e["type"] == "StatementPublished")
    new = upcast(old)
    assert new["schema_version"] == current_version("StatementPublished") == 2
    assert new["history_fingerprint"] is None
    assert old["schema_version"] == 1  # the stored data itself is never rewritten


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "NoSuchEvent", "schema_version": 1}, "unknown event type"),
        ({"type": "MissionClosed", "schema_version": 9}, "newer than this code"),
    ],
)
def test_unreadable_events_are_named(data: dict[str, Any], message: str) -> None:
    """An unknown type or a version from the future is an error that says so."""
    with pytest.raises(ValueError, match=message):
        upcast(data)
    with pytest.raises(ValueError, match=message):
        load_event_json(json.dumps(data))
