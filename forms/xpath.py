"""XPath 1.0 for forms: the adapter that evaluates an XForm's ``relevant``, ``constraint``
and ``eom:critical`` expressions, over elementpath (a maintained XPath 1.0-3.1 library).

elementpath's ``XPath1Parser`` knows the functions of XPath 1.0 itself; ODK XForms adds
functions of its own (https://getodk.github.io/xforms-spec/#xpath-functions). This parser
adds those eom evaluates exactly as the specification says: ``selected``,
``count-selected``, ``regex``, ``boolean-from-string``, ``coalesce`` and ``int``. Any
other function (``today()``, ``jr:choice-name()``, ``pulldata()``...) is refused when a form
is imported (``check_expression``), so a form is never stored with an expression eom
would have to guess at.

An expression is evaluated on the form's primary instance built from the answers (a
``select_multiple`` answer as its names separated by spaces, as ODK stores it). Where
XPath 1.0 compares an empty value with a number, the comparison is false (``number('')``
is NaN); elementpath raises instead, which is taken as false the same way.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from copy import copy
from decimal import Decimal
from functools import lru_cache
from itertools import product
from typing import Any

import regex
from elementpath import XPath1Parser, XPathContext
from elementpath.exceptions import ElementPathError

from domain.forms import FormDefinition
from domain.values import Answer


class OdkXPathParser(XPath1Parser):
    """XPath 1.0 with the ODK XForms functions eom evaluates."""


_method = OdkXPathParser.method
_function = OdkXPathParser.function

_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_ARITHMETIC = ("+", "-", "*", "div", "mod")


_NUMBER = re.compile(r"\s*-?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*")
"""XPath 1.0's Number (section 3.7) with surrounding white space: what number() reads."""


def _number(value: Any) -> float:
    """XPath 1.0's number() of an atomized value: NaN for a string that is no Number (an
    unanswered question is the empty string)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | Decimal):
        return float(value)
    text = str(value)
    return float(text) if _NUMBER.fullmatch(text) else math.nan


def _xpath1_comparison_data(self: Any, context: Any = None) -> Iterator[tuple[Any, Any]]:
    """The pairs a comparison compares, by XPath 1.0's rules (section 3.4): with a boolean,
    as booleans; with a number, or for ``<``, ``<=``, ``>``, ``>=``, as numbers (NaN for
    text that is none); else as strings. elementpath compares an element's text with a
    number as unequal whatever it holds (``/data/n = 5`` is false for ``<n>5</n>``) and
    raises on text that is no number."""
    left = list(self[0].atomization(copy(context)))
    right = list(self[1].atomization(copy(context)))
    if not left or not right:
        return
    if len(left) == 1 and isinstance(left[0], bool):
        yield left[0], self.boolean_value(right)
        return
    if len(right) == 1 and isinstance(right[0], bool):
        yield self.boolean_value(left), right[0]
        return

    def is_number(x: Any) -> bool:
        return isinstance(x, int | float | Decimal) and not isinstance(x, bool)

    if self.symbol in ("<", "<=", ">", ">=") or any(map(is_number, left + right)):
        yield from product(map(_number, left), map(_number, right))
    else:
        yield from product(map(str, left), map(str, right))


def _arithmetic_nan(evaluate: Any) -> Any:
    def nan_aware(self: Any, context: Any = None) -> Any:
        try:
            return evaluate(self, context)
        except ElementPathError as error:
            if "FORG0001" in str(error) or "could not convert" in str(error):
                return math.nan  # XPath 1.0: arithmetic with NaN is NaN
            raise

    return nan_aware


def _xpath1(symbol: str) -> None:
    """This parser's token for ``symbol``: elementpath's, with XPath 1.0's comparisons
    and NaN arithmetic, so that ``${n} > 100 or ${a} = 'yes'`` with ``n`` unanswered is
    ``${a} = 'yes'``, as ODK Collect evaluates it."""
    base = OdkXPathParser.symbol_table[symbol]
    members = (
        {"iter_comparison_data": _xpath1_comparison_data}
        if symbol in _COMPARISONS
        else {"evaluate": _arithmetic_nan(base.evaluate)}
    )
    OdkXPathParser.symbol_table[symbol] = type(f"_Odk{base.__name__}", (base,), members)


for _symbol in (*_COMPARISONS, *_ARITHMETIC):
    _xpath1(_symbol)


def _text(token: Any, context: Any, index: int) -> str:
    return str(token.string_value(token.get_argument(context, index=index)))


@_method(_function("selected", nargs=2))
def evaluate__selected(self: Any, context: Any = None) -> bool:
    return _text(self, context, 1).strip() in _text(self, context, 0).split()


@_method(_function("count-selected", nargs=1))
def evaluate__count_selected(self: Any, context: Any = None) -> int:
    return len(_text(self, context, 0).split())


REGEX_SECONDS = 0.05
"""How long one ``regex()`` may search: a pattern that backtracks without end on an
observer's answer must not hold the process (the answer is then refused)."""


