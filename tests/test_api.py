"""The HTTP API on uvicorn, over the real Temporal dev server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from builders import command_samples, report_samples
from conftest import RunningApi, make_app
from fastapi.routing import APIRoute

from api.feed import EventFeed
from api.tokens import Role, TokenStore
from cli import seed
from cli.api_client import command_path
from domain import commands as c
from domain.commands import COMMAND_TYPES, Command
from eventstore.store import EventStore

ORGANISATION = seed.registration("x").organisation
R = Role

# The specification the app is checked against, independent of api.access: which roles
# may call each route (in scope). A route missing here fails the matrix test.
EXPECTED: dict[str, set[Role]] = {
    "list_missions": set(Role),
    "get_mission": {R.coordinator, R.head_of_mission, R.auditor},
    "get_timeline": {R.coordinator, R.head_of_mission, R.auditor},
    "stream_events": {R.coordinator, R.head_of_mission, R.auditor},
    "list_visits": {R.coordinator, R.head_of_mission, R.observer, R.auditor},
    "export_mission": {R.coordinator, R.head_of_mission, R.auditor},
    "get_sent_to_recipient": {R.coordinator, R.member_state, R.auditor},
    **{name: {R.coordinator} for name in COMMAND_TYPES},
    "approve_statement": {R.head_of_mission},
    "nominate_observer": {R.coordinator, R.member_state},
    "acknowledge_recommendations": {R.coordinator, R.member_state},
    "record_station_visit": {R.coordinator, R.observer},
    "decline_nomination": {R.coordinator, R.member_state},
    "submit_evidence": {R.coordinator, R.member_state},
    "submit_reports": {R.coordinator, R.observer},
    "register_stations": {R.coordinator},
    "list_reminders": {R.coordinator, R.head_of_mission, R.auditor},
    "pause_reminders": {R.coordinator},
    "resume_reminders": {R.coordinator},
    "send_reminder_now": {R.coordinator},
    "get_coverage": {R.coordinator, R.head_of_mission, R.auditor},
    "get_analysis": {R.coordinator, R.head_of_mission, R.auditor},
    "verify_mission": {R.coordinator, R.head_of_mission, R.auditor},
    "verify_all": {R.coordinator, R.auditor},
    "replay_mission": {R.coordinator, R.head_of_mission, R.auditor},
}
UNSCOPED = {"list_missions", "verify_all"}
"""Routes that name no mission: a caller out of every mission's scope still gets an
answer (of what is in its scope)."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Seeded:
    mission_id: str
    commands: list[Command]


async def run_seed(api: RunningApi, commands: list[Command], mission_id: str) -> None:
    for command in commands:
        await api.missions.execute(mission_id, command, actor="coordinator:test")


@pytest_asyncio.fixture(scope="module")
async def closed_seed(running_api: RunningApi) -> Seeded:
    mission_id = f"api-seed-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    # Its follow-up ended: a closed mission with nothing running behind it.
    await run_seed(running_api, [*commands, c.EndFollowUp(reason="tested")], mission_id)
    return Seeded(mission_id, commands)


@pytest_asyncio.fixture
async def forming(running_api: RunningApi) -> Seeded:
    """A mission registered and forming (head of mission appointed)."""
    mission_id = f"api-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    await run_seed(running_api, commands[:2], mission_id)
    return Seeded(mission_id, commands)


@dataclass
class Caller:
    role: Role
    in_scope: bool
    token: str


@pytest_asyncio.fixture(scope="module")
async def callers(running_api: RunningApi, closed_seed: Seeded) -> list[Caller]:
    m = closed_seed.mission_id
    t = running_api.token
    return [
        Caller(R.coordinator, True, await t(R.coordinator, organisation=ORGANISATION)),
        Caller(R.coordinator, False, await t(R.coordinator, organisation="Another Org")),
        Caller(
            R.head_of_mission, True, await t(R.head_of_mission, seed.HEAD_OF_MISSION, mission_id=m)
        ),
        Caller(
            R.head_of_mission,
            False,
            await t(R.head_of_mission, seed.HEAD_OF_MISSION, mission_id="other"),
        ),
        Caller(R.observer, True, await t(R.observer, mission_id=m, team_id="team-1")),
        Caller(R.observer, False, await t(R.observer, mission_id="other", team_id="team-1")),
        Caller(R.member_state, True, await t(R.member_state, member_state="AZ")),
        Caller(R.member_state, False, await t(R.member_state, member_state="FR")),
        Caller(R.auditor, True, await t(R.auditor)),
    ]


