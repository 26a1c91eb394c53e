"""The console's people against the real PostgreSQL: the user directory and its events,
one-time sign-in links, sessions, the sign-in e-mail (caught by the SMTP sink), and
``eom user`` run as a user runs it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from test_cli import base_env, eom

from accounts import (
    DIRECTORY_STREAM,
    Language,
    LinkRefused,
    Sessions,
    SignInLinks,
    User,
    UserDirectory,
    UserError,
    send_sign_in_link,
    sign_in_url,
)
from accounts.links import MAX_LINK_TTL
from accounts.mail import MailError
from accounts.sessions import MAX_SESSION_TTL
from activities.delivery import DeliverySettings
from api.tokens import Role, TokenStore
from cli.smtp_sink import SmtpSink
from cli.stack import free_port
from eventstore.store import EventStore

ACTOR = "operator:test"


def address(label: str = "person") -> str:
    """A fresh address: the directory is shared by every test of the session."""
    return f"{label}.{uuid.uuid4().hex[:10]}@mission.example.org"


async def add(directory: UserDirectory, **fields: Any) -> User:
    values: dict[str, Any] = {
        "email": address(),
        "name": "Aigerim Bekova",
        "role": Role.coordinator,
        "organisation": "Turkic Council",
        "actor": ACTOR,
        **fields,
    }
    return await directory.add(**values)


async def events_of(store: EventStore, user_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """The directory events about one user: (type, actor), in stream order."""
    return [
        (e.event_type, e.metadata.actor)
        for e in await store.read_stream(DIRECTORY_STREAM)
        if e.data["user_id"] == str(user_id)
    ]


@pytest.fixture
def directory(store: EventStore) -> UserDirectory:
    return UserDirectory(store)


@pytest.fixture
def links(pool: asyncpg.Pool) -> SignInLinks:
    return SignInLinks(pool)


@pytest.fixture
def sessions(pool: asyncpg.Pool) -> Sessions:
    return Sessions(pool)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path / "mail") as sink:
        yield sink


async def mails(sink: SmtpSink, *, count: int, within: float = 10) -> list[Any]:
    """The messages the sink stored, once there are ``count`` of them (bounded poll)."""
    deadline = datetime.now(UTC) + timedelta(seconds=within)
    files = sorted(sink.directory.glob("*.eml"))
    while len(files) < count and datetime.now(UTC) < deadline:
        await asyncio.sleep(0.05)
        files = sorted(sink.directory.glob("*.eml"))
    assert len(files) == count, f"the sink holds {len(files)} messages, not {count}"
    return [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]


# -- the directory ------------------------------------------------------------------------


async def test_add_list_update_disable_are_events_on_a_verified_chain(
    directory: UserDirectory, store: EventStore
) -> None:
    """Each change is an event in the directory's stream, with the actor; the read model
    equals the stream's fold, and the chain verifies."""
    before = await store.stream_version(DIRECTORY_STREAM)
    coordinator = await add(directory, email=address("Coordinator"), language="ru")
    observer = await add(
        directory,
        role=Role.observer,
        organisation=None,
        mission_id="tc-kz-2021",
        team_id="almaty-1",
        name="Daniyar Seitkali",
    )

    listed = {u.user_id: u for u in await directory.list()}
    assert listed[coordinator.user_id] == coordinator
    assert listed[observer.user_id] == observer
    assert coordinator.language is Language.ru and coordinator.active
    assert observer.scope == "mission=tc-kz-2021, team=almaty-1"
    assert await directory.get(observer.user_id) == observer
    assert await directory.by_email(coordinator.email.upper()) == coordinator

    renamed = await directory.update(
        coordinator.email, name="Aigerim Bekova-Nurlanovna", language="tr", actor="admin:B"
    )
    assert (renamed.name, renamed.language) == ("Aigerim Bekova-Nurlanovna", Language.tr)
    same = await directory.update(coordinator.email, language="tr", actor="admin:B")
    assert same == renamed  # nothing changed: no event

    disabled = await directory.disable(coordinator.email.lower(), actor="admin:C")
    assert disabled.disabled_at is not None and not disabled.active
    assert await directory.disable(coordinator.email, actor="admin:C") == disabled

    assert await events_of(store, coordinator.user_id) == [
        ("UserAdded", ACTOR),
        ("UserUpdated", "admin:B"),
        ("UserDisabled", "admin:C"),
    ]
    assert await events_of(store, observer.user_id) == [("UserAdded", ACTOR)]
    assert await store.stream_version(DIRECTORY_STREAM) == before + 4
    check = await store.verify_stream(DIRECTORY_STREAM)
    assert check.ok and check.events == before + 4
    assert await directory.replay() == {u.user_id: u for u in await directory.list()}


