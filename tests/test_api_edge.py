"""The API's edge, over the real services: bad input refused at once and by field, data
the store refuses answered 422 without retries, numbers out of range, bursts and races
answered once each, live streams that follow their token, body limits however a body is
sent, and refusals that tell nobody about another organisation's missions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest_asyncio
from conftest import STREAMS_PER_TOKEN, RunningApi

from api.tokens import Role
from cli import seed
from cli.api_client import command_path
from domain import commands as c
from domain.commands import Command
from workflows.client import Missions
from workflows.messages import CommandResult

R = Role
ORGANISATION = seed.ORGANISATION


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def drive(api: RunningApi, mission_id: str, commands: list[Command]) -> None:
    for command in commands:
        await api.missions.execute(mission_id, command, actor="coordinator:test")


def until(commands: list[Command], kind: type) -> list[Command]:
    """The seed's commands before the first of ``kind``."""
    return commands[: next(i for i, cmd in enumerate(commands) if isinstance(cmd, kind))]


@pytest_asyncio.fixture
async def pre_election(running_api: RunningApi) -> str:
    """A seed mission deployed (meetings may be recorded)."""
    mission_id = f"edge-{uuid.uuid4().hex[:8]}"
    await drive(running_api, mission_id, until(seed.mission(mission_id), c.RecordMeeting))
    return mission_id


@pytest_asyncio.fixture
async def coordinator(running_api: RunningApi) -> str:
    return await running_api.token(R.coordinator, organisation=ORGANISATION)


def meeting(meeting_id: str, **changes: Any) -> dict[str, Any]:
    body = c.RecordMeeting(
        meeting_id=meeting_id,
        stakeholder_type="civil_society",
        stakeholder_name="Civil society coalition",
        held_on=date(2021, 1, 7),
        summary="Briefing on procedures.",
    ).model_dump(mode="json")
    return {**body, **changes}


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_text_numbers_and_lists_the_store_cannot_hold_are_422_at_once(
    running_api: RunningApi, pre_election: str, coordinator: str
) -> None:
    """A NUL in a summary, a line break in a name, a quota beyond 2**53, NaN, a list
    beyond its bound: each is a 422 naming the field, within a second, and the dry run
    says the same; nothing is recorded."""
    path = f"/v1/missions/{pre_election}/record-meeting"
    before = await running_api.missions.store.stream_version(pre_election)
    cases = [
        (meeting("m1", summary="Briefing\u0000 on procedures"), "body.summary", "NUL"),
        (meeting("m2", stakeholder_name="Ak Zhol\r\nBcc: x"), "body.stakeholder_name", "line"),
        (meeting("m3", participants=["ok", "\ud800"]), "body.participants.1", "surrogate"),
        (meeting("m4", topics=["t"] * 101), "body.topics", "at most 100"),
        (meeting("m5", held_on="0001-01-01"), "body.held_on", "between"),
        (meeting("m6", summary="中" * 100_000), "body", "bytes of JSON"),
    ]
    for body, field, words in cases:
        for dry_run in (True, False):
            started = time.monotonic()
            response = await running_api.http.post(
                path,
                # As a client writes it: a lone surrogate travels as a \\ud800 escape.
                content=json.dumps(body).encode(),
                params={"dry_run": "true"} if dry_run else None,
                headers={**bearer(coordinator), "Content-Type": "application/json"},
            )
            assert time.monotonic() - started < 5
            assert response.status_code == 422, response.text
            found = error(response)
            assert found["code"] == "invalid_input"
            assert any(f["path"] == field and words in f["message"] for f in found["fields"]), found
    quota = seed.registration(f"edge-{uuid.uuid4().hex[:8]}").model_dump(mode="json")
    quota["role_quotas"] = {"short_term_observer": 9007199254740993}
    refused = await running_api.http.post("/v1/missions", json=quota, headers=bearer(coordinator))
    assert refused.status_code == 422
    assert error(refused)["fields"][0]["path"] == "body.role_quotas.short_term_observer"
    for unreadable in (b'{"summary": "\xff"}', b'{"n": ' + b"9" * 5000 + b"}", b"[" * 100_000):
        response = await running_api.http.post(
            path,
            content=unreadable,
            headers={**bearer(coordinator), "Content-Type": "application/json"},
        )
        assert response.status_code in (400, 422), response.text
        assert error(response)["code"] in ("malformed_json", "invalid_input")
    grace = await running_api.http.post(
        f"/v1/missions/{pre_election}/open-election-day",
        content=b'{"check_in_grace_minutes": NaN}',
        headers={**bearer(coordinator), "Content-Type": "application/json"},
    )
    assert grace.status_code == 422 and error(grace)["code"] == "invalid_input"
    assert await running_api.missions.store.stream_version(pre_election) == before


