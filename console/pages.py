"""The console's pages: a view of the event store for each person, every action through
the same command path as the API (``operations``).

Routes are plain HTML (forms post, the server answers with the page or a redirect),
with htmx where part of a page changes on its own: a command's form is checked as it is
filled (a dry run, naming the rule that would refuse it before it is sent), rows are
added to lists, and the timeline follows the mission live over Server-Sent Events.
"""

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from api.access import READERS, ROUTE_ROLES, in_scope, require_role
from api.errors import ApiError
from api.tokens import Principal, Role
from console import i18n
from console.forms import FormErrors, FormField, form_fields, parse_form
from console.stepper import offered, steps
from console.web import PageError, Viewer, csrf_ok, posted_token, read_form
from domain.alerts import mission_alerts
from domain.commands import COMMAND_TYPES, Command, RegisterInvitation
from domain.host_time import localized
from domain.state import Mission
from domain.values import IDENTIFIER_PATTERN
from eventstore.models import RecordedEvent
from intake.visits import mission_visits, with_visits
from operations.audit import Replay
from operations.commands import CommandAnswer
from operations.errors import InvalidInput
from operations.service import Operations

MissionId = Annotated[str, Path(min_length=1, max_length=100, pattern=IDENTIFIER_PATTERN)]
CommandName = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z_]+$")]

TIMELINE_SHOWN = 50
"""Events the mission page lists at first (the latest; the live stream adds new ones)."""


def command_model(name: str) -> type[BaseModel]:
    """The command named ``name`` (a route name such as ``draft_statement``); 404 for
    any other name."""
    model = COMMAND_TYPES.get(name)
    if model is None:
        raise PageError(404, i18n.gettext("Not found"), f"no command {name!r}")
    return model


def event_summary(event: RecordedEvent) -> str:
    """One line on what an event recorded, for the timeline (its type, in words)."""
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in event.event_type).strip()
    return words[:1].upper() + words[1:]


def diff_lines(before: str, after: str) -> list[tuple[str, str]]:
    """The lines of ``after`` against ``before``: (``same``|``added``|``removed``, line),
    from difflib's ``ndiff`` (the standard library's line diff)."""
    marks = {" ": "same", "+": "added", "-": "removed"}
    return [
        (marks[line[0]], line[2:])
        for line in difflib.ndiff(before.splitlines(), after.splitlines())
        if line[:1] in marks
    ]


@dataclass(frozen=True)
class Verdict:
    """A command's answer as a page shows it: accepted (with the events it records or
    would record), or refused with the rule's code, its message and the fields named."""

    accepted: bool
    status: int
    event_types: list[str]
    code: str = ""
    message: str = ""
    fields: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def refused(cls, error: ApiError) -> "Verdict":
        """A refusal the command path raised (a scope, a taken id, a busy mission)."""
        return cls(False, error.status, [], code=error.code, message=error.message)

    @classmethod
    def of(cls, answer: CommandAnswer) -> "Verdict":
        """From the command path's answer (a ``CommandResult``, a ``DryRun`` or an
        ``ErrorResponse`` body)."""
        body = answer.body
        refusal = body.get("refusal") or body.get("error")
        if answer.accepted or not refusal:
            return cls(True, answer.status_code, list(body.get("event_types", [])))
        return cls(
            False,
            int(refusal.get("status", answer.status_code)),
            [],
            code=str(refusal.get("code", "")),
            message=str(refusal.get("message", "")),
            fields=list(refusal.get("fields") or []),
        )


