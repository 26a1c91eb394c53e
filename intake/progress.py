"""What the mission workflow learns of the intake: aggregates, never reports one by one.

``progress`` counts what the intake holds (with the visits the mission recorded through
its own command); ``close`` drains the intake before election day closes; ``missing``
names the teams whose opening report has not come.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.values import LOCALITIES_LISTED, IntakeProgress
from eventstore.store import Connection, EventStore

# Visits still standing (not replaced by a correction), from the intake and from the
# mission's own StationVisitRecorded events; incidents and corrections from the intake.
_PROGRESS = """
WITH standing AS (
    SELECT r.kind, r.station_id, r.team_id, s.locality
    FROM intake_receipts AS r JOIN polling_stations AS s USING (mission_id, station_id)
    WHERE r.mission_id = $1
      AND NOT EXISTS (SELECT 1 FROM intake_receipts AS c
                      WHERE c.mission_id = $1 AND c.corrects = r.submission_id)
    UNION ALL
    SELECT 'station_visit', data->>'station_id', data->>'team_id', data->>'locality'
    FROM events WHERE stream_id = $1 AND event_type = 'StationVisitRecorded'
), visits AS (
    SELECT * FROM standing WHERE kind = 'station_visit'
), receipts AS (
    SELECT count(*) AS reports, count(corrects) AS corrections,
           coalesce(max(global_position), 0) AS through_position
    FROM intake_receipts WHERE mission_id = $1
)
SELECT
    receipts.reports + (SELECT count(*) FROM events
                        WHERE stream_id = $1 AND event_type = 'StationVisitRecorded') AS reports,
    (SELECT count(*) FROM visits) AS visits,
    (SELECT count(*) FROM standing WHERE kind = 'incident') AS incidents,
    receipts.corrections,
    (SELECT count(DISTINCT station_id) FROM visits) AS stations_visited,
    (SELECT coalesce(array_agg(locality ORDER BY locality), '{}')
     FROM (SELECT DISTINCT locality FROM visits ORDER BY locality LIMIT $2) AS listed)
        AS localities,
    (SELECT count(DISTINCT locality) FROM visits) AS locality_count,
    (SELECT count(DISTINCT team_id) FROM visits) AS teams,
    (SELECT count(*) FROM (SELECT station_id FROM visits GROUP BY station_id
                           HAVING count(DISTINCT team_id) > 1) AS conflicted) AS conflicts,
    receipts.through_position
FROM receipts
"""


async def progress_on(conn: Connection, mission_id: str) -> IntakeProgress:
    row = await conn.fetchrow(_PROGRESS, mission_id, LOCALITIES_LISTED)
    assert row is not None
    return IntakeProgress(**dict(row))


async def progress(store: EventStore, mission_id: str) -> IntakeProgress:
    async with store.connection() as conn:
        return await progress_on(conn, mission_id)


async def close(store: EventStore, mission_id: str) -> tuple[IntakeProgress, bool]:
    """Drain the mission's intake: wait for the writes in flight (they hold its gate),
    count everything, and close the gate so that no later submission gets in. Nothing is
    closed when no visit was recorded at all (election day cannot close then).

    Returns the final count and whether the gate is closed."""
    async with store.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO intake_gates (mission_id) VALUES ($1) ON CONFLICT DO NOTHING",
            mission_id,
        )
        await conn.execute(
            "SELECT 1 FROM intake_gates WHERE mission_id = $1 FOR UPDATE", mission_id
        )
        counted = await progress_on(conn, mission_id)
        if counted.visits:
            await conn.execute(
                "UPDATE intake_gates SET closed_at = coalesce(closed_at, clock_timestamp()) "
                "WHERE mission_id = $1",
                mission_id,
            )
        return counted, counted.visits > 0


async def missing(store: EventStore, mission_id: str, teams: Sequence[str]) -> list[str]:
    """The teams, of ``teams``, with no opening report: neither through the intake nor
    through the mission's own visits."""
    rows = await store.pool.fetch(
        """
        SELECT t FROM unnest($2::text[]) AS t
        WHERE NOT EXISTS (SELECT 1 FROM intake_receipts
                          WHERE mission_id = $1 AND team_id = t AND 'opening' = ANY(phases))
          AND NOT EXISTS (SELECT 1 FROM events
                          WHERE stream_id = $1 AND event_type = 'StationVisitRecorded'
                            AND data->>'team_id' = t
                            AND data->'checklists' @> '[{"phase": "opening"}]')
        ORDER BY t
        """,
        mission_id,
        list(teams),
    )
    return [r["t"] for r in rows]
