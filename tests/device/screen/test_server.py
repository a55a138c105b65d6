"""The screen server on 127.0.0.1: its page, its event stream, status, idle, loopback only."""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from device.agent import DATABASE_FILE, Agent, RunOptions
from device.clock import NTP_SYNCHRONISED_FLAG
from device.identity import load_enrollment
from device.pipeline import REPEAT_REASON, Event
from device.screen.hub import MAX_STREAMS
from device.screen.server import ScreenOptions, ScreenServer, parse_address
from device.screen.view import ScreenStatus
from device.store import Store
from sentinel.bench.pipeline import prepare
from sentinel.cli import main
from shared.policy import Decision, Outcome
from shared.verification import CredentialKind

WAIT_SECONDS = 10.0  # every wait for a message is bounded by this
STATUS = ScreenStatus("Library", "Asia/Shanghai", True, True, False, datetime.now(UTC))


def event(outcome: Outcome, *reasons: str, holder: str | None = None) -> Event:
    return Event("sam", CredentialKind.ID_CARD, Decision(outcome, reasons), "c_1", holder)


PASSED = event(Outcome.PASS, holder="1101**********1234")


class Stream:
    """A page's event stream, read on a thread into a queue, so each wait is bounded."""

    def __init__(self, url: str) -> None:
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._url = url + "events"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = "message"
        with httpx.stream("GET", self._url, timeout=httpx.Timeout(5, read=60)) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.messages.put((kind, json.loads(line.removeprefix("data: "))))
        self.messages.put(("end", None))

    def next(self) -> tuple[str, Any]:
        return self.messages.get(timeout=WAIT_SECONDS)


class Status:
    """A status the test changes; the hub polls it as it polls the agent's parts."""

    def __init__(self) -> None:
        self.now = STATUS

    def __call__(self) -> ScreenStatus:
        return replace(self.now, now=datetime.now(UTC))


@pytest.fixture
def serve() -> Iterator[Callable[..., ScreenServer]]:
    """Starts screen servers on free loopback ports; closes them after the test."""
    servers: list[ScreenServer] = []

    def start(
        status: Callable[[], ScreenStatus] | None = None, hold: float = 60.0, port: int = 0
    ) -> ScreenServer:
        server = ScreenServer(ScreenOptions("127.0.0.1", port, hold), status or Status())
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_stream_starts_with_the_status_and_idle_then_gets_each_decision(serve) -> None:
    server = serve()
    stream = Stream(server.url)
    kind, status = stream.next()
    assert kind == "status"
    assert {key: status[key] for key in ("venue", "online", "clock_trusted")} == {
        "venue": "Library",
        "online": True,
        "clock_trusted": True,
    }
    assert stream.next() == ("idle", {})
    server.show(PASSED)
    kind, shown = stream.next()
    assert kind == "decision"
    assert shown["outcome"] == "pass"
    assert shown["reason"] == {"zh": "绿码，请通行", "en": "Green code, please enter."}
    assert shown["holder"] == "1101**********1234"


def test_a_decision_goes_back_to_idle_after_the_hold(serve) -> None:
    server = serve(hold=0.2)
    stream = Stream(server.url)
    assert [stream.next()[0] for _ in range(2)] == ["status", "idle"]
    server.show(PASSED)
    assert stream.next()[0] == "decision"
    assert stream.next() == ("idle", {})
    assert httpx.get(server.url + "state.json").json()["shown"] is None


def test_a_new_decision_replaces_the_one_on_screen(serve) -> None:
    server = serve()
    stream = Stream(server.url)
    [stream.next() for _ in range(2)]
    server.show(PASSED)
    server.show(event(Outcome.DENY, "colour-not-accepted: red"))
    assert [stream.next()[1]["outcome"] for _ in range(2)] == ["pass", "deny"]
    assert httpx.get(server.url + "state.json").json()["shown"]["outcome"] == "deny"


def test_scans_that_tell_the_person_nothing_leave_the_screen_as_it_is(serve) -> None:
    server = serve()
    stream = Stream(server.url)
    [stream.next() for _ in range(2)]
    server.show(event(Outcome.IGNORED, REPEAT_REASON))
    server.show(event(Outcome.IGNORED, "not-a-credential: ordinary text"))
    server.show(PASSED)
    assert stream.next()[1]["outcome"] == "pass"  # the first message after the two ignored


def test_a_status_change_reaches_the_open_pages(serve) -> None:
    status = Status()
    server = serve(status)
    stream = Stream(server.url)
    [stream.next() for _ in range(2)]
    status.now = replace(STATUS, online=False, clock_trusted=False, deny_list_stale=True)
    kind, changed = stream.next()  # within the hub's poll, a second
    assert kind == "status"
    assert (changed["online"], changed["clock_trusted"], changed["deny_list_stale"]) == (
        False,
        False,
        True,
    )


