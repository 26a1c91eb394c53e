"""Property tests of the pure domain: random histories keep the mission's invariants.

Histories interleave the seed mission's commands (in order) with commands drawn from a pool
of valid, mutated and invalid variants. Every command is either refused with a
``DomainError`` (nothing changes) or yields events; after every step the state obeys
``check_invariants`` and equals the fold of every event so far.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from builders import meeting, member, nominate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import seed
from domain import (
    COMMAND_ADAPTER,
    EVENT_ADAPTER,
    Command,
    DomainError,
    Event,
    Mission,
    Profile,
    Stage,
    decide,
    evolve,
    fold,
    text_sha256,
)
from domain import commands as c
from domain.decide import COUNTING_GRACE
from domain.state import ObserverStatus
from domain.values import (
    Addressee,
    Assessment,
    DateWindow,
    DeadlineKind,
    DeliveryPurpose,
    Election,
    ElectionType,
    EvidenceItem,
    Finding,
    FindingCategory,
    ObserverRole,
    Phase,
    PhaseChecklist,
    Priority,
    Rating,
    Recipient,
    RecipientKind,
    Recommendation,
    StakeholderType,
)

NOW = datetime(2021, 1, 5, 12, 0, tzinfo=UTC)
MISSION_ID = "tc-kz-2021"
SEED: list[Command] = seed.mission(MISSION_ID)
E = seed.ELECTION_DAY
HOM = seed.HEAD_OF_MISSION
SEED_DRAFT = next(cmd for cmd in SEED if isinstance(cmd, c.DraftStatement))
SHA = text_sha256(SEED_DRAFT.text)
OTHER_DRAFT = c.DraftStatement(draft_id="statement-2", title="Alternative", text="Other text.")
OTHER_SHA = text_sha256(OTHER_DRAFT.text)
_TERMINAL = (Stage.closed, Stage.cancelled)
_AFTER_THE_END = {
    "record_delivery",
    "acknowledge_recommendations",
    "request_evidence",
    "submit_evidence",
    "rate_implementation",
    "reopen_review",
    "end_follow_up",
}


# -- the pool of commands ---------------------------------------------------------------------


def _visit(
    visit_id: str,
    arrived_at: datetime,
    departed_at: datetime,
    *,
    team: str = "team-1",
    station: str = "NS-201",
    phases: tuple[Phase, ...] = (Phase.voting,),
) -> c.RecordStationVisit:
    return c.RecordStationVisit(
        visit_id=visit_id,
        station_id=station,
        locality=seed.LOCALITY,
        team_id=team,
        arrived_at=arrived_at,
        departed_at=departed_at,
        checklists=[PhaseChecklist(phase=p, answers={"observers_admitted": True}) for p in phases],
    )


_REGISTRATION = seed.registration(MISSION_ID)
LIMITED_DRAFT = c.DraftStatement(draft_id="statement-1", title="Preliminary", text="Findings.")
LIMITED_SHA = text_sha256(LIMITED_DRAFT.text)
LIMITED: list[Command] = [
    _REGISTRATION.model_copy(update={"profile": Profile.limited}),
    c.RecordNeedsAssessment(conducted_on=date(2020, 11, 20), summary="A LEOM is needed."),
    c.AppointHeadOfMission(name=HOM, title="Head of mission"),
    nominate("az-lto", role=ObserverRole.long_term_observer),
    nominate("tr-core", "TR", role=ObserverRole.core_team),
    c.AcceptObserver(observer_id="az-lto"),
    c.AcceptObserver(observer_id="tr-core"),
    c.FormTeam(team_id="team-lto", observer_ids=["az-lto", "tr-core"]),
    c.DeployMission(deployed_on=date(2021, 1, 6)),
    meeting("media", date(2021, 1, 7)),
    c.PublishInterimReport(report_id="interim-1", published_on=date(2021, 1, 7), summary="Calm."),
    c.OpenElectionDay(),
    seed.station_visit(1, team=1).model_copy(update={"team_id": "team-lto"}),
    seed.station_visit(14, team=1).model_copy(update={"team_id": "team-lto"}),
    c.CloseElectionDay(),
    LIMITED_DRAFT,
    c.ApproveStatement(draft_id="statement-1", text_sha256=LIMITED_SHA, approved_by=HOM),
    c.PublishStatement(
        draft_id="statement-1", text_sha256=LIMITED_SHA, published_on=date(2021, 1, 11)
    ),
    c.PublishFinalReport(report_id="final-1", published_on=date(2021, 3, 8), summary="Final."),
    c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS),
    c.SendRecommendations(recipients=seed.RECIPIENTS, sent_on=date(2021, 3, 10)),
    c.AcknowledgeRecommendations(recipient=member("TR"), acknowledged_on=date(2021, 3, 12)),
    c.CloseMission(),
]
SKELETONS = [SEED, LIMITED]


def _one_of_each_type(*skeletons: list[Command]) -> list[Command]:
    """Per skeleton, its first command of each type: replayed out of order or twice."""
    picked: list[Command] = []
    for skeleton in skeletons:
        seen: set[str] = set()
        for command in skeleton:
            if command.type not in seen:
                seen.add(command.type)
                picked.append(command)
    return picked


POOL: list[Command] = [
    *_one_of_each_type(SEED, LIMITED),
    # invitation variants
    _REGISTRATION.model_copy(update={"member_states": ["AZ", "KZ"]}),
    _REGISTRATION.model_copy(
        update={"mission_window": DateWindow(start=date(2021, 1, 1), end=date(2021, 1, 8))}
    ),
    _REGISTRATION.model_copy(update={"role_quotas": {ObserverRole.short_term_observer: 3}}),
    seed.registration("another-mission"),
    c.RecordNeedsAssessment(conducted_on=date(2020, 12, 1), summary="Assessed."),
    c.AppointHeadOfMission(name="Deputy Head", title="Acting head"),
    # formation variants
    nominate("kz-1", "KZ"),
    nominate("ru-1", "RU"),
    nominate("az-lto", role=ObserverRole.long_term_observer),
    nominate("tr-core", "TR", role=ObserverRole.core_team),
    nominate("uz-unsigned", "UZ", coc=False, coi=False),
    c.AcceptObserver(observer_id="az-lto"),
    c.AcceptObserver(observer_id="tr-core"),
    c.AcceptObserver(observer_id="uz-unsigned"),
    c.AcceptObserver(observer_id="ghost"),
    c.WithdrawObserver(observer_id="az-cec", reason="ill"),
    c.WithdrawObserver(observer_id="kg-diplomat", reason="recalled"),
    c.WithdrawObserver(observer_id="ghost", reason="never existed"),
    c.FormTeam(team_id="team-lto", observer_ids=["az-lto", "tr-core"]),
    c.FormTeam(team_id="team-5", observer_ids=["az-cec", "uz-diplomat"]),
    c.FormTeam(team_id="team-ghost", observer_ids=["ghost"]),
    c.FormTeam(team_id="team-1", observer_ids=["tr-cec"]),
    c.DeployMission(deployed_on=date(2021, 1, 5)),
    # pre-election variants
    meeting("early", date(2021, 1, 5)),
    meeting("on-e", E),
    meeting("new-window", date(2021, 1, 14)),
    meeting("mid", date(2021, 1, 9)),
    c.PublishInterimReport(report_id="interim-1", published_on=date(2021, 1, 7), summary="Calm."),
    c.OpenElectionDay(),
    c.PostponeElection(new_date=date(2021, 1, 17), reason="pandemic"),
    c.PostponeElection(new_date=E, reason="no change"),
    c.PostponeElection(new_date=date(2021, 1, 3), reason="earlier"),
    # election-day variants
    seed.the_2020_slip(),
    seed.station_visit(2, team=1, on=date(2021, 1, 9)).model_copy(update={"visit_id": "eve"}),
    seed.station_visit(1, team=2).model_copy(update={"visit_id": "visit-conflict"}),
    seed.station_visit(1, team=1).model_copy(update={"visit_id": "visit-again"}),
    seed.station_visit(1, team=9).model_copy(update={"visit_id": "visit-unknown-team"}),
    _visit("inverted", datetime(2021, 1, 10, 11), datetime(2021, 1, 10, 10)),
    _visit(
        "late-count",
        datetime(2021, 1, 10, 20),
        datetime(2021, 1, 11, 2, 30),
        team="team-2",
        phases=(Phase.voting, Phase.counting),
    ),
    _visit(
        "after-noon",
        datetime(2021, 1, 10, 20),
        datetime(2021, 1, 11, 12, 30),
        phases=(Phase.counting,),
    ),
    _visit(
        "tabulation",
        datetime(2021, 1, 11, 1),
        datetime(2021, 1, 11, 4),
        team="team-3",
        phases=(Phase.counting, Phase.tabulation),
    ),
    _visit("voting-late", datetime(2021, 1, 11, 1), datetime(2021, 1, 11, 2)),
    _visit("postponed-day", datetime(2021, 1, 17, 9), datetime(2021, 1, 17, 10)),
    _visit("lto-visit", datetime(2021, 1, 10, 9), datetime(2021, 1, 10, 10), team="team-lto"),
    c.CloseElectionDay(),
    # statement variants
    OTHER_DRAFT,
    c.ApproveStatement(draft_id="statement-2", text_sha256=OTHER_SHA, approved_by=HOM),
    c.ApproveStatement(draft_id="statement-1", text_sha256=OTHER_SHA, approved_by=HOM),
    c.ApproveStatement(draft_id="statement-1", text_sha256=SHA, approved_by="Someone Else"),
    c.ApproveStatement(draft_id="statement-9", text_sha256=SHA, approved_by=HOM),
    c.PublishStatement(draft_id="statement-1", text_sha256=OTHER_SHA, published_on=E),
    c.PublishStatement(draft_id="statement-2", text_sha256=OTHER_SHA, published_on=E),
    c.PublishStatement(draft_id="statement-1", text_sha256=SHA, published_on=date(2021, 1, 9)),
    c.PublishFinalReport(report_id="final-1", published_on=date(2021, 3, 8), summary="Final."),
    # recommendations variants
    c.IssueRecommendations(recommendations=seed.RECOMMENDATIONS[:1]),
    c.IssueRecommendations(
        recommendations=[
            Recommendation(
                id="R4",
                text="Publish results per polling station.",
                priority=Priority.other,
                addressee=Addressee.central_election_commission,
                area="transparency",
            )
        ]
    ),
    c.SendRecommendations(recipients=[member("RU")], sent_on=date(2021, 1, 15)),
    c.SendRecommendations(recipients=[member("AZ")], sent_on=date(2021, 1, 20)),
    c.SendRecommendations(
        recipients=[Recipient(kind=RecipientKind.host_country, name="UZ")],
        sent_on=date(2021, 1, 15),
    ),
    c.AcknowledgeRecommendations(
        recipient=Recipient(kind=RecipientKind.international_organisation, name="UN"),
        acknowledged_on=date(2021, 1, 18),
    ),
    c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=date(2021, 1, 10)),
    # changes of plan
    c.CancelMission(reason="invitation withdrawn"),
    c.CloseMission(note="early close"),
]


# -- invariants -------------------------------------------------------------------------------


def _on_election_day(moment: datetime, election_day: date) -> bool:
    morning_after = election_day + timedelta(days=1)
    return moment.date() == election_day or (
        moment.date() == morning_after and moment.time() <= COUNTING_GRACE
    )


def check_invariants(state: Mission, folded: int) -> None:
    """What must hold of any mission state ``decide`` and ``evolve`` can produce."""
    assert state.version == folded
    if state.stage is None:
        assert state == Mission()
        return
    assert state.version >= 1
    assert state.mission_id is not None
    assert state.election is not None and state.mission_window is not None
    election_day = state.election.date
    assert election_day in state.mission_window
    assert state.host_country not in state.member_states
    assert len(set(state.member_states)) == len(state.member_states)
    rules = state.rules
    reached = state.stage.order if state.stage not in _TERMINAL else None

    # formation
    if state.needs_assessment_on is not None:
        assert rules.needs_assessment
    if state.head_of_mission is not None and rules.needs_assessment:
        assert state.needs_assessment_on is not None
    if reached is not None and reached >= Stage.forming.order:
        assert state.head_of_mission is not None
    for oid, observer in state.observers.items():
        assert observer.observer_id == oid
        assert observer.member_state != state.host_country
        assert observer.member_state in state.member_states
        assert observer.role in rules.roles
        if observer.status is ObserverStatus.accepted:
            assert observer.code_of_conduct_signed and observer.conflict_of_interest_declared
        assert (observer.withdrawal_reason is not None) == (
            observer.status is ObserverStatus.withdrawn
        )
    for role, quota in state.role_quotas.items():
        assert role in rules.roles
        assert len(state.accepted_observers(role)) <= quota
    placed = [oid for team in state.teams.values() for oid in team.observer_ids]
    assert len(placed) == len(set(placed)), "an observer sits in two teams"
    assert all(oid in state.observers for oid in placed)
    for tid, team in state.teams.items():
        assert team.team_id == tid

    # pre-election
    if reached is not None and reached >= Stage.pre_election.order:
        assert state.deployed_on is not None
    if state.meetings or state.interim_report is not None:
        assert state.deployed_on is not None
    for held in state.meetings.values():
        assert held.held_on < election_day
    if state.interim_report is not None:
        assert rules.interim_report
    if reached is not None and reached >= Stage.election_day.order and rules.interim_report:
        assert state.interim_report is not None

    # election day
    for vid, visit in state.visits.items():
        assert visit.visit_id == vid
        assert visit.team_id in state.teams
        assert visit.arrived_at <= visit.departed_at
        assert _on_election_day(visit.arrived_at, election_day)
        assert _on_election_day(visit.departed_at, election_day)
        if visit.arrived_at.date() != election_day:
            assert all(cl.phase in (Phase.counting, Phase.tabulation) for cl in visit.checklists)
    by_station: dict[str, list[str]] = {}
    for visit in state.visits.values():
        by_station.setdefault(visit.station_id, []).append(visit.visit_id)
    expected_conflicts = {
        station: ids
        for station, ids in by_station.items()
        if len({state.visits[v].team_id for v in ids}) > 1
    }
    assert state.conflicting_stations == expected_conflicts
    if reached is not None and reached >= Stage.statement.order:
        assert state.visits

    # statement
    if state.drafts:
        assert state.stage.order >= Stage.statement.order
    for did, draft in state.drafts.items():
        assert draft.draft_id == did
        assert draft.text_sha256 == text_sha256(draft.text)
    if state.approval is not None:
        approved = state.drafts[state.approval.draft_id]
        assert approved.text_sha256 == state.approval.text_sha256
        assert state.head_of_mission is not None
        assert state.approval.approved_by == state.head_of_mission.name
    if state.publication is not None:
        assert state.approval is not None
        assert state.publication.draft_id == state.approval.draft_id
        assert state.publication.text_sha256 == state.approval.text_sha256
        assert state.publication.published_on >= election_day
    if state.final_report is not None:
        assert state.publication is not None

    # recommendations and follow-up
    if state.recommendations:
        assert state.publication is not None
        if rules.final_report:
            assert state.final_report is not None
    if reached is not None and reached >= Stage.follow_up.order:
        assert state.recommendations
    for rid, recommendation in state.recommendations.items():
        assert recommendation.id == rid
    if state.deliveries:
        assert state.recommendations
    for key, delivery in state.deliveries.items():
        recipient = delivery.recipient
        assert recipient.key == key
        if recipient.kind is RecipientKind.member_state:
            assert recipient.name in state.member_states
        if recipient.kind is RecipientKind.host_country:
            assert recipient.name == state.host_country
        if delivery.acknowledged_on is not None:
            assert delivery.acknowledged_on >= delivery.sent_on

    # ends
    assert (state.closed_at is not None) == (state.stage is Stage.closed)
    assert (state.cancelled_at is not None) == (state.stage is Stage.cancelled)


# -- histories --------------------------------------------------------------------------------


@st.composite
def _histories(draw: st.DrawFn) -> list[Command]:
    """A skeleton mission (the seed, or its limited-profile twin) played in order, a pool
    command slipped in wherever a pick draws zero (and once the skeleton is exhausted)."""
    skeleton = draw(st.sampled_from(SKELETONS))
    steps = draw(
        st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from(POOL)),
            min_size=len(skeleton) + 5,
            max_size=len(skeleton) + 40,
        )
    )
    cursor = 0
    commands: list[Command] = []
    for pick, drawn in steps:
        if pick and cursor < len(skeleton):
            commands.append(skeleton[cursor])
            cursor += 1
        else:
            commands.append(drawn)
    return commands


def _play(commands: list[Command]) -> tuple[Mission, list[Event]]:
    """The state and events after ``commands``, skipping the refused ones."""
    state = Mission()
    events: list[Event] = []
    for command in commands:
        try:
            new = decide(state, command, now=NOW)
        except DomainError:
            continue
        for event in new:
            state = evolve(state, event)
        events.extend(new)
    return state, events


# The seed mission with nominations requested and acknowledgements chased (its closing
# left to the pool), then the follow-up: what makes a stream long.
FOLLOW_UP_SKELETON: list[Command] = [
    cmd
    for cmd in seed.mission(
        MISSION_ID,
        nominations=c.RequestNominations(deadline=datetime(2021, 1, 5, tzinfo=UTC)),
        acknowledge_by=datetime(2021, 2, 15, tzinfo=UTC),
    )
    if not isinstance(cmd, c.CloseMission)
]
_FOLLOW_UP_STATES = ["AZ", "KG", seed.HOST]
_DELIVERIES: st.SearchStrategy[Command] = st.builds(
    c.RecordDelivery,
    kind=st.sampled_from(DeadlineKind),
    member_state=st.sampled_from(_FOLLOW_UP_STATES),
    purpose=st.sampled_from(DeliveryPurpose),
    step=st.integers(0, 3),
    cycle=st.integers(0, 2),
    message_id=st.sampled_from(["m-1", "m-2", "m-3"]),
    delivered=st.booleans(),
)
_EVIDENCE: st.SearchStrategy[Command] = st.builds(
    c.SubmitEvidence,
    member_state=st.sampled_from(_FOLLOW_UP_STATES),
    cycle=st.integers(1, 2),
    evidence=st.lists(
        st.builds(
            EvidenceItem,
            recommendation_id=st.sampled_from(["R1", "R2", "R3"]),
            text=st.just("Ramps ordered."),
        ),
        min_size=1,
        max_size=3,
    ),
)
_FOLLOW_UP: st.SearchStrategy[Command] = st.one_of(
    _DELIVERIES,
    _DELIVERIES,
    st.builds(
        c.RequestEvidence,
        cycle=st.integers(1, 2),
        member_states=st.sampled_from([["AZ", seed.HOST], ["KG", "AZ"], [seed.HOST]]),
        deadline=st.just(datetime(2021, 7, 1, tzinfo=UTC)),
    ),
    _EVIDENCE,
    _EVIDENCE,
    st.builds(
        c.RateImplementation,
        recommendation_id=st.sampled_from(["R1", "R2", "R3", "R9"]),
        rating=st.sampled_from(Rating),
        rated_on=st.just(date(2021, 7, 2)),
        basis=st.just("The evidence."),
    ),
    st.sampled_from(
        [
            c.DeclineNomination(member_state="AZ", reason="No budget."),
            c.AcknowledgeRecommendations(recipient=member("AZ"), acknowledged_on=E),
            c.AcknowledgeRecommendations(recipient=member("KG"), acknowledged_on=E),
            c.ReopenReview(new_mission_id="kz-2025", reason="A new election."),
            c.ReopenReview(new_mission_id="kz-2026", reason="Another election."),
            c.SubmitEvidence(
                member_state="AZ",
                cycle=1,
                evidence=[EvidenceItem(recommendation_id="R9", text="Not one of ours.")],
            ),
            c.CloseMission(),
            c.EndFollowUp(reason="Review complete."),
        ]
    ),
)


@st.composite
def _follow_up_histories(draw: st.DrawFn) -> list[Command]:
    """``FOLLOW_UP_SKELETON`` with deliveries recorded along the way, then a run of
    follow-up commands: deliveries, evidence cycles, ratings, reopenings, the end."""
    during = draw(st.lists(st.tuples(st.integers(0, len(FOLLOW_UP_SKELETON)), _DELIVERIES)))
    commands = list(FOLLOW_UP_SKELETON)
    for at, delivery in sorted(during, key=lambda d: d[0], reverse=True):
        commands.insert(at, delivery)
    if draw(st.booleans()):  # the first cycle opened at once: evidence can follow
        commands.append(
            c.RequestEvidence(
                cycle=1,
                member_states=_FOLLOW_UP_STATES,
                deadline=datetime(2021, 7, 1, tzinfo=UTC),
            )
        )
    return commands + draw(st.lists(_FOLLOW_UP, min_size=5, max_size=60))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_histories())
def test_random_histories_keep_the_invariants(commands: list[Command]) -> None:
    """Each command is refused (state unchanged) or yields events; invariants always hold."""
    state = Mission()
    events: list[Event] = []
    for command in commands:
        previous = state
        try:
            new = decide(state, command, now=NOW)
        except DomainError as err:
            assert type(err) is not DomainError, "refusals name a specific rule"
            assert str(err) == f"{err.rule}: {err.message}" and err.message
        else:
            # Polling stations are recorded by the intake; every other command records.
            assert new or isinstance(command, c.RegisterPollingStations), (
                f"{command.type} was accepted but recorded nothing"
            )
            for event in new:
                state = evolve(state, event)
            events.extend(new)
        # Folding from scratch also shows decide left ``previous`` untouched on a refusal.
        assert fold(events) == state
        check_invariants(state, len(events))
        if previous.stage is not None:
            assert state.stage is not None and state.stage.order >= previous.stage.order
        if previous.stage in _TERMINAL:
            # Closed and cancelled are terminal stages; only follow-up facts (on a closed
            # mission) and deliveries already under way (on either) are still recorded.
            assert state.stage is previous.stage, "closed and cancelled are terminal"
            if state is not previous:
                assert command.type in _AFTER_THE_END, command.type


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_histories() | _follow_up_histories(), cut=st.integers(0, 10_000))
def test_fold_is_evolve_event_by_event(commands: list[Command], cut: int) -> None:
    """``fold`` gives what ``evolve`` gives event by event, from nothing or on from a
    state along the way; and neither changes a state it was given: every state kept
    along the way (as replays at a version and the workflow keep them) stays as it was
    when it was made, after later events are evolved and folded onto it."""
    _state, events = _play(commands)
    states, snapshots = [Mission()], [Mission().model_dump()]
    for event in events:
        states.append(evolve(states[-1], event))
        snapshots.append(states[-1].model_dump())
    at = cut % len(states)
    assert fold(events) == states[-1]
    assert fold(events[at:], states[at]) == states[-1]
    assert fold(events[at:], fold(events[:at])) == states[-1]
    assert fold([], states[at]) is states[at]
    assert [s.model_dump() for s in states] == snapshots


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_histories())
def test_the_workflows_slim_state_decides_as_the_full_one(commands: list[Command]) -> None:
    """The workflow holds ``Mission.for_decisions()`` (free texts left out); on it every
    command gets the same events or the same rule's refusal as on the full state."""
    full = slim = Mission()
    for command in commands:
        outcomes: list[list[Event] | str] = []
        for state in (full, slim):
            try:
                outcomes.append(decide(state, command, now=NOW))
            except DomainError as err:
                outcomes.append(err.rule)
        assert outcomes[0] == outcomes[1], command.type
        if isinstance(outcomes[0], list):
            full = fold(outcomes[0], full)
            slim = fold(outcomes[0], slim).for_decisions()
    assert full.for_decisions() == slim


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_histories())
def test_events_round_trip_through_json(commands: list[Command]) -> None:
    """Every event decide emits survives model_dump(mode="json") and EVENT_ADAPTER intact."""
    _state, events = _play(commands)
    for event in events:
        dumped = event.model_dump(mode="json")
        assert EVENT_ADAPTER.validate_python(dumped) == event
        assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event


