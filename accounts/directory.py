"""The user directory: its changes are events in the stream ``_console-users`` of the
event store (hash-chained, so ``eom audit verify --all`` covers them), and the table
``console_users`` is their read model, changed in the transaction that appends each event.

A change is decided on the directory as it stands at a stream version, then appended at
that version (``expected_version``): two changes decided on the same version cannot both
be appended. The loser decides again on what the winner left, so that two additions of
one address at once end with one user and a ``UserError`` naming the ``email``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from accounts.users import (
    DIRECTORY_STREAM,
    SCOPE_FIELDS,
    DirectoryEvent,
    Language,
    User,
    UserAdded,
    UserDisabled,
    UserError,
    UserUpdated,
    check_email,
    check_language,
    check_name,
    check_role,
    check_scope,
    email_key,
    fold,
)
from api.tokens import Role
from eventstore.models import EventMetadata, NewEvent
from eventstore.store import ConcurrencyError, Connection, EventStore, append_on

log = structlog.get_logger("eom.accounts")

T = TypeVar("T")

ATTEMPTS = 20
"""How many times a change is decided again after losing a race for the stream."""

USER_COLUMNS = (
    "user_id, email, name, language, role, organisation, mission_id, member_state, team_id, "
    "added_at, disabled_at"
)


def user_from_row(row: asyncpg.Record | dict[str, Any], prefix: str = "") -> User:
    """A ``User`` from a row holding ``USER_COLUMNS`` (each name after ``prefix``)."""
    return User.model_validate({c: row[prefix + c] for c in USER_COLUMNS.split(", ")})


def _actor(actor: str) -> str:
    try:
        return check_name(actor)
    except UserError as error:
        raise UserError("actor", str(error).removeprefix("name: ")) from None


class UserDirectory:
    """The user directory over the event store (whose pool also holds the read model)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.pool: asyncpg.Pool = store.pool

    # -- reads -------------------------------------------------------------------------

    async def list(self) -> list[User]:
        """Every user, disabled ones included, in the order they were added."""
        rows = await self.pool.fetch(
            f"SELECT {USER_COLUMNS} FROM console_users ORDER BY added_at, user_id"
        )
        return [user_from_row(r) for r in rows]

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM console_users WHERE user_id = $1", user_id
        )
        return user_from_row(row) if row else None

    async def by_email(self, email: str) -> User | None:
        """The user with this address, whatever its case; None if there is none."""
        row = await self.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM console_users WHERE lower(email) = $1",
            email_key(email),
        )
        return user_from_row(row) if row else None

    async def replay(self) -> dict[uuid.UUID, User]:
        """The directory folded from its stream alone (what the read model must equal)."""
        events = await self.store.read_stream(DIRECTORY_STREAM)
        return fold((e.event_type, e.data) for e in events)

    # -- changes -----------------------------------------------------------------------

    async def add(
        self,
        *,
        email: str,
        name: str,
        role: Role | str,
        language: Language | str = Language.en,
        organisation: str | None = None,
        mission_id: str | None = None,
        member_state: str | None = None,
        team_id: str | None = None,
        actor: str,
    ) -> User:
        """Add a person; ``actor`` (one line) is who adds them, recorded in the event.

        Raises ``UserError`` naming the field: a malformed ``email``, one already in the
        directory (whatever its case, a disabled user's included), an empty ``name``, an
        unknown ``language`` or ``role``, a scope field the role requires but lacks or
        does not allow (``api.tokens.SCOPES``), a malformed ``mission_id``, ``team_id`` or
        ``member_state``."""
        checked_email = check_email(email)
        checked_name = check_name(name)
        checked_language = check_language(language)
        checked_role = check_role(role)
        scope = check_scope(
            checked_role,
            {
                "organisation": organisation,
                "mission_id": mission_id,
                "member_state": member_state,
                "team_id": team_id,
            },
        )
        who = _actor(actor)

        async def decide(conn: Connection, version: int) -> User:
            existing = await self._by_email_on(conn, checked_email)
            if existing is not None:
                state = "a disabled user" if existing.disabled_at else "a user"
                raise UserError("email", f"{checked_email!r} is already in the directory ({state})")
            now = datetime.now(UTC)
            event = UserAdded(
                user_id=uuid.uuid4(),
                email=checked_email,
                name=checked_name,
                language=checked_language,
                role=checked_role,
                added_at=now,
                **scope,
            )
            await self._append(conn, version, event, who, now)
            user = User.model_validate(event.model_dump(exclude={"type", "schema_version"}))
            await conn.execute(
                f"INSERT INTO console_users ({USER_COLUMNS}, version) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                user.user_id,
                user.email,
                user.name,
                user.language.value,
                user.role.value,
                *(scope[f] for f in SCOPE_FIELDS),
                user.added_at,
                None,
                version + 1,
            )
            return user

        user = await self._change(decide)
        log.info("user added", user_id=str(user.user_id), role=user.role.value, actor=who)
        return user

    async def update(
        self,
        email: str,
        *,
        name: str | None = None,
        language: Language | str | None = None,
        actor: str,
    ) -> User:
        """Change a person's name or language (those given); the user as it now is.
        Nothing changes, and no event is recorded, when both are as they were. Raises
        ``UserError``: ``email`` unknown, ``name`` or ``language`` refused, or neither
        given (``user``)."""
        if name is None and language is None:
            raise UserError("user", "give a new name or language")
        checked_name = check_name(name) if name is not None else None
        checked_language = check_language(language) if language is not None else None
        who = _actor(actor)

        async def decide(conn: Connection, version: int) -> User:
            user = await self._known_on(conn, email)
            new_name = checked_name if checked_name not in (None, user.name) else None
            new_language = (
                checked_language if checked_language not in (None, user.language) else None
            )
            if new_name is None and new_language is None:
                return user
            now = datetime.now(UTC)
            event = UserUpdated(
                user_id=user.user_id, name=new_name, language=new_language, updated_at=now
            )
            await self._append(conn, version, event, who, now)
            row = await conn.fetchrow(
                "UPDATE console_users SET name = coalesce($2, name), "
                "language = coalesce($3, language), version = $4 "
                f"WHERE user_id = $1 RETURNING {USER_COLUMNS}",
                user.user_id,
                new_name,
                new_language.value if new_language else None,
                version + 1,
            )
            assert row is not None
            return user_from_row(row)

        return await self._change(decide)

    async def disable(self, email: str, actor: str) -> User:
        """Disable a person: their sign-in links are refused, their sessions end and the
        tokens the console issued to them are revoked, in the transaction that records it.
        A user disabled already is returned as is (no second event). Raises
        ``UserError('email')`` when nobody has that address."""
        who = _actor(actor)

        async def decide(conn: Connection, version: int) -> User:
            user = await self._known_on(conn, email)
            if user.disabled_at is not None:
                return user
            now = datetime.now(UTC)
            await self._append(
                conn, version, UserDisabled(user_id=user.user_id, disabled_at=now), who, now
            )
            await conn.execute(
                "UPDATE console_users SET disabled_at = $2, version = $3 WHERE user_id = $1",
                user.user_id,
                now,
                version + 1,
            )
            ended = await conn.execute(
                "UPDATE console_sessions SET ended_at = clock_timestamp() "
                "WHERE user_id = $1 AND ended_at IS NULL",
                user.user_id,
            )
            # Tokens the console issued to them (the web form's outbox, ODK Collect).
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = clock_timestamp() "
                "WHERE issued_to = $1 AND revoked_at IS NULL",
                user.user_id,
            )
            log.info(
                "user disabled",
                user_id=str(user.user_id),
                sessions_ended=int(ended.split()[-1]),
                actor=who,
            )
            return user.model_copy(update={"disabled_at": now})

        return await self._change(decide)

    # -- the mechanics of a change -------------------------------------------------------

    async def _change(self, decide: Callable[[Connection, int], Awaitable[T]]) -> T:
        """Run ``decide(conn, version)`` in a transaction, on the directory as it stands
        at the stream's ``version``; again from the start when another change took that
        version first."""
        for _ in range(ATTEMPTS):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    version = await conn.fetchval(
                        "SELECT coalesce((SELECT version FROM streams WHERE stream_id = $1), 0)",
                        DIRECTORY_STREAM,
                    )
                    return await decide(conn, int(version))
            except ConcurrencyError:
                continue
        raise UserError("user", "the directory is changing too often to record this; try again")

    @staticmethod
    async def _append(
        conn: Connection, version: int, event: DirectoryEvent, actor: str, now: datetime
    ) -> None:
        await append_on(
            conn,
            stream_id=DIRECTORY_STREAM,
            expected_version=version,
            events=[
                NewEvent(
                    event_id=uuid.uuid4(),
                    event_type=event.type,
                    schema_version=event.schema_version,
                    data=event.model_dump(mode="json", exclude={"type", "schema_version"}),
                    metadata=EventMetadata(actor=actor, command_type=event.type),
                    occurred_at=now,
                )
            ],
        )

    @staticmethod
    async def _by_email_on(conn: Connection, email: str) -> User | None:
        row = await conn.fetchrow(
            f"SELECT {USER_COLUMNS} FROM console_users WHERE lower(email) = $1",
            email_key(email),
        )
        return user_from_row(row) if row else None

    async def _known_on(self, conn: Connection, email: str) -> User:
        user = await self._by_email_on(conn, email)
        if user is None:
            raise UserError("email", f"no user has the address {email.strip()!r}")
        return user