async def test_an_address_is_unique_whatever_its_case(
    directory: UserDirectory, store: EventStore
) -> None:
    first = await add(directory, email=address("Unique"))
    version = await store.stream_version(DIRECTORY_STREAM)
    with pytest.raises(UserError, match=r"^email: .* is already in the directory") as refused:
        await add(
            directory, email=f"  {first.email.upper()} ", role=Role.auditor, organisation=None
        )
    assert refused.value.field == "email"
    await directory.disable(first.email, actor=ACTOR)
    with pytest.raises(UserError, match="a disabled user"):
        await add(directory, email=first.email)
    assert await store.stream_version(DIRECTORY_STREAM) == version + 1  # the disabling only


async def test_two_adds_of_one_address_at_once_one_wins(
    directory: UserDirectory, store: EventStore
) -> None:
    email = address("race")
    outcomes = await asyncio.gather(
        *(add(directory, email=email, name=f"Racer {n}") for n in range(4)),
        return_exceptions=True,
    )
    added = [o for o in outcomes if isinstance(o, User)]
    refused = [o for o in outcomes if isinstance(o, UserError)]
    assert len(added) == 1 and len(refused) == 3, outcomes
    assert all(r.field == "email" and "already in the directory" in str(r) for r in refused)
    recorded = [
        e
        for e in await store.read_stream(DIRECTORY_STREAM)
        if e.event_type == "UserAdded" and e.data["email"] == email
    ]
    assert len(recorded) == 1
    assert (await store.verify_stream(DIRECTORY_STREAM)).ok


async def test_adds_of_different_addresses_at_once_all_land(directory: UserDirectory) -> None:
    """Losing the race for the stream's version is decided again, not refused."""
    emails = [address(f"crowd{n}") for n in range(5)]
    users = await asyncio.gather(*(add(directory, email=e) for e in emails))
    assert sorted(u.email for u in users) == sorted(emails)
    assert {u.email for u in await directory.list()} >= set(emails)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"email": "not an address"}, "email", "is not an e-mail address"),
        ({"email": "a@b"}, "email", "is not an e-mail address"),
        ({"name": "  "}, "name", "must not be empty"),
        ({"name": "two\nlines"}, "name", "single line"),
        ({"language": "de"}, "language", "is not one of en, ru, tr"),
        ({"role": "admin"}, "role", "is not one of"),
        ({"mission_id": "tc-kz-2021"}, "mission_id", "the coordinator role takes none"),
        (
            {"role": Role.head_of_mission, "organisation": None},
            "mission_id",
            "the head_of_mission role needs one",
        ),
        (
            {"role": Role.observer, "organisation": None, "mission_id": "m1"},
            "team_id",
            "the observer role needs one",
        ),
        (
            {"role": Role.observer, "organisation": None, "mission_id": "m 1", "team_id": "t"},
            "mission_id",
            "is not an id",
        ),
        (
            {"role": Role.member_state, "organisation": None, "member_state": "AZE"},
            "member_state",
            "ISO 3166-1 alpha-2",
        ),
        ({"role": Role.member_state, "organisation": None}, "member_state", "needs one"),
        ({"role": Role.auditor}, "organisation", "the auditor role takes none"),
        ({"actor": ""}, "actor", "must not be empty"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    directory: UserDirectory, store: EventStore, fields: dict[str, Any], field: str, message: str
) -> None:
    version = await store.stream_version(DIRECTORY_STREAM)
    with pytest.raises(UserError, match=message) as refused:
        await add(directory, **fields)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert await store.stream_version(DIRECTORY_STREAM) == version


