"""The form library: form versions published in an organisation's library (stream
``_forms``) and assigned to its missions (stream ``<mission>/forms``), with their read
models (tables ``form_versions`` and ``mission_forms``) written in the transaction that
appends each event. A version is a fact: publishing it again as it is changes nothing;
publishing other content under a used version is refused (``FormError``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from domain.forms import FormAssigned, FormDefinition, FormPublished
from domain.values import RECORDED, Phase
from eventstore.models import EventMetadata, NewEvent
from eventstore.store import Connection, EventStore, Head, append_at_heads_on, lock_heads_on
from forms import FieldError
from forms.xlsform import ConvertedForm, convert

LIBRARY_STREAM = "_forms"
STANDARD_SET = Path(__file__).with_name("standard")
"""eom's standard forms (opening, voting, counting, tabulation) as XLSForms."""


def mission_forms_stream(mission_id: str) -> str:
    return f"{mission_id}/forms"


class FormError(FieldError):
    """A library change that cannot be made: ``field`` names what is wrong."""


@dataclass(frozen=True)
class StoredForm:
    """A form version as the library holds it."""

    organisation: str
    form: FormDefinition
    xform: str
    xform_md5: str
    published_at: datetime

    @property
    def form_id(self) -> str:
        return self.form.form_id

    @property
    def version(self) -> str:
        return self.form.version


_COLUMNS = "organisation, definition::text AS definition, xform, xform_md5, published_at"


def _stored(row: asyncpg.Record) -> StoredForm:
    return StoredForm(
        organisation=row["organisation"],
        form=FormDefinition.model_validate_json(row["definition"], context=RECORDED),
        xform=row["xform"],
        xform_md5=row["xform_md5"],
        published_at=row["published_at"],
    )


async def assigned_forms_on(conn: Connection, mission_id: str) -> list[StoredForm]:
    """The form versions assigned to ``mission_id``, in the order they were assigned."""
    rows = await conn.fetch(
        f"SELECT {', '.join('v.' + c.strip() for c in _COLUMNS.split(','))} "
        "FROM mission_forms AS m JOIN form_versions AS v USING (organisation, form_id, version) "
        "WHERE m.mission_id = $1 ORDER BY m.assigned_at, m.form_id, m.version",
        mission_id,
    )
    return [_stored(r) for r in rows]


async def assigned_count_on(conn: Connection, mission_id: str) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM mission_forms WHERE mission_id = $1", mission_id)
    )


async def _append(
    conn: Connection,
    heads: dict[str, Head],
    stream: str,
    event: FormPublished | FormAssigned,
    actor: str,
) -> tuple[uuid.UUID, datetime]:
    """Append ``event`` at ``stream``'s locked head: its event id and time (for the read
    model written in the same transaction)."""
    now = datetime.now(UTC)
    new = NewEvent.of(
        event,
        event_id=uuid.uuid4(),
        occurred_at=now,
        metadata=EventMetadata(actor=actor, command_type=event.type),
    )
    await append_at_heads_on(conn, heads, [(stream, [new])])
    return new.event_id, now


