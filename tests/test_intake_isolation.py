"""One observer's report that the event store cannot hold refuses that observer's request
only, against the real services: through the HTTP API (uvicorn, over an intake of this
module's own, so that its counters can be read), 300 concurrent requests of which 30
break a constraint added for the test are answered 270 recorded and 30 refused (422,
``invalid_input``), though they shared batches; and a request whose one report breaks it
is refused whole. Which failures are the data's (isolated) and which are not (the batch
is answered 503) is checked apart."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from conftest import RunningApi, serving_app
from temporalio.client import Client
from test_intake import TEAMS, local, open_election_day

from api.app import create_app
from api.feed import EventFeed
from api.idempotency import IdempotencyStore
from api.tokens import Role
from domain.submissions import PollingStation
from eventstore.store import is_data_error
from intake.writer import Intake, station_stream

REQUESTS = 300
POISONED = 30
"""Spread evenly: every tenth request carries a report the constraint refuses."""

DEVICES = 20
"""The HTTP clients the requests are sent from, each with its connections."""

CONSTRAINT = "eom_test_no_poison"


@dataclass
class Served:
    """The API, served by uvicorn over ``intake``, and a mission on election day."""

    url: str
    intake: Intake
    mission_id: str
    stations: list[PollingStation]
    tokens: dict[str, str]
    """An observer's token per team."""

    def visit(self, submission_id: str, n: int) -> dict[str, Any]:
        """A station visit by team ``n % 4`` at station ``n % 20`` (always the same team
        at a station: no conflict flags among the events)."""
        return {
            "kind": "station_visit",
            "submission_id": submission_id,
            "mission_id": self.mission_id,
            "station_id": self.stations[n % len(self.stations)].station_id,
            "team_id": TEAMS[n % len(TEAMS)],
            "arrived_at": local(8).isoformat(),
            "departed_at": local(9).isoformat(),
            "checklists": [{"phase": "opening", "answers": {"opened_on_time": True}}],
        }

    def bearer(self, n: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[TEAMS[n % len(TEAMS)]]}"}


@pytest_asyncio.fixture(scope="module")
async def served(running_api: RunningApi, client: Client) -> AsyncIterator[Served]:
    store = running_api.missions.store
    missions, mission_id, stations = await open_election_day(
        client, store, running_api.missions.task_queue, stations=20, grace_minutes=600
    )
    tokens = {
        team: await running_api.token(
            Role.observer, name=f"device of {team}", mission_id=mission_id, team_id=team
        )
        for team in TEAMS
    }
    intake = Intake(store)
    app = create_app(
        missions=missions,
        tokens=running_api.tokens,
        idempotency=IdempotencyStore(store.pool),
        feed=EventFeed(store, ""),
        intake=intake,
    )
    try:
        async with serving_app(app) as url:
            yield Served(url, intake, mission_id, stations, tokens)
    finally:
        await intake.close()


