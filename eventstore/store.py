"""The event store on PostgreSQL: the only module that knows its SQL.

Append is one transaction: lock the stream's head row, recognise a retried append by its
event ids, check the expected version, chain the hashes, insert, move the head. Errors
follow PEP 249's shape: a version conflict is an ``IntegrityError``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from eventstore.chain import encode_event, first_unstorable, verify_chain
from eventstore.models import (
    GENESIS_HASH,
    AppendResult,
    ChainCheck,
    LogPosition,
    NewEvent,
    RecordedEvent,
    StoredEvent,
)


class EventStoreError(Exception):
    """Base of the event store's errors."""


class IntegrityError(EventStoreError):
    """The append contradicts what is stored; retrying the same append cannot succeed."""


class ConcurrencyError(IntegrityError):
    """The stream is not at the version the caller expected."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, not at the expected version {expected}"
        )
        self.stream_id, self.expected, self.actual = stream_id, expected, actual


class IdempotencyConflict(IntegrityError):
    """Some of the event ids are stored already, but not as exactly this append."""


class UnstorableEvent(IntegrityError, ValueError):
    """An event's data cannot be hashed or stored as it is (a NUL character, a lone
    surrogate, an integer beyond ±(2**53 - 1), a non-finite number...): the message names
    the event and the place in its data. Nothing of the append is written."""


def is_data_error(error: BaseException) -> bool:
    """Whether ``error`` is the written data's doing, which no retry changes: a data
    exception (SQLSTATE class 22: a value out of range, a NUL character...; asyncpg
    reports an argument it cannot encode the same way, before sending it) or an integrity
    constraint violation (class 23), but a unique violation, which another writer's
    commit causes and a retry resolves; or a value Python could not build or encode into
    the statements (``UnstorableEvent`` among them). The connection stays sound after any
    of them."""
    if isinstance(error, asyncpg.PostgresError):
        state = error.sqlstate or ""
        return state.startswith("22") or (state.startswith("23") and state != "23505")
    return isinstance(error, ValueError | OverflowError | UnicodeError)


_COLUMNS = """
    global_position, transaction_id::text::bigint AS transaction_id, stream_id, stream_version,
    event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at,
    previous_hash, hash
"""


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb into Python values on every pooled connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection
    )
    assert pool is not None
    return pool


_RECORDED: TypeAdapter[list[RecordedEvent]] = TypeAdapter(list[RecordedEvent])


def _recorded(rows: list[asyncpg.Record]) -> list[RecordedEvent]:
    """Rows as models, validated in one call (metadata nested)."""
    return _RECORDED.validate_python([dict(r) for r in rows])


Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_READ_STREAM = (
    "FROM events WHERE stream_id = $1 "
    "AND stream_version >= $2 AND ($3::bigint IS NULL OR stream_version <= $3) "
    "ORDER BY stream_version"
)

# Events and head in one statement, hence one snapshot: read apart, an append landing
# between the two reads would look like a removed or inserted event. The outer join
# keeps one row (head only) for a stream whose events are all gone.
_CHAIN = """
    SELECT s.version AS head_version, s.head_hash AS head_hash,
           e.stream_version, e.event_id, e.event_type, e.schema_version, e.data, e.metadata,
           e.occurred_at, e.previous_hash, e.hash
    FROM (SELECT $1::text AS stream_id) AS wanted
    LEFT JOIN streams AS s ON s.stream_id = wanted.stream_id
    LEFT JOIN events AS e ON e.stream_id = wanted.stream_id
    ORDER BY e.stream_version
"""


async def read_stream_on(
    conn: Connection, stream_id: str, *, from_version: int = 1, to_version: int | None = None
) -> list[RecordedEvent]:
    """A stream's events in version order, as models."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_READ_STREAM}", stream_id, from_version, to_version
    )
    return _recorded(rows)