class MissionPages:
    """The pages of missions for signed-in people, over the services the API uses."""

    def __init__(
        self,
        *,
        operations: Operations,
        pages: Jinja2Templates,
        viewer: Callable[..., Awaitable[Viewer]],
        context: Callable[..., dict[str, Any]],
    ) -> None:
        self.operations = operations
        self.commands = operations
        self.missions = operations.missions
        self.pages = pages
        self.viewer = viewer
        self.context = context

    async def guarded(self, route: str, principal: Principal, mission_id: str) -> None:
        """The API's own checks: the role may call ``route``, the mission is in scope."""
        await self.operations.guarded(route, principal, mission_id)

    async def mission_view(self, mission_id: str, version: int | None = None) -> Mission:
        """The mission as the API's GET answers it: folded, with its visits, in host time."""
        state = await self.missions.state(mission_id, version=version)
        visits = await mission_visits(self.missions.store, mission_id, as_of_version=version)
        return localized(with_visits(state, visits), state.time_zone)

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        params = request.path_params
        if "name" in params and "mission_id" in params:
            # Where a command form's lists ask for another row.
            values.setdefault(
                "row_url", f"/missions/{params['mission_id']}/commands/{params['name']}/rows"
            )
        return self.pages.TemplateResponse(
            request, template, self.context(request, viewer, **values), status_code=status_code
        )

    async def replayed(
        self, principal: Principal, mission_id: str, *, version: int | None, at: str | None
    ) -> Replay:
        """The mission replayed as of ``version`` or the time ``at`` (ISO 8601; without
        an offset, in the host's time zone). Raises ``InvalidInput`` naming the field."""
        moment = None
        if at:
            try:
                moment = datetime.fromisoformat(at)
            except ValueError:
                raise InvalidInput(
                    "at", f"{at!r} is not a date and time (2021-01-10T18:00)"
                ) from None
        return await self.operations.replay(principal, mission_id, version=version, at=moment)

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        Signed = Annotated[Viewer, Depends(self.viewer)]

        @router.get("/", name="console_board", response_class=HTMLResponse)
        async def board(request: Request, viewer: Signed) -> HTMLResponse:
            """The missions in the person's scope, with what needs attention."""
            principal = viewer.principal
            listed = await self.missions.list(where=lambda m: in_scope(principal, m))
            now = datetime.now(UTC)
            rows = []
            for summary in listed:
                state = await self.missions.state(summary.mission_id)
                critical = await mission_visits(
                    self.missions.store, summary.mission_id, critical_only=True
                )
                rows.append(
                    {
                        "summary": summary,
                        "organisation": state.organisation,
                        "alerts": mission_alerts(state, now, visits=critical),
                    }
                )
            return self.render(request, "board.html", viewer, rows=rows)

        @router.get("/missions/new", name="console_register", response_class=HTMLResponse)
        async def register_form(request: Request, viewer: Signed) -> HTMLResponse:
            """A host's invitation, registered: the mission starts."""
            require_role("register_invitation", viewer.principal)
            return self.render(
                request,
                "register.html",
                viewer,
                fields=form_fields(RegisterInvitation),
                values=self.scope_values(viewer),
                problems={},
                check=None,
            )

        @router.post(
            "/missions/new/check", name="console_register_check", response_class=HTMLResponse
        )
        async def register_check(request: Request, viewer: Signed) -> HTMLResponse:
            await self.checked_form(request, viewer)
            problems, check = await self.register(request, viewer, dry_run=True)
            return self.render(
                request, "partials/check.html", viewer, problems=problems, check=check
            )

        @router.post("/missions/new", name="console_register_submit", response_class=HTMLResponse)
        async def register_submit(request: Request, viewer: Signed) -> Response:
            await self.checked_form(request, viewer)
            problems, check = await self.register(request, viewer, dry_run=False)
            values = dict(await read_form(request))
            if check is not None and check.accepted:
                return RedirectResponse(f"/missions/{values.get('mission_id')}", status_code=303)
            return self.render(
                request,
                "register.html",
                viewer,
                status_code=check.status if check else 422,
                fields=form_fields(RegisterInvitation),
                values=values,
                problems=problems,
                check=check,
            )

        @router.get("/missions/{mission_id}", name="console_mission", response_class=HTMLResponse)
        async def mission(request: Request, mission_id: MissionId, viewer: Signed) -> HTMLResponse:
            """The mission: its lifecycle, what may be done now, its people, election day,
            statement, recommendations, reminders and live timeline."""
            principal = viewer.principal
            if principal.role not in READERS:
                raise PageError(
                    403,
                    i18n.gettext("Refused"),
                    i18n.gettext("Your role does not read the mission's record."),
                )
            await self.guarded("get_mission", principal, mission_id)
            state = await self.mission_view(mission_id)
            events = await self.missions.store.read_stream(
                mission_id, from_version=max(1, state.version - TIMELINE_SHOWN + 1)
            )
            coverage = await self.operations.coverage(principal, mission_id, catch_up=False)
            ladders = await self.operations.reminders(principal, mission_id)
            return self.render(
                request,
                "mission.html",
                viewer,
                mission=state,
                steps=steps(state),
                commands=[name for name, _ in offered(state, principal.role)],
                alerts=mission_alerts(state, datetime.now(UTC)),
                coverage=coverage,
                ladders=ladders,
                may_signal=principal.role in ROUTE_ROLES.get("pause_reminders", frozenset()),
                events=list(reversed(events)),
                summary=event_summary,
                zone=state.time_zone,
            )

        @router.get(
            "/missions/{mission_id}/analysis", name="console_analysis", response_class=HTMLResponse
        )
        async def analysis(request: Request, mission_id: MissionId, viewer: Signed) -> HTMLResponse:
            """The figures of the mission's observation forms: per question, the polling
            stations that gave each answer out of those asked, overall, by locality and by
            team, each with the log positions of the visits behind it."""
            found = await self.operations.analysis(
                viewer.principal, mission_id, language=viewer.language
            )
            state = await self.missions.state(mission_id)
            overall = [f for f in found.figures if f.scope == "all"]
            detail: dict[tuple[str, str], list[Any]] = {}
            for f in found.figures:
                if f.scope != "all":
                    detail.setdefault((f.form_id, f.question), []).append(f)
            return self.render(
                request,
                "analysis.html",
                viewer,
                mission=state,
                analysis=found,
                overall=overall,
                detail=detail,
            )

        @router.get(
            "/missions/{mission_id}/election-day",
            name="console_election_day",
            response_class=HTMLResponse,
        )
        async def election_day(
            request: Request, mission_id: MissionId, viewer: Signed
        ) -> HTMLResponse:
            """Election day's figures as they are now (the mission page asks every few
            seconds while election day is open): coverage per locality and phase, each
            team's reports and missed check-ins, conflicts."""
            principal = viewer.principal
            coverage = await self.operations.coverage(principal, mission_id, catch_up=False)
            state = await self.missions.state(mission_id)
            return self.render(
                request, "partials/election_day.html", viewer, mission=state, coverage=coverage
            )

        @router.get(
            "/missions/{mission_id}/commands/{name}",
            name="console_command",
            response_class=HTMLResponse,
        )
        async def command_form(
            request: Request, mission_id: MissionId, name: CommandName, viewer: Signed
        ) -> HTMLResponse:
            """A command's form, its options from the domain."""
            model = command_model(name)
            await self.guarded(name, viewer.principal, mission_id)
            state = await self.mission_view(mission_id)
            return self.command_page(request, viewer, state, name, model)

        @router.get(
            "/missions/{mission_id}/commands/{name}/rows/{field}/{index}",
            name="console_command_row",
            response_class=HTMLResponse,
        )
        async def command_row(
            request: Request,
            mission_id: MissionId,
            name: CommandName,
            field: Annotated[str, Path(max_length=200, pattern=r"^[a-z_.0-9]+$")],
            index: Annotated[int, Path(ge=0, le=499)],
            viewer: Signed,
        ) -> HTMLResponse:
            """One more row of a list in a command's form (htmx asks for it)."""
            model = command_model(name)
            await self.guarded(name, viewer.principal, mission_id)
            rows = _find(form_fields(model), field)
            if rows is None or rows.kind != "rows":
                raise PageError(404, i18n.gettext("Not found"), f"no list {field!r} in {name}")
            return self.render(
                request,
                "partials/row.html",
                viewer,
                field=rows,
                index=index,
                values={},
                problems={},
            )

        @router.post(
            "/missions/{mission_id}/commands/{name}/check",
            name="console_command_check",
            response_class=HTMLResponse,
        )
        async def command_check(
            request: Request, mission_id: MissionId, name: CommandName, viewer: Signed
        ) -> HTMLResponse:
            """The dry run of what the form says now: accepted, or the rule that refuses it."""
            model = command_model(name)
            await self.checked_form(request, viewer)
            pairs = await read_form(request)
            try:
                command = cast("Command", parse_form(model, pairs, fixed=self.fixed(name, viewer)))
            except FormErrors as error:
                return self.render(
                    request, "partials/check.html", viewer, problems=error.problems, check=None
                )
            check = await self.verdict(viewer, mission_id, command, dry_run=True)
            return self.render(request, "partials/check.html", viewer, problems={}, check=check)

        @router.post(
            "/missions/{mission_id}/commands/{name}",
            name="console_command_submit",
            response_class=HTMLResponse,
        )
        async def command_submit(
            request: Request, mission_id: MissionId, name: CommandName, viewer: Signed
        ) -> Response:
            """Give the command: recorded with the person as its actor, or refused with
            the rule's name and nothing recorded."""
            model = command_model(name)
            await self.checked_form(request, viewer)
            pairs = await read_form(request)
            state = await self.mission_view(mission_id)
            try:
                command = cast("Command", parse_form(model, pairs, fixed=self.fixed(name, viewer)))
            except FormErrors as error:
                return self.command_page(
                    request, viewer, state, name, model, pairs, problems=error.problems
                )
            outcome = await self.verdict(viewer, mission_id, command, dry_run=False)
            if not outcome.accepted:
                return self.command_page(request, viewer, state, name, model, pairs, outcome)
            return RedirectResponse(
                request.url_for("console_mission", mission_id=mission_id), status_code=303
            )

        @router.get(
            "/missions/{mission_id}/statement",
            name="console_statement",
            response_class=HTMLResponse,
        )
        async def statement(
            request: Request, mission_id: MissionId, viewer: Signed
        ) -> HTMLResponse:
            """The draft statement as the head of mission approves it: its text, the
            coverage figures it rests on, and what changed since the previous draft."""
            await self.guarded("get_mission", viewer.principal, mission_id)
            state = await self.mission_view(mission_id)
            drafts = list(state.drafts.values())
            latest = drafts[-1] if drafts else None
            previous = drafts[-2] if len(drafts) > 1 else None
            coverage = await self.operations.coverage(viewer.principal, mission_id, catch_up=False)
            return self.render(
                request,
                "statement.html",
                viewer,
                mission=state,
                draft=latest,
                previous=previous,
                changes=diff_lines(previous.text, latest.text) if latest and previous else [],
                coverage=coverage,
                may_approve=viewer.principal.role is Role.head_of_mission,
            )

        return router

    def command_page(
        self,
        request: Request,
        viewer: Viewer,
        state: Mission,
        name: str,
        model: type[BaseModel],
        pairs: list[tuple[str, str]] | None = None,
        check: Verdict | None = None,
        problems: dict[str, str] | None = None,
    ) -> HTMLResponse:
        """A command's form page: empty, or as it was sent with what refused it (the
        form's problems, 422, or the command path's refusal with its status)."""
        status = 422 if problems else check.status if check and not check.accepted else 200
        return self.render(
            request,
            "command.html",
            viewer,
            status_code=status,
            mission=state,
            name=name,
            fields=self.prefilled(name, viewer, state, form_fields(model)),
            values=dict(pairs or []),
            problems=problems or {},
            check=check,
        )

    async def register(
        self, request: Request, viewer: Viewer, *, dry_run: bool
    ) -> tuple[dict[str, str], Verdict | None]:
        """The invitation the form describes, checked (``dry_run``) or registered: the
        form's problems, or the command path's verdict."""
        pairs = await read_form(request)
        try:
            command = parse_form(RegisterInvitation, pairs)
        except FormErrors as error:
            return error.problems, None
        assert isinstance(command, RegisterInvitation)
        try:
            answer = await self.commands.register_invitation(
                viewer.principal, command, dry_run=dry_run
            )
        except ApiError as error:
            return {}, Verdict.refused(error)
        return {}, Verdict.of(answer)

    async def verdict(
        self, viewer: Viewer, mission_id: str, command: Command, *, dry_run: bool
    ) -> Verdict:
        """The command given (or dry-run) by the person: its answer, a refusal included
        (kept on the form's page, with what was typed)."""
        try:
            answer = await self.commands.run(viewer.principal, mission_id, command, dry_run=dry_run)
        except ApiError as error:
            if error.status in (401, 404):
                raise
            return Verdict.refused(error)
        return Verdict.of(answer)

    def scope_values(self, viewer: Viewer) -> dict[str, str]:
        """What a new mission's form starts with: the coordinator's organisation."""
        organisation = viewer.principal.organisation
        return {"organisation": organisation} if organisation else {}

    async def checked_form(self, request: Request, viewer: Viewer) -> None:
        """403 unless the form carries the session's CSRF token."""
        if not csrf_ok(viewer.csrf_token, await posted_token(request)):
            raise PageError(
                403,
                i18n.gettext("Refused"),
                i18n.gettext("This form is not from your session (CSRF check failed)."),
            )

    def fixed(self, name: str, viewer: Viewer) -> dict[str, Any]:
        """Values a person cannot choose: a head of mission approves in their own name."""
        if name == "approve_statement":
            return {"approved_by": viewer.principal.name}
        return {}

    def prefilled(
        self, name: str, viewer: Viewer, state: Mission, fields: list[FormField]
    ) -> list[FormField]:
        """Defaults the mission already knows (the approval's draft and fingerprint are
        those of the draft shown)."""
        shown = None
        if name == "approve_statement" and state.drafts:
            shown = list(state.drafts.values())[-1]
        if name == "publish_statement" and state.approval is not None:
            shown = state.drafts.get(state.approval.draft_id)
        if shown is not None:
            for item in fields:
                if item.name == "draft_id":
                    item.default = shown.draft_id
                if item.name == "text_sha256":
                    item.default = shown.text_sha256
        known = {
            "observer_id": list(state.observers),
            "team_id": list(state.teams),
            "draft_id": list(state.drafts),
            "recommendation_id": list(state.recommendations),
        }
        for item in _all(fields):
            leaf = item.name.rsplit(".", 1)[-1]
            if item.kind == "text" and leaf in known:
                item.suggestions = known[leaf]
        return [f for f in fields if not (name == "approve_statement" and f.name == "approved_by")]


def _all(fields: list[FormField]) -> list[FormField]:
    """The fields and, depth first, their children."""
    found = []
    for item in fields:
        found += [item, *_all(item.children)]
    return found


def _find(fields: list[FormField], name: str) -> FormField | None:
    for item in fields:
        if item.name == name:
            return item
        found = _find(item.children, name)
        if found is not None:
            return found
    return None