async def test_numbers_out_of_range_in_paths_queries_and_headers_are_422(
    running_api: RunningApi, pre_election: str, coordinator: str
) -> None:
    """Versions, cursors, limits and Last-Event-ID beyond what the store takes are a 422
    naming the parameter, never a 500 or an aborted stream."""
    base = f"/v1/missions/{pre_election}"
    auditor = await running_api.token(R.auditor)
    cases: list[tuple[str, dict[str, str], dict[bytes, bytes], str]] = [
        (base, {"version": str(10**20)}, {}, "query.version"),
        (f"{base}/timeline", {"after_version": str(2**63)}, {}, "query.after_version"),
        (f"{base}/timeline", {"limit": str(10**12)}, {}, "query.limit"),
        (f"{base}/events", {"after_version": "-1"}, {}, "query.after_version"),
        (f"{base}/events", {}, {b"Last-Event-ID": b"99999999999999999999"}, "header.last-event-id"),
        (f"{base}/events", {}, {b"Last-Event-ID": "²".encode()}, "header.last-event-id"),
    ]
    for path, params, headers, where in cases:
        async with running_api.http.stream(
            "GET",
            path,
            params=params,
            headers={b"Authorization": f"Bearer {auditor}".encode(), **headers},
        ) as response:
            await response.aread()
            assert response.status_code == 422, (path, params, response.text)
            assert error(response)["fields"][0]["path"] == where
    key = await running_api.http.post(
        f"{base}/record-meeting",
        json=meeting("k1"),
        headers={**bearer(coordinator), "Idempotency-Key": "two words"},
    )
    assert key.status_code == 422 and error(key)["fields"][0]["path"] == "header.idempotency-key"


async def test_a_registration_the_store_refuses_is_422_and_leaves_the_id_free(
    running_api: RunningApi, coordinator: str
) -> None:
    """When the event store refuses a registration's data (here a constraint the test
    adds, a data error no retry can fix), the caller gets a 422 within seconds, not a 503
    after minutes of retries; the mission id stays free, and the corrected registration
    is a 201."""
    mission_id = f"edge-{uuid.uuid4().hex[:8]}"
    pool = running_api.missions.store.pool
    constraint = f"edge_poison_{uuid.uuid4().hex[:8]}"
    await pool.execute(
        f"ALTER TABLE events ADD CONSTRAINT {constraint} "
        "CHECK (data->>'inviting_authority' IS DISTINCT FROM 'poison authority') NOT VALID"
    )
    try:
        poisoned = seed.registration(mission_id).model_copy(
            update={"inviting_authority": "poison authority"}
        )
        started = time.monotonic()
        refused = await running_api.http.post(
            "/v1/missions", json=poisoned.model_dump(mode="json"), headers=bearer(coordinator)
        )
        assert time.monotonic() - started < 10
    finally:
        await pool.execute(f"ALTER TABLE events DROP CONSTRAINT {constraint}")
    assert refused.status_code == 422, refused.text
    assert error(refused)["code"] == "invalid_input"
    assert "constraint" not in refused.text and constraint not in refused.text
    assert "Retry-After" not in refused.headers
    assert await running_api.missions.store.stream_version(mission_id) == 0
    corrected = await running_api.http.post(
        "/v1/missions",
        json=seed.registration(mission_id).model_dump(mode="json"),
        headers=bearer(coordinator),
    )
    assert corrected.status_code == 201, corrected.text
    shown = await running_api.http.get(f"/v1/missions/{mission_id}", headers=bearer(coordinator))
    assert shown.status_code == 200 and shown.json()["stage"] == "invited"


