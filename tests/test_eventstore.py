"""The event store on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import chain
from eventstore.migrations import migrate
from eventstore.models import GENESIS_HASH, EventMetadata, LogPosition, NewEvent, RecordedEvent
from eventstore.store import (
    ConcurrencyError,
    EventStore,
    IdempotencyConflict,
    UnstorableEvent,
    append_on,
)


def new_events(count: int, *, label: str = "x") -> list[NewEvent]:
    return [
        NewEvent(
            event_id=uuid.uuid4(),
            event_type="Noted",
            schema_version=1,
            data={"label": label, "n": n, "text": "Nur-Sultan — Ömer"},
            metadata=EventMetadata(actor="tester", command_id=f"cmd-{label}-{n}"),
            occurred_at=datetime(2021, 1, 10, 8, 30, n, tzinfo=UTC),
        )
        for n in range(count)
    ]


def stream() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def count(pool: asyncpg.Pool, stream_id: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", stream_id))


async def test_append_and_read_back(store: EventStore) -> None:
    """Events come back in stream order with versions, metadata and times as written."""
    sid = stream()
    events = new_events(3)
    result = await store.append(stream_id=sid, expected_version=0, events=events)
    assert (result.first_version, result.last_version, result.replayed) == (1, 3, False)
    read = await store.read_stream(sid)
    assert [e.event_id for e in read] == [e.event_id for e in events]
    assert [e.stream_version for e in read] == [1, 2, 3]
    assert read[0].data == events[0].data
    assert read[0].metadata.actor == "tester"
    assert read[2].occurred_at == events[2].occurred_at
    assert await store.stream_version(sid) == 3


async def test_wrong_expected_version_is_a_conflict_and_writes_nothing(store: EventStore) -> None:
    """Optimistic concurrency: appending at a stale version fails and leaves no trace."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(2))
    with pytest.raises(ConcurrencyError, match=r"at version 2, not at the expected version 1"):
        await store.append(stream_id=sid, expected_version=1, events=new_events(1, label="late"))
    assert await count(store.pool, sid) == 2
    assert await store.stream_version(sid) == 2


async def test_retried_append_returns_the_stored_result(store: EventStore) -> None:
    """The same event ids appended again return the first result, and add nothing."""
    sid = stream()
    events = new_events(2)
    first = await store.append(stream_id=sid, expected_version=0, events=events)
    again = await store.append(stream_id=sid, expected_version=0, events=events)
    assert again.replayed
    assert again.global_positions == first.global_positions
    assert (again.first_version, again.last_version) == (1, 2)
    assert again.head_hash == first.head_hash
    assert await count(store.pool, sid) == 2


async def test_stored_ids_with_other_content_are_a_conflict_not_a_replay(
    store: EventStore,
) -> None:
    """The same event ids at the same versions, but with other data or metadata, are an
    ``IdempotencyConflict``: a retry is recognised by its content, not by its ids alone."""
    sid = stream()
    events = new_events(2)
    await store.append(stream_id=sid, expected_version=0, events=events)
    changed_data = [events[0], events[1].model_copy(update={"data": {"label": "other"}})]
    changed_actor = [
        events[0].model_copy(update={"metadata": EventMetadata(actor="someone else")}),
        events[1],
    ]
    for attempt in (changed_data, changed_actor):
        with pytest.raises(IdempotencyConflict, match="other content"):
            await store.append(stream_id=sid, expected_version=0, events=attempt)
    assert await count(store.pool, sid) == 2
    assert (await store.verify_stream(sid)).ok


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"summary": "Briefing\u0000 on procedures"}, "data.summary: contains the NUL"),
        (
            {"role_quotas": {"short_term_observer": 9007199254740993}},
            "data.role_quotas.short_term_observer: the integer 9007199254740993",
        ),
        ({"notes": ["ok", "\ud800"]}, "data.notes[1]: contains a lone surrogate"),
        ({"grace": float("nan")}, "data.grace: nan is not a finite number"),
    ],
)
async def test_data_the_store_cannot_hold_is_refused_at_once_naming_where(
    store: EventStore, data: dict[str, object], problem: str
) -> None:
    """An event whose data PostgreSQL, UTF-8 or RFC 8785 cannot take is refused before
    anything is sent (``UnstorableEvent``, an ``IntegrityError``: no retry helps), naming
    the event and the place in its data; nothing is written."""
    sid = stream()
    event = new_events(1)[0].model_copy(update={"data": data})
    with pytest.raises(UnstorableEvent, match=re.escape(problem)):
        await store.append(stream_id=sid, expected_version=0, events=[event])
    assert await count(store.pool, sid) == 0
    assert await store.stream_version(sid) == 0


async def test_a_literal_backslash_u0000_is_text_not_a_nul(store: EventStore) -> None:
    """The six characters ``\\u0000`` in a text are stored as they are."""
    sid = stream()
    event = new_events(1)[0].model_copy(update={"data": {"text": "C:\\u0000 path"}})
    await store.append(stream_id=sid, expected_version=0, events=[event])
    assert (await store.read_stream(sid))[0].data == {"text": "C:\\u0000 path"}


