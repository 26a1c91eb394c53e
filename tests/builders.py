"""Small builders of domain commands shared by the domain tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone

from cli import seed
from domain import Mission, decide, fold
from domain import commands as c
from domain.commands import COMMAND_TYPES
from domain.submissions import IncidentReport, StationVisitReport
from domain.values import (
    Assessment,
    DeadlineKind,
    DeliveryPurpose,
    EvidenceItem,
    Finding,
    FindingCategory,
    ObserverRole,
    Phase,
    PhaseChecklist,
    Rating,
    Recipient,
    RecipientKind,
    StakeholderType,
)
from eventstore.models import EventMetadata, NewEvent
from eventstore.store import EventStore

ASTANA = timezone(timedelta(hours=6))


def nominate(
    observer_id: str,
    member_state: str = "AZ",
    *,
    role: ObserverRole = ObserverRole.short_term_observer,
    coc: bool = True,
    coi: bool = True,
) -> c.NominateObserver:
    return c.NominateObserver(
        observer_id=observer_id,
        member_state=member_state,
        name=f"Observer {observer_id}",
        role=role,
        code_of_conduct_signed=coc,
        conflict_of_interest_declared=coi,
    )


def meeting(meeting_id: str, held_on: date) -> c.RecordMeeting:
    return c.RecordMeeting(
        meeting_id=meeting_id,
        stakeholder_type=StakeholderType.civil_society,
        stakeholder_name="Civil society coalition",
        held_on=held_on,
        summary="Briefing on the campaign.",
    )


def member(code: str) -> Recipient:
    return Recipient(kind=RecipientKind.member_state, name=code)


async def record(
    store: EventStore, mission_id: str, commands: Sequence[c.Command], *, actor: str = "tester"
) -> Mission:
    """Decide ``commands`` and append their events as the workflow would, without
    Temporal; return the folded state."""
    state = Mission()
    for command in commands:
        now = datetime.now(UTC)
        events = decide(state, command, now=now)
        if not events:  # polling stations: the intake's, not the mission stream's
            continue
        await store.append(
            stream_id=mission_id,
            expected_version=state.version,
            events=[
                NewEvent.of(
                    e, event_id=uuid.uuid4(), occurred_at=now, metadata=EventMetadata(actor=actor)
                )
                for e in events
            ],
        )
        state = fold(events, state)
    return state


def command_samples(mission_id: str, seeded: Sequence[c.Command] = ()) -> list[c.Command]:
    """One command of every kind: the first of each kind in ``seeded`` (or in the seed
    mission), then samples of the kinds the seed does not use."""
    extra: list[c.Command] = [
        c.RecordNeedsAssessment(conducted_on=seed.ELECTION_DAY, summary="needed"),
        c.WithdrawObserver(observer_id="az-cec", reason="illness"),
        c.PublishInterimReport(report_id="ir", published_on=seed.ELECTION_DAY, summary="s"),
        c.PublishFinalReport(report_id="fr", published_on=seed.ELECTION_DAY, summary="s"),
        c.PostponeElection(new_date=seed.ELECTION_DAY.replace(month=2), reason="court"),
        c.CancelMission(reason="invitation withdrawn"),
        c.RequestNominations(deadline=datetime(2021, 1, 5, tzinfo=UTC)),
        c.DeclineNomination(member_state="AZ", reason="no budget"),
        c.RecordDelivery(
            kind=DeadlineKind.nomination,
            member_state="AZ",
            purpose=DeliveryPurpose.reminder,
            step=1,
            message_id="m.1",
            delivered=True,
        ),
        c.RequestEvidence(cycle=1, member_states=["AZ"], deadline=datetime(2021, 7, 1, tzinfo=UTC)),
        c.SubmitEvidence(
            member_state="AZ",
            cycle=1,
            evidence=[EvidenceItem(recommendation_id="R1", text="ramps ordered")],
        ),
        c.RateImplementation(
            recommendation_id="R1",
            rating=Rating.partially,
            rated_on=date(2021, 7, 2),
            basis="ramps",
        ),
        c.ReopenReview(new_mission_id=mission_id, reason="new election"),
        c.EndFollowUp(reason="review complete"),
    ]
    samples: dict[str, c.Command] = {}
    for command in [*(seeded or seed.mission(mission_id)), *extra]:
        samples.setdefault(command.type, command)
    assert set(samples) == set(COMMAND_TYPES), "a command kind has no sample"
    return list(samples.values())


def report_samples(mission_id: str) -> list[StationVisitReport | IncidentReport]:
    """A station-visit report of team-1 and an incident report of team-2."""
    day = seed.ELECTION_DAY
    return [
        StationVisitReport(
            submission_id="s-1",
            mission_id=mission_id,
            station_id="PS-1",
            team_id="team-1",
            arrived_at=datetime(day.year, day.month, day.day, 8, tzinfo=ASTANA),
            departed_at=datetime(day.year, day.month, day.day, 9, tzinfo=ASTANA),
            checklists=[PhaseChecklist(phase=Phase.opening, answers={"opened_on_time": True})],
            findings=[
                Finding(
                    category=FindingCategory.accessibility,
                    assessment=Assessment.concern,
                    note="No ramp.",
                )
            ],
        ),
        IncidentReport(
            submission_id="i-1",
            mission_id=mission_id,
            station_id="PS-2",
            team_id="team-2",
            observed_at=datetime(day.year, day.month, day.day, 11, tzinfo=ASTANA),
            phase=Phase.voting,
            category=FindingCategory.campaigning,
            description="Leaflets handed out at the entrance.",
        ),
    ]
