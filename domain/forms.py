"""Observation forms: the typed model of an XForm's questions, and the rules that check a
filled form's answers against it.

A form version is a fact (``FormPublished``): never edited, replaced by a new version. Its
questions are what the XForm (made from an XLSForm by pyxform, the ODK reference
implementation) declares: a type per bind, choice lists, labels per language, and the
XPath 1.0 expressions of ``relevant`` (skip logic), ``constraint`` and eom's own
``eom:critical`` (an answer the coordinator must learn of as it arrives).

Pure like the rest of the domain: the expressions are evaluated through ``Conditions``, a
port whose adapter (``forms.xpath``, over elementpath) lives outside. The XForm
specification (ODK XForms, https://getodk.github.io/xforms-spec/) is the source of the
answer formats checked here: a ``select_multiple`` answer is its choices' names, a
``geopoint`` is ``"latitude longitude [altitude [accuracy]]"``, dates and times are ISO
8601.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time
from enum import StrEnum
from functools import cached_property
from typing import Literal, Protocol

from pydantic import Field, model_validator

from domain import errors as e
from domain import events as ev
from domain.errors import AnswerInvalid
from domain.values import Answer, Frozen, Identifier, Line, Phase

RESERVED_FIELDS = frozenset({"station_id", "team_id"})
"""Fields of an eom form that say where and by whom it was filled: they become the
report's polling station and team, not answers."""

FORM_NAMESPACE = "https://eom.dev/xforms"
"""The XML namespace of eom's own bind attribute ``eom:critical``."""


class QuestionType(StrEnum):
    """The XLSForm question types eom stores, counts and checks (XLSForm's names)."""

    select_one = "select_one"
    select_multiple = "select_multiple"
    integer = "integer"
    decimal = "decimal"
    text = "text"
    date = "date"
    time = "time"
    dateTime = "dateTime"
    note = "note"
    geopoint = "geopoint"
    image = "image"


CHOICE_TYPES = frozenset({QuestionType.select_one, QuestionType.select_multiple})


class Choice(Frozen):
    name: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)


class Group(Frozen):
    """A group of questions (``begin group``), shown under its label."""

    name: Identifier
    path: str
    labels: dict[str, str] = Field(default_factory=dict)
    relevant: str | None = None


class Question(Frozen):
    name: Identifier
    """Unique in its form: the key of its answer in a checklist."""
    path: str
    """Its node in the XForm's primary instance (``/data/secrecy/booths_used``)."""
    type: QuestionType
    labels: dict[str, str] = Field(default_factory=dict)
    """Label per language (the XLSForm's ``label::Language (code)`` columns)."""
    hints: dict[str, str] = Field(default_factory=dict)
    required: bool = False
    relevant: list[str] = Field(default_factory=list)
    """The question's own ``relevant`` and its groups': all must hold for it to be asked."""
    constraint: str | None = None
    constraint_messages: dict[str, str] = Field(default_factory=dict)
    choices: list[Choice] = Field(default_factory=list)
    critical: str | None = None
    """``eom:critical``: when it holds for an answer, the answer alerts the coordinator."""
    group: str | None = None
    """The path of the innermost group holding it."""

    def label(self, language: str | None = None) -> str:
        return _pick(self.labels, language) or self.name

    def choice(self, name: str) -> Choice | None:
        return next((c for c in self.choices if c.name == name), None)


def _pick(labels: Mapping[str, str], language: str | None) -> str | None:
    if not labels:
        return None
    if language is not None:
        if language in labels:
            return labels[language]
        code = f"({language})"
        for key, value in labels.items():
            if key.endswith(code):
                return value
    return next(iter(labels.values()))


class FormDefinition(Frozen):
    """One version of a form: what an observer is asked, in order."""

    form_id: Identifier
    version: Identifier
    title: Line
    phase: Phase
    root: Identifier = "data"
    """The primary instance's root element."""
    languages: list[str] = Field(default_factory=list)
    default_language: str | None = None
    groups: list[Group] = Field(default_factory=list)
    questions: list[Question] = Field(min_length=1)
    fields: list[str] = Field(default_factory=list)
    """Which of ``RESERVED_FIELDS`` (and ``start``/``end``) the form has, by name."""

    @property
    def key(self) -> str:
        return form_key(self.form_id, self.version)

    def question(self, name: str) -> Question | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, Question]:
        return {q.name: q for q in self.questions}

    @model_validator(mode="after")
    def _names_unique(self) -> FormDefinition:
        seen: set[str] = set()
        for q in self.questions:
            if q.name in seen or q.name in RESERVED_FIELDS:
                raise ValueError(f"question name {q.name!r} is used twice or reserved")
            seen.add(q.name)
            if q.type in CHOICE_TYPES and not q.choices:
                raise ValueError(f"question {q.name!r} is a {q.type} with no choices")
        return self


