"""Small builders of domain commands shared by the domain tests."""

from __future__ import annotations

from datetime import date

from domain import commands as c
from domain.values import ObserverRole, Recipient, RecipientKind, StakeholderType


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
