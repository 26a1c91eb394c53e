"""Figures from observation forms: per question, how many polling stations gave each answer,
out of how many were asked it, by phase, locality and team, each figure naming the events
behind it.

The unit is the polling station observed, not the report: the visits are the mission's
standing visits (``intake.visits``: a corrected report counts once, as its latest
correction); a station two teams reported counts once among those asked, under each answer
its teams gave, and is named under ``conflicting_stations`` where their answers differ (in
the team breakdown, once for each team); a team's later visit to a station with the same
form replaces its earlier one in the counts. A question a visit's ``relevant`` skipped is
left out of that station's denominator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from domain.commands import DraftStatement
from domain.forms import CHOICE_TYPES, FormDefinition, QuestionType, form_key, relevant_questions
from domain.values import Answer, Citation, CitedFigure, PhaseChecklist
from eventstore.store import EventStore
from forms.library import FormLibrary
from forms.xpath import CONDITIONS
from intake.visits import RecordedVisit, mission_visits


class Count(BaseModel):
    """Stations that gave ``answer`` out of ``asked``, and the events recording them."""

    answer: str
    stations: int
    share: float
    """``stations / asked`` (0 when none was asked)."""
    events: list[int]
    """Global log positions of the visits behind the count."""


class QuestionFigures(BaseModel):
    phase: str
    form_id: str
    question: str
    label: str
    type: str
    scope: str
    """``all``, ``locality:<name>`` or ``team:<id>``."""
    asked: int
    """Stations where the question was asked (its ``relevant`` held)."""
    answered: int
    answered_events: list[int] = []
    """Global log positions of the visits that answered it."""
    counts: list[Count]
    critical: list[str] = []
    """Answers of this question that met its ``eom:critical`` condition, by station."""
    conflicting_stations: list[str] = []
    """Stations whose teams gave this question different answers."""


class Analysis(BaseModel):
    mission_id: str
    as_of_position: int
    """The last global log position the figures include."""
    stations_observed: int
    figures: list[QuestionFigures]


@dataclass
class _Tally:
    asked: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    by_answer: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    given: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    answered_at: set[int] = field(default_factory=set)


def _values(kind: QuestionType, answer: Answer | None) -> list[str]:
    if answer is None or answer == "" or answer == []:
        return []
    if kind is QuestionType.select_multiple and isinstance(answer, list):
        return list(answer)
    return [str(answer)]


def analyse(
    mission_id: str,
    visits: Sequence[RecordedVisit],
    forms: Iterable[FormDefinition],
    *,
    language: str | None = None,
    as_of: int | None = None,
) -> Analysis:
    """The figures of ``visits`` (standing visits, ``mission_visits``) for the questions of
    ``forms`` (the mission's assigned versions). Pure: the same visits give the same
    figures."""
    by_key = {f.key: f for f in forms}
    tallies: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
    labels: dict[tuple[str, str], tuple[str, str, str]] = {}
    order: list[tuple[str, str]] = []
    critical: dict[tuple[str, str], set[str]] = defaultdict(set)
    # One filled form per station, team and form: a team's later visit with the same form
    # replaces its earlier one in the counts (the visits come in log order).
    latest: dict[tuple[str, str, str], tuple[RecordedVisit, PhaseChecklist, FormDefinition]] = {}
    for visit in visits:
        for checklist in visit.checklists:
            if checklist.form_id is None or checklist.form_version is None:
                continue
            form = by_key.get(form_key(checklist.form_id, checklist.form_version))
            if form is not None:
                latest[(visit.station_id, visit.team_id, form.form_id)] = (visit, checklist, form)
    for visit, checklist, form in latest.values():
        for c in visit.critical:
            if c.form_id == form.form_id:
                critical[(form.form_id, c.question)].add(visit.station_id)
        scopes = ("all", f"locality:{visit.locality}", f"team:{visit.team_id}")
        for question in relevant_questions(form, checklist.answers, CONDITIONS):
            key = (form.form_id, question.name)
            if key not in labels:
                labels[key] = (form.phase.value, question.label(language), question.type)
                order.append(key)
            values = _values(question.type, checklist.answers.get(question.name))
            for scope in scopes:
                tally = tallies[(form.form_id, question.name, scope)]
                tally.asked.add(visit.station_id)
                if values:
                    tally.answered.add(visit.station_id)
                    tally.answered_at.add(visit.global_position)
                    tally.given[visit.station_id].add(" ".join(sorted(values)))
                if question.type in CHOICE_TYPES:
                    for value in values:
                        tally.by_answer[value].add(visit.station_id)
                        tally.events[value].add(visit.global_position)
    figures = []
    for form_id, name in order:
        phase, label, kind = labels[(form_id, name)]
        in_scope = sorted(
            {scope for (f, q, scope) in tallies if (f, q) == (form_id, name)},
            key=lambda scope: (scope != "all", scope),
        )
        for scope in in_scope:
            tally = tallies[(form_id, name, scope)]
            asked = len(tally.asked)
            figures.append(
                QuestionFigures(
                    phase=phase,
                    form_id=form_id,
                    question=name,
                    label=label,
                    type=kind,
                    scope=scope,
                    asked=asked,
                    answered=len(tally.answered),
                    answered_events=sorted(tally.answered_at),
                    counts=[
                        Count(
                            answer=answer,
                            stations=len(stations),
                            share=round(len(stations) / asked, 4) if asked else 0.0,
                            events=sorted(tally.events[answer]),
                        )
                        for answer, stations in sorted(tally.by_answer.items())
                    ],
                    critical=sorted(critical.get((form_id, name), set())) if scope == "all" else [],
                    conflicting_stations=sorted(
                        s for s, given in tally.given.items() if len(given) > 1
                    )
                    if not scope.startswith("team:")
                    else [],
                )
            )
    positions = [v.global_position for v in visits]
    return Analysis(
        mission_id=mission_id,
        as_of_position=as_of if as_of is not None else max(positions, default=0),
        stations_observed=len({v.station_id for v in visits}),
        figures=figures,
    )


async def mission_analysis(
    store: EventStore,
    mission_id: str,
    *,
    language: str | None = None,
    through_position: int | None = None,
) -> Analysis:
    """``analyse`` over the mission's standing visits and its assigned form versions
    (as they stood at global log position ``through_position``, if given)."""
    visits = await mission_visits(store, mission_id, through_position=through_position)
    forms = [s.form for s in await FormLibrary(store).mission_forms(mission_id)]
    return analyse(mission_id, visits, forms, language=language, as_of=through_position)


def figure_of(analysis: Analysis, citation: Citation) -> CitedFigure | None:
    """The figure ``citation`` names in ``analysis``: the stations that gave its answer
    (or, without one, that answered its question) out of those asked, in its scope."""
    for f in analysis.figures:
        if (f.form_id, f.question, f.scope) != (
            citation.form_id,
            citation.question,
            citation.scope,
        ):
            continue
        if citation.answer is None:
            stations, events = f.answered, f.answered_events
        else:
            count = next((c for c in f.counts if c.answer == citation.answer), None)
            if count is None:
                return None
            stations, events = count.stations, count.events
        return CitedFigure(
            **citation.model_dump(include=set(Citation.model_fields)),
            stations=stations,
            asked=f.asked,
            share=round(stations / f.asked, 4) if f.asked else 0.0,
            events=events,
            as_of_position=analysis.as_of_position,
        )
    return None


async def with_figures(store: EventStore, mission_id: str, draft: DraftStatement) -> DraftStatement:
    """``draft`` with the figure of each of its citations as eom counts them now (what a
    caller sent as figures is replaced; a citation no figure answers is left without, for
    the mission's rules to refuse naming it)."""
    if not draft.citations:
        return draft.model_copy(update={"figures": []})
    found = await mission_analysis(store, mission_id)
    figures = [figure_of(found, c) for c in draft.citations]
    return draft.model_copy(update={"figures": [f for f in figures if f is not None]})