def sample_bodies(commands: list[Command], mission_id: str) -> dict[str, dict[str, Any]]:
    """A body per command route (``builders.command_samples``), and per report and
    station route."""
    bodies: dict[str, dict[str, Any]] = {
        command.type: command.model_dump(mode="json")
        for command in command_samples(mission_id, commands)
    }
    bodies["submit_reports"] = {
        "reports": [r.model_dump(mode="json") for r in report_samples(mission_id)[:1]]
    }
    bodies["register_stations"] = {"stations": [{"station_id": "PS-1", "locality": "Astana"}]}
    return bodies


def v1_routes(api: RunningApi) -> list[APIRoute]:
    return [r for r in api.app.routes if isinstance(r, APIRoute) and r.path.startswith("/v1")]


async def call(
    api: RunningApi,
    route: APIRoute,
    mission_id: str,
    body: Any,
    token: str,
    *,
    dry_run: bool = True,
) -> int:
    path = (
        route.path.replace("{mission_id}", mission_id)
        .replace("{recipient}", "AZ")
        .replace("{kind}", "nomination")
        .replace("{member_state}", "AZ")
    )
    if route.name == "replay_mission":
        path += "?version=1"
    if "POST" in (route.methods or set()):
        response = await api.http.post(
            path,
            json=body,
            params={"dry_run": "true"} if dry_run else None,
            headers=bearer(token),
        )
        return response.status_code
    async with api.http.stream("GET", path, headers=bearer(token)) as response:
        return response.status_code


def expected_status(route: str, caller: Caller) -> str:
    """The matrix's specification: 2xx where the role may call the route in scope, 403
    where the role may not call it at all, 404 where it may but the mission is outside
    the token's scope (answered as a mission that does not exist)."""
    if caller.role not in EXPECTED[route]:
        return "403"
    if caller.in_scope or route in UNSCOPED:
        return "2xx"
    # A registration names its organisation in its body: another's is a 403 there.
    return "403" if route == "register_invitation" else "404"


async def test_role_by_endpoint_matrix(
    running_api: RunningApi, closed_seed: Seeded, callers: list[Caller]
) -> None:
    """Every /v1 route x every role, in and out of scope: 2xx exactly where allowed,
    403 where the role may not, 404 out of scope. Commands are sent as dry runs, so
    nothing is recorded."""
    routes = v1_routes(running_api)
    assert {r.name for r in routes} == set(EXPECTED), "a route is missing from EXPECTED"
    bodies = sample_bodies(closed_seed.commands, closed_seed.mission_id)
    before = await running_api.missions.store.stream_version(closed_seed.mission_id)
    mismatches = []
    for route in routes:
        body = bodies.get(route.name or "")
        for caller in callers:
            status = await call(running_api, route, closed_seed.mission_id, body, caller.token)
            got = "2xx" if 200 <= status < 300 else str(status)
            if got != expected_status(route.name or "", caller):
                mismatches.append((route.name, caller.role.value, caller.in_scope, status))
    assert mismatches == []
    assert await running_api.missions.store.stream_version(closed_seed.mission_id) == before


# What each role's token is scoped to, by the kind of thing a field names; and, per kind,
# a value outside the test tokens' scopes.
SCOPED_KINDS: dict[Role, set[str]] = {
    R.coordinator: {"organisation", "named mission"},
    R.head_of_mission: {"mission"},
    R.observer: {"mission", "team"},
    R.member_state: {"member_state", "recipient organisation"},
    R.auditor: set(),
}
OUT_OF_SCOPE = {
    "mission": "another-mission",
    "named mission": "another-mission",
    "team": "team-2",
    "member_state": "KG",
    "organisation": "Another Organisation",
}
_FIELD_KIND = {
    "mission_id": "mission",
    "new_mission_id": "named mission",
    "team_id": "team",
    "member_state": "member_state",
    "organisation": "organisation",
}


