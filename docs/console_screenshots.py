"""Screenshots of the console's main pages for the README, taken from a running eom.

Run ``eom up --demo`` (or ``make run``), then ``.venv/bin/python docs/console_screenshots.py``:
the demo's people sign in by one-time links made here, and Debian's Chromium (Playwright,
launched by its path) saves ``docs/console/*.png``.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from accounts.answer_links import AnswerLinks
from accounts.directory import UserDirectory
from accounts.links import SignInLinks
from api.tokens import Role
from cli.demo import DEMO_AUDITOR, ensure_people
from cli.services import open_missions, read_runtime
from domain.values import DeadlineKind
from worker import Settings

OUT = Path(__file__).parent / "console"
MISSION = "tc-kz-2021"


async def signed_in(browser: Browser, base: str, secret: str, width: int = 1280) -> Page:
    page = await browser.new_page(base_url=base, viewport={"width": width, "height": 900})
    await page.goto(f"/sign-in/{secret}")
    await page.locator("form button").click()
    await page.wait_for_url(f"{base}/")
    return page


async def main() -> None:
    runtime = read_runtime()
    if runtime is None or not runtime.api_url:
        raise SystemExit("start eom first: eom up --demo")
    base = runtime.api_url
    OUT.mkdir(exist_ok=True)
    async with open_missions(Settings()) as missions:
        store = missions.store
        coordinator = await ensure_people(store, MISSION)
        users = UserDirectory(store)
        links = SignInLinks(store.pool)
        reader = await users.by_email("coordinator.ru@turkic-council.example.org")
        if reader is None:
            reader = await users.add(
                email="coordinator.ru@turkic-council.example.org",
                name="Айгерим Бекова",
                role=Role.coordinator,
                language="ru",
                organisation=coordinator.organisation,
                actor="eom screenshots",
            )
        head = await users.by_email("head-of-mission@turkic-council.example.org")
        auditor = await users.by_email(DEMO_AUDITOR)
        assert head is not None and auditor is not None
        hour = timedelta(hours=1)
        secrets = {
            "coordinator": await links.issue(coordinator, hour),
            "head": await links.issue(head, hour),
            "auditor": await links.issue(auditor, hour),
            "ru": await links.issue(reader, hour),
        }
        evidence = await AnswerLinks(store.pool).issue(
            MISSION, "KZ", DeadlineKind.evidence, 1, hour
        )
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = await signed_in(browser, base, secrets["coordinator"])
        await page.screenshot(path=OUT / "board.png")
        await page.goto(f"/missions/{MISSION}")
        await page.screenshot(path=OUT / "mission.png")
        await page.goto(f"/missions/{MISSION}/commands/request_evidence")
        await page.fill('[name="cycle"]', "2")
        await page.fill('[name="member_states"]', "KZ")
        yesterday = datetime.now(UTC) - timedelta(days=1)
        await page.fill('[name="deadline"]', yesterday.strftime("%Y-%m-%dT%H:%M"))
        await page.locator("#check .refusal").wait_for()
        await page.locator("#check .refusal").scroll_into_view_if_needed()
        await page.screenshot(path=OUT / "refusal.png")
        head_page = await signed_in(browser, base, secrets["head"])
        await head_page.goto(f"/missions/{MISSION}/statement")
        await head_page.screenshot(path=OUT / "statement.png")
        answer = await browser.new_page(base_url=base, viewport={"width": 1280, "height": 900})
        await answer.goto(f"/answer/{evidence}")
        await answer.screenshot(path=OUT / "answer.png")
        audit = await signed_in(browser, base, secrets["auditor"])
        await audit.goto(f"/missions/{MISSION}/audit?version=5")
        await audit.screenshot(path=OUT / "audit.png")
        phone = await signed_in(browser, base, secrets["ru"], width=390)
        await phone.screenshot(path=OUT / "phone-ru.png", full_page=True)
        await browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