async def test_scope_is_made_canonical(directory: UserDirectory) -> None:
    user = await add(
        directory,
        role=Role.member_state,
        organisation=None,
        member_state=" az ",
        mission_id="tc-kz-2021",
        team_id="",
    )
    assert (user.member_state, user.mission_id, user.team_id) == ("AZ", "tc-kz-2021", None)


async def test_unknown_address_cannot_be_disabled_or_updated(directory: UserDirectory) -> None:
    with pytest.raises(UserError, match=r"^email: no user has the address") as refused:
        await directory.disable(address("nobody"), actor=ACTOR)
    assert refused.value.field == "email"
    with pytest.raises(UserError, match=r"^email: no user"):
        await directory.update(address("nobody"), name="X", actor=ACTOR)
    with pytest.raises(UserError, match=r"^user: give a new name or language"):
        await directory.update(address("nobody"), actor=ACTOR)


async def test_the_principal_names_the_person_with_the_roles_scope(
    directory: UserDirectory,
) -> None:
    user = await add(directory, email=address("principal"))
    session_id = uuid.uuid4()
    principal = user.principal(session_id)
    assert principal.token_id == session_id
    assert (principal.role, principal.organisation) == (Role.coordinator, "Turkic Council")
    assert principal.mission_id is principal.member_state is principal.team_id is None
    assert principal.actor == f"coordinator:Aigerim Bekova ({user.email})@Turkic Council"
    assert principal.status(datetime.now(UTC)) == "active"
    disabled = await directory.disable(user.email, actor=ACTOR)
    assert disabled.principal(session_id).status(datetime.now(UTC)) == "revoked"


# -- sign-in links ------------------------------------------------------------------------


async def test_a_link_signs_in_once(directory: UserDirectory, links: SignInLinks) -> None:
    user = await add(directory)
    secret = await links.issue(user, timedelta(minutes=15))
    assert len(secret) == 43 and secret.replace("-", "").replace("_", "").isalnum()
    assert await links.redeem(secret) == user
    with pytest.raises(LinkRefused) as refused:
        await links.redeem(secret)
    assert refused.value.reason == "used"
    for unknown in (await links.issue(user, timedelta(minutes=1)))[::-1], "", "x" * 500, "é" * 43:
        with pytest.raises(LinkRefused) as refused:
            await links.redeem(unknown)
        assert refused.value.reason == "unknown"


async def test_two_redeems_at_once_one_wins(
    directory: UserDirectory, links: SignInLinks, pool: asyncpg.Pool
) -> None:
    """Redeems that all read the link before any has marked it: one signs in."""
    user = await add(directory)
    secret = await links.issue(user, timedelta(minutes=15))
    digest = hashlib.sha256(secret.encode()).hexdigest()
    async with pool.acquire() as holder:
        async with holder.transaction():
            # Hold the link's row, so that every redeem below reaches it and waits.
            await holder.execute(
                "SELECT 1 FROM console_sign_in_links WHERE link_hash = $1 FOR UPDATE", digest
            )
            redeems = [asyncio.create_task(links.redeem(secret)) for _ in range(4)]
            for _ in range(200):  # bounded: until all four wait for the row
                # Asked on another connection: within a transaction, the statistics views
                # keep the snapshot of their first read.
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
                if waiting >= 4:
                    break
                await asyncio.sleep(0.02)
            assert waiting >= 4
        outcomes = await asyncio.gather(*redeems, return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, User)] == [user]
    assert sorted(o.reason for o in outcomes if isinstance(o, LinkRefused)) == ["used"] * 3


async def test_an_expired_link_is_refused(
    directory: UserDirectory, links: SignInLinks, pool: asyncpg.Pool
) -> None:
    user = await add(directory)
    secret = await links.issue(user, timedelta(seconds=1))
    expires_at = await pool.fetchval(
        "SELECT expires_at FROM console_sign_in_links WHERE link_hash = $1",
        hashlib.sha256(secret.encode()).hexdigest(),
    )
    for _ in range(100):  # bounded: until the database's clock passes the expiry
        if await pool.fetchval("SELECT clock_timestamp() > $1", expires_at):
            break
        await asyncio.sleep(0.05)
    with pytest.raises(LinkRefused) as refused:
        await links.redeem(secret)
    assert refused.value.reason == "expired"


