"""The fault proxy against real servers on 127.0.0.1: each fault does what it says, no more."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sentinel.chaos import FaultProxy, Faults

BODY = b"x" * 20_000
WAIT = 2.0  # the longest any socket here waits for an answer


class Echo(socketserver.BaseRequestHandler):
    """Sends back what it reads, and keeps a copy of it."""

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # the proxy resets it in some tests
            while data := self.request.recv(65536):
                self.server.received.append(data)  # type: ignore[attr-defined]
                self.request.sendall(data)


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # the proxy cut the response short
            self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def web() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo_proxy(echo: socketserver.ThreadingTCPServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.server_address[1], seed=1) as proxy:
        yield proxy


@pytest.fixture
def web_proxy(web: ThreadingHTTPServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", web.server_address[1], seed=1) as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
    client.settimeout(WAIT)
    return client


def receive_all(client: socket.socket, expected: int) -> bytes:
    """Read until `expected` bytes or the peer closes; timeouts and resets propagate."""
    received = b""
    while len(received) < expected and (data := client.recv(65536)):
        received += data
    return received


def test_without_faults_it_forwards_both_ways(echo_proxy: FaultProxy, web_proxy: FaultProxy):
    with connect(echo_proxy) as client:
        client.sendall(b"hello")
        assert receive_all(client, 5) == b"hello"
    response = httpx.get(web_proxy.url + "/", timeout=WAIT)
    assert response.content == BODY
    assert echo_proxy.counts.connections == web_proxy.counts.connections == 1
    assert echo_proxy.counts.delayed == echo_proxy.counts.dropped == 0


def test_latency_delays_each_direction(echo_proxy: FaultProxy):
    echo_proxy.set_faults(Faults(latency_ms=150))
    with connect(echo_proxy) as client:
        started = time.monotonic()
        client.sendall(b"ping")
        assert receive_all(client, 4) == b"ping"
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < WAIT  # 150 ms on the way there, 150 ms on the way back
    assert echo_proxy.counts.delayed == 2


def test_a_drop_leaves_the_client_waiting_and_the_target_uninformed(
    echo: socketserver.ThreadingTCPServer, echo_proxy: FaultProxy
):
    echo_proxy.set_faults(Faults(drop_rate=1.0))
    with connect(echo_proxy) as client:
        client.sendall(b"anyone there?")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(100)  # neither an answer nor a close: a black hole
        client.sendall(b"still there?")  # the connection is still open, and swallows this too
    assert echo.received == []  # type: ignore[attr-defined]
    assert echo_proxy.counts.dropped == 1


def test_a_reset_resets_the_client(echo_proxy: FaultProxy, web_proxy: FaultProxy):
    echo_proxy.set_faults(Faults(reset_rate=1.0))
    with connect(echo_proxy) as client:
        client.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            receive_all(client, 5)
    web_proxy.set_faults(Faults(reset_rate=1.0))
    with pytest.raises(httpx.TransportError):
        httpx.get(web_proxy.url + "/", timeout=WAIT)
    assert echo_proxy.counts.reset == web_proxy.counts.reset == 1


def test_a_truncation_forwards_part_of_the_response_then_closes(web_proxy: FaultProxy):
    web_proxy.set_faults(Faults(truncate_rate=1.0))
    with connect(web_proxy) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = receive_all(client, len(BODY) * 2)  # ends with the proxy's FIN, not a reset
    assert 0 < len(received) < len(BODY)
    assert web_proxy.counts.truncated == 1
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(web_proxy.url + "/", timeout=WAIT)


def test_faults_change_for_connections_already_open(echo_proxy: FaultProxy):
    with connect(echo_proxy) as client:
        client.sendall(b"one")
        assert receive_all(client, 3) == b"one"
        echo_proxy.set_faults(Faults(reset_rate=1.0))
        client.sendall(b"two")
        with pytest.raises(ConnectionResetError):
            receive_all(client, 3)
    echo_proxy.set_faults(Faults())
    with connect(echo_proxy) as client:
        client.sendall(b"three")
        assert receive_all(client, 5) == b"three"


def test_a_target_that_is_down_looks_like_a_dead_host():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # The proxy accepts, fails to reach the target and resets; on a busy machine the
    # reset can land before connect() returns, so the reset is expected at any step.
    with (
        FaultProxy("127.0.0.1", closed_port) as proxy,
        pytest.raises(ConnectionResetError),
        connect(proxy) as client,
    ):
        client.sendall(b"hello")
        receive_all(client, 5)


def test_stop_closes_connections_and_the_port(echo_proxy: FaultProxy):
    echo_proxy.set_faults(Faults(drop_rate=1.0))
    client = connect(echo_proxy)
    client.sendall(b"into the hole")
    port = echo_proxy.port
    echo_proxy.stop()
    # Closed by the stop, not left hanging; with what was sent still unread, Linux resets.
    with client, contextlib.suppress(ConnectionResetError):
        assert receive_all(client, 1) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()


def test_rates_that_make_no_sense_are_refused():
    with pytest.raises(ValueError, match="rates"):
        Faults(drop_rate=0.6, reset_rate=0.6)
    with pytest.raises(ValueError, match="negative"):
        Faults(latency_ms=-1)
