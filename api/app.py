"""The FastAPI application: routes under ``/v1``, each guarded by ``api.access``.

Routes are thin: what they do is in ``operations`` (``app.state.operations``), the layer
the web console calls too. Commands take the same path as from the CLI
(``Missions.execute``: a Temporal update validated by ``decide``), with the token's
principal recorded as the actor. Reads fold the event store. This module deliberately
has no ``from __future__ import annotations``: routes are generated per command model,
and FastAPI reads their annotations at runtime.
"""

import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from limits import parse as parse_rate
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from pydantic import BaseModel, Field

from analysis.figures import Analysis
from api import errors
from api.access import check_body, forbidden, in_scope, require_role
from api.body_limit import BodyLimit
from api.errors import ApiError, Code, ErrorResponse
from api.feed import EventFeed
from api.idempotency import IdempotencyStore
from api.openrosa import install_errors as install_openrosa_errors
from api.openrosa import openrosa_router
from api.streams import Lease, StreamLeases, TooManyStreams
from api.tokens import Principal, TokenStore
from auditreport import export as auditreport_export
from auditreport.export import EXPORT_MEDIA_TYPES, ExportFormat
from domain import DomainError
from domain.commands import COMMAND_TYPES, Command, RegisterInvitation
from domain.errors import RULES
from domain.host_time import localized
from domain.state import Delivery, Mission
from domain.submissions import PollingStation, Submission
from domain.values import IDENTIFIER_PATTERN, SAFE_INTEGER, DeadlineKind, Recommendation, check_text
from eventstore.models import RecordedEvent
from forms.library import FormLibrary
from intake.coverage import Coverage
from intake.visits import RecordedVisit, mission_visits, with_visits
from intake.writer import Intake, IntakeUnavailable, Receipt, StationsRegistered, SubmissionRefused
from operations import CommandAnswer, DryRun, InvalidInput, Operations
from operations.audit import Replay, Verification
from operations.reminders import LadderAction, LadderSignalled, Reminders
from operations.service import LADDER_ROUTES
from workflows.client import Missions
from workflows.messages import CommandResult

log = structlog.get_logger("eom.api")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
_RETRY_AFTER = {"Retry-After": "1"}
_IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
"""Printable ASCII without spaces (RFC 9110 token characters and more), 1-200 long."""


