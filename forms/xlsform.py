"""XLSForm → XForm → eom's typed form model.

pyxform (the ODK reference implementation of XLSForm) converts the workbook (``.xlsx``,
``.xls``, ``.csv`` or ``.md``) into an XForm; the typed model (``domain.forms``) is then
read from that XForm, the document every OpenRosa client receives, so that what eom checks
is what clients are given. Sources: the XLSForm specification (https://xlsform.org), the
ODK XForms specification (https://getodk.github.io/xforms-spec/).

What eom adds to an XLSForm: the form's phase (a ``phase`` column of the settings sheet,
or given on import), and critical answers (a ``bind::eom:critical`` column holding an
XPath condition, with ``eom="https://eom.dev/xforms"`` among the settings' ``namespaces``).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pyxform import xls2json, xls2xform
from pyxform.errors import PyXFormError

from domain.forms import (
    FORM_NAMESPACE,
    RESERVED_FIELDS,
    Choice,
    FormDefinition,
    Group,
    Question,
    QuestionType,
)
from domain.values import Phase, is_identifier
from forms.xpath import ExpressionRefused, check_expression

XLSFORM_SUFFIXES = (".xlsx", ".xls", ".csv", ".md")

_XF = "http://www.w3.org/2002/xforms"
_H = "http://www.w3.org/1999/xhtml"
_JR = "http://openrosa.org/javarosa"
_NS = {"xf": _XF, "h": _H, "jr": _JR}

_INPUT_TYPES = {
    "string": QuestionType.text,
    "int": QuestionType.integer,
    "decimal": QuestionType.decimal,
    "date": QuestionType.date,
    "time": QuestionType.time,
    "dateTime": QuestionType.dateTime,
    "geopoint": QuestionType.geopoint,
}
_METADATA = {"start", "end", "today", "deviceid", "username", "phonenumber", "email"}


class FormImportError(ValueError):
    """An XLSForm eom cannot take, with where (sheet, row or question) and why."""


@dataclass(frozen=True)
class ConvertedForm:
    form: FormDefinition
    xform: str
    xform_md5: str
    """``md5:<hex>`` of the XForm's UTF-8 bytes, as OpenRosa's form list states a hash."""
    warnings: list[str]


def convert(path: Path, *, phase: Phase | None = None) -> ConvertedForm:
    """The form in the XLSForm at ``path``: its XForm (as pyxform makes it) and typed model.

    ``phase`` is the form's phase if its settings sheet names none (or the same one).
    Raises ``FormImportError`` for a file pyxform refuses (its message), a question type
    eom does not store (repeats, calculations, other media...), an expression eom cannot
    evaluate, a form without ``version``, phase or ``station_id`` field."""
    if path.suffix.lower() not in XLSFORM_SUFFIXES:
        raise FormImportError(f"{path.name}: an XLSForm is a {', '.join(XLSFORM_SUFFIXES)} file")
    if not path.is_file():
        raise FormImportError(f"{path}: no such file")
    try:
        result = xls2xform.convert(xlsform=str(path), warnings=[])
        settings = _settings(path)
    except PyXFormError as error:
        said = str(error)
        if "was not recognized as a supported type" in said:
            said = f"not a readable {path.suffix.lower()} XLSForm (empty, or not that format)"
        raise FormImportError(f"{path.name}: {said}") from None
    except Exception as error:  # pyxform on a file it cannot read: any failure is the file's
        raise FormImportError(
            f"{path.name}: not a readable XLSForm (it has a 'survey' sheet with type, name and "
            f"label columns; pyxform: {type(error).__name__}: {error})"
        ) from None
    named = str(settings.get("phase") or "").strip() or None
    if named is not None and named not in {p.value for p in Phase}:
        raise FormImportError(
            f"{path.name}: settings: phase {named!r} is not one of "
            f"{', '.join(p.value for p in Phase)}"
        )
    if named is not None and phase is not None and named != phase.value:
        raise FormImportError(
            f"{path.name}: settings name phase {named!r}, the import {phase.value!r}"
        )
    chosen = Phase(named) if named is not None else phase
    if chosen is None:
        raise FormImportError(
            f"{path.name}: settings: a form names its phase (a 'phase' column: "
            f"{', '.join(p.value for p in Phase)}), or the import gives it (--phase)"
        )
    form = read_xform(result.xform, phase=chosen, source=path.name)
    md5 = hashlib.md5(result.xform.encode("utf-8"), usedforsecurity=False).hexdigest()
    return ConvertedForm(form, result.xform, f"md5:{md5}", list(result.warnings or []))


def _settings(path: Path) -> dict[str, Any]:
    parsed = xls2json.parse_file_to_json(str(path), warnings=[])
    return {k: v for k, v in parsed.items() if not isinstance(v, list | dict)}


def _labels(element: ET.Element | None, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    """A ``label``/``hint`` element's text per language (its ``jr:itext`` reference looked
    up in every translation), or its own text."""
    if element is None:
        return {}
    ref = element.get("ref")
    if ref:
        match = re.fullmatch(r"jr:itext\('(.+)'\)", ref.strip())
        if match:
            key = match.group(1)
            return {lang: texts[key] for lang, texts in itext.items() if key in texts}
    text = "".join(element.itertext()).strip()
    return {"": text} if text else {}


def _itext(model: ET.Element) -> tuple[dict[str, dict[str, str]], str | None]:
    translations: dict[str, dict[str, str]] = {}
    default = None
    for translation in model.iterfind("xf:itext/xf:translation", _NS):
        lang = translation.get("lang", "")
        if translation.get("default"):
            default = lang
        texts = translations.setdefault(lang, {})
        for text in translation.iterfind("xf:text", _NS):
            values = [v for v in text.iterfind("xf:value", _NS) if v.get("form") is None]
            if values:
                texts[text.get("id", "")] = "".join(values[0].itertext()).strip()
    return translations, default


def _message(value: str | None, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    if not value:
        return {}
    match = re.fullmatch(r"jr:itext\('(.+)'\)", value.strip())
    if match:
        return {lang: t[match.group(1)] for lang, t in itext.items() if match.group(1) in t}
    return {"": value}


class _Reader:
    def __init__(self, document: ET.Element, source: str) -> None:
        self.source = source
        model = document.find("h:head/xf:model", _NS)
        if model is None:
            raise FormImportError(f"{source}: the XForm has no model")
        self.model = model
        self.itext, self.default_language = _itext(model)
        instances = model.findall("xf:instance", _NS)
        if not instances or len(instances[0]) != 1:
            raise FormImportError(f"{source}: the XForm has no primary instance")
        self.root = instances[0][0]
        self.root_name = self.root.tag.rpartition("}")[2]
        self.secondary = {i.get("id", ""): i for i in instances[1:]}
        self.binds = {b.get("nodeset", ""): b for b in model.iterfind("xf:bind", _NS)}
        self.questions: list[Question] = []
        self.groups: list[Group] = []
        self.seen: set[str] = set()
        body = document.find("h:body", _NS)
        if body is None:
            raise FormImportError(f"{source}: the XForm has no body")
        self.body = body
        self.controls = {c.get("ref", "") for c in body.iter() if c.get("ref")}

    def expression(self, path: str, attribute: str, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            check_expression(value)
        except ExpressionRefused as refused:
            raise FormImportError(
                f"{self.source}: question {path.rsplit('/', 1)[-1]!r}: {attribute} "
                f"{value.strip()!r} {refused}"
            ) from None
        return value.strip()

    def choices(self, control: ET.Element) -> list[Choice]:
        itemset = control.find("xf:itemset", _NS)
        if itemset is not None:
            # Choices of the form's own lists, unfiltered: a choice_filter would hide choices
            # eom would still take, and a list from a file is not in the form.
            nodeset = itemset.get("nodeset", "")
            match = re.fullmatch(r"instance\('([^']+)'\)/root/item", nodeset)
            instance = self.secondary.get(match.group(1)) if match else None
            if instance is None or instance.get("src"):
                raise FormImportError(
                    f"{self.source}: question {control.get('ref', '').rsplit('/', 1)[-1]!r}: "
                    f"choices from {nodeset!r} (a choice_filter, or a list from an external "
                    "file such as select_one_from_file) are not supported; list the choices "
                    "in the choices sheet"
                )
            found = []
            for item in instance.iter(f"{{{_XF}}}item"):
                name = item.findtext(f"{{{_XF}}}name") or ""
                text_id = item.findtext(f"{{{_XF}}}itextId")
                labels = (
                    {lang: t[text_id] for lang, t in self.itext.items() if text_id in t}
                    if text_id
                    else {"": item.findtext(f"{{{_XF}}}label") or name}
                )
                found.append(Choice(name=name, labels=labels))
            return found
        return [
            Choice(
                name=item.findtext("xf:value", "", _NS),
                labels=_labels(item.find("xf:label", _NS), self.itext),
            )
            for item in control.iterfind("xf:item", _NS)
        ]

    def walk(self, container: ET.Element, group: str | None, relevant: list[str]) -> None:
        for control in container:
            tag = control.tag.removeprefix(f"{{{_XF}}}")
            ref = control.get("ref") or control.get("nodeset") or ""
            name = ref.rsplit("/", 1)[-1]
            if tag in ("label", "hint"):
                continue
            if tag == "repeat" or (tag == "group" and control.find("xf:repeat", _NS) is not None):
                raise FormImportError(
                    f"{self.source}: {name!r}: repeats are not supported (a station visit "
                    "answers each question once)"
                )
            bind = self.binds.get(ref)
            attrs = bind.attrib if bind is not None else {}
            if tag == "group":
                own = self.expression(ref, "relevant", attrs.get("relevant"))
                if ref:
                    self.groups.append(
                        Group(
                            name=name,
                            path=ref,
                            labels=_labels(control.find("xf:label", _NS), self.itext),
                            relevant=own,
                        )
                    )
                self.walk(control, ref or group, relevant + ([own] if own else []))
                continue
            self.question(control, tag, ref, name, attrs, group, relevant)

    def question(
        self,
        control: ET.Element,
        tag: str,
        ref: str,
        name: str,
        attrs: dict[str, str],
        group: str | None,
        relevant: list[str],
    ) -> None:
        bind_type = attrs.get("type", "string")
        if tag == "select1":
            kind = QuestionType.select_one
        elif tag == "select":
            kind = QuestionType.select_multiple
        elif tag == "upload" and control.get("mediatype", "").startswith("image/"):
            kind = QuestionType.image
        elif tag == "input" and attrs.get("readonly") == "true()" and bind_type == "string":
            kind = QuestionType.note
        elif tag == "input" and bind_type in _INPUT_TYPES:
            kind = _INPUT_TYPES[bind_type]
        else:
            shown = control.get("mediatype") or bind_type
            raise FormImportError(
                f"{self.source}: question {name!r}: a {tag} of type {shown} is not supported "
                f"(eom stores {', '.join(t.value for t in QuestionType)})"
            )
        if "calculate" in attrs:
            raise FormImportError(
                f"{self.source}: question {name!r}: calculations are not supported"
            )
        if name in RESERVED_FIELDS:
            if kind not in (QuestionType.text, QuestionType.select_one):
                raise FormImportError(
                    f"{self.source}: {name!r} names the report's "
                    f"{name.removesuffix('_id').replace('_', ' ')}: it is a text or select_one"
                )
            self.seen.add(name)
            return
        if not is_identifier(name):
            raise FormImportError(f"{self.source}: question name {name!r} is not an eom id")
        if name in self.seen:
            raise FormImportError(
                f"{self.source}: question name {name!r} is used twice: answers are keyed "
                "by name, so a name is used once in a form"
            )
        self.seen.add(name)
        own = self.expression(ref, "relevant", attrs.get("relevant"))
        critical = self.expression(ref, "eom:critical", attrs.get(f"{{{FORM_NAMESPACE}}}critical"))
        try:
            self.questions.append(
                Question(
                    name=name,
                    path=ref,
                    type=kind,
                    labels=_labels(control.find("xf:label", _NS), self.itext),
                    hints=_labels(control.find("xf:hint", _NS), self.itext),
                    required=attrs.get("required", "").strip() == "true()",
                    relevant=relevant + ([own] if own else []),
                    constraint=self.expression(ref, "constraint", attrs.get("constraint")),
                    constraint_messages=_message(attrs.get(f"{{{_JR}}}constraintMsg"), self.itext),
                    choices=self.choices(control) if tag in ("select1", "select") else [],
                    critical=critical,
                    group=group,
                )
            )
        except ValidationError as error:
            raise FormImportError(f"{self.source}: question {name!r}: {error}") from None

    def bodyless(self) -> list[str]:
        """The primary instance's fields without a control: metadata eom reads (``start``,
        ``end``, ``meta/instanceID``...); anything else (a calculation) is refused."""
        fields = []
        body_refs = self.controls
        for path, bind in self.binds.items():
            if path in body_refs or path.startswith(f"/{self.root_name}/meta/"):
                continue
            name = path.rsplit("/", 1)[-1]
            preload = bind.get(f"{{{_JR}}}preloadParams") or bind.get(f"{{{_JR}}}preload")
            if preload is not None and (name in _METADATA or preload in _METADATA):
                fields.append(name)
                continue
            raise FormImportError(
                f"{self.source}: {name!r} has no question (a calculate or hidden field): "
                "eom stores only what observers answer"
            )
        return fields


def read_xform(xform: str, *, phase: Phase, source: str = "the XForm") -> FormDefinition:
    """The typed model of ``xform`` (as pyxform writes it). Raises ``FormImportError``."""
    try:
        document = ET.fromstring(xform)
    except ET.ParseError as error:
        raise FormImportError(f"{source}: the XForm is not XML ({error})") from None
    reader = _Reader(document, source)
    reader.walk(reader.body, None, [])
    metadata = reader.bodyless()
    if "station_id" not in reader.seen:
        raise FormImportError(
            f"{source}: an eom form has a 'station_id' field (text or select_one): the "
            "polling station the form was filled at"
        )
    if not reader.questions:
        raise FormImportError(f"{source}: the form asks no question")
    missing = [name for name in ("start", "end") if name not in metadata]
    if missing:
        raise FormImportError(
            f"{source}: an eom form records when the visit started and ended: add "
            + " and ".join(f"a row of type {name} named {name}" for name in missing)
        )
    version = reader.root.get("version")
    form_id = reader.root.get("id") or ""
    if not version:
        raise FormImportError(
            f"{source}: settings: a form has a 'version' (a form version is never edited: a "
            "change is published as a new version)"
        )
    for label, value in (("form_id", form_id), ("version", version)):
        if not is_identifier(value):
            raise FormImportError(f"{source}: settings: {label} {value!r} is not an eom id")
    title = document.findtext("h:head/h:title", "", _NS).strip() or form_id
    languages = [lang for lang in reader.itext if lang]
    try:
        return FormDefinition(
            form_id=form_id,
            version=version,
            title=title,
            phase=phase,
            root=reader.root_name,
            languages=languages,
            default_language=reader.default_language,
            groups=reader.groups,
            questions=reader.questions,
            fields=sorted(reader.seen & RESERVED_FIELDS) + metadata,
        )
    except ValidationError as error:
        raise FormImportError(f"{source}: {error}") from None