async def read_stream_data_on(
    conn: Connection, stream_id: str, *, from_version: int = 1, to_version: int | None = None
) -> list[str]:
    """Only what a replay folds: each event's data as the JSON text PostgreSQL sends, for
    the domain to parse and validate in one pass (``load_event_json``)."""
    rows = await conn.fetch(
        f"SELECT data::text AS data {_READ_STREAM}", stream_id, from_version, to_version
    )
    return [r["data"] for r in rows]


async def read_chain_on(
    conn: Connection, stream_id: str
) -> tuple[list[StoredEvent], tuple[int, str] | None]:
    """A stream's events exactly as stored, and its recorded head (version, hash), from
    one snapshot: what verification needs, with no model between the rows and the hash."""
    rows = await conn.fetch(_CHAIN, stream_id)
    head = rows[0] if rows else None
    return [
        StoredEvent(
            stream_id=stream_id,
            stream_version=r["stream_version"],
            event_id=r["event_id"],
            event_type=r["event_type"],
            schema_version=r["schema_version"],
            data=r["data"],
            metadata=r["metadata"],
            occurred_at=r["occurred_at"],
            previous_hash=r["previous_hash"],
            hash=r["hash"],
        )
        for r in rows
        if r["stream_version"] is not None
    ], (
        (head["head_version"], head["head_hash"])
        if head is not None and head["head_version"] is not None
        else None
    )


async def verify_stream_on(conn: Connection, stream_id: str) -> ChainCheck:
    """Recompute every hash and link of a stream's chain; report each break."""
    events, head = await read_chain_on(conn, stream_id)
    return verify_chain(stream_id, events, head=head)


async def append_on(
    conn: Connection,
    *,
    stream_id: str,
    expected_version: int,
    events: Sequence[NewEvent],
) -> AppendResult:
    """Append inside the caller's transaction (``conn`` must be in one)."""
    if not events:
        raise ValueError("an append needs at least one event")
    ids = [e.event_id for e in events]
    if len(set(ids)) != len(ids):
        raise IdempotencyConflict(f"the append to {stream_id!r} repeats an event id")

    heads = await lock_heads_on(conn, [stream_id])
    # Under the stream's lock, so a concurrent attempt of the same append has committed
    # (and is seen here) or has not started.
    stored = await conn.fetch(
        "SELECT event_id, stream_id, stream_version, global_position, previous_hash, hash "
        "FROM events WHERE event_id = ANY($1::uuid[])",
        ids,
    )
    if stored:
        return _replayed(stream_id, expected_version, events, stored)

    version = heads[stream_id].version
    if version != expected_version:
        raise ConcurrencyError(stream_id, expected_version, version)
    [result] = await append_at_heads_on(conn, heads, [(stream_id, events)])
    return result


class Head(NamedTuple):
    version: int
    head_hash: str


_INSERT_EVENTS = """
    INSERT INTO events (stream_id, event_id, stream_version, event_type, schema_version,
                        data, metadata, occurred_at, previous_hash, hash)
    SELECT r.stream_id, r.event_id, r.stream_version, r.event_type, r.schema_version,
           r.data::jsonb, r.metadata::jsonb, r.occurred_at, r.previous_hash, r.hash
    FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::text[], $5::int[], $6::text[],
                $7::text[], $8::timestamptz[], $9::text[], $10::text[])
         AS r(stream_id, event_id, stream_version, event_type, schema_version, data,
              metadata, occurred_at, previous_hash, hash)
"""

