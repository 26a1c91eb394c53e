"""The FastAPI application: routes under ``/v1``, each guarded by ``api.access``.

Commands take the same path as from the CLI (``Missions.execute``: a Temporal update
validated by ``decide``), with the token's principal recorded as the actor. Reads fold the
event store. This module deliberately has no ``from __future__ import annotations``:
routes are generated per command model, and FastAPI reads their annotations at runtime.
"""

import math
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from limits import parse as parse_rate
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from pydantic import BaseModel, Field

from api import errors
from api.access import check_command, in_scope, require_role, require_scope
from api.body_limit import BodyLimit
from api.errors import ApiError, ErrorBody, ErrorResponse
from api.feed import EventFeed
from api.idempotency import IdempotencyStore, Stored, command_id, request_hash
from api.tokens import Principal, TokenStore
from domain import DomainError
from domain.commands import COMMAND_TYPES, Command, RegisterInvitation
from domain.state import Delivery, Mission, StationVisit
from domain.submissions import PollingStation, Submission
from domain.values import Recommendation
from eventstore.models import RecordedEvent
from intake.writer import Intake, IntakeUnavailable, Receipt, StationsRegistered, SubmissionRefused
from workflows.client import CommandRefused, Missions
from workflows.messages import CommandResult

# Refusals that say the service, not the request, is at fault: retry later.
_TRANSIENT = {"mission_busy", "event_store_unavailable", "mission_not_running", "update_failed"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429)
}


class MissionListItem(BaseModel):
    mission_id: str
    stage: str
    host_country: str
    election: str
    election_day: str
    version: int


class DryRun(BaseModel):
    """What a command would record now, without recording it."""

    accepted: bool
    event_types: list[str]
    events: list[dict[str, Any]]
    refusal: ErrorBody | None = None


class ReportBatch(BaseModel):
    """Reports from the field: one, or a device's backlog sent when it is back online."""

    reports: Annotated[list[Submission], Field(min_length=1, max_length=500)]


class Receipts(BaseModel):
    receipts: list[Receipt]


class StationList(BaseModel):
    stations: Annotated[list[PollingStation], Field(min_length=1, max_length=20_000)]


class SentToRecipient(BaseModel):
    recipient: str
    deliveries: list[Delivery]
    recommendations: list[Recommendation]
    statement_published_on: str | None
    statement_sha256: str | None


