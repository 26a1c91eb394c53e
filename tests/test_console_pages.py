"""The console in a real browser (Debian's Chromium through Playwright), against the real
services: every page passes axe-core's WCAG 2.1 AA rules with no violation; forms are
refused without their session's CSRF token or with another session's; a refused command
shows its rule and records nothing; the timeline shows another client's event without a
reload; nothing is loaded from outside the machine.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.messages.pofile import read_po
from console_support import RunningConsole, axe_violations, seeded
from fastapi.routing import APIRoute
from playwright.async_api import Browser, expect
from starlette.routing import Mount

from accounts.answer_links import AnswerLinks
from activities.directory import MemberStateDirectory
from api.tokens import Role
from cli import seed
from console.app import DOWNLOADS, FRAGMENTS, STREAMS
from console.i18n import CATALOGUES
from console.web import RedactSecrets, redact
from domain import commands as c
from domain.values import DeadlineKind, ReminderLadder

pytestmark = pytest.mark.browser


async def _mission(
    console: RunningConsole, *, drafts: int = 0, before: type[Any] = c.AppointHeadOfMission
) -> str:
    """A seed mission recorded up to its first command of type ``before`` (by default,
    just registered); with ``drafts``, in stage statement with that many drafts, the
    latest the seed's text."""
    mission_id = f"tc-{uuid.uuid4().hex[:8]}"
    if not drafts:
        await seeded(console.missions, mission_id, before=before)
        return mission_id
    await seeded(console.missions, mission_id, before=c.DraftStatement)
    for n in range(1, drafts + 1):
        text = seed.STATEMENT_TEXT if n == drafts else f"Draft {n}.\n{seed.STATEMENT_TEXT[:200]}"
        await console.missions.execute(
            mission_id,
            c.DraftStatement(draft_id=f"draft-{n}", title=seed.STATEMENT_TITLE, text=text),
            actor="test",
        )
    return mission_id


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too (FastAPI keeps an included router as
    one entry holding its ``original_router``)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found += _routes(included.routes) if included is not None else [route]
    return found


def _pages(console: RunningConsole) -> list[APIRoute]:
    """The console's pages: its GET routes, but the fragments, downloads and streams."""
    routes = []
    for route in _routes(console.app.routes):
        if isinstance(route, Mount) or not isinstance(route, APIRoute):
            continue
        methods = route.methods or set()
        if (
            route.path.startswith(("/v1", "/openrosa/"))
            or route.path == "/health"
            or "GET" not in methods
        ):
            continue
        if route.name in FRAGMENTS | DOWNLOADS | STREAMS:
            continue
        routes.append(route)
    return routes


async def test_every_page_passes_axe(running_console: RunningConsole, browser: Browser) -> None:
    console = running_console
    coordinator = await console.user(Role.coordinator)
    mission_id = await _mission(console, drafts=2)
    forming = await _mission(console, before=c.NominateObserver)
    day = timedelta(days=1)
    state = await console.missions.state(mission_id)
    page = await console.signed_in(browser, coordinator)
    hom = await console.user(Role.head_of_mission, mission_id=mission_id)
    auditor = await console.user(Role.auditor)
    signed = {
        Role.coordinator: page,
        Role.head_of_mission: await console.signed_in(browser, hom),
        Role.auditor: await console.signed_in(browser, auditor),
        Role.observer: await console.signed_in(
            browser, await console.user(Role.observer, mission_id=mission_id, team_id="team-1")
        ),
    }
    anonymous = await (await console.context(browser)).new_page()
    commands = ["appoint_head_of_mission", "request_nominations", "register_polling_stations"]
    visited = []
    for route in _pages(console):
        paths = [route.path]
        if "{name}" in route.path:
            paths = [route.path.replace("{name}", n) for n in commands]
        if route.name == "console_answer":
            links = AnswerLinks(console.missions.store.pool)
            paths = [
                route.path.replace("{secret}", await links.issue(m, "AZ", kind, cycle, day))
                for m, kind, cycle in (
                    (forming, DeadlineKind.nomination, 0),
                    (mission_id, DeadlineKind.acknowledgement, 0),
                    (mission_id, DeadlineKind.evidence, 1),
                )
            ]
        elif "{secret}" in route.path:
            secret = await console.links.issue(coordinator, timedelta(minutes=5))
            paths = [p.replace("{secret}", secret) for p in paths]
        for path in paths:
            path = path.replace("{mission_id}", mission_id)
            assert "{" not in path, f"no value for {route.path}"
            public = route.name.startswith("console_sign_in") or route.name == "console_answer"
            viewers = [anonymous] if public else list(signed.values())
            shown = 0
            for viewer in viewers:
                response = await viewer.goto(path)
                assert response is not None
                if response.status == 403 and not public:
                    continue  # not this role's page; another role's answer is checked
                assert response.status == 200, (path, response.status)
                violations = await axe_violations(viewer)
                assert violations == [], (path, violations)
                shown += 1
            assert shown, f"no role may see {path}"
            visited.append(path)
    assert len(visited) >= 8
    assert state.version >= 2
    # A page at phone width keeps its content within the screen.
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.goto(f"/missions/{mission_id}")
    width = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
        " > 376).map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"
    )
    assert width <= 375 + 1, wide
    assert console.outside_requests == []


