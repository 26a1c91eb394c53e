"""The intake: observers' submissions into the event store, at election-day volume.

Design (and why it holds):

- **Outside the mission workflow.** Each report is an event in its polling station's
  stream (``<mission>/stations/<station>``), hash-chained like every stream. The mission
  workflow never sees a report: it polls the intake's aggregate (``progress``) on a timer,
  so its history grows with time, not with reports (Temporal caps a workflow history at
  51,200 events; a signal per report would reach that in an afternoon).
- **Checked before it is queued.** The domain's ``admit`` runs against the mission as its
  stream says it is (cached, refreshed before any refusal), the registered stations and
  earlier receipts. A request with any refused submission is refused whole, naming each
  problem, and nothing of it is written.
- **Durable when acknowledged.** A request is answered after the transaction holding its
  events has committed, never before.
- **Batched.** Flushers take every request waiting (up to ``max_batch`` submissions) and
  write them in one transaction of two statements, whatever its size: one locks the
  gates and the station heads and finds earlier receipts; one inserts every event, moves
  every head and records every receipt. At low rates a batch is one request (no added
  wait); under load, batches grow and commits are shared.
- **Duplicate-proof.** A submission id is recorded once per mission (``intake_receipts``
  primary key); sending it again is answered with the first receipt. A different
  submission under a used id is refused: a change is a correction.
- **Ordered per station.** A station's stream is locked for the transaction that appends
  to it, so its order is the order of commits, which is the order of acknowledgements.
- **One sender's bad data refuses that sender only.** A request is all or nothing, but
  requests sharing a batch are not: when a batch's transaction fails on data the event
  store will not hold (a data exception or an integrity constraint, SQLSTATE classes 22
  and 23, which no retry changes), it is rolled back and its requests are written again
  in halves, each in its own transaction, halved again while they fail. The request at
  fault, alone, is refused (``invalid_input``); every other one is recorded. A batch
  that fails because the connection or the server failed is answered as not recorded
  (``IntakeUnavailable``), to be sent again.
- **Drained before election day closes.** Every write holds the mission's gate row
  ``FOR SHARE``; ``close`` takes it ``FOR UPDATE``, so it waits for the writes in flight,
  counts them, and later ones are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict

from domain import DomainError, Mission, fold, load_event_json
from domain import errors as e
from domain.forms import FormDefinition
from domain.submissions import (
    EarlierReport,
    IncidentReport,
    IntakeContext,
    PollingStation,
    PollingStationsRegistered,
    Report,
    StationVisitReport,
    admit,
    conflict,
    content_sha256,
    is_resubmission,
    phases,
    register_stations,
)
from domain.values import RECORDED, Stage
from eventstore.models import AppendResult, EventMetadata, NewEvent
from eventstore.store import (
    Alongside,
    Connection,
    EventStore,
    Head,
    append_at_heads_on,
    is_data_error,
    lock_heads_on,
    read_stream_data_on,
)
from forms.library import assigned_count_on, assigned_forms_on
from forms.xpath import CONDITIONS

log = structlog.get_logger("eom.intake")

AnySubmission = StationVisitReport | IncidentReport

_IDS = uuid.UUID("2f0c5bb4-7d0e-4f59-9a43-6c2b1de0e9a1")
"""Namespace of the intake's event ids: one id per (mission, submission), so even a
write that got past the receipts could not store a report twice."""


def station_stream(mission_id: str, station_id: str) -> str:
    return f"{mission_id}/stations/{station_id}"


def stations_stream(mission_id: str) -> str:
    return f"{mission_id}/stations"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Receipt(_Model):
    """The answer to one submission: where it is recorded. A resubmission gets the first
    submission's receipt, with ``status`` ``duplicate``."""

    submission_id: str
    status: Literal["recorded", "duplicate"]
    event_id: UUID
    stream_id: str
    stream_version: int
    global_position: int
    received_at: datetime
    conflict: bool = False
    """This report made its station reported by more than one team (flagged)."""


class Problem(_Model):
    index: int
    submission_id: str
    rule: str
    message: str


class SubmissionRefused(Exception):
    """Some submission of a request breaks a rule: nothing of the request is written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.submission_id}: {p.rule}: {p.message}" for p in problems))

    @property
    def rule(self) -> str:
        return self.problems[0].rule


class StationsRegistered(_Model):
    mission_id: str
    added: int
    registered: int
    event_ids: list[UUID] = []
    """The registration's event (none when every station was registered already)."""
    global_positions: list[int] = []


@dataclass
class _Item:
    submission: AnySubmission
    report: Report
    sha256: str
    received_at: datetime
    event_id: UUID
    index: int
    """The submission's place in the request as sent (its first, if sent twice)."""


def _event_id(mission_id: str, submission_id: str) -> UUID:
    return uuid.uuid5(_IDS, f"{mission_id}/{submission_id}")


_Visits = tuple[int, tuple[tuple[str, str], ...]]
"""A station stream's version, and the station visits recorded in it up to that version
(submission id, team id), in order."""


@dataclass
class _Known:
    """What the intake knows of the database between batches: the missions whose gate
    row exists, and each station stream's visits as of a version (a stream whose head is
    at that version holds exactly those). A batch learns into a fresh one, merged only
    once its transaction has committed."""

    gates: set[str] = field(default_factory=set)
    visits: dict[str, _Visits] = field(default_factory=dict)

    def merge(self, learned: _Known) -> None:
        self.gates |= learned.gates
        self.visits.update(learned.visits)