async def test_concurrent_identical_appends_write_once(store: EventStore) -> None:
    """Two attempts of one append racing each other: one writes, the other replays."""
    sid = stream()
    events = new_events(3)
    results = await asyncio.gather(
        *(store.append(stream_id=sid, expected_version=0, events=events) for _ in range(4))
    )
    assert sorted(r.replayed for r in results) == [False, True, True, True]
    assert await count(store.pool, sid) == 3


async def test_partly_stored_ids_are_a_conflict(store: EventStore) -> None:
    """Reusing some stored event ids in a different append is refused, not merged."""
    sid = stream()
    events = new_events(2)
    await store.append(stream_id=sid, expected_version=0, events=events)
    mixed = [events[1], *new_events(1, label="new")]
    with pytest.raises(IdempotencyConflict, match="already stored"):
        await store.append(stream_id=sid, expected_version=2, events=mixed)
    with pytest.raises(IdempotencyConflict):
        await store.append(stream_id=stream(), expected_version=0, events=events)
    assert await count(store.pool, sid) == 2


async def test_a_remembered_head_that_moved_elsewhere_is_not_trusted(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """A process remembers where it left a stream and appends without reading the head;
    when another process moved it meanwhile, the append is still refused at a stale
    version, taken at the real one, and the chain stays whole."""
    sid = stream()
    elsewhere = EventStore(pool)
    await store.append(stream_id=sid, expected_version=0, events=new_events(2, label="a"))
    await elsewhere.append(stream_id=sid, expected_version=2, events=new_events(1, label="b"))
    with pytest.raises(ConcurrencyError):
        await store.append(stream_id=sid, expected_version=2, events=new_events(1, label="c"))
    result = await store.append(stream_id=sid, expected_version=3, events=new_events(2, label="d"))
    assert (result.first_version, result.last_version) == (4, 5)
    await store.append(stream_id=sid, expected_version=5, events=new_events(1, label="e"))
    assert await count(pool, sid) == 6
    check = await store.verify_stream(sid)
    assert check.ok and check.events == 6, check


async def test_concurrent_appenders_at_the_same_version_one_wins(store: EventStore) -> None:
    """Different appends at the same expected version: exactly one succeeds."""
    sid = stream()
    outcomes = await asyncio.gather(
        *(
            store.append(stream_id=sid, expected_version=0, events=new_events(1, label=str(i)))
            for i in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 1
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if isinstance(o, BaseException))
    assert await count(store.pool, sid) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'::jsonb WHERE stream_id = $1",
        "DELETE FROM events WHERE stream_id = $1",
        "UPDATE streams SET version = 0 WHERE stream_id = $1",
        "DELETE FROM streams WHERE stream_id = $1",
    ],
)
async def test_the_database_refuses_rewriting_history(store: EventStore, statement: str) -> None:
    """UPDATE and DELETE of events (and rewinding a stream) are refused by triggers."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(2))
    with pytest.raises(asyncpg.RestrictViolationError, match="refused"):
        await store.pool.execute(statement, sid)
    assert await count(store.pool, sid) == 2


@pytest.mark.parametrize("table", ["events", "streams"])
async def test_the_database_refuses_truncate(store: EventStore, table: str) -> None:
    """TRUNCATE is refused by a statement-level trigger."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(1))
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await store.pool.execute(f"TRUNCATE {table} CASCADE")
    assert await count(store.pool, sid) == 1


async def test_hash_chain_links_every_event(store: EventStore) -> None:
    """Each event's previous_hash is its predecessor's hash, and every hash recomputes."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(2))
    await store.append(stream_id=sid, expected_version=2, events=new_events(3, label="y"))
    read = await store.read_stream(sid)
    assert read[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(read))
    check = await store.verify_stream(sid)
    assert check.ok and check.events == 5 and check.head_hash == read[-1].hash


async def test_verification_notices_a_change_made_behind_the_triggers(store: EventStore) -> None:
    """A superuser bypassing the triggers can change a row, but the chain shows it."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(3))
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE events SET data = jsonb_set(data, '{label}', '\"forged\"') "
            "WHERE stream_id = $1 AND stream_version = 2",
            sid,
        )
    check = await store.verify_stream(sid)
    assert [(b.stream_version, b.kind) for b in check.breaks] == [(2, "changed")]


async def test_reader_never_skips_an_event_committed_late(store: EventStore) -> None:
    """Gap safety: an event whose transaction takes a lower position but commits after a
    later one is still delivered, and nothing is delivered twice."""
    start = await _log_end(store)
    early, late = stream(), stream()
    async with store.pool.acquire() as held:
        tx = held.transaction()
        await tx.start()
        # Takes its global position now, commits last.
        await append_on(held, stream_id=early, expected_version=0, events=new_events(1))
        await store.append(stream_id=late, expected_version=0, events=new_events(2))

        seen = await _drain(store, start)
        assert early not in {e.stream_id for e in seen}
        # A reader following positions alone would now be past the held event...
        naive = await store.pool.fetch(
            "SELECT stream_id FROM events WHERE global_position > $1", start.global_position
        )
        assert {r["stream_id"] for r in naive} == {late}
        # ...this one has not even moved past the open transaction.
        assert late not in {e.stream_id for e in seen}
        await tx.commit()

    delivered = await _drain_until(store, start, {early, late}, 3)
    ours = [e.stream_id for e in delivered if e.stream_id in (early, late)]
    assert ours == [early, late, late]
    early_position = next(e.global_position for e in delivered if e.stream_id == early)
    late_positions = [e.global_position for e in delivered if e.stream_id == late]
    assert early_position < min(late_positions)


