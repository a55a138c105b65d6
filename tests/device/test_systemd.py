"""sd_notify: datagrams to a real Unix socket (a path, or an abstract name), and the watchdog."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.systemd import MAX_STATUS_CHARS, Notifier, Watchdog, socket_address, watchdog_seconds

WAIT_SECONDS = 5.0  # a datagram sent is there at once; this only bounds a broken test


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound as systemd binds its notification socket: what NOTIFY_SOCKET says."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.settimeout(WAIT_SECONDS)
    if request.param == "path":
        named = str(tmp_path / "notify")
        receiver.bind(named)
    else:
        named = f"@sentinel-test-{os.getpid()}-{os.urandom(4).hex()}"
        receiver.bind(b"\0" + named[1:].encode())
    yield receiver, named
    receiver.close()


def received(receiver: socket.socket) -> list[str]:
    return receiver.recv(4096).decode().split("\n")


def test_ready_status_and_stopping_arrive_as_datagrams(listener: tuple[socket.socket, str]):
    receiver, named = listener
    notifier = Notifier({"NOTIFY_SOCKET": named})
    assert notifier.enabled
    assert notifier.ready("scanning · 0 check-ins today")
    assert received(receiver) == ["READY=1", "STATUS=scanning · 0 check-ins today"]
    assert notifier.status("camera failing:\n  read no frame")  # one line, whatever it is given
    assert received(receiver) == ["STATUS=camera failing: read no frame"]
    notifier.stopping()
    assert received(receiver) == ["STOPPING=1"]
    notifier.close()


def test_a_long_status_is_cut_to_one_short_line(listener: tuple[socket.socket, str]):
    receiver, named = listener
    Notifier({"NOTIFY_SOCKET": named}).status("x" * 1000)
    [line] = received(receiver)
    assert len(line.removeprefix("STATUS=")) == MAX_STATUS_CHARS
    assert line.endswith("…")


def test_without_notify_socket_nothing_is_sent(tmp_path: Path):
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_timeout is None
    assert not notifier.ready("scanning")
    Watchdog(notifier).beat()  # does nothing, raises nothing


def test_a_socket_that_is_gone_is_not_an_error(tmp_path: Path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.enabled
    assert not notifier.status("scanning")  # logged once; the service goes on


def test_addresses_systemd_may_name():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify") == (
        b"\0/org/freedesktop/systemd1/notify"
    )
    assert socket_address("vsock:2:1234") is None
    assert socket_address("@") is None


def test_the_watchdog_timeout_is_this_process_s():
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_seconds(mine) == 2.0
    assert watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None


def test_the_watchdog_pings_at_most_every_half_timeout(listener: tuple[socket.socket, str]):
    receiver, named = listener
    receiver.setblocking(False)
    now = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": named, "WATCHDOG_USEC": "4000000"})
    watchdog = Watchdog(notifier, monotonic=lambda: now[0])
    assert watchdog.interval == 2.0
    pinged_at = []
    for step in range(12):  # a beat every 0.5 s for 6 s
        now[0] = 100.0 + step * 0.5
        watchdog.beat()
        try:
            assert received(receiver) == ["WATCHDOG=1"]
            pinged_at.append(now[0])
        except BlockingIOError:
            pass
    assert pinged_at == [100.0, 102.0, 104.0]


def test_a_receiver_that_stops_reading_never_blocks_the_sender(
    listener: tuple[socket.socket, str],
):
    """systemd busy: its queue fills, and a notification is dropped rather than waited on."""
    _, named = listener
    notifier = Notifier({"NOTIFY_SOCKET": named})
    sent = 0
    while notifier.notify("WATCHDOG=1"):
        sent += 1
        assert sent < 1_000_000, "the queue never filled"
    assert sent > 0
    assert not notifier.status("scanning")  # still full; the caller goes on
