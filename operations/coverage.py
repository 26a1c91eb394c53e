"""Election-day coverage (what ``eom coverage`` shows): the read model ``COVERAGE``
keeps, caught up with the log first if asked."""

from __future__ import annotations

from eventstore.projections import Projector
from eventstore.store import EventStore
from intake.coverage import COVERAGE, Coverage, coverage
from operations.errors import UnknownMission


async def mission_coverage(
    store: EventStore, mission_id: str, *, catch_up: bool = True
) -> Coverage:
    """The mission's coverage: stations visited per locality and phase, each team's
    reports and missed check-ins, findings, conflicts, each figure with the log positions
    behind it. With ``catch_up``, what the log holds is projected first (else the figures
    are as of ``projected_through``). Raises ``UnknownMission``."""
    if not await store.stream_version(mission_id):
        raise UnknownMission(mission_id)
    if catch_up:
        await Projector(store, COVERAGE).run_once()
    return await coverage(store.pool, mission_id)