@dataclass
class _Request:
    mission_id: str
    items: list[_Item]
    metadata: EventMetadata
    done: asyncio.Future[list[Receipt]] = field(repr=False)


@dataclass
class _Cached:
    mission: Mission
    stations: dict[str, PollingStation]
    loaded_at: float
    context: IntakeContext
    forms: list[FormDefinition] = field(default_factory=list)


class Intake:
    """Admits, batches and records submissions (one per process: the API's, or the CLI's)."""

    def __init__(
        self,
        store: EventStore,
        *,
        flushers: int = 2,
        max_batch: int = 500,
        queue_size: int = 20_000,
        context_seconds: float = 1.0,
        idle_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.context_seconds = context_seconds
        self.idle_seconds = idle_seconds
        self._flushers = flushers
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._cache: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._known = _Known()
        self._stopped = False
        self.pending = 0
        """Requests admitted and waiting for their answer (queued, or in a batch being
        written): the intake's backlog."""
        self.isolated_batches = 0
        """Batches split to isolate a request whose data the event store would not hold
        (a half split again counts again). Each split follows a rolled-back transaction:
        what one sender's bad data costs the others is a delay, never a refusal."""

    async def __aenter__(self) -> Intake:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._flush_forever(), name=f"intake-flusher-{n}")
                for n in range(self._flushers)
            ]

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        await self._queue.join()
        await self._stop_flushers()

    async def _stop_flushers(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- submitting -------------------------------------------------------------------------

    async def submit(
        self,
        mission_id: str,
        submissions: Sequence[AnySubmission],
        *,
        actor: str,
        request_id: str | None = None,
    ) -> list[Receipt]:
        """Record ``submissions`` for ``mission_id``: their receipts in order, once
        committed; or ``SubmissionRefused`` naming every problem, with nothing written."""
        self.start()
        earlier, items = await self._prepare(mission_id, submissions)
        recorded: dict[str, Receipt] = {}
        if items:
            request = _Request(
                mission_id=mission_id,
                items=items,
                metadata=EventMetadata(
                    actor=actor,
                    command_type="submit_report",
                    correlation_id=request_id,
                ),
                done=asyncio.get_running_loop().create_future(),
            )
            if self._stopped:
                raise IntakeUnavailable("the intake has stopped; nothing was recorded")
            self.pending += 1
            try:
                await self._queue.put(request)
                if self._stopped:  # stopped while this request was queued
                    _fail([request], asyncio.CancelledError("the intake stopped"))
                recorded = {r.submission_id: r for r in await request.done}
            finally:
                self.pending -= 1
        receipts = {
            **{sid: found.receipt for sid, found in earlier.items()},
            **recorded,
        }
        return [receipts[s.submission_id] for s in submissions]

    async def check(self, mission_id: str, submissions: Sequence[AnySubmission]) -> list[Report]:
        """What ``submit`` would record now, or ``SubmissionRefused`` as it would refuse;
        nothing is recorded. A report sent before, the same, would be answered with its
        receipt and records nothing; another under a used id is refused."""
        _, items = await self._prepare(mission_id, submissions)
        earlier = await self._earlier(mission_id, {i.submission.submission_id for i in items})
        problems, reports = [], []
        for item in items:
            found = earlier.get(item.submission.submission_id)
            if found is None:
                reports.append(item.report)
                continue
            try:
                is_resubmission(found.report, item.submission)
            except DomainError as reused:
                problems.append(_problem(submissions, item.submission, reused))
        if problems:
            raise SubmissionRefused(problems)
        return reports

    async def _prepare(
        self, mission_id: str, submissions: Sequence[AnySubmission]
    ) -> tuple[dict[str, _Earlier], list[_Item]]:
        """The submissions the rules admit, to be written (the writer answers those already
        recorded with their receipts); and the receipts of those the rules refuse only
        because they were recorded before the mission moved on (a resend after election
        day closed). Any other refusal refuses the request."""
        if not submissions:
            raise ValueError("a request carries at least one submission")
        received_at = datetime.now(UTC)
        unique = _one_per_id(submissions)
        at: dict[str, int] = {}
        for n, s in enumerate(submissions):
            at.setdefault(s.submission_id, n)
        corrected = await self._corrected(mission_id, unique)
        for attempt in (1, 2):
            context = await self.context(mission_id, refresh=attempt == 2)
            refused: list[tuple[AnySubmission, DomainError]] = []
            items: list[_Item] = []
            for submission in unique:
                try:
                    report = admit(
                        context,
                        submission,
                        corrected=corrected.get(submission.submission_id),
                        conditions=CONDITIONS,
                    )
                except DomainError as error:
                    refused.append((submission, error))
                    continue
                items.append(
                    _Item(
                        submission,
                        report,
                        content_sha256(submission),
                        received_at,
                        _event_id(mission_id, submission.submission_id),
                        at[submission.submission_id],
                    )
                )
            if not refused:
                return {}, items
        earlier = await self._earlier(mission_id, {s.submission_id for s, _ in refused})
        problems = []
        for submission, rule_broken in refused:
            found = earlier.get(submission.submission_id)
            if found is None:
                problems.append(_problem(submissions, submission, rule_broken))
                continue
            try:
                is_resubmission(found.report, submission)
            except DomainError as reused:
                problems.append(_problem(submissions, submission, reused))
        if problems:
            raise SubmissionRefused(problems)
        return earlier, items

    async def _earlier(self, mission_id: str, ids: set[str]) -> dict[str, _Earlier]:
        """The receipts of those of ``ids`` the mission holds, each with the correction
        that replaces it, if one does."""
        async with self.store.connection() as conn, _indexed_transaction(conn):
            rows = await conn.fetch(
                f"SELECT {_RECEIPT_COLUMNS}, (SELECT c.submission_id FROM intake_receipts AS c "
                "WHERE c.mission_id = r.mission_id AND c.corrects = r.submission_id LIMIT 1) "
                "AS corrected_by FROM intake_receipts AS r WHERE event_id = ANY($1::uuid[])",
                [_event_id(mission_id, i) for i in sorted(ids)],
            )
        return {r["submission_id"]: _Earlier.of(r) for r in rows}

    async def _corrected(
        self, mission_id: str, submissions: list[AnySubmission]
    ) -> dict[str, EarlierReport]:
        """The report each correction of ``submissions`` replaces, by the correction's
        submission id: one stored, or one sent earlier in the same request (never the
        correction itself, nor one that comes after it: corrections do not go round)."""
        wanted = {s.corrects for s in submissions if s.corrects is not None}
        if not wanted:
            return {}
        stored = await self._earlier(mission_id, wanted)
        found: dict[str, EarlierReport] = {}
        sent: dict[str, EarlierReport] = {}
        claimed: dict[str, str] = {}  # corrected id -> the request's first correction of it
        for s in submissions:
            if s.corrects is not None:
                earlier = stored.get(s.corrects)
                report = earlier.report if earlier is not None else sent.get(s.corrects)
                if report is not None:
                    first = claimed.setdefault(s.corrects, s.submission_id)
                    if report.corrected_by is None and first != s.submission_id:
                        report = report.model_copy(update={"corrected_by": first})
                    found[s.submission_id] = report
            if s.submission_id not in stored:  # a report and its correction sent together
                sent[s.submission_id] = EarlierReport(
                    submission_id=s.submission_id,
                    kind=s.kind,
                    station_id=s.station_id,
                    team_id=s.team_id,
                    content_sha256=content_sha256(s),
                )
        return found

    # -- what the rules need to know -----------------------------------------------------------

    async def mission(self, mission_id: str) -> Mission:
        """The mission as its stream says it is (cached like ``context``)."""
        return (await self._cached(mission_id)).mission

    async def context(self, mission_id: str, *, refresh: bool = False) -> IntakeContext:
        """The mission as its stream says it is, with its stations: cached for
        ``context_seconds``, and read again (only what is new) when asked to."""
        return (await self._cached(mission_id, refresh=refresh)).context

    async def _cached(self, mission_id: str, *, refresh: bool = False) -> _Cached:
        lock = self._loading.setdefault(mission_id, asyncio.Lock())
        async with lock:
            now = asyncio.get_running_loop().time()
            cached = self._cache.get(mission_id)
            if cached is None or refresh or now - cached.loaded_at > self.context_seconds:
                cached = await self._load(mission_id, cached, now)
                self._cache[mission_id] = cached
            return cached

    async def _load(self, mission_id: str, cached: _Cached | None, now: float) -> _Cached:
        mission = cached.mission if cached else Mission()
        async with self.store.connection() as conn:
            data = await read_stream_data_on(conn, mission_id, from_version=mission.version + 1)
            stations = cached.stations if cached else {}
            count = await conn.fetchval(
                "SELECT count(*) FROM polling_stations WHERE mission_id = $1", mission_id
            )
            if count != len(stations):
                stations = await _stations_on(conn, mission_id)
            forms = cached.forms if cached else []
            if await assigned_count_on(conn, mission_id) != len(forms):
                forms = [s.form for s in await assigned_forms_on(conn, mission_id)]
        mission = fold((load_event_json(d) for d in data), mission)
        context = IntakeContext.of(mission, stations.values(), forms)
        return _Cached(mission, stations, now, context, forms)

    # -- writing -----------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        """Write batches on a connection held from one batch to the next while requests
        keep coming (no pool round trips between them), given back after
        ``idle_seconds`` without any; a connection that failed is given back at once."""
        held = contextlib.AsyncExitStack()
        session: _Session | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_seconds if session else None):
                        batch = await self._next_batch()
                except TimeoutError:
                    if session is not None:
                        await session.end()
                    session = None
                    await held.aclose()
                    continue
                try:
                    if session is None:
                        session = _Session(await held.enter_async_context(self.store.connection()))
                    if not await self._write_with_retries(session, batch):
                        session = None
                        await held.aclose()
                except asyncio.CancelledError:
                    # Stopped mid-write: the transaction may or may not have committed, so
                    # the senders are told nothing was acknowledged; sent again, a recorded
                    # report is answered with its receipt.
                    _fail(batch, asyncio.CancelledError("the intake stopped"))
                    raise
                except Exception as error:  # no connection to be had
                    log.error("intake batch failed", error=str(error), requests=len(batch))
                    _fail(batch, error)
                    session = None
                    await held.aclose()
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            if session is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await session.end()
            await held.aclose()

    async def _next_batch(self) -> list[_Request]:
        """Every request waiting, up to ``max_batch`` submissions, once there is one."""
        batch = [await self._queue.get()]
        size = len(batch[0].items)
        while size < self.max_batch and not self._queue.empty():
            request = self._queue.get_nowait()
            batch.append(request)
            size += len(request.items)
        return batch

    async def abort(self) -> None:
        """Stop now (a crash, as far as senders can tell): every request not yet
        answered fails with ``IntakeUnavailable`` and may be sent again."""
        self._stopped = True
        await self._stop_flushers()
        while not self._queue.empty():
            request = self._queue.get_nowait()
            _fail([request], asyncio.CancelledError("the intake stopped"))
            self._queue.task_done()

    async def _write_with_retries(
        self, session: _Session, batch: list[_Request], attempts: int = 3
    ) -> bool:
        """Write ``batch`` and answer its senders; False when the session's connection
        failed (the senders not answered yet are told nothing was recorded) and should
        not be used again.

        A conflict with another writer (a unique violation: another process recorded one
        of these ids; a deadlock; a serialization failure) is retried, up to ``attempts``
        times, then answered ``IntakeUnavailable``. A failure caused by the batch's data
        (``_is_data_error``), which no retry changes, is rolled back and the requests are
        written apart (``_isolate``), so that only the request at fault is refused. Any
        other failure answers every sender ``IntakeUnavailable``: the connection or the
        server is gone (whether a COMMIT in flight took effect cannot be told, and a
        resend is answered with its receipt if it did), or the server refuses the
        statements themselves, which no sender can help."""
        for attempt in range(1, attempts + 1):
            learned = _Known()
            try:
                await session.begin()
                outcomes = await _write_on(session.conn, batch, self._known, learned)
                await session.commit()
            except _CONFLICTS as error:
                # Another process recorded one of these submission ids meanwhile: the next
                # attempt finds its receipt.
                log.warning("intake batch retried", attempt=attempt, error=str(error))
                try:
                    await session.end()
                except Exception as gone:
                    _fail(batch, gone)
                    return False
                if attempt == attempts:
                    _fail(batch, error)
                    return True
                continue
            except Exception as error:
                if not is_data_error(error):  # nor the connection, then, to be used again
                    log.error("intake batch failed", error=str(error), requests=len(batch))
                    _fail(batch, error)
                    return False
                try:
                    await session.end()
                except Exception as gone:
                    _fail(batch, gone)
                    return False
                return await self._isolate(session, batch, error)
            self._known.merge(learned)
            for request, outcome in zip(batch, outcomes, strict=True):
                if not request.done.done():
                    if isinstance(outcome, BaseException):
                        request.done.set_exception(outcome)
                    else:
                        request.done.set_result(outcome)
            return True
        return True

    async def _isolate(self, session: _Session, batch: list[_Request], error: Exception) -> bool:
        """Answer the requests of ``batch``, whose transaction failed on its data
        (``error``, rolled back): a request alone is refused (``_refuse``); more are
        split in halves, each written in its own transaction and split again while it
        fails, so that one request at fault among n costs about 2·log2(n) transactions
        and every other request is recorded. The halves are written in the batch's
        order, which stays the order of commits and acknowledgements. False when the
        connection failed meanwhile (the senders not answered yet are told nothing was
        recorded)."""
        if len(batch) == 1:
            return await self._refuse(session, batch[0], error)
        self.isolated_batches += 1
        log.info(
            "intake batch split to isolate a request the event store refused",
            requests=len(batch),
            sqlstate=_sqlstate(error),
        )
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            if not await self._write_with_retries(session, part):
                _fail(batch, ConnectionError("the connection to the event store failed"))
                return False
        return True

    async def _refuse(self, session: _Session, request: _Request, error: Exception) -> bool:
        """Refuse ``request``, whose transaction failed alone on its data (``error``, rolled
        back): a value the event store does not hold (a check, a range, an encoding),
        which sending it again would not change. Its sender gets ``SubmissionRefused``
        with rule ``invalid_input`` (a 422 from the API), naming the reports that fail
        when written alone (each tried in a transaction rolled back, for a request of at
        most ``_PROBED`` reports), else the request whole. What the database said (its
        message, the constraint, the values) is logged for operators, never sent: it
        describes the schema, not what the observer can change. False when the
        connection failed while the reports were tried (the request is refused all the
        same: it failed alone)."""
        usable = True
        faulty = request.items if len(request.items) == 1 else []
        if 1 < len(request.items) <= _PROBED:
            try:
                faulty = [i for i in request.items if await self._fails_alone(session, request, i)]
            except Exception as gone:
                log.error("intake connection failed", error=str(gone))
                faulty, usable = [], False
        log.warning(
            "intake request refused: the event store cannot hold its data",
            mission_id=request.mission_id,
            submission_ids=[i.submission.submission_id for i in request.items],
            faulty=[i.submission.submission_id for i in faulty],
            sqlstate=_sqlstate(error),
            error=f"{type(error).__name__}: {error}",
        )
        problems = [
            Problem(
                index=i.index,
                submission_id=i.submission.submission_id,
                rule=INVALID_INPUT,
                message=f"the event store cannot hold the data of report "
                f"{i.submission.submission_id!r}; nothing of this request was recorded",
            )
            for i in faulty
        ] or [
            Problem(
                index=request.items[0].index,
                submission_id=request.items[0].submission.submission_id,
                rule=INVALID_INPUT,
                message=f"the event store cannot hold the data of this request's "
                f"{len(request.items)} reports; nothing of this request was recorded",
            )
        ]
        if not request.done.done():
            request.done.set_exception(SubmissionRefused(problems))
        return usable

    async def _fails_alone(self, session: _Session, request: _Request, item: _Item) -> bool:
        """Whether ``item``, written as its request's only report in a transaction then
        rolled back (nothing is recorded), fails on its data. A conflict with another
        writer tells nothing (False); any other failure is raised (the connection cannot
        be trusted)."""
        failed = False
        try:
            await session.begin()
            await _write_on(session.conn, [replace(request, items=[item])], self._known, _Known())
        except Exception as error:
            if not (is_data_error(error) or isinstance(error, _CONFLICTS)):
                raise
            failed = is_data_error(error)
        await session.end()
        return failed

    # -- stations ------------------------------------------------------------------------------

    async def check_stations(
        self, mission_id: str, stations: Sequence[PollingStation]
    ) -> PollingStationsRegistered | None:
        """What ``register_stations`` would record now; nothing is recorded."""
        context = await self._stations_open(mission_id)
        async with self.store.connection() as conn:
            return register_stations(
                await _stations_on(conn, mission_id), stations, host_country=context.host_country
            )

    async def _stations_open(self, mission_id: str) -> IntakeContext:
        context = await self.context(mission_id, refresh=True)
        if context.stage is None:
            raise e.MissionNotRegistered(f"no mission {mission_id!r} is registered")
        if context.stage in (Stage.closed, Stage.cancelled):
            raise e.MissionClosed(f"mission {mission_id!r} is {context.stage.value}")
        return context

    async def register_stations(
        self, mission_id: str, stations: Sequence[PollingStation], *, actor: str
    ) -> StationsRegistered:
        """Register polling stations (an event in ``<mission>/stations`` and their rows, in
        one transaction); stations registered already, unchanged, are skipped."""
        context = await self._stations_open(mission_id)
        appended: list[AppendResult] = []
        async with self.store.connection() as conn, conn.transaction():
            heads = await lock_heads_on(conn, [stations_stream(mission_id)])
            registered = await _stations_on(conn, mission_id)
            event = register_stations(registered, stations, host_country=context.host_country)
            if event is not None:
                new = NewEvent.of(
                    event,
                    event_id=uuid.uuid4(),
                    occurred_at=datetime.now(UTC),
                    metadata=EventMetadata(actor=actor, command_type="register_stations"),
                )
                appended = await append_at_heads_on(
                    conn, heads, [(stations_stream(mission_id), [new])]
                )
                await conn.executemany(
                    "INSERT INTO polling_stations (mission_id, station_id, locality, name, "
                    "time_zone) VALUES ($1, $2, $3, $4, $5)",
                    [
                        (mission_id, s.station_id, s.locality, s.name, s.time_zone)
                        for s in event.stations
                    ],
                )
        added = len(event.stations) if event else 0
        return StationsRegistered(
            mission_id=mission_id,
            added=added,
            registered=len(registered) + added,
            event_ids=[new.event_id] if appended else [],
            global_positions=[p for a in appended for p in a.global_positions],
        )


_RECEIPT_COLUMNS = (
    "submission_id, kind, station_id, team_id, content_sha256, event_id, stream_id, "
    "stream_version, global_position, received_at"
)


# A batch's locks and lookups in one statement, in this order (a UNION ALL runs its
# parts one after the other): the missions' gates FOR SHARE, the stations' heads FOR
# UPDATE (in stream id order), and the receipts of its submissions, by event id, which
# names (mission, submission id) one to one.
_LOCK_AND_LOOK_UP = """
    WITH gates AS (
        SELECT mission_id, closed_at FROM intake_gates WHERE mission_id = ANY($1::text[])
        ORDER BY mission_id FOR SHARE
    ), heads AS (
        SELECT stream_id, version, head_hash FROM streams WHERE stream_id = ANY($3::text[])
        ORDER BY stream_id FOR UPDATE
    )
    SELECT 'gate' AS found, mission_id, closed_at, NULL::text AS stream_id,
           NULL::bigint AS version, NULL::text AS head_hash, NULL::text AS submission_id,
           NULL::text AS kind, NULL::text AS station_id, NULL::text AS team_id,
           NULL::text AS content_sha256, NULL::uuid AS event_id,
           NULL::bigint AS stream_version, NULL::bigint AS global_position,
           NULL::timestamptz AS received_at
    FROM gates
    UNION ALL
    SELECT 'head', NULL, NULL, stream_id, version, head_hash,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM heads
    UNION ALL
    SELECT 'receipt', mission_id, NULL, stream_id, NULL, NULL, submission_id, kind,
           station_id, team_id, content_sha256, event_id, stream_version, global_position,
           received_at
    FROM intake_receipts WHERE event_id = ANY($2::uuid[])
"""

# The receipts, written by the statement that appends their events (``Alongside``): the
# events' places come from the rows just inserted.
_INSERT_RECEIPTS = (
    "INSERT INTO intake_receipts (mission_id, submission_id, kind, station_id, team_id, "
    "phases, corrects, content_sha256, event_id, stream_id, stream_version, "
    "global_position, received_at) "
    "SELECT r.m, r.s, r.k, r.st, r.t, string_to_array(r.p, ','), r.c, r.h, r.ev, "
    "i.stream_id, i.stream_version, i.global_position, r.ra "
    "FROM unnest({0}::text[], {1}::text[], {2}::text[], {3}::text[], {4}::text[], "
    "{5}::text[], {6}::text[], {7}::text[], {8}::uuid[], {9}::timestamptz[]) "
    "AS r(m, s, k, st, t, p, c, h, ev, ra) JOIN inserted AS i ON i.event_id = r.ev"
)


@dataclass(frozen=True)
class _Earlier:
    report: EarlierReport
    receipt: Receipt

    @classmethod
    def of(cls, row: asyncpg.Record) -> _Earlier:
        return cls(
            EarlierReport(
                submission_id=row["submission_id"],
                kind=row["kind"],
                station_id=row["station_id"],
                team_id=row["team_id"],
                content_sha256=row["content_sha256"],
                corrected_by=row.get("corrected_by"),
            ),
            Receipt(
                submission_id=row["submission_id"],
                status="duplicate",
                event_id=row["event_id"],
                stream_id=row["stream_id"],
                stream_version=row["stream_version"],
                global_position=row["global_position"],
                received_at=row["received_at"],
            ),
        )


def _one_per_id(submissions: Sequence[AnySubmission]) -> list[AnySubmission]:
    """The request's submissions, each id once: the same submission twice is one; two
    different ones under one id are refused."""
    seen: dict[str, AnySubmission] = {}
    for s in submissions:
        first = seen.setdefault(s.submission_id, s)
        if first is not s and content_sha256(first) != content_sha256(s):
            raise SubmissionRefused(
                [
                    _problem(
                        submissions,
                        s,
                        e.SubmissionIdReused(
                            f"submission id {s.submission_id!r} is used twice in this "
                            f"request, for different reports"
                        ),
                    )
                ]
            )
    return list(seen.values())


def _problem(
    submissions: Sequence[AnySubmission], submission: AnySubmission, error: DomainError
) -> Problem:
    return Problem(
        index=next(i for i, s in enumerate(submissions) if s is submission),
        submission_id=submission.submission_id,
        rule=error.rule,
        message=error.message,
    )


def _fail(batch: list[_Request], error: BaseException) -> None:
    # The cause stays in the log (the callers log it); senders learn what to do.
    reason = (
        "the intake stopped"
        if isinstance(error, asyncio.CancelledError)
        else "the event store is unavailable"
    )
    for request in batch:
        if not request.done.done():
            request.done.set_exception(
                IntakeUnavailable(f"the submissions were not recorded ({reason}); send them again")
            )


class IntakeUnavailable(Exception):
    """The event store did not take the batch: nothing of it was recorded; send it again."""


async def registered_stations(store: EventStore, mission_id: str) -> list[PollingStation]:
    """The polling stations registered for ``mission_id``, by id."""
    async with store.connection() as conn:
        found = await _stations_on(conn, mission_id)
    return [found[k] for k in sorted(found)]


async def _stations_on(conn: Connection, mission_id: str) -> dict[str, PollingStation]:
    rows = await conn.fetch(
        "SELECT station_id, locality, name, time_zone FROM polling_stations WHERE mission_id = $1",
        mission_id,
    )
    return {r["station_id"]: PollingStation.model_validate(dict(r), context=RECORDED) for r in rows}


@contextlib.asynccontextmanager
async def _indexed_transaction(conn: Connection) -> AsyncIterator[None]:
    """A transaction of the intake's, opened in the same round trip as its one setting:
    every lookup in it is by an indexed key, and a plan made from statistics taken while
    the tables were nearly empty (early on election day, or with autovacuum behind) would
    read whole tables instead, batch after batch, slower as reports accumulate."""
    await conn.execute(_BEGIN)
    try:
        yield
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


_BEGIN = "BEGIN; SET LOCAL enable_seqscan = off"


@dataclass
class _Session:
    """A flusher's connection, with its transactions opened the way
    ``_indexed_transaction`` opens one; a batch's COMMIT opens the next batch's
    transaction in the same round trip (a transaction that has run no statement holds
    no snapshot and no lock), so that a batch is three round trips: the lookups, the
    write, and COMMIT."""

    conn: Connection
    begun: bool = False

    async def begin(self) -> None:
        if not self.begun:
            await self.conn.execute(_BEGIN)
            self.begun = True

    async def commit(self) -> None:
        """COMMIT (when this returns, the batch is durable) and BEGIN the next."""
        self.begun = False
        await self.conn.execute(f"COMMIT; {_BEGIN}")
        self.begun = True

    async def end(self) -> None:
        """Roll back what is open (a failed batch, or the next one's empty transaction)."""
        if self.begun or self.conn.is_in_transaction():
            self.begun = False
            await self.conn.execute("ROLLBACK")


INVALID_INPUT = "invalid_input"
"""The rule of a report refused because the event store cannot hold its data."""

_PROBED = 16
"""The most reports of a refused request tried one by one to name those at fault: each
try is a transaction, and a device sends a few reports a request."""

_CONFLICTS = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
"""Failures caused by another writer at the same time: the same batch, written again,
may pass."""


def _sqlstate(error: BaseException) -> str | None:
    return error.sqlstate if isinstance(error, asyncpg.PostgresError) else None


def _refusal(submission_id: str, rule: str, message: str) -> SubmissionRefused:
    return SubmissionRefused(
        [Problem(index=0, submission_id=submission_id, rule=rule, message=message)]
    )


async def _write_on(
    conn: Connection, batch: list[_Request], known: _Known, learned: _Known
) -> list[list[Receipt] | BaseException]:
    """One batch in the caller's transaction: each request's receipts, or why nothing of
    it was written (its mission's intake closed, or one of its ids taken meanwhile by a
    different report). Every lookup is by a key only one index serves, so a plan the
    server made early in the day, on nearly empty tables, stays a lookup."""
    outcomes: list[list[Receipt] | BaseException | None] = [None] * len(batch)
    missions = sorted({r.mission_id for r in batch})
    unknown = [m for m in missions if m not in known.gates]
    if unknown:
        await conn.execute(
            "INSERT INTO intake_gates (mission_id) SELECT unnest($1::text[]) "
            "ON CONFLICT DO NOTHING",
            unknown,
        )
        learned.gates.update(unknown)
    replaced = await _corrections_on(conn, batch)
    streams = sorted(
        {station_stream(r.mission_id, i.submission.station_id) for r in batch for i in r.items}
    )
    found = await conn.fetch(
        _LOCK_AND_LOOK_UP, missions, [i.event_id for r in batch for i in r.items], streams
    )
    closed = {r["mission_id"] for r in found if r["found"] == "gate" and r["closed_at"]}
    heads = {
        r["stream_id"]: Head(r["version"], r["head_hash"]) for r in found if r["found"] == "head"
    }
    for n, request in enumerate(batch):
        if request.mission_id in closed:
            outcomes[n] = _refusal(
                request.items[0].submission.submission_id,
                e.IntakeNotOpen.rule,
                f"election day of mission {request.mission_id!r} is closed: its intake has "
                "been drained and counted",
            )

    # Ids recorded since the requests were admitted (by another process): the same
    # report is answered with its receipt, a different one refuses its whole request.
    taken = {
        (r["mission_id"], r["submission_id"]): _Earlier.of(r)
        for r in found
        if r["found"] == "receipt"
    }
    claimed = {key: found.report.content_sha256 for key, found in taken.items()}
    for n, request in enumerate(batch):
        if outcomes[n] is not None:
            continue
        clash = next(
            (
                i
                for i in request.items
                if claimed.get((request.mission_id, i.submission.submission_id), i.sha256)
                != i.sha256
            ),
            None,
        )
        if clash is not None:
            sid = clash.submission.submission_id
            stored = taken.get((request.mission_id, sid))
            try:
                if stored is not None:
                    is_resubmission(stored.report, clash.submission)
                raise e.SubmissionIdReused(
                    f"submission id {sid!r} was sent at the same time for a different report; "
                    "send a change as a new submission that corrects it"
                )
            except DomainError as error:
                outcomes[n] = _refusal(sid, error.rule, error.message)
            continue
        for i in request.items:
            claimed.setdefault((request.mission_id, i.submission.submission_id), i.sha256)

    # A report is corrected once: a correction of a report another correction replaces
    # (recorded meanwhile, or earlier in this batch) refuses its whole request.
    for n, request in enumerate(batch):
        if outcomes[n] is not None:
            continue
        for item in request.items:
            corrects = item.submission.corrects
            if corrects is None:
                continue
            first = replaced.setdefault(
                (request.mission_id, corrects), item.submission.submission_id
            )
            if first != item.submission.submission_id:
                sid = item.submission.submission_id
                outcomes[n] = _refusal(
                    sid,
                    e.AlreadyCorrected.rule,
                    f"correction {sid!r} corrects report {corrects!r}, which correction "
                    f"{first!r} already replaces: correct that one instead",
                )
                break

    live = [n for n in range(len(batch)) if outcomes[n] is None]
    new: dict[tuple[str, str], tuple[int, _Item]] = {}
    for n in live:
        for item in batch[n].items:
            key = (batch[n].mission_id, item.submission.submission_id)
            if key not in taken:
                new.setdefault(key, (n, item))
    recorded = (
        await _append_reports(conn, batch, list(new.values()), heads, known, learned) if new else {}
    )

    final: list[list[Receipt] | BaseException] = []
    for n, request in enumerate(batch):
        outcome = outcomes[n]
        if outcome is None:
            answers = []
            for item in request.items:
                key = (request.mission_id, item.submission.submission_id)
                if key in taken:
                    answers.append(taken[key].receipt)
                elif new[key][0] == n:
                    answers.append(recorded[key])
                else:  # an earlier request of this batch recorded it
                    answers.append(recorded[key].model_copy(update={"status": "duplicate"}))
            outcome = answers
        final.append(outcome)
    return final


async def _corrections_on(conn: Connection, batch: list[_Request]) -> dict[tuple[str, str], str]:
    """The corrections recorded of the reports the batch's corrections name, by (mission,
    corrected report): each such report is locked for the transaction first (a lock of
    its own, in key order, before any row lock), so that two batches correcting one
    report take turns and the second sees the first's. No round trip without one."""
    wanted = sorted(
        {
            (r.mission_id, i.submission.corrects)
            for r in batch
            for i in r.items
            if i.submission.corrects
        }
    )
    if not wanted:
        return {}
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 7001)) FROM unnest($1::text[]) AS k",
        [f"{m}/{c}" for m, c in wanted],
    )
    rows = await conn.fetch(
        "SELECT mission_id, corrects, submission_id FROM intake_receipts "
        "WHERE (mission_id, corrects) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [m for m, _ in wanted],
        [c for _, c in wanted],
    )
    return {(r["mission_id"], r["corrects"]): r["submission_id"] for r in rows}