class FormLibrary:
    """Publishes, assigns and reads form versions."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def publish(
        self, organisation: str, converted: ConvertedForm, *, source: str, actor: str
    ) -> tuple[StoredForm, bool]:
        """``converted`` in ``organisation``'s library: (the stored version, whether it
        was published now). The same version published again as it is is the stored
        one; another XForm, or the same XForm read otherwise (another phase given on
        import), under a used version raises ``FormError``."""
        form = converted.form
        async with self.store.connection() as conn, conn.transaction():
            heads = await lock_heads_on(conn, [LIBRARY_STREAM])
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM form_versions WHERE organisation = $1 AND form_id = $2 "
                "AND version = $3",
                organisation,
                form.form_id,
                form.version,
            )
            if row is not None:
                stored = _stored(row)
                if stored.xform_md5 != converted.xform_md5 or stored.form != form:
                    raise FormError(
                        "version",
                        f"form {form.form_id!r} version {form.version!r} is already in "
                        f"{organisation}'s library with other content: a form version is "
                        "never changed; publish the change under a new version",
                    )
                return stored, False
            event = FormPublished(
                organisation=organisation,
                form=form,
                xform=converted.xform,
                xform_md5=converted.xform_md5,
                source=source,
            )
            event_id, now = await _append(conn, heads, LIBRARY_STREAM, event, actor)
            await conn.execute(
                "INSERT INTO form_versions (organisation, form_id, version, phase, title, "
                "definition, xform, xform_md5, event_id, published_at) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)",
                organisation,
                form.form_id,
                form.version,
                form.phase.value,
                form.title,
                form.model_dump(mode="json"),
                converted.xform,
                converted.xform_md5,
                event_id,
                now,
            )
            return StoredForm(organisation, form, converted.xform, converted.xform_md5, now), True

    async def assign(
        self,
        mission_id: str,
        organisation: str,
        form_id: str,
        version: str | None,
        *,
        actor: str,
    ) -> tuple[StoredForm, bool]:
        """Assign ``form_id`` (``version``, else the library's latest) of
        ``organisation``'s library to ``mission_id``: (the version, whether assigned
        now). Raises ``FormError`` naming ``form_id`` or ``version`` if the library has
        no such form."""
        async with self.store.connection() as conn, conn.transaction():
            stream = mission_forms_stream(mission_id)
            heads = await lock_heads_on(conn, [stream])
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM form_versions WHERE organisation = $1 AND form_id = $2 "
                "AND ($3::text IS NULL OR version = $3) ORDER BY published_at DESC LIMIT 1",
                organisation,
                form_id,
                version,
            )
            if row is None:
                known = await conn.fetch(
                    "SELECT DISTINCT form_id FROM form_versions WHERE organisation = $1 "
                    "ORDER BY form_id",
                    organisation,
                )
                names = ", ".join(r["form_id"] for r in known) or "none"
                if version is not None and form_id in {r["form_id"] for r in known}:
                    raise FormError("version", f"form {form_id!r} has no version {version!r}")
                raise FormError(
                    "form_id",
                    f"{organisation}'s library has no form {form_id!r} (its forms: {names})",
                )
            stored = _stored(row)
            done = await conn.fetchval(
                "SELECT 1 FROM mission_forms WHERE mission_id = $1 AND form_id = $2 AND "
                "version = $3",
                mission_id,
                stored.form_id,
                stored.version,
            )
            if done:
                return stored, False
            event = FormAssigned(
                mission_id=mission_id,
                organisation=organisation,
                form_id=stored.form_id,
                version=stored.version,
                phase=stored.form.phase,
            )
            event_id, now = await _append(conn, heads, stream, event, actor)
            await conn.execute(
                "INSERT INTO mission_forms (mission_id, form_id, version, organisation, phase, "
                "event_id, assigned_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                mission_id,
                stored.form_id,
                stored.version,
                organisation,
                stored.form.phase.value,
                event_id,
                now,
            )
            return stored, True

    async def import_file(
        self,
        mission_id: str,
        organisation: str,
        path: Path,
        *,
        phase: Phase | None = None,
        actor: str,
    ) -> tuple[StoredForm, bool]:
        """Convert the XLSForm at ``path`` (``forms.xlsform.convert``; ``FormImportError``),
        publish it in ``organisation``'s library and assign it to ``mission_id``."""
        converted = convert(path, phase=phase)
        stored, published = await self.publish(
            organisation, converted, source=path.name, actor=actor
        )
        await self.assign(mission_id, organisation, stored.form_id, stored.version, actor=actor)
        return stored, published

    async def library(self, organisation: str | None = None) -> list[StoredForm]:
        """Every version in ``organisation``'s library (every library's if ``None``)."""
        rows = await self.store.pool.fetch(
            f"SELECT {_COLUMNS} FROM form_versions WHERE $1::text IS NULL OR organisation = $1 "
            "ORDER BY organisation, form_id, published_at",
            organisation,
        )
        return [_stored(r) for r in rows]

    async def mission_forms(self, mission_id: str) -> list[StoredForm]:
        async with self.store.connection() as conn:
            return await assigned_forms_on(conn, mission_id)

    async def current_forms(self, mission_id: str) -> list[StoredForm]:
        """The latest assigned version of each of the mission's forms (what clients are
        offered; earlier assigned versions are still taken from devices that hold them)."""
        latest: dict[str, StoredForm] = {}
        for stored in await self.mission_forms(mission_id):
            latest[stored.form_id] = stored
        return list(latest.values())

    async def mission_form(self, mission_id: str, form_id: str, version: str) -> StoredForm | None:
        for stored in await self.mission_forms(mission_id):
            if stored.form_id == form_id and stored.version == version:
                return stored
        return None