@_method(_function("regex", nargs=2))
def evaluate__regex(self: Any, context: Any = None) -> bool:
    try:
        found = regex.search(
            _text(self, context, 1), _text(self, context, 0), timeout=REGEX_SECONDS
        )
    except (regex.error, TimeoutError):
        return False
    return found is not None


@_method(_function("boolean-from-string", nargs=1))
def evaluate__boolean_from_string(self: Any, context: Any = None) -> bool:
    return _text(self, context, 0) in ("true", "1")


@_method(_function("coalesce", nargs=2))
def evaluate__coalesce(self: Any, context: Any = None) -> str:
    return _text(self, context, 0) or _text(self, context, 1)


@_method(_function("int", nargs=1))
def evaluate__int(self: Any, context: Any = None) -> float:
    value = self.number_value(self.get_argument(context, index=0))
    return float(math.trunc(value)) if math.isfinite(value) else value


EVALUATED_FUNCTIONS = (
    "selected",
    "count-selected",
    "regex",
    "boolean-from-string",
    "coalesce",
    "int",
)
"""The ODK XForms functions eom evaluates, besides XPath 1.0's own."""

_PARSER = OdkXPathParser(namespaces={})


class ExpressionRefused(ValueError):
    """An expression eom cannot evaluate (a syntax error, an unknown function)."""


@lru_cache(maxsize=4096)
def _parsed(expression: str) -> Any:
    try:
        return _PARSER.parse(expression)
    except RecursionError:
        raise ExpressionRefused("is nested too deeply for eom to read") from None
    except ElementPathError as error:
        message = str(error)
        unknown = re.search(r"unknown function '([^']+)'|prefix '([^']+)' is not declared", message)
        if unknown is not None:
            name = unknown.group(1) or f"{unknown.group(2)}:..."
            raise ExpressionRefused(
                f"uses the function {name}(), which eom does not evaluate (it evaluates XPath "
                f"1.0's functions and {', '.join(f'{f}()' for f in EVALUATED_FUNCTIONS)})"
            ) from None
        raise ExpressionRefused(f"is not an XPath 1.0 expression eom can read: {message}") from None


def check_expression(expression: str) -> None:
    """Nothing if ``expression`` is XPath 1.0 eom can evaluate; else ``ExpressionRefused``
    saying why (the function it does not know, or the syntax error)."""
    _parsed(expression)


def _serialised(answer: Answer) -> str:
    if isinstance(answer, bool):
        return "true" if answer else "false"
    if isinstance(answer, list):
        return " ".join(answer)
    if isinstance(answer, float):
        return format(Decimal(repr(answer)), "f")
    return str(answer)


def primary_instance(form: FormDefinition, answers: Mapping[str, Answer]) -> ET.Element:
    """The form's primary instance holding ``answers`` (unanswered questions empty)."""
    root = ET.Element(form.root)
    nodes: dict[str, ET.Element] = {f"/{form.root}": root}

    def node(path: str) -> ET.Element:
        found = nodes.get(path)
        if found is None:
            parent, _, name = path.rpartition("/")
            found = ET.SubElement(node(parent), name)
            nodes[path] = found
        return found

    for group in form.groups:
        node(group.path)
    for question in form.questions:
        element = node(question.path)
        answer = answers.get(question.name)
        if answer is not None:
            element.text = _serialised(answer)
    return root


class XPathConditions:
    """``domain.forms.Conditions`` over elementpath."""

    def on(self, form: FormDefinition, answers: Mapping[str, Answer]) -> Callable[[str, str], bool]:
        root = primary_instance(form, answers)
        prefix = f"/{form.root}"
        by_path: dict[str, ET.Element] = {prefix: root}
        for path, element in _paths(root, prefix):
            by_path[path] = element

        def holds(expression: str, at: str) -> bool:
            token = _parsed(expression)
            context = XPathContext(root, item=by_path.get(at, root))
            try:
                return bool(token.boolean_value(token.evaluate(context)))
            except (ElementPathError, ArithmeticError, ValueError, TypeError):
                return False  # XPath 1.0: a comparison with NaN is false

        return holds


def _paths(element: ET.Element, path: str) -> list[tuple[str, ET.Element]]:
    found = []
    for child in element:
        child_path = f"{path}/{child.tag}"
        found.append((child_path, child))
        found.extend(_paths(child, child_path))
    return found


CONDITIONS = XPathConditions()
