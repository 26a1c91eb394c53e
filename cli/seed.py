"""The case eom started from: the Turkic Council's mission to Kazakhstan's parliamentary
elections of 10 January 2021 (``shared/seed/turkic-council-kazakhstan-2021.txt``).

Names, dates, meetings, the 14 polling stations in Nur-Sultan and the findings come from the
published statement. Where it is silent (which observers each member state sent, station
numbers, times of visits, the exact day of each party meeting within 6-8 January) the
values are plausible placeholders and named as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from activities.directory import MemberStateContact
from domain import commands as c
from domain import text_sha256
from domain.commands import Command
from domain.values import (
    Addressee,
    Assessment,
    DateWindow,
    Election,
    ElectionType,
    EvidenceItem,
    Finding,
    FindingCategory,
    ObserverRole,
    Phase,
    PhaseChecklist,
    PollingStation,
    Priority,
    Profile,
    Rating,
    Recipient,
    RecipientKind,
    Recommendation,
    StakeholderType,
)

ELECTION_DAY = date(2021, 1, 10)
HOST = "KZ"
MEMBER_STATES = ["AZ", "KG", "TR", "UZ"]
HEAD_OF_MISSION = "Ömer Kocaman"
STATIONS = 14
LOCALITY = "Nur-Sultan"
TIME_ZONE = "Asia/Almaty"

STATEMENT_TITLE = (
    "International Election Observation Mission of the Cooperation Council of Turkic "
    "Speaking States: Parliamentary Elections of the Republic of Kazakhstan, 11 January 2021"
)
STATEMENT_TEXT = """\
The elections of deputies of the Mazhilis of the Parliament and Maslikhats of the Republic of \
Kazakhstan were conducted in compliance with the national legislation and international \
standards.

The Mission observed the elections of 10 January 2021 in 14 polling stations in Nur-Sultan \
city. Its findings describe those stations only and do not support conclusions about the \
country as a whole.

Observers were given full access to the polling stations and received detailed information \
from the polling station officials. Election Day procedures were implemented in compliance \
with the electoral legislation. The Mission observed no attempt to influence voters' choice \
and no campaign activities near the polling stations; information about parties and \
procedures was displayed inside.

In line with pandemic measures, curtains or doors were not installed in the voting booths. \
Sanitary precautions were taken at the polling stations. National and international \
observers were present, and all age groups took part. There were no serious technical \
problems; some polling stations had no ramps for persons with disabilities. Counting was \
conducted according to the requirements of the national election legislation.

The Mission will share with the Member States and relevant International Organizations its \
assessment and recommendations on the Elections in the coming days."""

_PARTIES = [
    ("Ak Zhol", date(2021, 1, 6)),
    ("Auyl", date(2021, 1, 7)),
    ("Nur Otan", date(2021, 1, 7)),
    ("People's Party", date(2021, 1, 8)),
    ("Adal", date(2021, 1, 8)),
]
_PARTY_TOPICS = [
    "campaigning",
    "campaign funding",
    "media access",
    "legal framework",
    "electoral system",
]


def registration(mission_id: str) -> c.RegisterInvitation:
    return c.RegisterInvitation(
        mission_id=mission_id,
        organisation="Cooperation Council of Turkic Speaking States (Turkic Council)",
        host_country=HOST,
        inviting_authority="Central Election Commission of the Republic of Kazakhstan",
        election=Election(
            name=(
                "Elections of Deputies of the Mazhilis and Maslikhats of the Republic of Kazakhstan"
            ),
            type=ElectionType.parliamentary,
            date=ELECTION_DAY,
        ),
        mission_window=DateWindow(start=date(2021, 1, 6), end=ELECTION_DAY),
        member_states=MEMBER_STATES,
        profile=Profile.short_term,
        # Kazakhstan has several zones in the time-zone database; the seed's stations are
        # in Nur-Sultan, on Almaty's time (UTC+6 in 2021).
        time_zone=TIME_ZONE,
    )


def stations() -> c.RegisterPollingStations:
    """The seed's polling stations (numbers are placeholders, as in its visits)."""
    return c.RegisterPollingStations(
        stations=[
            PollingStation(station_id=f"NS-{100 + n}", locality=LOCALITY)
            for n in range(1, STATIONS + 1)
        ]
    )


