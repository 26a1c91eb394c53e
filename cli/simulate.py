"""``eom simulate election-day``: a simulated election day against the running service.

Sets up a mission through the HTTP API (or takes one whose election day is open), then
sends the reports of ``intake.simulation.ElectionDay`` the way teams' devices send them:

- **Open-loop pacing.** Report ``j`` is due at ``start + j / rate``, whatever the service
  does; a report's latency is from when it was due to when it was acknowledged, so a
  service that falls behind shows it in the latency instead of slowing the load down.
- **One device per team.** Each team sends its own reports in order, one request at a
  time, with its own observer token; reports that fell due while a request was out go in
  the next request (a device syncing its backlog), never a report twice in one request.
  At most ``concurrency`` requests are out at once across all teams.
- **Until acknowledged.** A 503, a connection error or a timeout sends the same request
  again (a report that was recorded meanwhile is answered with its first receipt); a 429
  waits as long as ``Retry-After`` says. A request refused with 422 wrote nothing: its
  refused reports are counted with their rules and the rest are sent again.

Setting up gives about three commands per team with the coordinator's token (member
states nominate with their own): the API's per-token command limit
(``EOM_API_SUBMISSION_RATE``, 120/minute by default) makes a large setup wait as
``Retry-After`` says.

The core is ``simulate`` (a base URL or an httpx client, and a way to create tokens),
and ``send_reports`` below it; the typer command wraps it with the service's settings
and a token store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import islice
from typing import Annotated, Any, Protocol

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.tokens import Role, TokenStore
from cli import seed
from cli.api_client import command_path
from cli.commands import InputError
from cli.services import NotRunning, read_runtime, resolve
from domain import commands as c
from domain.commands import Command
from domain.state import Mission
from domain.submissions import PollingStation
from domain.values import RECORDED, ObserverRole, Stage
from eventstore.store import create_pool
from intake.simulation import ElectionDay, Sending, polling_stations
from worker import Settings, configure_logging

STATION_CHUNK = 2_000
"""Stations registered per request (well under the API's body limit)."""
RETRY_STATUSES = {500, 502, 503, 504}


class MakeToken(Protocol):
    """Creates a bearer token: ``role``, the holder's ``name``, and its scope
    (``mission_id``, ``team_id``, ``member_state``, ``organisation``)."""

    def __call__(self, role: Role, name: str, **scope: str) -> Awaitable[str]: ...


class SimulationError(Exception):
    """The simulation could not go on (a setup command refused, an unexpected answer)."""


class MissionNotReady(SimulationError):
    """The mission named cannot take the simulated reports; the message says what is missing."""


@dataclass(frozen=True)
class Plan:
    """What to simulate."""

    teams: int = 10
    stations: int = 200
    rate: float = 50.0
    """Target reports per second."""
    reports: int | None = None
    """Reports to send (default: 10 per station)."""
    concurrency: int = 32
    """Requests out at once, across all teams."""
    seed: int = 2021
    max_batch: int = 200
    """Most reports a device sends in one request (the API takes up to 500)."""
    give_up_after: float = 60.0
    """Seconds a request is sent again (503, connection errors) before it is given up."""

    def __post_init__(self) -> None:
        if self.teams < 1 or self.stations < 1:
            raise ValueError("a simulated election day needs at least one team and one station")
        if not self.rate > 0:
            raise ValueError("the rate must be above 0 reports/s")
        if self.reports is not None and self.reports < 1:
            raise ValueError("send at least one report")
        if self.concurrency < 1 or not 1 <= self.max_batch <= 500:
            raise ValueError("concurrency must be at least 1, max_batch 1..500")

    @property
    def total(self) -> int:
        return self.reports if self.reports is not None else 10 * self.stations


@dataclass(frozen=True)
class Ground:
    """The mission the reports go to."""

    mission_id: str
    election_day: date
    teams: list[str]
    stations: list[PollingStation]
    created: bool


@dataclass
class Outcome:
    """What happened to each sending, and the run's numbers."""

    ground: Ground
    plan: Plan
    sendings: list[Sending]
    answers: list[str | None]
    """Per sending: ``recorded``, ``duplicate`` (its receipt's status), ``refused``, or
    ``None`` when it was never acknowledged."""
    refused: Counter[str] = field(default_factory=Counter)
    """Refused reports by rule."""
    conflicts: int = 0
    """Receipts that flagged their station as reported by more than one team."""
    resends: int = 0
    """Reports sent again (after a 503, a connection error, a 429 or a refusal of others)."""
    rate_limited: int = 0
    """Requests answered 429."""
    misanswered: int = 0
    """Resends of an acknowledged report that were recorded again instead of being
    answered as duplicates."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from when each acknowledged report was due to its acknowledgement."""
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    """The first refusals and failures, as the service named them."""

    def count(self, answer: str | None) -> int:
        return sum(1 for a in self.answers if a == answer)

    @property
    def sent(self) -> int:
        return len(self.sendings)

    @property
    def acknowledged(self) -> int:
        return self.count("recorded") + self.count("duplicate")

    @property
    def corrections(self) -> int:
        return sum(
            1
            for s, a in zip(self.sendings, self.answers, strict=True)
            if a == "recorded" and s.submission.corrects is not None
        )

    @property
    def not_acknowledged(self) -> int:
        return self.count(None)

    @property
    def achieved_rate(self) -> float:
        return self.acknowledged / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every report acknowledged, none refused, every resend answered as such."""
        return not self.refused and not self.not_acknowledged and not self.misanswered

    def latency_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; ``ordered`` sorted ascending."""
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def setup_commands(mission_id: str, teams: int) -> list[Command]:
    """The seed mission's formation with ``teams`` teams: registration, head of mission,
    two observers per team from different member states (nominated, then accepted), the
    teams, deployment and the opening of election day."""
    states = seed.MEMBER_STATES
    nominations: list[c.NominateObserver] = []
    formed: list[c.FormTeam] = []
    for n in range(1, teams + 1):
        pair = [
            (states[(n - 1) % len(states)], "cec", "CEC representative"),
            (states[n % len(states)], "diplomat", "Diplomat"),
        ]
        members = []
        for state, kind, label in pair:
            members.append(f"{state.lower()}-{kind}-{n}")
            nominations.append(
                c.NominateObserver(
                    observer_id=members[-1],
                    member_state=state,
                    name=f"{label} {n} of {state}",
                    role=ObserverRole.short_term_observer,
                    code_of_conduct_signed=True,
                    conflict_of_interest_declared=True,
                )
            )
        formed.append(c.FormTeam(team_id=f"team-{n}", observer_ids=members))
    return [
        seed.registration(mission_id),
        c.AppointHeadOfMission(
            name=seed.HEAD_OF_MISSION, title="Deputy Secretary General of the Turkic Council"
        ),
        *nominations,
        *(c.AcceptObserver(observer_id=o.observer_id) for o in nominations),
        *formed,
        c.DeployMission(deployed_on=seed.registration(mission_id).mission_window.start),
        c.OpenElectionDay(),
    ]


def _error(response: httpx.Response) -> tuple[str, str, list[dict[str, Any]]]:
    """The error's code, message and fields (the API's one error shape, or the raw text)."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}", response.text[:200], []
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return (
        str(error.get("code", f"http_{response.status_code}")),
        str(error.get("message", response.text[:200])),
        list(error.get("fields") or []),
    )


def _retry_after(response: httpx.Response, default: float) -> float:
    given = response.headers.get("Retry-After")
    try:
        seconds = float(given) if given is not None else default
    except ValueError:
        return default
    return seconds if seconds > 0 else 0.0


def _backoff(attempt: int) -> float:
    return min(2.0, 0.1 * 2.0**attempt)


Say = Callable[[str], object] | None
"""Where setup progress goes: a rich ``Status``'s ``update``, or nowhere."""


class _Api:
    """Requests with retries: 503, 5xx and connection errors are sent again, 429s wait."""

    def __init__(self, http: httpx.AsyncClient, *, give_up_after: float) -> None:
        self.http = http
        self.give_up_after = give_up_after
        self.say: Say = None

    async def post(
        self, path: str, body: Any, *, token: str, key: str | None = None, **params: str
    ) -> httpx.Response:
        """The first answer that is neither a 429 nor a transient failure."""
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.give_up_after
        attempt = 0
        while True:
            try:
                response = await self.http.post(path, json=body, headers=headers, params=params)
            except httpx.TransportError as error:
                wait, why = _backoff(attempt), f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 429:
                    wait = _retry_after(response, 1.0)
                    if self.say is not None:
                        self.say(f"POST {path}: rate limited by the API, waiting {wait:.0f}s")
                    await asyncio.sleep(wait)
                    continue
                if response.status_code not in RETRY_STATUSES:
                    return response
                code, message, _ = _error(response)
                wait, why = _retry_after(response, _backoff(attempt)), f"{code}: {message}"
            if time.monotonic() + wait > deadline:
                raise SimulationError(
                    f"POST {path} failed for {self.give_up_after:.0f}s ({why}); is eom up?"
                )
            attempt += 1
            await asyncio.sleep(wait)


async def _reachable(http: httpx.AsyncClient) -> None:
    try:
        response = await http.get("/health")
    except httpx.TransportError as error:
        raise NotRunning(
            f"no eom API answers at {http.base_url} ({type(error).__name__}): start the "
            "service with `eom up`, or point --api at a running one"
        ) from None
    if response.status_code != 200:
        raise NotRunning(
            f"{http.base_url} answered /health with HTTP {response.status_code}: is it eom's "
            "API? (`eom up` serves it)"
        )


async def fresh_mission(
    api: _Api, coordinator: str, make_token: MakeToken, plan: Plan, say: Say = None
) -> Ground:
    """A new mission through the API: formed, deployed, stations registered, election
    day open."""
    mission_id = f"sim-{uuid.uuid4().hex[:10]}"
    commands = setup_commands(mission_id, plan.teams)
    member_tokens: dict[str, str] = {}
    stations = polling_stations(plan.stations)
    api.say = say

    async def run(n: int, command: Command) -> None:
        token = coordinator
        if isinstance(command, c.NominateObserver):
            state = command.member_state
            if state not in member_tokens:
                member_tokens[state] = await make_token(
                    Role.member_state,
                    f"simulated focal point {state}",
                    member_state=state,
                    mission_id=mission_id,
                )
            token = member_tokens[state]
        if say is not None:
            say(f"setting up mission {mission_id}: {command.type} ({n + 1}/{len(commands)})")
        response = await api.post(
            command_path(mission_id, command),
            command.model_dump(mode="json"),
            token=token,
            key=f"simulate:{mission_id}:{n}",
        )
        if response.status_code not in (200, 201):
            code, message, _ = _error(response)
            raise SimulationError(
                f"setting up mission {mission_id}: {command.type} answered "
                f"HTTP {response.status_code} {code}: {message}"
            )

    for n, command in enumerate(commands[:-1]):
        await run(n, command)
    for start in range(0, len(stations), STATION_CHUNK):
        if say is not None:
            say(f"setting up mission {mission_id}: registering {len(stations)} polling stations")
        chunk = stations[start : start + STATION_CHUNK]
        response = await api.post(
            f"/v1/missions/{mission_id}/stations",
            {"stations": [s.model_dump(mode="json") for s in chunk]},
            token=coordinator,
        )
        if response.status_code != 200:
            code, message, _ = _error(response)
            raise SimulationError(
                f"registering stations: HTTP {response.status_code} {code}: {message}"
            )
    await run(len(commands) - 1, commands[-1])
    return Ground(
        mission_id=mission_id,
        election_day=seed.ELECTION_DAY,
        teams=[t.team_id for t in commands if isinstance(t, c.FormTeam)],
        stations=stations,
        created=True,
    )


async def existing_mission(api: _Api, coordinator: str, mission_id: str, plan: Plan) -> Ground:
    """A mission that can take the reports: election day open, ``plan.teams`` teams with
    accepted observers, the simulation's ``plan.stations`` stations registered."""
    try:
        response = await api.http.get(
            f"/v1/missions/{mission_id}", headers={"Authorization": f"Bearer {coordinator}"}
        )
    except httpx.TransportError as error:
        raise SimulationError(f"reading mission {mission_id}: {error}") from None
    if response.status_code in (404, 422):
        raise MissionNotReady(
            f"no mission {mission_id!r} at {api.http.base_url}; leave MISSION out to set up "
            "a fresh one"
        )
    if response.status_code != 200:
        code, message, _ = _error(response)
        raise SimulationError(
            f"reading mission {mission_id}: HTTP {response.status_code} {code}: {message}"
        )
    mission = Mission.model_validate(response.json(), context=RECORDED)
    if mission.stage is not Stage.election_day or mission.election is None:
        stage = mission.stage.value if mission.stage else "not registered"
        raise MissionNotReady(
            f"mission {mission_id} is {stage}: its election day must be open "
            f"(eom mission open-election-day {mission_id})"
        )
    teams = [t for t in mission.teams if mission.active_members(t)]
    if len(teams) < plan.teams:
        raise MissionNotReady(
            f"mission {mission_id} has {len(teams)} team(s) with accepted observers "
            f"({', '.join(teams) or 'none'}); --teams {plan.teams} needs {plan.teams}"
        )
    stations = polling_stations(plan.stations)
    missing: list[str] = []
    for start in range(0, len(stations), STATION_CHUNK):
        # A dry run of registering them: what it would add is what the mission lacks.
        response = await api.post(
            f"/v1/missions/{mission_id}/stations",
            {"stations": [s.model_dump(mode="json") for s in stations[start:][:STATION_CHUNK]]},
            token=coordinator,
            dry_run="true",
        )
        if response.status_code != 200:
            code, message, _ = _error(response)
            raise SimulationError(
                f"checking stations: HTTP {response.status_code} {code}: {message}"
            )
        check = response.json()
        if not check.get("accepted"):
            refusal = check.get("refusal") or {}
            raise MissionNotReady(
                f"mission {mission_id}'s polling stations are not the simulation's: "
                f"{refusal.get('message', refusal)}"
            )
        missing += [s["station_id"] for e in check.get("events", []) for s in e["stations"]]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MissionNotReady(
            f"mission {mission_id} has not registered {len(missing)} of the {len(stations)} "
            f"polling stations the simulation reports from ({shown}): register them "
            f"(POST /v1/missions/{mission_id}/stations) or ask for fewer --stations"
        )
    return Ground(
        mission_id=mission_id,
        election_day=mission.election.date,
        teams=teams[: plan.teams],
        stations=stations,
        created=False,
    )


@dataclass
class _Due:
    index: int
    sending: Sending
    at: float


_REPORT_INDEX = re.compile(r"reports(?:\[(\d+)\]|\.(\d+))")


class _Election:
    """The devices sending the day's reports, and what came back."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        ground: Ground,
        plan: Plan,
        sendings: list[Sending],
        tokens: dict[str, str],
    ) -> None:
        self.http = http
        self.ground = ground
        self.plan = plan
        self.tokens = tokens
        self.outcome = Outcome(ground, plan, sendings, [None] * len(sendings))
        self.acknowledged: set[str] = set()
        self.limit = asyncio.Semaphore(plan.concurrency)
        self.recent: deque[float] = deque()
        self.done = 0

    async def run(self, progress: Progress | None) -> Outcome:
        start = time.monotonic() + 0.05
        queues: dict[str, list[_Due]] = {team: [] for team in self.tokens}
        for n, sending in enumerate(self.outcome.sendings):
            queues[sending.submission.team_id].append(_Due(n, sending, start + n / self.plan.rate))
        live = _Live(progress, len(self.outcome.sendings)) if progress is not None else None
        watcher = asyncio.create_task(self._watch(live, start)) if live is not None else None
        try:
            async with asyncio.TaskGroup() as group:
                for team, queue in queues.items():
                    group.create_task(self._device(team, queue))
        except* SimulationError as failed:
            raise failed.exceptions[0] from None
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        self.outcome.elapsed = time.monotonic() - start
        if live is not None:
            live.show(self.done, self.outcome.achieved_rate, self.outcome.latencies)
        return self.outcome

    async def _watch(self, live: _Live, start: float) -> None:
        """Throughput over the last few seconds, latency over the whole run so far."""
        window = 3.0
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            while self.recent and self.recent[0] < now - window:
                self.recent.popleft()
            seconds = min(window, max(0.25, now - start))
            live.show(self.done, len(self.recent) / seconds, self.outcome.latencies)

    async def _device(self, team: str, queue: list[_Due]) -> None:
        """One team's device: its reports in order, one request at a time."""
        position = 0
        while position < len(queue):
            wait = queue[position].at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic()
            batch: list[_Due] = []
            ids: set[str] = set()
            while (
                position < len(queue)
                and queue[position].at <= now
                and len(batch) < self.plan.max_batch
                and queue[position].sending.submission.submission_id not in ids
            ):
                batch.append(queue[position])
                ids.add(queue[position].sending.submission.submission_id)
                position += 1
            await self._deliver(team, batch)

    async def _deliver(self, team: str, batch: list[_Due]) -> None:
        """Send ``batch`` until every report of it is acknowledged, refused or given up."""
        outcome = self.outcome
        pending = batch
        path = f"/v1/missions/{self.ground.mission_id}/reports"
        headers = {"Authorization": f"Bearer {self.tokens[team]}"}
        deadline = time.monotonic() + self.plan.give_up_after
        attempt = 0
        while pending:
            body = {"reports": [d.sending.submission.model_dump(mode="json") for d in pending]}
            why = ""
            try:
                async with self.limit:
                    response = await self.http.post(path, json=body, headers=headers)
            except httpx.TransportError as error:
                wait, why = _backoff(attempt), f"{type(error).__name__}: {error}"
            else:
                status = response.status_code
                if status == 200:
                    self._acknowledged(pending, response.json()["receipts"])
                    return
                code, message, fields = _error(response)
                if status == 422:
                    refused = self._refused(pending, code, message, fields)
                    pending = [d for d in pending if d.index not in refused]
                    outcome.resends += len(pending)
                    continue
                if status == 429:
                    outcome.rate_limited += 1
                    wait = _retry_after(response, 1.0)
                    deadline += wait  # waiting as told is not failing
                elif status in RETRY_STATUSES:
                    wait, why = _retry_after(response, _backoff(attempt)), f"{code}: {message}"
                else:
                    raise SimulationError(
                        f"reports of {team} answered HTTP {status} {code}: {message}"
                    )
            if time.monotonic() + wait > deadline:
                self._note(
                    f"{len(pending)} report(s) of {team} not acknowledged after "
                    f"{self.plan.give_up_after:.0f}s: {why}"
                )
                self.done += len(pending)
                return
            attempt += 1
            outcome.resends += len(pending)
            await asyncio.sleep(wait)

    def _acknowledged(self, pending: list[_Due], receipts: list[dict[str, Any]]) -> None:
        outcome = self.outcome
        now = time.monotonic()
        for due, receipt in zip(pending, receipts, strict=True):
            submission_id = due.sending.submission.submission_id
            status = str(receipt["status"])
            if status == "recorded" and submission_id in self.acknowledged:
                outcome.misanswered += 1
                self._note(f"{submission_id} was acknowledged before, then recorded again")
            outcome.answers[due.index] = status
            outcome.conflicts += bool(receipt.get("conflict"))
            outcome.latencies.append(now - due.at)
            self.acknowledged.add(submission_id)
            self.recent.append(now)
        self.done += len(pending)

    def _refused(
        self, pending: list[_Due], code: str, message: str, fields: list[dict[str, Any]]
    ) -> set[int]:
        """The sendings (their indexes) that a 422 refused: each field names one report,
        by its position and, in the message, its submission id."""
        refused: dict[int, str] = {}
        for problem in fields:
            text = str(problem.get("message", ""))
            rule = text.split(":", 1)[0].strip() if ":" in text else code
            # The message names its report first ("submission 'x' names team ..."); the
            # path's position is a fallback (it can count only the reports not seen before).
            named = sorted(
                (text.find(f"'{d.sending.submission.submission_id}'"), n)
                for n, d in enumerate(pending)
                if f"'{d.sending.submission.submission_id}'" in text
            )
            if named:
                position = named[0][1]
            else:
                found = _REPORT_INDEX.search(str(problem.get("path", "")))
                position = int(found[1] or found[2]) if found else -1
            for due in pending[position : position + 1] if position >= 0 else []:
                refused.setdefault(due.index, rule)
                self._note(f"{due.sending.submission.submission_id} refused: {text}")
        if not refused:  # a refusal naming no report: the request as a whole
            refused = {d.index: code for d in pending}
            self._note(f"{len(pending)} report(s) refused: {code}: {message}")
        for index, rule in refused.items():
            self.outcome.answers[index] = "refused"
            self.outcome.refused[rule] += 1
        self.done += len(refused)
        return set(refused)

    def _note(self, problem: str) -> None:
        if len(self.outcome.problems) < 20:
            self.outcome.problems.append(problem)


async def send_reports(
    http: httpx.AsyncClient,
    ground: Ground,
    plan: Plan,
    sendings: list[Sending],
    tokens: dict[str, str],
    *,
    progress: Progress | None = None,
) -> Outcome:
    """Send ``sendings`` to ``ground``'s mission as its teams' devices (``tokens``: each
    team's bearer token) at ``plan.rate``; what came back of each."""
    return await _Election(http, ground, plan, sendings, tokens).run(progress)


class _Live:
    """The progress bar's task: reports answered, acknowledgements per second, latency."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("election day", total=total, rate=0.0, p50=0.0, p99=0.0)

    def show(self, completed: int, rate: float, latencies: Sequence[float]) -> None:
        ordered = sorted(latencies)
        self.progress.update(
            self.task,
            completed=completed,
            rate=rate,
            p50=percentile(ordered, 0.5) * 1000,
            p99=percentile(ordered, 0.99) * 1000,
        )


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.1f} acks/s"),
        TextColumn("p50 {task.fields[p50]:>7.1f} ms"),
        TextColumn("p99 {task.fields[p99]:>7.1f} ms"),
        TimeElapsedColumn(),
        console=console,
    )


@contextlib.asynccontextmanager
async def _client(api: str | httpx.AsyncClient, plan: Plan) -> AsyncIterator[httpx.AsyncClient]:
    if isinstance(api, httpx.AsyncClient):
        yield api
        return
    limits = httpx.Limits(max_connections=plan.concurrency + 4)
    async with httpx.AsyncClient(base_url=api, timeout=30, limits=limits) as http:
        yield http


async def simulate(
    api: str | httpx.AsyncClient,
    make_token: MakeToken,
    plan: Plan,
    *,
    mission_id: str | None = None,
    console: Console | None = None,
) -> Outcome:
    """Set up (or check) the mission, send the day's reports, and say what came back.

    ``api`` is the service's base URL or a client with that base URL; ``make_token``
    creates the coordinator's, the member states' and the teams' tokens; ``console``
    (optional) shows setup and a live progress bar."""
    async with _client(api, plan) as http:
        await _reachable(http)
        requests = _Api(http, give_up_after=plan.give_up_after)
        coordinator = await make_token(Role.coordinator, "simulate election-day")
        if mission_id is not None:
            ground = await existing_mission(requests, coordinator, mission_id, plan)
        elif console is not None:
            with console.status("setting up a mission") as status:
                ground = await fresh_mission(requests, coordinator, make_token, plan, status.update)
        else:
            ground = await fresh_mission(requests, coordinator, make_token, plan)
        day = ElectionDay(
            ground.mission_id, ground.election_day, ground.teams, ground.stations, seed=plan.seed
        )
        sendings = list(islice(day.sendings(plan.total), plan.total))
        tokens = {
            team: await make_token(
                Role.observer,
                f"simulated device {team}",
                mission_id=ground.mission_id,
                team_id=team,
            )
            for team in ground.teams
        }
        if console is None:
            return await send_reports(http, ground, plan, sendings, tokens)
        console.print(
            f"Mission [cyan]{ground.mission_id}[/] ({'set up' if ground.created else 'as found'}): "
            f"{len(ground.teams)} teams, {len(ground.stations)} polling stations; sending "
            f"{len(sendings)} reports at {plan.rate:g}/s",
            highlight=False,
        )
        with progress_bar(console) as progress:
            return await send_reports(http, ground, plan, sendings, tokens, progress=progress)


def summary_table(outcome: Outcome) -> Table:
    ground, plan = outcome.ground, outcome.plan
    whys = Counter(s.why for s in outcome.sendings)
    table = Table(title=f"Simulated election day of mission {ground.mission_id}")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    refused = ", ".join(f"{rule} x{n}" for rule, n in outcome.refused.most_common())
    rows = [
        ("teams / polling stations", f"{len(ground.teams)} / {len(ground.stations)}"),
        ("sent", f"{outcome.sent}"),
        ("  of which late / resent duplicates", f"{whys['late']} / {whys['duplicate']}"),
        ("acknowledged", f"{outcome.acknowledged}"),
        ("recorded", f"{outcome.count('recorded')}"),
        ("duplicates answered", f"{outcome.count('duplicate')}"),
        ("corrections", f"{outcome.corrections}"),
        ("conflicts flagged", f"{outcome.conflicts}"),
        ("refused", f"{sum(outcome.refused.values())}" + (f" ({refused})" if refused else "")),
        ("not acknowledged", f"{outcome.not_acknowledged}"),
        ("resends", f"{outcome.resends}"),
        ("rate limited (429)", f"{outcome.rate_limited}"),
        ("elapsed", f"{outcome.elapsed:.2f} s"),
        ("rate: target / achieved", f"{plan.rate:g} / {outcome.achieved_rate:.1f} reports/s"),
        (
            "latency p50 / p95 / p99 / max",
            " / ".join(f"{outcome.latency_ms(q):.1f}" for q in (0.5, 0.95, 0.99, 1.0)) + " ms",
        ),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


# -- the command ------------------------------------------------------------------------------

simulate_app = typer.Typer(
    help="Load the running service the way a mission's field work does.",
    no_args_is_help=True,
)
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@simulate_app.callback()
def simulate_callback() -> None:
    """Simulations against the running service (`eom up`)."""


def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter("must be above 0 (reports per second)")
    return value


def token_maker(store: TokenStore, *, lifetime: timedelta = timedelta(days=2)) -> MakeToken:
    """Tokens straight into the database, expiring after ``lifetime``."""

    async def make(role: Role, name: str, **scope: str) -> str:
        token, _ = await store.create(
            role=role,
            name=name,
            organisation=scope.get("organisation"),
            mission_id=scope.get("mission_id"),
            member_state=scope.get("member_state"),
            team_id=scope.get("team_id"),
            expires_in=lifetime,
        )
        return token

    return make


def api_url(given: str | None, settings: Settings) -> str:
    """``--api`` (or ``EOM_API_URL``), else the running ``eom up``'s API, else the
    settings' host and port."""
    if given:
        return given.rstrip("/")
    runtime = read_runtime()
    if runtime is not None and runtime.api_url:
        return runtime.api_url
    return f"http://{settings.api_host}:{settings.api_port}"


@simulate_app.command("election-day")
def election_day(
    mission: Annotated[
        str | None,
        typer.Argument(
            metavar="MISSION", help="a mission whose election day is open (default: set one up)"
        ),
    ] = None,
    teams: Annotated[
        int, typer.Option(min=1, max=10_000, help="observer teams, one device each")
    ] = 10,
    stations: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="polling stations reported from")
    ] = 200,
    rate: Annotated[
        float, typer.Option(callback=_positive, help="target reports per second")
    ] = 50.0,
    reports: Annotated[
        int | None,
        typer.Option(min=1, max=100_000_000, help="reports to send (default: 10 per station)"),
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            envvar="EOM_API_URL", help="the API's base URL (default: the running `eom up`'s)"
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=10_000, help="requests out at once, across all teams")
    ] = 32,
    seed_: Annotated[int, typer.Option("--seed", help="the generator's seed")] = 2021,
) -> None:
    """Send a simulated election day's reports at a target rate: each team a device with
    its own token, resending until acknowledged; live throughput and latency, then a
    summary. Exits 1 if any report was refused or not acknowledged."""
    plan = Plan(
        teams=teams,
        stations=stations,
        rate=rate,
        reports=reports,
        concurrency=concurrency,
        seed=seed_,
    )
    settings = Settings()
    if "EOM_LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    settings = resolve(settings)
    url = api_url(api, settings)

    async def main() -> Outcome:
        async with _client(url, plan) as http:
            await _reachable(http)  # before the database: the service is the first thing
            if not settings.database_url:
                raise NotRunning(
                    "no database to create the simulation's tokens in: start eom with "
                    "`eom up` (or set DATABASE_URL to the service's database)"
                )
            pool = await create_pool(settings.database_url, min_size=1, max_size=2)
            try:
                tokens = token_maker(TokenStore(pool))
                return await simulate(http, tokens, plan, mission_id=mission, console=console)
            finally:
                await pool.close()

    try:
        outcome = asyncio.run(main())
    except MissionNotReady as error:
        raise InputError(str(error)) from None
    except SimulationError as error:
        errors.print(f"error: {error}", highlight=False)
        raise typer.Exit(1) from None
    console.print(summary_table(outcome))
    for problem in outcome.problems:
        errors.print(f"  {problem}", highlight=False)
    if not outcome.ok:
        errors.print(
            f"[red]{sum(outcome.refused.values())} refused, {outcome.not_acknowledged} not "
            f"acknowledged, {outcome.misanswered} resends recorded twice[/]"
        )
        raise typer.Exit(1)