def form_key(form_id: str, version: str) -> str:
    return f"{form_id}@{version}"


# -- events ------------------------------------------------------------------------------------


class FormPublished(ev.EventBase):
    """A form version in an organisation's library (stream ``_forms``): its XForm exactly
    as pyxform made it, and its typed questions."""

    type: Literal["FormPublished"] = "FormPublished"
    organisation: Line
    form: FormDefinition
    xform: str
    xform_md5: str
    """The XForm's MD5 as OpenRosa's form list gives it (``md5:<hex>``)."""
    source: Line
    """The XLSForm's file name."""


class FormAssigned(ev.EventBase):
    """A form version a mission's observers fill (stream ``<mission>/forms``)."""

    type: Literal["FormAssigned"] = "FormAssigned"
    mission_id: Identifier
    organisation: Line
    form_id: Identifier
    version: Identifier
    phase: Phase


# -- checking answers ---------------------------------------------------------------------------


class Conditions(Protocol):
    """Evaluates a form's XPath 1.0 expressions against a filled form (``forms.xpath``)."""

    def on(self, form: FormDefinition, answers: Mapping[str, Answer]) -> Callable[[str, str], bool]:
        """A function of (expression, path of the context node) -> the expression's
        boolean value on the primary instance holding ``answers``."""
        ...


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)?$")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,199}")


def is_file_name(name: str) -> bool:
    """Whether ``name`` is an attachment's file name eom keeps: letters, digits, ``._ -``,
    no path, at most 200 characters."""
    return _FILE_NAME.fullmatch(name) is not None


def _type_problem(question: Question, answer: Answer) -> str | None:
    """Why ``answer`` is not of ``question``'s type, or ``None``."""
    kind = question.type
    if kind is QuestionType.note:
        return "is a note: it takes no answer"
    if kind is QuestionType.select_one:
        if not isinstance(answer, str):
            return f"takes one choice's name, not {_shown(answer)}"
        if question.choice(answer) is None:
            return f"{answer!r} is not one of its choices ({_names(question)})"
        return None
    if kind is QuestionType.select_multiple:
        if not isinstance(answer, list):
            return f"takes a list of choices' names, not {_shown(answer)}"
        for name in answer:
            if question.choice(name) is None:
                return f"{name!r} is not one of its choices ({_names(question)})"
        if len(set(answer)) != len(answer):
            return "names a choice twice"
        return None
    if kind is QuestionType.integer:
        if isinstance(answer, bool) or not isinstance(answer, int):
            return f"takes a whole number, not {_shown(answer)}"
        return None
    if kind is QuestionType.decimal:
        if isinstance(answer, bool) or not isinstance(answer, int | float):
            return f"takes a number, not {_shown(answer)}"
        return None if math.isfinite(answer) else "takes a finite number"
    if not isinstance(answer, str):
        return f"takes text ({kind.value}), not {_shown(answer)}"
    return _text_problem(kind, answer)


def _text_problem(kind: QuestionType, answer: str) -> str | None:
    parsers: dict[QuestionType, Callable[[str], object]] = {
        QuestionType.date: date.fromisoformat,
        QuestionType.dateTime: datetime.fromisoformat,
        QuestionType.time: time.fromisoformat,
    }
    if kind in parsers:
        if kind is QuestionType.time and not _TIME.match(answer):
            return f"takes a time of day (HH:MM[:SS][offset]), not {answer!r}"
        try:
            parsers[kind](answer)
        except ValueError:
            return f"takes an ISO 8601 {kind.value}, not {answer!r}"
        return None
    if kind is QuestionType.geopoint:
        return _geopoint_problem(answer)
    if kind is QuestionType.image and not is_file_name(answer):
        return f"takes the file name of an attachment, not {answer!r}"
    return None


def _geopoint_problem(answer: str) -> str | None:
    parts = answer.split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not 2 <= len(numbers) <= 4 or not all(math.isfinite(n) for n in numbers):
        return f"takes 'latitude longitude [altitude [accuracy]]', not {answer!r}"
    if not -90 <= numbers[0] <= 90 or not -180 <= numbers[1] <= 180:
        return f"latitude must be within ±90 and longitude within ±180, not {answer!r}"
    return None