def _observers() -> list[c.NominateObserver]:
    """Two observers per member state other than the host: a CEC representative and a
    diplomat (the statement's composition; individual names are not published)."""
    return [
        c.NominateObserver(
            observer_id=f"{state.lower()}-{kind}",
            member_state=state,
            name=f"{label} of {state}",
            role=ObserverRole.short_term_observer,
            code_of_conduct_signed=True,
            conflict_of_interest_declared=True,
        )
        for state in MEMBER_STATES
        for kind, label in (("cec", "CEC representative"), ("diplomat", "Diplomat"))
    ]


def _teams() -> list[c.FormTeam]:
    """Four teams of two, each pairing observers of different nationalities."""
    n = len(MEMBER_STATES)
    return [
        c.FormTeam(
            team_id=f"team-{i + 1}",
            observer_ids=[
                f"{MEMBER_STATES[i].lower()}-cec",
                f"{MEMBER_STATES[(i + 1) % n].lower()}-diplomat",
            ],
            area=LOCALITY,
        )
        for i in range(n)
    ]


def _meetings() -> list[c.RecordMeeting]:
    meetings = [
        c.RecordMeeting(
            meeting_id="mfa-deputy-minister",
            stakeholder_type=StakeholderType.foreign_ministry,
            stakeholder_name="Deputy Minister of Foreign Affairs, Mr. Shakhrat Nurishev",
            held_on=date(2021, 1, 6),
            participants=[HEAD_OF_MISSION, "Shakhrat Nurishev"],
            topics=["out-of-country voting", "COVID-19 measures"],
            summary=(
                "Briefing on preparing diplomatic missions and consular offices for the "
                "election and on involving citizens abroad during the COVID-19 pandemic."
            ),
        ),
    ]
    meetings += [
        c.RecordMeeting(
            meeting_id=f"party-{name.lower().replace(' ', '-').replace(chr(39), '')}",
            stakeholder_type=StakeholderType.political_party,
            stakeholder_name=name,
            held_on=held_on,
            participants=[HEAD_OF_MISSION, f"representatives of {name}"],
            topics=_PARTY_TOPICS,
            summary=(
                "The party's platform, possible challenges of campaign funding and access to "
                "media coverage, and concerns on the legal framework and the electoral system."
            ),
        )
        for name, held_on in _PARTIES
    ]
    meetings += [
        c.RecordMeeting(
            meeting_id="cec-deputy-chairman",
            stakeholder_type=StakeholderType.central_election_commission,
            stakeholder_name=(
                "Deputy Chairman of the Central Election Commission, Mr. Konstantin Petrov"
            ),
            held_on=date(2021, 1, 8),
            participants=[HEAD_OF_MISSION, "Konstantin Petrov"],
            topics=["election administration", "232 territorial and 10,061 precinct commissions"],
            summary=(
                "Five party lists with 312 candidates, 90 of them women; about 11.9 million "
                "registered voters; a 30% quota for women and/or youth on party lists."
            ),
        ),
        c.RecordMeeting(
            meeting_id="akimat-deputy-akim",
            stakeholder_type=StakeholderType.local_administration,
            stakeholder_name="Deputy Akim of Nur-Sultan city, Mr. Baktiyar Makenov",
            held_on=date(2021, 1, 8),
            participants=[HEAD_OF_MISSION, "Baktiyar Makenov"],
            topics=["polling-station logistics", "sanitary measures"],
            summary="Organisation of election day in the capital.",
        ),
    ]
    return meetings


