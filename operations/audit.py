"""For someone who trusts neither the workflow engine nor the operators: the hash chains
verified, and a mission's state rebuilt from its events as of a version or a time.

Everything here reads the event store and folds it with the domain's ``evolve``; Temporal
is not involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from domain import fold, load_event
from domain.host_time import aware, localized, shown
from domain.state import Mission
from domain.values import FIRST_DAY, LAST_DAY
from eventstore.chain import verify_chain
from eventstore.models import ChainBreak, ChainCheck, RecordedEvent, StoredEvent
from eventstore.store import EventStore, read_chain_on
from intake.visits import mission_visits, with_visits
from operations.errors import InvalidInput, UnknownMission


def fingerprint_problems(events: list[StoredEvent]) -> list[str]:
    """A published statement names the hash of the history before it: check it still
    matches what the store holds. One line per statement whose fingerprint does not."""
    by_version = {e.stream_version: e for e in events}
    problems = []
    for event in events:
        claimed = event.data.get("history_fingerprint")
        if event.event_type != "StatementPublished" or not claimed:
            continue
        before = by_version.get(event.stream_version - 1)
        if before is None or before.hash != claimed:
            problems.append(
                f"v{event.stream_version}: the published statement's fingerprint "
                f"{claimed[:16]} no longer matches version {event.stream_version - 1}"
            )
    return problems


class StreamVerdict(BaseModel):
    """One stream's chain, every hash and link recomputed from the rows as stored."""

    stream_id: str
    events: int
    head_hash: str
    """The hash of the stream's last event (what a statement's fingerprint cites)."""
    breaks: list[ChainBreak]
    """Each break: an event changed, removed, inserted or reordered, at its version."""
    fingerprint_problems: list[str]
    """Published statements whose fingerprint no longer matches the history before them."""
    problems: list[str]
    """The breaks (``v3 changed: ...``), then the fingerprint problems: the verdict."""
    first_problem: str | None
    ok: bool


class Verification(BaseModel):
    """The verdict on each stream verified, in order of stream id."""

    streams: list[StreamVerdict]
    verified: int
    broken: int
    ok: bool


async def verify_streams(store: EventStore, stream_ids: Sequence[str]) -> Verification:
    """Verify each stream of ``stream_ids`` (``StreamVerdict``), reading each one's chain
    and recorded head from one snapshot."""
    verdicts = []
    async with store.connection() as conn:
        for stream_id in stream_ids:
            events, head = await read_chain_on(conn, stream_id)
            check = verify_chain(stream_id, events, head=head)
            fingerprints = fingerprint_problems(events)
            problems = [
                f"v{b.stream_version} {b.kind}: {b.problem}" for b in check.breaks
            ] + fingerprints
            verdicts.append(
                StreamVerdict(
                    stream_id=stream_id,
                    events=check.events,
                    head_hash=check.head_hash,
                    breaks=check.breaks,
                    fingerprint_problems=fingerprints,
                    problems=problems,
                    first_problem=problems[0] if problems else None,
                    ok=not problems,
                )
            )
    broken = sum(not v.ok for v in verdicts)
    return Verification(streams=verdicts, verified=len(verdicts), broken=broken, ok=not broken)


async def mission_streams(store: EventStore, mission_id: str, *, election_day: bool) -> list[str]:
    """The mission's stream, and with ``election_day`` its election-day streams (its
    polling stations, ``<mission>/stations``, and each station's reports,
    ``<mission>/stations/<station>``) in order of stream id. Raises ``UnknownMission``."""
    if not await store.stream_version(mission_id):
        raise UnknownMission(mission_id)
    if not election_day:
        return [mission_id]
    rows = await store.pool.fetch(
        "SELECT stream_id FROM streams WHERE starts_with(stream_id, $1) ORDER BY stream_id",
        f"{mission_id}/stations",
    )
    return [mission_id, *(r["stream_id"] for r in rows)]