def test_the_page_is_drawn_as_the_screen_is_now_with_its_own_assets_only(serve) -> None:
    server = serve()
    server.show(PASSED)
    stream = Stream(server.url)
    while stream.next()[0] != "decision":  # the page's first messages say what is on screen
        pass
    page = httpx.get(server.url)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'data-outcome="pass"' in page.text
    assert "绿码，请通行" in page.text and "Green code, please enter." in page.text
    assert "1101**********1234" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == [server.url + "static/screen.css", server.url + "static/screen.js"]
    for asset in assets:
        assert httpx.get(asset).status_code == 200


def test_a_page_that_never_reads_does_not_hold_up_decisions(serve) -> None:
    server = serve()
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /events HTTP/1.1\r\nHost: screen\r\n\r\n")  # and never reads again
    try:
        for number in range(3000):
            server.show(event(Outcome.PASS, holder=f"1101**********{number:04d}"))
        stream = Stream(server.url)
        while (message := stream.next())[0] != "decision":
            pass
        assert message[1]["holder"] == "1101**********2999"
    finally:
        stuck.close()


def test_only_so_many_pages_at_once_and_closing_ends_every_stream(serve) -> None:
    server = serve()
    streams = [Stream(server.url) for _ in range(MAX_STREAMS)]
    for stream in streams:
        assert stream.next()[0] == "status"
    refused = Stream(server.url)
    assert refused.next() == ("end", None)
    server.close()
    for stream in streams:
        while stream.next()[0] != "end":
            pass
    server.show(PASSED)  # after closing: nothing to show it on, and no error


def test_a_port_in_use_is_a_clear_failure_of_the_screen_alone(serve) -> None:
    taken = serve()
    server = ScreenServer(ScreenOptions("127.0.0.1", taken.port), Status())
    with pytest.raises(OSError):
        server.start()
    state = server.component()
    assert state.state.value == "failing"
    assert f"cannot listen on 127.0.0.1:{taken.port}" in (state.detail or "")
    server.show(PASSED)  # the agent's scans go on


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("127.0.1.1:80", ("127.0.1.1", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_loopback_addresses_are_accepted(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["0.0.0.0:8080", "192.168.1.20:8080", "[::]:80", "kiosk:8080"])
def test_other_addresses_are_refused_unless_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        parse_address(text)
    assert parse_address(text, allow_remote=True)[1] in (80, 8080)


@pytest.mark.parametrize("text", ["8080", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"])
def test_what_is_not_host_and_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_address(text)


def test_device_run_refuses_a_screen_on_every_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["device", "run", "--state", str(tmp_path), "--source", str(tmp_path),
         "--screen", "0.0.0.0:8080"]
    )  # fmt: skip
    assert status == 2
    assert "0.0.0.0 is not a loopback address" in capsys.readouterr().err


def test_an_offline_agent_shows_its_venue_offline_with_its_warnings(tmp_path: Path) -> None:
    state, _ = prepare(tmp_path, people=1, seed=1)  # enrolled; its host is not there
    options = RunOptions(screen=ScreenOptions("127.0.0.1", 0))
    agent = Agent(state, decoder=None, options=options)  # type: ignore[arg-type]
    assert agent.screen is not None
    agent.screen.start()
    try:
        status = httpx.get(agent.screen.url + "state.json").json()["status"]
        assert agent.reporter.components["screen"]().state.value == "ok"
    finally:
        agent.screen.close()
        agent.client.close()
    assert status["venue"] == "Benchmark venue"
    assert status["online"] is False
    assert status["clock_trusted"] is NTP_SYNCHRONISED_FLAG.exists()  # no host time seen
    assert status["deny_list_stale"] is True  # none held yet
    stopped = agent.reporter.components["screen"]()
    assert (stopped.state.value, stopped.detail) == ("failing", "the screen server stopped")


def test_a_revoked_agent_says_out_of_service_on_its_screen(tmp_path: Path) -> None:
    state, _ = prepare(tmp_path, people=1, seed=1)
    device_id = load_enrollment(state).device_id
    Store(state / DATABASE_FILE).mark_revoked(device_id, "403 device-revoked")
    agent = Agent(state, decoder=None, options=RunOptions(screen=ScreenOptions("127.0.0.1", 0)))  # type: ignore[arg-type]
    assert agent.screen is not None
    agent.screen.start()
    try:
        status = httpx.get(agent.screen.url + "state.json").json()["status"]
        page = httpx.get(agent.screen.url).text
    finally:
        agent.screen.close()
        agent.client.close()
    assert status["out_of_service"] is True
    assert re.search(r'<p id="warn-service">[^<]*Out of service', page)