async def test_a_disabled_users_link_is_refused(
    directory: UserDirectory, links: SignInLinks
) -> None:
    user = await add(directory)
    secret = await links.issue(user, timedelta(minutes=15))
    await directory.disable(user.email, actor=ACTOR)
    with pytest.raises(LinkRefused) as refused:
        await links.redeem(secret)
    assert refused.value.reason == "disabled"
    with pytest.raises(UserError, match=r"^user: .* is disabled") as not_issued:
        await links.issue(user, timedelta(minutes=15))
    assert not_issued.value.field == "user"


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), MAX_LINK_TTL * 2])
async def test_a_links_lifetime_is_bounded(
    directory: UserDirectory, links: SignInLinks, ttl: timedelta
) -> None:
    user = await add(directory)
    with pytest.raises(UserError, match=r"^ttl: must be") as refused:
        await links.issue(user, ttl)
    assert refused.value.field == "ttl"


def test_sign_in_url() -> None:
    secret = "A" * 43
    assert sign_in_url("https://eom.example.org/", secret) == (
        f"https://eom.example.org/sign-in/{secret}"
    )
    assert sign_in_url("http://127.0.0.1:8000", secret) == (
        f"http://127.0.0.1:8000/sign-in/{secret}"
    )
    for base in ("eom.example.org", "ftp://eom.example.org", "https://x.example/?a=1"):
        with pytest.raises(ValueError, match="console URL"):
            sign_in_url(base, secret)
    with pytest.raises(ValueError, match="not a sign-in secret"):
        sign_in_url("https://eom.example.org", "../admin")


# -- sessions -----------------------------------------------------------------------------


async def test_a_session_is_found_by_its_secret_until_it_ends(
    directory: UserDirectory, sessions: Sessions
) -> None:
    user = await add(directory)
    started = await sessions.start(user, timedelta(hours=8))
    assert started.secret not in repr(started)
    assert timedelta(hours=7) < started.expires_at - datetime.now(UTC) <= timedelta(hours=8)
    found = await sessions.lookup(started.secret)
    assert found is not None
    assert (found.user, found.csrf_token, found.expires_at) == (
        user,
        started.csrf_token,
        started.expires_at,
    )
    assert found.session_id == started.session_id
    assert found.principal.token_id == started.session_id
    assert found.principal.actor.startswith(f"coordinator:{user.name} ({user.email})")

    assert found.csrf_ok(started.csrf_token)
    assert not found.csrf_ok(started.csrf_token[:-1] + "x")
    assert not found.csrf_ok(None) and not found.csrf_ok("") and not found.csrf_ok("é")
    other = await sessions.start(user, timedelta(hours=8))
    assert other.csrf_token != started.csrf_token  # per session
    assert not found.csrf_ok(other.csrf_token)

    assert await sessions.end(started.secret)
    assert not await sessions.end(started.secret)
    assert await sessions.lookup(started.secret) is None
    assert await sessions.lookup(other.secret) is not None
    assert await sessions.lookup("nonsense") is None
    assert await sessions.lookup(started.secret[::-1]) is None


async def test_disabling_a_user_ends_their_sessions(
    directory: UserDirectory, sessions: Sessions, pool: asyncpg.Pool
) -> None:
    user = await add(directory)
    bystander = await add(directory)
    # Tokens the console issued to each (a web form's outbox, ODK Collect's QR code).
    tokens = TokenStore(pool)
    issued = {
        who.user_id: (
            await tokens.create(
                role=Role.observer,
                name="web form",
                mission_id="m-1",
                team_id="team-1",
                issued_to=who.user_id,
            )
        )[0]
        for who in (user, bystander)
    }
    mine = [await sessions.start(user, timedelta(hours=1)) for _ in range(3)]
    theirs = await sessions.start(bystander, timedelta(hours=1))
    await directory.disable(user.email, actor=ACTOR)
    for started in mine:
        assert await sessions.lookup(started.secret) is None
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM console_sessions WHERE user_id = $1 AND ended_at IS NULL",
            user.user_id,
        )
        == 0
    )
    assert await sessions.lookup(theirs.secret) is not None
    with pytest.raises(UserError, match=r"^user: "):
        await sessions.start(user, timedelta(hours=1))
    assert (await tokens.authenticate(issued[user.user_id]))[1] == "revoked"
    assert (await tokens.authenticate(issued[bystander.user_id]))[1] == "active"


