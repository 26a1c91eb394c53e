"""What needs a coordinator's attention in a mission, read off its state: missed
check-ins on election day, answers overdue from member states, escalations sent.

Pure: the state and the time of asking in, the alerts out. The board of missions and
the API both show these.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from domain.state import Mission, StationVisit
from domain.values import DeadlineKind, Stage


class AlertKind(StrEnum):
    missed_check_in = "missed_check_in"
    overdue_answer = "overdue_answer"
    escalation = "escalation"
    critical_answer = "critical_answer"


class Alert(BaseModel):
    """One thing to look at: what, about whom (a team or a member state), since when."""

    kind: AlertKind
    subject: str
    """The team (missed check-in), the member state (overdue answer, escalation), or the
    polling station and team (critical answer)."""
    request: DeadlineKind | None = None
    cycle: int = 0
    since: datetime | None = None
    answer: str | None = None
    """A critical answer: ``form/question = answer``."""


def mission_alerts(
    state: Mission, now: datetime, *, visits: Iterable[StationVisit] | None = None
) -> list[Alert]:
    """The mission's alerts at ``now`` (an aware datetime): missed check-ins not cleared,
    requests whose deadline passed unanswered (nominations while the delegation forms,
    acknowledgements, evidence per cycle), reminders escalated, and critical answers of
    observation forms in the standing visits (``visits``, else the state's own). A closed
    or cancelled mission has none."""
    if state.stage in (None, Stage.closed, Stage.cancelled):
        return []
    critical = [
        Alert(
            kind=AlertKind.critical_answer,
            subject=f"{visit.station_id} ({visit.team_id})",
            since=visit.arrived_at,
            answer=f"{c.form_id}/{c.question} = {c.answer}",
        )
        for visit in (state.visits.values() if visits is None else visits)
        for c in visit.critical
    ]
    alerts = [
        Alert(kind=AlertKind.missed_check_in, subject=team, since=since)
        for team, since in sorted(state.missed_check_ins.items())
    ]
    asked: list[tuple[DeadlineKind, int, datetime | None, list[str]]] = []
    if state.stage in (Stage.forming, Stage.pre_election):
        asked.append(
            (DeadlineKind.nomination, 0, state.nomination_deadline, list(state.member_states))
        )
    acknowledging = sorted({d.recipient.name for d in state.deliveries.values()})
    asked.append((DeadlineKind.acknowledgement, 0, state.acknowledge_by, acknowledging))
    for cycle in state.evidence_cycles.values():
        asked.append((DeadlineKind.evidence, cycle.cycle, cycle.deadline, cycle.member_states))
    for kind, cycle_number, deadline, recipients in asked:
        if deadline is None or deadline > now:
            continue
        alerts += [
            Alert(
                kind=AlertKind.overdue_answer,
                subject=who,
                request=kind,
                cycle=cycle_number,
                since=deadline,
            )
            for who in recipients
            if not state.answered(kind, who, cycle_number)
        ]
    alerts += [
        Alert(
            kind=AlertKind.escalation,
            subject=track.member_state,
            request=track.kind,
            cycle=track.cycle,
        )
        for track in state.reminders.values()
        if track.escalated and not state.answered(track.kind, track.member_state, track.cycle)
    ]
    return alerts + critical