async def test_reader_pages_through_the_log_in_commit_order(store: EventStore) -> None:
    """Reading in small pages yields each event exactly once, in a stable order."""
    start = await _log_end(store)
    streams = [stream() for _ in range(3)]
    for sid in streams:
        await store.append(stream_id=sid, expected_version=0, events=new_events(3))
    paged = await _drain_until(store, start, set(streams), 9, page=2)
    ours = [e for e in paged if e.stream_id in streams]
    assert len(ours) == 9
    assert len({e.event_id for e in ours}) == 9


async def test_migrations_apply_once(database_url: str) -> None:
    """Running the migrations again applies nothing and breaks nothing."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    finally:
        await conn.close()


async def _log_end(store: EventStore) -> LogPosition:
    events = await _drain(store, LogPosition())
    return events[-1].log_position if events else LogPosition()


async def _drain(store: EventStore, after: LogPosition, *, page: int = 500) -> list[RecordedEvent]:
    seen: list[RecordedEvent] = []
    position = after
    while True:
        batch = await store.read_all(after=position, limit=page)
        if not batch:
            return seen
        seen.extend(batch)
        position = batch[-1].log_position


async def test_verification_falls_back_to_rfc8785_where_plain_json_differs(
    store: EventStore,
) -> None:
    """Keys that sort differently in UTF-16 (RFC 8785) and by code point (Python) still
    verify: the fast encoding is only a shortcut, RFC 8785 decides."""
    sid = stream()
    data = {"\ufb01": 1, "\U0001f600": 2}
    assert (
        rfc8785.dumps(data)
        != json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    event = new_events(1)[0].model_copy(update={"data": data})
    await store.append(stream_id=sid, expected_version=0, events=[event])
    assert (await store.verify_stream(sid)).ok


async def _drain_until(
    store: EventStore, after: LogPosition, streams: set[str], count: int, *, page: int = 500
) -> list[RecordedEvent]:
    """Read the log until ``count`` events of ``streams`` are in: the reader waits for
    transactions still running anywhere on the server (it lags, it never skips), and
    other tests' workflows may be appending meanwhile."""
    for _ in range(100):
        seen = await _drain(store, after, page=page)
        if sum(1 for e in seen if e.stream_id in streams) >= count:
            return seen
        await asyncio.sleep(0.1)
    return seen


async def test_verification_during_appends_sees_one_snapshot(store: EventStore) -> None:
    """Verifying a stream while it grows never reports a break that is not there."""
    sid = stream()
    await store.append(stream_id=sid, expected_version=0, events=new_events(2))

    async def grow() -> None:
        for version in range(2, 42, 2):
            await store.append(stream_id=sid, expected_version=version, events=new_events(2))

    growing = asyncio.create_task(grow())
    checks = []
    while not growing.done():
        checks.append(await store.verify_stream(sid))
    await growing
    assert checks and all(check.ok for check in checks)


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_the_fast_encoding_is_used_only_where_it_is_rfc_8785(value: object) -> None:
    """Appends hash with the standard library's encoder only for documents it encodes
    exactly as RFC 8785 does; everything else (floats, non-ASCII keys) goes through
    RFC 8785 itself. Either way the digest is the canonical one."""
    document = {"data": value}
    canonical = hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    if chain._plain(document):
        assert chain._fast_digest(document) == canonical


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
    st.dictionaries(st.text(max_size=8), st.none() | st.text(), max_size=3),
    st.text(min_size=1, max_size=12),
    st.integers(min_value=1, max_value=2**40),
)
def test_an_append_encodes_each_event_once_for_hash_and_storage(
    data: dict[str, object], metadata: dict[str, object], type_or_stream: str, version: int
) -> None:
    """The hash an append stores is ``event_hash``'s, put together from the very texts it
    stores, which decode to the event's data and metadata."""
    fields = dict(
        stream_id=f"m/{type_or_stream}",
        stream_version=version,
        event_id=uuid.uuid4(),
        event_type=type_or_stream,
        schema_version=2,
        data=data,
        metadata=metadata,
        occurred_at=datetime(2021, 1, 10, 8, 30, 1, 250, tzinfo=UTC),
        previous_hash=GENESIS_HASH,
    )
    digest, data_text, metadata_text = chain.encode_event(**fields)  # type: ignore[arg-type]
    assert digest == chain.event_hash(**fields)  # type: ignore[arg-type]
    assert json.loads(data_text) == data and json.loads(metadata_text) == metadata
