"""What a model accepts can be stored, hashed and delivered: a property over every
command, report and directory model, against the real PostgreSQL.

Hypothesis takes a valid sample of each model and puts, somewhere in it, a value of the
kinds that broke eom from outside: text with NUL, lone surrogates, control characters,
line and paragraph separators, CR LF; integers beyond ±(2**53 - 1); NaN and Infinity;
lists and objects where a scalar belongs, and new keys where the model takes a mapping.
Whatever the model refuses is fine; whatever it accepts is appended to a real event
stream (encoded, hashed, stored by PostgreSQL) and composed into an e-mail, single-line
fields in its headers and every text in its body, without error.
"""

from __future__ import annotations

import asyncio
import types
import typing
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest
from builders import command_samples, report_samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError

from activities.delivery import email_message
from activities.directory import (
    DirectoryError,
    MemberStateContact,
    MemberStateDirectory,
    check_contact,
)
from domain.submissions import PollingStation
from domain.values import TextRule
from eventstore.models import EventMetadata, NewEvent
from eventstore.store import EventStore

T = TypeVar("T")

SPECIAL = [
    "\x00",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "\x0b",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udfff",
    "\ufeff",
    "\ufffe",
    "Bcc: x@example.org",
    "{mission_name}",
    "=?utf-8?q?x?=",
]
ANY_CHARACTER = st.characters(codec=None, categories=None, exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=20),
    st.tuples(
        st.text(max_size=8), st.sampled_from(SPECIAL), st.text(ANY_CHARACTER, max_size=8)
    ).map("".join),
)
NUMBER = st.one_of(
    st.integers(),
    st.sampled_from([2**53 - 1, 2**53, -(2**53), 2**63, 9007199254740993, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
READABLE = st.text(
    st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), min_size=1, max_size=30
)
"""Text a person could mean: any script, digits, punctuation, symbols (emoji too)."""
SCALAR = st.one_of(TEXT, NUMBER, st.booleans(), st.none())
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value a mutation can go: each leaf, each member of a list or
    an object, and a new key of each object (``None`` at the end of the path)."""
    if isinstance(value, dict):
        yield (*path, None)
        for key, item in value.items():
            yield (*path, key)
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _places(item, (*path, index))


def _put(value: Any, path: tuple[Any, ...], new: Any, new_key: str) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = new_key if head is None else head
        return {**value, key: _put(value.get(key), rest, new, new_key)}
    assert isinstance(value, list)
    return [*value[:head], _put(value[head], rest, new, new_key), *value[head + 1 :]]


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        if step is None or not isinstance(value, dict | list):
            return None
        value = value[step]
    return value


def _like(old: Any) -> st.SearchStrategy[Any]:
    """Values of the kind already there, readable or not: what a person, a device or an
    attacker might send in that place."""
    if isinstance(old, bool):
        return st.booleans()
    if isinstance(old, int):
        return st.one_of(st.integers(min_value=-10, max_value=1000), NUMBER)
    if isinstance(old, str):
        return st.one_of(
            READABLE,
            TEXT,
            READABLE.map(lambda t: f"{t}\n{t}"),
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,30}", fullmatch=True),
        )
    return VALUE


def mutated(sample: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``sample`` with one place set to a value of the kinds above, or of the kind already
    there (the ``type`` that selects a command's model is left alone)."""
    places = [p for p in _places(sample) if p != ("type",)]
    return st.sampled_from(places).flatmap(
        lambda path: st.builds(
            lambda new, key: _put(sample, path, new, key),
            st.one_of(VALUE, _like(_at(sample, path))),
            st.one_of(READABLE, TEXT, st.sampled_from(["opened_on_time", "ramp_present"])),
        )
    )


def texts(model: BaseModel) -> Iterator[tuple[str, bool]]:
    """Every text of an accepted model, and whether its type lets it span lines (free
    text) or not (a name, a title, an id: what headers may carry)."""
    for name, field in type(model).model_fields.items():
        yield from _texts(getattr(model, name), field.annotation, list(field.metadata))


def _multiline(metadata: list[Any]) -> bool:
    return any(
        isinstance(m, AfterValidator) and isinstance(m.func, TextRule) and m.func.multiline
        for m in metadata
    )


def _base(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _texts(value: Any, annotation: Any, metadata: list[Any]) -> Iterator[tuple[str, bool]]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        # A text in a union (a checklist's answer) is of the union's text type.
        texts_ = [a for a in options if _base(a) is str]
        annotation = (texts_ or options)[0] if len(options) == 1 or texts_ else Any
    if typing.get_origin(annotation) is typing.Annotated:
        arguments = typing.get_args(annotation)
        annotation, metadata = arguments[0], [*metadata, *arguments[1:]]
    if isinstance(value, BaseModel):
        yield from texts(value)
    elif isinstance(value, str):
        yield value, _multiline(metadata)
    elif isinstance(value, list | tuple):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        for item in value:
            yield from _texts(item, args[0] if args else Any, [])
    elif isinstance(value, dict):
        pair = typing.get_args(annotation)
        for key, item in value.items():
            yield from _texts(key, pair[0] if pair else Any, [])
            yield from _texts(item, pair[1] if len(pair) > 1 else Any, [])


def compose(model: BaseModel, *, to_name: str | None = None) -> bytes:
    """An e-mail carrying every text of ``model``: single-line ones in its subject (and
    ``to_name`` as the recipient's display name), all of them in its body."""
    found = list(texts(model))
    mail = email_message(
        message_id=f"probe.{uuid.uuid4().hex}",
        mail_from="eom <eom@localhost>",
        to_address="focal.point@example.org",
        to_name=to_name,
        subject=" | ".join(text for text, multiline in found if not multiline)[:2000] or "probe",
        body="\n".join(text for text, _ in found) or "probe",
        language="en",
    )
    return mail.as_bytes()


class Probe:
    """Runs the event loop's coroutines from Hypothesis's (synchronous) thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


async def _append(store: EventStore, model: BaseModel) -> None:
    """The accepted model's JSON as an event's data: encoded, hashed, stored, and its
    hash verified from what PostgreSQL gives back."""
    stream_id = f"probe/{uuid.uuid4().hex}"
    await store.append(
        stream_id=stream_id,
        expected_version=0,
        events=[
            NewEvent(
                event_id=uuid.uuid4(),
                event_type="InputProbed",
                schema_version=1,
                data=model.model_dump(mode="json"),
                metadata=EventMetadata(actor="probe"),
                occurred_at=datetime.now(UTC),
            )
        ],
    )
    assert (await store.verify_stream(stream_id)).ok


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _models() -> list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], BaseModel]]]:
    mission_id = "probe-mission"
    found: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], BaseModel]]] = []
    for command in command_samples(mission_id):
        adapter: TypeAdapter[Any] = TypeAdapter(type(command))
        found.append((command.type, command.model_dump(mode="json"), adapter.validate_python))
    for report in report_samples(mission_id):
        found.append((report.kind, report.model_dump(mode="json"), type(report).model_validate))
    station = PollingStation(station_id="PS-1", locality="Astana", name="School No. 1")
    found.append(
        ("polling_station", station.model_dump(mode="json"), PollingStation.model_validate)
    )
    return found


MODELS = _models()


@pytest.mark.parametrize(("name", "sample", "validate"), MODELS, ids=[m[0] for m in MODELS])
async def test_what_a_model_accepts_is_stored_hashed_and_mailed(
    pool: asyncpg.Pool,
    name: str,
    sample: dict[str, Any],
    validate: Callable[[dict[str, Any]], BaseModel],
) -> None:
    """For this command or report model: every mutation it accepts is appended to a real
    stream and composed into an e-mail without error, and some mutations are accepted
    (the property is not vacuous)."""
    probe = Probe(asyncio.get_running_loop())
    store = EventStore(pool)
    accepted: list[bool] = []

    @SETTINGS
    @given(payload=mutated(sample))
    def check(payload: dict[str, Any]) -> None:
        try:
            model = validate(payload)
        except ValidationError:
            accepted.append(False)
            return
        accepted.append(True)
        probe.run(_append(store, model))
        compose(model)

    await asyncio.to_thread(check)
    # Hypothesis may find no mutation that a model with nothing to vary accepts; the
    # sample itself is always accepted, so every model is carried through once.
    await asyncio.to_thread(check.hypothesis.inner_test, sample)  # type: ignore[attr-defined]
    assert accepted[-1] and not all(accepted)


CONTACT = {
    "organisation": "Cooperation Council of Turkic Speaking States (Turkic Council)",
    "code": "AZ",
    "name": "Azerbaijan",
    "language": "en",
    "email": "focal.point@mfa.example.az",
    "webhook_url": None,
    "webhook_secret": None,
    "escalation_email": "secretariat@example.org",
    "escalation_name": "Secretariat",
}


async def test_what_the_directory_accepts_is_stored_and_mailed(pool: asyncpg.Pool) -> None:
    """A member-state entry the directory accepts is stored in PostgreSQL and addressed
    in an e-mail's headers without error; one it refuses is a ``DirectoryError`` naming
    the field (never a database error)."""
    probe = Probe(asyncio.get_running_loop())
    directory = MemberStateDirectory(pool)
    accepted: list[bool] = []

    @SETTINGS
    @given(payload=mutated(CONTACT), organisation=st.uuids())
    def check(payload: dict[str, Any], organisation: uuid.UUID) -> None:
        if not isinstance(payload.get("organisation"), str) or payload == CONTACT:
            payload = {**payload, "organisation": f"probe {organisation}"}
        try:
            contact = check_contact(MemberStateContact.model_validate(payload))
        except (ValidationError, DirectoryError):
            accepted.append(False)
            return
        accepted.append(True)
        stored = probe.run(directory.upsert(contact))
        email_message(
            message_id=f"probe.{uuid.uuid4().hex}",
            mail_from="eom <eom@localhost>",
            to_address=stored.email or stored.escalation_email,
            to_name=stored.name,
            subject=f"{stored.organisation}: {stored.name} ({stored.escalation_name})",
            body=f"Dear colleagues of {stored.name},\n",
            language=stored.language,
        )

    await asyncio.to_thread(check)
    assert any(accepted)