# One statement, hence one transaction, for the common append: the head moves from where
# the caller read it (created for a first append), and the events go in only if it did.
# A head that moved meanwhile (or a retried append) makes it a no-op, decided by append_on.
_APPEND_AT_HEAD = f"""
    WITH created AS (
        INSERT INTO streams AS s (stream_id, version, head_hash)
        SELECT ($1::text[])[1], $12, $13 WHERE $11::bigint = 0
        ON CONFLICT (stream_id) DO UPDATE
            SET version = EXCLUDED.version, head_hash = EXCLUDED.head_hash,
                updated_at = clock_timestamp()
            WHERE s.version = 0 AND s.head_hash = $14
        RETURNING 1
    ), moved AS (
        UPDATE streams SET version = $12, head_hash = $13, updated_at = clock_timestamp()
        WHERE stream_id = ($1::text[])[1] AND $11::bigint > 0 AND version = $11
          AND head_hash = $14
        RETURNING 1
    )
    {_INSERT_EVENTS}
    WHERE EXISTS (SELECT 1 FROM created) OR EXISTS (SELECT 1 FROM moved)
    ORDER BY r.stream_version
    RETURNING event_id, global_position
"""


def _chain(
    stream_id: str, head: Head, events: Sequence[NewEvent], rows: list[tuple[Any, ...]]
) -> Head:
    """Hash ``events`` after ``head``, adding their rows (``_INSERT_EVENTS``' columns) to
    ``rows``; return the new head."""
    version, previous = head
    for event in events:
        version += 1
        document = event.metadata.model_dump(mode="json")
        try:
            digest, data, metadata = encode_event(
                stream_id=stream_id,
                stream_version=version,
                event_id=event.event_id,
                event_type=event.event_type,
                schema_version=event.schema_version,
                data=event.data,
                metadata=document,
                occurred_at=event.occurred_at,
                previous_hash=previous,
            )
            # jsonb takes any JSON text but the escape of NUL; the encoders write NUL as
            # that escape (and "\\u0000" only for it or for a backslash before "u0000").
            if _NUL_ESCAPE in data or _NUL_ESCAPE in metadata:
                _refuse_unstorable(event, document)
        except (ValueError, OverflowError, TypeError) as error:
            if isinstance(error, UnstorableEvent):
                raise
            _refuse_unstorable(event, document, error)
        rows.append(
            (
                stream_id,
                event.event_id,
                version,
                event.event_type,
                event.schema_version,
                data,
                metadata,
                event.occurred_at,
                previous,
                digest,
            )
        )
        previous = digest
    return Head(version, previous)


_NUL_ESCAPE = "\\u0000"


def _refuse_unstorable(
    event: NewEvent, metadata: dict[str, Any], error: BaseException | None = None
) -> None:
    """Raise ``UnstorableEvent`` naming where ``event`` cannot be stored (when the check
    finds nothing after an encoding error, that error's type is named instead)."""
    problem = first_unstorable(event.data, path="data") or first_unstorable(
        metadata, path="metadata"
    )
    if problem is None:
        if error is None:
            return  # a backslash before "u0000" in a text: no NUL after all
        problem = f"cannot be encoded ({type(error).__name__})"
    raise UnstorableEvent(f"{event.event_type} {problem}")


async def lock_heads_on(conn: Connection, stream_ids: Sequence[str]) -> dict[str, Head]:
    """Lock every stream's head row until the caller's transaction ends, creating those
    that do not exist yet; rows are locked in stream id order, so that two lockers never
    deadlock over existing streams. The common case, every stream there, is one statement;
    each lookup is bounded by the ids asked for, whatever plan the server keeps."""
    ordered = sorted(set(stream_ids))
    heads = await _lock_existing(conn, ordered)
    missing = [s for s in ordered if s not in heads]
    if missing:
        await conn.execute(
            "INSERT INTO streams (stream_id, version, head_hash) "
            "SELECT s, 0, $2 FROM unnest($1::text[]) AS s ORDER BY s "
            "ON CONFLICT (stream_id) DO NOTHING",
            missing,
            GENESIS_HASH,
        )
        heads.update(await _lock_existing(conn, missing))
    return heads


async def _lock_existing(conn: Connection, ordered: list[str]) -> dict[str, Head]:
    rows = await conn.fetch(
        "SELECT stream_id, version, head_hash FROM streams WHERE stream_id = ANY($1::text[]) "
        "ORDER BY stream_id FOR UPDATE",
        ordered,
    )
    return {r["stream_id"]: Head(r["version"], r["head_hash"]) for r in rows}


