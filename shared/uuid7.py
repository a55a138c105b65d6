"""Time-ordered UUIDv7 (RFC 9562) identifiers, made on the device, used as idempotency keys."""

import os
import threading
import time
import uuid


class Uuid7Generator:
    """Makes UUIDv7s that sort in the order they were made.

    Within one millisecond, or when the clock steps back, the last millisecond is kept and a
    12-bit counter runs on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def _next(self, now_ms: int) -> tuple[int, int]:
        with self._lock:
            if now_ms <= self._last_ms:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
            else:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            return self._last_ms, self._counter

    def __call__(self, now_ms: int | None = None) -> uuid.UUID:
        ms, counter = self._next(time.time_ns() // 1_000_000 if now_ms is None else now_ms)
        random_tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= random_tail
        return uuid.UUID(int=value)


uuid7 = Uuid7Generator()


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix time in milliseconds stamped into a UUIDv7."""
    if value.version != 7:
        raise ValueError(f"{value} is a version {value.version} UUID, not 7")
    return value.int >> 80
