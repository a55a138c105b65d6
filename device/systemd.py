"""systemd's service notifications (sd_notify): readiness, watchdog pings and a status line.

The protocol is one datagram of newline-separated VAR=VALUE assignments sent to the Unix socket
named by $NOTIFY_SOCKET: a path, or an abstract socket when it starts with '@'. Without
$NOTIFY_SOCKET (not run by systemd, or not as Type=notify) every call does nothing. The watchdog
is on when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is this process): systemd expects
WATCHDOG=1 at least that often, and restarts the service when it does not come.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)
NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
MAX_STATUS_CHARS = 200  # a status line is one short line; systemctl status shows it whole


def socket_address(value: str) -> str | bytes | None:
    """The address $NOTIFY_SOCKET names: a path, or an abstract name (bytes) for '@name'.

    None for what this module does not speak (e.g. vsock:..., which systemd in a VM uses).
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds; None: no watchdog."""
    usec = environ.get(WATCHDOG_USEC, "")
    pid = environ.get(WATCHDOG_PID, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # meant for another process (the one systemd started, not a child of it)
    return int(usec) / 1_000_000


class Notifier:
    """Sends notifications to systemd; a no-op outside a Type=notify service.

    A notification that cannot be sent is logged once and otherwise ignored: the service
    runs on, and systemd, not hearing from it, acts as configured.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        named = environ.get(NOTIFY_SOCKET, "")
        self._address = socket_address(named) if named else None
        if named and self._address is None:
            log.warning("%s=%s is not a Unix socket: systemd is not notified", NOTIFY_SOCKET, named)
        self.watchdog_timeout = watchdog_seconds(environ) if self._address else None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send VAR=VALUE assignments in one datagram; whether it was sent."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._socket.setblocking(False)  # a full queue drops it: never a stuck loop
                self._socket.sendto(message, self._address)
            except OSError as error:
                if not self._warned:
                    log.warning("cannot notify systemd (%s): %s", NOTIFY_SOCKET, error)
                    self._warned = True
                return False
        return True

    def ready(self, status: str) -> bool:
        """The service is up: systemd's start job ends, units ordered after it may start."""
        return self.notify("READY=1", status_assignment(status))

    def status(self, line: str) -> bool:
        """The line `systemctl status` shows for the service."""
        return self.notify(status_assignment(line))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def status_assignment(line: str) -> str:
    """STATUS=line, on one line and at most MAX_STATUS_CHARS long."""
    flat = " ".join(line.split())
    if len(flat) > MAX_STATUS_CHARS:
        flat = flat[: MAX_STATUS_CHARS - 1] + "…"
    return f"STATUS={flat}"


class Watchdog:
    """WATCHDOG=1 at most every half of systemd's watchdog timeout, each time `beat()` is called.

    Whoever calls beat() vouches for being alive: the agent's scan loop calls it for each frame,
    so a loop that stops turning stops the pings, and systemd restarts the agent.
    """

    def __init__(
        self, notifier: Notifier, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        timeout = notifier.watchdog_timeout
        self.interval = None if timeout is None else timeout / 2
        self._notifier = notifier
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None

    def beat(self) -> None:
        if self.interval is None:
            return
        now = self._monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                return
            self._last = now
        self._notifier.notify("WATCHDOG=1")
