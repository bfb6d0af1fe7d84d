"""Take a PNG of each screen of the agent console and the chat widget, from the real browser,
into docs/screenshots/ (README shows them).

Starts its own `handoff up` on free ports in a temporary folder, plays a few conversations
through the API (waiting ones, one held with an internal note, closed ones), then drives
Debian's chromium with Playwright. Run: scripts/screenshots
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ALICE = {"Authorization": "Bearer alice-demo-token-not-secret"}
BOB = {"Authorization": "Bearer bob-demo-token-not-secret"}
SIZE = {"width": 1400, "height": 860}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the demo data did not settle")


async def conversation(
    api: httpx.AsyncClient, customer: str, *texts: str, person: bool = True
) -> tuple[str, dict[str, str]]:
    created = (await api.post("/conversations", json={"customer_id": customer, "text": texts[0]})).json()
    token = {"Authorization": f"Bearer {created['customer_token']}"}
    for text in texts[1:]:
        await api.post(f"/conversations/{created['id']}/messages", json={"text": text}, headers=token)
    if person:
        await api.post(f"/conversations/{created['id']}/request-human", headers=token)

        async def waiting() -> bool:
            detail = (await api.get(f"/conversations/{created['id']}", headers=ALICE)).json()
            return bool(detail["status"] == "waiting")

        await eventually(waiting)
    return created["id"], token


async def demo_data(api: httpx.AsyncClient) -> str:
    """A few conversations in every state; the id of the one Alice holds."""
    for customer, outcome in [("maria.k", "resolved"), ("li.wei", "resolved"), ("tom.b", "not_resolved")]:
        cid, _ = await conversation(api, customer, "Where is my order?")
        await api.post(f"/conversations/{cid}/takeover", headers=BOB)
        await api.post(f"/conversations/{cid}/replies", json={"text": "Let me check that for you."}, headers=BOB)
        await api.post(f"/conversations/{cid}/close", json={"outcome": outcome}, headers=BOB)
    await conversation(api, "jane.doe", "Hi", "I was charged twice for my subscription")
    await conversation(api, "omar.s", "My invoice shows the wrong address")
    held, token = await conversation(api, "sam.lee", "How do I reset my password?", "The link has expired")
    await api.post(f"/conversations/{held}/takeover", headers=ALICE)
    await api.post(
        f"/conversations/{held}/replies",
        json={"text": "Hi Sam, Alice here. I have sent you a fresh link, valid for one hour."},
        headers=ALICE,
    )
    await api.post(
        f"/conversations/{held}/notes", json={"text": "Second expired link this week: check the mailer."}, headers=ALICE
    )
    # A question the knowledge base and the resolved conversations above both answer: the
    # conversation view then shows suggested replies from each source.
    await api.post(f"/conversations/{held}/messages", json={"text": "Got it. Also, where is my order?"}, headers=token)
    await asyncio.sleep(1.5)  # let the last messages reach the database (written with the bot's next step)
    return held


async def shoot(page: Page, name: str) -> None:
    await page.wait_for_timeout(300)  # fonts and the charts' first paint
    await page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"docs/screenshots/{name}.png")


async def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium not found: run scripts/bootstrap (apt-get install -y chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        port, temporal = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
        up = subprocess.Popen(
            [sys.executable, "-m", "handoff.cli", "up", "--port", str(port), "--temporal-port", str(temporal),
             "--ui-port", "0", "--data-dir", str(Path(folder) / "data")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=folder,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as api:

                async def serving() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await api.get("/openapi.json")).status_code == 200
                    return False

                await eventually(serving, timeout=90)
                held = await demo_data(api)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = await (await browser.new_context(viewport=SIZE)).new_page()
                await page.goto(f"{base}/console/")
                await page.get_by_label("Agent token").fill("alice-demo-token-not-secret")
                await shoot(page, "console-sign-in")
                await page.keyboard.press("Enter")
                await page.locator(f"#mine li[data-conversation='{held}'] button").click()
                await page.locator("#conversation .note-internal").last.wait_for()
                await page.locator("#suggestions li").first.wait_for()
                # Scrolled to the latest messages, as the agent would, to show what the suggestions answer.
                transcript = page.locator("#conversation .transcript")
                await transcript.evaluate("list => { list.scrollTop = list.scrollHeight; }")
                await shoot(page, "console-live-support")
                await page.get_by_role("button", name="Close conversation").click()
                await page.get_by_label("Resolved", exact=True).check()
                await shoot(page, "console-close-dialog")
                await page.get_by_role("button", name="Cancel").click()
                await page.get_by_role("link", name="Conversations").click()
                await page.locator("#history-rows tr").first.wait_for()
                await page.locator("#history-rows tr[data-conversation]").last.get_by_role("button").click()
                await page.locator("#history-view .closed-line").wait_for()
                await shoot(page, "console-conversations")
                await page.get_by_role("link", name="Statistics").click()
                await page.locator("#stats-charts canvas").first.wait_for()
                await shoot(page, "console-statistics")
                await page.get_by_role("link", name="Team").click()
                await page.locator("#team-rows tr").first.wait_for()
                await shoot(page, "console-team")

                widget = await (await browser.new_context(viewport={"width": 480, "height": 760})).new_page()
                await widget.goto(f"{base}/chat/")
                await widget.get_by_label("Your message").fill("Do you ship to Canada?")
                await widget.keyboard.press("Enter")
                await widget.locator("li.from-bot").wait_for()
                await shoot(widget, "widget-chat")
                cid = await widget.evaluate("sessionStorage.getItem('handoff.chat.id')")
                await widget.get_by_role("button", name="Talk to a person").click()
                async with httpx.AsyncClient(base_url=base, timeout=30) as api:
                    await asyncio.sleep(1)
                    await api.post(f"/conversations/{cid}/takeover", headers=BOB)
                    await api.post(
                        f"/conversations/{cid}/replies", json={"text": "Yes, we do: 5 to 7 days."}, headers=BOB
                    )
                    await api.post(f"/conversations/{cid}/close", json={"outcome": "resolved"}, headers=BOB)
                await widget.get_by_role("heading", name="How did we do?").wait_for()
                await shoot(widget, "widget-rating")
                await browser.close()
        finally:
            up.terminate()
            up.wait(60)


if __name__ == "__main__":
    asyncio.run(main())