# The heads move in the statement that inserts the events. The head rows are looked up by
# ``= ANY``, so the update reads only those rows, whatever join the plan chose.
_APPEND_AT_LOCKED_HEADS = f"""
    WITH moved AS (
        UPDATE streams SET version = m.version, head_hash = m.head_hash,
                           updated_at = clock_timestamp()
        FROM unnest($11::text[], $12::bigint[], $13::text[]) AS m(stream_id, version, head_hash)
        WHERE streams.stream_id = ANY($11::text[]) AND streams.stream_id = m.stream_id
        RETURNING 1
    ), inserted AS (
        {_INSERT_EVENTS}
        ORDER BY r.stream_id, r.stream_version
        RETURNING event_id, stream_id, stream_version, global_position
    ){{alongside}}
    SELECT event_id, global_position FROM inserted
"""


@dataclass(frozen=True)
class Alongside:
    """A write that goes with an append, in its statement (so in no extra round trip):
    ``sql`` is a data-modifying statement that may read ``inserted(event_id, stream_id,
    stream_version, global_position)``, the events just inserted, with ``{0}``, ``{1}``...
    where its ``args`` go."""

    sql: str
    args: Sequence[Any]

    def cte(self, first: int) -> str:
        return ", alongside AS ({})".format(
            self.sql.format(*(f"${n}" for n in range(first, first + len(self.args))))
        )


async def append_at_heads_on(
    conn: Connection,
    heads: dict[str, Head],
    appends: Sequence[tuple[str, Sequence[NewEvent]]],
    *,
    alongside: Alongside | None = None,
) -> list[AppendResult]:
    """Append each stream's events after its locked head (``lock_heads_on``, same
    transaction): hashes chained, then one statement that inserts every event of every
    stream, moves their heads and runs ``alongside``. A stream may appear more than once;
    its appends follow one another."""
    tips = dict(heads)
    rows: list[tuple[Any, ...]] = []
    spans: list[tuple[str, int, int, list[UUID], str]] = []
    for stream_id, events in appends:
        if not events:
            raise ValueError(f"an append to {stream_id!r} needs at least one event")
        start = tips[stream_id]
        tips[stream_id] = _chain(stream_id, start, events, rows)
        spans.append(
            (
                stream_id,
                start.version + 1,
                tips[stream_id].version,
                [e.event_id for e in events],
                tips[stream_id].head_hash,
            )
        )

    moved = {s: tips[s] for s, _ in appends}
    inserted = await conn.fetch(
        _APPEND_AT_LOCKED_HEADS.format(alongside=alongside.cte(14) if alongside else ""),
        *[list(column) for column in zip(*rows, strict=True)],
        list(moved),
        [h.version for h in moved.values()],
        [h.head_hash for h in moved.values()],
        *(alongside.args if alongside else ()),
    )
    positions = {r["event_id"]: r["global_position"] for r in inserted}
    return [
        AppendResult(
            stream_id=stream_id,
            first_version=first,
            last_version=last,
            event_ids=ids,
            global_positions=[positions[i] for i in ids],
            head_hash=head_hash,
        )
        for stream_id, first, last, ids, head_hash in spans
    ]


