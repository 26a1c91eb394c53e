"""Audit throughput benchmark: ``eom audit replay --all`` and ``eom audit verify --all``
against a raw read of the same rows, in the same run.

    .venv/bin/python bench/audit_bench.py [--events 100000] [--database-url URL]
                                          [--output bench/results/audit-<timestamp>.json]

One run, one fresh database (created on the server, migrated, dropped at the end even on
failure or Ctrl-C):

1. set-up: N events across many missions: the seed mission's commands decided, appended
   one ``EventStore.append`` per command (real hash chain) and folded, by a few concurrent
   appenders; then ``VACUUM (ANALYZE)``;
2. the baseline, **raw read**: one plain asyncpg ``SELECT`` of every row and column, jsonb
   decoded with the store's json codec, nothing else;
3. **replay**, what ``eom audit replay --all`` does: the stream ids, then on one held
   connection, per stream, ``read_stream_data_on`` + ``load_event_json`` + ``fold``;
4. **verify**, what ``eom audit verify --all`` does: the stream ids, then on one held
   connection, per stream, ``read_chain_on`` + ``verify_chain`` + ``fingerprint_problems``;
5. the targets: replay >= 50 % of the raw read rate, verify >= 30 %.

Before timing, a parity check: the measured paths replay each stream to its head version
(and to the same state as the single-mission replay), verify every stream unbroken, and
detect each kind of tampering done in memory to a stream's stored events. Each
measurement is warmed up once, then repeated round-robin; best and median are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import itertools
import math
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from bench_common import package_version, print_table, with_database, write_results

from cli import seed
from cli.audit import fingerprint_problems
from domain import Event, Mission, decide, evolve, fold, load_event, load_event_json, text_sha256
from domain import commands as c
from domain.commands import Command
from domain.values import (
    DeadlineKind,
    DeliveryPurpose,
    ObserverRole,
    Recipient,
    RecipientKind,
    StakeholderType,
)
from eventstore.chain import event_hash, verify_chain
from eventstore.migrations import migrate
from eventstore.models import BreakKind, ChainCheck, EventMetadata, NewEvent, StoredEvent
from eventstore.store import (
    EventStore,
    create_pool,
    read_chain_on,
    read_stream_data_on,
    verify_stream_on,
)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"replay": 0.50, "verify": 0.30}

# Every column, spelled as EventStore's reads select them: the baseline reads and decodes
# all that the store could read.
COLUMNS = """
    global_position, transaction_id::text::bigint AS transaction_id, stream_id, stream_version,
    event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at,
    previous_hash, hash
"""
RAW_READ_SQL = f"SELECT {COLUMNS} FROM events ORDER BY stream_id, stream_version"
RAW_STREAM_SQL = f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"


# -- database lifecycle -------------------------------------------------------------------


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
    and evolve; returns the events appended. A command that records nothing in the stream
    (polling stations go to the intake) appends nothing, as in the workflow."""
    state = Mission()
    run_id = str(uuid.uuid4())
    for command in commands:
        now = datetime.now(UTC)
        events = decide(state, command, now=now)
        if not events:
            continue
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
                NewEvent.of(event, event_id=uuid.uuid4(), occurred_at=now, metadata=metadata)
                for event in events
            ],
        )
        state = fold(events, state)
    return state.version


async def set_up(store: EventStore, events: int, appenders: int) -> dict[str, Any]:
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
    return {
        **done,
        "appenders": appenders,
        "seconds": round(seconds, 3),
        "events_per_second": round(done["events"] / seconds, 1),
    }


# -- the measured passes ------------------------------------------------------------------


def _folded(stream_id: str, state: Mission, events: int, head_version: int) -> int:
    if not state.version == events == head_version:
        raise AssertionError(
            f"{stream_id}: folded to v{state.version} from {events} events, head v{head_version}"
        )
    return events


def _unbroken(check: ChainCheck, problems: list[str]) -> int:
    if problems:
        raise AssertionError(f"{check.stream_id}: {problems[0]}")
    return check.events


