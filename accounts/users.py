"""The console's people, as values: a user, the input rules for one, the directory's
events and their fold. No database here (``accounts.directory`` stores them).

A user signs in as a person but acts with one of the API's five roles and exactly the
scope an API token of that role would have (``api.tokens.SCOPES``), so that the API's
scope rules apply to a console session unchanged (``User.principal``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from api.tokens import SCOPES, Principal, Role
from domain.values import IDENTIFIER_PATTERN, check_text

DIRECTORY_STREAM = "_console-users"
"""The directory's stream in the event store. A mission id starts with a letter or a
digit (``domain.values.IDENTIFIER_PATTERN``), so no mission can take this id."""

USER_ADDED = "UserAdded"
USER_UPDATED = "UserUpdated"
USER_DISABLED = "UserDisabled"
EVENT_TYPES = (USER_ADDED, USER_UPDATED, USER_DISABLED)
"""The directory's event types; none is a mission's, so the projections skip them."""

MAX_NAME = 200
MAX_EMAIL = 254


class Language(StrEnum):
    """The languages the console and its e-mails speak."""

    en = "en"
    ru = "ru"
    tr = "tr"


class UserError(ValueError):
    """Input the directory refuses: ``field`` names the field or rule (``email``,
    ``name``, ``language``, ``role``, ``organisation``, ``mission_id``, ``member_state``,
    ``team_id``, ``ttl``, ``user``), and the message starts with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


SCOPE_FIELDS = ("organisation", "mission_id", "member_state", "team_id")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
_EMAIL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})*\.{_TLD}")
_MEMBER_STATE = re.compile(r"[A-Z]{2}")


def check_email(value: str) -> str:
    """A plain ``local@domain.tld`` address (ASCII; an internationalised domain in its
    ``xn--`` form), at most 254 characters, surrounding white space removed; its case is
    kept (addresses are compared case-insensitively). Else ``UserError('email')``."""
    address = value.strip()
    if len(address) > MAX_EMAIL or not _EMAIL.fullmatch(address):
        raise UserError("email", f"{value!r} is not an e-mail address like name@example.org")
    return address


def check_name(value: str) -> str:
    """A person's name: one line of at most 200 characters eom can store. Else
    ``UserError('name')``."""
    try:
        return check_text(value, multiline=False, max_length=MAX_NAME)
    except ValueError as error:
        raise UserError("name", f"{value!r} {error}") from None


def check_language(value: str) -> Language:
    """``en``, ``ru`` or ``tr`` (any case). Else ``UserError('language')``."""
    try:
        return Language(value.strip().lower())
    except ValueError:
        raise UserError(
            "language", f"{value!r} is not one of {', '.join(lang.value for lang in Language)}"
        ) from None


def check_role(value: str) -> Role:
    """One of the API's five roles. Else ``UserError('role')``."""
    try:
        return Role(value.strip())
    except ValueError:
        raise UserError(
            "role", f"{value!r} is not one of {', '.join(role.value for role in Role)}"
        ) from None


def check_scope(role: Role, scope: dict[str, str | None]) -> dict[str, str | None]:
    """``scope`` (the four ``SCOPE_FIELDS``, each text or None) made canonical and checked
    against ``role``: exactly the fields ``api.tokens.SCOPES`` requires, none it does not
    allow; a mission and a team are ids (``IDENTIFIER_PATTERN``), a member state an ISO
    3166-1 alpha-2 code (upper-cased), an organisation one line. Empty text counts as
    absent. Returns all four fields; raises ``UserError`` naming the first field at
    fault."""
    unknown = set(scope) - set(SCOPE_FIELDS)
    if unknown:
        raise UserError(sorted(unknown)[0], "is not a scope field")
    given = {f: (scope.get(f) or "").strip() or None for f in SCOPE_FIELDS}
    required, allowed = SCOPES[role]
    for field in SCOPE_FIELDS:
        value = given[field]
        if value is None and field in required:
            raise UserError(field, f"the {role.value} role needs one")
        if value is not None and field not in allowed:
            raise UserError(field, f"the {role.value} role takes none (given {value!r})")
    if given["organisation"] is not None:
        try:
            given["organisation"] = check_text(
                given["organisation"], multiline=False, max_length=MAX_NAME
            )
        except ValueError as error:
            raise UserError("organisation", str(error)) from None
    for field in ("mission_id", "team_id"):
        value = given[field]
        if value is not None and not re.fullmatch(IDENTIFIER_PATTERN, value):
            raise UserError(
                field, f"{value!r} is not an id (letters, digits and . _ : -, at most 100)"
            )
    state = given["member_state"]
    if state is not None:
        state = state.upper()
        if not _MEMBER_STATE.fullmatch(state):
            raise UserError("member_state", f"{state!r} is not an ISO 3166-1 alpha-2 code")
        given["member_state"] = state
    return given