def _replayed(
    stream_id: str,
    expected_version: int,
    events: Sequence[NewEvent],
    stored: list[asyncpg.Record],
) -> AppendResult:
    """The stored result of an append made before with these event ids, or
    ``IdempotencyConflict`` if what is stored under them is not exactly this append: the
    same ids at the same versions, and the same content (each event hashes, after the
    stored event before it, to the stored hash)."""
    ids = [e.event_id for e in events]
    by_id = {r["event_id"]: r for r in stored}
    expected_versions = list(range(expected_version + 1, expected_version + len(ids) + 1))
    same = len(by_id) == len(ids) and all(
        by_id[i]["stream_id"] == stream_id and by_id[i]["stream_version"] == v
        for i, v in zip(ids, expected_versions, strict=True)
    )
    if same:
        rows: list[tuple[Any, ...]] = []
        _chain(stream_id, Head(expected_version, by_id[ids[0]]["previous_hash"]), events, rows)
        changed = [row[1] for row in rows if row[9] != by_id[row[1]]["hash"]]
        if changed:
            raise IdempotencyConflict(
                f"event ids already stored in {stream_id!r} with other content: "
                + ", ".join(str(i) for i in changed)
            )
    if not same:
        found = ", ".join(
            f"{r['event_id']} ({r['stream_id']} v{r['stream_version']})" for r in stored
        )
        raise IdempotencyConflict(
            f"event ids already stored, but not as this append to {stream_id!r} at version "
            f"{expected_version}: {found}"
        )
    return AppendResult(
        stream_id=stream_id,
        first_version=expected_versions[0],
        last_version=expected_versions[-1],
        event_ids=ids,
        global_positions=[by_id[i]["global_position"] for i in ids],
        head_hash=by_id[ids[-1]]["hash"],
        replayed=True,
    )


