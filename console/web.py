"""What every console page shares: templates with the person's language, the signed
session cookie, CSRF checks, and HTML answers for errors.

A session's secret travels in a cookie signed with itsdangerous (``eom_session``:
HttpOnly, SameSite=Strict, Secure when the console is served over https, expiring with
the session); the session itself (its person, its CSRF token, its expiry) is kept by
``accounts``, which stores the secret only as a hash, so a session ends for good when it
is signed out, expires, or its person is disabled. Every form carries the session's
CSRF token (``_csrf``; htmx requests send it as ``X-CSRF-Token``): a form posted without
it, or with another session's, is refused before anything is read.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api.errors import ApiError
from api.tokens import Principal
from console import i18n
from domain.host_time import localized

log = structlog.get_logger("eom.console")

SESSION_COOKIE = "eom_session"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"

_SECRET_IN_PATH = re.compile(r"(/(?:sign-in|answer)/)[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    """``text`` (a path, a log line) with one-time secrets replaced by ``…``."""
    return _SECRET_IN_PATH.sub(r"\1…", text)


class RedactSecrets:
    """A logging filter: the secrets of sign-in and answer links never reach a log (the
    access log records paths)."""

    def filter(self, record: Any) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


@dataclass(frozen=True)
class Viewer:
    """The signed-in person answering a request: who they are to the API's rules (the
    principal, with their role and scope), their language, their session's CSRF token."""

    principal: Principal
    email: str
    user_id: uuid.UUID
    language: str
    csrf_token: str
    session_secret: str


def templates() -> Jinja2Templates:
    """The console's templates, translated with the request's language (``_()``,
    ``ngettext()`` and ``{% trans %}``, from ``console.i18n``)."""
    folder = files("console") / "page-templates"
    environment = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    environment.globals["languages"] = i18n.LANGUAGES
    environment.filters["moment"] = _moment
    environment.filters["host_time"] = localized
    return Jinja2Templates(env=environment)


def _moment(value: Any) -> str:
    """A time as people read it: date, hours and minutes, and its UTC offset (times are
    shown in the host's zone, with their offset)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M")
        return value.strftime("%Y-%m-%d %H:%M %z").replace("+0000", "UTC")
    return "" if value is None else str(value)


class Signer:
    """The session cookie's signature (itsdangerous ``TimestampSigner``, HMAC-SHA1 over
    the value and the time it was signed, keyed by the console's secret key)."""

    def __init__(self, secret_key: str, *, max_age_seconds: int) -> None:
        if len(secret_key) < 32:
            raise ValueError("the console's secret key needs at least 32 characters")
        self._signer = TimestampSigner(secret_key, salt="eom-console-session")
        self.max_age_seconds = max_age_seconds

    def sign(self, value: str) -> str:
        return self._signer.sign(value).decode()

    def unsign(self, cookie: str) -> str | None:
        """The value a cookie carries, or None if it was not signed by this console or
        is older than the session's life."""
        try:
            return self._signer.unsign(cookie, max_age=self.max_age_seconds).decode()
        except (BadSignature, UnicodeDecodeError):
            return None


MAX_FORM_FIELDS = 12_000
"""Inputs one posted form may carry (a list of 1,000 polling stations has 4,000)."""


def csrf_ok(expected: str, request_token: str | None) -> bool:
    """Whether a form's token is the session's (compared in constant time, as bytes:
    a token with characters outside ASCII is simply not the session's)."""
    if not request_token:
        return False
    return hmac.compare_digest(expected.encode(), request_token.encode("utf-8", "replace"))


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The posted form's (name, value) pairs, at most ``MAX_FORM_FIELDS`` of them, files
    refused. A value that was not UTF-8 (the parser puts U+FFFD where it was not) is
    refused (422) naming its field: nothing the browser did not mean is recorded."""
    try:
        form = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
    except StarletteHTTPException as error:
        raise PageError(400, i18n.gettext("Refused"), str(error.detail)) from None
    pairs = []
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise PageError(422, i18n.gettext("Invalid input"), f"{name}: files are not taken")
        if "\ufffd" in value or "\ufffd" in name:
            raise PageError(
                422,
                i18n.gettext("Invalid input"),
                f"{name}: " + i18n.gettext("the text is not valid UTF-8"),
            )
        pairs.append((name, value))
    return pairs


async def posted_token(request: Request) -> str | None:
    """The CSRF token a request carries: the header htmx sends, or the form's field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    return dict(await read_form(request)).get(CSRF_FIELD)


