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

from api import errors
from api.access import (
    READERS,
    check_body,
    forbidden,
    in_scope,
    require_role,
    require_scope,
)
from api.body_limit import BodyLimit
from api.errors import STATUS, ApiError, Code, ErrorBody, ErrorResponse
from api.feed import EventFeed
from api.idempotency import (
    IdempotencyStore,
    KeyInUse,
    KeyReused,
    Stored,
    command_id,
    request_hash,
)
from api.streams import Lease, StreamLeases, TooManyStreams
from api.tokens import Principal, TokenStore
from auditreport import export as auditreport_export
from auditreport.export import EXPORT_MEDIA_TYPES, ExportFormat
from domain import DomainError
from domain.commands import COMMAND_TYPES, Command, RegisterInvitation, ReopenReview
from domain.errors import RULES
from domain.host_time import localized
from domain.state import Delivery, Mission
from domain.submissions import PollingStation, Submission
from domain.values import IDENTIFIER_PATTERN, SAFE_INTEGER, Recommendation, check_text
from eventstore.models import RecordedEvent
from intake.visits import RecordedVisit, mission_visits, with_visits
from intake.writer import Intake, IntakeUnavailable, Receipt, StationsRegistered, SubmissionRefused
from workflows.client import CommandRefused, Missions
from workflows.messages import CommandResult

log = structlog.get_logger("eom.api")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
_RETRY_AFTER = {"Retry-After": "1"}
_IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,200}$"
"""Printable ASCII without spaces (RFC 9110 token characters and more), 1-200 long."""


def command_refusal(refused: CommandRefused) -> ApiError:
    """A refused command as the API answers it: a domain rule is a 409 with the rule's
    name; data the store cannot hold, or a path and body that disagree, a 422; what the
    service could not do now (a busy or unavailable mission), a 503 with Retry-After."""
    if refused.rule in RULES:
        return ApiError.refusal(refused.rule, refused.message)
    passed_on = {c.value: c for c in _MISSIONS_CODES}
    code = passed_on.get(refused.rule, Code.update_failed)
    return ApiError(code, refused.message, headers=_RETRY_AFTER if STATUS[code] == 503 else None)


_MISSIONS_CODES = (
    Code.invalid_input,
    Code.mission_id_mismatch,
    Code.mission_busy,
    Code.mission_unresponsive,
    Code.mission_not_running,
    Code.event_store_unavailable,
)
"""What ``Missions`` refuses with besides the domain's rules, passed on as it is (any
other failure of the update is ``update_failed``)."""


class MissionListItem(BaseModel):
    mission_id: str
    stage: str
    host_country: str
    election: str
    election_day: str
    version: int


