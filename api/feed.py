"""Live events per mission without polling: PostgreSQL ``NOTIFY eom_events, <stream>``
(a trigger on the events table) wakes the subscribers of that stream, which then read
what is new from the store. A missed notification costs at most ``fallback`` seconds.

The LISTEN connection can be lost (the backend terminated, PostgreSQL restarted, the
network cut). The feed notices, reconnects with a bounded backoff, polls at a short
interval meanwhile, and wakes every subscriber once it listens again: notifications sent
while nobody listened are gone, so each subscriber reads what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

import asyncpg
import structlog

from eventstore.models import RecordedEvent
from eventstore.store import EventStore

log = structlog.get_logger("eom.api.feed")
CHANNEL = "eom_events"


class EventFeed:
    """One LISTEN connection for the whole process, shared by every live stream.

    ``start`` connects and listens (and raises if it cannot); from then on a supervising
    task replaces the connection whenever it is lost, until ``stop``. A loss is noticed
    at once when the socket closes (asyncpg's termination listener), and otherwise by a
    ``SELECT 1`` every ``probe`` seconds, which is what catches a silent network cut.
    Reconnection attempts back off from ``min_backoff`` to ``max_backoff`` seconds and go
    on for as long as it takes; while disconnected, subscribers re-read every
    ``disconnected_poll`` seconds instead of every ``fallback``."""

    def __init__(
        self,
        store: EventStore,
        dsn: str,
        *,
        fallback: float = 10.0,
        disconnected_poll: float = 1.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        probe: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.dsn = dsn
        self.fallback = fallback
        self.disconnected_poll = disconnected_poll
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.probe = probe
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._pid: int | None = None
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._reconnections = 0

    @property
    def listener_pid(self) -> int | None:
        """The server pid of the current LISTEN connection; None while there is none."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return None
        return self._pid

    @property
    def reconnections(self) -> int:
        """How many times a lost LISTEN connection has been replaced since ``start``."""
        return self._reconnections

    @property
    def degraded(self) -> bool:
        """Started but without a working LISTEN connection: subscribers are polling."""
        return self._supervisor is not None and self.listener_pid is None

    async def start(self) -> None:
        """Connect and listen, raising if the database cannot be reached; then keep
        listening, across lost connections, until ``stop``."""
        if self._supervisor is not None:
            raise RuntimeError("the event feed is already started")
        self._lost = asyncio.Event()
        self._reconnections = 0
        await self._listen()
        self._supervisor = asyncio.create_task(self._supervise(), name="eom-feed-listen")

    async def stop(self) -> None:
        """Stop reconnecting and close the connection. Safe to call more than once."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            # wait() rather than awaiting the task: its CancelledError is expected, and a
            # cancellation of stop() itself must still propagate.
            await asyncio.wait({supervisor})
        conn, self._conn, self._pid = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=self.timeout)

    async def _listen(self) -> None:
        """A new connection, listening, becomes the current one; on failure nothing is
        left open."""
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
        try:
            conn.add_termination_listener(self._terminated)
            await conn.add_listener(CHANNEL, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._pid = conn, conn.get_server_pid()

    def _terminated(self, conn: object) -> None:
        # Also called for connections the feed closed or gave up on itself: only the
        # current one's loss matters.
        if conn is self._conn:
            self._lost.set()

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for waiter in self._waiters.get(str(payload), ()):
            waiter.set()

    def _wake_all(self) -> None:
        """Every subscriber re-reads its stream, whatever it was told or not."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    async def _supervise(self) -> None:
        """From ``start`` to ``stop``: replace the connection each time it is lost."""
        while True:
            reason = await self._until_lost()
            await self._reconnect(reason)

    async def _until_lost(self) -> str:
        """Wait until the current connection is lost; say how it was noticed."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self.probe)
            conn = self._conn
            if self._lost.is_set() or conn is None or conn.is_closed():
                return "connection closed"
            try:
                await conn.execute("SELECT 1", timeout=self.timeout)
            except Exception as error:
                return f"probe failed: {error!r}"

    async def _reconnect(self, reason: str) -> None:
        """Drop the lost connection and connect again until it works, backing off; one
        line in the log when the loss is noticed and one when listening again (failed
        attempts only at debug level, so an outage does not flood the log)."""
        lost, lost_pid = self._conn, self._pid
        self._conn = self._pid = None
        if lost is not None:
            lost.terminate()
        self._lost.clear()
        log.warning("event feed lost its LISTEN connection", pid=lost_pid, reason=reason)
        # Subscribers waiting out ``fallback`` switch to the short poll now.
        self._wake_all()
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        delay = self.min_backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._listen()
                break
            except Exception as error:
                log.debug("event feed reconnection failed", attempt=attempts, error=str(error))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        self._reconnections += 1
        log.info(
            "event feed listening again",
            pid=self.listener_pid,
            attempts=attempts,
            down_seconds=round(loop.time() - lost_at, 3),
        )
        # What was appended while nobody listened sent notifications to no one.
        self._wake_all()

    @contextlib.contextmanager
    def _subscription(self, stream_id: str) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters[stream_id].add(waiter)
        try:
            yield waiter
        finally:
            self._waiters[stream_id].discard(waiter)
            if not self._waiters[stream_id]:
                del self._waiters[stream_id]

    async def follow(
        self,
        stream_id: str,
        *,
        after_version: int,
        stop_when: Callable[[], Awaitable[bool]] | None = None,
        check_every: float = 5.0,
    ) -> AsyncGenerator[RecordedEvent, None]:
        """Every event of the stream after ``after_version``, then each new one as it
        is appended, until the consumer stops, or until ``stop_when()`` says so: it is
        asked at least every ``check_every`` seconds, events or not (a live stream ends
        once its token has expired or been revoked)."""
        version = after_version
        checked = time.monotonic()
        with self._subscription(stream_id) as waiter:
            while True:
                waiter.clear()
                for event in await self.store.read_stream(stream_id, from_version=version + 1):
                    version = event.stream_version
                    yield event
                if stop_when is not None and time.monotonic() - checked >= check_every:
                    if await stop_when():
                        return
                    checked = time.monotonic()
                wait = self.disconnected_poll if self.degraded else self.fallback
                if stop_when is not None:
                    wait = max(0.0, min(wait, checked + check_every - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), wait)