class Bench:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def raw_read(self) -> int:
        """The baseline: every row and column in one SELECT, nothing else."""
        async with self.store.pool.acquire() as conn:
            rows = await conn.fetch(RAW_READ_SQL)
        return len(rows)

    async def replay(self) -> int:
        """``eom audit replay --all`` (cli/audit.py ``_replay_all``), without its progress
        bar; every stream must fold to its head version."""
        streams = await self.store.stream_ids()
        total = 0
        async with self.store.connection() as conn:
            for stream_id, version in streams:
                data = await read_stream_data_on(conn, stream_id)
                state = fold(load_event_json(d) for d in data)
                total += _folded(stream_id, state, len(data), version)
        return total

    async def verify(self) -> int:
        """``eom audit verify --all`` (cli/audit.py ``verify``), without its table; every
        stream must verify unbroken."""
        streams = await self.store.stream_ids()
        total = 0
        async with self.store.connection() as conn:
            for stream_id, _ in streams:
                events, head = await read_chain_on(conn, stream_id)
                check = verify_chain(stream_id, events, head=head)
                problems = [
                    f"v{b.stream_version} {b.kind}: {b.problem}" for b in check.breaks
                ] + fingerprint_problems(events)
                total += _unbroken(check, problems)
        return total

    # -- diagnostics: what the baseline and the per-stream passes are up against

    async def raw_read_gc_paused(self) -> int:
        """The raw read with the cyclic GC paused: how much of the baseline is the collector
        walking the rows as they pile up (a large share at 100k rows, little at 5k)."""
        gc.disable()
        try:
            return await self.raw_read()
        finally:
            gc.enable()

    async def raw_read_per_stream(self) -> int:
        """Every row and column again, one SELECT per stream on one held connection: the
        floor of any per-stream pass."""
        total = 0
        async with self.store.connection() as conn:
            for stream_id, _ in await self.store.stream_ids():
                total += len(await conn.fetch(RAW_STREAM_SQL, stream_id))
        return total

    async def replay_stages(self) -> dict[str, float]:
        stages = dict.fromkeys(REPLAY_STAGES, 0.0)
        clock = time.perf_counter
        async with self.store.connection() as conn:
            for stream_id, version in await self.store.stream_ids():
                t0 = clock()
                data = await read_stream_data_on(conn, stream_id)
                t1 = clock()
                events = [load_event_json(d) for d in data]
                t2 = clock()
                state = fold(events)
                t3 = clock()
                _folded(stream_id, state, len(data), version)
                for name, seconds in zip(REPLAY_STAGES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    stages[name] += seconds
        return stages

    async def verify_stages(self) -> dict[str, float]:
        stages = dict.fromkeys(VERIFY_STAGES, 0.0)
        clock = time.perf_counter
        async with self.store.connection() as conn:
            for stream_id, _ in await self.store.stream_ids():
                t0 = clock()
                events, head = await read_chain_on(conn, stream_id)
                t1 = clock()
                check = verify_chain(stream_id, events, head=head)
                t2 = clock()
                problems = fingerprint_problems(events)
                t3 = clock()
                _unbroken(check, problems)
                for name, seconds in zip(VERIFY_STAGES, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    stages[name] += seconds
        return stages


REPLAY_STAGES = ("read_stream_data_on (query)", "load_event_json", "fold")
VERIFY_STAGES = ("read_chain_on (query + StoredEvent)", "verify_chain", "fingerprint_problems")


# -- fold: µs per event on a long-lived mission -------------------------------------------

LONG_MEMBER_STATES = ["AZ", "KG", "TR", "UZ", "HU", "TM", "MN", "AM"]
FOLD_LENGTHS = (500, 10_000)
FOLD_TARGET = 1.3
"""µs/event folding the longer stream over µs/event folding the shorter: at most this."""
FOLD_SLICE_SECONDS = 0.05
"""How long each length folds before the other takes its turn, within a timed run."""


def _long_mission_commands(events: int) -> Iterator[Command]:
    """Commands of a mission that runs for years, scaled to about ``events`` events: its
    observers (one per 40 events, nominated and accepted), teams (of two), meetings (one
    per 25 events) and station visits (one per 10, the last tenth at stations already
    visited) grow with it; then follow-up cycles (evidence asked of nine states, each
    reminded three times, a failed delivery, an escalation, evidence from seven, each of
    twelve recommendations rated) repeat for as long as the stream goes on."""
    now = datetime(2021, 1, 5, 12, tzinfo=UTC)
    states = LONG_MEMBER_STATES
    yield seed.registration("long-lived").model_copy(update={"member_states": states})
    yield c.AppointHeadOfMission(name=seed.HEAD_OF_MISSION, title="Head of mission")
    yield c.RequestNominations(deadline=now + timedelta(days=1))
    for step, ms in enumerate(states * 2):
        yield _delivery(DeadlineKind.nomination, ms, step // len(states) + 1, f"n-{step}", 0)
    observers = [f"o-{i}" for i in range(max(4, events // 40) // 2 * 2)]
    for i, oid in enumerate(observers):
        yield c.NominateObserver(
            observer_id=oid,
            member_state=states[i % len(states)],
            name=f"Observer {i}",
            role=ObserverRole.short_term_observer,
            code_of_conduct_signed=True,
            conflict_of_interest_declared=True,
        )
        yield c.AcceptObserver(observer_id=oid)
    teams = [f"team-{i}" for i in range(len(observers) // 2)]
    for i, tid in enumerate(teams):
        yield c.FormTeam(team_id=tid, observer_ids=observers[2 * i : 2 * i + 2], area="Astana")
    yield c.DeployMission(deployed_on=date(2021, 1, 6))
    for i in range(events // 25):
        yield c.RecordMeeting(
            meeting_id=f"meeting-{i}",
            stakeholder_type=StakeholderType.civil_society,
            stakeholder_name=f"Stakeholder {i}",
            held_on=date(2021, 1, 6 + i % 4),
            participants=[seed.HEAD_OF_MISSION, f"Participant {i}"],
            topics=["campaign"],
            summary=f"Meeting {i} on the campaign.",
        )
    yield c.OpenElectionDay()
    visits = max(1, events // 10)
    stations = visits - visits // 10  # the last tenth revisits stations: conflicts
    for i in range(visits):
        hour = 8 + i % 10
        yield seed.station_visit(5, team=1).model_copy(
            update={
                "visit_id": f"visit-{i}",
                "station_id": f"PS-{i % stations}",
                "team_id": teams[i % len(teams)],
                "arrived_at": datetime(2021, 1, 10, hour),
                "departed_at": datetime(2021, 1, 10, hour, 45),
            }
        )
    statement = next(cmd for cmd in seed.mission("x") if isinstance(cmd, c.DraftStatement))
    sha = text_sha256(statement.text)
    yield c.CloseElectionDay()
    yield statement
    yield c.ApproveStatement(
        draft_id="statement-1", text_sha256=sha, approved_by=seed.HEAD_OF_MISSION
    )
    yield c.PublishStatement(
        draft_id="statement-1", text_sha256=sha, published_on=date(2021, 1, 11)
    )
    recommendations = [
        r.model_copy(update={"id": f"R{i}"})
        for i, r in enumerate(seed.RECOMMENDATIONS * 4, start=1)
    ]
    yield c.IssueRecommendations(recommendations=recommendations)
    recipients = [Recipient(kind=RecipientKind.member_state, name=ms) for ms in states]
    yield c.SendRecommendations(
        recipients=recipients, sent_on=date(2021, 1, 15), acknowledge_by=now + timedelta(days=30)
    )
    for recipient in recipients:
        name = recipient.name
        yield _delivery(DeadlineKind.acknowledgement, name, 1, f"ack-{name}", 0)
        yield c.AcknowledgeRecommendations(recipient=recipient, acknowledged_on=date(2021, 1, 18))
    asked = [*states, seed.HOST]
    for cycle in itertools.count(1):
        yield c.RequestEvidence(
            cycle=cycle, member_states=asked, deadline=now + timedelta(days=180 * cycle)
        )
        for step in (1, 2, 3):
            for ms in asked:
                yield _delivery(DeadlineKind.evidence, ms, step, f"e-{cycle}-{step}-{ms}", cycle)
        yield _delivery(DeadlineKind.evidence, asked[0], 4, f"e-{cycle}-f", cycle, ok=False)
        yield _delivery(DeadlineKind.evidence, asked[1], 4, f"e-{cycle}-x", cycle, escalate=True)
        yield from seed.cycle_answers(cycle, asked[2:], recommendations)


def _delivery(
    kind: DeadlineKind,
    member_state: str,
    step: int,
    message_id: str,
    cycle: int,
    *,
    ok: bool = True,
    escalate: bool = False,
) -> c.RecordDelivery:
    return c.RecordDelivery(
        kind=kind,
        member_state=member_state,
        purpose=DeliveryPurpose.escalation if escalate else DeliveryPurpose.reminder,
        step=step,
        cycle=cycle,
        message_id=message_id,
        delivered=ok,
        error=None if ok else "mailbox full",
    )


def long_mission(events: int) -> list[Event]:
    """The first ``events`` events of a long-lived mission (``_long_mission_commands``),
    each command decided on the state folded so far."""
    now = datetime(2021, 1, 5, 12, tzinfo=UTC)
    state = Mission()
    recorded: list[Event] = []
    for command in _long_mission_commands(events):
        decided = decide(state, command, now=now)
        state = fold(decided, state)
        recorded += decided
        if len(recorded) >= events:
            return recorded[:events]
    raise AssertionError("unreachable: the follow-up cycles never end")


# -- parity: the measured paths give the right answers ------------------------------------


def tampered_variants(
    events: list[StoredEvent],
) -> dict[str, tuple[BreakKind, list[StoredEvent]]]:
    """In-memory versions of one stream's stored events with one kind of tampering each,
    and the kind of break verification must report."""
    if len(events) < 4:
        return {}
    e = events
    last = e[-1]
    forged = dataclasses.replace(
        last, stream_version=last.stream_version + 1, event_id=uuid.uuid4(), previous_hash=last.hash
    )
    # A well-forged insertion: its hash and link are right, only the recorded head shows it.
    forged = dataclasses.replace(
        forged,
        hash=event_hash(
            stream_id=forged.stream_id,
            stream_version=forged.stream_version,
            event_id=forged.event_id,
            event_type=forged.event_type,
            schema_version=forged.schema_version,
            data=forged.data,
            metadata=forged.metadata,
            occurred_at=forged.occurred_at,
            previous_hash=forged.previous_hash,
        ),
    )
    return {
        "changed data": (
            "changed",
            [*e[:2], dataclasses.replace(e[2], data={**e[2].data, "bench": 1}), *e[3:]],
        ),
        "changed actor": (
            "changed",
            [e[0], dataclasses.replace(e[1], metadata={**e[1].metadata, "actor": "x"}), *e[2:]],
        ),
        "metadata key added": (
            "changed",
            [e[0], dataclasses.replace(e[1], metadata={**e[1].metadata, "note": "x"}), *e[2:]],
        ),
        "removed event": ("removed", [*e[:2], *e[3:]]),
        "removed last event": ("removed", e[:-1]),
        "reordered events": (
            "reordered",
            [
                e[0],
                dataclasses.replace(e[3], stream_version=2),
                e[2],
                dataclasses.replace(e[1], stream_version=4),
                *e[4:],
            ],
        ),
        "inserted event": ("inserted", [*e, forged]),
    }


async def parity_check(store: EventStore, sample: int) -> dict[str, Any]:
    """On a sample of streams: the landed replay gives the single-mission replay's state at
    the head version; verification on the held connection agrees with the pooled one and
    is unbroken; and each tampered variant is reported as the kind of break it is."""
    streams = await store.stream_ids()
    step = max(1, len(streams) // sample)
    chosen = streams[::step][:sample]
    tampered: dict[str, int] = {}
    async with store.connection() as conn:
        for stream_id, version in chosen:
            data = await read_stream_data_on(conn, stream_id)
            state = fold(load_event_json(d) for d in data)
            _folded(stream_id, state, len(data), version)
            reference = fold(load_event(e.data) for e in await store.read_stream(stream_id))
            if state != reference:
                raise AssertionError(f"{stream_id}: load_event_json replay differs")
            check = await verify_stream_on(conn, stream_id)
            if check != await store.verify_stream(stream_id) or not check.ok:
                raise AssertionError(f"{stream_id}: verification differs or fails: {check}")
            events, head = await read_chain_on(conn, stream_id)
            if head != (version, check.head_hash) or len(events) != version:
                raise AssertionError(f"{stream_id}: read_chain_on's head {head} is not v{version}")
            for name, (kind, variant) in tampered_variants(events).items():
                found = verify_chain(stream_id, variant, head=head)
                if kind not in {b.kind for b in found.breaks}:
                    raise AssertionError(f"{stream_id}: {name} not reported as {kind}: {found}")
                tampered[name] = tampered.get(name, 0) + 1
    return {
        "streams_checked": len(chosen),
        "tampered_variants_detected": sum(tampered.values()),
        "tampered_variants": tampered,
        "ok": True,
    }


# -- measurements -------------------------------------------------------------------------

Pass = Callable[[], Awaitable[int]]
"""One pass over every event: returns how many it processed (checked against N)."""


@dataclass
class Measurement:
    name: str
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
            "description": self.description,
            "events_per_run": self.items,
            "passes_per_run": self.passes,
            "runs_seconds": [round(s, 4) for s in self.seconds],
            "runs_per_second": [round(r, 1) for r in self.rates],
            "best_per_second": round(self.best, 1),
            "median_per_second": round(self.median, 1),
            "spread": round(self.spread, 3),
        }


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
    for round_ in range(1, repeats + 1):
        for m, run in measurements:
            m.seconds.append(await timed(run, expected, m.name, m.passes))
        summary = ", ".join(f"{m.name} {m.rates[-1]:,.0f}/s" for m, _ in measurements)
        print(f"  round {round_}/{repeats}: {summary}", flush=True)


async def measure_stages(
    run: Callable[[], Awaitable[dict[str, float]]], events: int, repeats: int
) -> dict[str, float]:
    """Each stage's median over ``repeats`` instrumented passes, in µs per event."""
    passes = [await run() for _ in range(repeats)]
    return {
        name: round(statistics.median(p[name] for p in passes) / events * 1e6, 2)
        for name in passes[0]
    }


def measure_fold(repeats: int, min_run_seconds: float) -> dict[str, Any]:
    """``fold`` of a long-lived mission's stream (``long_mission``) at each of
    ``FOLD_LENGTHS`` events, in µs per event: warmed up once, then ``repeats`` timed runs.
    Within a run the lengths take turns, in slices of about ``FOLD_SLICE_SECONDS`` (so
    many whole folds of each), until each has folded for ``min_run_seconds``: whatever
    else the machine does then falls on every length alike. The ratio is the longest
    stream's µs/event over the shortest's (best over best, median over median): 1.0 when
    folding costs the same per event however long the stream is.

    Before timing, each stream's fold must equal its step-by-step ``evolve`` and reach the
    stream's length as its version (``AssertionError`` otherwise)."""
    streams = {n: long_mission(n) for n in FOLD_LENGTHS}
    for n, events in streams.items():
        stepped = Mission()
        for event in events:
            stepped = evolve(stepped, event)
        folded = fold(events)
        if folded != stepped or folded.version != n:
            raise AssertionError(f"fold of {n} events differs from evolving them one by one")
    # The streams stay alive while they are folded, so every full collection the folds
    # set off would walk them too (10,500 events, about 75,000 objects tracked by the
    # collector, over three times the 22,000 of the longest fold's state): frozen like
    # the import-time heap, the folds pay for what they allocate only. The collector
    # stays on. (Frozen objects are still freed once unreferenced.)
    gc.collect()
    gc.freeze()
    clock = time.perf_counter
    per_slice: dict[int, int] = {}
    for n, events in streams.items():
        started = clock()
        fold(events)
        per_slice[n] = max(1, round(FOLD_SLICE_SECONDS / max(clock() - started, 1e-6)))
    runs: dict[int, list[float]] = {n: [] for n in streams}
    for _ in range(repeats):
        gc.collect()  # each run starts with no garbage left by the one before
        spent = dict.fromkeys(streams, 0.0)
        folds = dict.fromkeys(streams, 0)
        while min(spent.values()) < min_run_seconds:
            for n, events in streams.items():
                started = clock()
                for _ in range(per_slice[n]):
                    fold(events)
                spent[n] += clock() - started
                folds[n] += per_slice[n]
        for n in streams:
            runs[n].append(spent[n] / folds[n] / n * 1e6)
    short, long = min(streams), max(streams)
    best = min(runs[long]) / min(runs[short])
    median = statistics.median(runs[long]) / statistics.median(runs[short])
    return {
        "description": "fold of a long-lived mission's stream (long_mission), µs per event",
        "lengths": {
            str(n): {
                "folds_per_slice": per_slice[n],
                "runs_us_per_event": [round(us, 3) for us in runs[n]],
                "best_us_per_event": round(min(runs[n]), 3),
                "median_us_per_event": round(statistics.median(runs[n]), 3),
            }
            for n in streams
        },
        "ratio": f"{long} over {short} events",
        "ratio_best": round(best, 4),
        "ratio_median": round(median, 4),
        "target_ratio": FOLD_TARGET,
        "verdict": (
            "met"
            if max(best, median) <= FOLD_TARGET
            else "borderline"
            if best <= FOLD_TARGET
            else "not met"
        ),
    }


def ratio_row(path: Measurement, raw: Measurement, target: float) -> dict[str, Any]:
    """The path's rate over the baseline's, best over best and median over median: ``met``
    when both reach the target, ``borderline`` when only the best does."""
    best, median = path.best / raw.best, path.median / raw.median
    verdict = (
        "met" if min(best, median) >= target else "borderline" if best >= target else "not met"
    )
    return {
        "measurement": path.name,
        "baseline": raw.name,
        "target_ratio": target,
        "rate_best": round(path.best, 1),
        "rate_median": round(path.median, 1),
        "raw_read_best": round(raw.best, 1),
        "raw_read_median": round(raw.median, 1),
        "ratio_best": round(best, 4),
        "ratio_median": round(median, 4),
        "verdict": verdict,
    }


# -- machine and report -------------------------------------------------------------------


async def machine_info(pool: asyncpg.Pool) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "postgres": await pool.fetchval("SHOW server_version"),
        "packages": {
            p: package_version(p) for p in ("asyncpg", "pydantic", "pydantic-core", "rfc8785")
        },
    }


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
    noisy = [f"{m.name} {m.spread:.0%}" for m in measured if m.spread > 0.25]
    if noisy:
        print(
            f"note: runs of the same pass differ by more than 25% ({', '.join(noisy)}): "
            "the machine is noisy; trust the best column more, rerun, or raise --repeats"
        )


RATIO_HEADER = (
    "path",
    "baseline",
    "best",
    "base best",
    "ratio",
    "median",
    "base median",
    "ratio",
    "target",
    "verdict",
)


def print_ratios(title: str, ratios: Sequence[dict[str, Any]]) -> None:
    print_table(
        title,
        RATIO_HEADER,
        [
            [
                r["measurement"],
                r["baseline"],
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


def print_fold(title: str, measured: dict[str, Any]) -> None:
    lengths = measured["lengths"]
    print_table(
        title,
        ["events", "best", "median", "runs (µs/event)"],
        [
            [
                f"{int(n):,}",
                f"{m['best_us_per_event']:.2f}",
                f"{m['median_us_per_event']:.2f}",
                " ".join(f"{us:.2f}" for us in m["runs_us_per_event"]),
            ]
            for n, m in lengths.items()
        ],
    )
    print(
        f"ratio ({measured['ratio']}): best {measured['ratio_best']:.2f}, "
        f"median {measured['ratio_median']:.2f}; target <= {measured['target_ratio']:.1f}: "
        f"{measured['verdict']}"
    )


def print_stages(title: str, stages: dict[str, float]) -> None:
    total = sum(stages.values())
    print_table(
        title,
        ["stage", "µs/event", "share"],
        [[name, f"{us:.1f}", f"{us / total:.0%}"] for name, us in stages.items()]
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
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--appenders", type=int, default=8, help="concurrent appenders")
    parser.add_argument(
        "--min-run-seconds",
        type=float,
        default=1.0,
        help="a timed run repeats its pass until it lasts this long (small --events)",
    )
    parser.add_argument(
        "--no-diagnostics", action="store_true", help="skip the diagnostics and stage breakdowns"
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
            return await run_on(EventStore(pool), args)
        finally:
            await pool.close()
    finally:
        await drop_database(args.database_url, name)
        print(f"database {name} dropped")


async def run_on(store: EventStore, args: argparse.Namespace) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat()
    machine = await machine_info(store.pool)
    print(
        f"python {machine['python']}, postgres {machine['postgres']}, "
        f"{machine['cpu_count']} CPUs; {args.events:,} events, {args.repeats} repeats"
    )
    setup = await set_up(store, args.events, args.appenders)
    print(
        f"set-up: {setup['events']:,} events, {setup['appends']:,} appends, "
        f"{setup['missions']:,} missions in {setup['seconds']:.1f}s "
        f"({setup['events_per_second']:,.0f} events/s, {args.appenders} appenders)"
    )
    async with store.pool.acquire() as conn:  # a store at rest: visibility map, statistics
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) streams")
    n: int = setup["events"]
    bench = Bench(store)

    parity = await parity_check(store, sample=100)
    print(
        f"parity: {parity['streams_checked']} streams replay to their head and the "
        f"single-mission state and verify unbroken; {parity['tampered_variants_detected']} "
        "tampered variants reported as the right kind of break"
    )

    raw = Measurement("raw read", "one SELECT of every row and column, jsonb decoded")
    replay = Measurement("replay", "eom audit replay --all: data::text, load_event_json, fold")
    verify = Measurement("verify", "eom audit verify --all: read_chain_on, verify_chain")
    passes: list[tuple[Measurement, Pass]] = [
        (raw, bench.raw_read),
        (replay, bench.replay),
        (verify, bench.verify),
    ]
    diagnostics: list[Measurement] = []
    if not args.no_diagnostics:  # measured in the same rounds, for a like-for-like ratio
        gc_paused = Measurement("raw read, GC paused", "the raw read with gc.disable() around it")
        per_stream = Measurement(
            "raw read per stream", "every column, one SELECT per stream, held conn"
        )
        diagnostics = [gc_paused, per_stream]
        passes += [(gc_paused, bench.raw_read_gc_paused), (per_stream, bench.raw_read_per_stream)]
    print("measuring ...")
    load_before = [round(x, 2) for x in os.getloadavg()]
    await measure_all(passes, n, args.repeats, args.min_run_seconds)
    # other work on the machine shows here (the passes themselves keep about one CPU busy)
    load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    print(f"load average (1, 5, 15 min): {load['before']} before, {load['after']} after")
    ratios = [
        ratio_row(replay, raw, TARGETS["replay"]),
        ratio_row(verify, raw, TARGETS["verify"]),
    ]
    results: dict[str, Any] = {
        "benchmark": "audit",
        "started_at": started_at,
        "machine": machine,
        "parameters": {
            "events": args.events,
            "repeats": args.repeats,
            "warmup_runs": 1,
            "appenders": args.appenders,
            "min_run_seconds": args.min_run_seconds,
            "gc_frozen_objects": gc.get_freeze_count(),
            "server": urlsplit(args.database_url).hostname,
            "targets": TARGETS,
        },
        "setup": setup,
        "load_average": load,
        "parity": parity,
        "measurements": {m.name: m.as_json() for m in (raw, replay, verify)},
        "targets": ratios,
    }
    if diagnostics:
        print("stages ...")
        results["diagnostics"] = {
            "measurements": {m.name: m.as_json() for m in diagnostics},
            # the same ratios against the stricter baselines: for reading, not the targets
            "ratios_vs_stricter_baselines": [
                ratio_row(path, baseline, TARGETS[path.name])
                for baseline in diagnostics
                for path in (replay, verify)
            ],
            "replay_stages_us_per_event": await measure_stages(
                bench.replay_stages, n, args.repeats
            ),
            "verify_stages_us_per_event": await measure_stages(
                bench.verify_stages, n, args.repeats
            ),
        }
    # Last: it freezes what is alive then (see measure_fold), which would change the GC's
    # work in the passes above.
    print("fold ...")
    fold_cost = results["fold"] = measure_fold(args.repeats, args.min_run_seconds)

    print_throughput("Throughput, events/s (same run, same rows)", [raw, replay, verify])
    print_ratios("Targets: rate / raw read rate (same run)", ratios)
    print_fold("Fold of a long-lived mission, µs/event (same run)", fold_cost)
    if diagnostics:
        d = results["diagnostics"]
        print_throughput("Diagnostics, rows/s (measured in the same rounds)", diagnostics)
        print_ratios(
            "Not the targets: the same rates against the stricter baselines",
            d["ratios_vs_stricter_baselines"],
        )
        print_stages("Where replay's time goes (median pass)", d["replay_stages_us_per_event"])
        print_stages("Where verify's time goes (median pass)", d["verify_stages_us_per_event"])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or RESULTS / f"audit-{stamp}.json"
    # What the imports allocated (cli.audit brings in Temporal, typer and rich: about 150,000
    # objects) is moved out of the collector's reach. Otherwise every full collection walks
    # it, and the raw read, which keeps all its rows alive and so sets off full
    # collections, is the one that pays: about 25 % slower at 5,000 events, which flatters
    # the ratios. Frozen, the baseline pays only for the rows it reads.
    gc.collect()
    gc.freeze()
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    write_results(results, output)
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
