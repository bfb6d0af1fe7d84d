"""The embedded Temporal server and port races (issue 13): a port picked free can be taken by
another process before the server binds it. `handoff demo --embedded` lets the server choose
its port, so it must end up serving on a port that is its own, whoever took the first one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from handoff import devserver
from handoff.devserver import DevServer, PortTaken


@pytest.fixture
def stranger() -> Iterator[int]:
    """A port another process (here: a plain socket) listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_server_choosing_its_port_starts_elsewhere_when_a_stranger_took_it(
    tmp_path: Path, stranger: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([stranger])
    real_unused_port = devserver.unused_port
    # The race, made certain: the first port picked is taken before the server binds it.
    monkeypatch.setattr(devserver, "unused_port", lambda ip="127.0.0.1": next(picks, None) or real_unused_port(ip))
    server = DevServer(tmp_path / "temporal.db", log_file=tmp_path / "temporal.log")
    server.start()
    try:
        assert server.port not in (0, stranger)
        assert server.process is not None
        assert devserver.listens_on(server.port, server.process.pid)
    finally:
        server.stop()


def test_a_server_given_a_taken_port_says_so(tmp_path: Path, stranger: int) -> None:
    server = DevServer(tmp_path / "temporal.db", port=stranger, log_file=tmp_path / "temporal.log")
    with pytest.raises(PortTaken, match=f"port {stranger} is taken"):
        server.start()
    assert server.process is not None and server.process.poll() is not None, "no server left running"
