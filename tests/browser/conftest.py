"""A real `handoff up` and one Debian chromium for the browser tests of the console and the widget.

One `handoff up` and one browser for the whole module keep it quick (CI runs it with everything
else). Playwright's own browser download cannot be reached from these machines: it drives the
`chromium` that scripts/bootstrap installs from Debian. axe-core comes from the npm registry
(package-lock.json); scripts/bootstrap runs `npm ci`.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.test_cli import Up

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    folder = tmp_path_factory.mktemp("browser")
    server = Up(folder / "data", folder / "up.log")
    await server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None, "no chromium (scripts/bootstrap installs it)"
    assert AXE.exists(), f"{AXE} is missing: run scripts/bootstrap (npm ci)"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Watch:
    """What a page did that a user would not want: script dialogs (an injected alert), CSP
    violations, page errors, and every URL requested (to check no token is ever in one)."""

    dialogs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        async def on_dialog(dialog: object) -> None:
            self.dialogs.append(getattr(dialog, "message", "?"))
            await dialog.dismiss()  # type: ignore[attr-defined]

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text or "Refused to" in message.text:
                self.problems.append(message.text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("request", lambda request: self.urls.append(request.url))


@pytest.fixture(scope="module")
def watch() -> Watch:
    return Watch()


@pytest.fixture(scope="module")
async def new_page(browser: Browser, watch: Watch) -> AsyncIterator[object]:
    """Pages in fresh browser contexts (a customer, each agent), with axe-core loaded into every
    document (an init script runs outside the page's CSP, as an extension would)."""
    contexts: list[BrowserContext] = []

    async def make() -> Page:
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        await context.add_init_script(path=AXE)
        contexts.append(context)
        page = await context.new_page()
        watch.attach(page)
        return page

    yield make
    for context in contexts:
        await context.close()