class MissionListItem(BaseModel):
    mission_id: str
    stage: str
    host_country: str
    election: str
    election_day: str
    version: int


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
    streams_per_token: int = 4,
    stream_check_seconds: float = 5.0,
) -> FastAPI:
    """The API over its services. ``streams_per_token`` live event streams may be open
    at once per token (429 ``too_many_streams`` beyond); each checks its token at least
    every ``stream_check_seconds`` and ends once it has expired or been revoked."""
    app = FastAPI(
        title="eom",
        summary="Election observation missions: commands, state, timelines, live events.",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url=None,  # served by _serve_docs, without a CDN
        redoc_url=None,
        responses=_ERRORS,
    )
    _serve_docs(app)
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
    leases = StreamLeases(per_token=streams_per_token)
    ops = Operations(missions, idempotency)
    app.state.operations = ops
    install_openrosa_errors(app)
    app.include_router(
        openrosa_router(
            tokens=tokens,
            intake=intake,
            library=FormLibrary(intake.store),
            max_body_bytes=max_body_bytes,
        )
    )

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError(
                Code.unauthorized,
                "a bearer token is required (Authorization: Bearer eom_...)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found, status = await tokens.authenticate(credentials.credentials)
        if found is None or status != "active":
            raise ApiError(
                Code.unauthorized,
                f"the token is {status}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found

    Caller = Annotated[Principal, Depends(principal)]
    MissionId = Annotated[str, Path(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]
    DryRunFlag = Annotated[bool, Query(description="only check the command: nothing is recorded")]

    async def guarded(route: str, caller: Principal, mission_id: str) -> None:
        """Whether the caller's role may call ``route`` (else 403) and the mission exists
        within the caller's scope (else 404): ``Operations.guarded``."""
        await ops.guarded(route, caller, mission_id)

    async def submission_allowed(caller: Caller) -> Principal:
        if not await limiter.hit(rate, str(caller.token_id)):
            stats = await limiter.get_window_stats(rate, str(caller.token_id))
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise ApiError(
                Code.rate_limited,
                f"more than {rate} submissions for this token; retry in {wait}s",
                headers={"Retry-After": str(wait)},
            )
        return caller

    Submitter = Annotated[Principal, Depends(submission_allowed)]

    async def reporter(caller: Caller) -> Principal:
        """Reports have their own, higher limit: a team's device syncing its backlog."""
        if not await report_limiter.hit(report_limit, str(caller.token_id)):
            raise ApiError(
                Code.rate_limited,
                f"more than {report_limit} report requests for this token; retry in 1s",
                headers={"Retry-After": "1"},
            )
        return caller

    Reporter = Annotated[Principal, Depends(reporter)]

    def report_refusal(refused: SubmissionRefused) -> ApiError:
        fields = [
            errors.FieldProblem(path=f"body.reports.{p.index}", message=f"{p.rule}: {p.message}")
            for p in refused.problems
        ]
        message = f"{len(refused.problems)} report(s) refused; nothing was recorded"
        if refused.rule in RULES:
            return ApiError.refusal(refused.rule, message, status=422, fields=fields)
        return ApiError(Code.invalid_input, message, fields=fields)

    @app.post(
        "/v1/missions/{mission_id}/reports",
        name="submit_reports",
        response_model=Receipts | DryRun,
    )
    async def submit_reports(
        mission_id: MissionId, batch: ReportBatch, caller: Reporter, dry_run: DryRunFlag = False
    ) -> Any:
        """Station-visit and incident reports, answered once durably recorded. Sending a
        report again (same ``submission_id``) returns its first receipt; if any report is
        refused, none of the request is recorded and each problem is named."""
        await guarded("submit_reports", caller, mission_id)
        check_body(caller, batch.reports, path="body.reports")
        if dry_run:
            try:
                reports = await intake.check(mission_id, batch.reports)
            except SubmissionRefused as refused:
                return DryRun.refused(report_refusal(refused))
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
            raise ApiError(Code.intake_unavailable, str(error), headers=_RETRY_AFTER) from None
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
            refusal = ApiError.refusal(error.rule, error.message)
            if dry_run:
                return DryRun.refused(refusal)
            raise refusal from None

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/missions", name="list_missions", response_model=list[MissionListItem])
    async def list_missions(caller: Caller) -> list[MissionListItem]:
        """Missions in the caller's scope."""
        require_role("list_missions", caller)
        listed = await missions.list(where=lambda registered: in_scope(caller, registered))
        return [MissionListItem(**summary.__dict__) for summary in listed]

    @app.get("/v1/missions/{mission_id}", name="get_mission", response_model=Mission)
    async def get_mission(
        mission_id: MissionId,
        caller: Caller,
        version: Annotated[
            int | None, Query(ge=1, le=SAFE_INTEGER, description="state as of this version")
        ] = None,
    ) -> Mission:
        """The mission's state (folded from its events), now or as of a version; its times
        in the host's time zone (``time_zone``), with their UTC offset."""
        await guarded("get_mission", caller, mission_id)
        state = await missions.state(mission_id, version=version)
        visits = await mission_visits(missions.store, mission_id, as_of_version=version)
        return localized(with_visits(state, visits), state.time_zone)

    @app.get("/v1/missions/{mission_id}/timeline", name="get_timeline")
    async def get_timeline(
        mission_id: MissionId,
        caller: Caller,
        after_version: Annotated[int, Query(ge=0, le=SAFE_INTEGER)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[RecordedEvent]:
        """The mission's events with their metadata, in order."""
        await guarded("get_timeline", caller, mission_id)
        return await missions.store.read_stream(
            mission_id, from_version=after_version + 1, to_version=after_version + limit
        )

    async def streamable(
        mission_id: MissionId,
        caller: Caller,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> tuple[str, str, Lease]:
        """Checked before the stream begins (after, an error could not be answered)."""
        await guarded("stream_events", caller, mission_id)
        assert credentials is not None  # the caller was authenticated by it
        try:
            lease = leases.take(caller.token_id)
        except TooManyStreams as error:
            raise ApiError(Code.too_many_streams, str(error), headers=_RETRY_AFTER) from None
        return mission_id, credentials.credentials, lease

    @app.get(
        "/v1/missions/{mission_id}/events",
        name="stream_events",
        response_class=EventSourceResponse,
        responses={429: {"model": ErrorResponse}},
    )
    async def stream_events(
        streamed: Annotated[tuple[str, str, Lease], Depends(streamable)],
        last_event_id: Annotated[
            str | None,
            Header(
                pattern=r"^[0-9]{1,15}$",
                description="resume after this version (an event id this stream sent)",
            ),
        ] = None,
        after_version: Annotated[int, Query(ge=0, le=SAFE_INTEGER)] = 0,
    ) -> AsyncIterable[ServerSentEvent]:
        """Server-Sent Events: the mission's events from ``after_version`` (or the
        ``Last-Event-ID``), then each new one as it is recorded. Event ids are versions.
        The stream ends (after an ``end`` event saying why) once the token expires or is
        revoked; a token may hold a few streams at once."""
        mission_id, token, lease = streamed
        start = int(last_event_id) if last_event_id is not None else after_version
        ended: list[str] = []

        async def token_lapsed() -> bool:
            _, status = await tokens.authenticate(token)
            if status != "active":
                ended.append(f"the token is {status}")
            return bool(ended)

        with lease:
            try:
                async for event in feed.follow(
                    mission_id,
                    after_version=start,
                    stop_when=token_lapsed,
                    check_every=stream_check_seconds,
                ):
                    yield ServerSentEvent(
                        data=event.model_dump(mode="json"),
                        event=event.event_type,
                        id=str(event.stream_version),
                    )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                # The headers are sent: the stream ends cleanly, saying why, and the
                # client resumes from its Last-Event-ID once the store is back.
                log.warning("live stream ended: the event store failed", error=str(error))
                ended.append("the event store is unavailable; reconnect to resume")
            yield ServerSentEvent(data={"reason": ended[0] if ended else "ended"}, event="end")

    @app.get(
        "/v1/missions/{mission_id}/export",
        name="export_mission",
        response_class=Response,
        responses={
            200: {
                "content": {media: {} for media in EXPORT_MEDIA_TYPES.values()},
                "description": "the export, in the format asked",
            },
            503: {"model": ErrorResponse},
        },
    )
    async def export_mission(
        mission_id: MissionId,
        caller: Caller,
        format: Annotated[
            ExportFormat,
            Query(description="jsonl or csv (the raw record), md, html or pdf (the report)"),
        ] = ExportFormat.md,
    ) -> Response:
        """The mission's record as ``eom audit export`` writes it: the raw events (jsonl,
        csv: the mission's stream and its election-day streams, as stored) or the
        auditor's report (md, html, pdf), every figure naming the events behind it."""
        await guarded("export_mission", caller, mission_id)
        try:
            data, _ = await auditreport_export.export_mission(missions.store, mission_id, format)
        except auditreport_export.ExportRefused as error:
            raise ApiError(Code.invalid_input, f"query.format: {error}") from None
        except auditreport_export.ExportUnavailable as error:
            raise ApiError(Code.export_unavailable, str(error)) from None
        return Response(
            data,
            media_type=EXPORT_MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{mission_id}.{format.value}"'},
        )

    @app.get("/v1/missions/{mission_id}/visits", name="list_visits")
    async def list_visits(mission_id: MissionId, caller: Caller) -> list[RecordedVisit]:
        """Polling-station visits; an observer sees their own team's."""
        await guarded("list_visits", caller, mission_id)
        registered = await missions.registered(mission_id)
        return await mission_visits(
            missions.store, mission_id, team_id=caller.team_id, time_zone=registered.time_zone
        )

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
        try:
            recipient = check_text(recipient, multiline=False, max_length=200)
        except ValueError as error:
            raise ApiError(
                Code.invalid_input,
                f"path.recipient: {error}",
                fields=[errors.FieldProblem(path="path.recipient", message=str(error))],
            ) from None
        await guarded("get_sent_to_recipient", caller, mission_id)
        mission = await missions.state(mission_id)
        name = recipient.upper() if len(recipient) == 2 else recipient
        if caller.member_state is not None and name != caller.member_state:
            raise forbidden(f"{caller.member_state} reads only what it was sent")
        deliveries = [d for d in mission.deliveries.values() if d.recipient.name == name]
        publication = mission.publication
        return SentToRecipient(
            recipient=name,
            deliveries=deliveries,
            recommendations=list(mission.recommendations.values()) if deliveries else [],
            statement_published_on=publication.published_on.isoformat() if publication else None,
            statement_sha256=publication.text_sha256 if publication else None,
        )

    def invalid(problem: InvalidInput, where: str) -> ApiError:
        """``InvalidInput`` as the API names it: 422 ``invalid_input`` naming the field
        where the request gave it (``query.at``, ``path.member_state``)."""
        path = f"{where}.{problem.field}"
        return ApiError(
            Code.invalid_input,
            f"{path}: {problem.message}",
            fields=[errors.FieldProblem(path=path, message=problem.message)],
        )

    @app.get("/v1/missions/{mission_id}/reminders", name="list_reminders")
    async def list_reminders(mission_id: MissionId, caller: Caller) -> Reminders:
        """Per member state and deadline (nominations, acknowledgements, each follow-up
        cycle's evidence): what the record says was sent, failed, answered and escalated,
        and what its ladder sends next, when, and whether it is paused (what ``eom
        reminders status`` shows). Times in the host's time zone."""
        return await ops.reminders(caller, mission_id)

    LadderKind = Annotated[DeadlineKind, Path(description="which deadline's ladder")]
    LadderState = Annotated[
        str,
        Path(pattern=r"^[A-Za-z]{2}$", description="the member state (ISO 3166-1 alpha-2)"),
    ]
    LadderCycle = Annotated[
        int, Query(ge=0, le=1_000_000, description="the follow-up cycle (evidence); else 0")
    ]

    def ladder_endpoint(action: LadderAction) -> Callable[..., Awaitable[LadderSignalled | DryRun]]:
        async def endpoint(
            mission_id: MissionId,
            kind: LadderKind,
            member_state: LadderState,
            caller: Submitter,
            cycle: LadderCycle = 0,
            dry_run: DryRunFlag = False,
        ) -> LadderSignalled | DryRun:
            try:
                return await ops.signal_ladder(
                    caller, mission_id, action, kind, member_state, cycle=cycle, dry_run=dry_run
                )
            except InvalidInput as problem:
                raise invalid(problem, "query" if problem.field == "cycle" else "path") from None

        endpoint.__name__ = LADDER_ROUTES[action]
        return endpoint

    for action, summary in (
        (LadderAction.pause, "Pause a member state's reminders: nothing is sent until resumed."),
        (LadderAction.resume, "Resume a paused ladder."),
        (
            LadderAction.send_now,
            "Send a ladder's next message now, not at its time (a paused ladder resumes).",
        ),
    ):
        app.add_api_route(
            "/v1/missions/{mission_id}/reminders/{kind}/{member_state}/"
            + action.value.replace("_", "-"),
            ladder_endpoint(action),
            methods=["POST"],
            name=LADDER_ROUTES[action],
            response_model=LadderSignalled | DryRun,
            responses={503: {"model": ErrorResponse}},
            summary=summary,
            description=(
                "The ladder is told at once; its status (``GET .../reminders``) shows the "
                "effect a moment later. 404 ``unknown_ladder`` for a ladder that does not "
                "run (never started, answered or ended); a dry run says so in its answer."
            ),
        )

    @app.get("/v1/missions/{mission_id}/coverage", name="get_coverage")
    async def get_coverage(
        mission_id: MissionId,
        caller: Caller,
        catch_up: Annotated[
            bool, Query(description="project what the log holds before reading (else as is)")
        ] = True,
    ) -> Coverage:
        """Election-day coverage (what ``eom coverage`` shows): stations visited per
        locality and phase, each team's reports and missed check-ins, findings by category,
        conflicts; each figure with the global log positions of the events behind it."""
        return await ops.coverage(caller, mission_id, catch_up=catch_up)

    @app.get("/v1/missions/{mission_id}/analysis", name="get_analysis")
    async def get_analysis(
        mission_id: MissionId,
        caller: Caller,
        language: Annotated[
            str | None, Query(max_length=20, description="labels in: en, ru, tr")
        ] = None,
    ) -> Analysis:
        """Per question of the mission's observation forms (what ``eom analysis`` shows):
        polling stations that gave each answer out of those asked (a question its
        ``relevant`` skipped is out of the denominator), overall, by locality and by team,
        each count with the log positions of the visits behind it; a corrected report
        counts once, stations whose answers differ are named."""
        return await ops.analysis(caller, mission_id, language=language)

    @app.get("/v1/missions/{mission_id}/verify", name="verify_mission")
    async def verify_mission(mission_id: MissionId, caller: Caller) -> Verification:
        """The mission's hash chain and its election-day streams' (what ``eom audit
        verify`` checks): every hash and link recomputed, each break named (changed,
        removed, inserted or reordered, at its version), and each published statement's
        fingerprint checked against the history before it."""
        return await ops.verify_mission(caller, mission_id)

    @app.get("/v1/verify", name="verify_all")
    async def verify_all(caller: Caller) -> Verification:
        """Every stream in the event store verified (``eom audit verify --all``); a
        coordinator scoped to an organisation verifies its own missions' streams."""
        return await ops.verify_all(caller)

    @app.get("/v1/missions/{mission_id}/replay", name="replay_mission")
    async def replay_mission(
        mission_id: MissionId,
        caller: Caller,
        version: Annotated[
            int | None, Query(ge=1, le=SAFE_INTEGER, description="the state as of this version")
        ] = None,
        at: Annotated[
            datetime | None,
            Query(
                description="the state as the store knew it then (ISO 8601; without an "
                "offset, the host's local time)"
            ),
        ] = None,
    ) -> Replay:
        """The mission rebuilt by folding its events (no workflow involved), as of a
        version or a time (exactly one), with the events folded and their chain's verdict
        (what ``eom audit replay`` prints). Times in the host's time zone."""
        try:
            return await ops.replay(caller, mission_id, version=version, at=at)
        except InvalidInput as problem:
            raise invalid(problem, "query") from None

    IdempotencyKey = Annotated[
        str | None,
        Header(
            pattern=_IDEMPOTENCY_KEY,
            description="retrying with the same key and body returns the first result",
        ),
    ]

    @app.post(
        "/v1/missions",
        name="register_invitation",
        status_code=201,
        response_model=CommandResult,
        responses={200: {"model": DryRun}, 503: {"model": ErrorResponse}},
    )
    async def register_invitation(
        command: RegisterInvitation,
        caller: Submitter,
        idempotency_key: IdempotencyKey = None,
        dry_run: DryRunFlag = False,
    ) -> JSONResponse:
        """Register a host's invitation: the mission starts."""
        return _answer(
            await ops.register_invitation(caller, command, key=idempotency_key, dry_run=dry_run)
        )

    async def command_route(
        name: str,
        caller: Principal,
        mission_id: str,
        command: Command,
        key: str | None,
        dry_run: bool,
    ) -> JSONResponse:
        return _answer(await ops.run(caller, mission_id, command, key=key, dry_run=dry_run))

    for name, model in COMMAND_TYPES.items():
        if model is RegisterInvitation:
            continue
        app.add_api_route(
            f"/v1/missions/{{mission_id}}/{name.replace('_', '-')}",
            _command_endpoint(name, model, command_route, Submitter, MissionId, IdempotencyKey),
            methods=["POST"],
            name=name,
            response_model=CommandResult,
            responses={
                200: {"description": "recorded, or the dry run's answer"},
                503: {"model": ErrorResponse},
            },
            summary=(model.__doc__ or name).strip().splitlines()[0],
        )

    return app


CommandRoute = Callable[..., Awaitable[JSONResponse]]


def _answer(answer: CommandAnswer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status_code)


DOCS_URL = "/v1/docs"
DOCS_ASSETS_URL = "/v1/docs/assets"


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at ``/v1/docs``, its script, stylesheet and icon served from
    ``/v1/docs/assets`` out of the installed ``fastapi-offline`` package (a copy of
    swagger-ui-dist 5), so the page works without internet; FastAPI's default page loads
    them from a CDN. Starlette routes, outside the OpenAPI document and the ``/v1`` API
    routes."""
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="eom API",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        )

    app.add_route(DOCS_URL, docs, include_in_schema=False)


def _command_endpoint(
    name: str,
    model: type[BaseModel],
    command_route: CommandRoute,
    submitter: Any,
    mission_id_type: Any,
    idempotency_key_type: Any,
) -> Callable[..., Awaitable[JSONResponse]]:
    """The route of one command: its body is the command's own model."""

    async def endpoint(
        mission_id: mission_id_type,
        command: model,  # type: ignore[valid-type]
        caller: submitter,
        idempotency_key: idempotency_key_type = None,
        dry_run: Annotated[bool, Query()] = False,
    ) -> JSONResponse:
        return await command_route(name, caller, mission_id, command, idempotency_key, dry_run)

    endpoint.__name__ = name
    endpoint.__doc__ = model.__doc__
    return endpoint
