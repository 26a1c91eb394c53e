"""The observer's web form in Chromium: an eom XForm rendered by ODK Web Forms (ODK's
published XForm client), filled and sent to the mission's OpenRosa server; then offline,
three reports queued in the outbox and each stored once when the connection returns."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from console_support import RunningConsole, axe_violations, seeded
from playwright.async_api import Browser, Page

from api.tokens import Role
from console.observe import OBSERVE_CSP
from domain import commands as c
from domain.values import Citation
from forms.library import FormLibrary

pytestmark = pytest.mark.browser

QUICK_CHECK = Path(__file__).with_name("forms") / "quick_check.md"
ON_ELECTION_DAY = "2021-01-10T09:30:00+06:00"
"""The device's clock while filling: the seed mission's election day, in Nur-Sultan."""


async def _receipts(console: RunningConsole, mission_id: str) -> list[Any]:
    return list(
        await console.missions.store.pool.fetch(
            "SELECT r.submission_id, r.team_id, r.station_id, e.data AS data "
            "FROM intake_receipts AS r JOIN events AS e USING (event_id) "
            "WHERE r.mission_id = $1 AND r.submission_id LIKE 'uuid:%' "
            "ORDER BY r.global_position",
            mission_id,
        )
    )


async def _fill(page: Page, voters: str) -> None:
    """One quick check: the box sealed, ``voters`` in the queue, sent."""
    await page.get_by_label("Yes", exact=True).check()
    field = page.locator(".question-container", has=page.locator("label", has_text="Voters"))
    number = field.locator("input[role=spinbutton]")
    await number.wait_for()
    await number.press_sequentially(voters)
    await number.blur()
    queued = int(await page.evaluate("Number(document.body.dataset.queued ?? 0)"))
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_selector(f"body[data-queued='{queued + 1}']", state="attached")


async def _open_with_quick_check(console: RunningConsole) -> str:
    """A seed mission at an open election day, the quick check assigned to it."""
    mission_id = f"webform-{uuid.uuid4().hex[:8]}"
    await seeded(console.missions, mission_id, before=c.CloseElectionDay)
    state = await console.missions.state(mission_id)
    assert state.organisation is not None
    await FormLibrary(console.missions.store).import_file(
        mission_id, state.organisation, QUICK_CHECK, actor="test"
    )
    return mission_id


async def test_the_web_form_fills_an_eom_xform_and_queues_offline(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _open_with_quick_check(console)
    observer = await console.user(Role.observer, mission_id=mission_id, team_id="team-1")

    # The real page, under its own Content-Security-Policy (no bypass).
    page = await console.signed_in(browser, observer, bypass_csp=False)
    response = await page.goto(f"/missions/{mission_id}/observe")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == OBSERVE_CSP
    await page.clock.set_fixed_time(datetime.fromisoformat(ON_ELECTION_DAY))
    await page.wait_for_selector("body[data-ready='true']", state="attached")
    station = await page.locator("select[name=station] option").first.get_attribute("value")
    assert station
    await page.get_by_role("button", name="Open the form").click()
    await page.wait_for_selector(".form-initialization-status.ready", state="attached")
    # The team and the station are filled in from the page.
    assert await page.get_by_label("Station ID").input_value() == station
    await _fill(page, "42")
    await page.wait_for_selector("#outbox tr[data-state='acknowledged']")
    (first,) = await _receipts(console, mission_id)
    assert (first["team_id"], first["station_id"]) == ("team-1", station)
    checklist = first["data"]["checklists"][0]
    assert (checklist["form_id"], checklist["answers"]) == (
        "quick_check",
        {"sealed": "yes", "voters": 42},
    )

    # Offline: three reports wait in the outbox; nothing reaches eom.
    await page.context.set_offline(True)
    await page.wait_for_selector("body[data-online='false']", state="attached")
    for voters in ("1", "2", "3"):
        await _fill(page, voters)
    waiting = page.locator("#outbox tr[data-state='waiting']")
    assert await waiting.count() == 3
    # Opened again offline, the page comes from the service worker, the outbox from
    # IndexedDB, and the form still opens.
    await page.reload()
    await page.wait_for_selector("body[data-ready='true']", state="attached")
    assert await waiting.count() == 3
    await page.get_by_role("button", name="Open the form").click()
    await page.wait_for_selector(".form-initialization-status.ready", state="attached")
    assert len(await _receipts(console, mission_id)) == 1
    # The connection returns: each is sent, acknowledged, and stored once.
    await page.context.set_offline(False)
    await _until_acknowledged(page, 4)
    receipts = await _receipts(console, mission_id)
    ids = [r["submission_id"] for r in receipts]
    assert len(ids) == len(set(ids)) == 4
    assert sorted(r["data"]["checklists"][0]["answers"]["voters"] for r in receipts) == [
        1,
        2,
        3,
        42,
    ]
    shown = await page.locator("#outbox tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    assert sorted(shown) == sorted(ids)
    # Sent again (the outbox's resend), each is acknowledged with the first receipt.
    await page.evaluate(
        """async () => {
          const db = await new Promise(r => { const o = indexedDB.open('eom-outbox', 1);
                                               o.onsuccess = () => r(o.result); });
          const all = await new Promise(r => { const q = db.transaction('reports')
                                                .objectStore('reports').getAll();
                                               q.onsuccess = () => r(q.result); });
          const tx = db.transaction('reports', 'readwrite');
          for (const report of all) {
            report.state = 'waiting';
            tx.objectStore('reports').put(report);
          }
          await new Promise(r => { tx.oncomplete = r; });
        }"""
    )
    await page.reload()
    await page.wait_for_selector("body[data-ready='true']", state="attached")
    await _until_acknowledged(page, 4)
    assert len(await _receipts(console, mission_id)) == 4
    assert re.search(r"Already received", await page.locator("#outbox").inner_text())

    # The coordinator reads the figures: one station, however many reports.
    coordinator = await console.signed_in(browser, await console.user(Role.coordinator))
    await coordinator.goto(f"/missions/{mission_id}/analysis")
    row = coordinator.locator("#q-quick_check-sealed")
    assert "yes: 1 / 1 (100%)" in " ".join((await row.inner_text()).split())
    assert await axe_violations(coordinator) == []
    # A draft cites the figure; the head of mission's page shows it beside the text.
    await console.missions.execute(mission_id, c.CloseElectionDay(), actor="test")
    await console.missions.execute(
        mission_id,
        c.DraftStatement(
            draft_id="web-1",
            title="Preliminary statement",
            text="Ballot boxes were sealed in the stations observed.",
            citations=[Citation(form_id="quick_check", question="sealed", answer="yes")],
        ),
        actor="test",
    )
    await coordinator.goto(f"/missions/{mission_id}/statement")
    cited = " ".join((await coordinator.locator("#cited-figures").inner_text()).split())
    assert "quick_check/sealed" in cited and "yes: 1 / 1 (100%)" in cited
    assert await axe_violations(coordinator) == []
    assert console.outside_requests == []


async def _until_acknowledged(page: Page, count: int) -> None:
    selector = "#outbox tr[data-state='acknowledged']"
    for _ in range(150):
        if await page.locator(selector).count() == count:
            return
        await page.wait_for_timeout(200)
    raise AssertionError(await page.locator("#outbox").inner_text())


async def test_the_web_form_page_with_a_form_open_passes_axe(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    mission_id = await _open_with_quick_check(console)
    observer = await console.user(Role.observer, mission_id=mission_id, team_id="team-2")
    page = await console.signed_in(browser, observer)
    await page.goto(f"/missions/{mission_id}/observe")
    await page.wait_for_selector("body[data-ready='true']", state="attached")
    await page.get_by_role("button", name="Open the form").click()
    await page.wait_for_selector(".form-initialization-status.ready", state="attached")
    assert await axe_violations(page) == []
    # ODK Collect's settings, shown once as a QR code with the team's server URL.
    await page.get_by_role("button", name="Show ODK Collect's QR code").click()
    qr = await page.locator("#collect-qr").get_attribute("src")
    assert qr is not None and qr.startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(qr.split(",", 1)[1])
    url = (await page.locator("#collect-url").inner_text()).strip()
    assert re.fullmatch(
        rf"{console.url}/openrosa/key/eom_[0-9a-f]{{32}}/missions/{mission_id}", url
    )
    listed = await page.request.get(f"{url}/formList")
    assert listed.status == 200 and listed.headers["x-openrosa-version"] == "1.0"
    assert "quick_check" in await listed.text()
    assert await axe_violations(page) == []
    assert console.outside_requests == []
