"""Audit throughput benchmark: replay and verify against a raw read of the same rows.

    .venv/bin/python bench/audit_bench.py [--events 100000] [--database-url URL]
                                          [--output bench/results/audit-<timestamp>.json]

One run, one fresh database (created on the server, migrated, dropped at the end even on
failure):

1. set-up: N events across many missions: the seed mission's commands decided, appended
   one ``EventStore.append`` per command (real hash chain) and folded, under many mission
   ids, by a few concurrent appenders;
2. the baseline, **raw read**: one plain asyncpg ``SELECT`` of every row and column, jsonb
   decoded with the store's json codec, nothing else;
3. **replay**: per mission ``read_stream`` + ``EVENT_ADAPTER.validate_python`` + ``fold``;
4. **verify**: per mission ``verify_stream`` (read, recompute every hash and link);
5. the targets: replay >= 50 % of the raw read rate, verify >= 30 %.

Each measurement is warmed up once, then repeated round-robin; best and median are
reported. Then, unless switched off: where the time goes (each path's stages timed
separately), and prototypes of the proposed changes, measured beside the same baseline
and checked to give exactly the store's answers (see ``bench/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import hashlib
import io
import json
import math
import os
import platform
import pstats
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import rfc8785
from pydantic import TypeAdapter

from cli import seed
from domain import EVENT_ADAPTER, Mission, decide, fold
from domain.commands import Command
from eventstore.chain import canonical_time, verify_chain
from eventstore.migrations import migrate
from eventstore.models import GENESIS_HASH, ChainCheck, EventMetadata, NewEvent, RecordedEvent
from eventstore.store import Connection, EventStore, create_pool

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"replay": 0.50, "verify": 0.30}

# Every column, spelled as EventStore's reads select them, so that the baseline reads and
# decodes exactly what the store reads.
COLUMNS = """
    global_position, transaction_id::text::bigint AS transaction_id, stream_id, stream_version,
    event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at,
    previous_hash, hash
"""
RAW_READ_SQL = f"SELECT {COLUMNS} FROM events ORDER BY stream_id, stream_version"
# EventStore.read_stream's query, verbatim (same plan), for the per-mission breakdown.
READ_STREAM_SQL = (
    f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 "
    "AND stream_version >= $2 AND ($3::bigint IS NULL OR stream_version <= $3) "
    "ORDER BY stream_version"
)
HEAD_SQL = "SELECT version, head_hash FROM streams WHERE stream_id = $1"
# Proposal 4: verify_stream's events and the stream's head in one statement (one snapshot,
# one round trip instead of two queries, each with its own pool reset).
VERIFY_SQL = (
    f"SELECT {COLUMNS}, (SELECT version FROM streams WHERE stream_id = $1) AS head_version, "
    "(SELECT head_hash FROM streams WHERE stream_id = $1) AS head_hash "
    "FROM events WHERE stream_id = $1 ORDER BY stream_version"
)
# Proposal 3: a replay-only read of each event's data, as the JSON text PostgreSQL sends.
READ_DATA_SQL = (
    "SELECT data::text AS data FROM events WHERE stream_id = $1 "
    "AND stream_version >= $2 AND ($3::bigint IS NULL OR stream_version <= $3) "
    "ORDER BY stream_version"
)


# -- database lifecycle -------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(server_url: str) -> tuple[str, str]:
    """A database of the run's own (random suffix), migrated; returns (name, url)."""
    name = f"eom_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    except BaseException:
        await drop_database(server_url, name)
        raise
    return name, url


async def drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- set-up: N events through EventStore.append -------------------------------------------


@dataclass(frozen=True)
class SetupResult:
    missions: int
    appends: int
    events: int
    seconds: float
    appenders: int

    def as_json(self) -> dict[str, Any]:
        return {
            "missions": self.missions,
            "appends": self.appends,
            "events": self.events,
            "appenders": self.appenders,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds, 1),
            "appends_per_second": round(self.appends / self.seconds, 1),
        }


def plan_missions(events: int) -> list[tuple[str, int]]:
    """(mission id, how many of the seed's commands) so that the events add up to N: whole
    seed missions, the last one cut short at a command boundary."""
    per_command: list[int] = []
    state = Mission()
    now = datetime.now(UTC)
    for command in seed.mission("bench-template"):
        decided = decide(state, command, now=now)
        per_command.append(len(decided))
        state = fold(decided, state)
    plan: list[tuple[str, int]] = []
    remaining = events
    while remaining > 0:
        taken, count = 0, 0
        for n in per_command:
            if count >= remaining:
                break
            taken, count = taken + 1, count + n
        plan.append((f"bench-{len(plan):06d}", taken))
        remaining -= count
    return plan


