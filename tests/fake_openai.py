"""A tiny OpenAI-compatible `/chat/completions` server for tests: a real HTTP peer on a free local
port (the team's language model server in the product), not a stand-in for any part of Handoff."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest


class FakeOpenAI(BaseHTTPRequestHandler):
    """Model "good" answers "Rewritten: <the suggested reply>"; "broken" fails; "slow" is late."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        if body["model"] == "slow":
            time.sleep(1.5)
        text = body["messages"][-1]["content"].rsplit(": ", 1)[-1]
        answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"Rewritten: {text}"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeOpenAI.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
