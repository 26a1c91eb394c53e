"""The mission's station visits, however they came: one read model for every reader.

A visit is a report through the intake (an observer's device, the web, or the mission's
own command since visits by command go through the intake) or, in records made before
that, a ``StationVisitRecorded`` event in the mission's stream. A corrected report is
replaced by its latest correction: each visit counts once. The API, the CLI and the
exports list visits from here, and coverage counts the same set.
"""

from __future__ import annotations

import json

from domain.host_time import local
from domain.state import StationVisit
from domain.values import RECORDED
from eventstore.store import EventStore

# Standing visits: intake reports not replaced by a correction, and the mission stream's
# own StationVisitRecorded events (records made before visits went through the intake).
_VISITS = """
SELECT e.data::text AS data, r.submission_id AS visit_id, e.stream_id, e.stream_version,
       e.global_position
FROM intake_receipts AS r JOIN events AS e ON e.event_id = r.event_id
WHERE r.mission_id = $1 AND r.kind = 'station_visit'
  AND ($2::text IS NULL OR r.team_id = $2)
  AND NOT EXISTS (SELECT 1 FROM intake_receipts AS c
                  WHERE c.mission_id = $1 AND c.corrects = r.submission_id)
UNION ALL
SELECT data::text, data->>'visit_id', stream_id, stream_version, global_position FROM events
WHERE stream_id = $1 AND event_type = 'StationVisitRecorded'
  AND ($2::text IS NULL OR data->>'team_id' = $2)
ORDER BY global_position
"""


class RecordedVisit(StationVisit):
    """A station visit with the event that records it: in a station's stream (through the
    intake) or in the mission's own (records made before)."""

    stream_id: str
    stream_version: int
    global_position: int


async def mission_visits(
    store: EventStore,
    mission_id: str,
    *,
    team_id: str | None = None,
    time_zone: str | None = None,
) -> list[RecordedVisit]:
    """The mission's standing visits in the order they were recorded (only ``team_id``'s
    if given), their times in ``time_zone`` with its offset (as stored if ``None``)."""
    rows = await store.pool.fetch(_VISITS, mission_id, team_id)
    visits = []
    for row in rows:
        data = json.loads(row["data"])
        fields = {name: data[name] for name in StationVisit.model_fields if name in data}
        visit = RecordedVisit.model_validate(
            {
                **fields,
                "visit_id": row["visit_id"],
                "stream_id": row["stream_id"],
                "stream_version": row["stream_version"],
                "global_position": row["global_position"],
            },
            context=RECORDED,
        )
        changes: dict[str, object] = {}
        if time_zone is not None:
            changes["arrived_at"] = local(visit.arrived_at, time_zone)
            changes["departed_at"] = local(visit.departed_at, time_zone)
        visits.append(visit.model_copy(update=changes))
    return visits