# -- commands round trip ----------------------------------------------------------------------

_identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
_texts = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
_codes = st.from_regex(r"[A-Z]{2}", fullmatch=True)
_days = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
_EARLIEST, _LATEST = datetime(1990, 1, 1), datetime(2100, 12, 31)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=6)), timezone(-timedelta(hours=3))])
_moments = st.datetimes(_EARLIEST, _LATEST) | st.datetimes(_EARLIEST, _LATEST, timezones=_zones)
_answers = st.dictionaries(
    _identifiers,
    st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _texts,
    max_size=4,
)


@st.composite
def _windows(draw: st.DrawFn) -> DateWindow:
    start = draw(_days)
    return DateWindow(start=start, end=start + timedelta(days=draw(st.integers(0, 60))))


@st.composite
def _registrations(draw: st.DrawFn) -> c.RegisterInvitation:
    window = draw(_windows())
    day = window.start + timedelta(days=draw(st.integers(0, (window.end - window.start).days)))
    return c.RegisterInvitation(
        mission_id=draw(_identifiers),
        organisation=draw(_texts),
        host_country=draw(_codes),
        inviting_authority=draw(_texts),
        election=Election(name=draw(_texts), type=draw(st.sampled_from(ElectionType)), date=day),
        mission_window=window,
        member_states=draw(st.lists(_codes, min_size=1, max_size=5)),
        profile=draw(st.sampled_from(Profile)),
        role_quotas=draw(st.dictionaries(st.sampled_from(ObserverRole), st.integers(1, 500))),
    )


