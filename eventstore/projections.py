"""Read models in PostgreSQL, kept by a projector that follows the global log.

The projector reads the log in commit-safe order (``EventStore.read_all``), applies each
batch to the read-model tables and moves its checkpoint in the same transaction: after a
crash it resumes exactly where the last committed batch ended. ``rebuild`` empties the
tables and replays the whole log, and must reach the same rows as the incremental run.

Projections: ``mission_list`` (one row per mission: stage, host, election, version and
the folded state) and ``mission_timeline`` (one row per event: type, actor, times).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from domain import EVENT_TYPES, Mission, evolve, load_event
from domain.values import RECORDED
from eventstore.models import LogPosition, RecordedEvent
from eventstore.store import Connection, EventStore


@dataclass(frozen=True)
class Projection:
    """A read model: its name (its checkpoint's key), its tables (emptied by a rebuild)
    and how one event changes them."""

    name: str
    tables: Sequence[str]
    apply: Callable[[Connection, RecordedEvent], Awaitable[None]]


class Projector:
    def __init__(self, store: EventStore, projection: Projection, *, batch: int = 500) -> None:
        self.store = store
        self.projection = projection
        self.batch = batch

    async def checkpoint(self) -> LogPosition:
        row = await self.store.pool.fetchrow(
            "SELECT transaction_id::text::bigint AS transaction_id, global_position "
            "FROM projection_checkpoints WHERE projection = $1",
            self.projection.name,
        )
        return LogPosition(**dict(row)) if row else LogPosition()

    async def run_once(self) -> int:
        """Project what the log holds beyond the checkpoint; return how many events."""
        done = 0
        while True:
            after = await self.checkpoint()
            events = await self.store.read_all(after=after, limit=self.batch)
            if not events:
                return done
            async with self.store.pool.acquire() as conn, conn.transaction():
                # Another projector may have moved the checkpoint meanwhile: take the lock
                # row and re-check before applying, so no batch is applied twice.
                await conn.execute(
                    "INSERT INTO projection_checkpoints (projection, transaction_id, "
                    "global_position) VALUES ($1, '0', 0) ON CONFLICT DO NOTHING",
                    self.projection.name,
                )
                current = await conn.fetchrow(
                    "SELECT transaction_id::text::bigint AS transaction_id, global_position "
                    "FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
                    self.projection.name,
                )
                assert current is not None
                if LogPosition(**dict(current)) != after:
                    continue
                for event in events:
                    await self.projection.apply(conn, event)
                last = events[-1].log_position
                await conn.execute(
                    "INSERT INTO projection_checkpoints (projection, transaction_id, "
                    "global_position) VALUES ($1, $2::text::xid8, $3) "
                    "ON CONFLICT (projection) DO UPDATE SET "
                    "transaction_id = EXCLUDED.transaction_id, "
                    "global_position = EXCLUDED.global_position, updated_at = clock_timestamp()",
                    self.projection.name,
                    str(last.transaction_id),
                    last.global_position,
                )
            done += len(events)

    async def rebuild(self) -> int:
        """Empty the read models and project the whole log again."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            for table in self.projection.tables:
                await conn.execute(f"DELETE FROM {table}")
            await conn.execute(
                "DELETE FROM projection_checkpoints WHERE projection = $1", self.projection.name
            )
        return await self.run_once()


async def _apply(conn: Connection, event: RecordedEvent) -> None:
    if event.event_type not in EVENT_TYPES:
        return  # not a mission's event (the store holds missions only in service)
    await conn.execute(
        "INSERT INTO mission_timeline (mission_id, stream_version, global_position, "
        "event_type, actor, occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.stream_id,
        event.stream_version,
        event.global_position,
        event.event_type,
        event.metadata.actor,
        event.occurred_at,
        event.recorded_at,
    )
    stored = await conn.fetchval(
        "SELECT state FROM mission_list WHERE mission_id = $1", event.stream_id
    )
    state = Mission.model_validate(stored, context=RECORDED) if stored else Mission()
    # The state for decisions (ids and names, no free texts, nor the visits of records
    # made before visits went through the intake), as the workflow holds it: rewritten at
    # every event, a full state would grow with the square of the texts or the visits.
    state = evolve(state, load_event(event.data)).for_decisions(visits=False)
    if state.stage is None or state.election is None:
        return
    await conn.execute(
        "INSERT INTO mission_list (mission_id, organisation, host_country, election_name, "
        "election_day, stage, version, state, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) "
        "ON CONFLICT (mission_id) DO UPDATE SET stage = EXCLUDED.stage, "
        "version = EXCLUDED.version, state = EXCLUDED.state, "
        "election_day = EXCLUDED.election_day, updated_at = EXCLUDED.updated_at",
        event.stream_id,
        state.organisation,
        state.host_country,
        state.election.name,
        state.election.date,
        state.stage.value,
        state.version,
        state.model_dump(mode="json"),
        event.recorded_at,
    )


MISSIONS = Projection("missions", ("mission_timeline", "mission_list"), _apply)


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    """Every read-model row, comparable across runs (for tests and audits)."""
    lists = await pool.fetch(
        "SELECT mission_id, organisation, host_country, election_name, election_day, stage, "
        "version, state, updated_at FROM mission_list ORDER BY mission_id"
    )
    timeline = await pool.fetch(
        "SELECT * FROM mission_timeline ORDER BY mission_id, stream_version"
    )
    return {
        "mission_list": [dict(r) for r in lists],
        "mission_timeline": [dict(r) for r in timeline],
    }
