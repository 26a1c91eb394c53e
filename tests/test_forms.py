"""Observation forms: real XLSForms converted by pyxform, the typed model read from the
XForm, and every rule that checks a filled form's answers against it."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from domain.errors import AnswerInvalid
from domain.forms import QuestionType, check_answers, critical_answers
from domain.values import Phase
from forms.library import STANDARD_SET
from forms.xlsform import FormImportError, convert
from forms.xpath import CONDITIONS, check_expression

FORMS = Path(__file__).with_name("forms")
STATION_CHECK = FORMS / "station_check.md"


def _form() -> Any:
    return convert(STATION_CHECK).form


def test_the_standard_set_converts_with_every_phase_and_language() -> None:
    phases = {}
    for path in sorted(STANDARD_SET.glob("*.md")):
        if path.name == "README.md":
            continue
        converted = convert(path)
        assert converted.warnings == [], path.name
        form = converted.form
        phases[form.phase] = form
        assert form.languages == ["English (en)", "Русский (ru)", "Türkçe (tr)"]
        assert {"station_id", "team_id", "start", "end"} <= set(form.fields)
        assert any(q.critical for q in form.questions), f"{path.name} marks no critical answer"
        for question in form.questions:
            assert set(question.labels) == set(form.languages), question.name
    assert set(phases) == set(Phase)
    # Comparable question by question: a name shared by two forms is the same question.
    shared: dict[str, tuple[QuestionType, str]] = {}
    for form in phases.values():
        for q in form.questions:
            seen = shared.setdefault(q.name, (q.type, q.label("en")))
            assert seen == (q.type, q.label("en")), q.name


def test_a_multi_language_form_is_read_typed_from_its_xform() -> None:
    converted = convert(STATION_CHECK)
    form = converted.form
    assert (form.form_id, form.version, form.phase) == ("station_check", "1", Phase.voting)
    assert converted.xform_md5.startswith("md5:") and len(converted.xform_md5) == 36
    types = {q.name: q.type for q in form.questions}
    assert types == {
        "box_sealed": QuestionType.select_one,
        "voters_in_queue": QuestionType.integer,
        "problems": QuestionType.select_multiple,
        "ramp": QuestionType.select_one,
        "ramp_width": QuestionType.decimal,
        "opened_on": QuestionType.date,
        "opened_at": QuestionType.time,
        "location": QuestionType.geopoint,
        "protocol_photo": QuestionType.image,
        "comments": QuestionType.text,
        "thanks": QuestionType.note,
    }
    sealed = form.question("box_sealed")
    assert sealed is not None and sealed.label("ru") == "Урна опечатана?"
    assert sealed.label("tr") == "Sandık mühürlü mü?"
    assert [c.name for c in sealed.choices] == ["yes", "no"]
    assert sealed.critical is not None and "/data/box_sealed" in sealed.critical
    width = form.question("ramp_width")
    assert width is not None and width.group == "/data/access"


GOOD: dict[str, Any] = {"box_sealed": "yes", "voters_in_queue": 12, "ramp": "no"}


@pytest.mark.parametrize(
    ("answers", "question", "said"),
    [
        ({**GOOD, "turnout": 3}, "turnout", "has no such question"),
        ({**GOOD, "thanks": "x"}, "thanks", "is a note"),
        ({**GOOD, "box_sealed": "maybe"}, "box_sealed", "not one of its choices"),
        ({**GOOD, "box_sealed": True}, "box_sealed", "takes one choice's name"),
        ({**GOOD, "voters_in_queue": "12"}, "voters_in_queue", "takes a whole number"),
        ({**GOOD, "voters_in_queue": 1.5}, "voters_in_queue", "takes a whole number"),
        ({**GOOD, "voters_in_queue": -1}, "voters_in_queue", "breaks its constraint"),
        ({"box_sealed": "yes", "ramp": "no"}, "voters_in_queue", "is required here"),
        ({**GOOD, "problems": ["stuffing"]}, "problems", "is skipped here"),
        (
            {"box_sealed": "no", "ramp": "no", "problems": ["stuffing", "no_seal", "other"]},
            "problems",
            "At most two",
        ),
        ({"box_sealed": "no", "ramp": "no", "problems": "stuffing"}, "problems", "a list"),
        ({"box_sealed": "no", "ramp": "no", "problems": ["x"]}, "problems", "not one of"),
        ({**GOOD, "ramp": "yes", "ramp_width": 0}, "ramp_width", "breaks its constraint"),
        ({**GOOD, "ramp_width": 1.2}, "ramp_width", "is skipped here"),
        ({**GOOD, "opened_on": "2026-02-30"}, "opened_on", "ISO 8601 date"),
        ({**GOOD, "opened_at": "7 am"}, "opened_at", "time of day"),
        ({**GOOD, "location": "43.2 200"}, "location", "longitude"),
        ({**GOOD, "location": "north"}, "location", "latitude longitude"),
        ({**GOOD, "protocol_photo": "../etc/passwd"}, "protocol_photo", "file name"),
        ({**GOOD, "comments": "x" * 501}, "comments", "breaks its constraint"),
        ({"voters_in_queue": 3, "ramp": "no"}, "box_sealed", "is required here"),
    ],
)
def test_an_answer_its_question_does_not_take_is_refused_naming_it(
    answers: dict[str, Any], question: str, said: str
) -> None:
    with pytest.raises(AnswerInvalid) as refused:
        check_answers(_form(), answers, CONDITIONS)
    assert refused.value.question == question
    assert said in str(refused.value)
    assert str(refused.value).startswith("answer_invalid: question")


def test_answers_a_form_takes_pass_and_critical_ones_are_found() -> None:
    form = _form()
    full = {
        **GOOD,
        "ramp": "yes",
        "ramp_width": 1.5,
        "opened_on": "2026-12-06",
        "opened_at": "07:00",
        "location": "43.25 76.95 800 5",
        "protocol_photo": "protocol-1.jpg",
        "comments": "Calm.",
    }
    check_answers(form, full, CONDITIONS)
    assert critical_answers(form, full, CONDITIONS) == []
    unsealed: dict[str, Any] = {"box_sealed": "no", "ramp": "no", "problems": ["no_seal"]}
    check_answers(form, unsealed, CONDITIONS)
    assert critical_answers(form, unsealed, CONDITIONS) == ["box_sealed"]


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        (". <= today()", "today()"),
        ("jr:choice-name(., 'x')", "jr:..."),
        ("pulldata('a', 'b', 'c', 'd')", "pulldata()"),
        (". = ", "not an XPath 1.0 expression"),
        ("(" * 5000 + "1" + ")" * 5000, "nested too deeply"),
    ],
)
def test_an_expression_eom_cannot_evaluate_is_refused(expression: str, said: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_expression(expression)
    assert said in str(refused.value)


def _xlsform(tmp_path: Path, rows: str, settings: str = "| | t | 1 | voting |") -> Path:
    path = tmp_path / "f.md"
    path.write_text(
        "| survey |\n| | type | name | label | relevant | constraint |\n"
        "| | start | start | | | |\n| | end | end | | | |\n"
        "| | text | station_id | Station | | |\n"
        f"{rows}\n| settings |\n| | form_id | version | phase |\n{settings}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("rows", "settings", "said"),
    [
        ("| | integer | n | N | | . <= today() |", "| | t | 1 | voting |", "today()"),
        ("| | calculate | c | | | |", "| | t | 1 | voting |", "calculation"),
        (
            "| | begin repeat | r | R | | |\n| | text | x | X | | |\n| | end repeat | | | | |",
            "| | t | 1 | voting |",
            "repeats are not supported",
        ),
        ("| | audio | a | A | | |", "| | t | 1 | voting |", "not supported"),
        ("| | integer | n | N | | |", "| | t | | voting |", "version"),
        ("| | integer | n | N | | |", "| | t | 1 | |", "phase"),
        ("| | integer | n | N | | |", "| | t | 1 | lunch |", "phase 'lunch'"),
        ("| | integer | n | N | | |\n| | integer | n | N2 | | |", "| | t | 1 | voting |", "n"),
    ],
)
def test_an_xlsform_eom_cannot_take_is_refused_at_import(
    tmp_path: Path, rows: str, settings: str, said: str
) -> None:
    with pytest.raises(FormImportError) as refused:
        convert(_xlsform(tmp_path, rows, settings))
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("f.xlsx", b"not a zip", "not a readable .xlsx XLSForm"),
        ("f.md", b"", "not a readable .md XLSForm"),
        ("f.csv", b"\xff\xfe\x00garbage", "not a readable XLSForm"),
        ("f.csv", b"type,name,label\ntext,station_id,S\n", "'survey' sheet"),
        ("f.txt", b"| survey |", "an XLSForm is a .xlsx"),
    ],
)
def test_a_file_that_is_no_xlsform_is_refused_by_name(
    tmp_path: Path, name: str, content: bytes, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FormImportError) as refused:
        convert(path)
    assert str(refused.value).startswith(name) and said in str(refused.value)


@pytest.mark.parametrize(
    ("rows", "column", "said"),
    [
        ("| | select_one_from_file stations.csv | s | S | |", "", "select_one_from_file"),
        (
            "| | select_one yn | a | A | |\n| | select_one yn | b | B | name != ${a} |",
            "",
            "choice_filter",
        ),
        ("| | select_one yn | a | A | |", "| | start | start | | |\n", "type end named end"),
    ],
)
def test_choices_eom_would_not_check_and_forms_without_times_are_refused(
    tmp_path: Path, rows: str, column: str, said: str
) -> None:
    path = tmp_path / "f.md"
    times = column or "| | start | start | | |\n| | end | end | | |\n"
    path.write_text(
        "| survey |\n| | type | name | label | choice_filter |\n"
        f"{times}| | text | station_id | Station | |\n{rows}\n"
        "| choices |\n| | list_name | name | label |\n| | yn | yes | Yes |\n| | yn | no | No |\n"
        "| settings |\n| | form_id | version | phase |\n| | t | 1 | voting |\n",
        encoding="utf-8",
    )
    with pytest.raises(FormImportError) as refused:
        convert(path)
    assert said in str(refused.value)


def test_a_form_without_a_station_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.md"
    path.write_text(
        "| survey |\n| | type | name | label |\n| | integer | n | N |\n"
        "| settings |\n| | form_id | version | phase |\n| | t | 1 | voting |\n",
        encoding="utf-8",
    )
    with pytest.raises(FormImportError, match="station_id"):
        convert(path)


def _visit(station: str, team: str, position: int, answers: dict[str, Any]) -> Any:
    from datetime import UTC, datetime

    from intake.visits import RecordedVisit

    return RecordedVisit(
        visit_id=f"v{position}",
        station_id=station,
        locality="Nur-Sultan",
        team_id=team,
        arrived_at=datetime(2021, 1, 10, 8, tzinfo=UTC),
        departed_at=datetime(2021, 1, 10, 9, tzinfo=UTC),
        checklists=[
            {"phase": "voting", "form_id": "station_check", "form_version": "1", "answers": answers}
        ],
        findings=[],
        stream_id=f"m/stations/{station}",
        stream_version=1,
        global_position=position,
    )


def test_a_question_its_relevant_skipped_is_out_of_the_denominator() -> None:
    from analysis.figures import analyse

    form = _form()
    visits = [
        _visit("A", "t1", 1, {"box_sealed": "yes", "voters_in_queue": 10, "ramp": "no"}),
        _visit("B", "t1", 2, {"box_sealed": "no", "ramp": "yes"}),
        _visit("C", "t2", 3, {"box_sealed": "yes", "voters_in_queue": 0, "ramp": "no"}),
    ]
    found = analyse("m", visits, [form])
    figures = {(f.question, f.scope): f for f in found.figures}
    sealed = figures[("box_sealed", "all")]
    assert sealed.asked == 3
    assert {c.answer: (c.stations, c.share, c.events) for c in sealed.counts} == {
        "yes": (2, 0.6667, [1, 3]),
        "no": (1, 0.3333, [2]),
    }
    assert figures[("voters_in_queue", "all")].asked == 2
    assert figures[("ramp_width", "all")].asked == 1  # only where a ramp was seen
    assert figures[("box_sealed", "team:t2")].asked == 1
    assert found.stations_observed == 3 and found.as_of_position == 3


def _check_in_child(path: str, answer: str, verdicts: Any) -> None:
    form = convert(Path(path)).form
    try:
        check_answers(form, {"code": answer}, CONDITIONS)
        verdicts.put("accepted")
    except AnswerInvalid as refused:
        verdicts.put(str(refused))


def test_a_regex_that_backtracks_without_end_refuses_the_answer_and_returns(
    tmp_path: Path,
) -> None:
    """An author's pattern with catastrophic backtracking meets an observer's answer: the
    search is cut off and the answer refused, and the process is not held (checked in a
    child process, which is ended if it hangs)."""
    path = _xlsform(tmp_path, "| | text | code | Code | | regex(., '^(a+)+$') |")
    context = multiprocessing.get_context("spawn")
    verdicts = context.Queue()
    child = context.Process(target=_check_in_child, args=(str(path), "a" * 64 + "!", verdicts))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        raise AssertionError("regex() held the process")
    assert "breaks its constraint" in verdicts.get(timeout=5)
    check_answers(convert(path).form, {"code": "aaaa"}, CONDITIONS)


OR_FORM = """\
| survey |
| | type | name | label | relevant | required |
| | start | start | | | |
| | end | end | | | |
| | text | station_id | Station | | yes |
| | select_one yes_no | a | A | | yes |
| | integer | n | N | ${a} = 'no' | |
| | text | why | Why | ${n} > 100 or ${a} = 'yes' | yes |
| | text | calm | Calm | not(${n} > 100) | |
| | text | odd | Odd | ${n} != 5 | |
| choices |
| | list_name | name | label |
| | yes_no | yes | Yes |
| | yes_no | no | No |
| settings |
| | form_id | form_title | version | phase |
| | or_check | Or check | 1 | opening |
"""


@pytest.mark.parametrize(
    ("answers", "refused"),
    [
        # n unanswered: `${n} > 100` is false (NaN), the `or` goes on to `${a} = 'yes'`.
        ({"a": "yes", "why": "long queue"}, None),
        ({"a": "yes"}, "'why': is required here"),
        # not(NaN > 100) is true, and NaN != 5 is true (XPath 1.0, 3.4).
        ({"a": "yes", "why": "w", "calm": "all calm", "odd": "x"}, None),
        ({"a": "no", "n": 500, "why": "w", "calm": "c"}, "'calm': is skipped here"),
        ({"a": "no", "n": 5, "odd": "x"}, "'odd': is skipped here"),
    ],
)
def test_skip_logic_over_an_unanswered_number_is_xpath_1(
    tmp_path: Path, answers: dict[str, Any], refused: str | None
) -> None:
    """Where elementpath raises on a comparison with an empty answer, XPath 1.0 (and ODK
    Collect) compare with NaN: only that comparison is false, the rest of the expression
    counts."""
    path = tmp_path / "or.md"
    path.write_text(OR_FORM, encoding="utf-8")
    form = convert(path).form
    if refused is None:
        check_answers(form, answers, CONDITIONS)
    else:
        with pytest.raises(AnswerInvalid, match=re.escape(refused)):
            check_answers(form, answers, CONDITIONS)


def test_a_teams_later_visit_replaces_its_earlier_one_in_the_counts() -> None:
    from analysis.figures import analyse

    form = _form()
    visits = [
        _visit("A", "t1", 1, {"box_sealed": "yes", "voters_in_queue": 10, "ramp": "no"}),
        _visit("A", "t1", 2, {"box_sealed": "no", "ramp": "no"}),
        _visit("B", "t1", 3, {"box_sealed": "yes", "voters_in_queue": 1, "ramp": "no"}),
        _visit("B", "t2", 4, {"box_sealed": "no", "ramp": "no"}),
    ]
    figures = {(f.question, f.scope): f for f in analyse("m", visits, [form]).figures}
    sealed = figures[("box_sealed", "all")]
    assert sealed.asked == 2
    assert {c.answer: (c.stations, c.events) for c in sealed.counts} == {
        "no": (2, [2, 4]),
        "yes": (1, [3]),
    }
    # A conflict is two teams answering differently, not one team's two visits.
    assert sealed.conflicting_stations == ["B"]
    assert {c.answer: c.stations for c in figures[("box_sealed", "team:t1")].counts} == {
        "no": 1,
        "yes": 1,
    }