@contextlib.asynccontextmanager
async def poisoned(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """A constraint the receipts of ``poison-`` submissions break: data the event store
    refuses inside a batch's transaction (SQLSTATE 23514), after its locks and lookups.
    The database is the whole session's: the constraint goes when the test ends."""
    await pool.execute(
        f"ALTER TABLE intake_receipts ADD CONSTRAINT {CONSTRAINT} "
        "CHECK (submission_id NOT LIKE 'poison-%') NOT VALID"
    )
    try:
        yield
    finally:
        await pool.execute(f"ALTER TABLE intake_receipts DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


async def stored(pool: asyncpg.Pool, mission_id: str, ids: Sequence[str]) -> dict[str, list[int]]:
    """Of ``ids``, those stored: submission id -> [receipts, report events]."""
    rows = await pool.fetch(
        """
        SELECT submission_id, sum(receipts)::int AS receipts, sum(events)::int AS events FROM (
            SELECT submission_id, 1 AS receipts, 0 AS events FROM intake_receipts
            WHERE mission_id = $1 AND submission_id = ANY($2::text[])
            UNION ALL
            SELECT data->>'submission_id', 0, 1 FROM events
            WHERE stream_id LIKE $1 || '/stations/%' AND data->>'submission_id' = ANY($2::text[])
        ) AS found GROUP BY submission_id
        """,
        mission_id,
        list(ids),
    )
    return {r["submission_id"]: [r["receipts"], r["events"]] for r in rows}


def report_named(path: str) -> int:
    """The place in the request of the report an error's field names (``reports[1]``,
    ``body.reports.1``: the index is what counts)."""
    assert "reports" in path, path
    return int(re.findall(r"\d+", path)[-1])


def leaks(body: str) -> list[str]:
    """Database internals a refusal must not show the observer."""
    return [w for w in (CONSTRAINT, "intake_receipts", "violates", "INSERT", "23514") if w in body]


async def test_a_batch_records_every_request_but_those_the_store_cannot_hold(
    served: Served, running_api: RunningApi
) -> None:
    """300 concurrent requests, one report each, held back until all wait in the intake
    (the test holds the mission's gate row, as closing election day does), so that the
    flushers' batches mix 270 good requests and 30 the database refuses: the 270 are
    recorded once each, the 30 answered 422 ``invalid_input`` naming the report and no
    database internals, nothing of them stored, no 5xx, and the batches were split."""
    pool = running_api.missions.store.pool
    every = REQUESTS // POISONED
    ids = [f"poison-{n}" if n % every == 0 else f"good-{n}" for n in range(REQUESTS)]
    good = [i for i in ids if not i.startswith("poison-")]
    assert len(good) == REQUESTS - POISONED
    path = f"/v1/missions/{served.mission_id}/reports"
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(poisoned(pool))
        # Several clients, as devices are: one client's pool of hundreds of connections
        # spends more time choosing a connection than the intake takes to write.
        devices = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=served.url, timeout=30))
            for _ in range(DEVICES)
        ]
        # The first report of the mission creates its gate row, and loads the mission.
        warm = await devices[1].post(
            path, json={"reports": [served.visit("warm-up", 1)]}, headers=served.bearer(1)
        )
        assert warm.status_code == 200, warm.text
        split_before = served.intake.isolated_batches
        started = time.monotonic()
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute(
                "SELECT 1 FROM intake_gates WHERE mission_id = $1 FOR UPDATE", served.mission_id
            )
            sending = [
                asyncio.create_task(
                    devices[n % DEVICES].post(
                        path, json={"reports": [served.visit(i, n)]}, headers=served.bearer(n)
                    )
                )
                for n, i in enumerate(ids)
            ]
            async with asyncio.timeout(20):
                while served.intake.pending < REQUESTS:
                    answered = [t.result() for t in sending if t.done()]
                    assert not answered, [(r.status_code, r.text) for r in answered[:3]]
                    await asyncio.sleep(0.01)
            held = time.monotonic()
        answers = await asyncio.gather(*sending)
        written = time.monotonic()

    statuses = {i: a.status_code for i, a in zip(ids, answers, strict=True)}
    assert not [s for s in statuses.values() if s >= 500]
    assert {i for i, s in statuses.items() if s == 200} == set(good)
    for i, answer in zip(ids, answers, strict=True):
        if i in good:
            [receipt] = answer.json()["receipts"]
            assert receipt["submission_id"] == i and receipt["status"] == "recorded"
            continue
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_input"
        [field] = error["fields"]
        assert report_named(field["path"]) == 0 and i in field["message"]
        assert "nothing" in field["message"] and not leaks(answer.text)

    assert await stored(pool, served.mission_id, ids) == {i: [1, 1] for i in good}
    assert served.intake.isolated_batches > split_before
    for station in served.stations:
        check = await running_api.missions.store.verify_stream(
            station_stream(served.mission_id, station.station_id)
        )
        assert check.ok, check.breaks
    print(
        f"\n{REQUESTS} requests ({POISONED} poisoned): queued in {held - started:.2f}s, "
        f"answered {written - held:.2f}s after the gate was let go, "
        f"{served.intake.isolated_batches - split_before} batch splits"
    )


async def test_a_request_with_one_report_the_store_cannot_hold_is_refused_whole(
    served: Served, running_api: RunningApi
) -> None:
    """A good report and one the database refuses, in one request: refused whole (422,
    ``invalid_input``, naming the second report), and neither is stored."""
    pool = running_api.missions.store.pool
    reports = [served.visit("whole-good", 2), served.visit("poison-whole", 2)]
    async with poisoned(pool), httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        answer = await http.post(
            f"/v1/missions/{served.mission_id}/reports",
            json={"reports": reports},
            headers=served.bearer(2),
        )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert [report_named(f["path"]) for f in error["fields"]] == [1]
    assert "poison-whole" in error["fields"][0]["message"] and not leaks(answer.text)
    assert await stored(pool, served.mission_id, ["whole-good", "poison-whole"]) == {}


@pytest.mark.parametrize(
    ("error", "isolated"),
    [
        (asyncpg.CheckViolationError("23514"), True),
        (asyncpg.NotNullViolationError("23502"), True),
        (asyncpg.ForeignKeyViolationError("23503"), True),
        (asyncpg.exceptions.CharacterNotInRepertoireError("22021: a NUL character"), True),
        (asyncpg.exceptions.NumericValueOutOfRangeError("22003"), True),
        (asyncpg.exceptions.DataError("22000: an argument asyncpg cannot encode"), True),
        (ValueError("built from the report"), True),
        (OverflowError("built from the report"), True),
        (UnicodeEncodeError("utf-8", "\udc80", 0, 1, "a lone surrogate"), True),
        (asyncpg.UniqueViolationError("23505: retried"), False),
        (asyncpg.DeadlockDetectedError("40P01: retried"), False),
        (asyncpg.PostgresConnectionError("08000"), False),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-batch"), False),
        (asyncpg.InterfaceError("connection is closed"), False),
        (ConnectionResetError("reset by peer"), False),
        (asyncpg.exceptions.UndefinedColumnError("42703"), False),
        (asyncpg.exceptions.TooManyConnectionsError("53300"), False),
        (asyncpg.exceptions.AdminShutdownError("57P01"), False),
        (asyncpg.exceptions.DuplicateFileError("58P02"), False),
        (asyncpg.exceptions.InternalServerError("XX000"), False),
    ],
)
def test_only_the_datas_failures_are_isolated(error: Exception, isolated: bool) -> None:
    """SQLSTATE classes 22 and 23 (but a unique violation, retried) and values Python
    could not build or encode are the data's fault, isolated and refused; a conflict is
    retried; the connection, the server or the statements failing is the intake's."""
    assert is_data_error(error) is isolated
