"""Read models kept by the projector, against a rebuild from scratch."""

from __future__ import annotations

import uuid
from typing import Any

from builders import record

from cli import seed
from domain import Mission
from domain.values import RECORDED
from eventstore.projections import MISSIONS, Projector, snapshot
from eventstore.store import EventStore


async def record_seed(store: EventStore, mission_id: str, count: int) -> Mission:
    """The first ``count`` seed commands' events, appended as the workflow would."""
    return await record(store, mission_id, seed.mission(mission_id)[:count])


def ours(rows: dict[str, list[dict[str, Any]]], missions: set[str]) -> dict[str, list[Any]]:
    return {name: [r for r in found if r["mission_id"] in missions] for name, found in rows.items()}


async def test_a_rebuilt_projection_equals_the_incremental_one(store: EventStore) -> None:
    """Projected batch by batch as events arrive, or rebuilt from the whole log: the same
    rows; the mission list holds each mission's folded state for decisions (no free
    texts: rewritten at every event, the full state would grow with their square)."""
    projector = Projector(store, MISSIONS, batch=7)
    missions = {f"proj-{uuid.uuid4().hex[:8]}" for _ in range(3)}
    states = {}
    for i, mission_id in enumerate(sorted(missions)):
        states[mission_id] = await record_seed(store, mission_id, 20 + 15 * i)
        await projector.run_once()
    incremental = ours(await snapshot(store.pool), missions)
    assert len(incremental["mission_list"]) == 3
    for row in incremental["mission_list"]:
        assert Mission.model_validate(row["state"], context=RECORDED) == states[
            row["mission_id"]
        ].for_decisions(visits=False)
        assert row["version"] == states[row["mission_id"]].version
    assert len(incremental["mission_timeline"]) == sum(s.version for s in states.values())

    await projector.rebuild()
    assert ours(await snapshot(store.pool), missions) == incremental


async def test_the_checkpoint_moves_with_the_rows(store: EventStore) -> None:
    """Nothing is projected twice: a second run with no new events does nothing, and
    the checkpoint stands at the last projected event."""
    projector = Projector(store, MISSIONS, batch=5)
    await projector.run_once()
    mission_id = f"proj-{uuid.uuid4().hex[:8]}"
    state = await record_seed(store, mission_id, 10)
    projected = await projector.run_once()
    assert projected >= state.version
    assert await projector.run_once() == 0
    last = (await store.read_stream(mission_id))[-1]
    checkpoint = await projector.checkpoint()
    assert (checkpoint.transaction_id, checkpoint.global_position) >= (
        last.transaction_id,
        last.global_position,
    )
