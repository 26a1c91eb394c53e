"""Folding a stream costs the same per event however long the stream is.

A follow-up runs for years, and the mission's stream grows with every reminder. Work is
counted, not timed: the elements of containers ``fold`` copies (its own bookkeeping,
``Folding.copied``) and the memory it allocates for a while per event (tracemalloc's
peak), at 500 and at 10,000 events of the same long-lived mission. Both measures are
first shown to grow with the stream when an event copies the state's containers, as
``evolve`` from event to event must.
"""

from __future__ import annotations

import functools
import gc
import itertools
import statistics
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from cli import seed
from domain import Event, Mission, decide, evolve, fold, text_sha256
from domain import commands as c
from domain.decide import check_ins_missed, intake_progressed
from domain.evolve import Folding
from domain.values import (
    DeadlineKind,
    DeliveryPurpose,
    IntakeProgress,
    ObserverRole,
    Recipient,
    RecipientKind,
    StakeholderType,
)

SHORT, LONG = 500, 10_000
NOW = datetime(2021, 1, 5, 12, tzinfo=UTC)
STATES = ["AZ", "KG", "TR", "UZ", "HU", "TM", "MN", "AM"]
Step = c.Command | Callable[[Mission], list[Event]]
"""A command to decide, or what the workflow records on its own (a function of the state)."""


def _delivery(
    kind: DeadlineKind,
    member_state: str,
    step: int,
    message_id: str,
    cycle: int = 0,
    *,
    purpose: DeliveryPurpose = DeliveryPurpose.reminder,
    error: str | None = None,
) -> c.RecordDelivery:
    return c.RecordDelivery(
        kind=kind,
        member_state=member_state,
        purpose=purpose,
        step=step,
        cycle=cycle,
        message_id=message_id,
        delivered=error is None,
        error=error,
    )


