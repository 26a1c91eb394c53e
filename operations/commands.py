"""Domain commands for a principal: checked (role, scope, body), then run or dry-run.

A command takes the same path whoever gives it (``Missions.execute``: a Temporal update
validated by ``decide``), with the principal recorded as the actor. An Idempotency-Key
makes a retry answer what the first request answered; a dry run says what the real
request would answer, recording nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.access import READERS, check_body, forbidden, in_scope, require_role, require_scope
from api.errors import STATUS, ApiError, Code, ErrorBody
from api.idempotency import IdempotencyStore, KeyInUse, KeyReused, Stored, command_id, request_hash
from api.tokens import Principal
from domain.commands import Command, RegisterInvitation, ReopenReview
from domain.errors import RULES
from domain.state import Mission
from workflows.client import CommandRefused, Missions

RETRY_AFTER = {"Retry-After": "1"}
"""The header of a refusal the same request may get past a moment later."""

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


def command_refusal(refused: CommandRefused) -> ApiError:
    """A refused command as the API answers it: a domain rule is a 409 with the rule's
    name; data the store cannot hold, or a path and body that disagree, a 422; what the
    service could not do now (a busy or unavailable mission), a 503 with Retry-After."""
    if refused.rule in RULES:
        return ApiError.refusal(refused.rule, refused.message)
    passed_on = {c.value: c for c in _MISSIONS_CODES}
    code = passed_on.get(refused.rule, Code.update_failed)
    return ApiError(code, refused.message, headers=RETRY_AFTER if STATUS[code] == 503 else None)


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
    def refused(cls, error: ApiError) -> DryRun:
        return cls(
            accepted=False,
            event_types=[],
            events=[],
            refusal=ErrorBody(
                status=error.status, code=error.code, message=error.message, fields=error.fields
            ),
        )


@dataclass(frozen=True)
class CommandAnswer:
    """A command's answer: its HTTP status (201 a mission registered, 200 recorded or a
    dry run, 409 a domain rule, 422 data refused) and its JSON body (a ``CommandResult``,
    a ``DryRun`` or an ``ErrorResponse``). Kept answers (Idempotency-Key) come back as
    they were first given."""

    status_code: int
    body: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return self.status_code < 300 and self.body.get("accepted", True) is not False


class CommandOperations:
    """Commands for principals over ``missions``, with answers kept per Idempotency-Key
    in ``idempotency``."""

    def __init__(self, missions: Missions, idempotency: IdempotencyStore) -> None:
        self.missions = missions
        self.idempotency = idempotency

    async def guarded(self, route: str, principal: Principal, mission_id: str) -> Mission:
        """Whether the principal's role may call ``route`` (else 403 ``forbidden``) and the
        mission exists within its scope (else 404 ``unknown_mission``, the same answer
        either way, and as soon: the scope is judged on the registration alone, whatever
        the mission's length). Returns the mission as its registration says."""
        require_role(route, principal)
        registered = await self.missions.registered(mission_id)
        require_scope(principal, registered, mission_id)
        return registered

    async def register_invitation(
        self,
        principal: Principal,
        command: RegisterInvitation,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> CommandAnswer:
        """Register a host's invitation (the mission starts): 201 with a ``CommandResult``,
        or the refusal. Raises ``ApiError`` 403 for a role that may not, or a body naming
        another organisation; 409 ``mission_id_unavailable`` for an id taken outside the
        principal's scope; 409/503 for a key reused or still in use; 503 when the
        service cannot take it now."""
        require_role("register_invitation", principal)
        check_body(principal, command)
        return await self._run(principal, command.mission_id, command, key=key, dry_run=dry_run)

    async def run(
        self,
        principal: Principal,
        mission_id: str,
        command: Command,
        *,
        key: str | None = None,
        dry_run: bool = False,
    ) -> CommandAnswer:
        """Give ``command`` (any but the registration) to the mission, as the route named
        by the command's type: 200 with a ``CommandResult``, 409/422 a refusal kept as an
        answer, or with ``dry_run`` 200 with a ``DryRun``. Raises ``ApiError``: 403 for a
        role or a body outside the principal's scope, 404 ``unknown_mission``, 409 for a
        key reused or still in use, 503 when the service cannot take it now."""
        if isinstance(command, RegisterInvitation):
            return await self.register_invitation(principal, command, key=key, dry_run=dry_run)
        await self.guarded(command.type, principal, mission_id)
        check_body(principal, command)
        await self._check_reopened(principal, command)
        return await self._run(principal, mission_id, command, key=key, dry_run=dry_run)

    async def _run(
        self,
        principal: Principal,
        mission_id: str,
        command: Command,
        *,
        key: str | None,
        dry_run: bool,
    ) -> CommandAnswer:
        """Dry run or real run of ``command``: the same answers, but that a dry run
        records nothing and says so in a ``DryRun``."""
        digest = request_hash({"mission": mission_id, "command": command.model_dump(mode="json")})
        if dry_run:
            checked = await self._dry(principal, mission_id, command, key, digest)
            return CommandAnswer(200, checked.model_dump(mode="json"))
        if key is not None:
            stored = await _keyed(self.idempotency.reserve(principal.token_id, key, digest))
            if stored is not None:
                return CommandAnswer(stored.status_code, stored.response)
        try:
            outcome = await self._execute(principal, mission_id, command, key, digest)
        except BaseException:
            if key is not None:
                await self.idempotency.release(principal.token_id, key)
            raise
        if key is not None:
            outcome = await self.idempotency.save(principal.token_id, key, outcome)
        return CommandAnswer(outcome.status_code, outcome.response)

    async def _unavailable_id(self, principal: Principal, mission_id: str) -> ApiError | None:
        """A mission id registered outside the principal's scope: refused without saying
        by whom or what it is (``mission_id_unavailable``)."""
        stored = await self.missions.registered(mission_id)
        if stored.stage is None or in_scope(principal, stored):
            return None
        return ApiError(
            Code.mission_id_unavailable,
            f"mission id {mission_id!r} is not available; choose another",
        )

    async def _execute(
        self, principal: Principal, mission_id: str, command: Command, key: str | None, digest: str
    ) -> Stored:
        """The command's answer to keep, or ``ApiError`` for one not to keep (the
        service could not take it now: the same request may succeed later)."""
        if isinstance(command, RegisterInvitation):
            hidden = await self._unavailable_id(principal, mission_id)
            if hidden is not None:
                raise hidden
        try:
            result = await self.missions.execute(
                mission_id,
                command,
                actor=principal.actor,
                command_id=command_id(principal.token_id, key) if key else str(uuid.uuid4()),
            )
        except CommandRefused as refused:
            error = command_refusal(refused)
            if isinstance(command, RegisterInvitation) and refused.rule in RULES:
                error = await self._unavailable_id(principal, mission_id) or error
            if error.status >= 500:
                raise error from None
            return Stored(digest, error.status, error.response_body())
        status = 201 if isinstance(command, RegisterInvitation) else 200
        return Stored(digest, status, result.model_dump(mode="json"))

    async def _dry(
        self, principal: Principal, mission_id: str, command: Command, key: str | None, digest: str
    ) -> DryRun:
        if key is not None:
            stored = await _keyed(self.idempotency.answered(principal.token_id, key, digest))
            if stored is not None:  # the real run would answer the first result
                if stored.status_code < 300:
                    return DryRun(
                        accepted=True, event_types=stored.response["event_types"], events=[]
                    )
                return DryRun.refused(ApiError.from_body(stored.response))
        if isinstance(command, RegisterInvitation):
            hidden = await self._unavailable_id(principal, mission_id)
            if hidden is not None:
                return DryRun.refused(hidden)
        try:
            events = await self.missions.check(mission_id, command)
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
            events=[e.model_dump(mode="json") for e in events] if principal.role in READERS else [],
        )

    async def _check_reopened(self, principal: Principal, command: Command) -> None:
        """A review is reopened for a mission of the principal's own: the one it names
        must be registered within the principal's scope."""
        if isinstance(command, ReopenReview) and principal.organisation is not None:
            named = await self.missions.registered(command.new_mission_id)
            if named.stage is None or not in_scope(principal, named):
                raise forbidden(
                    f"body.new_mission_id names no mission of {principal.organisation} "
                    f"({command.new_mission_id!r})"
                )


async def _keyed(looked_up: Awaitable[Stored | None]) -> Stored | None:
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
            headers=RETRY_AFTER,
        ) from None
