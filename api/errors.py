"""One JSON shape for every error, never a stack trace:

``{"error": {"status": 409, "code": "observer_from_host_country", "message": "...",
"fields": [{"path": "body.member_state", "message": "..."}]}}``
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import RULES

log = structlog.get_logger("eom.api")


class Code(StrEnum):
    """Transport-level error codes: what a client may get besides the domain's refusals
    (whose codes are the rules' names, ``domain.errors.RULES``). Each has one HTTP status
    (``STATUS``); the README's error table lists them all, and says when each is given."""

    malformed_json = "malformed_json"
    unauthorized = "unauthorized"
    forbidden = "forbidden"
    unknown_mission = "unknown_mission"
    unknown_ladder = "unknown_ladder"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    idempotency_key_reused = "idempotency_key_reused"
    idempotency_key_in_use = "idempotency_key_in_use"
    mission_id_unavailable = "mission_id_unavailable"
    body_too_large = "body_too_large"
    invalid_input = "invalid_input"
    mission_id_mismatch = "mission_id_mismatch"
    rate_limited = "rate_limited"
    too_many_streams = "too_many_streams"
    internal_error = "internal_error"
    mission_busy = "mission_busy"
    mission_unresponsive = "mission_unresponsive"
    mission_not_running = "mission_not_running"
    event_store_unavailable = "event_store_unavailable"
    intake_unavailable = "intake_unavailable"
    export_unavailable = "export_unavailable"
    update_failed = "update_failed"


STATUS: dict[Code, int] = {
    Code.malformed_json: 400,
    Code.unauthorized: 401,
    Code.forbidden: 403,
    Code.unknown_mission: 404,
    Code.unknown_ladder: 404,
    Code.not_found: 404,
    Code.method_not_allowed: 405,
    Code.idempotency_key_reused: 409,
    Code.idempotency_key_in_use: 409,
    Code.mission_id_unavailable: 409,
    Code.body_too_large: 413,
    Code.invalid_input: 422,
    Code.mission_id_mismatch: 422,
    Code.rate_limited: 429,
    Code.too_many_streams: 429,
    Code.internal_error: 500,
    Code.mission_busy: 503,
    Code.mission_unresponsive: 503,
    Code.mission_not_running: 503,
    Code.event_store_unavailable: 503,
    Code.intake_unavailable: 503,
    Code.export_unavailable: 503,
    Code.update_failed: 503,
}

# The HTTP errors Starlette and FastAPI raise themselves, by status: an unknown path, a
# wrong method, a body that cannot be read, one over the limit (``api.body_limit``).
_HTTP_CODES = {
    # FastAPI's only 400: a body it could not parse (not UTF-8, a number beyond 4,300
    # digits, nesting too deep).
    400: Code.malformed_json,
    404: Code.not_found,
    405: Code.method_not_allowed,
    413: Code.body_too_large,
}


class FieldProblem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    fields: list[FieldProblem] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error answered in the one shape. ``code`` is a transport code (its status from
    ``STATUS``); a domain refusal is made with ``ApiError.refusal``."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        fields: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._init(STATUS[code], code.value, message, fields=fields, headers=headers)

    def _init(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[FieldProblem] | None,
        headers: dict[str, str] | None,
    ) -> None:
        Exception.__init__(self, message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields, headers

    @classmethod
    def refusal(
        cls,
        rule: str,
        message: str,
        *,
        status: int = 409,
        fields: list[FieldProblem] | None = None,
    ) -> ApiError:
        """A refusal by one of the domain's rules (``domain.errors.RULES``): 409 for a
        command, 422 for a report."""
        if rule not in RULES:
            raise ValueError(f"{rule!r} is not one of the domain's rules")
        error = cls.__new__(cls)
        error._init(status, rule, message, fields=fields, headers=None)
        return error

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ApiError:
        """The error a stored response body (``response_body``) answered."""
        found = ErrorResponse.model_validate(body).error
        error = cls.__new__(cls)
        error._init(found.status, found.code, found.message, fields=found.fields, headers=None)
        return error

    def response_body(self) -> dict[str, Any]:
        return ErrorResponse(
            error=ErrorBody(
                status=self.status, code=self.code, message=self.message, fields=self.fields
            )
        ).model_dump(mode="json", exclude_none=True)

    def response(self) -> JSONResponse:
        return JSONResponse(self.response_body(), status_code=self.status, headers=self.headers)


def _path(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        FieldProblem(path=_path(tuple(e.get("loc", ()))), message=str(e.get("msg", "")))
        for e in exc.errors()
    ]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return ApiError(
            Code.malformed_json, "the body is not valid JSON", fields=problems
        ).response()
    summary = "; ".join(f"{p.path}: {p.message}" for p in problems[:5])
    return ApiError(Code.invalid_input, summary or "invalid input", fields=problems).response()


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else ""
    if code is Code.malformed_json:
        message = (
            "the body cannot be read as JSON (not UTF-8, a number beyond 4,300 digits, or "
            "nesting too deep)"
        )
    headers = dict(exc.headers) if exc.headers else None
    if code is None:  # a status eom itself never answers with
        log.error("unexpected HTTP error", status=exc.status_code, detail=message)
        return ApiError(Code.internal_error, "an internal error occurred; it was logged").response()
    return ApiError(code, message or code.value.replace("_", " "), headers=headers).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return ApiError(Code.internal_error, "an internal error occurred; it was logged").response()


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
