"""The live feed on a real PostgreSQL server, when its LISTEN connection is lost.

Feeds here fall back to re-reading only every 60 s, so a delivery within seconds comes
from a notification, the short poll while disconnected, or the wake-up after reconnecting,
never from the fallback."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import api.feed
from api.feed import EventFeed
from cli.stack import free_port
from eventstore.models import EventMetadata, NewEvent, RecordedEvent
from eventstore.store import EventStore

DELIVERY = 5.0  # seconds: generous for a loaded CI machine, far below the fallback


class WatchedStore(EventStore):
    """The store, telling the test when a subscriber has read what there was: the
    subscriber then waits for a wake-up, which is the moment a test means to act in."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.read = asyncio.Event()

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        events = await super().read_stream(
            stream_id, from_version=from_version, to_version=to_version
        )
        self.read.set()
        return events


class RecordedLog:
    """Stands in for the feed's structlog logger: what it said, at which level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def record(event: str, **fields: Any) -> None:
            self.lines.append((level, event, fields))

        return record

    def at(self, *levels: str) -> list[str]:
        return [event for level, event, _ in self.lines if level in levels]


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> RecordedLog:
    recorded = RecordedLog()
    monkeypatch.setattr(api.feed, "log", recorded)
    return recorded


def noted(n: int) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        event_type="Noted",
        schema_version=1,
        data={"n": n},
        metadata=EventMetadata(actor="tester", command_id=f"cmd-feed-{uuid.uuid4().hex[:8]}"),
        occurred_at=datetime(2021, 1, 10, 8, 30, n, tzinfo=UTC),
    )


async def until(condition: Callable[[], bool]) -> None:
    """Wait, at most ``DELIVERY`` seconds, for what the feed exposes only as a value."""
    async with asyncio.timeout(DELIVERY):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def waiting(
    feed: EventFeed, store: WatchedStore, stream_id: str, after_version: int
) -> AsyncIterator[asyncio.Task[RecordedEvent]]:
    """A subscriber that has read the stream after ``after_version`` and now waits: the
    task is its next event."""
    events = feed.follow(stream_id, after_version=after_version)

    async def next_event() -> RecordedEvent:
        return await anext(events)

    store.read.clear()
    pending = asyncio.create_task(next_event())
    try:
        await asyncio.wait_for(store.read.wait(), DELIVERY)
        yield pending
    finally:
        pending.cancel()
        await asyncio.wait({pending})
        await events.aclose()


async def kill(pool: asyncpg.Pool, pid: int | None) -> None:
    assert pid is not None
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)


_OTHERS: set[asyncio.Task[Any]] = set()


def feed_tasks() -> set[asyncio.Task[Any]]:
    """The feeds' supervising tasks but those running before the test (the session's
    API, say, has a feed of its own)."""
    return {t for t in asyncio.all_tasks() if t.get_name() == "eom-feed-listen"} - _OTHERS


@pytest.fixture(autouse=True)
async def other_feeds() -> None:
    _OTHERS.clear()
    _OTHERS.update(t for t in asyncio.all_tasks() if t.get_name() == "eom-feed-listen")


async def test_feed_recovers_a_killed_listen_connection(
    pool: asyncpg.Pool, database_url: str, logged: RecordedLog
) -> None:
    """The LISTEN backend is terminated: an event appended right after still reaches the
    subscriber within seconds, the feed listens on a new connection, and the next event
    comes by notification again."""
    store = WatchedStore(pool)
    feed = EventFeed(store, database_url, fallback=60)
    await feed.start()
    sid = f"test-feed-{uuid.uuid4().hex[:10]}"
    try:
        async with waiting(feed, store, sid, 0) as pending:
            first_pid = feed.listener_pid
            await kill(pool, first_pid)
            started = time.monotonic()
            await store.append(stream_id=sid, expected_version=0, events=[noted(1)])
            assert (await asyncio.wait_for(pending, DELIVERY)).stream_version == 1
            recovered_in = time.monotonic() - started

        await until(lambda: feed.reconnections == 1)
        assert feed.listener_pid not in (None, first_pid)
        assert not feed.degraded
        assert logged.at("warning") == ["event feed lost its LISTEN connection"]
        assert logged.at("info") == ["event feed listening again"]

        # Connected again, the subscriber waits out the 60 s fallback: only the new
        # connection's notification can bring this one in time.
        async with waiting(feed, store, sid, 1) as pending:
            started = time.monotonic()
            await store.append(stream_id=sid, expected_version=1, events=[noted(2)])
            assert (await asyncio.wait_for(pending, DELIVERY)).stream_version == 2
            notified_in = time.monotonic() - started
        assert notified_in < 1.0, notified_in
        print(f"\ndelivered {recovered_in:.3f}s after the kill, by NOTIFY {notified_in:.3f}s")
    finally:
        await feed.stop()
    assert feed.listener_pid is None
    assert not feed_tasks()


async def test_feed_polls_while_it_cannot_reconnect(
    pool: asyncpg.Pool, database_url: str, logged: RecordedLog
) -> None:
    """While the database cannot be reached for LISTEN, the feed retries with a backoff
    and its subscribers poll at the short interval; once it listens again, it wakes every
    subscriber to read what was appended meanwhile, whose notification nobody heard."""
    store = WatchedStore(pool)
    feed = EventFeed(
        store, database_url, fallback=60, disconnected_poll=0.3, min_backoff=0.05, max_backoff=0.2
    )
    await feed.start()
    sid = f"test-feed-{uuid.uuid4().hex[:10]}"
    unreachable = urlunsplit(urlsplit(database_url)._replace(netloc=f"127.0.0.1:{free_port()}"))
    try:
        async with waiting(feed, store, sid, 0) as pending:
            feed.dsn = unreachable
            store.read.clear()
            await kill(pool, feed.listener_pid)
            # Woken once by the loss, the subscriber reads, then polls: that poll is all
            # that can deliver the next event.
            await asyncio.wait_for(store.read.wait(), DELIVERY)
            assert feed.degraded
            await store.append(stream_id=sid, expected_version=0, events=[noted(1)])
            assert (await asyncio.wait_for(pending, DELIVERY)).stream_version == 1
        await until(lambda: len(logged.at("debug")) >= 2)
        assert feed.reconnections == 0 and feed.degraded

        # Without the short poll, only the wake-up after reconnecting can deliver this.
        feed.disconnected_poll = 60
        async with waiting(feed, store, sid, 1) as pending:
            await store.append(stream_id=sid, expected_version=1, events=[noted(2)])
            feed.dsn = database_url
            assert (await asyncio.wait_for(pending, DELIVERY)).stream_version == 2
        assert feed.reconnections == 1 and not feed.degraded
    finally:
        await feed.stop()
    assert logged.at("warning", "info") == [
        "event feed lost its LISTEN connection",
        "event feed listening again",
    ]
    assert not feed_tasks()


async def test_stop_after_a_kill_ends_cleanly(pool: asyncpg.Pool, database_url: str) -> None:
    """``stop`` right after the connection is lost, while the feed reconnects or backs
    off, ends the reconnecting and leaves no task and no connection behind; twice is fine."""
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    for dsn in (database_url, unreachable):
        feed = EventFeed(EventStore(pool), database_url, fallback=60)
        await feed.start()
        feed.dsn = dsn
        await kill(pool, feed.listener_pid)
        if dsn == unreachable:
            await until(lambda feed=feed: feed.degraded)  # type: ignore[misc]
        await asyncio.wait_for(feed.stop(), DELIVERY)
        await asyncio.wait_for(feed.stop(), DELIVERY)
        assert feed.listener_pid is None and not feed.degraded
        assert not feed_tasks()