def scoped_variants(body: Any, path: str = "body") -> list[tuple[str, str, Any]]:
    """Each way of putting one field of ``body`` that names a scoped thing out of scope:
    (the field's path, the kind it names, the changed body). A recipient names a member
    state, or an organisation when it is one."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(body, dict):
        if set(body) == {"kind", "name"} and body["kind"] in ("member_state", "host_country"):
            for kind, replaced in (
                ("member_state", {**body, "name": OUT_OF_SCOPE["member_state"]}),
                (
                    "recipient organisation",
                    {"kind": "international_organisation", "name": "Another Organisation"},
                ),
            ):
                found.append((f"{path}.name", kind, replaced))
            return found
        for key, value in body.items():
            field_kind = _FIELD_KIND.get(key)
            if field_kind is not None and isinstance(value, str):
                found.append((f"{path}.{key}", field_kind, {**body, key: OUT_OF_SCOPE[field_kind]}))
            else:
                for where, named, changed in scoped_variants(value, f"{path}.{key}"):
                    found.append((where, named, {**body, key: changed}))
    elif isinstance(body, list):
        for index, item in enumerate(body):
            for where, named, changed in scoped_variants(item, f"{path}.{index}"):
                found.append((where, named, [*body[:index], changed, *body[index + 1 :]]))
    return found


async def test_scoped_fields_are_checked_against_the_token(
    running_api: RunningApi, closed_seed: Seeded, callers: list[Caller]
) -> None:
    """Every route x every role allowed to call it in scope x every field of its body that
    names a mission, team, member state or organisation: that field put outside the
    token's scope is a 403 naming the field, as a dry run and as a real request, and
    nothing is recorded. (An observer of team-1 cannot report as team-2; a member state
    cannot nominate or acknowledge for another; a coordinator of one organisation cannot
    register a mission for another.)"""
    bodies = sample_bodies(closed_seed.commands, closed_seed.mission_id)
    before = await running_api.missions.store.stream_version(closed_seed.mission_id)
    tried: set[tuple[str, str]] = set()
    mismatches = []
    for route in v1_routes(running_api):
        body = bodies.get(route.name or "")
        if body is None:
            continue
        for caller in callers:
            if expected_status(route.name or "", caller) != "2xx":
                continue
            for where, kind, changed in scoped_variants(body):
                if kind not in SCOPED_KINDS[caller.role]:
                    continue
                tried.add((route.name or "", caller.role.value))
                for dry_run in (True, False):
                    path = route.path.replace("{mission_id}", closed_seed.mission_id)
                    response = await running_api.http.post(
                        path,
                        json=changed,
                        params={"dry_run": "true"} if dry_run else None,
                        headers=bearer(caller.token),
                    )
                    named = response.status_code == 403 and where in response.text
                    if not named:
                        mismatches.append(
                            (route.name, caller.role.value, where, dry_run, response.status_code)
                        )
    assert mismatches == []
    # The matrix reached what the issue names: reports for another team, answers for
    # another state, a registration for another organisation.
    assert {
        ("submit_reports", "observer"),
        ("record_station_visit", "observer"),
        ("nominate_observer", "member_state"),
        ("acknowledge_recommendations", "member_state"),
        ("register_invitation", "coordinator"),
    } <= tried
    assert await running_api.missions.store.stream_version(closed_seed.mission_id) == before


async def test_mission_list_is_scoped(
    running_api: RunningApi, closed_seed: Seeded, callers: list[Caller]
) -> None:
    """Each caller lists only the missions in their scope."""
    for caller in callers:
        response = await running_api.http.get("/v1/missions", headers=bearer(caller.token))
        listed = {m["mission_id"] for m in response.json()}
        assert (closed_seed.mission_id in listed) == caller.in_scope, caller


async def test_missing_expired_and_revoked_tokens_are_401(
    running_api: RunningApi, closed_seed: Seeded
) -> None:
    """No token, a malformed or unknown one, an expired or a revoked one: 401."""
    path = f"/v1/missions/{closed_seed.mission_id}"
    assert (await running_api.http.get(path)).status_code == 401
    for junk in ("nonsense", "eom_" + "0" * 32):
        response = await running_api.http.get(path, headers=bearer(junk))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    token, principal = await running_api.tokens.create(role=R.auditor, name="auditor")
    assert (await running_api.http.get(path, headers=bearer(token))).status_code == 200
    await running_api.tokens.pool.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE token_id = $1",
        principal.token_id,
    )
    expired = await running_api.http.get(path, headers=bearer(token))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    token, principal = await running_api.tokens.create(role=R.auditor, name="auditor")
    await running_api.tokens.revoke(principal.token_id)
    revoked = await running_api.http.get(path, headers=bearer(token))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


async def test_token_lookups_kept_for_a_few_seconds(pool: asyncpg.Pool) -> None:
    """An API's kept lookup: no query while it is fresh, expiry still checked on every
    request, a revocation through the same store seen at once, one made elsewhere (the
    CLI's own store) once the lookup is older than ``cache_seconds``."""
    api = TokenStore(pool, cache_seconds=0.5)
    elsewhere = TokenStore(pool)
    token, principal = await elsewhere.create(
        role=R.observer, name="t", mission_id="m", team_id="team-1"
    )
    assert (await api.authenticate(token))[1] == "active"
    await elsewhere.revoke(principal.token_id)
    assert (await api.authenticate(token))[1] == "active"  # kept, not looked up
    await asyncio.sleep(0.6)
    assert (await api.authenticate(token))[1] == "revoked"

    token, principal = await elsewhere.create(
        role=R.observer, name="t", mission_id="m", team_id="team-1", expires_in=timedelta(hours=1)
    )
    assert (await api.authenticate(token))[1] == "active"
    await api.revoke(principal.token_id)
    assert (await api.authenticate(token))[1] == "revoked"

    token, _ = await elsewhere.create(
        role=R.observer,
        name="t",
        mission_id="m",
        team_id="team-1",
        expires_in=timedelta(seconds=0.3),
    )
    assert (await api.authenticate(token))[1] == "active"
    await asyncio.sleep(0.35)
    assert (await api.authenticate(token))[1] == "expired"  # expiry needs no lookup
    assert await api.authenticate("eom_" + "f" * 32) == (None, "unknown")


async def test_errors_have_one_shape(running_api: RunningApi, forming: Seeded) -> None:
    """401, 404, 422 with field paths, 400 for broken JSON, 409 with the rule: one shape."""
    token = await running_api.token(R.coordinator)
    m = forming.mission_id
    unknown = await running_api.http.get("/v1/missions/nope", headers=bearer(token))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_mission"

    invalid = await running_api.http.post(
        f"/v1/missions/{m}/record-meeting",
        json={"meeting_id": "x", "stakeholder_type": "media", "held_on": "soon"},
        headers=bearer(token),
    )
    assert invalid.status_code == 422
    paths = {f["path"] for f in invalid.json()["error"]["fields"]}
    assert {"body.held_on", "body.stakeholder_name", "body.summary"} <= paths

    broken = await running_api.http.post(
        f"/v1/missions/{m}/record-meeting",
        content=b'{"meeting_id": ',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"

    refused = await running_api.http.post(
        f"/v1/missions/{m}/nominate-observer",
        json={"observer_id": "kz-1", "member_state": "KZ", "name": "Host national"},
        headers=bearer(token),
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "observer_from_host_country" and "host country" in error["message"]
    assert await running_api.missions.store.stream_version(m) == 2


async def test_accepted_commands_record_the_principal(
    running_api: RunningApi, forming: Seeded
) -> None:
    """A member state's nomination is recorded with that member state as the actor."""
    token, principal = await running_api.tokens.create(
        role=R.member_state, name="MFA of Azerbaijan", member_state="AZ"
    )
    nomination = forming.commands[2]
    response = await running_api.http.post(
        command_path(forming.mission_id, nomination),
        json=nomination.model_dump(mode="json"),
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    assert response.json()["event_types"] == ["ObserverNominated"]
    events = await running_api.missions.events(forming.mission_id)
    assert events[-1].metadata.actor == principal.actor == "member_state:MFA of Azerbaijan@AZ"


async def test_idempotency_key_replays_and_detects_reuse(
    running_api: RunningApi, forming: Seeded
) -> None:
    """The same key and body return the first result and record once; the same key with
    another body is a 409."""
    token = await running_api.token(R.coordinator)
    nomination = forming.commands[2]
    path = command_path(forming.mission_id, nomination)
    headers = {**bearer(token), "Idempotency-Key": "nominate-az-cec"}
    body = nomination.model_dump(mode="json")
    first, again = [await running_api.http.post(path, json=body, headers=headers) for _ in range(2)]
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.json()["event_types"] == ["ObserverNominated"]
    assert await running_api.missions.store.stream_version(forming.mission_id) == 3
    other = await running_api.http.post(
        path, json={**body, "name": "Someone else"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    concurrent = await asyncio.gather(
        *(
            running_api.http.post(
                command_path(forming.mission_id, forming.commands[3]),
                json=forming.commands[3].model_dump(mode="json"),
                headers={**bearer(token), "Idempotency-Key": "nominate-az-diplomat"},
            )
            for _ in range(3)
        )
    )
    assert {r.status_code for r in concurrent} == {200}
    assert await running_api.missions.store.stream_version(forming.mission_id) == 4


async def test_events_stream_live(running_api: RunningApi, forming: Seeded) -> None:
    """The SSE stream replays the history, then delivers a new event as it is recorded;
    Last-Event-ID resumes after a version."""
    token = await running_api.token(R.coordinator)
    path = f"/v1/missions/{forming.mission_id}/events"
    async with running_api.http.stream("GET", path, headers=bearer(token)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert [await anext(events) for _ in range(2)] == [
            (1, "InvitationRegistered"),
            (2, "HeadOfMissionAppointed"),
        ]
        await running_api.missions.execute(
            forming.mission_id, forming.commands[2], actor="coordinator:test"
        )
        assert await asyncio.wait_for(anext(events), 10) == (3, "ObserverNominated")
    async with running_api.http.stream(
        "GET", path, headers={**bearer(token), "Last-Event-ID": "2"}
    ) as resumed:
        assert await anext(sse_events(resumed)) == (3, "ObserverNominated")


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[int, str]]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                data = json.loads(fields["data"])
                assert data["stream_version"] == int(fields["id"])
                yield int(fields["id"]), fields["event"]
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@pytest.fixture
def small_app(running_api: RunningApi) -> httpx.AsyncClient:
    """The same API with tight limits and CORS on, in process (no live stream needed)."""
    store: EventStore = running_api.missions.store
    app = make_app(
        running_api.missions,
        store.pool,
        EventFeed(store, ""),
        max_body_bytes=2048,
        submission_rate="3/minute",
        cors_origins=["https://dashboard.example.org"],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://eom")


async def test_body_limit_rate_limit_and_cors(
    running_api: RunningApi, small_app: httpx.AsyncClient, forming: Seeded
) -> None:
    """An oversized body is a 413; the fourth submission in a minute a 429 with
    Retry-After; CORS answers only the configured origin."""
    token = await running_api.token(R.coordinator)
    path = f"/v1/missions/{forming.mission_id}/record-meeting"
    async with small_app as http:
        huge = await http.post(path, json={"summary": "x" * 5000}, headers=bearer(token))
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
        statuses = [
            (
                await http.post(
                    f"/v1/missions/{forming.mission_id}/open-election-day",
                    json={},
                    params={"dry_run": "true"},
                    headers=bearer(token),
                )
            ).status_code
            for _ in range(4)
        ]
        assert statuses[:2] == [200, 200] and statuses[-1] == 429
        limited = await http.post(
            f"/v1/missions/{forming.mission_id}/open-election-day",
            json={},
            headers=bearer(token),
        )
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        preflight = await http.options(
            path,
            headers={
                "Origin": "https://dashboard.example.org",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://dashboard.example.org"
    plain = await running_api.http.get(
        "/v1/missions", headers={**bearer(token), "Origin": "https://dashboard.example.org"}
    )
    assert "access-control-allow-origin" not in plain.headers


async def test_openapi_document_is_served(running_api: RunningApi) -> None:
    """The OpenAPI document lists every command route and the bearer scheme."""
    document = (await running_api.http.get("/v1/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for name in COMMAND_TYPES:
        if name != "register_invitation":
            assert f"/v1/missions/{{mission_id}}/{name.replace('_', '-')}" in document["paths"]
