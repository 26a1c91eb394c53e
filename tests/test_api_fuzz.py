"""Property-based fuzzing of the OpenAPI document (schemathesis) against the running API
on the real services, with requests the schema allows and requests it does not: no
request is answered with a 5xx, and a refused request writes no event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import schemathesis
from conftest import RunningApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api.tokens import Role
from cli import seed

EXAMPLES = 300
FUZZER = "fuzzer"


async def test_fuzzed_requests_never_fail_the_server(running_api: RunningApi) -> None:
    """Random requests shaped by the schema (and a known mission id now and then):
    every answer is below 500, and every 4xx leaves the event store untouched."""
    mission_id = f"fuzz-{uuid.uuid4().hex[:8]}"
    for command in seed.mission(mission_id)[:12]:
        await running_api.missions.execute(mission_id, command, actor="coordinator:fuzz")
    # Events are counted by the fuzzing principals' actor, since other missions' reminder
    # ladders and follow-ups may be writing to the store meanwhile.
    tokens = [
        await running_api.token(Role.coordinator, FUZZER),
        await running_api.token(Role.member_state, FUZZER, member_state="AZ"),
        await running_api.token(Role.observer, FUZZER, mission_id=mission_id, team_id="team-1"),
    ]
    loop = asyncio.get_running_loop()
    pool = running_api.missions.store.pool

    def count_events() -> int:
        future = asyncio.run_coroutine_threadsafe(
            pool.fetchval(
                "SELECT count(*) FROM events WHERE metadata->>'actor' LIKE $1", f"%:{FUZZER}@%"
            ),
            loop,
        )
        return int(future.result(timeout=30))

    def fuzz() -> tuple[list[str], list[int]]:
        schema = schemathesis.openapi.from_url(f"{running_api.url}/v1/openapi.json")
        # Valid requests and invalid ones (each breaking the schema somewhere), with NUL
        # characters allowed in strings: whatever comes, no 5xx.
        schema.config.generation.update(
            modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True
        )
        # The live event stream never ends by itself; it has its own test.
        operations = schema.exclude(path_regex=r"/events$").as_strategy()
        problems: list[str] = []
        statuses: list[int] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operations, token=st.sampled_from(tokens), known=st.booleans())
        def check(case: Any, token: str, known: bool) -> None:
            if known and "mission_id" in (case.path_parameters or {}):
                case.path_parameters["mission_id"] = mission_id
            before = count_events()
            response = case.call(
                base_url=running_api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            statuses.append(response.status_code)
            label = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{label}: {response.text[:300]}")
            if response.status_code >= 400 and count_events() != before:
                problems.append(f"{label} wrote events")

        check()
        return problems, statuses

    problems, statuses = await asyncio.to_thread(fuzz)
    assert problems == []
    # The fuzz reached the application, not only its front door.
    assert len(statuses) >= EXAMPLES // 2
    assert any(200 <= s < 300 for s in statuses)
    assert {409, 422} & set(statuses)
