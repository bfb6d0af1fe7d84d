"""The agent console and the chat widget in a real browser (Debian chromium through
Playwright) against a real `handoff up`: the issue's four scenarios, as a user sees them.

Waits poll for what the user would see (Playwright's `expect` retries until its timeout, kept
generous: the push path normally shows a change within a second, but a busy CI machine must not
fail the suite). The scenarios share one `handoff up` and one browser to stay quick.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import Watch
from tests.helpers import eventually
from tests.test_cli import Up

pytestmark = pytest.mark.slow

SEEN = 15_000
"""ms: how long a change may take to show (pushed within about a second; generous for CI)."""
RESET_ANSWER = "You can reset your password from the sign-in page"
ORDER_ANSWER = "You can follow your delivery under Orders"
ALICE = ("alice-demo-token-not-secret", "Alice Martin")
BOB = ("bob-demo-token-not-secret", "Bob Stone")

NewPage = Callable[[], Awaitable[Page]]


async def sign_in(page: Page, up: Up, token: str) -> None:
    await page.goto(f"{up.url}/console/")
    await page.get_by_label("Agent token").fill(token)
    await page.keyboard.press("Enter")  # keyboard only
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=SEEN)


async def customer_asks_for_a_person(page: Page, up: Up, first: str = "How do I reset my password?") -> str:
    """A customer starts a conversation in the widget and asks for a person; its id."""
    await page.goto(f"{up.url}/chat/")
    await page.get_by_label("Your message").fill(first)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("li.from-bot")).to_have_count(1, timeout=SEEN)
    await page.get_by_role("button", name="Talk to a person").click()
    conversation_id = await page.evaluate("sessionStorage.getItem('handoff.chat.id')")
    assert isinstance(conversation_id, str)
    return conversation_id


def waiting(page: Page, conversation_id: str) -> Any:
    return page.locator(f"#waiting li[data-conversation='{conversation_id}']")


def mine(page: Page, conversation_id: str) -> Any:
    return page.locator(f"#mine li[data-conversation='{conversation_id}']")


async def open_and_take_over(page: Page, conversation_id: str) -> None:
    await expect(waiting(page, conversation_id)).to_be_visible(timeout=SEEN)
    await waiting(page, conversation_id).get_by_role("button").click()
    await page.get_by_role("button", name="Take over").click()
    await expect(mine(page, conversation_id)).to_be_visible(timeout=SEEN)


async def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    result = await page.evaluate("async () => (await axe.run(document, { resultTypes: ['violations'] })).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture(scope="module")
async def alice(new_page: NewPage, up: Up) -> Page:
    page = await new_page()
    await sign_in(page, up, ALICE[0])
    return page


@pytest.fixture(scope="module")
async def bob(new_page: NewPage, up: Up) -> Page:
    page = await new_page()
    await sign_in(page, up, BOB[0])
    return page


async def test_take_over_reply_and_hand_back(new_page: NewPage, up: Up, alice: Page) -> None:
    customer = await new_page()
    conversation_id = await customer_asks_for_a_person(customer, up)

    # It reaches Alice's Waiting column by push, without a reload; she takes it over.
    await open_and_take_over(alice, conversation_id)
    await expect(waiting(alice, conversation_id)).to_have_count(0, timeout=SEEN)
    await alice.get_by_label("Reply to the customer").fill("Hi, Alice here. I have sent you a new link.")
    await alice.get_by_role("button", name="Send reply").click()
    await expect(customer.locator("li.from-agent .text")).to_have_text(
        ["Hi, Alice here. I have sent you a new link."], timeout=SEEN
    )
    await expect(customer.locator("li.from-agent .author")).to_have_text([ALICE[1]])

    # Unread counts: while Alice looks at another conversation, the customer writes twice.
    other = await new_page()
    other_id = await customer_asks_for_a_person(other, up, "Is anyone there?")
    await expect(waiting(alice, other_id)).to_be_visible(timeout=SEEN)
    await waiting(alice, other_id).get_by_role("button").click()
    await expect(alice.locator("#conversation h2")).to_have_text(re.compile("visitor-"), timeout=SEEN)
    for text in ("Thanks, checking my inbox", "Found it"):
        await customer.get_by_label("Your message").fill(text)
        await customer.keyboard.press("Enter")
    await expect(mine(alice, conversation_id).locator(".unread")).to_have_text("2 unread", timeout=SEEN)
    await mine(alice, conversation_id).get_by_role("button").click()
    await expect(mine(alice, conversation_id).locator(".unread")).to_have_count(0, timeout=SEEN)
    await expect(alice.locator("#conversation .transcript li.from-customer .text").last).to_have_text("Found it")

    # Hand back: the icon on the right of the top bar, labelled for screen readers, with a tooltip.
    hand_back = alice.get_by_role("button", name="Hand back conversation")
    assert await hand_back.get_attribute("title") == "Hand back conversation"
    await hand_back.click()
    await expect(mine(alice, conversation_id)).to_have_count(0, timeout=SEEN)
    await expect(alice.locator("#conversation .transcript .note-system .text")).to_contain_text(
        [f"{ALICE[1]} left the conversation"], timeout=SEEN
    )

    # The customer saw no note, and the bot answers their next message.
    await customer.get_by_label("Your message").fill("How do I reset my password?")
    await customer.keyboard.press("Enter")
    await expect(customer.locator("li.from-bot")).to_have_count(2, timeout=SEEN)
    await expect(customer.locator("li.from-bot .text").last).to_contain_text(RESET_ANSWER)
    shown = await customer.locator("#messages li").evaluate_all("items => items.map(i => i.dataset.kind)")
    assert set(shown) <= {"customer", "bot", "agent"}, shown
    page_text = await customer.locator("body").inner_text()
    assert "left the conversation" not in page_text and "joined the conversation" not in page_text
    assert "Handover summary" not in page_text


async def test_take_over_acts_on_the_conversation_being_opened_not_the_one_shown_before(
    new_page: NewPage, up: Up, alice: Page
) -> None:
    """An agent looking at one waiting conversation clicks another, then "Take over" at once,
    while the second is still loading (its fetch held back here): the second is taken, and the
    first still waits. (The view used to keep the first one's button until the second arrived:
    a quick click took the wrong conversation.)"""
    first_id = await customer_asks_for_a_person(await new_page(), up, "Where is my parcel?")
    second_id = await customer_asks_for_a_person(await new_page(), up, "I was charged twice")
    await alice.get_by_role("link", name="Live support").click()
    await expect(waiting(alice, first_id)).to_be_visible(timeout=SEEN)
    await waiting(alice, first_id).get_by_role("button").click()
    await expect(alice.locator("#conversation .text").first).to_have_text("Where is my parcel?", timeout=SEEN)

    release = asyncio.Event()

    async def held_back(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await alice.route(f"**/conversations/{second_id}", held_back)
    await expect(waiting(alice, second_id)).to_be_visible(timeout=SEEN)
    await waiting(alice, second_id).get_by_role("button").click()
    take_over = asyncio.ensure_future(alice.get_by_role("button", name="Take over").click(timeout=SEEN))
    # The click is under way while the second conversation loads: it lands at once on a button
    # still shown, or waits for the second conversation's.
    await asyncio.wait([take_over], timeout=1)
    release.set()
    await take_over

    await expect(mine(alice, second_id)).to_be_visible(timeout=SEEN)
    await expect(alice.locator("#conversation h2")).to_be_visible()
    await expect(waiting(alice, first_id)).to_be_visible()
    await expect(mine(alice, first_id)).to_have_count(0)


async def test_close_as_resolved_shows_in_history_and_statistics(new_page: NewPage, up: Up, alice: Page) -> None:
    await alice.get_by_role("link", name="Statistics").click()
    resolved = alice.locator("[data-figure=closed_resolved] .value")
    await expect(resolved).to_be_visible(timeout=SEEN)
    before = int(await resolved.inner_text())

    customer = await new_page()
    conversation_id = await customer_asks_for_a_person(customer, up, "My order never arrived")
    await alice.get_by_role("link", name="Live support").click()
    await open_and_take_over(alice, conversation_id)

    # By keyboard only: Enter opens the dialog, Space picks the first outcome, Tab reaches Confirm.
    await alice.get_by_role("button", name="Close conversation").focus()
    await alice.keyboard.press("Enter")
    dialog = alice.get_by_role("dialog", name="Close conversation")
    await expect(dialog).to_be_visible()
    assert await axe_violations(alice) == []
    await expect(dialog.get_by_label("Resolved", exact=True)).to_be_focused()
    await alice.keyboard.press("Space")
    await expect(dialog.get_by_label("Resolved", exact=True)).to_be_checked()
    await alice.keyboard.press("Tab")
    await alice.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Confirm")).to_be_focused()
    await alice.keyboard.press("Enter")

    # It leaves the Live support tab at once...
    await expect(mine(alice, conversation_id)).to_have_count(0, timeout=SEEN)
    await expect(waiting(alice, conversation_id)).to_have_count(0)
    await expect(alice.locator("#conversation .closed-line")).to_contain_text(
        "Closed as resolved by Alice Martin", timeout=SEEN
    )

    # ...appears in the Conversations tab as resolved, read only...
    await alice.get_by_role("link", name="Conversations").click()
    row = alice.locator(f"#history-rows tr[data-conversation='{conversation_id}']")
    await expect(row.locator("td[data-outcome]")).to_have_text("Resolved", timeout=SEEN)
    await row.get_by_role("button", name=re.compile("^Open the conversation")).click()
    view = alice.locator("#history-view")
    await expect(view.locator(".closed-line")).to_contain_text("Closed as resolved", timeout=SEEN)
    await expect(view.get_by_role("button", name="Take over")).to_have_count(0)
    await expect(view.locator("textarea")).to_have_count(0)

    # ...and the Statistics tab counts it.
    await alice.get_by_role("link", name="Statistics").click()
    await expect(resolved).to_have_text(str(before + 1), timeout=SEEN)
    await expect(alice.locator("#stats-agents tr[data-agent=alice]")).to_be_visible()
    await expect(alice.locator("#stats-charts canvas")).to_have_count(3)

    # The customer is asked to rate it, and can.
    await expect(customer.get_by_role("heading", name="How did we do?")).to_be_visible(timeout=SEEN)
    await customer.get_by_label("5", exact=True).check()
    await customer.get_by_role("button", name="Send rating").click()
    await expect(customer.get_by_text("Thank you for your rating.")).to_be_visible(timeout=SEEN)

    # Writing again starts a new conversation, which links to the one it continues.
    await customer.get_by_label("Your message").fill("One more thing: can I change the address?")
    await customer.keyboard.press("Enter")
    new_text = customer.locator("#messages li.from-customer .text")
    await expect(new_text).to_have_text(["One more thing: can I change the address?"], timeout=SEEN)
    continued = await customer.evaluate("sessionStorage.getItem('handoff.chat.id')")
    assert continued != conversation_id
    await alice.get_by_role("link", name="Conversations").click()
    await alice.get_by_role("button", name="Apply filters").click()
    row = alice.locator(f"#history-rows tr[data-conversation='{continued}']")
    await row.get_by_role("button", name=re.compile("^Open the conversation")).click()
    link = view.get_by_role("button", name=f"conversation {conversation_id[:8]}")
    await expect(link).to_be_visible(timeout=SEEN)
    await link.click()
    await expect(view.locator(".closed-line")).to_contain_text("Closed as resolved", timeout=SEEN)
    await expect(view.locator(".transcript li.from-customer .text").first).to_have_text("My order never arrived")


async def test_two_agents_take_over_at_once(new_page: NewPage, up: Up, alice: Page, bob: Page) -> None:
    customer = await new_page()
    conversation_id = await customer_asks_for_a_person(customer, up, "I need help with my invoice")
    for agent in (alice, bob):
        await agent.get_by_role("link", name="Live support").click()
        await expect(waiting(agent, conversation_id)).to_be_visible(timeout=SEEN)
        await waiting(agent, conversation_id).get_by_role("button").click()
        await expect(agent.get_by_role("button", name="Take over")).to_be_visible()

    await asyncio.gather(
        alice.get_by_role("button", name="Take over").click(),
        bob.get_by_role("button", name="Take over").click(),
    )

    async def holds(page: Page) -> bool:
        count: int = await mine(page, conversation_id).count()
        return count == 1

    async def one_holds() -> list[bool]:
        return [await holds(alice), await holds(bob)]

    deadline = asyncio.get_running_loop().time() + SEEN / 1000
    while sum(held := await one_holds()) != 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert sum(held) == 1, held
    winner, loser = (ALICE, BOB) if held[0] else (BOB, ALICE)
    loser_page = bob if held[0] else alice
    await expect(loser_page.get_by_role("alert")).to_contain_text(f"held by {winner[1]}", timeout=SEEN)
    await expect(loser_page.locator("#conversation .topbar .status")).to_contain_text(
        f"held by {winner[1]}", timeout=SEEN
    )
    await expect(mine(loser_page, conversation_id)).to_have_count(0)
    assert loser[1] != winner[1]


async def test_the_team_tab_shows_status_and_capacity_and_sets_my_own(up: Up, bob: Page) -> None:
    """Issue 10: every agent's status, conversations held and capacity; Bob sets his own status,
    and the API (what other agents and automatic assignment read) has it."""
    await bob.get_by_role("link", name="Team").click()
    row = bob.locator("#team-rows tr[data-agent='bob']")
    await expect(row.locator("td")).to_have_count(3, timeout=SEEN)
    await expect(row.locator("td").nth(2)).to_have_text("100000")  # tests/conftest.py's HANDOFF_AGENT_CAPACITY
    await bob.get_by_label("My status").select_option("away")
    await expect(row.locator("td").first).to_have_text("away", timeout=SEEN)
    async with httpx.AsyncClient(base_url=up.url, headers={"Authorization": f"Bearer {ALICE[0]}"}) as http:
        listed = (await http.get("/agents")).json()["agents"]
    assert {m["agent"]["id"]: m["status"] for m in listed}["bob"] == "away"
    await bob.get_by_label("My status").select_option("online")
    await expect(row.locator("td").first).to_have_text("online", timeout=SEEN)


async def assist_totals(up: Up) -> dict[str, int]:
    """Alice's suggestion figures from `GET /stats/assist`."""
    async with httpx.AsyncClient(base_url=up.url) as http:
        answer = await http.get(
            "/stats/assist", params={"agent": "alice"}, headers={"Authorization": f"Bearer {ALICE[0]}"}
        )
    answer.raise_for_status()
    totals: dict[str, int] = answer.json()["totals"]
    return totals


