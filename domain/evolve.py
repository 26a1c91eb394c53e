"""``evolve``: fold one recorded event into the mission's state.

Never refuses: an event is a fact. Each branch returns a new state (models are frozen),
with ``version`` advanced by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from domain import events as ev
from domain.events import Event
from domain.host_time import UTC_ZONE, country_zones, implied_zone
from domain.state import (
    Approval,
    Delivery,
    EvidenceCycle,
    HeadOfMission,
    Meeting,
    Mission,
    Observer,
    ObserverStatus,
    Publication,
    RatingEntry,
    ReminderTrack,
    Report,
    StatementDraft,
    StationVisit,
    Team,
    track_key,
)
from domain.values import Stage


def evolve(state: Mission, event: Event) -> Mission:
    changes = _changes(state, event)
    changes["version"] = state.version + 1
    return state.model_copy(update=changes)


def fold(events: Iterable[Event], state: Mission | None = None) -> Mission:
    """The state after ``events``, starting from ``state`` (or from nothing)."""
    current = state or Mission()
    for event in events:
        current = evolve(current, event)
    return current


def _fields(event: Any, *exclude: str) -> dict[str, Any]:
    return {
        name: getattr(event, name)
        for name in type(event).model_fields
        if name not in {"type", "schema_version", *exclude}
    }


def _changes(state: Mission, event: Event) -> dict[str, Any]:
    match event:
        case ev.InvitationRegistered():
            zone, note = registered_zone(event)
            return {
                **_fields(event),
                "stage": Stage.invited,
                "time_zone": zone,
                "time_zone_note": note,
            }
        case ev.NeedsAssessmentRecorded():
            return {"needs_assessment_on": event.conducted_on}
        case ev.HeadOfMissionAppointed():
            return {
                "head_of_mission": HeadOfMission(**_fields(event)),
                "stage": _advance(state, Stage.invited, Stage.forming),
            }
        case ev.ObserverNominated():
            observer = Observer(**_fields(event))
            return {"observers": {**state.observers, observer.observer_id: observer}}
        case ev.ObserverAccepted():
            return _observer_status(state, event.observer_id, ObserverStatus.accepted)
        case ev.ObserverWithdrawn():
            return _observer_status(
                state, event.observer_id, ObserverStatus.withdrawn, withdrawal_reason=event.reason
            )
        case ev.TeamFormed():
            moved = set(event.observer_ids)
            teams = {
                tid: team.model_copy(
                    update={"observer_ids": [o for o in team.observer_ids if o not in moved]}
                )
                for tid, team in state.teams.items()
            }
            teams[event.team_id] = Team(**_fields(event))
            return {"teams": teams}
        case ev.MissionDeployed():
            return {"deployed_on": event.deployed_on, "stage": Stage.pre_election}
        case ev.MeetingRecorded():
            meeting = Meeting(**_fields(event))
            return {"meetings": {**state.meetings, meeting.meeting_id: meeting}}
        case ev.InterimReportPublished():
            return {"interim_report": Report(**_fields(event))}
        case ev.ElectionDayOpened():
            return {
                "stage": Stage.election_day,
                "polls_open_at": event.polls_open_at,
                "check_in_grace_seconds": event.check_in_grace_seconds,
                "check_ins_watched": event.check_ins_watched,
            }
        case ev.IntakeProgressed():
            return {"intake": event.progress}
        case ev.CheckInMissed():
            return {"missed_check_ins": {**state.missed_check_ins, event.team_id: event.due_at}}
        case ev.CheckInCleared():
            return {
                "missed_check_ins": {
                    k: v for k, v in state.missed_check_ins.items() if k != event.team_id
                }
            }
        case ev.StationVisitRecorded():
            visit = StationVisit(**_fields(event))
            return {"visits": {**state.visits, visit.visit_id: visit}}
        case ev.StationReportsConflicted():
            return {
                "conflicting_stations": {
                    **state.conflicting_stations,
                    event.station_id: list(event.visit_ids),
                }
            }
        case ev.ElectionDayClosed():
            return {"stage": Stage.statement}
        case ev.StatementDrafted():
            draft = StatementDraft(**_fields(event, "coverage"))
            return {"drafts": {**state.drafts, draft.draft_id: draft}}
        case ev.StatementApproved():
            return {"approval": Approval(**_fields(event))}
        case ev.StatementPublished():
            return {"publication": Publication(**_fields(event))}
        case ev.FinalReportPublished():
            return {"final_report": Report(**_fields(event))}
        case ev.RecommendationsIssued():
            issued = {r.id: r for r in event.recommendations}
            return {
                "recommendations": {**state.recommendations, **issued},
                "stage": _advance(state, Stage.statement, Stage.follow_up),
            }
        case ev.RecommendationsSent():
            sent = {r.key: Delivery(recipient=r, sent_on=event.sent_on) for r in event.recipients}
            return {
                "deliveries": {**state.deliveries, **sent},
                "acknowledge_by": event.acknowledge_by or state.acknowledge_by,
                "acknowledgement_ladder": event.ladder or state.acknowledgement_ladder,
                "acknowledgement_reminders": event.reminders
                if event.acknowledge_by
                else state.acknowledgement_reminders,
            }
        case ev.RecommendationsAcknowledged():
            key = event.recipient.key
            delivery = state.deliveries[key].model_copy(
                update={"acknowledged_on": event.acknowledged_on}
            )
            return {"deliveries": {**state.deliveries, key: delivery}}
        case ev.NominationsRequested():
            return {
                "nomination_deadline": event.deadline,
                "nomination_ladder": event.ladder,
                "nomination_reminders": event.reminders,
            }
        case ev.NominationDeclined():
            return {"declined": {**state.declined, event.member_state: event.reason}}
        case ev.ReminderSent() | ev.DeliveryFailed() | ev.DeadlineEscalated():
            return {"reminders": _track(state, event)}
        case ev.EvidenceRequested():
            cycle = EvidenceCycle(
                cycle=event.cycle,
                member_states=list(event.member_states),
                deadline=event.deadline,
                ladder=event.ladder,
                reminders=event.reminders,
            )
            return {"evidence_cycles": {**state.evidence_cycles, event.cycle: cycle}}
        case ev.EvidenceSubmitted():
            cycle = state.evidence_cycles[event.cycle]
            earlier = cycle.submitted.get(event.member_state, [])
            updated = cycle.model_copy(
                update={
                    "submitted": {
                        **cycle.submitted,
                        event.member_state: [*earlier, *event.evidence],
                    }
                }
            )
            return {"evidence_cycles": {**state.evidence_cycles, event.cycle: updated}}
        case ev.ImplementationRated():
            entry = RatingEntry(rating=event.rating, rated_on=event.rated_on, basis=event.basis)
            kept = state.ratings.get(event.recommendation_id, [])
            return {"ratings": {**state.ratings, event.recommendation_id: [*kept, entry]}}
        case ev.ReviewReopened():
            return {"reopened_for": [*state.reopened_for, event.new_mission_id]}
        case ev.FollowUpEnded():
            return {"follow_up_ended_at": event.ended_at}
        case ev.ElectionPostponed():
            assert state.election is not None
            shift = event.new_date - event.previous_date
            return {
                "nomination_deadline": (
                    state.nomination_deadline + shift if state.nomination_deadline else None
                ),
                "election": state.election.model_copy(update={"date": event.new_date}),
                "mission_window": event.mission_window,
                "postponements": state.postponements + 1,
            }
        case ev.MissionClosed():
            return {"stage": Stage.closed, "closed_at": event.closed_at}
        case ev.MissionCancelled():
            return {
                "stage": Stage.cancelled,
                "cancelled_at": event.cancelled_at,
                "cancellation_reason": event.reason,
            }
    raise TypeError(f"evolve has no branch for {type(event).__name__}")


def registered_zone(event: ev.InvitationRegistered) -> tuple[str, str | None]:
    """The mission's time zone and, for a record made before missions named one, a note
    on how it was inferred: the zone the host implies (its only one), or UTC where the
    host has several zones (its election-day times were then judged as written)."""
    if event.time_zone is not None:
        return event.time_zone, None
    implied = implied_zone(event.host_country)
    if implied is not None:
        return implied, None
    zones = country_zones(event.host_country)
    return UTC_ZONE, (
        f"registered before missions named their time zone; {event.host_country} has "
        f"{len(zones) or 'no'} zones in the time-zone database"
        f"{' (' + ', '.join(zones) + ')' if zones else ''}, so its times are read in UTC"
    )


def _observer_status(
    state: Mission, observer_id: str, status: ObserverStatus, **extra: Any
) -> dict[str, Any]:
    observer = state.observers[observer_id].model_copy(update={"status": status, **extra})
    return {"observers": {**state.observers, observer_id: observer}}


def _advance(state: Mission, source: Stage, target: Stage) -> Stage | None:
    """``target`` when the mission is in ``source``; otherwise the stage is unchanged."""
    return target if state.stage is source else state.stage


def _track(
    state: Mission, event: ev.ReminderSent | ev.DeliveryFailed | ev.DeadlineEscalated
) -> dict[str, ReminderTrack]:
    key = track_key(event.kind, event.member_state, event.cycle)
    track = state.reminders.get(key) or ReminderTrack(
        kind=event.kind, member_state=event.member_state, cycle=event.cycle
    )
    match event:
        case ev.ReminderSent():
            track = track.model_copy(
                update={
                    "sent": track.sent + 1,
                    "last_step": event.step,
                    "last_sent_message": event.message_id,
                    "message_ids": [*track.message_ids, event.message_id],
                }
            )
        case ev.DeliveryFailed():
            track = track.model_copy(update={"failures": track.failures + 1})
        case ev.DeadlineEscalated():
            track = track.model_copy(
                update={
                    "escalated": True,
                    "message_ids": [*track.message_ids, event.message_id],
                }
            )
    return {**state.reminders, key: track}
