"""Each mission's OpenRosa server, for ODK Collect and other OpenRosa clients.

The server URL a client is configured with is ``/openrosa/key/{token}/missions/{mission}``
(an observer's token in the path, as ODK Central's app users have theirs: a client sends
no credentials of its own); the client appends ``/formList`` and ``/submission``:

- ``GET .../formList``: the mission's forms (latest assigned version of each), each with
  its hash and download URL (OpenRosa Form List API);
- ``GET .../forms/{form_id}/{version}.xml``: the XForm;
- ``HEAD .../submission``: 204 with ``X-OpenRosa-Accept-Content-Length`` (the API's real
  body limit);
- ``POST .../submission``: multipart with ``xml_submission_file`` (and attachments):
  201 and the OpenRosa response, 202 for an instance already received (stored once). An
  instance with ``meta/deprecatedID`` (edited on the device) is a correction of the report
  it replaces. Submissions go through the intake as JSON reports do.

Every response carries ``X-OpenRosa-Version: 1.0``; refusals are OpenRosa response
documents (``nature="error"``) naming the field or rule, never the JSON error shape.
"""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.body_limit import BodyTooLarge
from api.tokens import Principal, Role, TokenStore
from domain.forms import is_file_name
from domain.submissions import StationVisitReport
from domain.values import PhaseChecklist, is_identifier
from forms import openrosa
from forms.library import FormLibrary
from intake.writer import Intake, IntakeUnavailable, SubmissionRefused

log = structlog.get_logger("eom.openrosa")

HEADERS = {"X-OpenRosa-Version": openrosa.OPENROSA_VERSION}
_XML = "text/xml; charset=utf-8"
MAX_ATTACHMENTS = 20


