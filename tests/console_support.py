"""The console served over the real services, and Debian's Chromium driven by
Playwright, for the console's browser tests.

Chromium is launched by its path (``EOM_CHROMIUM``, else ``chromium`` on the PATH, else
``/usr/bin/chromium``): nothing is downloaded. Every page the browser opens may load
only from the console itself; any other request is aborted and recorded, and the tests
assert none was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from accounts.directory import UserDirectory
from accounts.links import SignInLinks
from accounts.users import User
from activities.delivery import DeliverySettings
from api.feed import EventFeed
from api.tokens import Role, TokenStore
from cli import seed
from cli.smtp_sink import SmtpSink
from console.app import ConsoleServices, ConsoleSettings, mount_console
from workflows.client import CommandRefused, Missions

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

_CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """Debian's Chromium, or a clear failure saying how to install it."""
    configured = os.environ.get("EOM_CHROMIUM")
    found = configured or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.fail(
            f"the console's browser tests drive Chromium, not found at {found}: install "
            "Debian's package (`sudo apt-get install chromium`; `.ci/run` does it) or set "
            "EOM_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    return found


@contextlib.asynccontextmanager
async def launched_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=_CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Mailbox:
    """The SMTP sink's messages, parsed."""

    sink: SmtpSink

    def messages(self) -> list[Message]:
        return [email.message_from_bytes(p.read_bytes()) for p in self.sink.files()]

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages() if address.lower() in str(m["To"]).lower()]

    async def wait_for(self, address: str, count: int = 1, within: float = 30.0) -> list[Message]:
        """The messages to ``address`` once there are ``count`` of them (polled)."""
        deadline = time.monotonic() + within
        while True:
            found = self.to(address)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} message(s) to {address} expected, got {len(found)}")
            await asyncio.sleep(0.2)


def body_of(message: Message) -> str:
    if message.is_multipart():
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode(part.get_content_charset() or "utf-8")
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def link_in(message: Message, path: str) -> str:
    """The first link to ``path`` (``/sign-in/``, ``/answer/``) in a message's text."""
    found = re.search(r"https?://\S+" + re.escape(path) + r"[A-Za-z0-9_-]+", body_of(message))
    assert found, f"no {path} link in {body_of(message)!r}"
    return found.group(0)


@dataclass
class RunningConsole:
    """The API and the console served on a free port over this session's services."""

    url: str
    app: FastAPI
    missions: Missions
    users: UserDirectory
    links: SignInLinks
    tokens: TokenStore
    mailbox: Mailbox
    http: httpx.AsyncClient
    outside_requests: list[str] = field(default_factory=list)

    async def user(
        self, role: Role, *, language: str = "en", name: str | None = None, **scope: str
    ) -> User:
        """A new person of ``role`` (their e-mail unique to the test)."""
        tag = uuid.uuid4().hex[:8]
        return await self.users.add(
            email=f"{role.value}.{tag}@eom.example",
            name=name or f"{role.value.replace('_', ' ').title()} {tag}",
            language=language,
            role=role,
            actor="test",
            **scope,
        )

    async def context(self, browser: Browser, *, bypass_csp: bool = True) -> BrowserContext:
        """A fresh browser profile whose requests may go to the console only."""
        # axe-core is injected into the pages under test: their Content-Security-Policy
        # (scripts from the console only) is bypassed for it, unless a test checks that
        # a page works under its own policy.
        context = await browser.new_context(base_url=self.url, bypass_csp=bypass_csp)
        context.set_default_timeout(15_000)

        async def only_here(route: Route) -> None:
            if route.request.url.startswith(self.url):
                await route.continue_()
            else:
                self.outside_requests.append(route.request.url)
                await route.abort()

        await context.route("**/*", only_here)
        return context

    async def signed_in(self, browser: Browser, user: User, *, bypass_csp: bool = True) -> Page:
        """A page of a new profile, signed in as ``user`` by a one-time link."""
        context = await self.context(browser, bypass_csp=bypass_csp)
        page = await context.new_page()
        secret = await self.links.issue(user, timedelta(minutes=5))
        await page.goto(f"/sign-in/{secret}")
        await page.get_by_role("button", name=re.compile("Continue|Продолжить|Devam")).click()
        await page.wait_for_url(f"{self.url}/")
        return page


async def seeded(missions: Missions, mission_id: str, *, before: type[Any]) -> None:
    """The seed mission recorded up to (not including) its first command of type
    ``before``; closing election day waits (a bounded poll) until the mission counts the
    visits the intake recorded."""
    for command in seed.mission(mission_id):
        if isinstance(command, before):
            return
        for attempt in range(60):
            try:
                await missions.execute(mission_id, command, actor="test")
                break
            except CommandRefused as refused:
                if refused.rule != "no_station_visits" or attempt == 59:
                    raise
                await asyncio.sleep(0.25)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it is."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
        "nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))",
        WCAG_21_AA,
    )
    assert isinstance(result, list)
    return result


def console_app(app: FastAPI, feed: EventFeed, *, url: str, mail: DeliverySettings) -> None:
    """The console mounted on ``app`` (an API app), its links naming ``url``."""
    mount_console(
        app,
        ConsoleServices(feed=feed, mail=mail),
        ConsoleSettings(
            secret_key="console-tests-" + "k" * 40,
            base_url=url,
            stream_check_seconds=0.5,
        ),
    )
