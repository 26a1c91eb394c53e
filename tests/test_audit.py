"""Tampering with the event store as a superuser, behind the append-only triggers: the
chain verification catches each kind of change and names it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from builders import record
from test_eventstore import new_events

from cli import seed
from cli.audit import history_at
from domain import Stage, fold, load_event
from eventstore.chain import event_hash
from eventstore.models import EventMetadata
from eventstore.store import EventStore


@pytest_asyncio.fixture
async def stream(store: EventStore) -> AsyncIterator[str]:
    """A stream of five events, plus an untouched neighbour that must stay clean."""
    sid = f"audit-{uuid.uuid4().hex[:10]}"
    await store.append(stream_id=sid, expected_version=0, events=new_events(5, label="a"))
    neighbour = f"{sid}-neighbour"
    await store.append(stream_id=neighbour, expected_version=0, events=new_events(3))
    yield sid
    assert (await store.verify_stream(neighbour)).ok


async def as_superuser(store: EventStore, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run statements with triggers off (session_replication_role = replica)."""
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for sql, args in statements:
            await conn.execute(sql, *args)


async def breaks(store: EventStore, sid: str) -> list[tuple[int, str]]:
    check = await store.verify_stream(sid)
    return [(b.stream_version, b.kind) for b in check.breaks]


async def test_an_untouched_stream_verifies(store: EventStore, stream: str) -> None:
    """No tampering, no break."""
    assert await breaks(store, stream) == []


async def test_a_changed_field_is_named(store: EventStore, stream: str) -> None:
    """Changing one field of one event is a 'changed' break at its version."""
    await as_superuser(
        store,
        (
            "UPDATE events SET data = jsonb_set(data, '{text}', '\"Astana\"') "
            "WHERE stream_id = $1 AND stream_version = 3",
            (stream,),
        ),
    )
    assert await breaks(store, stream) == [(3, "changed")]


async def test_a_changed_actor_is_named(store: EventStore, stream: str) -> None:
    """Metadata is hashed too: rewriting who did it is a 'changed' break."""
    await as_superuser(
        store,
        (
            "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"someone else\"') "
            "WHERE stream_id = $1 AND stream_version = 2",
            (stream,),
        ),
    )
    assert await breaks(store, stream) == [(2, "changed")]


async def test_an_added_metadata_key_is_named(store: EventStore, stream: str) -> None:
    """A key slipped into stored metadata is a 'changed' break, not a reading error."""
    await as_superuser(
        store,
        (
            'UPDATE events SET metadata = metadata || \'{"approved_by": "someone"}\' '
            "WHERE stream_id = $1 AND stream_version = 4",
            (stream,),
        ),
    )
    assert await breaks(store, stream) == [(4, "changed")]


async def test_a_removed_null_metadata_key_is_named(store: EventStore, stream: str) -> None:
    """Dropping a metadata key whose value was null changes what was written: the hash
    covers the stored document, not a model that would fill the key back in."""
    async with store.pool.acquire() as conn:
        metadata = await conn.fetchval(
            "SELECT metadata FROM events WHERE stream_id = $1 AND stream_version = 1", stream
        )
    assert metadata["run_id"] is None
    await as_superuser(
        store,
        (
            "UPDATE events SET metadata = metadata - 'run_id' "
            "WHERE stream_id = $1 AND stream_version = 1",
            (stream,),
        ),
    )
    assert await breaks(store, stream) == [(1, "changed")]


async def test_a_deleted_row_is_named(store: EventStore, stream: str) -> None:
    """Deleting an event in the middle is a 'removed' break where the gap is."""
    await as_superuser(
        store, ("DELETE FROM events WHERE stream_id = $1 AND stream_version = 3", (stream,))
    )
    assert await breaks(store, stream) == [(4, "removed")]


async def test_a_deleted_last_row_is_named(store: EventStore, stream: str) -> None:
    """Deleting the last event leaves the recorded head pointing past the end."""
    await as_superuser(
        store, ("DELETE FROM events WHERE stream_id = $1 AND stream_version = 5", (stream,))
    )
    assert await breaks(store, stream) == [(5, "removed")]


async def test_a_forged_row_is_named(store: EventStore, stream: str) -> None:
    """A forged event, correctly hashed and linked after the last one, is 'inserted':
    the stream never recorded that version as its head."""
    last = (await store.read_stream(stream))[-1]
    forged_id = uuid.uuid4()
    metadata = EventMetadata(actor="coordinator").model_dump(mode="json")
    data = {"label": "forged"}
    digest = event_hash(
        stream_id=stream,
        stream_version=6,
        event_id=forged_id,
        event_type="Noted",
        schema_version=1,
        data=data,
        metadata=metadata,
        occurred_at=last.occurred_at,
        previous_hash=last.hash,
    )
    await as_superuser(
        store,
        (
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, "
            "schema_version, data, metadata, occurred_at, previous_hash, hash) "
            "VALUES ($1, 6, $2, 'Noted', 1, $3::jsonb, $4::jsonb, $5, $6, $7)",
            (
                stream,
                forged_id,
                data,
                metadata,
                last.occurred_at,
                last.hash,
                digest,
            ),
        ),
    )
    assert await breaks(store, stream) == [(6, "inserted")]


async def test_swapped_rows_are_named(store: EventStore, stream: str) -> None:
    """Swapping two events' places is 'reordered', at both places."""
    await as_superuser(
        store,
        (
            "UPDATE events SET stream_version = 1000 WHERE stream_id = $1 AND stream_version = 2",
            (stream,),
        ),
        (
            "UPDATE events SET stream_version = 2 WHERE stream_id = $1 AND stream_version = 4",
            (stream,),
        ),
        (
            "UPDATE events SET stream_version = 4 WHERE stream_id = $1 AND stream_version = 1000",
            (stream,),
        ),
    )
    assert await breaks(store, stream) == [(2, "reordered"), (4, "reordered")]


async def test_a_rewritten_chain_breaks_at_the_head(store: EventStore, stream: str) -> None:
    """Even a forger who recomputes every later hash leaves the recorded head behind."""
    events = await store.read_stream(stream)
    statements: list[tuple[str, tuple[object, ...]]] = []
    previous = events[1].hash
    for event in events[2:]:
        data = {**event.data, "text": "rewritten"} if event.stream_version == 3 else event.data
        digest = event_hash(
            stream_id=stream,
            stream_version=event.stream_version,
            event_id=event.event_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            data=data,
            metadata=event.metadata.model_dump(mode="json"),
            occurred_at=event.occurred_at,
            previous_hash=previous,
        )
        statements.append(
            (
                "UPDATE events SET data = $3::jsonb, previous_hash = $4, hash = $5 "
                "WHERE stream_id = $1 AND stream_version = $2",
                (stream, event.stream_version, data, previous, digest),
            )
        )
        previous = digest
    await as_superuser(store, *statements)
    assert await breaks(store, stream) == [(5, "changed")]


async def test_replay_at_a_time_between_two_events(store: EventStore) -> None:
    """The state at a moment between two recorded events is the fold of those before."""
    mission_id = f"audit-{uuid.uuid4().hex[:8]}"
    state = await record(store, mission_id, seed.mission(mission_id)[:4])
    recorded = await store.read_stream(mission_id)
    second, third = recorded[1], recorded[2]
    between = second.recorded_at + (third.recorded_at - second.recorded_at) / 2
    history = await history_at(store, mission_id, at=between)
    assert [e.stream_version for e in history] == [1, 2]
    then = fold(load_event(e.data) for e in history)
    assert then.stage is Stage.forming and not then.observers
    assert fold(load_event(e.data) for e in recorded) == state