SECURITY_HEADERS = {
    # Everything the console loads is its own: no inline script, no other origin.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Link secrets live in paths (/sign-in/..., /answer/...): never sent onwards.
    "Referrer-Policy": "no-referrer",
}


def install_security_headers(app: FastAPI) -> None:
    """The console's pages answer with ``SECURITY_HEADERS`` (the API's JSON keeps its
    own; its Swagger page loads its own assets)."""

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if is_console_path(request.url.path):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response


def set_session_cookie(
    response: Response, signer: Signer, secret: str, *, expires_at: datetime, secure: bool
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signer.sign(secret),
        max_age=max(1, int((expires_at - datetime.now(UTC)).total_seconds())),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="strict", secure=secure, path="/"
    )


class PageError(Exception):
    """A console page's refusal, shown as a page with its status (403, 404, 409...)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class NeedsSignIn(Exception):
    """No session (or one that ended): the console sends the person to sign in."""


def is_console_path(path: str) -> bool:
    return not (path.startswith(("/v1", "/openrosa/")) or path == "/health")


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def install_error_pages(
    app: FastAPI, pages: Jinja2Templates, names: Callable[[], dict[str, Any]]
) -> None:
    """The API's errors stay JSON under ``/v1``; elsewhere a refusal is a page that says
    what was refused and why, with the same status."""
    api_handlers: Mapping[Any, ErrorHandler] = dict(app.exception_handlers)

    def page(request: Request, status: int, title: str, message: str) -> Response:
        if request.headers.get("HX-Request"):
            return pages.TemplateResponse(
                request,
                "partials/refusal.html",
                {"title": title, "message": message},
                status_code=status,
            )
        return pages.TemplateResponse(
            request,
            "error.html",
            {
                **names(),
                "title": title,
                "message": message,
                "viewer": getattr(request.state, "viewer", None),
                "csrf_field": CSRF_FIELD,
            },
            status_code=status,
        )

    def wrap(kind: Any, render: Callable[[Request, Exception], Response]) -> None:
        earlier = api_handlers.get(kind)

        async def handler(request: Request, exc: Exception) -> Response:
            if earlier is not None and not is_console_path(request.url.path):
                return await earlier(request, exc)
            with i18n.speaking(getattr(request.state, "language", None)):
                return render(request, exc)

        app.add_exception_handler(kind, handler)

    def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return page(request, exc.status, exc.code.replace("_", " "), exc.message)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: i18n.gettext("Not found"), 405: i18n.gettext("Not allowed")}.get(
            exc.status_code, i18n.gettext("Refused")
        )
        detail = exc.detail if isinstance(exc.detail, str) else ""
        return page(request, exc.status_code, title, detail or title)

    def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        return page(request, 422, i18n.gettext("Invalid input"), message)

    def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return page(request, exc.status, exc.title, exc.message)

    def sign_in(request: Request, exc: Exception) -> Response:
        if request.headers.get("HX-Request"):
            response = Response(status_code=401)
            response.headers["HX-Redirect"] = "/sign-in"
            return response
        return RedirectResponse("/sign-in", status_code=303)

    def gone(request: Request, exc: Exception) -> Response:
        # The browser went away while sending (a check overtaken by the form's submit):
        # nobody reads the answer.
        return Response(status_code=400)

    wrap(ClientDisconnect, gone)
    wrap(ApiError, api_error)
    wrap(StarletteHTTPException, http_error)
    wrap(RequestValidationError, invalid)
    wrap(PageError, refused)
    wrap(NeedsSignIn, sign_in)
