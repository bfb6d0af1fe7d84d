"""The agent console (/console/) and the customer chat widget (/chat/), served by the API.

The pages are plain HTML, CSS and JavaScript modules in handoff/web (no build step of their
own); the front-end packages they load (chart.js) are copied from npm into handoff/web/vendor
by `scripts/bootstrap` (`npm ci && npm run build`). Without that folder the pages still work,
and the Statistics tab says its charts are not built. Nothing comes from a CDN.

Every page and asset is sent with a strict Content-Security-Policy: scripts, styles and
connections from this origin only, no inline script or style, no eval, no plugins, no framing
of the console (the widget may be framed by `HANDOFF_WIDGET_FRAME_ANCESTORS`). With message
text always written as text (textContent, never innerHTML), a message holding markup cannot run.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSETS_URL = "/web"
PAGE_PREFIXES = ("/console", "/chat", ASSETS_URL)

BASE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'"
)
FRAME_SOURCES = re.compile(r"^[A-Za-z0-9 :/.*'_-]+$")


def content_security_policy(path: str, widget_frame_ancestors: str) -> str:
    """The policy for a page or asset: the widget may be framed by the configured sites, nothing else."""
    ancestors = widget_frame_ancestors if path.startswith("/chat") else "'none'"
    return f"{BASE_POLICY}; frame-ancestors {ancestors}"


class PageHeaders:
    """Security headers on the pages and their assets."""

    def __init__(self, app: ASGIApp, widget_frame_ancestors: str) -> None:
        self.app = app
        self.frame_ancestors = widget_frame_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PAGE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = content_security_policy(path, self.frame_ancestors)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not path.startswith("/chat"):
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(page: Path) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(page, media_type="text/html")

    return serve


def _redirect(target: str) -> Callable[[], Awaitable[RedirectResponse]]:
    async def redirect() -> RedirectResponse:
        return RedirectResponse(target)

    return redirect


def install_pages(app: FastAPI, widget_frame_ancestors: str) -> None:
    if not FRAME_SOURCES.match(widget_frame_ancestors):
        # A ";" would let the setting add directives of its own to the policy.
        raise ValueError(
            "HANDOFF_WIDGET_FRAME_ANCESTORS must be CSP sources separated by spaces, e.g. 'https://www.example.com'"
        )
    app.add_middleware(PageHeaders, widget_frame_ancestors=widget_frame_ancestors)
    app.mount(ASSETS_URL, StaticFiles(directory=WEB_DIR, check_dir=False), name="web")
    for name in ("console", "chat"):
        app.add_api_route(f"/{name}", _redirect(f"/{name}/"), methods=["GET", "HEAD"], include_in_schema=False)
        app.add_api_route(
            f"/{name}/", _page(WEB_DIR / name / "index.html"), methods=["GET", "HEAD"], include_in_schema=False
        )