class DryRun(BaseModel):
    """What a command would record now, without recording it: what the real request
    would answer, with nothing recorded (a key already used answers as it would)."""

    accepted: bool
    event_types: list[str]
    events: list[dict[str, Any]]
    """The events' content: for reports, the caller's own; for commands, to those who
    may read the mission's record (coordinators, heads of mission, auditors)."""
    refusal: ErrorBody | None = None

    @classmethod
    def refused(cls, error: ApiError) -> "DryRun":
        return cls(
            accepted=False,
            event_types=[],
            events=[],
            refusal=ErrorBody(
                status=error.status, code=error.code, message=error.message, fields=error.fields
            ),
        )


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
        within the caller's scope (else 404, the same answer either way, and as soon: the
        scope is judged on the registration alone, whatever the mission's length)."""
        require_role(route, caller)
        require_scope(caller, await missions.registered(mission_id), mission_id)

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

    async def unavailable_id(caller: Principal, mission_id: str) -> ApiError | None:
        """A mission id registered outside the caller's scope: refused without saying
        by whom or what it is (``mission_id_unavailable``)."""
        stored = await missions.registered(mission_id)
        if stored.stage is None or in_scope(caller, stored):
            return None
        return ApiError(
            Code.mission_id_unavailable,
            f"mission id {mission_id!r} is not available; choose another",
        )

    async def run_command(
        caller: Principal,
        mission_id: str,
        command: Command,
        *,
        key: str | None,
        dry_run: bool,
    ) -> JSONResponse:
        """Dry run or real run of ``command``: the same answers, but that a dry run
        records nothing and says so in a ``DryRun``."""
        digest = request_hash({"mission": mission_id, "command": command.model_dump(mode="json")})
        if dry_run:
            return JSONResponse(
                (await dry(caller, mission_id, command, key, digest)).model_dump(mode="json")
            )
        if key is not None:
            stored = await keyed(idempotency.reserve(caller.token_id, key, digest))
            if stored is not None:
                return JSONResponse(stored.response, status_code=stored.status_code)
        try:
            outcome = await execute(caller, mission_id, command, key, digest)
        except BaseException:
            if key is not None:
                await idempotency.release(caller.token_id, key)
            raise
        if key is not None:
            outcome = await idempotency.save(caller.token_id, key, outcome)
        return JSONResponse(outcome.response, status_code=outcome.status_code)

    async def execute(
        caller: Principal, mission_id: str, command: Command, key: str | None, digest: str
    ) -> Stored:
        """The command's answer to keep, or ``ApiError`` for one not to keep (the
        service could not take it now: the same request may succeed later)."""
        if isinstance(command, RegisterInvitation):
            hidden = await unavailable_id(caller, mission_id)
            if hidden is not None:
                raise hidden
        try:
            result = await missions.execute(
                mission_id,
                command,
                actor=caller.actor,
                command_id=command_id(caller.token_id, key) if key else str(uuid.uuid4()),
            )
        except CommandRefused as refused:
            error = command_refusal(refused)
            if isinstance(command, RegisterInvitation) and refused.rule in RULES:
                error = await unavailable_id(caller, mission_id) or error
            if error.status >= 500:
                raise error from None
            return Stored(digest, error.status, error.response_body())
        status = 201 if isinstance(command, RegisterInvitation) else 200
        return Stored(digest, status, result.model_dump(mode="json"))

    async def dry(
        caller: Principal, mission_id: str, command: Command, key: str | None, digest: str
    ) -> DryRun:
        if key is not None:
            stored = await keyed(idempotency.answered(caller.token_id, key, digest))
            if stored is not None:  # the real run would answer the first result
                if stored.status_code < 300:
                    return DryRun(
                        accepted=True, event_types=stored.response["event_types"], events=[]
                    )
                return DryRun.refused(ApiError.from_body(stored.response))
        if isinstance(command, RegisterInvitation):
            hidden = await unavailable_id(caller, mission_id)
            if hidden is not None:
                return DryRun.refused(hidden)
        try:
            events = await missions.check(mission_id, command)
        except CommandRefused as refused:
            error = command_refusal(refused)
            if error.status >= 500:
                raise error from None
            return DryRun.refused(error)
        return DryRun(
            accepted=True,
            event_types=[e.type for e in events],
            # The events' content only to those who may read the mission's record: an
            # observer's visit could otherwise show which teams reported its station.
            events=[e.model_dump(mode="json") for e in events] if caller.role in READERS else [],
        )

    async def keyed(looked_up: Awaitable[Stored | None]) -> Stored | None:
        """The first answer for an Idempotency-Key, as ``looked_up`` finds it, or the
        error a request gets for a key used with another body or still running."""
        try:
            return await looked_up
        except KeyReused:
            raise ApiError(
                Code.idempotency_key_reused,
                "this Idempotency-Key was used with a different request",
            ) from None
        except KeyInUse:
            raise ApiError(
                Code.idempotency_key_in_use,
                "a request with this Idempotency-Key is still running; send it again later",
                headers=_RETRY_AFTER,
            ) from None

    async def check_reopened(caller: Principal, command: Command) -> None:
        """A review is reopened for a mission of the caller's own: the one it names must
        be registered within the caller's scope."""
        if isinstance(command, ReopenReview) and caller.organisation is not None:
            named = await missions.registered(command.new_mission_id)
            if named.stage is None or not in_scope(caller, named):
                raise forbidden(
                    f"body.new_mission_id names no mission of {caller.organisation} "
                    f"({command.new_mission_id!r})"
                )

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
        require_role("register_invitation", caller)
        check_body(caller, command)
        return await run_command(
            caller, command.mission_id, command, key=idempotency_key, dry_run=dry_run
        )

    async def command_route(
        name: str,
        caller: Principal,
        mission_id: str,
        command: Command,
        key: str | None,
        dry_run: bool,
    ) -> JSONResponse:
        await guarded(name, caller, mission_id)
        check_body(caller, command)
        await check_reopened(caller, command)
        return await run_command(caller, mission_id, command, key=key, dry_run=dry_run)

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