async def verify_mission(
    store: EventStore, mission_id: str, *, election_day: bool = True
) -> Verification:
    """What ``eom audit verify MISSION`` checks, for the mission's stream and (with
    ``election_day``) its election-day streams. Raises ``UnknownMission``."""
    return await verify_streams(
        store, await mission_streams(store, mission_id, election_day=election_day)
    )


def mission_of_stream(stream_id: str) -> str:
    """The mission a stream belongs to: its own id, or the part before the first ``/``
    (``m-1/stations/PS-1`` is ``m-1``'s)."""
    return stream_id.split("/", 1)[0]


async def history_at(
    store: EventStore, mission: str, *, at: datetime | None = None, version: int | None = None
) -> list[RecordedEvent]:
    """The mission's events as the store held them at a time (by ``recorded_at``: what the
    mission knew then; a time without offset is UTC here) or up to a version."""
    events = await store.read_stream(mission, to_version=version)
    if at is not None:
        moment = at if at.tzinfo else at.replace(tzinfo=UTC)
        events = [e for e in events if e.recorded_at <= moment]
    return events


class Replay(BaseModel):
    """A mission's state rebuilt by folding its events, as of ``version`` (the last event
    folded), recorded at ``recorded_at``; with the events folded and their chain's
    verdict. ``at`` is the moment asked, if one was."""

    mission_id: str
    version: int
    recorded_at: datetime
    at: datetime | None
    chain: ChainCheck
    state: Mission
    """With its station visits as of ``version``."""
    events: list[RecordedEvent]

    def in_host_time(self) -> Replay:
        """The same, with the state's instants, ``recorded_at`` and ``at`` in the host's
        time zone with their offset (the events as stored)."""
        zone = self.state.time_zone
        return self.model_copy(
            update={
                "state": localized(self.state, zone),
                "recorded_at": localized(self.recorded_at, zone),
                "at": localized(self.at, zone),
            }
        )


async def replay(
    store: EventStore, mission_id: str, *, version: int | None = None, at: datetime | None = None
) -> Replay:
    """The mission as of ``version`` (its head if beyond it), or as the store knew it at
    ``at`` (a time without offset is read in the mission's host time zone), or now.

    Raises ``InvalidInput`` (field ``version`` or ``at``): both given, a version below 1,
    a time outside 1900-2199 or before the mission's first event was recorded; and
    ``UnknownMission``."""
    if version is not None and at is not None:
        raise InvalidInput("at", "give a time or a version, not both")
    if version is not None and version < 1:
        raise InvalidInput("version", f"{version} is not a version (1 or more)")
    if at is not None and not FIRST_DAY <= at.date() <= LAST_DAY:
        raise InvalidInput("at", f"must lie between {FIRST_DAY} and {LAST_DAY}")
    first = await store.read_stream(mission_id, to_version=1)
    if not first:
        raise UnknownMission(mission_id)
    registered = fold(load_event(e.data) for e in first if e.event_type == "InvitationRegistered")
    moment = aware(at, registered.time_zone) if at is not None else None
    if moment is not None and moment < first[0].recorded_at:
        raise InvalidInput(
            "at",
            f"{shown(moment, registered.time_zone)} is before the mission: its first event "
            f"was recorded at {shown(first[0].recorded_at, registered.time_zone)}",
        )
    events = await history_at(store, mission_id, at=moment, version=version)
    head = events[-1]
    state = fold(load_event(e.data) for e in events)
    check = verify_chain(mission_id, [StoredEvent.of(e) for e in events])
    visits = await mission_visits(
        store, mission_id, time_zone=state.time_zone, as_of_version=head.stream_version
    )
    return Replay(
        mission_id=mission_id,
        version=head.stream_version,
        recorded_at=head.recorded_at,
        at=moment,
        chain=check,
        state=with_visits(state, visits),
        events=events,
    )
