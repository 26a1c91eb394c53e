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
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from accounts.answer_links import AnswerLink, AnswerLinks, LinkRefused, ensure_open
from activities.directory import MemberStateDirectory
from api.tokens import Principal, Role
from console import i18n
from console.forms import FormErrors, form_fields, named_problems, parse_form
from console.pages import Verdict
from console.web import PageError, csrf_ok, posted_token, read_form
from domain import commands as c
from domain import errors as e
from domain.state import Mission
from domain.values import DeadlineKind, RecipientKind, Stage
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

    async def opened(self, request: Request, secret: str) -> tuple[AnswerLink, Mission]:
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
        await self.speak_to(request, mission, link)
        if not _still_asked(mission, link):
            raise PageError(
                410,
                i18n.gettext("This link cannot be used"),
                i18n.gettext(
                    "This request is closed: the mission has moved past the stage that "
                    "asked for it."
                ),
            )
        return link, mission

    async def speak_to(self, request: Request, mission: Mission, link: AnswerLink) -> None:
        """Answer in the recipient's language, as the member-state directory has it
        (its messages are written in it), falling back to English."""
        contact = None
        if mission.organisation and _is_state(link.recipient):
            directory = MemberStateDirectory(self.missions.store.pool)
            contact = await directory.get(mission.organisation, link.recipient)
        request.state.language = i18n.use(contact.language if contact else None)

    def render(
        self,
        request: Request,
        status_code: int = 200,
        template: str = "answer.html",
        **values: Any,
    ) -> HTMLResponse:
        given = values.get("values") or {}
        indexes = [
            int(key.split(".")[1])
            for key in given
            if key.startswith("observers.") and key.split(".")[1].isdigit()
        ]
        values.setdefault("observer_rows", min(MAX_OBSERVERS, max(indexes, default=0) + 1))
        values.setdefault("max_observers", MAX_OBSERVERS)
        values.setdefault("problems", {})
        values.setdefault("values", {})
        return self.pages.TemplateResponse(
            request, template, self.context(request, None, **values), status_code=status_code
        )

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/answer/{secret}", name="console_answer", response_class=HTMLResponse)
        async def answer_page(request: Request, secret: Secret) -> HTMLResponse:
            """What the request asks, and the forms that answer it."""
            link, mission = await self.opened(request, secret)
            return self.render(request, **self.view(secret, link, mission))

        @router.get(
            "/answer/{secret}/rows/{index}",
            name="console_answer_row",
            response_class=HTMLResponse,
        )
        async def answer_row(
            request: Request,
            secret: Secret,
            index: Annotated[int, Path(ge=1, lt=MAX_OBSERVERS)],
        ) -> HTMLResponse:
            """One more observer row of the nomination form (htmx asks for it)."""
            _, mission = await self.opened(request, secret)
            return self.render(
                request,
                template="partials/observer_rows_more.html",
                index=index,
                secret=secret,
                roles=[r.value for r in mission.rules.roles],
            )

        @router.post(
            "/answer/{secret}/check", name="console_answer_check", response_class=HTMLResponse
        )
        async def answer_check(request: Request, secret: Secret) -> HTMLResponse:
            """The nomination form checked as it is filled: each observer's dry run, and
            the pledges a coordinator needs before accepting an observer."""
            link, mission = await self.opened(request, secret)
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
            link, mission = await self.opened(request, secret)
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
                view["values"] = dict(await read_form(request))
                view["problems"] = problems
                view["verdicts"] = verdicts
                status = refused[0].status if refused else 422
                return self.render(request, status_code=status, **view)
            return self.render(request, done=True, link=link, mission=mission)

        return router

    async def checked(self, request: Request, secret: str) -> None:
        token = await posted_token(request)
        if not csrf_ok(self.form_token(secret), token):
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
        """Each observer row of the form as a ``NominateObserver`` for the link's state.
        All rows are checked first (each one's dry run, the pledges a coordinator needs
        before accepting an observer, ids given twice); only if every row passes are they
        recorded, in order (``dry_run`` false): a request is answered whole or not at
        all, since the answer closes the link."""
        form = await read_form(request)
        rows: dict[int, list[tuple[str, str]]] = {}
        problems: dict[str, str] = {}
        for key, value in form:
            if not key.startswith("observers."):
                continue
            _, position, name = [*key.split(".", 2), "", ""][:3]
            if not position.isdigit() or int(position) >= MAX_OBSERVERS:
                problems[key] = i18n.gettext("at most %(n)s observers in one answer") % {
                    "n": MAX_OBSERVERS
                }
            elif value.strip():
                rows.setdefault(int(position), []).append((name, value))
        commands: list[tuple[int, c.NominateObserver]] = []
        ids: dict[str, int] = {}
        for index in sorted(rows):
            pairs = rows[index]
            given = dict(pairs)
            if "name" not in given:
                if any(n not in ("role",) for n, _ in pairs):
                    problems[f"observers.{index}.name"] = i18n.gettext("a name is needed")
                continue
            observer_id = _observer_id(link, given["name"], index)
            try:
                command = parse_form(
                    c.NominateObserver,
                    pairs,
                    fixed={"member_state": link.recipient, "observer_id": observer_id},
                )
            except FormErrors as error:
                problems.update({f"observers.{index}.{k}": v for k, v in error.problems.items()})
                continue
            assert isinstance(command, c.NominateObserver)
            if observer_id in ids:
                problems[f"observers.{index}.name"] = i18n.gettext(
                    "the same person as observer %(n)s"
                ) % {"n": ids[observer_id] + 1}
                continue
            ids[observer_id] = index
            if not (command.code_of_conduct_signed and command.conflict_of_interest_declared):
                problems[f"observers.{index}.pledges"] = f"{e.PledgeMissing.rule}: " + i18n.gettext(
                    "%(name)s cannot be accepted without the code-of-conduct pledge and "
                    "the conflict-of-interest declaration"
                ) % {"name": command.name}
            commands.append((index, command))
        if not commands and not problems:
            problems["observers.0.name"] = i18n.gettext("name at least one observer")
        principal = link_principal(link)
        checks = [
            Verdict.of(await self.commands.run(principal, link.mission_id, cmd, dry_run=True))
            for _, cmd in commands
        ]
        for (index, _), check in zip(commands, checks, strict=True):
            if not check.accepted:
                problems[f"observers.{index}"] = f"{check.code}: {check.message}"
        if dry_run or problems:
            return problems, checks
        recorded = []
        for _, command in commands:
            answer = await self.commands.run(principal, link.mission_id, command)
            recorded.append(Verdict.of(answer))
        return {}, recorded

    async def single(
        self, request: Request, action: str, link: AnswerLink, mission: Mission
    ) -> tuple[dict[str, str], list[Verdict]]:
        """A decline, an acknowledgement or evidence, as one command."""
        values = dict(await read_form(request))
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
                    acknowledged_on=values.get("acknowledged_on", ""),
                )
            else:
                items = [
                    {"recommendation_id": rid, "text": values[f"evidence.{rid}"]}
                    for rid in mission.recommendations
                    if values.get(f"evidence.{rid}", "").strip()
                ]
                if not items:
                    return {
                        "evidence": i18n.gettext(
                            "write the evidence for at least one recommendation"
                        )
                    }, []
                command = c.SubmitEvidence(
                    member_state=link.recipient, cycle=link.cycle, evidence=items
                )
        except ValidationError as error:
            # Named as the form names its fields: evidence is posted per recommendation
            # (evidence.R1, not evidence.0.text), the recipient is the link's own.
            given = [rid for rid in mission.recommendations if values.get(f"evidence.{rid}")]
            named: dict[str, str] = {}
            for name, message in named_problems(error).items():
                parts = name.split(".")
                if parts[0] == "evidence" and len(parts) > 1 and parts[1].isdigit():
                    name = f"evidence.{given[int(parts[1])]}"
                named.setdefault(name if parts[0] != "recipient" else action, message)
            return named, []
        answer = await self.commands.run(link_principal(link), link.mission_id, command)
        return {}, [Verdict.of(answer)]