async def _station_visits(
    conn: Connection, heads: dict[str, Head], pairs: list[tuple[str, str]], known: _Known
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Each station's visits so far, under the stations' locks (no other writer adds to
    them until commit): as known when its head has not moved since, else read."""
    visits: dict[tuple[str, str], list[tuple[str, str]]] = {}
    unread: list[tuple[str, str]] = []
    for pair in pairs:
        version = heads[station_stream(*pair)].version
        seen = known.visits.get(station_stream(*pair))
        if version == 0:
            visits[pair] = []
        elif seen is not None and seen[0] == version:
            visits[pair] = list(seen[1])
        else:
            unread.append(pair)
    if unread:
        # Planned for these keys: a plan kept from emptier tables would read every
        # receipt of the mission through another of its (mission_id, ...) indexes.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        for row in await conn.fetch(
            "SELECT mission_id, station_id, submission_id, team_id FROM intake_receipts "
            "WHERE kind = 'station_visit' AND (mission_id, station_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY global_position",
            [m for m, _ in unread],
            [s for _, s in unread],
        ):
            visits.setdefault((row["mission_id"], row["station_id"]), []).append(
                (row["submission_id"], row["team_id"])
            )
        for pair in unread:
            visits.setdefault(pair, [])
    return visits


def _receipt_columns(batch: list[_Request], new: list[tuple[int, _Item]]) -> list[list[Any]]:
    """``_INSERT_RECEIPTS``' arguments: one list per column."""
    rows = [
        (
            batch[n].mission_id,
            i.submission.submission_id,
            i.submission.kind,
            i.submission.station_id,
            i.submission.team_id,
            ",".join(p.value for p in phases(i.submission)),
            i.submission.corrects,
            i.sha256,
            i.event_id,
            i.received_at,
        )
        for n, i in new
    ]
    return [list(column) for column in zip(*rows, strict=True)]


async def _append_reports(
    conn: Connection,
    batch: list[_Request],
    new: list[tuple[int, _Item]],
    heads: dict[str, Head],
    known: _Known,
    learned: _Known,
) -> dict[tuple[str, str], Receipt]:
    """Append each report to its station's stream (a conflict flag after it when another
    team reported that station before) and record the receipts, in one statement; return
    the receipts. ``heads`` are the stations' locked heads: a station's first report
    creates its stream here."""
    pairs = sorted({(batch[n].mission_id, i.submission.station_id) for n, i in new})
    first = [station_stream(*p) for p in pairs if station_stream(*p) not in heads]
    if first:
        heads = {**heads, **await lock_heads_on(conn, first)}
    visits = await _station_visits(conn, heads, pairs, known)

    appends: list[tuple[str, list[NewEvent]]] = []
    flags: list[bool] = []
    for n, item in new:
        request, s = batch[n], item.submission
        metadata = request.metadata.model_copy(
            update={"command_id": s.submission_id, "command_type": f"submit_{s.kind}"}
        )
        events = [
            NewEvent.of(
                item.report,
                event_id=item.event_id,
                occurred_at=item.received_at,
                metadata=metadata,
            )
        ]
        station_visits = visits[(request.mission_id, s.station_id)]
        flagged = conflict(s.station_id, station_visits, item.report)
        if flagged is not None:
            events.append(
                NewEvent.of(
                    flagged,
                    event_id=uuid.uuid5(item.event_id, "conflict"),
                    occurred_at=item.received_at,
                    metadata=metadata,
                )
            )
        if s.kind == "station_visit":
            station_visits.append((s.submission_id, s.team_id))
        appends.append((station_stream(request.mission_id, s.station_id), events))
        flags.append(flagged is not None)
    results = await append_at_heads_on(
        conn,
        heads,
        appends,
        alongside=Alongside(_INSERT_RECEIPTS, _receipt_columns(batch, new)),
    )
    tips = {r.stream_id: r.last_version for r in results}
    for pair in pairs:
        stream = station_stream(*pair)
        learned.visits[stream] = (tips[stream], tuple(visits[pair]))

    recorded: dict[tuple[str, str], Receipt] = {}
    for (n, item), result, raised in zip(new, results, flags, strict=True):
        # Built, not validated: every field is the store's or the admitted report's.
        recorded[(batch[n].mission_id, item.submission.submission_id)] = Receipt.model_construct(
            submission_id=item.submission.submission_id,
            status="recorded",
            event_id=result.event_ids[0],
            stream_id=result.stream_id,
            stream_version=result.first_version,
            global_position=result.global_positions[0],
            received_at=item.received_at,
            conflict=raised,
        )
    return recorded
