"""OpenRosa documents: the form list, the response envelope, and a submitted instance read
into a station-visit report.

Sources: the OpenRosa Form List API and Form Submission API (OpenRosa 1.0, as ODK
documents them: https://docs.getodk.org/openrosa-form-list/,
https://docs.getodk.org/openrosa-form-submission/), and the ODK XForms specification for
the instance's metadata (``meta/instanceID``, ``meta/deprecatedID``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from domain.forms import FormDefinition, QuestionType
from domain.values import Answer, is_identifier
from forms import FieldError

OPENROSA_VERSION = "1.0"
XFORMS_LIST_NS = "http://openrosa.org/xforms/xformsList"
RESPONSE_NS = "http://openrosa.org/http/response"
SUBMISSION_FILE = "xml_submission_file"
"""The multipart part that holds the instance (OpenRosa Form Submission API)."""


class InstanceInvalid(FieldError):
    """A submitted instance eom cannot read: ``field`` names the element at fault."""


@dataclass(frozen=True)
class ListedForm:
    form_id: str
    title: str
    version: str
    xform_md5: str
    download_url: str


def form_list(forms: Sequence[ListedForm]) -> str:
    """The ``<xforms>`` document of the Form List API (one ``<xform>`` per form)."""
    items = "".join(
        "<xform>"
        f"<formID>{escape(f.form_id)}</formID><name>{escape(f.title)}</name>"
        f"<version>{escape(f.version)}</version><hash>{escape(f.xform_md5)}</hash>"
        f"<downloadUrl>{escape(f.download_url)}</downloadUrl>"
        "</xform>"
        for f in forms
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><xforms xmlns="{XFORMS_LIST_NS}">{items}</xforms>'
    )


def response(message: str, *, nature: str = "submit_success") -> str:
    """The ``<OpenRosaResponse>`` envelope a client shows its user."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OpenRosaResponse xmlns="{RESPONSE_NS}">'
        f'<message nature="{escape(nature)}">{escape(message)}</message></OpenRosaResponse>'
    )


@dataclass
class Instance:
    """A filled form as submitted: which form, its ids, and its leaf values by path."""

    form_id: str
    version: str
    root: str
    instance_id: str
    deprecated_id: str | None
    values: dict[str, str] = field(default_factory=dict)
    """Leaf elements' text by path (``/data/access/ramp``), empty ones included."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def read_instance(document: bytes) -> Instance:
    """The instance in ``document`` (the ``xml_submission_file`` part). Raises
    ``InstanceInvalid`` for XML that is not well formed, uses entities or a DTD
    (refused unexpanded), or lacks the form's id or ``meta/instanceID``."""
    try:
        root = fromstring(document, forbid_dtd=True)
    except DefusedXmlException:
        raise InstanceInvalid(
            SUBMISSION_FILE, "declares a DTD or entities, which instances never need"
        ) from None
    except ET.ParseError as error:
        raise InstanceInvalid(SUBMISSION_FILE, f"is not well-formed XML ({error})") from None
    name = _local(root.tag)
    form_id = root.get("id")
    if not form_id:
        raise InstanceInvalid(f"/{name}/@id", "the instance names no form id")
    values: dict[str, str] = {}

    def walk(element: Any, path: str) -> None:
        children = list(element)
        if not children:
            if path in values:
                # A station visit answers each question once (no repeats): a second
                # element would silently replace the first.
                raise InstanceInvalid(path, "appears twice; each field is answered once")
            values[path] = (element.text or "").strip()
        for child in children:
            walk(child, f"{path}/{_local(child.tag)}")

    walk(root, f"/{name}")
    instance_id = values.pop(f"/{name}/meta/instanceID", "")
    if not instance_id:
        raise InstanceInvalid(f"/{name}/meta/instanceID", "the instance has no instanceID")
    deprecated = values.pop(f"/{name}/meta/deprecatedID", "") or None
    return Instance(
        form_id=form_id,
        version=root.get("version") or "",
        root=name,
        instance_id=instance_id,
        deprecated_id=deprecated,
        values={p: v for p, v in values.items() if not p.startswith(f"/{name}/meta/")},
    )


_XSD_INT = re.compile(r"[+-]?[0-9]{1,30}")
_XSD_DECIMAL = re.compile(r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})")
"""The lexical forms of xsd:int and xsd:decimal (XML Schema Part 2, 3.2.3 and 3.3.17):
ASCII digits only; Python's int() and float() take other digits, underscores, exponents,
NaN and infinities, which an XForm's answer never is (and int() refuses past 4,300
digits: longer numbers are passed on as text, refused by the form's check)."""


def _typed(kind: QuestionType, text: str) -> Answer:
    """``text`` as ``kind``'s answer; text that is not one is passed on as text, for the
    form's check to refuse naming the question."""
    if kind is QuestionType.integer:
        return int(text) if _XSD_INT.fullmatch(text) else text
    if kind is QuestionType.decimal:
        return float(text) if _XSD_DECIMAL.fullmatch(text) else text
    if kind is QuestionType.select_multiple:
        return text.split()
    return text


@dataclass(frozen=True)
class FilledForm:
    """An instance read against its form: what a station-visit report carries."""

    submission_id: str
    corrects: str | None
    station_id: str
    team_id: str | None
    started: str
    ended: str
    answers: dict[str, Answer]


def filled_form(form: FormDefinition, instance: Instance) -> FilledForm:
    """``instance`` read against ``form``: its answers typed by their questions (text a
    question's type cannot hold is passed on for the form's check to refuse, naming the
    question), its station and team, its ``start`` and ``end``. Raises ``InstanceInvalid``
    naming a missing ``station_id``, ``start`` or ``end``, or an id eom cannot store."""
    prefix = f"/{instance.root}"
    if instance.root != form.root:
        raise InstanceInvalid(
            prefix, f"form {form.form_id!r}'s instance is <{form.root}>, not <{instance.root}>"
        )
    fields: dict[str, str] = {}
    answers: dict[str, Answer] = {}
    by_path = {q.path: q for q in form.questions}
    group_paths = {g.path for g in form.groups}
    for path, text in instance.values.items():
        question = by_path.get(path)
        name = path.rsplit("/", 1)[-1]
        if question is None:
            if path.count("/") == 2 and name in {"station_id", "team_id", "start", "end"}:
                fields[name] = text
            elif text and path not in group_paths:
                raise InstanceInvalid(
                    path,
                    f"is no question of form {form.form_id!r} version {form.version!r} "
                    "(an answer is at its question's path)",
                )
            continue
        if text and question.type is not QuestionType.note:
            answers[question.name] = _typed(question.type, text)
        elif text:
            answers[question.name] = text
    for needed in ("station_id", "start", "end"):
        if not fields.get(needed):
            raise InstanceInvalid(
                f"{prefix}/{needed}",
                "is empty: an eom form records the polling station and when the visit "
                "started and ended",
            )
    for label, value in (
        ("meta/instanceID", instance.instance_id),
        ("meta/deprecatedID", instance.deprecated_id),
    ):
        if value is not None and not is_identifier(value):
            raise InstanceInvalid(f"{prefix}/{label}", f"{value!r} is not an id eom can store")
    return FilledForm(
        submission_id=instance.instance_id,
        corrects=instance.deprecated_id,
        station_id=fields["station_id"],
        team_id=fields.get("team_id") or None,
        started=fields["start"],
        ended=fields["end"],
        answers=answers,
    )
