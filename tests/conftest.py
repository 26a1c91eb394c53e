"""Session fixtures: a fresh PostgreSQL database and a Temporal dev server, both real.

PostgreSQL: ``EOM_TEST_DATABASE_URL`` (or ``DATABASE_URL``) if set, else the machine's
server on 127.0.0.1:5432, else an embedded ``pgserver``. Each session creates its own
database and drops it at the end. Temporal: a headless dev server on a free port, unless
``EOM_TEST_TEMPORAL_ADDRESS`` points at one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from api.feed import EventFeed
from api.idempotency import IdempotencyStore
from api.tokens import Role, TokenStore
from cli.stack import (
    free_port,
    start_embedded_postgres,
    start_temporal_dev_server,
    wait_for_temporal,
)
from eventstore.migrations import migrate
from eventstore.store import EventStore, create_pool
from intake.writer import Intake
from worker import build_worker, data_converter
from workflows.client import Missions

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
STREAMS_PER_TOKEN = 3
"""Live streams a token may hold at once on the tests' API."""


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two groups for ``pytest -n 2 --dist loadgroup`` (``make test``): the browser tests
    on one worker, everything else, in file order as before, on the other. The reminder
    ladders' tests run on seconds-long timers and keep a worker of their own; the browser
    tests mostly wait on Chromium and the network."""
    for item in items:
        group = "browser" if item.get_closest_marker("browser") else "services"
        item.add_marker(pytest.mark.xdist_group(group))


@pytest_asyncio.fixture(scope="session")
async def server_url() -> AsyncIterator[str]:
    configured = os.environ.get("EOM_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    if await _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    embedded = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="eom-pg-")), persistent=False)
    try:
        yield embedded.url
    finally:
        embedded.stop()


@pytest_asyncio.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A database of this session's own, migrated; dropped afterwards."""
    name = f"eom_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    configured = os.environ.get("EOM_TEST_TEMPORAL_ADDRESS")
    if configured:
        yield configured
        return
    server = start_temporal_dev_server(ui=False)
    try:
        yield server.address
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session")
async def client(temporal_address: str) -> Client:
    await wait_for_temporal(temporal_address, "default")
    return await Client.connect(
        temporal_address, namespace="default", data_converter=data_converter
    )


@dataclass
class RunningApi:
    """The HTTP API served by uvicorn on a free port, over this session's services, with
    a worker on a task queue of its own."""

    url: str
    http: httpx.AsyncClient
    tokens: TokenStore
    missions: Missions
    app: FastAPI

    async def token(self, role: Role, name: str = "tester", **scope: str) -> str:
        token, _ = await self.tokens.create(role=role, name=name, **scope)  # type: ignore[arg-type]
        return token


def make_app(missions: Missions, pool: asyncpg.Pool, feed: EventFeed, **limits: Any) -> FastAPI:
    return create_app(
        missions=missions,
        tokens=TokenStore(pool),
        idempotency=IdempotencyStore(pool),
        feed=feed,
        intake=Intake(missions.store),
        **limits,
    )


@pytest_asyncio.fixture(scope="session")
async def running_api(
    client: Client, pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[RunningApi]:
    store = EventStore(pool)
    task_queue = f"eom-api-{uuid.uuid4().hex[:8]}"
    missions = Missions(client=client, store=store, task_queue=task_queue)
    feed = EventFeed(store, database_url, fallback=2.0)
    await feed.start()
    app = make_app(
        missions,
        pool,
        feed,
        submission_rate="100000/minute",
        streams_per_token=STREAMS_PER_TOKEN,
        stream_check_seconds=0.5,
    )
    async with (
        build_worker(client, store, task_queue),
        serving_app(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield RunningApi(url, http, TokenStore(pool), missions, app)
    await feed.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running_console(
    client: Client, pool: asyncpg.Pool, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    """The API with the console mounted, on a port chosen first (the console's links
    name it), over this session's services; a worker whose messages go to an SMTP sink
    and carry links to this console. One per test file: its worker and the workflows it
    runs (ladders, follow-ups) stop with the file, leaving the machine to the next."""
    from console_support import Mailbox, RunningConsole, console_app

    from accounts.directory import UserDirectory
    from accounts.links import SignInLinks
    from activities.delivery import DeliverySettings
    from cli.smtp_sink import SmtpSink

    store = EventStore(pool)
    task_queue = f"eom-console-{uuid.uuid4().hex[:8]}"
    missions = Missions(client=client, store=store, task_queue=task_queue)
    feed = EventFeed(store, database_url, fallback=2.0)
    await feed.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(missions, pool, feed, submission_rate="100000/minute")
    with SmtpSink(tmp_path_factory.mktemp("console-mail")) as sink:
        mail = DeliverySettings(smtp_port=sink.port, console_url=url)
        console_app(app, feed, url=url, mail=mail)
        async with (
            build_worker(client, store, task_queue, delivery=mail),
            serving_app(app, port=port),
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield RunningConsole(
                url=url,
                app=app,
                missions=missions,
                users=UserDirectory(store),
                links=SignInLinks(pool),
                tokens=TokenStore(pool),
                mailbox=Mailbox(sink),
                http=http,
            )
    await feed.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (launched by its path)."""
    from console_support import launched_browser

    async with launched_browser() as launched:
        yield launched


@contextlib.asynccontextmanager
async def serving_app(app: FastAPI, *, port: int | None = None) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free port of loopback (or ``port``), until the
    block ends: its URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port or free_port(),
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await serving
