"""The election observation mission's rules, with no I/O: ``decide`` and ``evolve``."""

from domain.commands import COMMAND_ADAPTER, COMMAND_TYPES, Command
from domain.decide import decide, text_sha256
from domain.errors import DomainError
from domain.events import EVENT_ADAPTER, EVENT_TYPES, Event
from domain.evolve import evolve, fold
from domain.state import Mission
from domain.upcasting import load as load_event
from domain.upcasting import load_json as load_event_json
from domain.values import Profile, Stage

__all__ = [
    "COMMAND_ADAPTER",
    "COMMAND_TYPES",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "Command",
    "DomainError",
    "Event",
    "Mission",
    "Profile",
    "Stage",
    "decide",
    "evolve",
    "fold",
    "load_event",
    "load_event_json",
    "text_sha256",
]