async def test_suggested_replies_in_the_conversation_view(new_page: NewPage, up: Up, alice: Page) -> None:
    before = await assist_totals(up)
    customer = await new_page()
    conversation_id = await customer_asks_for_a_person(customer, up, "How do I reset my password?")
    await alice.get_by_role("link", name="Live support").click()
    await open_and_take_over(alice, conversation_id)

    # Alice sees the knowledge base's answer offered, with where it comes from; axe-clean.
    panel = alice.get_by_role("region", name="Suggested replies")
    reset = panel.locator("li[data-source=knowledge_base]").filter(has_text=RESET_ANSWER)
    await expect(reset).to_be_visible(timeout=SEEN)
    await expect(reset.locator(".source")).to_have_text("From the knowledge base")
    assert await axe_violations(alice) == [], "the conversation view with suggestions"

    # "Use" (by keyboard) puts the text in the reply box, focused; sent, the customer sees it.
    text = await reset.locator(".text").text_content()
    assert text is not None and text.startswith(RESET_ANSWER)
    await reset.get_by_role("button", name=re.compile("^Use suggestion")).focus()
    await alice.keyboard.press("Enter")
    reply = alice.get_by_label("Reply to the customer")
    await expect(reply).to_be_focused()
    await expect(reply).to_have_value(text)
    await alice.keyboard.press("Tab")
    await expect(alice.get_by_role("button", name="Send reply")).to_be_focused()
    await alice.keyboard.press("Enter")
    await expect(customer.locator("li.from-agent .text")).to_have_text([text], timeout=SEEN)
    await expect(reset).to_have_count(0, timeout=SEEN)  # used: no longer offered

    # A new customer message, pushed, brings suggestions for it; "Dismiss" hides one.
    await customer.get_by_label("Your message").fill("Where is my order?")
    await customer.keyboard.press("Enter")
    order = panel.locator("li[data-source=knowledge_base]").filter(has_text=ORDER_ANSWER)
    await expect(order).to_be_visible(timeout=SEEN)
    await order.get_by_role("button", name=re.compile("^Dismiss suggestion")).focus()
    await alice.keyboard.press("Enter")
    await expect(order).to_have_count(0)
    focused = await alice.evaluate("document.activeElement && document.activeElement.closest('#conversation') !== null")
    assert focused, "focus stays in the conversation after a dismissal"

    # /stats/assist counts the use and the dismissal.
    after = await eventually(
        lambda: assist_totals(up),
        lambda t: t["used"] >= before["used"] + 1 and t["dismissed"] >= before["dismissed"] + 1,
        what="the use and the dismissal counted",
    )
    assert after["used"] == before["used"] + 1 and after["dismissed"] == before["dismissed"] + 1, (before, after)