class EventStore:
    """The event store over an asyncpg pool (injected: the composition root owns it)."""

    def __init__(self, pool: asyncpg.Pool, *, known_heads: int = 20_000) -> None:
        self.pool = pool
        self.known_heads = known_heads
        self._heads: dict[str, Head] = {}

    def _known(self, stream_id: str, head: Head) -> None:
        """Remember where this process left a stream (the most recent last)."""
        self._heads.pop(stream_id, None)
        self._heads[stream_id] = head
        if len(self._heads) > self.known_heads:
            for oldest in list(self._heads)[: len(self._heads) // 2]:
                del self._heads[oldest]

    async def append(
        self, *, stream_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        """Append ``events`` at ``expected_version``: all or nothing, idempotent by event id.

        One round trip when this process made the stream's last append (its head is
        remembered), else two (the head is read first): one statement moves the head from
        where it was, hash included, and inserts the events, or does nothing. Anything
        else (a conflict, a retried append, a race, a head moved by another process) is
        decided by ``append_on`` under the stream's lock."""
        ids = [e.event_id for e in events]
        if not events:
            raise ValueError("an append needs at least one event")
        if len(set(ids)) != len(ids):
            raise IdempotencyConflict(f"the append to {stream_id!r} repeats an event id")
        try:
            async with self.pool.acquire() as conn:
                head = self._heads.get(stream_id)
                if head is None or head.version != expected_version:
                    found = await conn.fetchrow(
                        "SELECT version, head_hash FROM streams WHERE stream_id = $1", stream_id
                    )
                    head = Head(*found) if found else Head(0, GENESIS_HASH)
                if head.version == expected_version:
                    rows: list[tuple[Any, ...]] = []
                    tip = _chain(stream_id, head, events, rows)
                    try:
                        inserted = await conn.fetch(
                            _APPEND_AT_HEAD,
                            *[list(column) for column in zip(*rows, strict=True)],
                            expected_version,
                            tip.version,
                            tip.head_hash,
                            head.head_hash,
                        )
                    except asyncpg.UniqueViolationError:
                        inserted = []  # some ids are stored: append_on says how
                    if inserted:
                        self._known(stream_id, tip)
                        positions = {r["event_id"]: r["global_position"] for r in inserted}
                        return AppendResult(
                            stream_id=stream_id,
                            first_version=expected_version + 1,
                            last_version=tip.version,
                            event_ids=ids,
                            global_positions=[positions[i] for i in ids],
                            head_hash=tip.head_hash,
                        )
                self._heads.pop(stream_id, None)
                async with conn.transaction():
                    result = await append_on(
                        conn, stream_id=stream_id, expected_version=expected_version, events=events
                    )
                if not result.replayed:
                    self._known(stream_id, Head(result.last_version, result.head_hash))
                return result
        except asyncpg.UniqueViolationError as error:
            # Only reachable when the same event ids race into *another* stream.
            raise IdempotencyConflict(
                f"event ids collide with events stored concurrently: {error}"
            ) from error

    async def stream_version(self, stream_id: str) -> int:
        version = await self.pool.fetchval(
            "SELECT version FROM streams WHERE stream_id = $1", stream_id
        )
        return int(version or 0)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One connection for a pass of many reads (the ``*_on`` functions)."""
        async with self.pool.acquire() as conn:
            yield conn

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        async with self.pool.acquire() as conn:
            return await read_stream_on(
                conn, stream_id, from_version=from_version, to_version=to_version
            )

    async def read_streams(self, stream_ids: Sequence[str]) -> list[RecordedEvent]:
        """Every event of ``stream_ids``, in global log order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ANY($1::text[]) "
            "ORDER BY global_position",
            list(stream_ids),
        )
        return _recorded(rows)

    async def read_all(self, *, after: LogPosition, limit: int = 1000) -> list[RecordedEvent]:
        """The next events of the global log after ``after``, never skipping one whose
        transaction commits late.

        Order is (transaction_id, global_position), and only transactions older than the
        oldest one still running are read: every transaction that could still commit has
        a larger id than any event returned, so it lands *after* the reader's position.
        A long-running transaction elsewhere delays the reader; it never makes it skip.
        """
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events "
            "WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) "
            "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY transaction_id, global_position LIMIT $3",
            str(after.transaction_id),
            after.global_position,
            limit,
        )
        return _recorded(rows)

    async def missions_in_follow_up(
        self,
        host_country: str,
        *,
        organisation: str | None = None,
        before: date | None = None,
    ) -> list[str]:
        """Missions to ``host_country`` whose recommendations went out and whose follow-up
        has not ended (nor the mission been cancelled); with ``organisation``, only that
        organisation's; with ``before``, only those whose election day (as last postponed)
        came before that day."""
        rows = await self.pool.fetch(
            """
            SELECT invited.stream_id FROM events AS invited
            WHERE invited.event_type = 'InvitationRegistered'
              AND invited.data->>'host_country' = $1
              AND ($2::text IS NULL OR invited.data->>'organisation' = $2)
              AND ($3::date IS NULL OR coalesce(
                    (SELECT (moved.data->>'new_date')::date FROM events AS moved
                     WHERE moved.stream_id = invited.stream_id
                       AND moved.event_type = 'ElectionPostponed'
                     ORDER BY moved.stream_version DESC LIMIT 1),
                    (invited.data->'election'->>'date')::date) < $3)
              AND EXISTS (SELECT 1 FROM events AS sent WHERE sent.stream_id = invited.stream_id
                          AND sent.event_type = 'RecommendationsSent')
              AND NOT EXISTS (SELECT 1 FROM events AS ended
                              WHERE ended.stream_id = invited.stream_id
                                AND ended.event_type IN ('FollowUpEnded', 'MissionCancelled'))
            ORDER BY invited.global_position
            """,
            host_country,
            organisation,
            before,
        )
        return [r["stream_id"] for r in rows]

    async def registrations(self) -> list[tuple[str, str]]:
        """Each mission's stream id and its first event's data as JSON text: the streams
        that open with an invitation, in the order they were registered."""
        rows = await self.pool.fetch(
            "SELECT stream_id, data::text AS data FROM events "
            "WHERE event_type = 'InvitationRegistered' AND stream_version = 1 "
            "ORDER BY global_position"
        )
        return [(r["stream_id"], r["data"]) for r in rows]

    async def stream_ids(self) -> list[tuple[str, int]]:
        rows = await self.pool.fetch("SELECT stream_id, version FROM streams ORDER BY stream_id")
        return [(r["stream_id"], r["version"]) for r in rows]

    async def verify_stream(self, stream_id: str) -> ChainCheck:
        """Recompute every hash and link of a stream's chain; report each break."""
        async with self.pool.acquire() as conn:
            return await verify_stream_on(conn, stream_id)
