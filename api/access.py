"""Who may do what: each route's roles, and each role's scope.

Every ``/v1`` route names its policy here (``ROUTE_ROLES``); a route without one is
refused to everybody, and the tests' role x endpoint matrix is built from the app's
routes, so a new endpoint cannot slip through unguarded.
"""

from __future__ import annotations

from api.errors import ApiError
from api.tokens import Principal, Role
from domain import commands as c
from domain.commands import COMMAND_TYPES, Command
from domain.state import Mission
from domain.values import RecipientKind

R = Role
ALL = frozenset(Role)
READERS = frozenset({R.coordinator, R.head_of_mission, R.auditor})

ROUTE_ROLES: dict[str, frozenset[Role]] = {
    "list_missions": ALL,
    "get_mission": READERS,
    "get_timeline": READERS,
    "stream_events": READERS,
    "list_visits": frozenset({R.coordinator, R.head_of_mission, R.observer, R.auditor}),
    "get_sent_to_recipient": frozenset({R.coordinator, R.member_state, R.auditor}),
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
    return ApiError(403, "forbidden", message)


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
            return principal.mission_id in (None, mission.mission_id) and (
                country in mission.member_states or country == mission.host_country
            )
        case Role.auditor:
            return True
    return False


def require_scope(principal: Principal, mission: Mission) -> None:
    if not in_scope(principal, mission):
        raise forbidden(
            f"mission {mission.mission_id} is outside this {principal.role.value} token's scope"
        )


def check_command(principal: Principal, command: Command) -> None:
    """Scope rules that depend on what the command says."""
    match principal.role, command:
        case Role.coordinator, c.RegisterInvitation() if principal.organisation:
            if command.organisation != principal.organisation:
                raise forbidden(f"this token registers missions of {principal.organisation} only")
        case Role.member_state, c.NominateObserver() | c.DeclineNomination() | c.SubmitEvidence():
            if command.member_state != principal.member_state:
                raise forbidden(
                    f"{principal.member_state} answers for itself, not for {command.member_state}"
                )
        case Role.member_state, c.AcknowledgeRecommendations():
            recipient = command.recipient
            if (
                recipient.kind is RecipientKind.international_organisation
                or recipient.name != principal.member_state
            ):
                raise forbidden(
                    f"{principal.member_state} acknowledges for itself, not for {recipient.name}"
                )
        case Role.observer, c.RecordStationVisit():
            if command.team_id != principal.team_id:
                raise forbidden(
                    f"this observer token reports for team {principal.team_id}, "
                    f"not {command.team_id}"
                )
        case Role.head_of_mission, c.ApproveStatement():
            if command.approved_by.strip().casefold() != principal.name.casefold():
                raise forbidden(f"{principal.name} approves in their own name only")
