"""The console in a real browser (Debian's Chromium through Playwright), against the real
services: every page passes axe-core's WCAG 2.1 AA rules with no violation; forms are
refused without their session's CSRF token or with another session's; a refused command
shows its rule and records nothing; the timeline shows another client's event without a
reload; nothing is loaded from outside the machine.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from console_support import RunningConsole, axe_violations, seeded
from fastapi.routing import APIRoute
from playwright.async_api import Browser, expect
from starlette.routing import Mount

from accounts.answer_links import AnswerLinks
from api.tokens import Role
from cli import seed
from console.app import DOWNLOADS, FRAGMENTS, STREAMS
from domain import commands as c
from domain.values import DeadlineKind

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
        if route.path.startswith("/v1") or route.path == "/health" or "GET" not in methods:
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
