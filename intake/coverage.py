"""Live election-day coverage: the numbers a statement draft needs, each traceable.

A projection (``COVERAGE``) follows the global log into the ``coverage_*`` tables: every
report (through the intake, or the mission's own ``StationVisitRecorded``), the correction
that replaced it, its findings, conflicts and missed check-ins. ``coverage`` reads them
back as stations visited per locality and phase, reports and alerts per team, and
findings by category, each figure with the global log positions of the events behind it.
Counts use the latest correction of each report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from domain.submissions import STATION_EVENT_ADAPTER, IncidentReported, StationVisitReported
from domain.values import RECORDED
from eventstore.models import RecordedEvent
from eventstore.projections import Projection
from eventstore.store import Connection

_REPORTS = {"StationVisitReported", "IncidentReported"}


async def _apply(conn: Connection, event: RecordedEvent) -> None:
    match event.event_type:
        case "StationVisitReported" | "IncidentReported":
            report = STATION_EVENT_ADAPTER.validate_python(event.data, context=RECORDED)
            assert isinstance(report, StationVisitReported | IncidentReported)
            if isinstance(report, StationVisitReported):
                phases = sorted({c.phase.value for c in report.checklists})
                findings = [(f.category.value, f.assessment.value) for f in report.findings]
                kind = "station_visit"
            else:
                phases = [report.phase.value]
                findings = [(report.category.value, "serious" if report.serious else "concern")]
                kind = "incident"
            await _report(
                conn,
                event,
                report.mission_id,
                report.submission_id,
                kind,
                report.station_id,
                report.locality,
                report.team_id,
                phases,
                findings,
                report.corrects,
            )
        case "StationVisitRecorded":  # the mission's own command (paper forms, early missions)
            data = event.data
            await _report(
                conn,
                event,
                event.stream_id,
                data["visit_id"],
                "station_visit",
                data["station_id"],
                data["locality"],
                data["team_id"],
                sorted({c["phase"] for c in data["checklists"]}),
                [(f["category"], f["assessment"]) for f in data["findings"]],
                None,
            )
        case "SubmissionsConflicted" | "StationReportsConflicted":
            data = event.data
            mission_id = event.stream_id.split("/stations/")[0]
            await conn.execute(
                "INSERT INTO coverage_conflicts (mission_id, station_id, team_ids, "
                "submission_ids, global_position) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (mission_id, station_id) DO UPDATE SET team_ids = EXCLUDED.team_ids, "
                "submission_ids = EXCLUDED.submission_ids, "
                "global_position = EXCLUDED.global_position",
                mission_id,
                data["station_id"],
                data["team_ids"],
                data.get("submission_ids") or data.get("visit_ids") or [],
                event.global_position,
            )
        case "CheckInCleared":
            await conn.execute(
                "DELETE FROM coverage_alerts WHERE mission_id = $1 AND team_id = $2 AND phase = $3",
                event.stream_id,
                event.data["team_id"],
                event.data["phase"],
            )
        case "CheckInMissed":
            data = event.data
            await conn.execute(
                "INSERT INTO coverage_alerts (mission_id, team_id, phase, due_at, "
                "global_position) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                event.stream_id,
                data["team_id"],
                data["phase"],
                datetime.fromisoformat(data["due_at"]),
                event.global_position,
            )


async def _report(
    conn: Connection,
    event: RecordedEvent,
    mission_id: str,
    submission_id: str,
    kind: str,
    station_id: str,
    locality: str,
    team_id: str,
    phases: list[str],
    findings: list[tuple[str, str]],
    corrects: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO coverage_reports (mission_id, submission_id, kind, station_id, locality, "
        "team_id, phases, corrects, global_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        mission_id,
        submission_id,
        kind,
        station_id,
        locality,
        team_id,
        phases,
        corrects,
        event.global_position,
    )
    if findings:
        await conn.executemany(
            "INSERT INTO coverage_findings (mission_id, submission_id, n, category, assessment, "
            "global_position) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (mission_id, submission_id, n, category, assessment, event.global_position)
                for n, (category, assessment) in enumerate(findings)
            ],
        )
    if corrects is not None:
        await conn.execute(
            "UPDATE coverage_reports SET superseded_by = $3 "
            "WHERE mission_id = $1 AND submission_id = $2",
            mission_id,
            corrects,
            submission_id,
        )


COVERAGE = Projection(
    "coverage",
    ("coverage_reports", "coverage_findings", "coverage_conflicts", "coverage_alerts"),
    _apply,
)


# -- reading it ----------------------------------------------------------------------------


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class LocalityPhase(_Row):
    locality: str
    registered: int
    phase: str | None
    stations_visited: int
    positions: list[int]


class TeamCoverage(_Row):
    team_id: str
    reports: int
    stations_visited: int
    phases: list[str]
    missed: list[str]
    """Phases the team was alerted for (no report by the time it was due)."""
    positions: list[int]


class FindingCount(_Row):
    category: str
    assessment: str
    count: int
    positions: list[int]


class Conflict(_Row):
    station_id: str
    team_ids: list[str]
    submission_ids: list[str]
    position: int


class Coverage(_Row):
    mission_id: str
    reports: int
    visits: int
    incidents: int
    corrections: int
    stations_visited: int
    stations_registered: int
    stations_unregistered: int = 0
    """Stations visited that the mission never registered (visits recorded by command
    before visits went through the intake's rules)."""
    localities: list[LocalityPhase]
    teams: list[TeamCoverage]
    findings: list[FindingCount]
    conflicts: list[Conflict]
    projected_through: int
    """The global position the projection has reached (later events are not counted yet)."""


_STANDING = "superseded_by IS NULL"


async def coverage(pool: asyncpg.Pool, mission_id: str) -> Coverage:
    """The mission's election-day coverage as the projection holds it."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        totals = await conn.fetchrow(
            f"""
            SELECT count(*) AS reports,
                   count(*) FILTER (WHERE kind = 'station_visit' AND {_STANDING}) AS visits,
                   count(*) FILTER (WHERE kind = 'incident' AND {_STANDING}) AS incidents,
                   count(*) FILTER (WHERE corrects IS NOT NULL) AS corrections,
                   count(DISTINCT station_id) FILTER (WHERE kind = 'station_visit'
                                                       AND {_STANDING}) AS stations_visited,
                   (SELECT count(*) FROM polling_stations WHERE mission_id = $1)
                       AS stations_registered,
                   count(DISTINCT station_id) FILTER (
                       WHERE kind = 'station_visit' AND {_STANDING} AND NOT EXISTS (
                           SELECT 1 FROM polling_stations AS p
                           WHERE p.mission_id = $1 AND p.station_id = coverage_reports.station_id
                       )) AS stations_unregistered
            FROM coverage_reports WHERE mission_id = $1
            """,
            mission_id,
        )
        localities = await conn.fetch(
            f"""
            WITH visits AS (
                SELECT locality, station_id, unnest(phases) AS phase, global_position
                FROM coverage_reports
                WHERE mission_id = $1 AND kind = 'station_visit' AND {_STANDING}
            ), registered AS (
                SELECT locality, count(*) AS registered FROM polling_stations
                WHERE mission_id = $1 GROUP BY locality
            )
            SELECT coalesce(v.locality, r.locality) AS locality,
                   coalesce(r.registered, 0) AS registered, v.phase,
                   count(DISTINCT v.station_id) AS stations_visited,
                   coalesce(array_agg(v.global_position ORDER BY v.global_position)
                            FILTER (WHERE v.global_position IS NOT NULL), '{{}}') AS positions
            FROM visits AS v FULL JOIN registered AS r ON r.locality = v.locality
            GROUP BY 1, 2, 3 ORDER BY 1, 3
            """,
            mission_id,
        )
        teams = await conn.fetch(
            f"""
            SELECT r.team_id, count(*) AS reports,
                   count(DISTINCT r.station_id) FILTER (WHERE r.kind = 'station_visit')
                       AS stations_visited,
                   (SELECT coalesce(array_agg(DISTINCT p ORDER BY p), '{{}}')
                    FROM coverage_reports AS x, unnest(x.phases) AS p
                    WHERE x.mission_id = $1 AND x.team_id = r.team_id AND x.{_STANDING}) AS phases,
                   array_agg(r.global_position ORDER BY r.global_position) AS positions
            FROM coverage_reports AS r WHERE r.mission_id = $1 AND r.{_STANDING}
            GROUP BY r.team_id
            """,
            mission_id,
        )
        alerts = await conn.fetch(
            "SELECT team_id, phase FROM coverage_alerts WHERE mission_id = $1", mission_id
        )
        findings = await conn.fetch(
            f"""
            SELECT f.category, f.assessment, count(*) AS count,
                   array_agg(f.global_position ORDER BY f.global_position) AS positions
            FROM coverage_findings AS f JOIN coverage_reports AS r USING (mission_id, submission_id)
            WHERE f.mission_id = $1 AND r.{_STANDING}
            GROUP BY 1, 2 ORDER BY 1, 2
            """,
            mission_id,
        )
        conflicts = await conn.fetch(
            "SELECT station_id, team_ids, submission_ids, global_position AS position "
            "FROM coverage_conflicts WHERE mission_id = $1 ORDER BY station_id",
            mission_id,
        )
        through = await conn.fetchval(
            "SELECT global_position FROM projection_checkpoints WHERE projection = $1",
            COVERAGE.name,
        )
    assert totals is not None
    missed: dict[str, list[str]] = {}
    for alert in alerts:
        missed.setdefault(alert["team_id"], []).append(alert["phase"])
    by_team: dict[str, dict[str, Any]] = {r["team_id"]: dict(r) for r in teams}
    for team_id in missed:
        by_team.setdefault(
            team_id,
            {
                "team_id": team_id,
                "reports": 0,
                "stations_visited": 0,
                "phases": [],
                "positions": [],
            },
        )
    return Coverage(
        mission_id=mission_id,
        **dict(totals),
        localities=[LocalityPhase(**dict(r)) for r in localities],
        teams=[
            TeamCoverage(**row, missed=sorted(missed.get(team_id, [])))
            for team_id, row in sorted(by_team.items())
        ],
        findings=[FindingCount(**dict(r)) for r in findings],
        conflicts=[Conflict(**dict(r)) for r in conflicts],
        projected_through=int(through or 0),
    )
