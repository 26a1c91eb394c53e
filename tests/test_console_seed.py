"""The seed mission driven end to end through the console, in Debian's Chromium, against
the real services: a coordinator signs in from the e-mailed link, registers the mission,
appoints, requests nominations; the member states answer from the links in the e-mails
the SMTP sink caught; the head of mission approves the draft shown with its changes; the
coordinator publishes, issues and sends the recommendations, which the member states
acknowledge from their links, and closes; an auditor verifies and downloads the PDF.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from console_support import RunningConsole, link_in
from playwright.async_api import Browser, Page, expect

from activities.directory import MemberStateDirectory
from api.tokens import Role
from cli import seed

pytestmark = pytest.mark.browser

STATES = ["AZ", "KG", "TR", "UZ"]


async def give(page: Page, mission_id: str, command: str, fields: dict[str, str]) -> None:
    """Fill a command's form on the mission page and record it."""
    await page.goto(f"/missions/{mission_id}/commands/{command}")
    for name, value in fields.items():
        target = page.locator(f'[name="{name}"]')
        if await target.evaluate("e => e.tagName") == "SELECT":
            await target.select_option(value)
        elif await target.get_attribute("type") == "checkbox":
            await target.set_checked(value == "on")
        else:
            await target.fill(value)
    await page.get_by_role("button", name="Record").click()
    await page.wait_for_url(re.compile(rf"/missions/{mission_id}(#.*)?$"))


