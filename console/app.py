"""The console mounted on the API's application: static assets, sign-in and sessions,
the mission pages, reminders' controls, the live timeline, the auditor's pages and the
member states' answer pages.

``mount_console`` is called by the composition root (``worker.run_api``) and by the
tests, with the same services the API's routes use: nothing here reads or writes the
store except through them.
"""

import asyncio
import secrets
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from limits import parse as parse_rate
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from accounts.answer_links import AnswerLinks
from accounts.directory import UserDirectory
from accounts.links import LinkRefused, SignInLinks, sign_in_url
from accounts.mail import MailError, send_sign_in_link
from accounts.sessions import Sessions
from accounts.users import UserError, check_email
from activities.delivery import DeliverySettings
from api.access import in_scope
from api.feed import EventFeed
from auditreport import export as auditreport_export
from auditreport.export import EXPORT_MEDIA_TYPES, ExportFormat
from console import i18n
from console.answers import AnswerPages
from console.observe import ObserverPages
from console.pages import MissionId, MissionPages, event_summary
from console.web import (
    CSRF_FIELD,
    SESSION_COOKIE,
    NeedsSignIn,
    PageError,
    Signer,
    Viewer,
    clear_session_cookie,
    install_error_pages,
    install_security_headers,
    posted_token,
    read_form,
    set_session_cookie,
    templates,
)
from domain.values import DeadlineKind
from operations.errors import InvalidInput
from operations.reminders import LadderAction
from operations.service import Operations

log = structlog.get_logger("eom.console")

FRAGMENTS = frozenset(
    {
        "console_command_row",
        "console_command_check",
        "console_register_check",
        "console_answer_check",
        "console_election_day",
        "console_answer_row",
    }
)
"""Routes answering a part of a page (htmx), not a page: checked within their pages."""
DOWNLOADS = frozenset({"console_export", "console_observe_xform", "console_observe_worker"})
STREAMS = frozenset({"console_live"})

SIGN_IN_RATE = parse_rate("5/15minutes")
"""Sign-in links one address may be sent."""
SIGN_IN_CLIENT_RATE = parse_rate("30/15minutes")
"""Sign-in requests one client (an address on the network) may make: a secretariat
behind one address signs in many people."""

PRESESSION_COOKIE = "eom_form"
"""Before sign-in, forms are bound to this cookie (the double-submit pattern): its
signed value is the form's CSRF token."""


@dataclass(frozen=True)
class ConsoleSettings:
    """``secret_key`` signs the session cookies (32+ characters; keep it across restarts
    or sessions end with them); ``base_url`` is where people reach the console (links in
    e-mails); sessions last ``session_seconds``, sign-in links ``link_seconds``."""

    secret_key: str
    base_url: str
    session_seconds: int = 8 * 3600
    link_seconds: int = 15 * 60
    stream_check_seconds: float = 5.0

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


@dataclass(frozen=True)
class ConsoleServices:
    """What the console needs besides the API's own operations (``app.state.operations``):
    the live feed of events, and the mail relay for sign-in links."""

    feed: EventFeed
    mail: DeliverySettings