async def test_an_expired_session_is_not_found(
    directory: UserDirectory, sessions: Sessions, pool: asyncpg.Pool
) -> None:
    user = await add(directory)
    started = await sessions.start(user, timedelta(seconds=1))
    for _ in range(100):  # bounded: until the database's clock passes the expiry
        if await pool.fetchval("SELECT clock_timestamp() > $1", started.expires_at):
            break
        await asyncio.sleep(0.05)
    assert await sessions.lookup(started.secret) is None
    with pytest.raises(UserError, match=r"^ttl: "):
        await sessions.start(user, MAX_SESSION_TTL + timedelta(seconds=1))


async def test_only_hashes_of_secrets_are_stored(
    directory: UserDirectory, links: SignInLinks, sessions: Sessions, pool: asyncpg.Pool
) -> None:
    user = await add(directory)
    link = await links.issue(user, timedelta(minutes=15))
    session = await sessions.start(user, timedelta(hours=1))
    secrets = {link: "link", session.secret: "session", session.csrf_token: "csrf token"}
    rows: list[str] = []
    for table in ("console_sign_in_links", "console_sessions", "console_users", "events"):
        rows += [r[0] for r in await pool.fetch(f"SELECT row_to_json(t)::text FROM {table} AS t")]
    stored = "\n".join(rows)
    for secret, what in secrets.items():
        assert secret not in stored, f"the {what} is stored as it is"
    assert hashlib.sha256(link.encode()).hexdigest() in stored
    assert hashlib.sha256(session.secret.encode()).hexdigest() in stored


async def test_no_secret_reaches_the_logs(
    directory: UserDirectory,
    links: SignInLinks,
    sessions: Sessions,
    sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        user = await add(directory)
        link = await links.issue(user, timedelta(minutes=15))
        url = sign_in_url("https://eom.example.org", link)
        await send_sign_in_link(user, url, DeliverySettings(smtp_port=sink.port))
        await links.redeem(link)
        with pytest.raises(LinkRefused):
            await links.redeem(link)
        session = await sessions.start(user, timedelta(hours=1))
        assert await sessions.lookup(session.secret) is not None
        await sessions.end(session.secret)
        await directory.disable(user.email, actor=ACTOR)
    events = {entry["event"] for entry in captured}
    assert {"sign-in link issued", "sign-in link sent", "session started"} <= events
    # Every logger at DEBUG but the sink's own: it stands for the mail server, and when
    # `eom up` runs it, its protocol log (which echoes the message) is kept to warnings.
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    written = repr(captured) + "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in records)
    for secret in (link, session.secret, session.csrf_token):
        assert secret not in written
    assert len(await mails(sink, count=1)) == 1


# -- the sign-in e-mail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        (Language.en, "Your sign-in link to eom", "It works once."),
        (Language.ru, "Ваша ссылка для входа в eom", "Она действует один раз."),
        (Language.tr, "eom giriş bağlantınız", "Yalnızca bir kez çalışır."),
    ],
)
async def test_the_link_is_mailed_in_the_users_language(
    directory: UserDirectory,
    links: SignInLinks,
    sink: SmtpSink,
    language: Language,
    subject: str,
    phrase: str,
) -> None:
    user = await add(directory, language=language, name="Нурлан Ömer")
    secret = await links.issue(user, timedelta(minutes=15))
    url = sign_in_url("https://eom.example.org", secret)
    expires = datetime(2021, 1, 10, 7, 30, tzinfo=UTC)
    await send_sign_in_link(user, url, DeliverySettings(smtp_port=sink.port), expires_at=expires)
    [mail] = await mails(sink, count=1)
    assert mail["To"].addresses[0].addr_spec == user.email
    assert mail["Subject"] == subject
    assert mail["Content-Language"] == language.value
    body = mail.get_content()
    assert url in body and phrase in body and "Нурлан Ömer" in body
    assert "2021-01-10 07:30 UTC" in body
    assert await links.redeem(secret) == user