_COMMON_FINDINGS = [
    Finding(
        category=FindingCategory.observer_access,
        assessment=Assessment.positive,
        note="Full access; detailed information from the station officials",
    ),
    Finding(
        category=FindingCategory.procedures,
        assessment=Assessment.positive,
        note="Procedures compliant with the electoral legislation",
    ),
    Finding(
        category=FindingCategory.voter_influence,
        assessment=Assessment.positive,
        note="No attempt to influence voters' choice",
    ),
    Finding(
        category=FindingCategory.campaigning,
        assessment=Assessment.positive,
        note="No campaign activity near the station",
    ),
    Finding(
        category=FindingCategory.voter_information,
        assessment=Assessment.positive,
        note="Information on parties and procedures displayed",
    ),
    Finding(
        category=FindingCategory.secrecy_of_vote,
        assessment=Assessment.concern,
        note="No curtains or doors on the voting booths (pandemic measure)",
    ),
    Finding(
        category=FindingCategory.health_measures,
        assessment=Assessment.positive,
        note="Sanitary precautions taken",
    ),
    Finding(
        category=FindingCategory.observers_present,
        assessment=Assessment.positive,
        note="National and international observers present",
    ),
    Finding(
        category=FindingCategory.participation,
        assessment=Assessment.positive,
        note="All age groups voting",
    ),
    Finding(
        category=FindingCategory.technical,
        assessment=Assessment.positive,
        note="No serious technical problems",
    ),
]
_NO_RAMP = Finding(
    category=FindingCategory.accessibility,
    assessment=Assessment.concern,
    note="No ramp for voters with disabilities",
)
_COUNTING = Finding(
    category=FindingCategory.counting,
    assessment=Assessment.positive,
    note="Counting conducted according to the law",
)


def station_visit(number: int, *, team: int, on: date = ELECTION_DAY) -> c.RecordStationVisit:
    """Visit ``number`` (1..14) of the seed's stations; station numbers are placeholders.

    Each team opens at its first station, observes voting, and counts at its last; the last
    count runs past midnight, as counts do."""
    first, last = number <= 4, number > STATIONS - 4
    if first:
        arrived, departed, phases = (6, 45), (8, 30), [Phase.opening, Phase.voting]
    elif last:
        arrived, departed, phases = (19, 30), (23, 15), [Phase.voting, Phase.counting]
    else:
        hour = 9 + (number - 5)
        arrived, departed, phases = (hour, 0), (hour, 50), [Phase.voting]
    findings = list(_COMMON_FINDINGS)
    if number % 3 == 0:
        findings.append(_NO_RAMP)
    if last:
        findings.append(_COUNTING)
    return c.RecordStationVisit(
        visit_id=f"visit-{number:02d}",
        station_id=f"NS-{100 + number}",
        locality=LOCALITY,
        team_id=f"team-{team}",
        arrived_at=datetime(on.year, on.month, on.day, *arrived),
        departed_at=datetime(on.year, on.month, on.day, *departed)
        + (timedelta(hours=1, minutes=25) if number == STATIONS else timedelta()),
        checklists=[
            PhaseChecklist(
                phase=p, answers={"observers_admitted": True, "procedures_followed": True}
            )
            for p in phases
        ],
        findings=findings,
    )


def the_2020_slip() -> c.RecordStationVisit:
    """The seed's own text dates the observation "10 January 2020": the date guard's case."""
    return station_visit(1, team=1, on=date(2020, 1, 10)).model_copy(
        update={"visit_id": "visit-slip"}
    )


RECOMMENDATIONS = [
    Recommendation(
        id="R1",
        text=(
            "Equip every polling station with a ramp or another step-free entrance so that "
            "voters with disabilities can vote independently."
        ),
        priority=Priority.priority,
        addressee=Addressee.central_election_commission,
        area="accessibility",
    ),
    Recommendation(
        id="R2",
        text=(
            "Provide voting booths with screens or curtains that protect the secrecy of the "
            "vote while keeping pandemic hygiene measures."
        ),
        priority=Priority.priority,
        addressee=Addressee.central_election_commission,
        area="secrecy of the vote",
    ),
    Recommendation(
        id="R3",
        text=(
            "Document the health and security measures at polling stations so that they can "
            "be shared as practice with other electoral administrations."
        ),
        priority=Priority.other,
        addressee=Addressee.central_election_commission,
        area="election administration",
    ),
]

RECIPIENTS = [
    *(Recipient(kind=RecipientKind.member_state, name=s) for s in MEMBER_STATES),
    Recipient(kind=RecipientKind.host_country, name=HOST),
    Recipient(kind=RecipientKind.international_organisation, name="OSCE/ODIHR"),
]