def mount_console(app: FastAPI, services: ConsoleServices, settings: ConsoleSettings) -> None:
    """Serve the console at ``/`` beside the API (which stays under ``/v1``), over the
    API's operations (``api.app.create_app`` leaves them on ``app.state.operations``)."""
    pages = templates()
    operations: Operations = app.state.operations
    signer = Signer(settings.secret_key, max_age_seconds=settings.session_seconds)
    form_signer = Signer(settings.secret_key + ":forms", max_age_seconds=24 * 3600)
    missions = operations.missions
    store = missions.store
    users = UserDirectory(store)
    links = SignInLinks(store.pool)
    sessions = Sessions(store.pool)
    static = files("console") / "static-files"
    app.mount("/static", StaticFiles(directory=str(static)), name="console-static")
    install_error_pages(app, pages, _names)
    install_security_headers(app)
    sign_in_limiter = MovingWindowRateLimiter(MemoryStorage())
    background: set[asyncio.Task[None]] = set()

    async def viewer(request: Request) -> Viewer:
        """The signed-in person, or ``NeedsSignIn`` (sent to the sign-in page)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        secret = signer.unsign(cookie) if cookie else None
        session = await sessions.lookup(secret) if secret else None
        if session is None or secret is None:
            raise NeedsSignIn()
        language = i18n.use(session.user.language.value)
        request.state.language = language
        signed = Viewer(
            principal=session.principal,
            email=session.user.email,
            user_id=session.user.user_id,
            language=language,
            csrf_token=session.csrf_token,
            session_secret=secret,
        )
        request.state.viewer = signed
        return signed

    Signed = Annotated[Viewer, Depends(viewer)]

    def context(request: Request, viewer: Viewer | None, **values: Any) -> dict[str, Any]:
        return {"viewer": viewer, "csrf_field": CSRF_FIELD, **_names(), **values}

    def render(
        request: Request,
        template: str,
        viewer: Viewer | None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        return pages.TemplateResponse(
            request, template, context(request, viewer, **values), status_code=status_code
        )

    mission_pages = MissionPages(operations=operations, pages=pages, viewer=viewer, context=context)

    # -- sign-in ------------------------------------------------------------------------

    def presession(request: Request) -> tuple[str, str | None]:
        """The visitor's pre-session value (a new one if none) and a cookie to set."""
        found = form_signer.unsign(request.cookies.get(PRESESSION_COOKIE, ""))
        if found:
            return found, None
        value = secrets.token_urlsafe(16)
        return value, value

    def with_presession(response: Response, new: str | None) -> Response:
        if new is not None:
            response.set_cookie(
                PRESESSION_COOKIE,
                form_signer.sign(new),
                max_age=24 * 3600,
                httponly=True,
                samesite="strict",
                secure=settings.secure_cookies,
            )
        return response

    async def check_presession(request: Request) -> None:
        value = form_signer.unsign(request.cookies.get(PRESESSION_COOKIE, ""))
        token = await posted_token(request)
        expected = form_signer.sign(value) if value else ""
        if not value or not token or form_signer.unsign(token) != value or not expected:
            raise PageError(
                403,
                i18n.gettext("Refused"),
                i18n.gettext("This form is not from your browser (CSRF check failed)."),
            )

    @app.get("/sign-in", name="console_sign_in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        value, new = presession(request)
        return with_presession(
            render(request, "sign_in.html", None, form_token=form_signer.sign(value), sent=False),
            new,
        )

    @app.post("/sign-in", name="console_sign_in_send", response_class=HTMLResponse)
    async def sign_in_send(request: Request) -> Response:
        """E-mail a one-time sign-in link to a known, active person. The answer is the
        same, and as quick, whoever the address belongs to (the link is made and sent
        after answering): it says nothing of who has an account. At most
        ``SIGN_IN_RATE`` requests per address, ``SIGN_IN_CLIENT_RATE`` per client."""
        await check_presession(request)
        email = dict(await read_form(request)).get("email", "")
        try:
            address = check_email(email)
        except UserError as error:
            raise PageError(422, i18n.gettext("Invalid input"), str(error)) from None
        client = request.client.host if request.client else "unknown"
        for rate, key in (
            (SIGN_IN_RATE, f"address:{address.casefold()}"),
            (SIGN_IN_CLIENT_RATE, f"client:{client}"),
        ):
            if not await sign_in_limiter.hit(rate, key):
                raise PageError(
                    429,
                    i18n.gettext("Too many requests"),
                    i18n.gettext("Too many sign-in links asked for; try again in a few minutes."),
                )
        sending = asyncio.create_task(send_link(address))
        background.add(sending)
        sending.add_done_callback(background.discard)
        return render(
            request,
            "sign_in.html",
            None,
            sent=True,
            minutes=settings.link_seconds // 60,
            form_token="",
        )

    async def send_link(address: str) -> None:
        """Make and e-mail a link if ``address`` is an active person's (logged, never
        raised: nobody waits for it)."""
        try:
            user = await users.by_email(address)
            if user is None or not user.active:
                return
            ttl = timedelta(seconds=settings.link_seconds)
            secret = await links.issue(user, ttl)
            await send_sign_in_link(
                user,
                sign_in_url(settings.base_url, secret),
                services.mail,
                expires_at=datetime.now(UTC) + ttl,
            )
        except (MailError, UserError, asyncpg.PostgresError, OSError) as error:
            log.warning("sign-in link not sent", error=str(error))

    @app.get("/sign-in/{secret}", name="console_sign_in_link", response_class=HTMLResponse)
    async def sign_in_link(
        request: Request, secret: Annotated[str, Path(min_length=16, max_length=200)]
    ) -> Response:
        """The link from the e-mail: a button to sign in (a link opened by a mail
        scanner's preview must not use it up)."""
        value, new = presession(request)
        return with_presession(
            render(request, "sign_in_link.html", None, form_token=form_signer.sign(value)), new
        )

    @app.post("/sign-in/{secret}", name="console_sign_in_redeem", response_class=HTMLResponse)
    async def sign_in_redeem(
        request: Request, secret: Annotated[str, Path(min_length=16, max_length=200)]
    ) -> Response:
        await check_presession(request)
        try:
            user = await links.redeem(secret)
        except LinkRefused as refused:
            return render(
                request,
                "sign_in_link.html",
                None,
                status_code=410 if refused.reason in ("used", "expired") else 400,
                refused=_link_refusal(refused.reason),
            )
        started = await sessions.start(user, timedelta(seconds=settings.session_seconds))
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(
            response,
            signer,
            started.secret,
            expires_at=started.expires_at,
            secure=settings.secure_cookies,
        )
        response.delete_cookie(PRESESSION_COOKIE)
        log.info("signed in", user_id=str(user.user_id), session_id=str(started.session_id))
        return response

    @app.post("/sign-out", name="console_sign_out")
    async def sign_out(request: Request, viewer: Signed) -> Response:
        await mission_pages.checked_form(request, viewer)
        await sessions.end(viewer.session_secret)
        response = RedirectResponse("/sign-in", status_code=303)
        clear_session_cookie(response, secure=settings.secure_cookies)
        return response

    app.include_router(mission_pages.router())
    observer_pages = ObserverPages(operations=operations, pages=pages, viewer=viewer, render=render)
    app.include_router(observer_pages.router())
    answers = AnswerPages(
        missions=missions,
        links=AnswerLinks(store.pool),
        commands=operations,
        pages=pages,
        context=context,
        form_key=settings.secret_key + ":answers",
    )
    app.include_router(answers.router())

    # -- reminders ----------------------------------------------------------------------

    @app.post(
        "/missions/{mission_id}/reminders/{kind}/{member_state}/{action}",
        name="console_reminder_action",
        include_in_schema=False,
    )
    async def reminder_action(
        request: Request,
        mission_id: MissionId,
        kind: DeadlineKind,
        member_state: Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")],
        action: Annotated[str, Path(pattern=r"^(pause|resume|send-now)$")],
        viewer: Signed,
        cycle: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Response:
        """Pause, resume or send now one member state's reminders (as the API's
        ``POST /v1/missions/{id}/reminders/{kind}/{state}/{action}``)."""
        await mission_pages.checked_form(request, viewer)
        chosen = LadderAction(action.replace("-", "_"))
        try:
            await operations.signal_ladder(
                viewer.principal, mission_id, chosen, kind, member_state, cycle=cycle
            )
        except InvalidInput as error:
            raise PageError(422, i18n.gettext("Invalid input"), str(error)) from None
        return RedirectResponse(f"/missions/{mission_id}#reminders", status_code=303)

    # -- the live timeline --------------------------------------------------------------

    async def streamable(mission_id: MissionId, viewer: Signed) -> tuple[str, Viewer]:
        """Checked before the stream begins (after, a refusal could not be answered)."""
        await operations.guarded("stream_events", viewer.principal, mission_id)
        return mission_id, viewer

    @app.get(
        "/missions/{mission_id}/live",
        name="console_live",
        response_class=EventSourceResponse,
        include_in_schema=False,
    )
    async def live(
        streamed: Annotated[tuple[str, Viewer], Depends(streamable)],
        after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    ) -> AsyncIterable[ServerSentEvent]:
        """The mission's new events as timeline rows, as they are recorded (htmx's SSE
        extension adds each to the page); the stream ends (``end``) once the session
        has ended or its person is disabled."""
        mission_id, viewer = streamed
        zone = (await missions.registered(mission_id)).time_zone
        row = pages.env.get_template("partials/timeline_event.html")

        async def lapsed() -> bool:
            return await sessions.lookup(viewer.session_secret) is None

        try:
            async for event in services.feed.follow(
                mission_id,
                after_version=after,
                stop_when=lapsed,
                check_every=settings.stream_check_seconds,
            ):
                with i18n.speaking(viewer.language):
                    html = row.render(event=event, summary=event_summary, zone=zone)
                yield ServerSentEvent(
                    raw_data=html.replace("\n", " "),
                    event="recorded",
                    id=str(event.stream_version),
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            log.warning("console live stream ended: the event store failed", error=str(error))
        yield ServerSentEvent(raw_data="", event="end")

    # -- auditors -----------------------------------------------------------------------

    @app.get("/audit", name="console_audit", response_class=HTMLResponse)
    async def audit(request: Request, viewer: Signed) -> HTMLResponse:
        """Every stream in the person's scope verified: each one's verdict and its
        first break."""
        principal = viewer.principal
        verification = await operations.verify_all(principal)
        listed = await missions.list(where=lambda m: in_scope(principal, m))
        return render(
            request,
            "audit.html",
            viewer,
            verification=verification,
            mission_ids={m.mission_id for m in listed},
        )

    @app.get(
        "/missions/{mission_id}/audit", name="console_mission_audit", response_class=HTMLResponse
    )
    async def mission_audit(
        request: Request,
        mission_id: MissionId,
        viewer: Signed,
        version: Annotated[str | None, Query(max_length=16)] = None,
        at: Annotated[str | None, Query(max_length=40)] = None,
    ) -> HTMLResponse:
        """One mission: its streams verified, its state replayed at a version or a time,
        and its exports."""
        verification = await operations.verify_mission(viewer.principal, mission_id)
        replayed = None
        problem = None
        # The replay form sends both fields; an empty one is not asked for.
        number = version.strip() if version else ""
        if number or at:
            try:
                if number and not number.isdigit():
                    raise InvalidInput("version", f"{version!r} is not a version number")
                replayed = await mission_pages.replayed(
                    viewer.principal, mission_id, version=int(number) if number else None, at=at
                )
            except InvalidInput as error:
                problem = str(error)
        return render(
            request,
            "mission_audit.html",
            viewer,
            mission_id=mission_id,
            verification=verification,
            replayed=replayed,
            problem=problem,
            version=number,
            at=at or "",
            formats=[f.value for f in ExportFormat],
        )

    @app.get("/missions/{mission_id}/export/{format}", name="console_export")
    async def export(
        request: Request, mission_id: MissionId, format: ExportFormat, viewer: Signed
    ) -> Response:
        """The export ``GET /v1/missions/{id}/export`` serves, for a signed-in reader."""
        await operations.guarded("export_mission", viewer.principal, mission_id)
        try:
            data, _ = await auditreport_export.export_mission(store, mission_id, format)
        except auditreport_export.ExportUnavailable as error:
            raise PageError(503, i18n.gettext("Not available"), str(error)) from None
        return Response(
            data,
            media_type=EXPORT_MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{mission_id}.{format.value}"'},
        )


def _link_refusal(reason: str) -> str:
    return {
        "used": i18n.gettext("This sign-in link was already used. Ask for a new one."),
        "expired": i18n.gettext("This sign-in link has expired. Ask for a new one."),
        "disabled": i18n.gettext("This account is disabled."),
    }.get(reason, i18n.gettext("This sign-in link is not valid."))


def _names() -> dict[str, Any]:
    """What the templates show for the domain's names, in the request's language."""
    _ = i18n.gettext
    return {
        "language": i18n.current(),
        "role_names": {
            "coordinator": _("coordinator"),
            "head_of_mission": _("head of mission"),
            "observer": _("observer"),
            "member_state": _("member state"),
            "auditor": _("auditor"),
        },
        "stage_names": {
            "invited": _("Invited"),
            "forming": _("Forming"),
            "pre_election": _("Pre-election"),
            "election_day": _("Election day"),
            "statement": _("Statement"),
            "follow_up": _("Follow-up"),
            "closed": _("Closed"),
            "cancelled": _("Cancelled"),
        },
        "alert_names": {
            "missed_check_in": _("Missed check-in"),
            "overdue_answer": _("Overdue answer"),
            "escalation": _("Escalated"),
            "critical_answer": _("Critical answer"),
        },
        "command_names": {
            "record_needs_assessment": _("Record the needs assessment"),
            "appoint_head_of_mission": _("Appoint the head of mission"),
            "nominate_observer": _("Nominate an observer"),
            "accept_observer": _("Accept an observer"),
            "withdraw_observer": _("Withdraw an observer"),
            "form_team": _("Form a team"),
            "deploy_mission": _("Deploy the mission"),
            "record_meeting": _("Record a meeting"),
            "publish_interim_report": _("Publish the interim report"),
            "open_election_day": _("Open election day"),
            "record_station_visit": _("Record a station visit"),
            "register_polling_stations": _("Register polling stations"),
            "close_election_day": _("Close election day"),
            "draft_statement": _("Draft the statement"),
            "approve_statement": _("Approve the statement"),
            "publish_statement": _("Publish the statement"),
            "publish_final_report": _("Publish the final report"),
            "issue_recommendations": _("Issue recommendations"),
            "send_recommendations": _("Send the recommendations"),
            "acknowledge_recommendations": _("Record an acknowledgement"),
            "request_nominations": _("Request nominations"),
            "decline_nomination": _("Decline a nomination"),
            "request_evidence": _("Request evidence"),
            "submit_evidence": _("Submit evidence"),
            "rate_implementation": _("Rate an implementation"),
            "reopen_review": _("Reopen the review"),
            "end_follow_up": _("End the follow-up"),
            "postpone_election": _("Postpone the election"),
            "close_mission": _("Close the mission"),
            "cancel_mission": _("Cancel the mission"),
        },
    }
