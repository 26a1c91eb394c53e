"""``Operations``: every operation of the API and the console, for a principal.

Each method checks the principal's role for the route it serves (``api.access``), then
the mission's scope (a mission outside it is answered as one that does not exist), then
does the work with the functions the CLI shares (``operations.reminders``, ``.coverage``,
``.audit``). Refusals are ``ApiError``; bad input is ``InvalidInput`` naming its field.
"""

from __future__ import annotations

from datetime import datetime

from analysis.figures import Analysis, mission_analysis
from api.access import in_scope, require_role, unknown_mission
from api.errors import ApiError, Code
from api.idempotency import IdempotencyStore
from api.tokens import Principal, Role
from domain import fold, load_event_json
from domain.values import DeadlineKind
from intake.coverage import Coverage
from operations import audit, reminders
from operations.audit import Replay, Verification
from operations.commands import CommandOperations, DryRun
from operations.coverage import mission_coverage
from operations.errors import InvalidInput, UnknownMission
from operations.reminders import LadderAction, LadderSignalled, Reminders
from workflows.client import CommandRefused, Missions

LADDER_ROUTES: dict[LadderAction, str] = {
    LadderAction.pause: "pause_reminders",
    LadderAction.resume: "resume_reminders",
    LadderAction.send_now: "send_reminder_now",
}
"""The route (``api.access.ROUTE_ROLES``) each ladder action is given by."""


class Operations(CommandOperations):
    """Commands (``CommandOperations``), reminders, coverage, verification and replay
    over ``missions`` and its event store, for principals."""

    def __init__(self, missions: Missions, idempotency: IdempotencyStore) -> None:
        super().__init__(missions, idempotency)

    async def reminders(self, principal: Principal, mission_id: str) -> Reminders:
        """Per member state and deadline, what was sent and what is next (route
        ``list_reminders``). Raises ``ApiError`` 403, 404 ``unknown_mission``."""
        await self.guarded("list_reminders", principal, mission_id)
        try:
            return await reminders.reminders(self.missions, mission_id)
        except UnknownMission:
            raise unknown_mission(mission_id) from None

    async def signal_ladder(
        self,
        principal: Principal,
        mission_id: str,
        action: LadderAction,
        kind: DeadlineKind,
        member_state: str,
        *,
        cycle: int = 0,
        dry_run: bool = False,
    ) -> LadderSignalled | DryRun:
        """Pause, resume or send now one ladder (routes ``pause_reminders``,
        ``resume_reminders``, ``send_reminder_now``). A dry run answers whether the
        ladder runs (a ``DryRun``, refused ``unknown_ladder`` if not), telling it nothing.
        Raises ``ApiError`` 403, 404 ``unknown_mission``, 404 ``unknown_ladder`` (never
        started, answered or ended); ``InvalidInput`` for ``member_state`` or ``cycle``."""
        await self.guarded(LADDER_ROUTES[action], principal, mission_id)
        code = reminders.member_state_code(member_state)
        if cycle < 0:
            raise InvalidInput("cycle", f"{cycle} is not a follow-up cycle (0 or more)")
        if dry_run:
            if await reminders.ladder_running(self.missions, mission_id, kind, code, cycle):
                return DryRun(accepted=True, event_types=[], events=[])
            return DryRun.refused(_unknown_ladder(mission_id, kind, code, cycle))
        try:
            return await reminders.signal_ladder(
                self.missions, mission_id, action, kind, code, cycle
            )
        except CommandRefused as refused:
            if refused.rule != "no_such_ladder":
                raise
            raise _unknown_ladder(mission_id, kind, code, cycle) from None

    async def coverage(
        self, principal: Principal, mission_id: str, *, catch_up: bool = True
    ) -> Coverage:
        """Election-day coverage (route ``get_coverage``), the log projected first with
        ``catch_up``. Raises ``ApiError`` 403, 404 ``unknown_mission``."""
        await self.guarded("get_coverage", principal, mission_id)
        try:
            return await mission_coverage(self.missions.store, mission_id, catch_up=catch_up)
        except UnknownMission:
            raise unknown_mission(mission_id) from None

    async def analysis(
        self, principal: Principal, mission_id: str, *, language: str | None = None
    ) -> Analysis:
        """The figures of the mission's observation forms (route ``get_analysis``,
        ``analysis.figures``). Raises ``ApiError`` 403, 404 ``unknown_mission``."""
        await self.guarded("get_analysis", principal, mission_id)
        return await mission_analysis(self.missions.store, mission_id, language=language)

    async def verify_mission(self, principal: Principal, mission_id: str) -> Verification:
        """The mission's stream and its election-day streams verified (route
        ``verify_mission``). Raises ``ApiError`` 403, 404 ``unknown_mission``."""
        await self.guarded("verify_mission", principal, mission_id)
        try:
            return await audit.verify_mission(self.missions.store, mission_id)
        except UnknownMission:
            raise unknown_mission(mission_id) from None

    async def verify_all(self, principal: Principal) -> Verification:
        """Every stream in the store verified (route ``verify_all``); for a principal
        scoped to an organisation, its missions' streams only. Raises ``ApiError`` 403."""
        require_role("verify_all", principal)
        store = self.missions.store
        streams = [stream_id for stream_id, _ in await store.stream_ids()]
        if principal.role is not Role.auditor and principal.organisation is not None:
            # Streams are a mission's own or its election-day streams: kept where the
            # mission, as its registration says, is within the principal's scope.
            ours = {
                mission_id
                for mission_id, data in await store.registrations()
                if in_scope(principal, fold([load_event_json(data)]))
            }
            streams = [s for s in streams if audit.mission_of_stream(s) in ours]
        return await audit.verify_streams(store, streams)

    async def replay(
        self,
        principal: Principal,
        mission_id: str,
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> Replay:
        """The mission's state as of ``version`` or as the store knew it at ``at``
        (exactly one; a time without offset is host time), its instants in host time
        (route ``replay_mission``). Raises ``ApiError`` 403, 404 ``unknown_mission``;
        ``InvalidInput`` (``version`` or ``at``): neither or both given, a time before
        the mission or outside 1900-2199."""
        await self.guarded("replay_mission", principal, mission_id)
        if (version is None) == (at is None):
            raise InvalidInput("at", "give exactly one of a version or a time (at)")
        try:
            replayed = await audit.replay(self.missions.store, mission_id, version=version, at=at)
        except UnknownMission:
            raise unknown_mission(mission_id) from None
        return replayed.in_host_time()


def _unknown_ladder(mission_id: str, kind: DeadlineKind, member_state: str, cycle: int) -> ApiError:
    return ApiError(
        Code.unknown_ladder, reminders.no_such_ladder(mission_id, kind, member_state, cycle)
    )
