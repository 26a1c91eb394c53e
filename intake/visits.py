"""The mission's station visits, however they came: one read model for every reader.

A visit is a report through the intake (an observer's device, the web, or the mission's
own command since visits by command go through the intake) or, in records made before
that, a ``StationVisitRecorded`` event in the mission's stream. A corrected report is
replaced by its latest correction: each visit counts once. The API, the CLI and the
exports list visits from here, and coverage counts the same set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from domain.host_time import local
from domain.state import Mission, StationVisit
from domain.values import RECORDED
from eventstore.models import RecordedEvent
from eventstore.store import EventStore
from intake.writer import stations_stream

# Standing visits: intake reports not replaced by a correction, and the mission stream's
# own StationVisitRecorded events (records made before visits went through the intake).
_VISITS = """
SELECT e.data::text AS data, r.submission_id AS visit_id, e.stream_id, e.stream_version,
       e.global_position, p.time_zone
FROM intake_receipts AS r JOIN events AS e ON e.event_id = r.event_id
LEFT JOIN polling_stations AS p ON p.mission_id = r.mission_id AND p.station_id = r.station_id
WHERE r.mission_id = $1 AND r.kind = 'station_visit'
  AND ($2::text IS NULL OR r.team_id = $2)
  AND ($3::bigint IS NULL OR r.global_position <= $3)
  AND (NOT $4::boolean OR coalesce(jsonb_array_length(e.data->'critical'), 0) > 0)
  AND NOT EXISTS (SELECT 1 FROM intake_receipts AS c
                  WHERE c.mission_id = $1 AND c.corrects = r.submission_id
                    AND ($3::bigint IS NULL OR c.global_position <= $3))
UNION ALL
SELECT data::text, data->>'visit_id', stream_id, stream_version, global_position, NULL
FROM events
WHERE stream_id = $1 AND event_type = 'StationVisitRecorded'
  AND ($2::text IS NULL OR data->>'team_id' = $2)
  AND ($3::bigint IS NULL OR global_position <= $3)
  AND NOT $4::boolean
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
    as_of_version: int | None = None,
    critical_only: bool = False,
    through_position: int | None = None,
) -> list[RecordedVisit]:
    """The mission's standing visits in the order they were recorded (only ``team_id``'s
    if given), their times in their station's zone, else ``time_zone``, with the offset
    (as stored if neither); with ``as_of_version``, as they stood while the mission's
    stream was at that version (the reports recorded, and corrected, before its next
    event; all of them if it is the stream's head); with ``critical_only``, only those
    holding answers that met their form's ``eom:critical`` condition; with
    ``through_position``, as they stood once the global log reached that position."""
    through = through_position
    if as_of_version is not None:
        if as_of_version < 1:
            return []
        following = await store.pool.fetchval(
            "SELECT global_position FROM events WHERE stream_id = $1 AND stream_version = $2",
            mission_id,
            as_of_version + 1,
        )
        through = None if following is None else following - 1
    rows = await store.pool.fetch(_VISITS, mission_id, team_id, through, critical_only)
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
        zone = row["time_zone"] or time_zone
        if zone is not None:
            changes["arrived_at"] = local(visit.arrived_at, zone)
            changes["departed_at"] = local(visit.departed_at, zone)
        visits.append(visit.model_copy(update=changes))
    return visits


def with_visits(state: Mission, visits: Sequence[StationVisit]) -> Mission:
    """``state`` with the mission's visits however they came (``mission_visits``) and the
    stations reported by more than one team: what a reader of the mission is shown, so
    that the mission's state and its visit list agree."""
    teams: dict[str, set[str]] = {}
    for visit in visits:
        teams.setdefault(visit.station_id, set()).add(visit.team_id)
    return state.model_copy(
        update={
            "visits": {v.visit_id: v for v in visits},
            "conflicting_stations": {
                station: [v.visit_id for v in visits if v.station_id == station]
                for station, by in teams.items()
                if len(by) > 1
            },
        }
    )


async def intake_events(store: EventStore, mission_id: str) -> list[RecordedEvent]:
    """The events of the mission's election-day streams, as stored, in global log order:
    its polling stations (``<mission>/stations``) and each station's reports
    (``<mission>/stations/<station>``), which visits by command are too."""
    rows = await store.pool.fetch(
        "SELECT DISTINCT stream_id FROM intake_receipts WHERE mission_id = $1", mission_id
    )
    streams = [stations_stream(mission_id), *(r["stream_id"] for r in rows)]
    return await store.read_streams(streams)
