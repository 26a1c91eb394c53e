"""A simulated election day: realistic submissions for load tests and the benchmark.

Teams of observers each cover a round of polling stations: an opening report at the
first station, voting visits through the day, counting at the last (past midnight for
some), and incidents along the way. The day's reports are sent the way devices send
them: some twice (a lost acknowledgement), some corrected later, some late (a device
back online), and some stations reported by two teams (a conflict). Deterministic for a
given seed, so that a test knows exactly what should be recorded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from domain.submissions import IncidentReport, PollingStation, StationVisitReport
from domain.values import (
    Assessment,
    Finding,
    FindingCategory,
    Phase,
    PhaseChecklist,
)

AnySubmission = StationVisitReport | IncidentReport
Why = Literal["report", "duplicate", "correction", "conflict", "late"]

_QUESTIONS = {
    Phase.opening: ("opened_on_time", "ballot_box_sealed", "observers_admitted"),
    Phase.voting: ("secrecy_respected", "voters_list_checked", "ink_applied", "observers_admitted"),
    Phase.counting: ("unused_ballots_cancelled", "count_public", "protocol_posted"),
    Phase.tabulation: ("protocols_delivered", "results_entered"),
}
_NOTES = {
    FindingCategory.observer_access: "Observers had full access",
    FindingCategory.procedures: "Procedures followed",
    FindingCategory.secrecy_of_vote: "No curtains on the booths",
    FindingCategory.accessibility: "No ramp for voters with disabilities",
    FindingCategory.voter_influence: "Campaign material near the entrance",
    FindingCategory.technical: "Ballot scanner restarted twice",
}


def polling_stations(count: int, *, localities: int = 20) -> list[PollingStation]:
    """``count`` stations spread over ``localities`` localities."""
    return [
        PollingStation(
            station_id=f"PS-{n:05d}",
            locality=f"Locality {n % localities + 1:02d}",
            name=f"Polling station {n}",
        )
        for n in range(1, count + 1)
    ]


@dataclass(frozen=True)
class Sending:
    """One submission as a device sends it, and why."""

    submission: AnySubmission
    why: Why


@dataclass
class ElectionDay:
    mission_id: str
    election_day: date
    teams: list[str]
    stations: list[PollingStation]
    utc_offset: timedelta = timedelta(hours=6)
    seed: int = 2021
    duplicate_rate: float = 0.05
    correction_rate: float = 0.03
    conflict_rate: float = 0.02
    incident_rate: float = 0.05
    late_rate: float = 0.05
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.teams or not self.stations:
            raise ValueError("an election day needs teams and stations")
        self._rng = random.Random(self.seed)

    @property
    def zone(self) -> timezone:
        return timezone(self.utc_offset)

    def at(self, hour: float) -> datetime:
        """Local time on election day (``hour`` past 24 is the morning after)."""
        start = datetime.combine(self.election_day, time(0), tzinfo=self.zone)
        return start + timedelta(hours=hour)

    def sendings(self, reports: int) -> Iterator[Sending]:
        """About ``reports`` sendings in the order devices send them."""
        rng = self._rng
        rounds = self._rounds()
        sent: list[AnySubmission] = []
        latest: dict[str, AnySubmission] = {}  # each report's last correction
        delayed: list[AnySubmission] = []
        count = 0
        serial = 0
        while count < reports:
            team, station, step, steps = next(rounds)
            serial += 1
            submission = self._report(team, station, step, steps, serial)
            why: Why = "report"
            if rng.random() < self.conflict_rate:
                other = rng.choice(self.teams)
                if other != team:
                    submission = submission.model_copy(
                        update={"team_id": other, "submission_id": f"{other}-c{serial}"}
                    )
                    why = "conflict"
            if rng.random() < self.late_rate:
                delayed.append(submission)  # a device offline: sent a while later
                continue
            yield Sending(submission, why)
            sent.append(submission)
            count += 1
            if delayed and rng.random() < 0.2:
                yield Sending(delayed.pop(0), "late")
                count += 1
            if sent and rng.random() < self.duplicate_rate:
                yield Sending(rng.choice(sent[-50:]), "duplicate")
                count += 1
            if sent and rng.random() < self.correction_rate:
                # A report is corrected once: a later change corrects its correction.
                first = rng.choice(sent[-50:])
                fix = self._correction(latest.get(first.submission_id, first), first, serial)
                latest[first.submission_id] = fix
                yield Sending(fix, "correction")
                count += 1
        for submission in delayed:
            yield Sending(submission, "late")

    def _rounds(self) -> Iterator[tuple[str, PollingStation, int, int]]:
        """(team, station, step, steps): each team's round of stations, again and again."""
        per_team = max(1, len(self.stations) // len(self.teams))
        cycle = 0
        while True:
            for step in range(per_team):
                for t, team in enumerate(self.teams):
                    index = (t * per_team + step + cycle) % len(self.stations)
                    yield team, self.stations[index], step, per_team
            cycle += 1

    def _report(
        self, team: str, station: PollingStation, step: int, steps: int, serial: int
    ) -> AnySubmission:
        rng = self._rng
        base = {
            "submission_id": f"{team}-{serial}",
            "mission_id": self.mission_id,
            "station_id": station.station_id,
            "team_id": team,
        }
        if rng.random() < self.incident_rate:
            category = rng.choice(list(_NOTES))
            return IncidentReport(
                **base,
                observed_at=self.at(8 + rng.random() * 11),
                phase=Phase.voting,
                category=category,
                serious=rng.random() < 0.3,
                description=_NOTES[category],
            )
        if step == 0:
            phases, start = [Phase.opening, Phase.voting], 7.0
        elif step == steps - 1 and steps > 1:
            phases, start = [Phase.voting, Phase.counting], 19.5 + rng.random() * 2
        else:
            phases, start = [Phase.voting], 8 + 11 * step / max(1, steps)
        stay = 0.5 + rng.random() * (3.5 if Phase.counting in phases else 1.0)
        findings = [
            Finding(category=c, assessment=Assessment.positive, note=_NOTES[c])
            for c in (FindingCategory.observer_access, FindingCategory.procedures)
        ]
        if rng.random() < 0.15:
            findings.append(
                Finding(
                    category=FindingCategory.accessibility,
                    assessment=Assessment.concern,
                    note=_NOTES[FindingCategory.accessibility],
                )
            )
        return StationVisitReport(
            **base,
            arrived_at=self.at(start),
            departed_at=self.at(min(start + stay, 24 + 11.5)),
            checklists=[
                PhaseChecklist(phase=p, answers={q: rng.random() > 0.05 for q in _QUESTIONS[p]})
                for p in phases
            ],
            findings=findings,
        )

    def _correction(
        self, original: AnySubmission, first: AnySubmission, serial: int
    ) -> AnySubmission:
        """The same report, a detail changed, naming the one it replaces (``original``:
        ``first``, the report as first sent, or its last correction)."""
        fields = {"submission_id": f"{first.submission_id}-fix{serial}"}
        if isinstance(original, IncidentReport):
            return original.model_copy(
                update={**fields, "corrects": original.submission_id, "serious": True}
            )
        checklist = original.checklists[0]
        answers = {**checklist.answers, "corrected": True}
        return original.model_copy(
            update={
                **fields,
                "corrects": original.submission_id,
                "checklists": [
                    checklist.model_copy(update={"answers": answers}),
                    *original.checklists[1:],
                ],
            }
        )