async def test_a_long_conversation_opens_at_its_latest_entries(new_page: NewPage, up: Up, alice: Page) -> None:
    customer = await new_page()
    await customer.goto(f"{up.url}/chat/")
    for n in range(1, 9):
        await customer.get_by_label("Your message").fill(f"How do I reset my password? ({n})")
        await customer.keyboard.press("Enter")
        await expect(customer.locator("li.from-bot")).to_have_count(n, timeout=SEEN)
    await customer.get_by_role("button", name="Talk to a person").click()
    conversation_id = await customer.evaluate("sessionStorage.getItem('handoff.chat.id')")
    await alice.get_by_role("link", name="Live support").click()
    await open_and_take_over(alice, conversation_id)

    transcript = alice.locator("#conversation .transcript")
    await expect(transcript.locator("li", has_text="Alice Martin joined the conversation")).to_be_attached(timeout=SEEN)
    # Longer than the view once its entries are drawn (a push can redraw it meanwhile): polled.
    longer = "() => { const l = document.querySelector('#conversation .transcript');"
    longer += " return l !== null && l.scrollHeight > l.clientHeight; }"
    await alice.wait_for_function(longer, timeout=SEEN)
    # Shown from its end once the view has settled (entries and suggestions arrive by push).
    at_end = "() => { const l = document.querySelector('#conversation .transcript');"
    at_end += " return l.scrollTop + l.clientHeight >= l.scrollHeight - 8; }"
    await alice.wait_for_function(at_end, timeout=SEEN)