async def append_mission(store: EventStore, mission_id: str, commands: Sequence[Command]) -> int:
    """Decide, append (one append per command, with metadata shaped like the workflow's)
    and evolve; returns the events appended."""
    state = Mission()
    run_id = str(uuid.uuid4())
    appended = 0
    for command in commands:
        now = datetime.now(UTC)
        events = decide(state, command, now=now)
        command_id = str(uuid.uuid4())
        metadata = EventMetadata(
            actor="coordinator:Bench Secretariat",
            command_id=command_id,
            command_type=command.type,
            correlation_id=command_id,
            causation_id=command_id,
            workflow_id=f"mission-{mission_id}",
            run_id=run_id,
        )
        await store.append(
            stream_id=mission_id,
            expected_version=state.version,
            events=[
                NewEvent(
                    event_id=uuid.uuid4(),
                    event_type=event.type,
                    schema_version=event.schema_version,
                    data=event.model_dump(mode="json"),
                    metadata=metadata,
                    occurred_at=now,
                )
                for event in events
            ],
        )
        state = fold(events, state)
        appended += len(events)
    return appended


async def set_up(store: EventStore, events: int, appenders: int) -> SetupResult:
    plan = plan_missions(events)
    work: Iterator[tuple[str, int]] = iter(plan)
    done = {"events": 0, "appends": 0, "missions": 0}
    report_every = max(1, len(plan) // 10)
    started = time.perf_counter()

    async def appender() -> None:
        for mission_id, n_commands in work:  # one shared iterator: each mission taken once
            commands = seed.mission(mission_id)[:n_commands]
            appended = await append_mission(store, mission_id, commands)
            done["events"] += appended  # (not `+= await ...`: that loses updates between tasks)
            done["appends"] += len(commands)
            done["missions"] += 1
            if done["missions"] % report_every == 0:
                elapsed = time.perf_counter() - started
                print(
                    f"  set-up: {done['missions']:,}/{len(plan):,} missions, "
                    f"{done['events']:,} events, {done['events'] / elapsed:,.0f} events/s",
                    flush=True,
                )

    await asyncio.gather(*(appender() for _ in range(appenders)))
    seconds = time.perf_counter() - started
    return SetupResult(len(plan), done["appends"], done["events"], seconds, appenders)


# -- prototypes of the proposed changes (here only; nothing in eventstore/ is touched) -----

Reader = asyncpg.Pool | Connection
"""The pool (a connection acquired, and reset on release, per query: what EventStore does)
or one connection held for a whole pass (proposal 5)."""

_RECORDED_LIST: TypeAdapter[list[RecordedEvent]] = TypeAdapter(list[RecordedEvent])


async def proto_read_stream(db: Reader, stream_id: str) -> list[RecordedEvent]:
    """Proposal 1 (``EventStore.read_stream``/``read_all``): the same query, the rows
    validated in one call with ``metadata`` as a nested dict, instead of one
    ``EventMetadata`` and one ``RecordedEvent`` validation per row."""
    rows = await db.fetch(READ_STREAM_SQL, stream_id, 1, None)
    return _RECORDED_LIST.validate_python([dict(r) for r in rows])


async def proto_read_stream_data(db: Reader, stream_id: str) -> list[str]:
    """Proposal 3 (a new ``EventStore.read_stream_data``): what a replay needs and no more,
    each event's data as JSON text, for ``EVENT_ADAPTER.validate_json`` to parse and
    validate in one pass (no ``json.loads``, no ``RecordedEvent``)."""
    rows = await db.fetch(READ_DATA_SQL, stream_id, 1, None)
    return [r["data"] for r in rows]


def _document(event: RecordedEvent) -> dict[str, Any]:
    """What ``eventstore.chain.event_hash`` hashes, for a recorded event."""
    return {
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata.model_dump(mode="json"),
        "occurred_at": canonical_time(event.occurred_at),
        "previous_hash": event.previous_hash,
    }


def fast_canonical(document: dict[str, Any]) -> bytes:
    """The C-accelerated encoder, spelled to match RFC 8785 for what events hold (strings,
    integers, booleans, nulls, objects, arrays): sorted keys, no spaces, UTF-8, the same
    string escapes. It can differ for floats and for keys outside the BMP, which is why it
    is only trusted when its hash *matches* (``fast_verify_chain``)."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def fast_verify_chain(
    stream_id: str, events: list[RecordedEvent], *, head: tuple[int, str] | None
) -> ChainCheck:
    """Proposal 2 (``eventstore.chain.verify_chain``): check the unbroken case with the
    fast encoder, and hand the stream to the exact RFC 8785 path at the first surprise.

    Sound: if the fast bytes of an event hash to its recorded hash, they *are* the bytes
    the writer hashed (SHA-256), and they parse back to the event as read; so the event
    equals what was written, as a JSON value, which is all the RFC 8785 check establishes.
    A mismatch (tampering, or a float the encoders spell differently) falls back to
    ``verify_chain``, which then names every break exactly as today."""
    previous = GENESIS_HASH
    for version, event in enumerate(events, start=1):
        if (
            event.stream_version != version
            or event.previous_hash != previous
            or hashlib.sha256(fast_canonical(_document(event))).hexdigest() != event.hash
        ):
            return verify_chain(stream_id, events, head=head)
        previous = event.hash
    if head is not None and head != (len(events), previous):
        return verify_chain(stream_id, events, head=head)
    return ChainCheck(stream_id=stream_id, events=len(events), head_hash=previous, breaks=[])


async def proto_verify_stream(db: Reader, stream_id: str) -> ChainCheck:
    """Proposals 1, 2 and 4 together: one statement reads the events and the head (so they
    come from one snapshot: today an append landing between ``read_stream`` and the head
    query reads as a removed event), validated as one list, checked by the fast path."""
    rows = await db.fetch(VERIFY_SQL, stream_id)
    head_row: asyncpg.Record | None
    if rows:
        head_row = rows[0]
        values = []
        for row in rows:
            value = dict(row)
            del value["head_version"], value["head_hash"]
            values.append(value)
    else:  # no events: the head alone says whether some were removed
        head_row = await db.fetchrow(
            "SELECT version AS head_version, head_hash FROM streams WHERE stream_id = $1",
            stream_id,
        )
        values = []
    head = (
        (head_row["head_version"], head_row["head_hash"])
        if head_row is not None and head_row["head_version"] is not None
        else None
    )
    events = _RECORDED_LIST.validate_python(values)
    return fast_verify_chain(stream_id, events, head=head)


def tampered_variants(events: list[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    """In-memory versions of one stream with each kind of break, for the parity check."""
    if len(events) < 4:
        return {}
    third = events[2]
    changed = third.model_copy(update={"data": {**third.data, "bench_tampered": True}})
    actor = events[1].model_copy(
        update={"metadata": events[1].metadata.model_copy(update={"actor": "someone else"})}
    )
    swapped_a = events[3].model_copy(update={"stream_version": 2})
    swapped_b = events[1].model_copy(update={"stream_version": 4})
    forged = events[-1].model_copy(
        update={
            "stream_version": events[-1].stream_version + 1,
            "event_id": uuid.uuid4(),
            "previous_hash": events[-1].hash,
        }
    )
    return {
        "changed data": [*events[:2], changed, *events[3:]],
        "changed actor": [events[0], actor, *events[2:]],
        "removed event": [*events[:2], *events[3:]],
        "removed last event": events[:-1],
        "reordered events": [events[0], swapped_a, events[2], swapped_b, *events[4:]],
        "inserted event": [*events, forged],
    }


async def parity_check(bench: Bench, sample: int) -> dict[str, Any]:
    """The prototypes must answer exactly what the store answers: the same events, the same
    ChainCheck on intact streams and on each kind of tampering."""
    step = max(1, len(bench.streams) // sample)
    streams = bench.streams[::step][:sample]
    tampered = 0
    for stream_id in streams:
        events = await bench.store.read_stream(stream_id)
        if await proto_read_stream(bench.pool, stream_id) != events:
            raise AssertionError(f"proto_read_stream differs from read_stream on {stream_id}")
        replayed = fold(EVENT_ADAPTER.validate_python(e.data) for e in events)
        data = await proto_read_stream_data(bench.pool, stream_id)
        if fold(EVENT_ADAPTER.validate_json(d) for d in data) != replayed:
            raise AssertionError(f"validate_json replay differs on {stream_id}")
        if await proto_verify_stream(bench.pool, stream_id) != await bench.store.verify_stream(
            stream_id
        ):
            raise AssertionError(f"proto_verify_stream differs from verify_stream on {stream_id}")
        head = (events[-1].stream_version, events[-1].hash) if events else None
        for kind, variant in tampered_variants(events).items():
            expected = verify_chain(stream_id, variant, head=head)
            if expected.ok or fast_verify_chain(stream_id, variant, head=head) != expected:
                raise AssertionError(f"fast_verify_chain differs on {kind} in {stream_id}")
            tampered += 1
    encodings = 0
    for stream_id in streams[:20]:
        for event in await bench.store.read_stream(stream_id):
            document = _document(event)
            if fast_canonical(document) != rfc8785.dumps(document):
                raise AssertionError(f"fast_canonical differs from RFC 8785 on {event.event_id}")
            encodings += 1
    return {
        "streams_compared": len(streams),
        "tampered_streams_compared": tampered,
        "encodings_byte_identical": encodings,
        "identical": True,
    }


# -- measurements -------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    unit: str
    description: str
    seconds: list[float] = field(default_factory=list)
    items: int = 0
    passes: int = 1
    """Passes over the N events per timed run (more than one when a pass is short)."""

    @property
    def rates(self) -> list[float]:
        return [self.items / s for s in self.seconds]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        """Slowest run over fastest, minus one: how noisy the machine was."""
        return max(self.seconds) / min(self.seconds) - 1

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "description": self.description,
            "items": self.items,
            "passes_per_run": self.passes,
            "runs_seconds": [round(s, 4) for s in self.seconds],
            "runs_per_second": [round(r, 1) for r in self.rates],
            "best_per_second": round(self.best, 1),
            "median_per_second": round(self.median, 1),
            "spread": round(self.spread, 3),
        }


Pass = Callable[[], Awaitable[int]]
"""One pass over every event: returns how many it processed (checked against N)."""

Stages = dict[str, float]
"""Seconds spent in each stage of one pass."""


class Bench:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, streams: list[str]) -> None:
        self.pool, self.store, self.streams = pool, store, streams

    # -- the three measurements the targets are about

    async def raw_read(self) -> int:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(RAW_READ_SQL)
        return len(rows)

    async def replay(self) -> int:
        total = 0
        for stream_id in self.streams:
            events = await self.store.read_stream(stream_id)
            state = fold(EVENT_ADAPTER.validate_python(e.data) for e in events)
            total += _folded(stream_id, state, len(events))
        return total

    async def verify(self) -> int:
        total = 0
        for stream_id in self.streams:
            check = await self.store.verify_stream(stream_id)
            total += _unbroken(check)
        return total

    # -- diagnostics

    async def raw_read_gc_paused(self) -> int:
        """The raw read with the cyclic GC paused: how much of the baseline is the collector
        walking the rows as they pile up (a large share at 100k rows, little at 5k)."""
        gc.disable()
        try:
            return await self.raw_read()
        finally:
            gc.enable()

    async def raw_read_per_mission(self) -> int:
        """Plain asyncpg, read_stream's query once per mission, no models."""
        total = 0
        for stream_id in self.streams:
            total += len(await self.pool.fetch(READ_STREAM_SQL, stream_id, 1, None))
        return total

    async def replay_stages(self) -> Stages:
        stages = dict.fromkeys(REPLAY_STAGES, 0.0)
        clock = time.perf_counter
        for stream_id in self.streams:
            t0 = clock()
            await self.pool.fetch(READ_STREAM_SQL, stream_id, 1, None)
            t1 = clock()
            events = await self.store.read_stream(stream_id)
            t2 = clock()
            domain_events = [EVENT_ADAPTER.validate_python(e.data) for e in events]
            t3 = clock()
            state = fold(domain_events)
            t4 = clock()
            _folded(stream_id, state, len(events))
            for name, seconds in zip(
                REPLAY_STAGES, (t1 - t0, (t2 - t1) - (t1 - t0), t3 - t2, t4 - t3), strict=True
            ):
                stages[name] += seconds
        return stages

    async def verify_stages(self) -> Stages:
        stages = dict.fromkeys(VERIFY_STAGES, 0.0)
        clock = time.perf_counter
        for stream_id in self.streams:
            t0 = clock()
            events = await self.store.read_stream(stream_id)
            t1 = clock()
            head = await self.pool.fetchrow(HEAD_SQL, stream_id)
            t2 = clock()
            check = verify_chain(
                stream_id, events, head=(head["version"], head["head_hash"]) if head else None
            )
            t3 = clock()
            _unbroken(check)
            # the hashing's pieces, timed apart (outside the verify total)
            documents = [_document(e) for e in events]
            t4 = clock()
            encoded = [rfc8785.dumps(d) for d in documents]
            t5 = clock()
            for blob in encoded:
                hashlib.sha256(blob).hexdigest()
            t6 = clock()
            for d in documents:
                fast_canonical(d)
            t7 = clock()
            for name, seconds in zip(
                VERIFY_STAGES,
                (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6),
                strict=True,
            ):
                stages[name] += seconds
        return stages

    # -- prototypes

    @contextlib.asynccontextmanager
    async def reader(self, held: bool) -> AsyncIterator[Reader]:
        if not held:
            yield self.pool
            return
        async with self.pool.acquire() as conn:
            yield conn

    async def raw_read_per_mission_held(self) -> int:
        """The same on one connection held for the pass (no acquire and reset per query)."""
        total = 0
        async with self.reader(held=True) as db:
            for stream_id in self.streams:
                total += len(await db.fetch(READ_STREAM_SQL, stream_id, 1, None))
        return total

    async def proto_replay(self) -> int:
        total = 0
        for stream_id in self.streams:
            events = await proto_read_stream(self.pool, stream_id)
            state = fold(EVENT_ADAPTER.validate_python(e.data) for e in events)
            total += _folded(stream_id, state, len(events))
        return total

    async def proto_replay_data(self, held: bool = False) -> int:
        total = 0
        async with self.reader(held) as db:
            for stream_id in self.streams:
                data = await proto_read_stream_data(db, stream_id)
                state = fold(EVENT_ADAPTER.validate_json(d) for d in data)
                total += _folded(stream_id, state, len(data))
        return total

    async def proto_verify(self, held: bool = False) -> int:
        total = 0
        async with self.reader(held) as db:
            for stream_id in self.streams:
                total += _unbroken(await proto_verify_stream(db, stream_id))
        return total


PROPOSALS = {
    "1": "eventstore/store.py: validate a read's rows as one list[RecordedEvent], metadata "
    "nested (one pydantic call, not two per row)",
    "2": "eventstore/chain.py: verify_chain checks each hash with json.dumps(sort_keys) first, "
    "RFC 8785 only where that does not match (chain.hash_matches since 55229e4)",
    "3": "eventstore/store.py: read_stream_data() (data::text) for replays; "
    "EVENT_ADAPTER.validate_json",
    "4": "eventstore/store.py: verify_stream reads events and head in one statement",
    "5": "eventstore/store.py: *_on(conn, ...) reads, so --all passes hold one connection",
}

REPLAY_STAGES = (
    "query + jsonb decode (plain asyncpg)",
    "RecordedEvent models (read_stream - query)",
    "EVENT_ADAPTER.validate_python",
    "fold (evolve)",
)
VERIFY_STAGES = (
    "read_stream (query + models)",
    "head query",
    "verify_chain",
    "  apart: hashed documents built",
    "  apart: rfc8785.dumps",
    "  apart: sha256",
    "  apart: json.dumps sorted (proposal 2)",
)
# The stages that add up to each path's total; the "apart" ones time the pieces of the
# hashing separately, over the same documents, whatever verify_chain does with them.
IN_TOTAL = {*REPLAY_STAGES, *VERIFY_STAGES[:3]}


def _folded(stream_id: str, state: Mission, events: int) -> int:
    if state.version != events:
        raise AssertionError(f"{stream_id}: folded {state.version} of {events} events")
    return events


def _unbroken(check: ChainCheck) -> int:
    if not check.ok:
        raise AssertionError(f"{check.stream_id}: {check.first_break}")
    return check.events


async def timed(run: Pass, expected: int, name: str, passes: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(passes):
        count = await run()
        if count != expected:
            raise AssertionError(f"{name}: processed {count} events, expected {expected}")
    return time.perf_counter() - started


def passes_for(seconds: float, min_run_seconds: float) -> int:
    """Enough passes for a timed run to last ``min_run_seconds`` (timer and scheduler noise
    swamp a run of a tenth of a second)."""
    return max(1, min(100, math.ceil(min_run_seconds / max(seconds, 1e-6))))


async def measure_all(
    measurements: Sequence[tuple[Measurement, Pass]],
    expected: int,
    repeats: int,
    min_run_seconds: float,
) -> None:
    """Warm each up once, then ``repeats`` rounds, round-robin (so that drift in the
    machine's load spreads over every measurement rather than landing on one)."""
    for m, run in measurements:
        m.passes = passes_for(await timed(run, expected, m.name), min_run_seconds)
        m.items = expected * m.passes
        print(f"  warmed up: {m.name} ({m.passes} pass(es) per run)", flush=True)
    for round_ in range(1, repeats + 1):
        for m, run in measurements:
            m.seconds.append(await timed(run, expected, m.name, m.passes))
        summary = ", ".join(f"{m.name} {m.rates[-1]:,.0f}/s" for m, _ in measurements)
        print(f"  round {round_}/{repeats}: {summary}", flush=True)


async def measure_stages(
    run: Callable[[], Awaitable[Stages]], events: int, repeats: int, min_run_seconds: float
) -> dict[str, Any]:
    """Each stage's median over the instrumented passes (at least ``repeats``, more when a
    pass is short), in µs per event."""
    started = time.perf_counter()
    passes = [await run()]
    count = repeats * passes_for(time.perf_counter() - started, min_run_seconds)
    passes += [await run() for _ in range(count - 1)]
    stages = {name: statistics.median(p[name] for p in passes) / events * 1e6 for name in passes[0]}
    total = sum(us for name, us in stages.items() if name in IN_TOTAL)
    return {
        "passes": len(passes),
        "us_per_event": {name: round(us, 2) for name, us in stages.items()},
        "total_us_per_event": round(total, 2),
    }


async def profile_pass(run: Pass, top: int) -> tuple[str, list[dict[str, Any]]]:
    """cProfile one pass (its overhead inflates small Python calls: read it for shares)."""
    profiler = cProfile.Profile()
    profiler.enable()
    await run()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    stats.print_stats(top)
    rows: list[dict[str, Any]] = []
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), (_, calls, tottime, cumtime, _) in sorted(
        raw.items(), key=lambda item: item[1][2], reverse=True
    )[:top]:
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({function})",
                "calls": calls,
                "tottime_s": round(tottime, 4),
                "cumtime_s": round(cumtime, 4),
            }
        )
    return text.getvalue(), rows


