"""The screen's server: its options, and uvicorn serving the screen app on a thread of the agent.

It listens on the loopback interface only, unless another address is explicitly allowed:
the page shows decisions, and the kiosk's display is on the same machine.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import uvicorn

from device.handheld import Handheld
from device.pipeline import Event
from device.report import component_state
from device.screen.app import is_loopback, make_app
from device.screen.hub import ScreenHub
from device.screen.view import ScreenStatus, panels_view
from device.staff import StaffDesk
from shared.messages import ComponentState

log = logging.getLogger(__name__)
COMPONENT = "screen"
DEFAULT_HOLD_SECONDS = 5.0
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ScreenOptions:
    """Where the screen listens, and how long a decision stays on it before the idle screen."""

    host: str
    port: int
    hold_seconds: float = DEFAULT_HOLD_SECONDS


def parse_address(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """HOST:PORT ([::1]:PORT for IPv6) as (host, port); ValueError says what is wrong.

    Only a loopback address (127.0.0.0/8, ::1, localhost) is accepted unless allow_remote.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.removeprefix("[").removesuffix("]")
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"{host} is not a loopback address: the screen shows decisions, so it listens on "
            "127.0.0.1 or ::1 only, unless --screen-allow-remote is given"
        )
    return host, int(port_text)


def add_arguments(parser: argparse.ArgumentParser, *, checked: bool = False) -> None:
    """The screen options of `sentinel device run`, or (`checked`) of `sentinel selftest`."""
    if checked:
        screen = parser.add_argument_group("screen (checked when --screen is given)")
        served = "where the agent serves the kiosk screen, e.g. 127.0.0.1:8080: is it answering?"
    else:
        screen = parser.add_argument_group("screen (off unless --screen is given)")
        served = "serve the kiosk screen here, e.g. 127.0.0.1:8080, for Chromium in kiosk mode"
    screen.add_argument("--screen", metavar="HOST:PORT", help=served)
    screen.add_argument(
        "--screen-hold",
        type=float,
        default=DEFAULT_HOLD_SECONDS,
        metavar="SECONDS",
        help="how long a decision stays on the screen before the idle screen",
    )
    screen.add_argument(
        "--screen-allow-remote",
        action="store_true",
        help="let --screen listen on an address other than loopback (not recommended)",
    )


def from_arguments(args: argparse.Namespace) -> ScreenOptions | None:
    """The screen's options as parsed, None without --screen; ValueError names a wrong one."""
    if args.screen is None:
        return None
    if args.screen_hold <= 0:
        raise ValueError(f"--screen-hold: {args.screen_hold} is not a positive number of seconds")
    host, port = parse_address(args.screen, allow_remote=args.screen_allow_remote)
    return ScreenOptions(host, port, args.screen_hold)


class ScreenServer:
    """The screen app served by uvicorn on its own thread, with its own event loop."""

    def __init__(
        self,
        options: ScreenOptions,
        status: Callable[[], ScreenStatus],
        *,
        desk: StaffDesk | None = None,
        handheld: Handheld | None = None,
    ) -> None:
        """`desk`: staff settle referrals on this screen; `handheld`: it is a handheld's."""
        self.options = options
        self.hub = ScreenHub(
            status,
            hold_seconds=options.hold_seconds,
            panels=partial(panels_view, desk, handheld),
        )
        config = uvicorn.Config(
            make_app(self.hub, listening_host=options.host, desk=desk, handheld=handheld),
            log_level="warning",
            access_log=False,  # nothing personal is in a path, but nothing is needed there either
            lifespan="on",
            timeout_graceful_shutdown=STOP_TIMEOUT_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._since = datetime.now(UTC)
        self._failure: str | None = None
        self.port = options.port  # the port bound, once started (port 0 picks a free one)

    @property
    def url(self) -> str:
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Listen and serve; OSError if the address cannot be bound, RuntimeError if it fails."""
        try:
            listener = self._bind()
        except OSError as error:
            self._fail(f"cannot listen on {self.options.host}:{self.options.port}: {error}")
            raise
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name="screen", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._fail("the screen server did not start")
                raise RuntimeError(f"the screen server at {self.url} did not start")
            time.sleep(0.01)
        log.info("screen at %s", self.url)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.options.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.options.host, self.options.port))
        except OSError:
            listener.close()
            raise
        return listener

    def _fail(self, detail: str) -> None:
        self._failure, self._since = detail, datetime.now(UTC)

    def show(self, event: Event) -> None:
        """Put a decision on the screen; never blocks the caller (the scan loop)."""
        self.hub.show(event)
        self.hub.refresh()  # the staff's panels may have changed with it

    def component(self) -> ComponentState:
        """The screen's state: ok while serving; failing, saying why, once it is not."""
        if self._failure is None and self._thread is not None and not self._thread.is_alive():
            self._fail("the screen server stopped")
        if self._failure is not None:
            return component_state("failing", self._since, self._failure)
        return component_state("ok", self._since, None)

    def close(self) -> None:
        """End the page streams, then the server (bounded)."""
        self.hub.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS + 1)
