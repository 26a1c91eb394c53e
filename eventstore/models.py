"""What goes into and comes out of the event store.

Plain pydantic models with no database import, so that workflow code (inside Temporal's
sandbox) can build ``NewEvent`` values and activities can carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

GENESIS_HASH = "0" * 64
"""``previous_hash`` of a stream's first event."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventMetadata(_Model):
    """Who and what caused an event: enough for an auditor to trace it back.

    Keys this version does not know are ignored on read (a later version may add some):
    readers of the log keep going, and ``verify``, which hashes the stored document
    itself, reports any that were added behind the store's back."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    actor: str | None = None
    command_id: str | None = None
    command_type: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None


class DomainEvent(Protocol):
    """What the store needs of a domain event: its type, shape version and data."""

    @property
    def type(self) -> str: ...

    @property
    def schema_version(self) -> int: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


class NewEvent(_Model):
    """An event about to be appended. Its id is chosen by the caller (the workflow), so
    that a retried append is recognised instead of duplicated."""

    event_id: UUID
    event_type: str
    schema_version: int = Field(ge=1)
    data: dict[str, Any]
    metadata: EventMetadata = EventMetadata()
    occurred_at: datetime

    @classmethod
    def of(
        cls,
        event: DomainEvent,
        *,
        event_id: UUID,
        occurred_at: datetime,
        metadata: EventMetadata | None = None,
    ) -> NewEvent:
        if event.schema_version < 1:
            raise ValueError(f"{event.type}: schema versions start at 1")
        # Built, not validated: every field comes typed from a domain event, and
        # validating ``data`` would walk what ``model_dump`` has just made.
        return cls.model_construct(
            event_id=event_id,
            event_type=event.type,
            schema_version=event.schema_version,
            data=event.model_dump(mode="json"),
            metadata=metadata or EventMetadata(),
            occurred_at=occurred_at,
        )


class RecordedEvent(NewEvent):
    stream_id: str
    stream_version: int
    global_position: int
    transaction_id: int
    recorded_at: datetime
    previous_hash: str
    hash: str

    @property
    def log_position(self) -> LogPosition:
        return LogPosition(transaction_id=self.transaction_id, global_position=self.global_position)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event exactly as the store holds it: the hashed fields, with ``data`` and
    ``metadata`` as the stored JSON decoded, not validated. What verification reads, so
    that a key added to or removed from stored metadata changes the hash instead of being
    rejected or filled in by a model."""

    stream_id: str
    stream_version: int
    event_id: UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: datetime
    previous_hash: str
    hash: str

    @classmethod
    def of(cls, event: RecordedEvent) -> StoredEvent:
        """A recorded event as stored (its metadata as the model dumps it)."""
        return cls(
            stream_id=event.stream_id,
            stream_version=event.stream_version,
            event_id=event.event_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            data=event.data,
            metadata=event.metadata.model_dump(mode="json"),
            occurred_at=event.occurred_at,
            previous_hash=event.previous_hash,
            hash=event.hash,
        )


class AppendResult(_Model):
    stream_id: str
    first_version: int
    last_version: int
    event_ids: list[UUID]
    global_positions: list[int]
    head_hash: str
    replayed: bool = False
    """True when these events were already stored by an earlier attempt of the same append."""


class LogPosition(_Model):
    """A reader's place in the global log: events are read in (transaction_id,
    global_position) order, which is commit-safe (see ``reader.py``)."""

    transaction_id: int = 0
    global_position: int = 0


BreakKind = Literal["changed", "removed", "inserted", "reordered"]


class ChainBreak(_Model):
    stream_id: str
    stream_version: int
    kind: BreakKind
    problem: str


class ChainCheck(_Model):
    stream_id: str
    events: int
    head_hash: str
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None