def _still_asked(mission: Mission, link: AnswerLink) -> bool:
    """Whether the mission still takes the answer the link asks for: nominations only
    while the delegation forms (stages forming and pre-election)."""
    if link.kind is DeadlineKind.nomination:
        return mission.stage in (Stage.forming, Stage.pre_election)
    return mission.stage not in (None, Stage.cancelled)


def _is_state(recipient: str) -> bool:
    """A state is named by its ISO 3166-1 alpha-2 code; an organisation by its name."""
    return len(recipient) == 2 and recipient.isascii() and recipient.isalpha()


def _observer_id(link: AnswerLink, name: str, index: int) -> str:
    """An observer's id from the state and the name: its Latin letters and digits
    (accents dropped: ``Ayşe Kaya`` is ``tr-ayse-kaya``), else a digest of the name
    (``kg-observer-3f9a1c2b``); the same name gives the same id."""
    folded = unicodedata.normalize("NFKD", name.lower().replace("ı", "i"))
    letters = "".join(
        ch if ch.isascii() and ch.isalnum() else "-"
        for ch in folded
        if not unicodedata.combining(ch)
    )
    slug = "-".join(part for part in letters.split("-") if part)[:60]
    if len(slug) < 3:
        digest = hashlib.sha256(" ".join(name.lower().split()).encode()).hexdigest()[:8]
        slug = f"observer-{digest}"
    return f"{link.recipient.lower()}-{slug}"


def _reason(reason: str) -> str:
    return {
        "unknown": i18n.gettext("This answer link is not known."),
        "expired": i18n.gettext(
            "This answer link has expired; the secretariat can send a new one."
        ),
        "reused": i18n.gettext("This request has been answered already; the link no longer works."),
    }.get(reason, i18n.gettext("This answer link is not known."))