def mission(
    mission_id: str,
    *,
    nominations: c.RequestNominations | None = None,
    acknowledge_by: datetime | None = None,
) -> list[Command]:
    """Every command of the seed mission, registration to closure, in order.

    With ``nominations``, member states are asked (and reminded) to nominate observers
    right after the head of mission is appointed; with ``acknowledge_by``, recipients are
    reminded until they acknowledge the recommendations."""
    statement = c.DraftStatement(draft_id="statement-1", title=STATEMENT_TITLE, text=STATEMENT_TEXT)
    sha = text_sha256(statement.text)
    visits = [station_visit(n, team=(n - 1) % 4 + 1) for n in range(1, STATIONS + 1)]
    return [
        registration(mission_id),
        c.AppointHeadOfMission(
            name=HEAD_OF_MISSION, title="Deputy Secretary General of the Turkic Council"
        ),
        *([nominations] if nominations else []),
        *_observers(),
        *(c.AcceptObserver(observer_id=o.observer_id) for o in _observers()),
        *_teams(),
        c.DeployMission(deployed_on=date(2021, 1, 6)),
        *_meetings(),
        stations(),
        c.OpenElectionDay(),
        *visits,
        c.CloseElectionDay(),
        statement,
        c.ApproveStatement(draft_id="statement-1", text_sha256=sha, approved_by=HEAD_OF_MISSION),
        c.PublishStatement(
            draft_id="statement-1",
            text_sha256=sha,
            published_on=date(2021, 1, 11),
            venue="press conference, Nur-Sultan",
        ),
        c.IssueRecommendations(recommendations=RECOMMENDATIONS),
        c.SendRecommendations(
            recipients=RECIPIENTS, sent_on=date(2021, 1, 15), acknowledge_by=acknowledge_by
        ),
        *(
            c.AcknowledgeRecommendations(recipient=r, acknowledged_on=date(2021, 1, 18))
            for r in RECIPIENTS
            if r.kind is RecipientKind.member_state
        ),
        c.CloseMission(note="Statement published; recommendations sent and acknowledged."),
    ]


ORGANISATION = registration("x").organisation
_LANGUAGES = {"AZ": "az", "KG": "ru", "TR": "tr", "UZ": "uz", "KZ": "ru"}


def contacts() -> list[MemberStateContact]:
    """Focal points for the seed's states (placeholder addresses on example.org, which
    the embedded SMTP sink receives): observers are asked of the member states, the host
    is asked for implementation evidence; escalations go to the Secretariat."""
    return [
        MemberStateContact(
            organisation=ORGANISATION,
            code=code,
            name=name,
            language=_LANGUAGES[code],
            email=f"focal-point.{code.lower()}@mfa.example.org",
            escalation_email="secretariat@turkic-council.example.org",
            escalation_name="Turkic Council Secretariat",
        )
        for code, name in (
            ("AZ", "Azerbaijan"),
            ("KG", "Kyrgyzstan"),
            ("TR", "Türkiye"),
            ("UZ", "Uzbekistan"),
            ("KZ", "Kazakhstan"),
        )
    ]


def cycle_answers(
    cycle: int, member_states: Sequence[str], recommendations: Sequence[Recommendation]
) -> list[c.Command]:
    """One follow-up cycle's answers, for long-lived missions in tests and benchmarks:
    evidence on the first two recommendations from each of ``member_states`` (in order,
    repeats included), then a rating of every recommendation."""
    return [
        *(
            c.SubmitEvidence(
                member_state=ms,
                cycle=cycle,
                evidence=[
                    EvidenceItem(recommendation_id=r.id, text=f"Cycle {cycle}: under way.")
                    for r in recommendations[:2]
                ],
            )
            for ms in member_states
        ),
        *(
            c.RateImplementation(
                recommendation_id=r.id,
                rating=Rating.partially,
                rated_on=date(2021, 7, 1) + timedelta(days=180 * cycle),
                basis=f"Cycle {cycle}'s evidence.",
            )
            for r in recommendations
        ),
    ]