class OpenRosaRefusal(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


PREFIX = "/openrosa/key/{token}/missions/{mission_id}"


def answer(
    status: int, message: str, *, nature: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        openrosa.response(message, nature=nature),
        status_code=status,
        media_type=_XML,
        headers={**HEADERS, **(headers or {})},
    )


def openrosa_router(
    *, tokens: TokenStore, intake: Intake, library: FormLibrary, max_body_bytes: int
) -> APIRouter:
    """The OpenRosa routes (``create_app`` includes them)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def observer(token: str, mission_id: str) -> Principal:
        if not is_identifier(mission_id):
            raise OpenRosaRefusal(404, "mission_id: not a mission id")
        found, status = await tokens.authenticate(token)
        if found is None or status != "active":
            raise OpenRosaRefusal(403, f"the token in this server URL is {status}")
        if found.role is not Role.observer or found.team_id is None:
            raise OpenRosaRefusal(
                403,
                "an OpenRosa server URL carries an observer's token (eom token create "
                "--role observer --mission M --team T)",
            )
        if found.mission_id != mission_id:
            raise OpenRosaRefusal(404, f"this token is not for mission {mission_id!r}")
        return found

    @router.get("/formList")
    async def form_list(request: Request, token: str, mission_id: str) -> Response:
        await observer(token, mission_id)
        base = str(request.url).split("/formList", 1)[0]
        listed = [
            openrosa.ListedForm(
                form_id=s.form_id,
                title=s.form.title,
                version=s.version,
                xform_md5=s.xform_md5,
                download_url=f"{base}/forms/{s.form_id}/{s.version}.xml",
            )
            for s in await library.current_forms(mission_id)
        ]
        return Response(openrosa.form_list(listed), media_type=_XML, headers=HEADERS)

    @router.get("/forms/{form_id}/{version}.xml")
    async def form_download(token: str, mission_id: str, form_id: str, version: str) -> Response:
        await observer(token, mission_id)
        stored = await library.mission_form(mission_id, form_id, version)
        if stored is None:
            raise OpenRosaRefusal(
                404, f"mission {mission_id!r} has no form {form_id!r} version {version!r}"
            )
        return Response(stored.xform, media_type=_XML, headers=HEADERS)

    limit = {"X-OpenRosa-Accept-Content-Length": str(max_body_bytes)}

    @router.head("/submission")
    async def submission_head(token: str, mission_id: str) -> Response:
        await observer(token, mission_id)
        return Response(status_code=204, headers={**HEADERS, **limit})

    @router.post("/submission")
    async def submission(request: Request, token: str, mission_id: str) -> Response:
        caller = await observer(token, mission_id)
        document, attachments = await _parts(request, max_body_bytes)
        try:
            instance = openrosa.read_instance(document)
        except openrosa.InstanceInvalid as invalid:
            raise OpenRosaRefusal(400, str(invalid)) from None
        stored = await library.mission_form(mission_id, instance.form_id, instance.version)
        if stored is None:
            raise OpenRosaRefusal(
                422,
                f"form_not_assigned: form {instance.form_id!r} version {instance.version!r} "
                f"is not assigned to mission {mission_id!r}: update the form on the device",
            )
        try:
            filled = openrosa.filled_form(stored.form, instance)
        except openrosa.InstanceInvalid as invalid:
            raise OpenRosaRefusal(422, str(invalid)) from None
        if filled.team_id is not None and filled.team_id != caller.team_id:
            raise OpenRosaRefusal(
                403,
                f"team_id: the instance names team {filled.team_id!r}; this server URL is "
                f"team {caller.team_id!r}'s",
            )
        try:
            report = StationVisitReport(
                submission_id=filled.submission_id,
                mission_id=mission_id,
                station_id=filled.station_id,
                team_id=caller.team_id or "",
                corrects=filled.corrects,
                arrived_at=filled.started,
                departed_at=filled.ended,
                checklists=[
                    PhaseChecklist(
                        phase=stored.form.phase,
                        form_id=stored.form_id,
                        form_version=stored.version,
                        answers=filled.answers,
                    )
                ],
            )
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise OpenRosaRefusal(422, f"the instance cannot be stored: {problems}") from None
        named = {a for a in filled.answers.values() if isinstance(a, str)}
        for file_name, _, _ in attachments:
            if file_name not in named:
                raise OpenRosaRefusal(
                    400, f"attachment {file_name!r} is named by no answer of the instance"
                )
        try:
            receipts = await intake.submit(mission_id, [report], actor=caller.actor)
        except SubmissionRefused as refused:
            raise OpenRosaRefusal(
                422, "; ".join(f"{p.rule}: {p.message}" for p in refused.problems)
            ) from None
        except IntakeUnavailable as error:
            raise OpenRosaRefusal(503, str(error), headers={"Retry-After": "5"}) from None
        receipt = receipts[0]
        try:
            await _store_attachments(library, mission_id, filled.submission_id, attachments)
        except (OSError, asyncpg.PostgresError) as error:
            # The report is recorded; its files are not: sent again, the instance is
            # acknowledged as already received and its files are kept then.
            log.error(
                "attachments not stored", submission_id=receipt.submission_id, error=str(error)
            )
            raise OpenRosaRefusal(
                503,
                f"instance {receipt.submission_id} is recorded but its attachments are not: "
                "send it again",
                headers={"Retry-After": "5"},
            ) from None
        if receipt.status == "duplicate":
            return answer(
                202,
                f"Already received: instance {receipt.submission_id} is stored once.",
                nature="submit_success",
                headers=limit,
            )
        return answer(
            201,
            f"Received: instance {receipt.submission_id} recorded at position "
            f"{receipt.global_position}.",
            nature="submit_success",
            headers=limit,
        )

    return router


async def refused(_: Request, refusal: Exception) -> Response:
    """The exception handler of ``OpenRosaRefusal`` (``create_app`` installs it)."""
    assert isinstance(refusal, OpenRosaRefusal)
    return answer(refusal.status, refusal.message, nature="error", headers=refusal.headers)


def install_errors(app: FastAPI) -> None:
    """Under ``/openrosa/``, every error the app would answer in JSON (an unknown path, a
    method not allowed, a malformed request, an unexpected failure) is answered in
    OpenRosa's envelope instead, with ``X-OpenRosa-Version``; elsewhere nothing changes."""
    app.add_exception_handler(OpenRosaRefusal, refused)
    earlier: dict[Any, Any] = dict(app.exception_handlers)

    def wrap(kind: Any) -> None:
        handler = earlier[kind]

        async def openrosa_aware(request: Request, exc: Exception) -> Response:
            if not request.url.path.startswith("/openrosa/"):
                response: Response = await handler(request, exc)
                return response
            if isinstance(exc, StarletteHTTPException):
                detail = exc.detail if isinstance(exc.detail, str) else ""
                return answer(exc.status_code, detail or "refused", nature="error")
            if isinstance(exc, RequestValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                return answer(400, problems or "the request cannot be read", nature="error")
            log.exception("unhandled OpenRosa error", path=request.url.path)
            return answer(500, "an internal error occurred; it was logged", nature="error")

        app.add_exception_handler(kind, openrosa_aware)

    for kind in (StarletteHTTPException, RequestValidationError, Exception):
        if kind in earlier:
            wrap(kind)


async def _parts(request: Request, max_bytes: int) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """The instance document and the attachments (name, content type, bytes) of a
    multipart submission. Raises ``OpenRosaRefusal`` naming what is missing."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise OpenRosaRefusal(
            400, f"a submission is multipart/form-data with a part {openrosa.SUBMISSION_FILE!r}"
        )
    try:
        form = await request.form(max_files=MAX_ATTACHMENTS + 1, max_fields=MAX_ATTACHMENTS + 1)
    except BodyTooLarge:
        raise OpenRosaRefusal(413, f"the submission exceeds {max_bytes} bytes") from None
    except Exception as error:  # multipart parsing: malformed boundaries, too many parts
        raise OpenRosaRefusal(400, f"the multipart body cannot be read ({error})") from None
    document: bytes | None = None
    attachments = []
    for name, part in form.multi_items():
        if not isinstance(part, UploadFile):
            continue
        content = await part.read()
        if name == openrosa.SUBMISSION_FILE:
            if document is not None:
                raise OpenRosaRefusal(
                    400, f"the submission has more than one {openrosa.SUBMISSION_FILE!r} part"
                )
            document = content
            continue
        file_name = part.filename or name
        if not is_file_name(file_name):
            raise OpenRosaRefusal(
                400,
                f"attachment {file_name[:100]!r}: a file name is letters, digits and '._ -', "
                "without a path, at most 200 characters",
            )
        attachments.append((file_name, part.content_type or "application/octet-stream", content))
    if document is None:
        raise OpenRosaRefusal(400, f"the submission has no {openrosa.SUBMISSION_FILE!r} part")
    return document, attachments


async def _store_attachments(
    library: FormLibrary, mission_id: str, submission_id: str, files: list[tuple[str, str, bytes]]
) -> None:
    if not files:
        return
    await library.store.pool.executemany(
        "INSERT INTO submission_attachments (mission_id, submission_id, name, content_type, "
        "sha256, content) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [
            (mission_id, submission_id, name[:200], kind[:200], hashlib.sha256(data).digest(), data)
            for name, kind, data in files
        ],
    )
