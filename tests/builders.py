"""Small builders of domain commands shared by the domain tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime

from domain import Mission, decide, fold
from domain import commands as c
from domain.values import ObserverRole, Recipient, RecipientKind, StakeholderType
from eventstore.models import EventMetadata, NewEvent
from eventstore.store import EventStore


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
