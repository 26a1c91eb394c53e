"""The per-stream hash chain: each event's hash covers its canonical encoding and the
previous event's hash, so that any change, removal, insertion or reordering shows.

The encoding is RFC 8785 (JSON Canonicalization Scheme), computed in Python from the
decoded values, never from PostgreSQL's jsonb text (whose formatting is not a contract).
``global_position``, ``transaction_id`` and ``recorded_at`` are assigned by the database
and are not hashed; everything the caller supplied is.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import rfc8785

from eventstore.models import (
    GENESIS_HASH,
    BreakKind,
    ChainBreak,
    ChainCheck,
    StoredEvent,
)


def canonical_time(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: one spelling per instant."""
    if moment.tzinfo is None:
        raise ValueError(f"event times must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    stream_id: str,
    stream_version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
    occurred_at: datetime,
    previous_hash: str,
) -> str:
    document: dict[str, Any] = {
        "stream_id": stream_id,
        "stream_version": stream_version,
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": schema_version,
        "data": data,
        "metadata": metadata,
        "occurred_at": canonical_time(occurred_at),
        "previous_hash": previous_hash,
    }
    if _plain(document):
        return _fast_digest(document)
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def encode_event(
    *,
    stream_id: str,
    stream_version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
    occurred_at: datetime,
    previous_hash: str,
) -> tuple[str, str, str]:
    """``event_hash``, and the event's data and metadata as the JSON text to store, from
    one encoding of each where the standard library's is RFC 8785 (``_plain``): the
    hashed document is then put together from those texts, its keys in their order."""
    if not (
        _plain(data)
        and _plain(metadata)
        and _plain(stream_version)
        and _plain(schema_version)
        and not isinstance(schema_version, bool)
    ):
        digest = event_hash(
            stream_id=stream_id,
            stream_version=stream_version,
            event_id=event_id,
            event_type=event_type,
            schema_version=schema_version,
            data=data,
            metadata=metadata,
            occurred_at=occurred_at,
            previous_hash=previous_hash,
        )
        return digest, json.dumps(data), json.dumps(metadata)
    data_text, metadata_text = _CANONICAL.encode(data), _CANONICAL.encode(metadata)
    quoted = json.encoder.encode_basestring
    document = (
        f'{{"data":{data_text},"event_id":"{event_id}","event_type":{quoted(event_type)},'
        f'"metadata":{metadata_text},"occurred_at":"{canonical_time(occurred_at)}",'
        f'"previous_hash":{quoted(previous_hash)},"schema_version":{int(schema_version)},'
        f'"stream_id":{quoted(stream_id)},"stream_version":{int(stream_version)}}}'
    )
    return hashlib.sha256(document.encode("utf-8")).hexdigest(), data_text, metadata_text


_SAFE_INTEGER = 2**53


def _plain(value: object) -> bool:
    """Is ``value`` made only of what the standard library encodes exactly as RFC 8785
    does (sorted, compact, UTF-8)? Strings, booleans, null, integers an IEEE double holds
    exactly, arrays and objects with ASCII keys (whose code-point order is their UTF-16
    order). Floats are not: their shortest form differs between the two."""
    match value:
        case str() | bool() | None:
            return True
        case int():
            return -_SAFE_INTEGER < value < _SAFE_INTEGER
        case dict():
            return all(isinstance(k, str) and k.isascii() and _plain(v) for k, v in value.items())
        case list():
            return all(_plain(v) for v in value)
    return False


def first_unstorable(value: Any, *, path: str = "data") -> str | None:
    """Where and why ``value`` (decoded JSON: what an event's data or metadata holds)
    cannot be hashed and stored, as ``"<path>: <problem>"``, or ``None``: a NUL character
    (PostgreSQL's ``jsonb`` refuses it), a lone surrogate (UTF-8 cannot encode it), an
    integer beyond ±(2**53 - 1) or a non-finite number (RFC 8785 refuses them), a key
    that is not a string, or a value that is not JSON at all. Walks the whole value: for
    naming the problem once an encoding has failed, not for the common path."""
    match value:
        case bool() | None:
            return None
        case str():
            if "\0" in value:
                return f"{path}: contains the NUL character (U+0000)"
            if any("\ud800" <= c <= "\udfff" for c in value):
                return f"{path}: contains a lone surrogate"
            return None
        case int():
            if -_SAFE_INTEGER < value < _SAFE_INTEGER:
                return None
            return f"{path}: the integer {value} is beyond ±(2**53 - 1)"
        case float():
            return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
        case dict():
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"{path}: the key {key!r} is not a string"
                found = first_unstorable(key, path=f"{path} key {key!r}") or first_unstorable(
                    item, path=f"{path}.{key}"
                )
                if found:
                    return found
            return None
        case list() | tuple():
            for index, item in enumerate(value):
                found = first_unstorable(item, path=f"{path}[{index}]")
                if found:
                    return found
            return None
    return f"{path}: a {type(value).__name__} is not a JSON value"