async def test_a_burst_of_commands_to_one_mission_gets_no_500(
    running_api: RunningApi, pre_election: str, coordinator: str
) -> None:
    """120 commands at once to one mission (Temporal admits 10 updates in flight per
    workflow): each is answered once, 200 or 503 ``mission_busy`` with Retry-After,
    never a 500, and every 200 is recorded exactly once."""
    path = f"/v1/missions/{pre_election}/record-meeting"
    before = await running_api.missions.store.stream_version(pre_election)
    responses = await asyncio.gather(
        *(
            running_api.http.post(
                path, json=meeting(f"burst-{n}"), headers=bearer(coordinator), timeout=120
            )
            for n in range(120)
        )
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert error(response)["code"] == "mission_busy"
            assert response.headers["Retry-After"]
    accepted = statuses.count(200)
    assert accepted >= 60, statuses  # the burst waits its turn; it is not refused wholesale
    events = await running_api.missions.store.read_stream(pre_election, from_version=before + 1)
    recorded = [e.data["meeting_id"] for e in events if e.event_type == "MeetingRecorded"]
    assert len(recorded) == len(set(recorded)) == accepted


async def burst(
    missions: Missions, mission_id: str, prefix: str, count: int
) -> list[CommandResult | BaseException]:
    """``count`` meetings recorded at once, in process; each result or refusal."""
    return await asyncio.gather(
        *(
            missions.execute(
                mission_id,
                c.RecordMeeting.model_validate(meeting(f"{prefix}-{n}")),
                actor="coordinator:test",
            )
            for n in range(count)
        ),
        return_exceptions=True,
    )


async def test_a_mission_that_stays_busy_answers_503_mission_busy(
    running_api: RunningApi, pre_election: str
) -> None:
    """With no time to wait, the commands beyond those a mission takes at once are
    refused with ``mission_busy`` (nothing recorded), the others recorded once."""
    missions = running_api.missions
    impatient = type(missions)(
        client=missions.client,
        store=missions.store,
        task_queue=missions.task_queue,
        busy_seconds=0.05,
    )
    before = await missions.store.stream_version(pre_election)
    results = await burst(impatient, pre_election, "busy", 30)
    refused = [r for r in results if isinstance(r, Exception)]
    assert refused, "some commands found the mission busy"
    assert {getattr(r, "rule", None) for r in refused} == {"mission_busy"}
    after = await missions.store.stream_version(pre_election)
    assert after - before == len(results) - len(refused)


async def test_commands_racing_a_continue_as_new_are_answered_once(
    running_api: RunningApi,
) -> None:
    """A mission whose runs are short (continue-as-new every ~100 history events) takes a
    burst of commands: updates the server turns away while the run changes are sent again
    to the next run, none is lost or applied twice, none surfaces as a raw error."""
    missions = running_api.missions
    short = type(missions)(
        client=missions.client,
        store=missions.store,
        task_queue=missions.task_queue,
        max_history_events=100,
    )
    mission_id = f"edge-can-{uuid.uuid4().hex[:8]}"
    for command in until(seed.mission(mission_id), c.RecordMeeting):
        await short.execute(mission_id, command, actor="coordinator:test")
    before = await missions.store.stream_version(mission_id)
    results = await burst(short, mission_id, "can", 40)
    assert len({r.command_id for r in results if isinstance(r, CommandResult)}) == 40
    events = await missions.store.read_stream(mission_id, from_version=before + 1)
    assert sorted(e.data["meeting_id"] for e in events) == sorted(f"can-{n}" for n in range(40))
    runs = [
        run async for run in missions.client.list_workflows(f"WorkflowId = 'mission-{mission_id}'")
    ]
    assert len(runs) >= 2, "the mission continued as new during the burst"
    # While a run is to continue as new it takes no more updates: a burst cannot grow its
    # history on and on (a run past Temporal's history limits is terminated).
    for run in runs:
        history = await missions.client.get_workflow_handle(
            f"mission-{mission_id}", run_id=run.run_id
        ).fetch_history()
        assert len(history.events) < 100 + 100, run.run_id


async def test_a_record_too_large_for_the_workflow_is_refused_by_its_rule(
    running_api: RunningApi, coordinator: str
) -> None:
    """Recommendations by the thousand (each command within its bounds) would take the
    state the mission's workflow carries past a Temporal payload: the command that would
    is refused (``mission_record_full``, 409, the dry run too), nothing of it recorded,
    and the mission goes on taking commands."""
    mission_id = f"edge-full-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    await drive(running_api, mission_id, until(commands, c.IssueRecommendations))
    path = f"/v1/missions/{mission_id}/issue-recommendations"

    def batch(n: int) -> dict[str, Any]:
        return {
            "recommendations": [
                {
                    "id": f"R-{n:03d}-{i:03d}-" + "x" * 80,
                    "text": "t",
                    "priority": "other",
                    "addressee": "central_election_commission",
                    "area": "a",
                }
                for i in range(500)
            ]
        }

    refused = None
    for n in range(40):
        response = await running_api.http.post(path, json=batch(n), headers=bearer(coordinator))
        if response.status_code != 200:
            refused = n, response
            break
    assert refused is not None, "the record never filled"
    n, response = refused
    assert response.status_code == 409 and error(response)["code"] == "mission_record_full"
    dry = await running_api.http.post(
        path, json=batch(n), headers=bearer(coordinator), params={"dry_run": "true"}
    )
    assert dry.json()["refusal"]["code"] == "mission_record_full"
    state = await running_api.missions.state(mission_id)
    assert len(state.recommendations) == 500 * n
    send = next(cmd for cmd in commands if isinstance(cmd, c.SendRecommendations))
    sent = await running_api.http.post(
        command_path(mission_id, send),
        json=send.model_dump(mode="json"),
        headers=bearer(coordinator),
    )
    assert sent.status_code == 200, sent.text


async def test_one_idempotency_key_runs_one_body(
    running_api: RunningApi, pre_election: str, coordinator: str
) -> None:
    """Requests racing with one Idempotency-Key: exactly one body runs; the same body
    waits and gets the first result; another body is a 409 ``idempotency_key_reused``."""
    path = f"/v1/missions/{pre_election}/record-meeting"
    before = await running_api.missions.store.stream_version(pre_election)
    headers = {**bearer(coordinator), "Idempotency-Key": f"race-{uuid.uuid4().hex[:8]}"}
    bodies = [meeting("race-a")] * 3 + [meeting("race-b")] * 3
    dry_bodies = [meeting("race-a"), meeting("race-b")] * 2
    everything = await asyncio.gather(
        *(running_api.http.post(path, json=b, headers=headers) for b in bodies),
        *(
            running_api.http.post(path, json=b, headers=headers, params={"dry_run": "true"})
            for b in dry_bodies
        ),
    )
    responses, dry_runs = everything[: len(bodies)], everything[len(bodies) :]
    ok = [r for r in responses if r.status_code == 200]
    conflicts = [r for r in responses if r.status_code == 409]
    assert len(ok) == 3 and len(conflicts) == 3, [r.status_code for r in responses]
    assert {error(r)["code"] for r in conflicts} == {"idempotency_key_reused"}
    assert len({r.text for r in ok}) == 1
    events = await running_api.missions.store.read_stream(pre_election, from_version=before + 1)
    assert len(events) == 1 and events[0].event_type == "MeetingRecorded"
    winner = events[0].data["meeting_id"]
    sent = [json.loads(r.request.content)["meeting_id"] for r in responses]
    assert {m for m, r in zip(sent, responses, strict=True) if r.status_code == 200} == {winner}
    assert winner not in {m for m, r in zip(sent, responses, strict=True) if r.status_code == 409}
    # Dry runs racing the key answer as a real request would at that moment: the
    # winner's body is accepted (before the key was taken, or as the first result, never
    # refused as a duplicate of itself); the other body reuses the key, unless it came
    # before the key was taken.
    for body, dry in zip(dry_bodies, dry_runs, strict=True):
        if body["meeting_id"] == winner:
            assert dry.status_code == 200 and dry.json()["accepted"], dry.text
        else:
            assert (dry.status_code == 200 and dry.json()["accepted"]) or (
                dry.status_code == 409 and error(dry)["code"] == "idempotency_key_reused"
            ), dry.text


async def test_the_head_of_mission_approves_a_draft_once(running_api: RunningApi) -> None:
    """The same approval again is refused by its rule (``already_approved``), as a dry
    run too; one approval is recorded."""
    mission_id = f"edge-{uuid.uuid4().hex[:8]}"
    commands = seed.mission(mission_id)
    await drive(running_api, mission_id, until(commands, c.ApproveStatement))
    approval = next(cmd for cmd in commands if isinstance(cmd, c.ApproveStatement))
    token = await running_api.token(R.head_of_mission, seed.HEAD_OF_MISSION, mission_id=mission_id)
    path = command_path(mission_id, approval)
    body = approval.model_dump(mode="json")
    first = await running_api.http.post(path, json=body, headers=bearer(token))
    assert first.status_code == 200, first.text
    for dry_run in (True, False):
        again = await running_api.http.post(
            path, json=body, headers=bearer(token), params={"dry_run": "true"} if dry_run else None
        )
        refusal = again.json()["refusal"] if dry_run else error(again)
        assert refusal["code"] == "already_approved", again.text
    events = await running_api.missions.events(mission_id)
    assert [e.event_type for e in events].count("StatementApproved") == 1


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each Server-Sent Event."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield fields.get("event", "message"), fields["data"]
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def last_event(response: httpx.Response, within: float) -> tuple[str, str]:
    """Read the stream to its end; the last event."""
    found = ("", "")

    async def drain() -> None:
        nonlocal found
        async for event in sse(response):
            found = event

    await asyncio.wait_for(drain(), within)
    return found


async def test_a_live_stream_ends_when_its_token_expires_or_is_revoked(
    running_api: RunningApi, pre_election: str
) -> None:
    """A stream checks its token every half second here (EOM_API_STREAM_CHECK_SECONDS):
    it ends, with an ``end`` event saying why, once the token expired or was revoked."""
    path = f"/v1/missions/{pre_election}/events"
    expiring, _ = await running_api.tokens.create(
        role=R.auditor, name="brief", expires_in=timedelta(seconds=2)
    )
    started = time.monotonic()
    async with running_api.http.stream("GET", path, headers=bearer(expiring)) as response:
        assert response.status_code == 200
        name, data = await last_event(response, within=15)
    assert name == "end" and "expired" in data
    assert time.monotonic() - started < 10
    revoked, principal = await running_api.tokens.create(role=R.auditor, name="revoked")
    async with running_api.http.stream("GET", path, headers=bearer(revoked)) as response:
        assert response.status_code == 200
        await running_api.tokens.revoke(principal.token_id)
        name, data = await last_event(response, within=15)
    assert name == "end" and "revoked" in data


async def test_a_token_holds_a_bounded_number_of_streams(
    running_api: RunningApi, pre_election: str
) -> None:
    """Beyond ``STREAMS_PER_TOKEN`` open streams a token gets a 429 ``too_many_streams``;
    closing one frees its place."""
    token = await running_api.token(R.auditor)
    path = f"/v1/missions/{pre_election}/events"
    async with contextlib_streams(running_api, path, token, STREAMS_PER_TOKEN) as opened:
        assert [r.status_code for r in opened] == [200] * STREAMS_PER_TOKEN
        extra = await running_api.http.get(path, headers=bearer(token))
        assert extra.status_code == 429 and error(extra)["code"] == "too_many_streams"
        assert extra.headers["Retry-After"]
    async with running_api.http.stream("GET", path, headers=bearer(token)) as again:
        assert again.status_code == 200


class contextlib_streams:
    """Hold ``count`` streams open, each read in the background."""

    def __init__(self, api: RunningApi, path: str, token: str, count: int) -> None:
        self.api, self.path, self.token, self.count = api, path, token, count
        self.stack: list[Any] = []

    async def __aenter__(self) -> list[httpx.Response]:
        opened = []
        for _ in range(self.count):
            manager = self.api.http.stream("GET", self.path, headers=bearer(self.token))
            self.stack.append(manager)
            opened.append(await manager.__aenter__())
        return opened

    async def __aexit__(self, *exc: object) -> None:
        for manager in reversed(self.stack):
            await manager.__aexit__(None, None, None)
        await asyncio.sleep(0.2)  # the server sees the streams closed


async def test_bodies_over_the_limit_are_413_however_sent(
    running_api: RunningApi, pre_election: str, coordinator: str
) -> None:
    """Declared by Content-Length or sent chunked with none: 413 ``body_too_large``, in
    the API's error shape."""
    path = f"/v1/missions/{pre_election}/record-meeting"
    big = b'{"summary": "' + b"x" * 1_200_000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65_536):
            yield big[start : start + 65_536]

    headers = {**bearer(coordinator), "Content-Type": "application/json"}
    declared = await running_api.http.post(path, content=big, headers=headers)
    chunked = await running_api.http.post(path, content=chunks(), headers=headers)
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert error(response)["code"] == "body_too_large"
    # A live stream reads no body: one sent with it anyway, chunked past the limit, is a
    # 413 if it arrives before the stream begins, and otherwise ends the stream.
    stream = f"/v1/missions/{pre_election}/events"
    async with running_api.http.stream(
        "GET", stream, content=chunks(), headers=bearer(coordinator), timeout=30
    ) as response:
        assert response.status_code in (200, 413)
        with contextlib.suppress(httpx.RemoteProtocolError):  # the stream cut short
            await asyncio.wait_for(response.aread(), 20)


