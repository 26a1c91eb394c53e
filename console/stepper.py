"""A mission's lifecycle as people follow it: the stages in order, which are done,
which is now, and the commands each person may give now.

Pure: the state in, the view out (the console renders it; the domain decides).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.access import ROUTE_ROLES
from api.tokens import Role
from domain.commands import COMMAND_TYPES, CommandBase
from domain.decide import commands_allowed
from domain.state import Mission
from domain.values import Stage

LIFECYCLE = sorted((s for s in Stage if s is not Stage.cancelled), key=lambda s: s.order)
"""The stages a mission goes through, in order (``cancelled`` can follow any open one)."""

_NAMES = {model: name for name, model in COMMAND_TYPES.items()}

KEPT_FOR_THE_RECORD = frozenset({"record_delivery"})
"""Commands the workflows give (what was delivered); never offered as a form."""


@dataclass(frozen=True)
class Step:
    stage: Stage
    state: str
    """``done``, ``current`` or ``ahead``."""


def steps(state: Mission) -> list[Step]:
    """The lifecycle's stages with where the mission is (a cancelled mission's stages
    are done up to where it was cancelled, none current)."""
    current = state.stage
    if current is None:
        return [Step(s, "ahead") for s in LIFECYCLE]
    if current is Stage.cancelled:
        return [Step(s, "ahead") for s in LIFECYCLE]
    shown = []
    for stage in LIFECYCLE:
        if stage.order < current.order:
            shown.append(Step(stage, "done"))
        elif stage is current:
            shown.append(Step(stage, "current"))
        else:
            shown.append(Step(stage, "ahead"))
    return shown


def offered(state: Mission, role: Role) -> list[tuple[str, type[CommandBase]]]:
    """The commands ``role`` may give now (by route name): those whose stage rule lets
    them, that the API's route rules give the role, and that people give (not those
    the workflows record)."""
    found = []
    for model in commands_allowed(state):
        name = _NAMES.get(model)
        if name is None or name in KEPT_FOR_THE_RECORD or name == "register_invitation":
            continue
        if role in ROUTE_ROLES.get(name, frozenset()):
            found.append((name, model))
    return found