def _document(event: StoredEvent, stream_version: int) -> dict[str, Any]:
    return {
        "stream_id": event.stream_id,
        "stream_version": stream_version,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata,
        "occurred_at": canonical_time(event.occurred_at),
        "previous_hash": event.previous_hash,
    }


def _fast_digest(document: dict[str, Any]) -> str:
    """SHA-256 over the standard library's sorted, compact JSON: byte for byte RFC 8785
    for the documents eom writes (strings, integers, booleans, nulls, objects, arrays),
    and several times faster. It can differ for floats, so it only ever *confirms*."""
    return hashlib.sha256(_CANONICAL.encode(document).encode("utf-8")).hexdigest()


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""The standard library's sorted, compact encoding (one encoder, not one per call)."""


def hash_matches(event: StoredEvent, *, stream_version: int | None = None) -> bool:
    """Does the event hash to its stored hash (at its own version, or at another)?

    The fast encoding is tried first; when its digest differs, the exact RFC 8785 encoding
    decides. A match on the fast bytes is a match on the canonical bytes: SHA-256 was
    taken over those bytes, and they decode to the same JSON value."""
    document = _document(event, event.stream_version if stream_version is None else stream_version)
    if _fast_digest(document) == event.hash:
        return True
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest() == event.hash


def verify_chain(
    stream_id: str,
    events: Sequence[StoredEvent],
    *,
    head: tuple[int, str] | None = None,
) -> ChainCheck:
    """Recompute every hash and link of one stream (events in version order) and say what
    each break is: an event **changed** (its content no longer matches its hash), events
    **removed** (a gap in the versions, or a head beyond the last event), an event
    **inserted** (beyond the head the stream recorded, or linking to nothing), or events
    **reordered** (an event whose hash is right for another version).

    ``head`` is the stream's recorded (version, head hash), kept apart from the events.
    An append at the end that also moved the head is indistinguishable from a genuine one
    by the chain alone: published fingerprints (``fingerprint``) anchor it from outside."""
    breaks: list[ChainBreak] = []

    def found(version: int, kind: BreakKind, problem: str) -> None:
        breaks.append(
            ChainBreak(stream_id=stream_id, stream_version=version, kind=kind, problem=problem)
        )

    versions = {e.stream_version for e in events}
    hashes = {e.hash for e in events}
    expected_version, expected_previous = 1, GENESIS_HASH
    previous_broken = False
    for event in events:
        version = event.stream_version
        content_broken = not hash_matches(event)
        if content_broken:
            home = [
                v for v in sorted(versions - {version}) if hash_matches(event, stream_version=v)
            ]
            if home:
                found(
                    version,
                    "reordered",
                    f"event {event.event_id} ({event.event_type}) belongs at version {home[0]}",
                )
            else:
                found(
                    version,
                    "changed",
                    f"event {event.event_id} ({event.event_type}) no longer matches its hash",
                )
        elif version > expected_version:
            found(
                version,
                "removed",
                f"version{'s' if version - expected_version > 1 else ''} "
                f"{expected_version}"
                + (f"..{version - 1}" if version - expected_version > 1 else "")
                + " missing before this event",
            )
        elif event.previous_hash != expected_previous and not previous_broken:
            # (after a changed or misplaced event, a broken link is its consequence)
            kind: BreakKind = "inserted" if event.previous_hash not in hashes else "reordered"
            found(
                version,
                kind,
                f"event {event.event_id} ({event.event_type}) does not follow the event before it",
            )
        expected_version, expected_previous = version + 1, event.hash
        previous_broken = content_broken
    last_version = events[-1].stream_version if events else 0
    last_hash = events[-1].hash if events else GENESIS_HASH
    if head is not None:
        head_version, head_hash = head
        if last_version > head_version:
            found(
                head_version + 1,
                "inserted",
                f"events after version {head_version}, the stream's recorded head",
            )
        elif last_version < head_version:
            found(
                last_version + 1,
                "removed",
                f"the stream's head is version {head_version}; events after "
                f"{last_version} are missing",
            )
        elif head_hash != last_hash:
            found(last_version, "changed", "the last event's hash is not the recorded head")
    return ChainCheck(stream_id=stream_id, events=len(events), head_hash=last_hash, breaks=breaks)
