"""Live events per mission without polling: PostgreSQL ``NOTIFY eom_events, <stream>``
(a trigger on the events table) wakes the subscribers of that stream, which then read
what is new from the store. A missed notification costs at most ``fallback`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import asyncpg
import structlog

from eventstore.models import RecordedEvent
from eventstore.store import EventStore

log = structlog.get_logger("eom.api.feed")
CHANNEL = "eom_events"


class EventFeed:
    def __init__(self, store: EventStore, dsn: str, *, fallback: float = 10.0) -> None:
        self.store = store
        self.dsn = dsn
        self.fallback = fallback
        self._conn: asyncpg.Connection | None = None
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.add_listener(CHANNEL, self._notified)

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for waiter in self._waiters.get(str(payload), ()):
            waiter.set()

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

    async def follow(self, stream_id: str, *, after_version: int) -> AsyncIterator[RecordedEvent]:
        """Every event of the stream after ``after_version``, then each new one as it
        is appended, until the consumer stops."""
        version = after_version
        with self._subscription(stream_id) as waiter:
            while True:
                waiter.clear()
                for event in await self.store.read_stream(stream_id, from_version=version + 1):
                    version = event.stream_version
                    yield event
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), self.fallback)