# -- machine and report -------------------------------------------------------------------


def package_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


async def machine_info(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        pg_version = await conn.fetchval("SELECT version()")
        pg_short = await conn.fetchval("SHOW server_version")
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "postgres": pg_short,
        "postgres_full": pg_version,
        "packages": {
            p: package_version(p) for p in ("asyncpg", "pydantic", "pydantic-core", "rfc8785")
        },
    }


def ratio_row(name: str, path: Measurement, raw: Measurement, target: float) -> dict[str, Any]:
    best, median = path.best / raw.best, path.median / raw.median
    met_best, met_median = best >= target, median >= target
    verdict = "met" if met_best and met_median else "not met" if not met_best else "borderline"
    return {
        "measurement": path.name,
        "target_ratio": target,
        "ratio_best": round(best, 4),
        "ratio_median": round(median, 4),
        "rate_best": round(path.best, 1),
        "rate_median": round(path.median, 1),
        "raw_read_best": round(raw.best, 1),
        "raw_read_median": round(raw.median, 1),
        "verdict": verdict,
    }


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def print_throughput(title: str, measured: Sequence[Measurement]) -> None:
    print_table(
        title,
        ["measurement", "best", "median", "runs (s)", "what"],
        [
            [
                m.name,
                f"{m.best:,.0f}/s",
                f"{m.median:,.0f}/s",
                " ".join(f"{s:.2f}" for s in m.seconds),
                m.description,
            ]
            for m in measured
        ],
    )