def create_app(
    *,
    missions: Missions,
    tokens: TokenStore,
    idempotency: IdempotencyStore,
    feed: EventFeed,
    intake: Intake,
    max_body_bytes: int = 1_048_576,
    submission_rate: str = "120/minute",
    report_rate: str = "1200/minute",
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    app = FastAPI(
        title="eom",
        summary="Election observation missions: commands, state, timelines, live events.",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        responses=_ERRORS,
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        )
    bearer = HTTPBearer(auto_error=False, description="eom_... token from `eom token create`")
    limiter = MovingWindowRateLimiter(MemoryStorage())
    rate = parse_rate(submission_rate)
    report_limit = parse_rate(report_rate)
    # Reports arrive by the thousand a minute from many devices: a fixed window costs a
    # counter per token, where the moving window keeps (and walks) every hit.
    report_limiter = FixedWindowRateLimiter(MemoryStorage())

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer eom_...)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found, status = await tokens.authenticate(credentials.credentials)
        if found is None or status != "active":
            raise ApiError(
                401,
                "unauthorized",
                f"the token is {status}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found

    Caller = Annotated[Principal, Depends(principal)]
    MissionId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
    DryRunFlag = Annotated[bool, Query(description="only check the command: nothing is recorded")]

    async def load(mission_id: str) -> Mission:
        state = await missions.state(mission_id)
        if state.stage is None:
            raise ApiError(404, "unknown_mission", f"no mission {mission_id!r}")
        return state

    async def guarded(route: str, caller: Principal, mission_id: str) -> Mission:
        require_role(route, caller)
        mission = await load(mission_id)
        require_scope(caller, mission)
        return mission

    async def submission_allowed(caller: Caller) -> Principal:
        if not await limiter.hit(rate, str(caller.token_id)):
            stats = await limiter.get_window_stats(rate, str(caller.token_id))
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise ApiError(
                429,
                "rate_limited",
                f"more than {rate} submissions for this token; retry in {wait}s",
                headers={"Retry-After": str(wait)},
            )
        return caller

    Submitter = Annotated[Principal, Depends(submission_allowed)]

    async def reporter(caller: Caller) -> Principal:
        """Reports have their own, higher limit: a team's device syncing its backlog."""
        if not await report_limiter.hit(report_limit, str(caller.token_id)):
            raise ApiError(
                429,
                "rate_limited",
                f"more than {report_limit} report requests for this token; retry in 1s",
                headers={"Retry-After": "1"},
            )
        return caller

    Reporter = Annotated[Principal, Depends(reporter)]

    def report_refusal(refused: SubmissionRefused) -> ApiError:
        return ApiError(
            422,
            refused.rule,
            f"{len(refused.problems)} report(s) refused; nothing was recorded",
            fields=[
                errors.FieldProblem(path=f"reports[{p.index}]", message=f"{p.rule}: {p.message}")
                for p in refused.problems
            ],
        )

    @app.post(
        "/v1/missions/{mission_id}/reports",
        name="submit_reports",
        response_model=Receipts | DryRun,
        responses={503: {"model": ErrorResponse}},
    )
    async def submit_reports(
        mission_id: MissionId, batch: ReportBatch, caller: Reporter, dry_run: DryRunFlag = False
    ) -> Any:
        """Station-visit and incident reports, answered once durably recorded. Sending a
        report again (same ``submission_id``) returns its first receipt; if any report is
        refused, none of the request is recorded and each problem is named."""
        require_role("submit_reports", caller)
        mission = await intake.mission(mission_id)
        if mission.stage is None:
            raise ApiError(404, "unknown_mission", f"no mission {mission_id!r}")
        require_scope(caller, mission)
        if dry_run:
            try:
                reports = await intake.check(mission_id, batch.reports)
            except SubmissionRefused as refused:
                problem = report_refusal(refused)
                return DryRun(
                    accepted=False,
                    event_types=[],
                    events=[],
                    refusal=ErrorBody(
                        status=422, code=problem.code, message=str(refused), fields=problem.fields
                    ),
                )
            return DryRun(
                accepted=True,
                event_types=[r.type for r in reports],
                events=[r.model_dump(mode="json") for r in reports],
            )
        try:
            receipts = await intake.submit(mission_id, batch.reports, actor=caller.actor)
        except SubmissionRefused as refused:
            raise report_refusal(refused) from None
        except IntakeUnavailable as error:
            raise ApiError(
                503, "intake_unavailable", str(error), headers={"Retry-After": "1"}
            ) from None
        # Serialised here, once, by pydantic (the declared response_model documents it):
        # FastAPI would validate the receipts again and encode them through the standard
        # library, the costliest step of answering a report.
        return Response(
            Receipts(receipts=receipts).model_dump_json(), media_type="application/json"
        )

    @app.post(
        "/v1/missions/{mission_id}/stations",
        name="register_stations",
        response_model=StationsRegistered | DryRun,
    )
    async def register_stations(
        mission_id: MissionId, listing: StationList, caller: Caller, dry_run: DryRunFlag = False
    ) -> Any:
        """The polling stations observers may report from (registering one again, as it
        is, changes nothing)."""
        await guarded("register_stations", caller, mission_id)
        try:
            if dry_run:
                event = await intake.check_stations(mission_id, listing.stations)
                return DryRun(
                    accepted=True,
                    event_types=[event.type] if event else [],
                    events=[event.model_dump(mode="json")] if event else [],
                )
            return await intake.register_stations(mission_id, listing.stations, actor=caller.actor)
        except DomainError as error:
            if dry_run:
                return DryRun(
                    accepted=False,
                    event_types=[],
                    events=[],
                    refusal=ErrorBody(status=409, code=error.rule, message=error.message),
                )
            raise ApiError(409, error.rule, error.message) from None

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/missions", name="list_missions", response_model=list[MissionListItem])
    async def list_missions(caller: Caller) -> list[MissionListItem]:
        """Missions in the caller's scope."""
        require_role("list_missions", caller)
        listed = []
        for summary in await missions.list():
            state = await missions.state(summary.mission_id)
            if in_scope(caller, state):
                listed.append(MissionListItem(**summary.__dict__))
        return listed

    @app.get("/v1/missions/{mission_id}", name="get_mission", response_model=Mission)
    async def get_mission(
        mission_id: MissionId,
        caller: Caller,
        version: Annotated[int | None, Query(ge=1, description="state as of this version")] = None,
    ) -> Mission:
        """The mission's state (folded from its events), now or as of a version."""
        await guarded("get_mission", caller, mission_id)
        return await missions.state(mission_id, version=version)

    @app.get("/v1/missions/{mission_id}/timeline", name="get_timeline")
    async def get_timeline(
        mission_id: MissionId,
        caller: Caller,
        after_version: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[RecordedEvent]:
        """The mission's events with their metadata, in order."""
        await guarded("get_timeline", caller, mission_id)
        return await missions.store.read_stream(
            mission_id, from_version=after_version + 1, to_version=after_version + limit
        )

    async def streamable(mission_id: MissionId, caller: Caller) -> str:
        await guarded("stream_events", caller, mission_id)
        return mission_id

    @app.get(
        "/v1/missions/{mission_id}/events",
        name="stream_events",
        response_class=EventSourceResponse,
    )
    async def stream_events(
        mission_id: Annotated[str, Depends(streamable)],
        last_event_id: Annotated[str | None, Header()] = None,
        after_version: Annotated[int, Query(ge=0)] = 0,
    ) -> AsyncIterable[ServerSentEvent]:
        """Server-Sent Events: the mission's events from ``after_version`` (or the
        ``Last-Event-ID``), then each new one as it is recorded. Event ids are versions."""
        start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after_version
        async for event in feed.follow(mission_id, after_version=start):
            yield ServerSentEvent(
                data=event.model_dump(mode="json"),
                event=event.event_type,
                id=str(event.stream_version),
            )

    @app.get("/v1/missions/{mission_id}/visits", name="list_visits")
    async def list_visits(mission_id: MissionId, caller: Caller) -> list[StationVisit]:
        """Polling-station visits; an observer sees their own team's."""
        mission = await guarded("list_visits", caller, mission_id)
        return [
            v
            for v in mission.visits.values()
            if caller.team_id is None or v.team_id == caller.team_id
        ]

    @app.get(
        "/v1/missions/{mission_id}/recipients/{recipient}",
        name="get_sent_to_recipient",
    )
    async def get_sent_to_recipient(
        mission_id: MissionId,
        recipient: Annotated[str, Path(min_length=1, max_length=200)],
        caller: Caller,
    ) -> SentToRecipient:
        """What was sent to a member state, the host or an organisation."""
        mission = await guarded("get_sent_to_recipient", caller, mission_id)
        name = recipient.upper() if len(recipient) == 2 else recipient
        if caller.member_state is not None and name != caller.member_state:
            raise ApiError(403, "forbidden", f"{caller.member_state} reads only what it was sent")
        deliveries = [d for d in mission.deliveries.values() if d.recipient.name == name]
        publication = mission.publication
        return SentToRecipient(
            recipient=name,
            deliveries=deliveries,
            recommendations=list(mission.recommendations.values()) if deliveries else [],
            statement_published_on=publication.published_on.isoformat() if publication else None,
            statement_sha256=publication.text_sha256 if publication else None,
        )

    async def run_command(
        caller: Principal,
        mission_id: str,
        command: Command,
        *,
        key: str | None,
        dry_run: bool,
    ) -> JSONResponse:
        if dry_run:
            try:
                events = await missions.check(mission_id, command)
            except CommandRefused as refused:
                body = DryRun(
                    accepted=False,
                    event_types=[],
                    events=[],
                    refusal=ErrorBody(status=409, code=refused.rule, message=refused.message),
                )
            else:
                body = DryRun(
                    accepted=True,
                    event_types=[e.type for e in events],
                    events=[e.model_dump(mode="json") for e in events],
                )
            return JSONResponse(body.model_dump(mode="json"))
        digest = request_hash({"mission": mission_id, "command": command.model_dump(mode="json")})
        if key is not None:
            stored = await idempotency.get(caller.token_id, key)
            if stored is not None:
                if stored.request_hash != digest:
                    raise ApiError(
                        409,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request",
                    )
                return JSONResponse(stored.response, status_code=stored.status_code)
        try:
            result = await missions.execute(
                mission_id,
                command,
                actor=caller.actor,
                command_id=command_id(caller.token_id, key) if key else str(uuid.uuid4()),
            )
        except CommandRefused as refused:
            if refused.rule in _TRANSIENT:
                raise ApiError(
                    503, refused.rule, refused.message, headers={"Retry-After": "1"}
                ) from None
            outcome = Stored(
                digest,
                409,
                ErrorResponse(
                    error=ErrorBody(status=409, code=refused.rule, message=refused.message)
                ).model_dump(mode="json", exclude_none=True),
            )
        else:
            status = 201 if isinstance(command, RegisterInvitation) else 200
            outcome = Stored(digest, status, result.model_dump(mode="json"))
        if key is not None:
            outcome = await idempotency.save(caller.token_id, key, outcome)
        return JSONResponse(outcome.response, status_code=outcome.status_code)

    IdempotencyKey = Annotated[
        str | None,
        Header(
            max_length=200,
            description="retrying with the same key and body returns the first result",
        ),
    ]

    @app.post(
        "/v1/missions",
        name="register_invitation",
        status_code=201,
        response_model=CommandResult,
        responses={200: {"model": DryRun}},
    )
    async def register_invitation(
        command: RegisterInvitation,
        caller: Submitter,
        idempotency_key: IdempotencyKey = None,
        dry_run: DryRunFlag = False,
    ) -> JSONResponse:
        """Register a host's invitation: the mission starts."""
        require_role("register_invitation", caller)
        check_command(caller, command)
        return await run_command(
            caller, command.mission_id, command, key=idempotency_key, dry_run=dry_run
        )

    for name, model in COMMAND_TYPES.items():
        if model is RegisterInvitation:
            continue
        app.add_api_route(
            f"/v1/missions/{{mission_id}}/{name.replace('_', '-')}",
            _command_endpoint(name, model, guarded, run_command, Submitter, MissionId),
            methods=["POST"],
            name=name,
            response_model=CommandResult,
            responses={200: {"description": "recorded, or the dry run's answer"}},
            summary=(model.__doc__ or name).strip().splitlines()[0],
        )

    return app


RunCommand = Callable[..., Awaitable[JSONResponse]]
Guard = Callable[[str, Principal, str], Awaitable[Mission]]


def _command_endpoint(
    name: str,
    model: type[BaseModel],
    guarded: Guard,
    run_command: RunCommand,
    submitter: Any,
    mission_id_type: Any,
) -> Callable[..., Awaitable[JSONResponse]]:
    """The route of one command: its body is the command's own model."""

    async def endpoint(
        mission_id: mission_id_type,
        command: model,  # type: ignore[valid-type]
        caller: submitter,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        dry_run: Annotated[bool, Query()] = False,
    ) -> JSONResponse:
        await guarded(name, caller, mission_id)
        check_command(caller, command)
        return await run_command(caller, mission_id, command, key=idempotency_key, dry_run=dry_run)

    endpoint.__name__ = name
    endpoint.__doc__ = model.__doc__
    return endpoint