async def test_forms_need_their_session_csrf_token(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console)
    first = await console.signed_in(browser, await console.user(Role.coordinator))
    second = await console.signed_in(browser, await console.user(Role.coordinator))
    before = await console.missions.store.stream_version(mission_id)
    action = f"/missions/{mission_id}/commands/appoint_head_of_mission"
    body: dict[str, str | float | bool] = {"name": "Someone", "title": "Head"}
    no_token = await first.request.post(action, form=body, max_redirects=0)
    assert no_token.status == 403
    assert "CSRF" in await no_token.text()
    other_token = await second.evaluate("document.body.getAttribute('hx-headers')")
    assert other_token
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', other_token)
    assert token
    forged = await first.request.post(
        action, form={**body, "_csrf": token.group(1)}, max_redirects=0
    )
    assert forged.status == 403
    assert await console.missions.store.stream_version(mission_id) == before
    # The sign-out form too: a session ends only by its own form.
    assert (await first.request.post("/sign-out", max_redirects=0)).status == 403


async def test_a_refused_command_shows_its_rule_and_records_nothing(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console, before=c.NominateObserver)
    page = await console.signed_in(browser, await console.user(Role.coordinator))
    before = await console.missions.store.stream_version(mission_id)
    await page.goto(f"/missions/{mission_id}/commands/request_nominations")
    await page.fill('[name="deadline"]', "2020-01-01T10:00")
    # The dry run names the rule as the form is filled, before anything is sent.
    await expect(page.locator("#check")).to_contain_text("deadline_passed")
    await page.get_by_role("button", name="Record").click()
    await expect(page.locator(".refusal")).to_contain_text("deadline_passed")
    assert await console.missions.store.stream_version(mission_id) == before


async def test_the_timeline_shows_another_clients_event_live(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console)
    page = await console.signed_in(browser, await console.user(Role.coordinator))
    await page.goto(f"/missions/{mission_id}")
    await expect(page.locator("#timeline li")).to_have_count(1)
    token, _ = await console.tokens.create(role=Role.coordinator, name="another client")
    answer = await console.http.post(
        f"/v1/missions/{mission_id}/appoint-head-of-mission",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": seed.HEAD_OF_MISSION, "title": "Deputy Secretary General"},
    )
    assert answer.status_code == 200, answer.text
    await expect(page.locator("#timeline li").first).to_contain_text(
        "Head of mission appointed", timeout=15_000
    )
    await expect(page.locator("#timeline li")).to_have_count(2)


