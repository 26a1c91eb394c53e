"""What crosses the workflow boundary: one model per workflow input, update and result.

Single models (never several arguments) so that fields can be added later without
breaking running missions.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.commands import Command
from domain.state import Mission
from domain.values import DeadlineKind, DeliveryPurpose, IntakeProgress, ReminderLadder, Stage
from eventstore.models import NewEvent


class _Message(BaseModel):
    """Fields a reader does not know are ignored: while workers are upgraded one after
    another, an older worker takes a message with a field added since (every added field
    has a default), instead of failing it."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class MissionTiming(_Message):
    """Durations of a mission's automation: inputs, so that tests run them in seconds."""

    follow_up_interval_seconds: float = Field(default=182 * 86_400, gt=0)
    """How often the follow-up asks for implementation evidence (about six months)."""
    evidence_window_seconds: float = Field(default=60 * 86_400, gt=0)
    """How long each evidence request stays open before its deadline."""
    delivery_attempts: int = Field(default=6, ge=1)
    delivery_retry_seconds: float = Field(default=2.0, gt=0)
    """First retry interval of a failed delivery (then doubling, at most a minute)."""
    follow_up_history_events: int = Field(default=10_000, ge=10)
    intake_poll_seconds: float = Field(default=60.0, gt=0)
    """How often, on election day, the mission counts what the intake holds."""


class MissionStart(_Message):
    """Input of ``MissionWorkflow.run``: a fresh mission, or one carried over
    continue-as-new (``state`` set), or one restored from its stream (``state`` unset)."""

    mission_id: str
    state: Mission | None = None
    head_hash: str | None = None
    """The hash of the stream's last event, carried with the state."""
    max_history_events: int = Field(default=10_000, ge=100)
    """Continue-as-new once the history is this long (Temporal's hard limit is 51,200)."""
    registration_timeout_seconds: float = Field(default=300.0, gt=0)
    """A started mission that receives no valid registration in this time ends."""
    timing: MissionTiming = MissionTiming()
    recent_results: list[CommandResult] = Field(default_factory=list)
    """The last commands' results, carried over continue-as-new: a command sent again
    with the same id (an update retried after the run changed) gets its first result."""
    restored: bool = False
    """A run restored from the stream after its workflow was lost: it restarts the
    reminder ladders and the follow-up that were lost with it."""


class CommandRequest(_Message):
    """A command with who sent it and why: becomes the events' metadata."""

    command: Command
    command_id: str = Field(min_length=1, max_length=200)
    actor: str = Field(min_length=1, max_length=600)
    correlation_id: str | None = None
    causation_id: str | None = None


class IntakeCommandRequest(_Message):
    """A mission command the intake records (polling stations, a visit by command)."""

    mission_id: str
    request: CommandRequest


class IntakeCommandResult(_Message):
    event_ids: list[UUID] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    global_positions: list[int] = Field(default_factory=list)
    refused_rule: str | None = None
    """The rule that refused the command (nothing recorded): an answer, not a failure."""
    refused_message: str | None = None


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
    visits: bool = True
    """Whether the folded state keeps the visits of the mission's own stream (records made
    before visits went through the intake): runs that route visits to the intake leave
    them out, so that a mission with any number of them carries a small state."""


class FoldedStream(_Message):
    """A mission's stream folded: its state for decisions, as of its head."""

    state: Mission
    head_hash: str | None


class LadderStart(_Message):
    """Input of a reminder ladder: one member state, one deadline."""

    mission_id: str
    mission_workflow_id: str
    organisation: str
    mission_name: str
    member_state: str
    kind: DeadlineKind
    cycle: int = 0
    deadline: datetime
    ladder: ReminderLadder
    timing: MissionTiming = MissionTiming()
    first_step: int = Field(default=0, ge=0)
    """The step to start from: a ladder restarted after its workflow was lost goes on
    after the last step the record holds, without sending the request again."""


class LadderStatus(_Message):
    kind: DeadlineKind
    member_state: str
    cycle: int
    deadline: datetime
    next_step: int
    next_purpose: DeliveryPurpose | None
    next_due: datetime | None
    paused: bool
    answered: bool
    stopped: bool
    sent: int


class NewDeadline(_Message):
    deadline: datetime


class FollowUpStart(_Message):
    mission_id: str
    mission_workflow_id: str
    member_states: list[str]
    ladder: ReminderLadder | None = None
    timing: MissionTiming = MissionTiming()
    cycles_done: int = 0
    reopened_for: list[str] = Field(default_factory=list)
    counted_from: datetime | None = None
    """When the recommendations went out, per the record: evidence cycles open every
    ``follow_up_interval`` from then. Unset in runs recorded before (counted from when
    the follow-up started)."""
    next_opening: datetime | None = None
    """When the next cycle opens (carried over continue-as-new)."""


class FollowUpStatus(_Message):
    mission_id: str
    cycles_done: int
    next_cycle_due: datetime | None
    reopened_for: list[str]
    stopped: bool


class Reopen(_Message):
    new_mission_id: str
    host_country: str


class LadderQuery(_Message):
    organisation: str
    kind: DeadlineKind


class FollowUpsQuery(_Message):
    host_country: str
    exclude_mission_id: str
    organisation: str | None = None
    """Only this organisation's missions (unset in histories recorded before the rule)."""
    election_day: date | None = None
    """Only missions whose election came before this day (likewise)."""


class IntakeQuery(_Message):
    mission_id: str


class IntakeDrained(_Message):
    progress: IntakeProgress
    closed: bool
    """The gate is closed: no later submission gets in."""


class CheckInQuery(_Message):
    mission_id: str
    teams: list[str]