async def test_message_text_never_runs_and_screens_pass_axe(
    new_page: NewPage, up: Up, alice: Page, watch: Watch
) -> None:
    customer = await new_page()
    await customer.goto(f"{up.url}/chat/")
    await expect(customer.get_by_label("Your message")).to_be_visible()
    assert await axe_violations(customer) == [], "the widget before the first message"
    conversation_id = await customer_asks_for_a_person(customer, up, "<img src=x onerror=alert(1)>")
    script = "<script>window.__handoffPwned = 1; alert(2)</script>"
    await customer.get_by_label("Your message").fill(script)
    await customer.keyboard.press("Enter")
    await expect(customer.locator("li.from-customer .text")).to_have_text(
        ["<img src=x onerror=alert(1)>", script], timeout=SEEN
    )

    await alice.get_by_role("link", name="Live support").click()
    await open_and_take_over(alice, conversation_id)
    await expect(alice.locator("#conversation .transcript li.from-customer .text")).to_have_text(
        ["<img src=x onerror=alert(1)>", script], timeout=SEEN
    )
    await alice.get_by_label("Reply to the customer").fill('<b onmouseover="alert(3)">bold?</b>')
    await alice.get_by_role("button", name="Send reply").click()
    await expect(customer.locator("li.from-agent .text")).to_have_text(
        ['<b onmouseover="alert(3)">bold?</b>'], timeout=SEEN
    )
    for page in (customer, alice):
        assert await page.locator("img[src=x], #messages b, .transcript b, .transcript script").count() == 0
        assert await page.evaluate("window.__handoffPwned") is None
    assert watch.dialogs == []

    # Every screen: no serious or critical accessibility violation.
    assert await axe_violations(customer) == [], "the widget"
    assert await axe_violations(alice) == [], "the conversation view"
    for tab in ("Conversations", "Statistics", "Team"):
        await alice.get_by_role("link", name=tab).click()
        await expect(alice.get_by_role("heading", name=tab, exact=True)).to_be_visible()
        assert await axe_violations(alice) == [], tab
    signed_out = await new_page()
    await signed_out.goto(f"{up.url}/console/")
    await expect(signed_out.get_by_label("Agent token")).to_be_visible()
    assert await axe_violations(signed_out) == [], "sign-in"

    # Strict CSP on the pages; no token in any URL the browser asked for or in the server's log.
    async with httpx.AsyncClient(base_url=up.url) as http:
        for path in ("/console/", "/chat/"):
            policy = (await http.get(path)).headers["content-security-policy"]
            assert "script-src 'self';" in policy and "unsafe" not in policy, policy
    customer_token = await customer.evaluate("sessionStorage.getItem('handoff.chat.token')")
    secrets = [ALICE[0], BOB[0], customer_token]
    assert not [u for u in watch.urls if any(s in u for s in secrets)]
    # After the start-up banner (which lists the public demo agents' tokens on purpose).
    log = up.output().split("Press Ctrl-C to stop.", 1)[1]
    assert "/live/events" in log, "the access log is on: the check below means something"
    assert not [s for s in secrets if s in log]
    assert watch.problems == []


async def test_sign_out_ends_the_session(new_page: NewPage, up: Up) -> None:
    page = await new_page()
    await sign_in(page, up, BOB[0])
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Agent token")).to_be_visible(timeout=SEEN)
    cookies = await page.context.cookies()
    assert [c for c in cookies if c["name"] == "handoff_session"] == []
    await page.reload()
    await expect(page.get_by_label("Agent token")).to_be_visible(timeout=SEEN)