async def test_links_work_once_and_disabling_a_person_ends_their_sessions_and_streams(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console)
    person = await console.user(Role.coordinator)
    context = await console.context(browser)
    page = await context.new_page()
    secret = await console.links.issue(person, timedelta(minutes=5))
    await page.goto(f"/sign-in/{secret}")
    await page.get_by_role("button", name="Continue to eom").click()
    await page.wait_for_url(f"{console.url}/")
    # The same link again, from another browser: used.
    other = await (await console.context(browser)).new_page()
    await other.goto(f"/sign-in/{secret}")
    async with other.expect_response(lambda r: r.request.method == "POST") as used:
        await other.get_by_role("button", name="Continue to eom").click()
    assert (await used.value).status == 410
    await expect(other.get_by_role("alert")).to_contain_text("already used")
    # A live stream of the session, then the person is disabled: both end.
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    async with console.http.stream(
        "GET", f"/missions/{mission_id}/live", cookies=cookies, timeout=30
    ) as stream:
        assert stream.status_code == 200
        await console.users.disable(person.email, actor="test")
        received = [line async for line in stream.aiter_lines()]
    assert "event: end" in received
    await page.goto(f"/missions/{mission_id}")
    assert page.url == f"{console.url}/sign-in"


async def test_member_state_links_expire_and_their_forms_need_their_token(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console, before=c.NominateObserver)
    links = AnswerLinks(console.missions.store.pool)
    expired = await links.issue(
        mission_id,
        "AZ",
        DeadlineKind.nomination,
        0,
        timedelta(days=1),
        now=datetime.now(UTC) - timedelta(days=2),
    )
    page = await (await console.context(browser)).new_page()
    answer = await page.goto(f"/answer/{expired}")
    assert answer is not None and answer.status == 410
    await expect(page.get_by_role("alert")).to_contain_text("expired")
    live = await links.issue(mission_id, "KG", DeadlineKind.nomination, 0, timedelta(days=1))
    before = await console.missions.store.stream_version(mission_id)
    form: dict[str, str | float | bool] = {"observers.0.name": "Forged", "reason": "forged"}
    for action in ("nominate", "decline"):
        forged = await page.request.post(f"/answer/{live}/{action}", form=form)
        assert forged.status == 403
    token_of_other = await links.issue(
        mission_id, "UZ", DeadlineKind.nomination, 0, timedelta(days=1)
    )
    await page.goto(f"/answer/{token_of_other}")
    other_token = await page.locator('[name="_csrf"]').first.get_attribute("value")
    assert other_token
    forged = await page.request.post(
        f"/answer/{live}/decline", form={"reason": "forged", "_csrf": other_token}
    )
    assert forged.status == 403
    assert await console.missions.store.stream_version(mission_id) == before
    # KG's own page declines for KG only, once.
    await page.goto(f"/answer/{live}")
    await page.fill('[name="reason"]', "No observers available this time.")
    await page.get_by_role("button", name="Decline to nominate").click()
    await expect(page.get_by_role("status")).to_contain_text("recorded")
    state = await console.missions.state(mission_id)
    assert list(state.declined) == ["KG"]
    again = await page.goto(f"/answer/{live}")
    assert again is not None and again.status == 410