async def test_the_seed_mission_through_the_console(
    running_console: RunningConsole, browser: Browser
) -> None:
    console = running_console
    directory = MemberStateDirectory(console.missions.store.pool)
    for contact in seed.contacts():
        await directory.upsert(contact)
    mission_id = f"tc-kz-{uuid.uuid4().hex[:6]}"
    zone = ZoneInfo(seed.TIME_ZONE)

    # A coordinator signs in from the link e-mailed to them.
    coordinator = await console.user(Role.coordinator, organisation=seed.ORGANISATION)
    context = await console.context(browser)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.fill('[name="email"]', coordinator.email)
    await page.get_by_role("button", name="Send me a sign-in link").click()
    await expect(page.get_by_role("status")).to_contain_text("sign-in link")
    (mail,) = await console.mailbox.wait_for(coordinator.email)
    await page.goto(link_in(mail, "/sign-in/"))
    await page.get_by_role("button", name="Continue to eom").click()
    await page.wait_for_url(f"{console.url}/")

    # Registers the invitation, appoints the head of mission, requests nominations.
    await page.goto("/missions/new")
    registration = seed.registration(mission_id)
    for name, value in {
        "mission_id": mission_id,
        "organisation": registration.organisation,
        "host_country": "KZ",
        "inviting_authority": registration.inviting_authority,
        "election.name": registration.election.name,
        "election.date": registration.election.date.isoformat(),
        "mission_window.start": registration.mission_window.start.isoformat(),
        "mission_window.end": registration.mission_window.end.isoformat(),
        "member_states": "\n".join(STATES),
        "time_zone": seed.TIME_ZONE,
    }.items():
        await page.fill(f'[name="{name}"]', value)
    await page.select_option('[name="election.type"]', "parliamentary")
    await page.get_by_role("button", name="Register").click()
    await page.wait_for_url(f"{console.url}/missions/{mission_id}")
    await give(
        page,
        mission_id,
        "appoint_head_of_mission",
        {"name": seed.HEAD_OF_MISSION, "title": "Deputy Secretary General"},
    )
    deadline = (datetime.now(zone) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    await give(
        page,
        mission_id,
        "request_nominations",
        {
            "deadline": deadline,
            "ladder.offsets_seconds": "3600",
            "ladder.escalate_after_seconds": "86400",
        },
    )

    # Each member state answers from the link in its request.
    answers = await console.context(browser)
    for index, code in enumerate(STATES):
        address = f"focal-point.{code.lower()}@mfa.example.org"
        messages = await console.mailbox.wait_for(address)
        link = link_in(messages[-1], "/answer/")
        answer = await answers.new_page()
        opened = await answer.goto(link)
        assert opened is not None and opened.status == 200, await answer.inner_text("main")
        language = {"KG": "ru", "TR": "tr"}.get(code, "en")
        assert await answer.get_attribute("html", "lang") == language
        await answer.fill('[name="observers.0.name"]', f"Observer {index + 1} of {code}")
        await answer.check('[name="observers.0.code_of_conduct_signed"]')
        await answer.check('[name="observers.0.conflict_of_interest_declared"]')
        # Each page speaks its focal point's language (KG's Russian, TR's Turkish).
        await answer.locator('form[action$="/nominate"] button[type="submit"]').click()
        await expect(answer.locator("article.accepted[role=status]")).to_be_visible()
        # The link is spent once its request is answered.
        again = await answer.goto(link)
        assert again is not None and again.status == 410
    state = await console.missions.state(mission_id)
    assert {o.member_state for o in state.observers.values()} == set(STATES)
    nominated = await _actors(console, mission_id, "ObserverNominated")
    assert len(nominated) == 4
    assert all(a.startswith("member_state:") for a in nominated)

    for observer_id in state.observers:
        await give(page, mission_id, "accept_observer", {"observer_id": observer_id})
    await give(
        page,
        mission_id,
        "form_team",
        {"team_id": "team-1", "observer_ids": "\n".join(state.observers)},
    )
    await give(page, mission_id, "deploy_mission", {"deployed_on": "2021-01-06"})
    await give(
        page,
        mission_id,
        "register_polling_stations",
        {"stations.0.station_id": "NS-101", "stations.0.locality": seed.LOCALITY},
    )
    await give(page, mission_id, "open_election_day", {})
    observer, _ = await console.tokens.create(
        role=Role.observer, name="team 1", mission_id=mission_id, team_id="team-1"
    )
    sent = await console.http.post(
        f"/v1/missions/{mission_id}/reports",
        headers={"Authorization": f"Bearer {observer}"},
        json={"reports": [_visit(mission_id)]},
    )
    assert sent.status_code == 200, sent.text
    await _closed_when_reported(page, mission_id)

    await give(
        page,
        mission_id,
        "draft_statement",
        {"draft_id": "statement-1", "title": seed.STATEMENT_TITLE, "text": "First draft."},
    )
    await give(
        page,
        mission_id,
        "draft_statement",
        {"draft_id": "statement-2", "title": seed.STATEMENT_TITLE, "text": seed.STATEMENT_TEXT},
    )

    # The head of mission sees the text, its figures and the changes, and approves it.
    hom = await console.user(Role.head_of_mission, name=seed.HEAD_OF_MISSION, mission_id=mission_id)
    head = await console.signed_in(browser, hom)
    await head.goto(f"/missions/{mission_id}/statement")
    await expect(head.locator("#statement-text")).to_contain_text("14 polling stations")
    await expect(head.locator(".diff .removed")).to_contain_text("First draft.")
    await expect(head.locator("#figures-h")).to_be_visible()
    await head.get_by_role("button", name="Approve this text").click()
    await head.wait_for_load_state()
    assert re.search(rf"/missions/{mission_id}$", head.url), await head.inner_text("main")
    approved = await console.missions.state(mission_id)
    assert approved.approval is not None
    assert approved.approval.draft_id == "statement-2"
    assert approved.approval.text_sha256 == approved.drafts["statement-2"].text_sha256

    # The coordinator publishes, issues and sends the recommendations.
    await give(page, mission_id, "publish_statement", {"published_on": "2021-01-11"})
    await give(
        page,
        mission_id,
        "issue_recommendations",
        {
            "recommendations.0.id": "rec-1",
            "recommendations.0.text": seed.RECOMMENDATIONS[0].text,
            "recommendations.0.priority": "priority",
            "recommendations.0.addressee": seed.RECOMMENDATIONS[0].addressee.value,
            "recommendations.0.area": seed.RECOMMENDATIONS[0].area,
        },
    )
    acknowledge_by = (datetime.now(zone) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    await page.goto(f"/missions/{mission_id}/commands/send_recommendations")
    for index, code in enumerate(STATES):
        if index:
            await page.get_by_role("button", name=re.compile("Add another")).click()
        await page.select_option(f'[name="recipients.{index}.kind"]', "member_state")
        await page.fill(f'[name="recipients.{index}.name"]', code)
    await page.fill('[name="sent_on"]', "2021-01-15")
    await page.fill('[name="acknowledge_by"]', acknowledge_by)
    await page.fill('[name="ladder.offsets_seconds"]', "3600")
    await page.get_by_role("button", name="Record").click()
    await page.wait_for_url(re.compile(rf"/missions/{mission_id}$"))

    # The member states acknowledge from the links in the new requests.
    for code in STATES:
        address = f"focal-point.{code.lower()}@mfa.example.org"
        messages = await console.mailbox.wait_for(address, count=2)
        answer = await answers.new_page()
        await answer.goto(link_in(messages[-1], "/answer/"))
        await answer.locator('form[action$="/acknowledge"] button[type="submit"]').click()
        await expect(answer.locator("article.accepted[role=status]")).to_be_visible()
    acknowledged = await console.missions.state(mission_id)
    assert all(d.acknowledged_on for d in acknowledged.deliveries.values())

    await give(page, mission_id, "close_mission", {"note": "Recommendations acknowledged."})
    closed = await console.missions.state(mission_id)
    assert closed.stage is not None and closed.stage.value == "closed"
    assert coordinator.email in " ".join(await _actors(console, mission_id, "MissionClosed"))

    # An auditor verifies the mission and downloads its PDF report.
    auditor = await console.signed_in(browser, await console.user(Role.auditor))
    await auditor.goto(f"/missions/{mission_id}/audit")
    await expect(auditor.get_by_role("status").first).to_contain_text("Intact")
    async with auditor.expect_download() as downloading:
        await auditor.get_by_role("button", name=re.compile("^PDF")).click()
    download = await downloading.value
    path = await download.path()
    assert path is not None and path.read_bytes().startswith(b"%PDF")
    assert console.outside_requests == []


async def _actors(console: RunningConsole, mission_id: str, event_type: str) -> list[str]:
    """Who recorded each event of ``event_type`` (the events' metadata)."""
    events = await console.missions.store.read_stream(mission_id)
    return [e.metadata.actor or "" for e in events if e.event_type == event_type]


def _visit(mission_id: str) -> dict[str, object]:
    return {
        "kind": "station_visit",
        "mission_id": mission_id,
        "submission_id": f"visit-{uuid.uuid4().hex[:8]}",
        "station_id": "NS-101",
        "team_id": "team-1",
        "arrived_at": "2021-01-10T08:00",
        "departed_at": "2021-01-10T09:00",
        "checklists": [{"phase": "opening", "answers": {"ballot_box_sealed": True}}],
    }


async def _closed_when_reported(page: Page, mission_id: str) -> None:
    """Close election day once the mission counts the report (the intake reports its
    progress to the mission within a poll)."""
    for _ in range(30):
        await page.goto(f"/missions/{mission_id}/commands/close_election_day")
        await page.get_by_role("button", name="Record").click()
        await page.wait_for_load_state()
        if re.search(rf"/missions/{mission_id}$", page.url):
            return
        await page.wait_for_timeout(500)
    raise AssertionError("election day could not be closed")
