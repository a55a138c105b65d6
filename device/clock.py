"""The device's idea of the time, and whether it can be trusted (a Pi has no real-time clock)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

NTP_SYNCHRONISED_FLAG = Path("/run/systemd/timesync/synchronized")
MAX_TRUSTED_OFFSET_MS = 2_000


class DeviceClock:
    """Wall-clock time corrected by the host's time; trusted once NTP or the host vouched for it.

    The host's time is taken as seen at the midpoint of a request; when the local clock is
    more than a couple of seconds off, the offset is applied to every reading.
    """

    def __init__(self, *, ntp_flag: Path = NTP_SYNCHRONISED_FLAG) -> None:
        self._lock = threading.Lock()
        self._offset_ms = 0
        self._host_seen = False
        self._ntp_flag = ntp_flag

    def now_ms(self) -> int:
        with self._lock:
            offset = self._offset_ms
        return time.time_ns() // 1_000_000 + offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    @property
    def trusted(self) -> bool:
        return self._host_seen or self._ntp_flag.exists()

    def observe_host_time(self, host_ms: int, sent_ms: int, received_ms: int) -> None:
        """Learn from a host response; `sent_ms` and `received_ms` are readings of this clock."""
        midpoint = (sent_ms + received_ms) // 2
        with self._lock:
            # The readings already carry the current correction: add the error left over.
            offset = self._offset_ms + host_ms - midpoint
            self._offset_ms = offset if abs(offset) > MAX_TRUSTED_OFFSET_MS else 0
            self._host_seen = True
