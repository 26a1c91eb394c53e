"""What an operation refuses before it reaches a mission, in terms each face names its
own way (the API as ``query.at``, the CLI as ``--at``)."""

from __future__ import annotations


class InvalidInput(ValueError):
    """An argument an operation cannot take: ``field`` is its name as the operation
    calls it (``at``, ``version``), ``message`` why, for a person."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownMission(LookupError):
    """No stream of that id in the event store."""

    def __init__(self, mission_id: str) -> None:
        super().__init__(f"no mission {mission_id!r} in the event store")
        self.mission_id = mission_id
