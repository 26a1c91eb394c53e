"""Who may do what: each route's roles, and each role's scope.

Every ``/v1`` route names its policy here (``ROUTE_ROLES``); a route without one is
refused to everybody, and the tests' role x endpoint matrix is built from the app's
routes, so a new endpoint cannot slip through unguarded.

Scope comes from the token, for every field that names a scoped thing. A request's body
is walked whole (``scoped_fields``): each field that names a mission, a team, a member
state or an organisation is checked against what the token is scoped to, so that a
command or report added later is guarded by the same rule without a line here.

A mission outside a token's scope is answered exactly as a mission that does not exist
(404 ``unknown_mission``): a refusal must not tell a caller what another organisation's
missions are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.errors import ApiError, Code
from api.tokens import Principal, Role
from domain import commands as c
from domain.commands import COMMAND_TYPES
from domain.state import Mission
from domain.values import Recipient, RecipientKind

R = Role
ALL = frozenset(Role)
READERS = frozenset({R.coordinator, R.head_of_mission, R.auditor})

ROUTE_ROLES: dict[str, frozenset[Role]] = {
    "list_missions": ALL,
    "get_mission": READERS,
    "get_timeline": READERS,
    "stream_events": READERS,
    "list_visits": frozenset({R.coordinator, R.head_of_mission, R.observer, R.auditor}),
    "export_mission": READERS,
    "get_sent_to_recipient": frozenset({R.coordinator, R.member_state, R.auditor}),
    "list_reminders": READERS,
    "pause_reminders": frozenset({R.coordinator}),
    "resume_reminders": frozenset({R.coordinator}),
    "send_reminder_now": frozenset({R.coordinator}),
    "get_coverage": READERS,
    "get_analysis": READERS,
    "verify_mission": READERS,
    # Every stream in the store: auditors, and coordinators (one scoped to an
    # organisation verifies its own missions' streams).
    "verify_all": frozenset({R.coordinator, R.auditor}),
    "replay_mission": READERS,
    "submit_reports": frozenset({R.coordinator, R.observer}),
    "register_stations": frozenset({R.coordinator}),
    # One route per command; coordinators give every command but the approval, which is
    # the head of mission's own act.
    **{name: frozenset({R.coordinator}) for name in COMMAND_TYPES},
    "approve_statement": frozenset({R.head_of_mission}),
    "nominate_observer": frozenset({R.coordinator, R.member_state}),
    "acknowledge_recommendations": frozenset({R.coordinator, R.member_state}),
    "record_station_visit": frozenset({R.coordinator, R.observer}),
    "decline_nomination": frozenset({R.coordinator, R.member_state}),
    "submit_evidence": frozenset({R.coordinator, R.member_state}),
}


def forbidden(message: str) -> ApiError:
    return ApiError(Code.forbidden, message)


def unknown_mission(mission_id: str) -> ApiError:
    """The answer for a mission that does not exist, and for one outside the caller's
    scope: the same, so that neither tells the other apart."""
    return ApiError(Code.unknown_mission, f"no mission {mission_id!r}")


def require_role(route: str, principal: Principal) -> None:
    roles = ROUTE_ROLES.get(route, frozenset())
    if principal.role not in roles:
        raise forbidden(f"a {principal.role.value} token may not call {route}")


def in_scope(principal: Principal, mission: Mission) -> bool:
    match principal.role:
        case Role.coordinator:
            return principal.organisation in (None, mission.organisation)
        case Role.head_of_mission | Role.observer:
            return principal.mission_id == mission.mission_id
        case Role.member_state:
            country = principal.member_state
            if country is None:
                # An international organisation answering through its answer link (no
                # token takes this scope): that one mission only.
                return principal.organisation is not None and (
                    principal.mission_id == mission.mission_id
                )
            return principal.mission_id in (None, mission.mission_id) and (
                country in mission.member_states or country == mission.host_country
            )
        case Role.auditor:
            return True
    return False


def require_scope(principal: Principal, mission: Mission, mission_id: str) -> None:
    """404 ``unknown_mission`` for a mission that is not registered or not the caller's."""
    if mission.stage is None or not in_scope(principal, mission):
        raise unknown_mission(mission_id)


@dataclass(frozen=True)
class ScopedField:
    """A field of a request that names a scoped thing: where it is, what it names."""

    path: str
    """Where in the body, as the API's validation errors name fields (``body.team_id``,
    ``body.reports.3.team_id``)."""
    kind: str
    """``mission``, ``team``, ``member_state``, ``organisation`` (the one a mission is
    of), or ``recipient organisation`` (one that recommendations are sent to)."""
    value: str


_FIELD_KINDS = {
    "mission_id": "mission",
    "team_id": "team",
    "member_state": "member_state",
    "organisation": "organisation",
}
"""Fields that name a scoped thing, wherever they stand in a body."""


def scoped_fields(value: Any, path: str = "body") -> Iterator[ScopedField]:
    """Every field of ``value`` (a command, a report, a list of them...) that names a
    mission, a team, a member state or an organisation; a recipient that is a state names
    a member state, one that is an organisation a recipient organisation."""
    if isinstance(value, Recipient):
        organisation = value.kind is RecipientKind.international_organisation
        yield ScopedField(
            f"{path}.name", "recipient organisation" if organisation else "member_state", value.name
        )
        return
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            named = _FIELD_KINDS.get(name)
            if named is not None and isinstance(item, str):
                yield ScopedField(f"{path}.{name}", named, item)
            else:
                yield from scoped_fields(item, f"{path}.{name}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            yield from scoped_fields(item, f"{path}.{index}")


def _allowed(principal: Principal, field: ScopedField) -> bool:
    """Whether the token's scope reaches what ``field`` names. A token scoped to a team
    writes for that team only; to a member state, for that state only; to a mission, in
    that mission only; to an organisation, for that organisation only."""
    match field.kind:
        case "team":
            return principal.team_id is None or field.value == principal.team_id
        case "member_state":
            if principal.role is Role.member_state:
                return field.value == principal.member_state
            return principal.member_state is None or field.value == principal.member_state
        case "mission":
            return principal.mission_id is None or field.value == principal.mission_id
        case "organisation":
            return principal.organisation is None or field.value == principal.organisation
        case "recipient organisation":
            # A state answers for itself, never for an organisation it was sent to; an
            # organisation answering through its link, for itself only.
            if principal.role is Role.member_state:
                return principal.member_state is None and field.value == principal.organisation
            return True
    return False


def check_body(principal: Principal, body: Any, *, path: str = "body") -> None:
    """403 naming the first field of ``body`` that names something outside the token's
    scope (``scoped_fields``), and the rules that depend on what a command says."""
    for field in scoped_fields(body, path):
        if not _allowed(principal, field):
            scope: str | None = {
                "team": principal.team_id,
                "member_state": principal.member_state,
                "mission": principal.mission_id,
                "organisation": principal.organisation,
                "recipient organisation": principal.member_state,
            }[field.kind]
            raise ApiError(
                Code.forbidden,
                f"{field.path} names {field.kind.replace('_', ' ')} {field.value!r}; this "
                f"{principal.role.value} token acts for "
                + (f"{scope!r} only" if scope else "itself only"),
            )
    if (
        principal.role is Role.head_of_mission
        and isinstance(body, c.ApproveStatement)
        and body.approved_by.strip().casefold() != principal.name.casefold()
    ):
        raise forbidden(f"{principal.name} approves in their own name only")
