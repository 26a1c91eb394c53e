"""What crosses the workflow boundary: one model per workflow input, update and result.

Single models (never several arguments) so that fields can be added later without
breaking running missions.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.commands import Command
from domain.state import Mission
from domain.values import Stage
from eventstore.models import NewEvent


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MissionStart(_Message):
    """Input of ``MissionWorkflow.run``: a fresh mission, or one carried over
    continue-as-new (``state`` set), or one restored from its stream (``state`` unset)."""

    mission_id: str
    state: Mission | None = None
    max_history_events: int = Field(default=10_000, ge=100)
    """Continue-as-new once the history is this long (Temporal's hard limit is 51,200)."""
    registration_timeout_seconds: float = Field(default=300.0, gt=0)
    """A started mission that receives no valid registration in this time ends."""


class CommandRequest(_Message):
    """A command with who sent it and why: becomes the events' metadata."""

    command: Command
    command_id: str = Field(min_length=1, max_length=200)
    actor: str = Field(min_length=1, max_length=200)
    correlation_id: str | None = None
    causation_id: str | None = None


class CommandResult(_Message):
    mission_id: str
    command_id: str
    stage: Stage
    version: int
    event_ids: list[UUID]
    event_types: list[str]
    global_positions: list[int]


class MissionOutcome(_Message):
    mission_id: str
    stage: Stage | None
    version: int


class AppendRequest(_Message):
    stream_id: str
    expected_version: int
    events: list[NewEvent]


class ReadRequest(_Message):
    stream_id: str
    after_version: int = 0