async def test_a_recipient_in_a_path_is_one_line_of_text(
    running_api: RunningApi, pre_election: str
) -> None:
    """A control character or a line separator in the recipient's path segment is a 422
    naming it."""
    auditor = await running_api.token(R.auditor)
    for segment in ("%00", "%E2%80%A8", "AZ%0D%0ABcc"):
        response = await running_api.http.get(
            f"/v1/missions/{pre_election}/recipients/{segment}", headers=bearer(auditor)
        )
        assert response.status_code == 422, response.text
        assert error(response)["fields"][0]["path"] == "path.recipient"


async def test_another_organisations_missions_are_not_revealed(
    running_api: RunningApi, pre_election: str
) -> None:
    """A mission outside the token's scope is answered as one that does not exist; an id
    another organisation uses cannot be registered, and the refusal says nothing of it."""
    other = await running_api.token(R.coordinator, organisation="OSCE/ODIHR")
    nowhere = f"edge-none-{uuid.uuid4().hex[:6]}"
    for route in ("", "/timeline", "/visits"):
        hidden = await running_api.http.get(
            f"/v1/missions/{pre_election}{route}", headers=bearer(other)
        )
        missing = await running_api.http.get(
            f"/v1/missions/{nowhere}{route}", headers=bearer(other)
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["message"].replace(pre_election, "X") == (
            missing.json()["error"]["message"].replace(nowhere, "X")
        )
    command = c.RecordMeeting.model_validate(meeting("hidden"))
    hidden_post = await running_api.http.post(
        command_path(pre_election, command),
        json=command.model_dump(mode="json"),
        headers=bearer(other),
    )
    assert hidden_post.status_code == 404
    registration = seed.registration(pre_election).model_copy(update={"organisation": "OSCE/ODIHR"})
    for dry_run in (True, False):
        taken = await running_api.http.post(
            "/v1/missions",
            json=registration.model_dump(mode="json"),
            headers=bearer(other),
            params={"dry_run": "true"} if dry_run else None,
        )
        found = taken.json()["refusal"] if dry_run else error(taken)
        assert found["code"] == "mission_id_unavailable", taken.text
        assert ORGANISATION not in taken.text and "registered" not in taken.text
    own = await running_api.token(R.coordinator, organisation=ORGANISATION)
    again = await running_api.http.post(
        "/v1/missions",
        json=seed.registration(pre_election).model_dump(mode="json"),
        headers=bearer(own),
    )
    assert again.status_code == 409 and error(again)["code"] == "mission_already_registered"