@st.composite
def _visits(draw: st.DrawFn) -> c.RecordStationVisit:
    arrived = draw(_moments)
    return c.RecordStationVisit(
        visit_id=draw(_identifiers),
        station_id=draw(_identifiers),
        locality=draw(_texts),
        team_id=draw(_identifiers),
        arrived_at=arrived,
        departed_at=arrived + timedelta(minutes=draw(st.integers(0, 24 * 60))),
        checklists=draw(
            st.lists(
                st.builds(PhaseChecklist, phase=st.sampled_from(Phase), answers=_answers),
                min_size=1,
                max_size=4,
            )
        ),
        findings=draw(
            st.lists(
                st.builds(
                    Finding,
                    category=st.sampled_from(FindingCategory),
                    assessment=st.sampled_from(Assessment),
                    note=_texts,
                ),
                max_size=4,
            )
        ),
    )


_recipients = st.builds(
    Recipient,
    kind=st.sampled_from([RecipientKind.member_state, RecipientKind.host_country]),
    name=_codes,
) | st.builds(Recipient, kind=st.just(RecipientKind.international_organisation), name=_texts)

_GENERATED_COMMANDS: st.SearchStrategy[Command] = st.one_of(
    _registrations(),
    _visits(),
    st.builds(
        c.NominateObserver,
        observer_id=_identifiers,
        member_state=_codes,
        name=_texts,
        role=st.sampled_from(ObserverRole),
        code_of_conduct_signed=st.booleans(),
        conflict_of_interest_declared=st.booleans(),
    ),
    st.builds(
        c.RecordMeeting,
        meeting_id=_identifiers,
        stakeholder_type=st.sampled_from(StakeholderType),
        stakeholder_name=_texts,
        held_on=_days,
        participants=st.lists(_texts, max_size=3),
        topics=st.lists(_texts, max_size=3),
        summary=_texts,
    ),
    st.builds(
        c.IssueRecommendations,
        recommendations=st.lists(
            st.builds(
                Recommendation,
                id=_identifiers,
                text=_texts,
                priority=st.sampled_from(Priority),
                addressee=st.sampled_from(Addressee),
                area=_texts,
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    st.builds(c.SendRecommendations, recipients=st.lists(_recipients, min_size=1), sent_on=_days),
    st.builds(c.AcknowledgeRecommendations, recipient=_recipients, acknowledged_on=_days),
    st.builds(c.PostponeElection, new_date=_days, reason=_texts),
    st.builds(c.CloseMission, note=st.none() | _texts),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.sampled_from(POOL) | _GENERATED_COMMANDS)
def test_commands_round_trip_through_json(command: Command) -> None:
    """Every command survives model_dump(mode="json") and COMMAND_ADAPTER intact."""
    dumped = command.model_dump(mode="json")
    assert COMMAND_ADAPTER.validate_python(dumped) == command
    assert COMMAND_ADAPTER.validate_json(COMMAND_ADAPTER.dump_json(command)) == command


# -- decide is a function ---------------------------------------------------------------------


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_histories(), probe=st.sampled_from(POOL))
def test_decide_is_deterministic(commands: list[Command], probe: Command) -> None:
    """The same state and command always give the same events or the same refusal."""
    state, _events = _play(commands)

    def outcome() -> list[Event] | str:
        try:
            return decide(state, probe, now=NOW)
        except DomainError as err:
            return str(err)

    assert outcome() == outcome()
