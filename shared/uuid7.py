"""Time-ordered UUIDv7 (RFC 9562) identifiers, made on the device, used as idempotency keys."""

import os
import threading
import time
import uuid


class _Sequence:
    """The last millisecond used and a 12-bit counter, so ids of one process stay ordered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = 0
        self.counter = 0

    def next(self, now_ms: int) -> tuple[int, int]:
        with self.lock:
            if now_ms <= self.last_ms:
                # Same millisecond, or the clock stepped back: count on from the last one.
                self.counter += 1
                if self.counter > 0xFFF:
                    self.last_ms += 1
                    self.counter = 0
            else:
                self.last_ms = now_ms
                self.counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            return self.last_ms, self.counter


_sequence = _Sequence()


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """Return a UUIDv7; ids made in one process sort in the order they were made."""
    ms, counter = _sequence.next(time.time_ns() // 1_000_000 if now_ms is None else now_ms)
    random_tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= random_tail
    return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix time in milliseconds stamped into a UUIDv7."""
    if value.version != 7:
        raise ValueError(f"{value} is a version {value.version} UUID, not 7")
    return value.int >> 80