async def test_a_relay_that_is_down_is_a_mail_error(directory: UserDirectory) -> None:
    user = await add(directory)
    settings = DeliverySettings(smtp_port=free_port(), smtp_timeout_seconds=5)
    with pytest.raises(MailError, match="is unavailable") as failed:
        await send_sign_in_link(user, "https://eom.example.org/sign-in/" + "A" * 43, settings)
    assert failed.value.retryable
    assert "A" * 43 not in str(failed.value)


# -- eom user -----------------------------------------------------------------------------


async def test_the_user_commands(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool, sink: SmtpSink
) -> None:
    env = {
        **base_env(tmp_path),
        "DATABASE_URL": database_url,
        "EOM_CONSOLE_URL": "https://eom.example.org/console/",
        "EOM_SMTP_HOST": "127.0.0.1",
        "EOM_SMTP_PORT": str(sink.port),
        "EOM_LOG_LEVEL": "DEBUG",
        "EOM_LOG_FORMAT": "json",
        "EOM_ACTOR": "secretariat:Ayşe",
    }
    email = address("Cli")
    added = await eom(
        "user", "add", "--email", email, "--name", "Ayşe Yılmaz", "--role", "member_state",
        "--member-state", "tr", "--language", "tr", env=env,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "member_state=TR" in added.out

    twice = await eom(
        "user", "add", "--email", email.upper(), "--name", "X", "--role", "auditor", env=env
    )
    assert twice.code == 2
    assert "error: --email: " in twice.err and "already in the directory" in twice.err
    scoped = await eom(
        "user", "add", "--email", address(), "--name", "X", "--role", "observer",
        "--mission", "tc-kz-2021", env=env,
    )  # fmt: skip
    assert scoped.code == 2 and "error: --team: the observer role needs one" in scoped.err

    listed = await eom("user", "list", "--json", env=env)
    assert listed.code == 0, listed.err
    [mine] = [u for u in json.loads(listed.out) if u["email"] == email]
    assert (mine["role"], mine["member_state"], mine["language"]) == ("member_state", "TR", "tr")
    table = await eom("user", "list", env=env)
    assert email in table.out and "member_state=TR" in table.out

    link = await eom("user", "link", email, "--ttl", "30m", env=env)
    assert link.code == 0, link.err
    url = link.out.strip()
    assert url.startswith("https://eom.example.org/console/sign-in/")
    secret = url.rsplit("/", 1)[1]
    assert secret not in link.err  # the log lines (JSON, DEBUG) never carry it
    user = await SignInLinks(pool).redeem(secret)
    assert (user.email, user.user_id) == (email, uuid.UUID(mine["user_id"]))

    sent = await eom("user", "link", email, "--send", env=env)
    assert sent.code == 0, sent.err
    assert "/sign-in/" not in sent.out + sent.err
    [mail] = await mails(sink, count=1)
    assert mail["Subject"] == "eom giriş bağlantınız"
    mailed = mail.get_content().split("https://eom.example.org/console/sign-in/")[1].split()[0]
    assert (await SignInLinks(pool).redeem(mailed)).email == email

    too_long = await eom("user", "link", email, "--ttl", "8d", env=env)
    assert too_long.code == 2 and "error: --ttl: must be at most 7d" in too_long.err

    disabled = await eom("user", "disable", email, env=env)
    assert disabled.code == 0 and "disabled since" in disabled.out
    refused = await eom("user", "link", email, env=env)
    assert refused.code == 2 and "is disabled" in refused.err
    unknown = await eom("user", "disable", address("nobody"), env=env)
    assert unknown.code == 2 and "error: --email: no user has the address" in unknown.err

    actors = [
        e.metadata.actor
        for e in await EventStore(pool).read_stream(DIRECTORY_STREAM)
        if e.data["user_id"] == mine["user_id"]
    ]
    assert actors == ["secretariat:Ayşe", "secretariat:Ayşe"]
    verified = await eom("audit", "verify", "--all", env=env)
    assert verified.code == 0, verified.out + verified.err
    assert DIRECTORY_STREAM in verified.out