def _steps(events: int) -> Iterator[Step]:
    """A mission that runs for years, scaled to ``events``: observers (one per 40 events,
    one in eight withdrawn), teams of two (then a team of two from each pair of teams),
    meetings (one per 25), station visits (one per 10, the last tenth at stations already
    visited), intake counts and missed check-ins, three batches of recommendations, one
    state that never acknowledges them; then follow-up cycles, for as long as the stream
    goes on, of evidence asked of nine states, three reminders each, a failed delivery, an
    escalation, evidence from seven (one of them twice), every recommendation rated, a
    reminder to the silent state, and every tenth cycle a review reopened."""
    yield seed.registration("long-lived").model_copy(update={"member_states": STATES})
    yield c.AppointHeadOfMission(name=seed.HEAD_OF_MISSION, title="Head of mission")
    yield c.RequestNominations(deadline=NOW + timedelta(days=1))
    for step, ms in enumerate(STATES * 2):
        yield _delivery(DeadlineKind.nomination, ms, step // len(STATES) + 1, f"n-{step}")
    yield c.DeclineNomination(member_state="MN", reason="No budget this year.")
    nominating = [ms for ms in STATES if ms != "MN"]
    observers = [f"o-{i}" for i in range(max(6, events // 40) // 2 * 2)]
    for i, oid in enumerate(observers):
        yield c.NominateObserver(
            observer_id=oid,
            member_state=nominating[i % len(nominating)],
            name=f"Observer {i}",
            role=ObserverRole.short_term_observer,
            code_of_conduct_signed=True,
            conflict_of_interest_declared=True,
        )
        yield c.AcceptObserver(observer_id=oid)
    teams = [f"team-{i}" for i in range(len(observers) // 2)]
    for i, tid in enumerate(teams):
        yield c.FormTeam(team_id=tid, observer_ids=observers[2 * i : 2 * i + 2])
    for i in range(0, len(observers) - 2, 4):  # one out of each of two teams
        teams.append(f"squad-{i}")
        yield c.FormTeam(team_id=teams[-1], observer_ids=observers[i + 1 : i + 3])
    for oid in observers[1::8]:  # each from a squad, whose other observer stays
        yield c.WithdrawObserver(observer_id=oid, reason="Recalled.")
    yield c.DeployMission(deployed_on=date(2021, 1, 6))
    for i in range(events // 25):
        yield c.RecordMeeting(
            meeting_id=f"meeting-{i}",
            stakeholder_type=StakeholderType.civil_society,
            stakeholder_name=f"Stakeholder {i}",
            held_on=date(2021, 1, 6 + i % 4),
            participants=[seed.HEAD_OF_MISSION, f"Participant {i}"],
            topics=["campaign"],
            summary=f"Meeting {i} on the campaign.",
        )
    yield c.OpenElectionDay()
    yield lambda state: check_ins_missed(state, teams[::7], due_at=NOW)
    visits = max(1, events // 10)
    stations = visits - visits // 10
    for i in range(visits):
        hour = 8 + i % 10
        yield seed.station_visit(5, team=1).model_copy(
            update={
                "visit_id": f"visit-{i}",
                "station_id": f"PS-{i % stations}",
                "team_id": teams[i % len(teams)],
                "arrived_at": datetime(2021, 1, 10, hour),
                "departed_at": datetime(2021, 1, 10, hour, 45),
            }
        )
        if i % 50 == 0:
            done = i + 1
            yield functools.partial(
                intake_progressed,
                progress=IntakeProgress(reports=done, visits=done, stations_visited=done),
            )
    yield c.CloseElectionDay()
    for n in (1, 2):
        text = f"Statement, draft {n}."
        yield c.DraftStatement(draft_id=f"statement-{n}", title="Preliminary", text=text)
    sha = text_sha256("Statement, draft 2.")
    yield c.ApproveStatement(
        draft_id="statement-2", text_sha256=sha, approved_by=seed.HEAD_OF_MISSION
    )
    yield c.PublishStatement(
        draft_id="statement-2", text_sha256=sha, published_on=date(2021, 1, 11)
    )
    recommendations = [
        r.model_copy(update={"id": f"R{i}"})
        for i, r in enumerate(seed.RECOMMENDATIONS * 4, start=1)
    ]
    for batch in range(0, len(recommendations), 4):
        yield c.IssueRecommendations(recommendations=recommendations[batch : batch + 4])
    recipients = [Recipient(kind=RecipientKind.member_state, name=ms) for ms in STATES]
    yield c.SendRecommendations(
        recipients=recipients, sent_on=date(2021, 1, 15), acknowledge_by=NOW + timedelta(days=30)
    )
    for recipient in recipients[:-1]:
        yield _delivery(DeadlineKind.acknowledgement, recipient.name, 1, f"a-{recipient.name}")
        yield c.AcknowledgeRecommendations(recipient=recipient, acknowledged_on=date(2021, 1, 18))
    silent = recipients[-1].name
    asked = [*STATES, seed.HOST]
    for cycle in itertools.count(1):
        deadline = NOW + timedelta(days=180 * cycle)
        yield c.RequestEvidence(cycle=cycle, member_states=asked, deadline=deadline)
        for step in (1, 2, 3):
            for ms in asked:
                yield _delivery(DeadlineKind.evidence, ms, step, f"e-{cycle}-{step}-{ms}", cycle)
        yield _delivery(DeadlineKind.evidence, asked[0], 4, f"e-{cycle}-f", cycle, error="Full.")
        yield _delivery(DeadlineKind.acknowledgement, silent, 1 + cycle, f"a-{silent}-{cycle}")
        escalation = DeliveryPurpose.escalation
        yield _delivery(
            DeadlineKind.evidence, asked[1], 4, f"e-{cycle}-x", cycle, purpose=escalation
        )
        yield from seed.cycle_answers(cycle, [*asked[2:], asked[2]], recommendations)
        if cycle % 10 == 0:
            yield c.ReopenReview(new_mission_id=f"next-{cycle}", reason="A new election.")


@functools.cache
def long_mission(events: int) -> tuple[Event, ...]:
    """The first ``events`` events of the long-lived mission of ``_steps``, every command
    decided on the state so far (none refused)."""
    state = Mission()
    recorded: list[Event] = []
    for step in _steps(events):
        new = decide(state, step, now=NOW) if isinstance(step, c.CommandBase) else step(state)
        state = fold(new, state)
        recorded += new
        if len(recorded) >= events:
            return tuple(recorded[:events])
    raise AssertionError("the follow-up cycles never end")


# -- what fold copies: its own bookkeeping ------------------------------------------------------


def _copied_by_fold(events: Iterable[Event], state: Mission | None = None) -> list[int]:
    """Elements of containers copied at each event when ``events`` are folded together."""
    folding = Folding(state or Mission())
    copied = []
    for event in events:
        before = folding.copied
        folding.apply(event)
        copied.append(folding.copied - before)
    assert folding.state == fold(events, state)
    return copied


def _copied_by_evolve(events: Iterable[Event]) -> list[int]:
    """Elements of containers copied at each event when each is evolved into a new state
    (what ``evolve`` does: a ``Folding`` per event)."""
    state = Mission()
    copied = []
    for event in events:
        folding = Folding(state)
        folding.apply(event)
        copied.append(folding.copied)
        state = folding.state
    return copied


def _elements(state: Mission) -> int:
    """Elements in every container of ``state`` that an event can change in place."""
    values = state.__dict__
    return (
        sum(len(v) for v in values.values() if isinstance(v, dict | list))
        + sum(len(t.message_ids) for t in state.reminders.values())
        + sum(len(cycle.submitted) for cycle in state.evidence_cycles.values())
        + sum(
            len(evidence)
            for cycle in state.evidence_cycles.values()
            for evidence in cycle.submitted.values()
        )
        + sum(len(r) for r in state.ratings.values())
        + sum(len(t.observer_ids) for t in state.teams.values())
    )


def test_fold_copies_no_more_per_event_on_a_longer_stream() -> None:
    """Folding 10,000 events of a long-lived mission copies no more per event than
    folding 500: nothing but a team's observers (when some of them move to another team),
    at most a team's size at any event. Evolving event by event, the same count grows
    with the stream, as each new state copies the containers its event changes."""
    short, long = _copied_by_fold(long_mission(SHORT)), _copied_by_fold(long_mission(LONG))
    assert max(long) <= max(short) <= 2
    assert statistics.fmean(long) <= 1.3 * statistics.fmean(short) + 2 / SHORT

    step_short, step_long = (
        _copied_by_evolve(long_mission(SHORT)),
        _copied_by_evolve(long_mission(LONG)),
    )
    assert statistics.fmean(step_long) > 10 * statistics.fmean(step_short)


def test_fold_from_a_state_copies_its_containers_once() -> None:
    """Folding on from a state copies each of its containers at most once, however many
    events change them, and leaves the state as it was."""
    events = long_mission(LONG)
    half = fold(events[: LONG // 2])
    before = half.model_dump()
    copied = _copied_by_fold(events[LONG // 2 :], half)
    assert 0 < sum(copied) <= _elements(half)
    assert half.model_dump() == before
    assert fold(events[LONG // 2 :], half) == fold(events)


# -- what fold allocates: tracemalloc --------------------------------------------------------


def _transient_bytes(run: Callable[[Iterable[Event]], object], events: tuple[Event, ...]) -> float:
    """Mean over ``events`` of the memory ``run`` allocated for a while as it took each
    event in: tracemalloc's peak while the event was folded, over what was allocated when
    it began. Copying a container shows (its source is alive while it is copied)."""
    peaks = [0] * len(events)

    def measured() -> Iterator[Event]:
        for i, event in enumerate(events):
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            yield event
            peaks[i] = tracemalloc.get_traced_memory()[1] - start  # run asked for the next

    run(events[:SHORT])  # pydantic's and the interpreter's caches: filled before measuring
    gc.disable()
    tracemalloc.start()
    try:
        run(measured())
    finally:
        tracemalloc.stop()
        gc.enable()
    return statistics.fmean(peaks)


def _evolve_each(events: Iterable[Event]) -> Mission:
    state = Mission()
    for event in events:
        state = evolve(state, event)
    return state


def test_fold_allocates_no_more_per_event_on_a_longer_stream() -> None:
    """What ``fold`` allocates per event, whatever its bookkeeping says: at 10,000 events
    within 1.3 times what it is at 500. Evolving event by event, which copies the
    containers each event changes, allocates several times more per event at 10,000."""
    short, long = long_mission(SHORT), long_mission(LONG)
    folded = _transient_bytes(fold, short), _transient_bytes(fold, long)
    assert folded[1] <= 1.3 * folded[0], folded
    evolved = _transient_bytes(_evolve_each, short), _transient_bytes(_evolve_each, long)
    assert evolved[1] > 2 * evolved[0], evolved
