"""Staff PINs: kept in the device store only as scrypt hashes, tried a few times, then locked.

A PIN names the staff member who typed it (their id, e.g. S01), so no two staff of a device
share one. Wrong PINs are counted in the store, so a restart does not reset them: after
MAX_FAILURES in a row every PIN is refused for LOCK_SECONDS, and the count starts again. At
most MAX_STAFF PINs per device keep a try (one scrypt per PIN held) well under a second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.store import Store

SCHEME = "scrypt"
# scrypt's cost: 16 MiB and about 50 ms here per try (RFC 7914's interactive figures).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PIN_DIGITS, MAX_PIN_DIGITS = 6, 12
MAX_STAFF = 8
MAX_FAILURES = 5
LOCK_SECONDS = 300.0
STAFF_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")  # shared.messages.StaffId


class PinError(ValueError):
    """A PIN or staff id that cannot be used: not the right form, or taken."""


class PinRefused(Exception):
    """A PIN was not accepted: wrong, or every PIN is refused until the lock ends."""

    def __init__(self, message: str, *, locked_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.locked_seconds = locked_seconds


def check_staff_id(staff_id: str) -> str:
    """`staff_id` if it is 1-16 letters, digits, '-' or '_'; else PinError."""
    if not STAFF_ID.match(staff_id):
        raise PinError(f"a staff id is 1-16 letters, digits, '-' or '_', e.g. S01: {staff_id!r}")
    return staff_id


def check_pin(pin: str) -> str:
    """`pin` if it is 6-12 ASCII digits; else PinError (which never quotes the PIN)."""
    if not (MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS and pin.isascii() and pin.isdigit()):
        raise PinError(f"a PIN is {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits")
    return pin


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r * p, dklen=HASH_BYTES
    )


def hash_pin(pin: str) -> str:
    """A PIN as kept: scrypt$N$r$p$salt$hash (base64), with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(check_pin(pin), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return "$".join([SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), *encoded])


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` is the one `stored` was made from (compared in constant time)."""
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != SCHEME:
        raise ValueError(f"unknown PIN hash scheme {scheme!r}")
    tried = _scrypt(pin, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(tried, base64.b64decode(digest))


@dataclass(frozen=True)
class StaffMember:
    id: str
    added_at_ms: int


class StaffPins:
    """The device's staff PINs: added and removed by an operator, tried at the screen."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()  # one try at a time: two at once cannot dodge the count

    def add(self, staff_id: str, pin: str) -> None:
        """Keep a PIN for `staff_id`; PinError if the id is taken, the form wrong, the PIN used."""
        check_staff_id(staff_id)
        check_pin(pin)
        held = self._store.staff()
        if any(held_id == staff_id for held_id, _, _ in held):
            raise PinError(f"staff {staff_id} has a PIN already: remove it first")
        if len(held) >= MAX_STAFF:
            raise PinError(f"a device holds at most {MAX_STAFF} staff PINs")
        if any(pin_matches(pin, stored) for _, stored, _ in held):
            raise PinError("another staff member has this PIN: choose another")
        self._store.add_staff(staff_id, hash_pin(pin))

    def remove(self, staff_id: str) -> bool:
        return self._store.remove_staff(staff_id)

    def members(self) -> list[StaffMember]:
        return [StaffMember(staff_id, added) for staff_id, _, added in self._store.staff()]

    def identify(self, pin: str) -> str:
        """The id of the staff member whose PIN this is; PinRefused if none, or while locked."""
        with self._lock:
            now_ms = int(self._clock() * 1000)
            failures, locked_until_ms = self._store.pin_attempts()
            if locked_until_ms > now_ms:
                # At most LOCK_SECONDS, should the clock have been set back meanwhile.
                left = min(locked_until_ms - now_ms, int(LOCK_SECONDS * 1000))
                self._store.save_pin_attempts(0, now_ms + left)
                raise PinRefused("too many wrong PINs: try again later", locked_seconds=left / 1000)
            if MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS and pin.isascii() and pin.isdigit():
                for staff_id, stored, _ in self._store.staff():
                    if pin_matches(pin, stored):
                        if failures or locked_until_ms:
                            self._store.save_pin_attempts(0, 0)
                        return staff_id
            failures += 1
            if failures >= MAX_FAILURES:
                self._store.save_pin_attempts(0, now_ms + int(LOCK_SECONDS * 1000))
                raise PinRefused(
                    f"wrong PIN {failures} times: locked for {LOCK_SECONDS / 60:g} minutes",
                    locked_seconds=LOCK_SECONDS,
                )
            self._store.save_pin_attempts(failures, 0)
            raise PinRefused(f"wrong PIN ({MAX_FAILURES - failures} tries left)")
