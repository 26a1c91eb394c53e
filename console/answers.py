"""The member states' answer pages: ``/answer/{secret}``, the link every request and
reminder carries (``accounts.answer_links``).

The link is the focal point's credential, bound to one request (mission, recipient,
kind, cycle): it acts as a member-state principal scoped to that state and mission, so
the API's rules apply unchanged, and it works until the request is answered or the link
expires. The answer goes through the same command path as the API (``operations``), so
it stops the ladder as an answer through the API does. The forms carry a token derived
from the link (CSRF): a form posted from elsewhere is refused.
"""

import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from accounts.answer_links import AnswerLink, AnswerLinks, LinkRefused, ensure_open
from api.tokens import Principal, Role
from console import i18n
from console.forms import FormErrors, form_fields, parse_form
from console.pages import Verdict
from console.web import PageError, posted_token
from domain import commands as c
from domain import errors as e
from domain.state import Mission
from domain.values import DeadlineKind, RecipientKind
from operations.commands import CommandOperations
from workflows.client import Missions

Secret = Annotated[str, Path(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]

ANSWERS = {
    DeadlineKind.nomination: ("nominate", "decline"),
    DeadlineKind.acknowledgement: ("acknowledge",),
    DeadlineKind.evidence: ("evidence",),
}
"""What a focal point may answer to each kind of request."""

MAX_OBSERVERS = 50
"""Observers one answer may nominate."""


def link_principal(link: AnswerLink) -> Principal:
    """The recipient acting through its link, as a member state: its scope that state
    (or, for an international organisation among the recipients of recommendations,
    that organisation) in that mission; its actor naming the link's recipient."""
    state = _is_state(link.recipient)
    return Principal(
        token_id=uuid.uuid5(uuid.NAMESPACE_URL, f"eom-answer-link:{link.message_id or ''}"),
        name=f"focal point of {link.recipient} (answer link)",
        role=Role.member_state,
        member_state=link.recipient if state else None,
        organisation=None if state else link.recipient,
        mission_id=link.mission_id,
        created_at=link.issued_at,
        expires_at=link.expires_at,
    )


class AnswerPages:
    """``/answer/{secret}``: the request, the forms that answer it, their checks."""

    def __init__(
        self,
        *,
        missions: Missions,
        links: AnswerLinks,
        commands: CommandOperations,
        pages: Jinja2Templates,
        context: Callable[..., dict[str, Any]],
        form_key: str,
    ) -> None:
        self.missions = missions
        self.links = links
        self.commands = commands
        self.pages = pages
        self.context = context
        self._form_key = form_key.encode()

    def form_token(self, secret: str) -> str:
        """The CSRF token of a link's forms: HMAC-SHA256 of the link's hash under the
        console's key (so the page's token proves the form came from the page)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.new(self._form_key, digest.encode(), hashlib.sha256).hexdigest()

    async def opened(self, secret: str) -> tuple[AnswerLink, Mission]:
        """The link and its mission, or ``PageError`` (404 unknown, 410 expired or its
        request already answered)."""
        try:
            link = await self.links.resolve(secret)
            mission = await self.missions.state(link.mission_id)
            ensure_open(mission, link)
        except LinkRefused as refused:
            status = 404 if refused.reason == "unknown" else 410
            raise PageError(
                status, i18n.gettext("This link cannot be used"), _reason(refused.reason)
            ) from None
        return link, mission

    def render(self, request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
        return self.pages.TemplateResponse(
            request, "answer.html", self.context(request, None, **values), status_code=status_code
        )

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/answer/{secret}", name="console_answer", response_class=HTMLResponse)
        async def answer_page(request: Request, secret: Secret) -> HTMLResponse:
            """What the request asks, and the forms that answer it."""
            link, mission = await self.opened(secret)
            return self.render(request, **self.view(secret, link, mission))

        @router.post(
            "/answer/{secret}/check", name="console_answer_check", response_class=HTMLResponse
        )
        async def answer_check(request: Request, secret: Secret) -> HTMLResponse:
            """The nomination form checked as it is filled: each observer's dry run, and
            the pledges a coordinator needs before accepting an observer."""
            link, mission = await self.opened(secret)
            await self.checked(request, secret)
            problems, verdicts = await self.nominations(request, link, mission, dry_run=True)
            return self.pages.TemplateResponse(
                request,
                "partials/answer_check.html",
                self.context(request, None, problems=problems, verdicts=verdicts),
            )

        @router.post(
            "/answer/{secret}/{action}", name="console_answer_submit", response_class=HTMLResponse
        )
        async def answer_submit(
            request: Request,
            secret: Secret,
            action: Annotated[str, Path(pattern=r"^(nominate|decline|acknowledge|evidence)$")],
        ) -> Response:
            """Record the answer (as the API would), or show what refused it."""
            link, mission = await self.opened(secret)
            await self.checked(request, secret)
            if action not in ANSWERS[link.kind]:
                raise PageError(
                    409,
                    i18n.gettext("Refused"),
                    i18n.gettext("This link asks for something else."),
                )
            if action == "nominate":
                problems, verdicts = await self.nominations(request, link, mission, dry_run=False)
            else:
                problems, verdicts = await self.single(request, action, link, mission)
            refused = [v for v in verdicts if not v.accepted]
            if problems or refused or not verdicts:
                view = self.view(secret, link, mission)
                form = await request.form()
                view["values"] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
                view["problems"] = problems
                view["verdicts"] = verdicts
                status = refused[0].status if refused else 422
                return self.render(request, status_code=status, **view)
            return self.render(request, done=True, link=link, mission=mission)

        return router

    async def checked(self, request: Request, secret: str) -> None:
        token = await posted_token(request)
        if not token or not hmac.compare_digest(token, self.form_token(secret)):
            raise PageError(
                403,
                i18n.gettext("Refused"),
                i18n.gettext("This form is not from its answer page (CSRF check failed)."),
            )

    def view(self, secret: str, link: AnswerLink, mission: Mission) -> dict[str, Any]:
        deadline = {
            DeadlineKind.nomination: mission.nomination_deadline,
            DeadlineKind.acknowledgement: mission.acknowledge_by,
        }.get(link.kind)
        if link.kind is DeadlineKind.evidence and link.cycle in mission.evidence_cycles:
            deadline = mission.evidence_cycles[link.cycle].deadline
        return {
            "link": link,
            "mission": mission,
            "secret": secret,
            "deadline": deadline,
            "form_token": self.form_token(secret),
            "observer_fields": form_fields(c.NominateObserver),
            "roles": [r.value for r in mission.rules.roles],
            "today": datetime.now(UTC).date().isoformat(),
            "values": {},
            "problems": {},
            "verdicts": [],
            "done": False,
        }

    async def nominations(
        self, request: Request, link: AnswerLink, mission: Mission, *, dry_run: bool
    ) -> tuple[dict[str, str], list[Verdict]]:
        """Each observer row of the form as a ``NominateObserver`` for the link's state,
        checked (``dry_run``) or recorded in order; a row whose pledges are not both
        given is named (the coordinator cannot accept such an observer)."""
        form = await request.form()
        rows: dict[int, list[tuple[str, str]]] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str) or not key.startswith("observers."):
                continue
            _, position, name = [*key.split(".", 2), "", ""][:3]
            if position.isdigit() and int(position) < MAX_OBSERVERS and value.strip():
                rows.setdefault(int(position), []).append((name, value))
        problems: dict[str, str] = {}
        verdicts: list[Verdict] = []
        for index in sorted(rows):
            pairs = rows[index]
            if not any(n == "name" for n, _ in pairs):
                continue
            try:
                command = parse_form(
                    c.NominateObserver,
                    pairs,
                    fixed={
                        "member_state": link.recipient,
                        "observer_id": _observer_id(link, dict(pairs).get("name", ""), index),
                    },
                )
            except FormErrors as error:
                problems.update({f"observers.{index}.{k}": v for k, v in error.problems.items()})
                continue
            assert isinstance(command, c.NominateObserver)
            if not (command.code_of_conduct_signed and command.conflict_of_interest_declared):
                problems[f"observers.{index}.pledges"] = (
                    f"{e.PledgeMissing.rule}: {command.name} cannot be accepted without the "
                    "code-of-conduct pledge and the conflict-of-interest declaration"
                )
            if dry_run or not problems:
                answer = await self.commands.run(
                    link_principal(link), link.mission_id, command, dry_run=dry_run
                )
                verdicts.append(Verdict.of(answer))
        return problems, verdicts

    async def single(
        self, request: Request, action: str, link: AnswerLink, mission: Mission
    ) -> tuple[dict[str, str], list[Verdict]]:
        """A decline, an acknowledgement or evidence, as one command."""
        form = await request.form()
        values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        command: Any
        try:
            if action == "decline":
                command = c.DeclineNomination(
                    member_state=link.recipient, reason=values.get("reason", "")
                )
            elif action == "acknowledge":
                kind = (
                    RecipientKind.international_organisation
                    if not _is_state(link.recipient)
                    else RecipientKind.host_country
                    if link.recipient == mission.host_country
                    else RecipientKind.member_state
                )
                command = c.AcknowledgeRecommendations(
                    recipient={"kind": kind, "name": link.recipient},
                    acknowledged_on=date.fromisoformat(values.get("acknowledged_on", "")),
                )
            else:
                items = [
                    {"recommendation_id": rid, "text": values[f"evidence.{rid}"]}
                    for rid in mission.recommendations
                    if values.get(f"evidence.{rid}", "").strip()
                ]
                command = c.SubmitEvidence(
                    member_state=link.recipient, cycle=link.cycle, evidence=items
                )
        except ValueError as error:
            return {action: str(error).splitlines()[-1] if str(error) else action}, []
        answer = await self.commands.run(link_principal(link), link.mission_id, command)
        return {}, [Verdict.of(answer)]


def _is_state(recipient: str) -> bool:
    """A state is named by its ISO 3166-1 alpha-2 code; an organisation by its name."""
    return len(recipient) == 2 and recipient.isascii() and recipient.isalpha()


def _observer_id(link: AnswerLink, name: str, index: int) -> str:
    """An observer's id from the state and the name (``az-aliyev-elnur``)."""
    letters = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in name.lower())
    slug = "-".join(part for part in letters.split("-") if part)[:60] or f"observer-{index + 1}"
    return f"{link.recipient.lower()}-{slug}"


def _reason(reason: str) -> str:
    return {
        "unknown": i18n.gettext("This answer link is not known."),
        "expired": i18n.gettext(
            "This answer link has expired; the secretariat can send a new one."
        ),
        "reused": i18n.gettext("This request has been answered already; the link no longer works."),
    }.get(reason, i18n.gettext("This answer link is not known."))