async def test_a_person_reads_the_console_in_their_language(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    for language, heading in (("ru", "Миссии"), ("tr", "Heyetler"), ("en", "Missions")):
        person = await console.user(Role.coordinator, language=language)
        page = await console.signed_in(browser, person)
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert await page.get_attribute("html", "lang") == language


def test_links_secrets_never_reach_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/answer/" + "a" * 43, "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert "a" * 43 not in record.getMessage()
    assert "/answer/…" in record.getMessage()
    assert redact("/sign-in/" + "Z9_-" * 10 + "?x=1") == "/sign-in/…?x=1"


def test_the_catalogues_translate_every_message() -> None:
    """Every message of the console has its Russian and Turkish translation, with the
    same placeholders."""
    with (CATALOGUES / "messages.pot").open("rb") as pot:
        template = read_po(pot)
    for language in ("ru", "tr"):
        with (CATALOGUES / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalogue = read_po(po, locale=language)
        for message in template:
            if not message.id:
                continue
            found = catalogue.get(message.id)
            assert found is not None and not found.fuzzy, (language, message.id)
            ids = [str(i) for i in (found.id if isinstance(found.id, tuple) else (found.id,))]
            strings = [
                str(t)
                for t in (found.string if isinstance(found.string, tuple) else (found.string,))
            ]
            assert all(strings), (language, message.id)
            wanted = set(re.findall(r"%\(\w+\)[sd]", " ".join(ids)))
            for string in strings:
                assert set(re.findall(r"%\(\w+\)[sd]", string)) == wanted, (language, string)


async def test_an_organisation_among_the_recipients_acknowledges_from_its_link(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = f"tc-{uuid.uuid4().hex[:8]}"
    await seeded(console.missions, mission_id, before=c.AcknowledgeRecommendations)
    links = AnswerLinks(console.missions.store.pool)
    day = timedelta(days=1)
    odihr = await links.issue(mission_id, "OSCE/ODIHR", DeadlineKind.acknowledgement, 0, day)
    page = await (await console.context(browser)).new_page()
    await page.goto(f"/answer/{odihr}")
    await page.get_by_role("button", name="Acknowledge receipt").click()
    await expect(page.get_by_role("status")).to_contain_text("recorded")
    state = await console.missions.state(mission_id)
    acknowledged = {d.recipient.name for d in state.deliveries.values() if d.acknowledged_on}
    assert acknowledged == {"OSCE/ODIHR"}


async def test_a_nomination_is_recorded_whole_or_not_at_all(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console, before=c.NominateObserver)
    links = AnswerLinks(console.missions.store.pool)
    secret = await links.issue(mission_id, "AZ", DeadlineKind.nomination, 0, timedelta(days=1))
    page = await (await console.context(browser)).new_page()
    await page.goto(f"/answer/{secret}")
    token = await page.locator('[name="_csrf"]').first.get_attribute("value")
    assert token
    before = await console.missions.store.stream_version(mission_id)
    signed = {"code_of_conduct_signed": "on", "conflict_of_interest_declared": "on"}
    for form in (
        # The second observer has not given the pledges.
        {"observers.0.name": "Rashad Guliyev", "observers.1.name": "Leyla Hasanova"},
        # The same person twice.
        {"observers.0.name": "Ali Mammadov", "observers.1.name": "ALI  MAMMADOV"},
    ):
        posted: dict[str, str | float | bool] = {"_csrf": token, **form}
        for index in (0, 1):
            posted.update({f"observers.{index}.{k}": v for k, v in signed.items()})
        if "Leyla Hasanova" in form.values():
            del posted["observers.1.code_of_conduct_signed"]
        answer = await page.request.post(f"/answer/{secret}/nominate", form=posted)
        assert answer.status == 422, await answer.text()
        assert "Nothing was recorded" in await answer.text()
    assert await console.missions.store.stream_version(mission_id) == before
    # The link still works: both observers at once.
    await page.goto(f"/answer/{secret}")
    await page.fill('[name="observers.0.name"]', "Rashad Guliyev")
    await page.check('[name="observers.0.code_of_conduct_signed"]')
    await page.check('[name="observers.0.conflict_of_interest_declared"]')
    await page.get_by_role("button", name="Add another observer").click()
    await page.fill('[name="observers.1.name"]', "Ayşe Kaya")
    await page.check('[name="observers.1.code_of_conduct_signed"]')
    await page.check('[name="observers.1.conflict_of_interest_declared"]')
    await page.get_by_role("button", name="Nominate", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("recorded")
    state = await console.missions.state(mission_id)
    assert sorted(state.observers) == ["az-ayse-kaya", "az-rashad-guliyev"]


async def test_odd_input_is_refused_with_a_page_never_a_server_error(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _mission(console)
    page = await console.signed_in(browser, await console.user(Role.coordinator))
    response = await page.goto(f"/missions/{mission_id}")
    assert response is not None
    headers = await response.all_headers()
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    action = f"/missions/{mission_id}/commands/appoint_head_of_mission"
    for csrf in ("é", "\u202e" * 40):
        answer = await page.request.post(
            action, form={"_csrf": csrf, "name": "X", "title": "Y"}, max_redirects=0
        )
        assert answer.status == 403
    answer_secret = await AnswerLinks(console.missions.store.pool).issue(
        mission_id, "AZ", DeadlineKind.acknowledgement, 0, timedelta(days=1)
    )
    for path in (f"/answer/{answer_secret}/acknowledge", "/sign-in"):
        odd = await page.request.post(path, form={"_csrf": "é", "reason": "x", "email": "a@b.org"})
        assert odd.status == 403, (path, odd.status)
    token = (await page.evaluate("document.body.getAttribute('hx-headers')") or "").split('"')[3]
    broken = await page.request.post(
        action,
        data=b"_csrf=" + token.encode() + b"&name=%ED%A0%80%FF&title=Head",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert broken.status == 422
    assert "UTF-8" in await broken.text()
    # Scope is checked before a live stream starts.
    other = await console.signed_in(
        browser, await console.user(Role.coordinator, organisation="Another Organisation")
    )
    refused = await other.request.get(f"/missions/{mission_id}/live")
    assert refused.status == 404
    assert "text/html" in refused.headers["content-type"]
    # Signing in: a malformed address is named; many requests are limited.
    anonymous = await (await console.context(browser)).new_page()
    await anonymous.goto("/sign-in")
    form_token = await anonymous.locator('[name="_csrf"]').get_attribute("value")
    assert form_token
    nul = await anonymous.request.post(
        "/sign-in", form={"_csrf": form_token, "email": "a\0b@x.org"}
    )
    assert nul.status == 422
    nobody = f"nobody.{uuid.uuid4().hex[:8]}@eom.example"
    statuses = [
        (
            await anonymous.request.post("/sign-in", form={"_csrf": form_token, "email": nobody})
        ).status
        for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]


async def test_reminder_buttons_replay_and_sign_out_act_as_they_say(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    directory = MemberStateDirectory(console.missions.store.pool)
    for contact in seed.contacts():
        await directory.upsert(contact)
    mission_id = await _mission(console, before=c.NominateObserver)
    await console.missions.execute(
        mission_id,
        c.RequestNominations(
            deadline=datetime.now(UTC) + timedelta(hours=2),
            ladder=ReminderLadder(offsets_seconds=[3600], escalate_after_seconds=86_400),
        ),
        actor="test",
    )
    page = await console.signed_in(browser, await console.user(Role.coordinator))

    async def ladder_of(code: str) -> Any:
        for status in await console.missions.ladders(mission_id):
            if status.member_state == code:
                return status
        return None

    async def row(code: str) -> Any:
        await page.goto(f"/missions/{mission_id}")
        return page.locator("#reminders tr", has=page.locator(f"th:text-is('{code}')"))

    for _ in range(60):  # the ladders start a moment after the request is recorded
        if await ladder_of("AZ") is not None:
            break
        await page.wait_for_timeout(250)
    await (await row("AZ")).get_by_role("button", name=re.compile("^Pause")).click()
    await expect(await row("AZ")).to_contain_text("paused", timeout=10_000)
    assert (await ladder_of("AZ")).paused
    await (await row("AZ")).get_by_role("button", name=re.compile("^Resume")).click()
    await expect(await row("AZ")).to_contain_text("running", timeout=10_000)
    sent_before = (await console.missions.state(mission_id)).reminders
    await (await row("KG")).get_by_role("button", name=re.compile("^Send now")).click()

    async def reminded() -> bool:
        state = await console.missions.state(mission_id)
        return (
            any(t.member_state == "KG" and t.sent > 1 for t in state.reminders.values())
            and state.reminders != sent_before
        )

    for _ in range(60):
        if await reminded():
            break
        await page.wait_for_timeout(250)
    assert await reminded()
    # An auditor's replay at a version shows that version's stage.
    await page.goto(f"/missions/{mission_id}/audit")
    await page.fill("#version", "1")
    await page.get_by_role("button", name="Replay", exact=True).click()
    await expect(page.locator("article header")).to_contain_text("version 1")
    await expect(page.locator("article")).to_contain_text("Invited")
    await page.fill("#version", "")
    await page.fill("#at", "not a time")
    await page.get_by_role("button", name="Replay", exact=True).click()
    await expect(page.locator("#at-problem")).to_contain_text("at")
    # Signing out ends the session: the next page asks to sign in.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{console.url}/sign-in")
    await page.goto(f"/missions/{mission_id}")
    assert page.url == f"{console.url}/sign-in"
