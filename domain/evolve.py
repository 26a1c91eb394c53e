"""``evolve``: fold one recorded event into the mission's state; ``fold``: many, in order.

Never refuses: an event is a fact. ``evolve`` returns a new state (models are frozen),
with ``version`` advanced by one, and leaves the state it was given as it was.

Both work through a ``Folding``: its own shallow copy of the state, whose containers (the
dicts of observers, visits, reminders..., the lists of a recommendation's ratings, of a
reminder track's messages, of a state's evidence in a cycle) it copies the first time an
event changes them and changes in place from then on. So ``evolve`` copies what its one
event changes, as a new state that shares nothing changeable with the old one must, and
``fold`` copies each container at most once however many events it folds: its work per
event does not grow with the stream, which a follow-up running for years makes long.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

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
    """``state`` with ``event`` folded in: a new state whose ``version`` is one more.

    ``state`` is left as it was; the new state shares with it only what no later
    ``evolve`` or ``fold`` changes in place (each copies a container before it changes
    one it did not make). Work: the containers the event changes are copied, so
    O(their sizes); ``fold`` when there are many events. ``TypeError`` for an event type
    it has no branch for; ``KeyError`` for an event about something the state lacks (an
    acknowledgement of recommendations never sent, evidence for a cycle never opened)."""
    folding = Folding(state)
    folding.apply(event)
    return folding.state


def fold(events: Iterable[Event], state: Mission | None = None) -> Mission:
    """The state after ``events``, in order, starting from ``state`` (or from nothing).

    Equal to ``evolve`` applied event by event, and ``state`` is likewise left as it was;
    but each container is copied at most once (the first time an event changes it), so
    the work per event is bounded however long the stream: O(len(events)) plus the
    sizes of the containers of ``state`` that the events change. ``state`` itself when
    ``events`` is empty. Raises as ``evolve`` does."""
    folding: Folding | None = None
    for event in events:
        if folding is None:
            folding = Folding(state or Mission())
        folding.apply(event)
    if folding is None:
        return state or Mission()
    return folding.state


_C = TypeVar("_C", dict[Any, Any], list[Any])


class Folding:
    """A mission's state being folded, one event at a time.

    ``Folding(state)`` starts from ``state`` (a shallow copy: ``state`` is never
    changed); ``apply(event)`` folds one event in; ``state`` is the state so far. A
    container the state holds is copied the first time an event changes it (counted in
    ``copied``) and changed in place after that, so ``state`` is the folding's own and
    changes with every ``apply``: take it once done, and apply nothing more once it has
    been handed on (``evolve`` and ``fold`` hand it on as their result).

    ``copied`` counts the elements of containers copied so far (to take a container
    over, or to rebuild a team without the observers moved out of it): the work that
    grows with a stream's length when containers are copied at every event.
    """

    __slots__ = ("_mine", "_placed", "_set", "_state", "_values", "copied")

    def __init__(self, state: Mission) -> None:
        self._state = state.model_copy()
        self._values: dict[str, Any] = self._state.__dict__
        self._set: set[str] = self._state.__pydantic_fields_set__
        self._mine: dict[int, object] = {}
        """Containers this folding made, by id (holding them keeps their ids unique)."""
        self._placed: dict[str, list[str]] | None = None
        """Observer id -> teams that may hold the observer, built at the first team."""
        self.copied = 0

    @property
    def state(self) -> Mission:
        """The state after the events applied so far (see the class's caveat)."""
        return self._state

    def apply(self, event: Event) -> None:
        """Fold ``event`` in. Raises as ``evolve`` does (the state is then unusable)."""
        self._apply(event)
        self._put(version=self._values["version"] + 1)

    # -- bookkeeping -----------------------------------------------------------------------

    def _put(self, **values: Any) -> None:
        self._values.update(values)
        self._set.update(values)

    def _own(self, container: _C) -> _C:
        """``container`` if this folding made it; else a copy that it makes its own."""
        if id(container) in self._mine:
            return container
        self.copied += len(container)
        return self._new(container.copy())

    def _new(self, container: _C) -> _C:
        self._mine[id(container)] = container
        return container

    def _field(self, name: str) -> Any:
        """The state's container ``name``, this folding's own from now on."""
        container = self._own(self._values[name])
        self._put(**{name: container})
        return container

    # -- events ----------------------------------------------------------------------------

    def _apply(self, event: Event) -> None:
        state = self._state
        match event:
            case ev.InvitationRegistered():
                zone, note = registered_zone(event)
                fields = _fields(event) | {"time_zone": zone, "time_zone_note": note}
                self._put(**fields, stage=Stage.invited)
            case ev.NeedsAssessmentRecorded():
                self._put(needs_assessment_on=event.conducted_on)
            case ev.HeadOfMissionAppointed():
                self._put(
                    head_of_mission=HeadOfMission(**_fields(event)),
                    stage=_advance(state, Stage.invited, Stage.forming),
                )
            case ev.ObserverNominated():
                self._field("observers")[event.observer_id] = Observer(**_fields(event))
            case ev.ObserverAccepted():
                self._observer_status(event.observer_id, ObserverStatus.accepted)
            case ev.ObserverWithdrawn():
                self._observer_status(
                    event.observer_id, ObserverStatus.withdrawn, withdrawal_reason=event.reason
                )
            case ev.TeamFormed():
                self._form_team(event)
            case ev.MissionDeployed():
                self._put(deployed_on=event.deployed_on, stage=Stage.pre_election)
            case ev.MeetingRecorded():
                self._field("meetings")[event.meeting_id] = Meeting(**_fields(event))
            case ev.InterimReportPublished():
                self._put(interim_report=Report(**_fields(event)))
            case ev.ElectionDayOpened():
                self._put(
                    stage=Stage.election_day,
                    polls_open_at=event.polls_open_at,
                    check_in_grace_seconds=event.check_in_grace_seconds,
                    check_ins_watched=event.check_ins_watched,
                )
            case ev.IntakeProgressed():
                self._put(intake=event.progress)
            case ev.CheckInMissed():
                self._field("missed_check_ins")[event.team_id] = event.due_at
            case ev.CheckInCleared():
                self._field("missed_check_ins").pop(event.team_id, None)
            case ev.StationVisitRecorded():
                self._field("visits")[event.visit_id] = StationVisit(**_fields(event))
            case ev.StationReportsConflicted():
                self._field("conflicting_stations")[event.station_id] = list(event.visit_ids)
            case ev.ElectionDayClosed():
                self._put(stage=Stage.statement)
            case ev.StatementDrafted():
                self._field("drafts")[event.draft_id] = StatementDraft(**_fields(event, "coverage"))
            case ev.StatementApproved():
                self._put(approval=Approval(**_fields(event)))
            case ev.StatementPublished():
                self._put(publication=Publication(**_fields(event)))
            case ev.FinalReportPublished():
                self._put(final_report=Report(**_fields(event)))
            case ev.RecommendationsIssued():
                self._field("recommendations").update((r.id, r) for r in event.recommendations)
                self._put(stage=_advance(state, Stage.statement, Stage.follow_up))
            case ev.RecommendationsSent():
                self._field("deliveries").update(
                    (r.key, Delivery(recipient=r, sent_on=event.sent_on)) for r in event.recipients
                )
                self._put(
                    acknowledge_by=event.acknowledge_by or state.acknowledge_by,
                    acknowledgement_ladder=event.ladder or state.acknowledgement_ladder,
                    acknowledgement_reminders=(
                        event.reminders if event.acknowledge_by else state.acknowledgement_reminders
                    ),
                )
            case ev.RecommendationsAcknowledged():
                key = event.recipient.key
                deliveries = self._field("deliveries")
                deliveries[key] = deliveries[key].model_copy(
                    update={"acknowledged_on": event.acknowledged_on}
                )
            case ev.NominationsRequested():
                self._put(
                    nomination_deadline=event.deadline,
                    nomination_ladder=event.ladder,
                    nomination_reminders=event.reminders,
                )
            case ev.NominationDeclined():
                self._field("declined")[event.member_state] = event.reason
            case ev.ReminderSent() | ev.DeliveryFailed() | ev.DeadlineEscalated():
                self._track(event)
            case ev.EvidenceRequested():
                self._field("evidence_cycles")[event.cycle] = EvidenceCycle(
                    cycle=event.cycle,
                    member_states=list(event.member_states),
                    deadline=event.deadline,
                    ladder=event.ladder,
                    reminders=event.reminders,
                )
            case ev.EvidenceSubmitted():
                self._submit(event)
            case ev.ImplementationRated():
                entry = RatingEntry(rating=event.rating, rated_on=event.rated_on, basis=event.basis)
                ratings = self._field("ratings")
                kept = ratings.get(event.recommendation_id)
                entries = self._new([]) if kept is None else self._own(kept)
                entries.append(entry)
                ratings[event.recommendation_id] = entries
            case ev.ReviewReopened():
                self._field("reopened_for").append(event.new_mission_id)
            case ev.FollowUpEnded():
                self._put(follow_up_ended_at=event.ended_at)
            case ev.ElectionPostponed():
                assert state.election is not None
                shift = event.new_date - event.previous_date
                self._put(
                    nomination_deadline=(
                        state.nomination_deadline + shift if state.nomination_deadline else None
                    ),
                    election=state.election.model_copy(update={"date": event.new_date}),
                    mission_window=event.mission_window,
                    postponements=state.postponements + 1,
                )
            case ev.MissionClosed():
                self._put(stage=Stage.closed, closed_at=event.closed_at)
            case ev.MissionCancelled():
                self._put(
                    stage=Stage.cancelled,
                    cancelled_at=event.cancelled_at,
                    cancellation_reason=event.reason,
                )
            case _:
                raise TypeError(f"evolve has no branch for {type(event).__name__}")

    def _observer_status(self, observer_id: str, status: ObserverStatus, **extra: Any) -> None:
        observers = self._field("observers")
        observers[observer_id] = observers[observer_id].model_copy(
            update={"status": status, **extra}
        )

    def _form_team(self, event: ev.TeamFormed) -> None:
        """The team, and the observers it takes out of the teams they were in: only those
        teams are rebuilt (found through ``_placed``, not by reading every team)."""
        teams = self._field("teams")
        placed = self._placements()
        moved = set(event.observer_ids)
        holding = dict.fromkeys(tid for oid in event.observer_ids for tid in placed.get(oid, ()))
        for tid in holding:
            team = teams.get(tid)
            if team is not None and not moved.isdisjoint(team.observer_ids):
                kept = [oid for oid in team.observer_ids if oid not in moved]
                self.copied += len(kept)
                teams[tid] = team.model_copy(update={"observer_ids": kept})
        teams[event.team_id] = Team(**_fields(event))
        for oid in moved:
            placed[oid] = [event.team_id]

    def _placements(self) -> dict[str, list[str]]:
        if self._placed is None:
            placed: dict[str, list[str]] = {}
            for tid, team in self._values["teams"].items():
                for oid in team.observer_ids:
                    placed.setdefault(oid, []).append(tid)
            self._placed = placed
        return self._placed

    def _track(self, event: ev.ReminderSent | ev.DeliveryFailed | ev.DeadlineEscalated) -> None:
        key = track_key(event.kind, event.member_state, event.cycle)
        reminders = self._field("reminders")
        track = reminders.get(key) or ReminderTrack(
            kind=event.kind, member_state=event.member_state, cycle=event.cycle
        )
        match event:
            case ev.ReminderSent():
                messages = self._own(track.message_ids)
                messages.append(event.message_id)
                track = track.model_copy(
                    update={
                        "sent": track.sent + 1,
                        "last_step": event.step,
                        "last_sent_message": event.message_id,
                        "message_ids": messages,
                    }
                )
            case ev.DeliveryFailed():
                track = track.model_copy(update={"failures": track.failures + 1})
            case ev.DeadlineEscalated():
                messages = self._own(track.message_ids)
                messages.append(event.message_id)
                track = track.model_copy(update={"escalated": True, "message_ids": messages})
        reminders[key] = track

    def _submit(self, event: ev.EvidenceSubmitted) -> None:
        cycles = self._field("evidence_cycles")
        cycle = cycles[event.cycle]
        submitted = self._own(cycle.submitted)
        earlier = submitted.get(event.member_state)
        evidence = self._new([]) if earlier is None else self._own(earlier)
        evidence.extend(event.evidence)
        submitted[event.member_state] = evidence
        if submitted is not cycle.submitted:
            cycles[event.cycle] = cycle.model_copy(update={"submitted": submitted})


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


def _fields(event: Any, *exclude: str) -> dict[str, Any]:
    return {
        name: getattr(event, name)
        for name in type(event).model_fields
        if name not in {"type", "schema_version", *exclude}
    }


def _advance(state: Mission, source: Stage, target: Stage) -> Stage | None:
    """``target`` when the mission is in ``source``; otherwise the stage is unchanged."""
    return target if state.stage is source else state.stage
