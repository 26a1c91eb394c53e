"""The observer's web form: a mission's observation forms filled in the browser, offline.

The page renders a form version with ODK Web Forms (``@getodk/web-forms``, ODK's own XForm
client, vendored in ``static-files/vendor/odk-web-forms``), with the team and the chosen
polling station filled in. A finished form is put in an outbox in the browser's IndexedDB
under its ``instanceID`` (the client-chosen submission id) and sent, when there is a
connection, to the mission's OpenRosa submission URL, as ODK Collect sends it: the same
intake, rules and answers, a resend acknowledged and stored once. A service worker keeps
the page, its scripts and the forms, so that the page opens and takes reports offline.

The outbox sends with a credential of its own, not the console session: an observer token
for the team and mission, valid until the day after election day (host time), kept with
the outbox, so that reports queued in the morning are sent in the evening whatever became
of the session.
"""

import base64
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from importlib.resources import files
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from api.tokens import Role, TokenStore
from console import i18n
from console.web import SECURITY_HEADERS, PageError, Viewer, csrf_ok, posted_token
from domain.values import IDENTIFIER_PATTERN
from forms.collect import collect_settings, qr_svg, server_url, settings_payload
from forms.library import FormLibrary
from intake.writer import registered_stations
from operations.service import Operations

MissionId = Annotated[str, Path(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]
FormPart = Annotated[str, Path(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]

IMPORT_MAP = (
    '{"imports": {"vue": "/static/vendor/vue/vue.runtime.esm-browser.prod.js", '
    '"@getodk/web-forms": "/static/vendor/odk-web-forms/dist/index.js"}}'
)
"""The page's import map: ODK Web Forms' bundle imports ``vue`` by name."""

_MAP_HASH = base64.b64encode(hashlib.sha256(IMPORT_MAP.encode("utf-8")).digest()).decode()

OBSERVE_CSP = (
    # ODK Web Forms compiles its XPath parser (tree-sitter) from WebAssembly and injects
    # its styles and fonts at run time: this page alone allows exactly that.
    f"default-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; "
    f"style-src 'self' 'unsafe-inline'; script-src 'self' 'sha256-{_MAP_HASH}' "
    "'wasm-unsafe-eval'; connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)


def _offline_assets() -> list[str]:
    """What the page loads, kept for offline use: the console's own scripts and styles,
    Vue, and every file of ODK Web Forms' bundle (its chunks have hashed names)."""
    static = files("console") / "static-files"
    bundle = static / "vendor" / "odk-web-forms" / "dist"
    return [
        "/static/vendor/pico/pico.min.css",
        "/static/console.css",
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/htmx-ext-sse/sse.js",
        "/static/console.js",
        "/static/observe.js",
        "/static/vendor/vue/vue.runtime.esm-browser.prod.js",
        *sorted(
            f"/static/vendor/odk-web-forms/dist/{entry.name}"
            for entry in bundle.iterdir()
            if entry.name.endswith(".js")
        ),
    ]


OFFLINE_ASSETS = _offline_assets()

CREDENTIAL_GRACE = timedelta(days=1)
"""How long after election day (host time) the outbox's credential still sends."""


def credential_expiry(election_day: Any, time_zone: str | None, now: datetime) -> datetime:
    """When the outbox's credential stops working: the end of the day after election day
    in the host's zone (UTC without one), and not sooner than 12 hours from ``now``; a day
    from ``now`` if election day is unknown."""
    if election_day is None:
        return now + CREDENTIAL_GRACE
    zone = ZoneInfo(time_zone) if time_zone else UTC
    end = datetime.combine(election_day + CREDENTIAL_GRACE, time(23, 59, 59), tzinfo=zone)
    return max(end.astimezone(UTC), now + timedelta(hours=12))


class ObserverPages:
    """The observer's web form and its outbox credential."""

    def __init__(
        self,
        *,
        operations: Operations,
        pages: Jinja2Templates,
        viewer: Callable[..., Awaitable[Viewer]],
        render: Callable[..., HTMLResponse],
    ) -> None:
        self.operations = operations
        self.store = operations.missions.store
        self.library = FormLibrary(self.store)
        self.tokens = TokenStore(self.store.pool)
        self.pages = pages
        self.viewer = viewer
        self.render = render

    async def observer(self, viewer: Viewer, mission_id: str) -> str:
        """The viewer's team, once their role may report and the mission is in scope."""
        principal = viewer.principal
        if principal.role is not Role.observer or principal.team_id is None:
            raise PageError(
                403,
                i18n.gettext("Refused"),
                i18n.gettext("The web form is for observers of a team."),
            )
        await self.operations.guarded("submit_reports", principal, mission_id)
        return principal.team_id

    async def team_token(
        self, viewer: Viewer, mission_id: str, team_id: str, use: str
    ) -> tuple[str, datetime]:
        """A new observer token for the team, named after the person and its ``use``,
        valid until the day after election day (host time): (token, expiry)."""
        state = await self.operations.missions.state(mission_id)
        now = datetime.now(UTC)
        expires = credential_expiry(
            state.election.date if state.election else None, state.time_zone, now
        )
        token, _ = await self.tokens.create(
            role=Role.observer,
            name=f"{viewer.principal.name} ({use})",
            mission_id=mission_id,
            team_id=team_id,
            expires_in=expires - now,
            issued_to=viewer.user_id,
        )
        return token, expires

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        Signed = Annotated[Viewer, Depends(self.viewer)]

        @router.get(
            "/missions/{mission_id}/observe", name="console_observe", response_class=HTMLResponse
        )
        async def observe(request: Request, mission_id: MissionId, viewer: Signed) -> HTMLResponse:
            """The team's web form: a form and a polling station chosen, the form filled,
            the outbox of what waits and what was acknowledged."""
            team_id = await self.observer(viewer, mission_id)
            forms = await self.library.current_forms(mission_id)
            stations = await registered_stations(self.store, mission_id)
            response = self.render(
                request,
                "observe.html",
                viewer,
                mission_id=mission_id,
                team_id=team_id,
                forms=forms,
                stations=stations,
                import_map=IMPORT_MAP,
                offline_assets=" ".join(OFFLINE_ASSETS),
            )
            response.headers["Content-Security-Policy"] = OBSERVE_CSP
            return response

        @router.get(
            "/missions/{mission_id}/observe/forms/{form_id}/{version}.xml",
            name="console_observe_xform",
        )
        async def xform(
            mission_id: MissionId, form_id: FormPart, version: FormPart, viewer: Signed
        ) -> Response:
            """The XForm of a form version assigned to the mission."""
            await self.observer(viewer, mission_id)
            stored = await self.library.mission_form(mission_id, form_id, version)
            if stored is None:
                raise PageError(404, i18n.gettext("Not found"), f"no form {form_id!r} {version!r}")
            return Response(stored.xform, media_type="text/xml; charset=utf-8")

        @router.post("/missions/{mission_id}/observe/credential", name="console_observe_credential")
        async def credential(request: Request, mission_id: MissionId, viewer: Signed) -> Response:
            """The outbox's credential: the team's OpenRosa submission URL, holding an
            observer token that expires the day after election day (host time)."""
            if not csrf_ok(viewer.csrf_token, await posted_token(request)):
                raise PageError(403, i18n.gettext("Refused"), "CSRF check failed")
            team_id = await self.observer(viewer, mission_id)
            token, expires = await self.team_token(viewer, mission_id, team_id, "web form")
            return JSONResponse(
                {
                    "submission_url": server_url("", token, mission_id) + "/submission",
                    "team_id": team_id,
                    "expires_at": expires.isoformat(),
                },
                headers={"Cache-Control": "no-store"},
            )

        @router.post(
            "/missions/{mission_id}/observe/collect",
            name="console_observe_collect",
            response_class=HTMLResponse,
        )
        async def collect(request: Request, mission_id: MissionId, viewer: Signed) -> HTMLResponse:
            """ODK Collect's settings for the team as a QR code (shown once: the server
            URL it holds carries a new observer token, valid until the day after
            election day)."""
            if not csrf_ok(viewer.csrf_token, await posted_token(request)):
                raise PageError(403, i18n.gettext("Refused"), "CSRF check failed")
            team_id = await self.observer(viewer, mission_id)
            token, expires = await self.team_token(viewer, mission_id, team_id, "ODK Collect")
            base = str(request.base_url).rstrip("/")
            settings = collect_settings(
                base_url=base, token=token, mission_id=mission_id, team_id=team_id
            )
            svg = qr_svg(settings_payload(settings))
            response = self.render(
                request,
                "collect.html",
                viewer,
                mission_id=mission_id,
                team_id=team_id,
                server_url=settings["general"]["server_url"],
                qr=base64.b64encode(svg.encode("utf-8")).decode("ascii"),
                expires=expires,
            )
            response.headers["Cache-Control"] = "no-store"
            return response

        @router.get("/observe-worker.js", name="console_observe_worker")
        async def service_worker() -> Response:
            """The web form's service worker (at the root, so that its scope covers the
            mission pages it keeps)."""
            return Response(
                WORKER_SOURCE,
                media_type="text/javascript; charset=utf-8",
                headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
            )

        return router


def _worker_source() -> str:
    return (files("console") / "static-files" / "observe-worker.js").read_text(encoding="utf-8")


WORKER_SOURCE = _worker_source()