def warn_if_noisy(measured: Sequence[Measurement], limit: float = 0.25) -> None:
    noisy = [f"{m.name} {m.spread:.0%}" for m in measured if m.spread > limit]
    if noisy:
        print(
            f"note: runs of the same pass differ by more than {limit:.0%} ({', '.join(noisy)}): "
            "the machine is noisy; trust the best column more, or rerun with --repeats 5"
        )


def print_ratios(title: str, ratios: Sequence[dict[str, Any]]) -> None:
    print_table(
        title,
        [
            "path",
            "rate best",
            "raw best",
            "ratio best",
            "rate median",
            "raw median",
            "ratio median",
            "target",
            "verdict",
        ],
        [
            [
                r["measurement"],
                f"{r['rate_best']:,.0f}/s",
                f"{r['raw_read_best']:,.0f}/s",
                f"{r['ratio_best']:.1%}",
                f"{r['rate_median']:,.0f}/s",
                f"{r['raw_read_median']:,.0f}/s",
                f"{r['ratio_median']:.1%}",
                f">= {r['target_ratio']:.0%}",
                r["verdict"],
            ]
            for r in ratios
        ],
    )


def print_stages(title: str, stages: dict[str, Any]) -> None:
    total: float = stages["total_us_per_event"]
    print_table(
        title,
        ["stage", "µs/event", "share"],
        [
            [name, f"{us:.1f}", f"{us / total:.0%}" if name in IN_TOTAL else ""]
            for name, us in stages["us_per_event"].items()
        ]
        + [["total", f"{total:.1f}", "100%"]],
    )


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Audit throughput: replay and verify beside a raw read of the same rows."
    )
    parser.add_argument("--events", type=int, default=100_000, help="events to append (N)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER,
        help="PostgreSQL server; the run creates a database of its own on it and drops it "
        "(default: $DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--output", type=Path, help="JSON results (default bench/results/audit-<timestamp>.json)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--appenders", type=int, default=8, help="concurrent appenders")
    parser.add_argument(
        "--min-run-seconds",
        type=float,
        default=1.0,
        help="a timed run repeats its pass until it lasts this long (small --events)",
    )
    parser.add_argument("--no-diagnostics", action="store_true", help="skip the stage breakdown")
    parser.add_argument(
        "--no-prototypes", action="store_true", help="skip the prototypes of the proposals"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one replay and one verify pass"
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeats < 1 or args.appenders < 1:
        parser.error("--events, --repeats and --appenders must be positive")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # SIGTERM cancels the run like Ctrl-C does, so that the database is dropped either way.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    name, url = await create_database(args.database_url)
    print(f"database {name} on {urlsplit(args.database_url).hostname} (dropped at the end)")
    try:
        pool = await create_pool(url, min_size=1, max_size=args.appenders + 2)
        try:
            return await run_on(pool, args, name)
        finally:
            await pool.close()
    finally:
        await drop_database(args.database_url, name)
        print(f"database {name} dropped")


async def run_on(pool: asyncpg.Pool, args: argparse.Namespace, database: str) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat()
    store = EventStore(pool)
    machine = await machine_info(pool)
    print(
        f"python {machine['python']}, postgres {machine['postgres']}, "
        f"{machine['cpu_count']} CPUs; {args.events:,} events, {args.repeats} repeats"
    )
    setup = await set_up(store, args.events, args.appenders)
    print(
        f"set-up: {setup.events:,} events, {setup.appends:,} appends, {setup.missions:,} "
        f"missions in {setup.seconds:.1f}s ({setup.events / setup.seconds:,.0f} events/s, "
        f"{setup.appends / setup.seconds:,.0f} appends/s, {setup.appenders} appenders)"
    )
    async with pool.acquire() as conn:  # a store at rest: visibility map set, statistics
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) streams")
    streams = [s for s, _ in await store.stream_ids()]
    bench = Bench(pool, store, streams)
    n = setup.events

    raw = Measurement("raw read", "rows/s", "one SELECT of every row and column, jsonb decoded")
    replay = Measurement("replay", "events/s", "read_stream + validate_python + fold, per mission")
    verify = Measurement("verify", "events/s", "verify_stream (read + every hash and link)")
    print("measuring ...")
    await measure_all(
        [(raw, bench.raw_read), (replay, bench.replay), (verify, bench.verify)],
        n,
        args.repeats,
        args.min_run_seconds,
    )
    ratios = [
        ratio_row("replay", replay, raw, TARGETS["replay"]),
        ratio_row("verify", verify, raw, TARGETS["verify"]),
    ]
    results: dict[str, Any] = {
        "benchmark": "audit",
        "started_at": started_at,
        "database": database,
        "machine": machine,
        "parameters": {
            "events": args.events,
            "repeats": args.repeats,
            "warmup_runs": 1,
            "appenders": args.appenders,
            "min_run_seconds": args.min_run_seconds,
            "server": urlsplit(args.database_url).hostname,
            "targets": TARGETS,
        },
        "setup": setup.as_json(),
        "measurements": {m.name: m.as_json() for m in (raw, replay, verify)},
        "targets": ratios,
    }

    diagnostics: list[Measurement] = []
    if not args.no_diagnostics:
        print("diagnostics ...")
        diagnostics = [
            Measurement(
                "raw read, GC paused", "rows/s", "the raw read with gc.disable() during the fetch"
            ),
            Measurement(
                "raw read per mission", "rows/s", "plain asyncpg, read_stream's query, via the pool"
            ),
            Measurement(
                "raw read per mission, held", "rows/s", "the same on one connection for the pass"
            ),
        ]
        await measure_all(
            list(
                zip(
                    diagnostics,
                    (
                        bench.raw_read_gc_paused,
                        bench.raw_read_per_mission,
                        bench.raw_read_per_mission_held,
                    ),
                    strict=True,
                )
            ),
            n,
            args.repeats,
            args.min_run_seconds,
        )
        results["diagnostics"] = {
            "measurements": {m.name: m.as_json() for m in diagnostics},
            "replay_stages": await measure_stages(
                bench.replay_stages, n, args.repeats, args.min_run_seconds
            ),
            "verify_stages": await measure_stages(
                bench.verify_stages, n, args.repeats, args.min_run_seconds
            ),
        }

    prototypes: list[Measurement] = []
    if not args.no_prototypes:
        print("prototypes ...")
        parity = await parity_check(bench, sample=100)
        print(
            f"  parity: {parity['streams_compared']} streams and "
            f"{parity['tampered_streams_compared']} tampered ones give the store's answers; "
            f"{parity['encodings_byte_identical']} encodings byte-identical to RFC 8785"
        )
        passes: list[tuple[Measurement, Pass]] = [
            (Measurement("raw read", "rows/s", raw.description), bench.raw_read),
            (
                Measurement("replay [1]", "events/s", "read_stream's rows validated as one list"),
                bench.proto_replay,
            ),
            (
                Measurement("replay [3]", "events/s", "data as JSON text + validate_json + fold"),
                bench.proto_replay_data,
            ),
            (
                Measurement("replay [3+5]", "events/s", "the same on one held connection"),
                functools.partial(bench.proto_replay_data, held=True),
            ),
            (
                Measurement("verify [1+2+4]", "events/s", "one statement, fast hash + fallback"),
                bench.proto_verify,
            ),
            (
                Measurement("verify [1+2+4+5]", "events/s", "the same on one held connection"),
                functools.partial(bench.proto_verify, held=True),
            ),
        ]
        await measure_all(passes, n, args.repeats, args.min_run_seconds)
        prototypes = [m for m, _ in passes]
        proto_raw = prototypes[0]
        results["prototypes"] = {
            "proposals": PROPOSALS,
            "parity": parity,
            "measurements": {m.name: m.as_json() for m in prototypes},
            "targets": [
                ratio_row(m.name.split()[0], m, proto_raw, TARGETS[m.name.split()[0]])
                for m in prototypes[1:]
            ],
        }

    if args.profile:
        print("profiling ...")
        results["profile"] = {}
        for label, pass_ in (("replay", bench.replay), ("verify", bench.verify)):
            text, rows = await profile_pass(pass_, top=15)
            results["profile"][label] = rows
            print(f"\ncProfile, one {label} pass, by own time:\n{text}")

    print_throughput("Throughput (same run, same rows)", [raw, replay, verify])
    warn_if_noisy([raw, replay, verify])
    print_ratios("Targets: rate / raw read rate", ratios)
    if diagnostics:
        d = results["diagnostics"]
        print_throughput("Diagnostics", diagnostics)
        print_stages("Where replay's time goes (median of instrumented passes)", d["replay_stages"])
        print_stages("Where verify's time goes (median of instrumented passes)", d["verify_stages"])
    if prototypes:
        print("\nProposals (prototyped in this script only):")
        for key, text in PROPOSALS.items():
            print(f"  [{key}] {text}")
        print_throughput("Prototypes, measured again beside the raw read", prototypes)
        warn_if_noisy(prototypes)
        print_ratios("Targets with the proposals", results["prototypes"]["targets"])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or RESULTS / f"audit-{stamp}.json"
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