def _shown(answer: Answer) -> str:
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list"}
    return f"{kind.get(type(answer), type(answer).__name__)} {answer!r}"


def _names(question: Question) -> str:
    names = [c.name for c in question.choices]
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")


def is_answered(answer: Answer | None) -> bool:
    return answer is not None and answer != "" and answer != []


def check_answers(
    form: FormDefinition,
    answers: Mapping[str, Answer],
    conditions: Conditions,
    *,
    language: str | None = None,
) -> None:
    """Nothing if ``answers`` fill ``form`` as its questions allow; else ``AnswerInvalid``
    naming the first question at fault, in form order: an answer to no question of the
    form, an answer to a note, an answer of the wrong type or not among the choices, an
    answer to a question its ``relevant`` skips, a required relevant question unanswered,
    an answer its ``constraint`` refuses (with the form's constraint message, in
    ``language`` if the form has it)."""
    for name in answers:
        if form.question(name) is None:
            raise AnswerInvalid(
                name, f"form {form.form_id!r} version {form.version!r} has no such question"
            )
    for question in form.questions:
        answer = answers.get(question.name)
        if is_answered(answer):
            assert answer is not None
            problem = _type_problem(question, answer)
            if problem is not None:
                raise AnswerInvalid(question.name, problem)
    holds = conditions.on(form, answers)
    for question in form.questions:
        answer = answers.get(question.name)
        relevant = all(holds(expression, question.path) for expression in question.relevant)
        if not relevant:
            if is_answered(answer):
                raise AnswerInvalid(
                    question.name,
                    "is skipped here (relevant: "
                    f"{' and '.join(question.relevant)}): leave it unanswered",
                )
            continue
        if not is_answered(answer):
            if question.required:
                raise AnswerInvalid(question.name, "is required here and has no answer")
            continue
        if question.constraint is not None and not holds(question.constraint, question.path):
            said = _pick(question.constraint_messages, language)
            raise AnswerInvalid(
                question.name,
                f"{answer!r} breaks its constraint ({question.constraint})"
                + (f": {said}" if said else ""),
            )


def critical_answers(
    form: FormDefinition, answers: Mapping[str, Answer], conditions: Conditions
) -> list[str]:
    """The questions whose answers in ``answers`` meet their ``eom:critical`` condition,
    in form order (a question skipped by ``relevant`` is never critical)."""
    marked = [q for q in form.questions if q.critical is not None]
    if not marked:
        return []
    holds = conditions.on(form, answers)
    return [
        q.name
        for q in marked
        if is_answered(answers.get(q.name))
        and all(holds(x, q.path) for x in q.relevant)
        and holds(q.critical or "", q.path)
    ]


def relevant_questions(
    form: FormDefinition, answers: Mapping[str, Answer], conditions: Conditions
) -> Iterator[Question]:
    """The questions ``answers`` were asked: those whose ``relevant`` held (the
    denominators of the analysis)."""
    holds = conditions.on(form, answers)
    for question in form.questions:
        if question.type is not QuestionType.note and all(
            holds(x, question.path) for x in question.relevant
        ):
            yield question


def assigned_for(
    forms: Mapping[str, FormDefinition], form_id: str | None, version: str | None, phase: Phase
) -> FormDefinition | None:
    """The form version a checklist of ``phase`` names among a mission's ``forms`` (by
    ``form_key``), or ``None`` for a free checklist where no form covers ``phase``; else
    ``FormNotAssigned``."""
    if form_id is None or version is None:
        covered = sorted({f.form_id for f in forms.values() if f.phase is phase})
        if covered:
            raise e.FormNotAssigned(
                f"the mission observes {phase.value} with form {', '.join(covered)}: a "
                f"{phase.value} checklist names its form_id and form_version"
            )
        return None
    form = forms.get(form_key(form_id, version))
    if form is None:
        known = sorted(f.version for f in forms.values() if f.form_id == form_id)
        raise e.FormNotAssigned(
            f"form {form_id!r} version {version!r} is not assigned to the mission"
            + (f" (its versions here: {', '.join(known)})" if known else "")
        )
    if form.phase is not phase:
        raise e.FormNotAssigned(
            f"form {form_id!r} observes {form.phase.value}, not {phase.value}: the checklist's "
            "phase must be its form's"
        )
    return form
