"""The per-stream hash chain: each event's hash covers its canonical encoding and the
previous event's hash, so that any change, removal, insertion or reordering shows.

The encoding is RFC 8785 (JSON Canonicalization Scheme), computed in Python from the
decoded values, never from PostgreSQL's jsonb text (whose formatting is not a contract).
``global_position``, ``transaction_id`` and ``recorded_at`` are assigned by the database
and are not hashed; everything the caller supplied is.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import rfc8785


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
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()