def email_key(email: str) -> str:
    """How addresses are compared: case-insensitively."""
    return email.strip().lower()


class User(BaseModel):
    """A person of the console: who they are, the language they read, and the role and
    scope they act with. ``added_at`` and ``disabled_at`` are aware UTC times."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: uuid.UUID
    email: str
    name: str
    language: Language
    role: Role
    organisation: str | None = None
    mission_id: str | None = None
    member_state: str | None = None
    team_id: str | None = None
    added_at: AwareDatetime
    disabled_at: AwareDatetime | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def scope(self) -> str:
        """The scope as one line, ``mission=tc-kz-2021, team=t1``, or ``all``."""
        return (
            ", ".join(
                f"{label}={value}"
                for label, value in (
                    ("organisation", self.organisation),
                    ("mission", self.mission_id),
                    ("member_state", self.member_state),
                    ("team", self.team_id),
                )
                if value
            )
            or "all"
        )

    def principal(self, session_id: uuid.UUID, *, expires_at: datetime | None = None) -> Principal:
        """The API's principal for this person's session ``session_id`` (its
        ``token_id``): their role and scope, so that ``api.access`` decides as for a
        token. Its ``actor`` names the person, ``role:Name (email)@scope``, e.g.
        ``coordinator:Aigerim Bekova (a.bekova@turkic.example)@Turkic Council``."""
        return Principal(
            token_id=session_id,
            name=self.name,
            email=self.email,
            role=self.role,
            organisation=self.organisation,
            mission_id=self.mission_id,
            member_state=self.member_state,
            team_id=self.team_id,
            created_at=self.added_at,
            expires_at=expires_at,
            revoked_at=self.disabled_at,
        )


# -- the directory's events -------------------------------------------------------------


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1


class UserAdded(_Event):
    type: Literal["UserAdded"] = "UserAdded"
    user_id: uuid.UUID
    email: str
    name: str
    language: Language
    role: Role
    organisation: str | None = None
    mission_id: str | None = None
    member_state: str | None = None
    team_id: str | None = None
    added_at: AwareDatetime


class UserUpdated(_Event):
    """A change of what a person may change about themselves: name, language (a field
    left None is unchanged)."""

    type: Literal["UserUpdated"] = "UserUpdated"
    user_id: uuid.UUID
    name: str | None = None
    language: Language | None = None
    updated_at: AwareDatetime


class UserDisabled(_Event):
    type: Literal["UserDisabled"] = "UserDisabled"
    user_id: uuid.UUID
    disabled_at: AwareDatetime


DirectoryEvent = UserAdded | UserUpdated | UserDisabled

_MODELS: dict[str, type[UserAdded] | type[UserUpdated] | type[UserDisabled]] = {
    USER_ADDED: UserAdded,
    USER_UPDATED: UserUpdated,
    USER_DISABLED: UserDisabled,
}


def load_directory_event(event_type: str, data: dict[str, Any]) -> DirectoryEvent:
    """A stored directory event as its model; ``ValueError`` for another type or data
    that is not one."""
    model = _MODELS.get(event_type)
    if model is None:
        raise ValueError(f"{event_type!r} is not a directory event")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"{event_type}: {error}") from None


def apply(users: dict[uuid.UUID, User], event: DirectoryEvent) -> None:
    """Change ``users`` (by id) as ``event`` says."""
    after = users
    match event:
        case UserAdded():
            fields = event.model_dump(exclude={"type", "schema_version"})
            after[event.user_id] = User.model_validate(fields)
        case UserUpdated():
            changes = {k: v for k, v in (("name", event.name), ("language", event.language)) if v}
            after[event.user_id] = users[event.user_id].model_copy(update=changes)
        case UserDisabled():
            user = users[event.user_id]
            if user.disabled_at is None:
                after[event.user_id] = user.model_copy(update={"disabled_at": event.disabled_at})


def fold(events: Iterable[tuple[str, dict[str, Any]]]) -> dict[uuid.UUID, User]:
    """The directory from its events, ``(event_type, data)`` in stream order."""
    users: dict[uuid.UUID, User] = {}
    for event_type, data in events:
        apply(users, load_directory_event(event_type, data))
    return users
