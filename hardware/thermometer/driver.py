"""The thermometer driver: readings through pyserial, calibrated, checked, re-measured, kept.

One Thermometer talks to one serial port in one of the three protocols. It never raises into
the caller's scan loop for a runtime failure: a port that vanishes (USB adapter unplugged),
errors, stays silent or sends garbage gives "no reading" (None) and shows in status(), and
the port is reopened with backoff on later calls, at the same path: give it a path that
survives a replug, such as udev's /dev/serial/by-id/usb-...: a replugged USB adapter may
come back as another /dev/ttyUSBn (one still held open, or another adapter found first), while
its by-id link follows it. Configuration mistakes
(an unknown protocol, an impossible address) raise ValueError at construction.

Re-measure rule (measure()): a first reading below the threshold is final. A reading at or
above it is re-measured once: a second reading at or above the threshold confirms the fever
(outcome "fever", the second reading is final); a second reading below it is taken (outcome
"normal": the first was a false high, from sun on a forehead or a hot drink). When no second
reading comes in time, the high reading stands (outcome "unconfirmed"), so the policy still
refuses it: staff can measure again. Readings outside the plausible range (after the offset)
are not used for any of this but are kept in the Measurement for the record.

Not thread-safe: call it from one thread (the scan loop).
"""

import contextlib
import enum
import errno
import logging
import os
import termios
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import serial

from hardware.closing import Closing
from hardware.thermometer.line import LineDecoder
from hardware.thermometer.modbus import MAX_ADDRESS, ModbusDecoder
from hardware.thermometer.protocol import PROTOCOL_NAMES, ProtocolError, ReadingDecoder
from hardware.thermometer.stream import StreamDecoder

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 37.3  # °C: at or above it a person is refused (the 2022 rule)
DEFAULT_PLAUSIBLE = (30.0, 45.0)  # °C, after the offset: skin and forehead of a living person
DEFAULT_BAUD = 9600
MAX_OFFSET = 10.0  # °C: a larger calibration offset is a mistake, not a calibration
READ_SLICE = 0.05  # seconds one pyserial read may block: how late read() may return
MODBUS_RESPONSE_TIMEOUT = 0.5  # seconds to wait for a reply before asking again
REOPEN_BACKOFF = (0.1, 2.0)  # seconds: first wait before reopening a lost port, and the most
# errno values for "there is no such device here", as opposed to one that is there but fails.
_ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ENXIO})
# What a port that fails or vanishes raises: pyserial's own error, the OS's, and termios's
# (not an OSError) from flushing or configuring a line that has been hung up.
_PORT_ERRORS = (OSError, serial.SerialException, termios.error)

Outcome = Literal["normal", "fever", "unconfirmed", "no-reading"]


def make_decoder(protocol: str, *, address: int = 1, register: int = 0) -> ReadingDecoder:
    """The decoder for a protocol by name: "modbus", "stream" or "line"."""
    if protocol == "modbus":
        if not 1 <= address <= MAX_ADDRESS:
            raise ValueError(f"Modbus device address must be 1..{MAX_ADDRESS}, not {address}")
        return ModbusDecoder(address, register)
    if protocol == "stream":
        return StreamDecoder()
    if protocol == "line":
        return LineDecoder()
    raise ValueError(f"unknown thermometer protocol {protocol!r}: one of {PROTOCOL_NAMES}")


@dataclass(frozen=True)
class Reading:
    """One temperature from the device.

    raw: as the device said it (°C); celsius: raw plus the calibration offset, to 0.01 °C;
    plausible: celsius lies in the plausible range; at: time.monotonic() when it arrived.
    """

    celsius: float
    raw: float
    protocol: str
    at: float
    plausible: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"celsius": self.celsius, "raw": self.raw, "plausible": self.plausible}


@dataclass(frozen=True)
class Measurement:
    """What measure() found, to hand to the policy and to keep with the check-in.

    celsius: the final calibrated temperature for the policy, None for "no reading";
    readings: the plausible readings taken, in order (one, or two when re-measured);
    implausible: readings outside the plausible range, ignored; outcome: see the module text.
    """

    celsius: float | None
    outcome: Outcome
    threshold: float
    offset: float
    readings: tuple[Reading, ...] = ()
    implausible: tuple[Reading, ...] = ()

    @property
    def raw(self) -> tuple[float, ...]:
        """The raw values of the plausible readings, in order."""
        return tuple(reading.raw for reading in self.readings)

    @property
    def remeasured(self) -> bool:
        return len(self.readings) > 1


class Health(enum.StrEnum):
    """How the thermometer has been doing: see ThermometerStatus."""

    OK = "ok"
    FAILING = "failing"
    ABSENT = "absent"


@dataclass(frozen=True)
class ThermometerStatus:
    """How the thermometer is doing, for the kiosk's status screen and log.

    health: ok, readings arrive (or nothing was tried yet); failing, the port is there but gives
    no reading (silent, garbage, refusals, I/O errors); absent, no device at the path.
    since: time.monotonic() when this health began; last_error: why it is not ok, if it is not.
    """

    health: Health
    since: float
    last_error: str | None
    is_open: bool


@dataclass
class _Backoff:
    first: float
    most: float
    delay: float = field(init=False)
    next_at: float = 0.0

    def __post_init__(self) -> None:
        self.delay = self.first

    def failed(self, now: float) -> None:
        self.next_at = now + self.delay
        self.delay = min(self.delay * 2, self.most)

    def succeeded(self) -> None:
        self.delay = self.first
        self.next_at = 0.0


class Thermometer(Closing):
    """A serial thermometer at a port path, read in one protocol.

    The port is opened on first use (or by open()), never in the constructor. offset is added
    to every raw reading; plausible bounds the calibrated value (inclusive); threshold is the
    fever threshold measure() re-measures at; address and register are for Modbus only.
    """

    def __init__(
        self,
        port: str,
        protocol: str,
        *,
        baud: int = DEFAULT_BAUD,
        parity: str = serial.PARITY_NONE,
        address: int = 1,
        register: int = 0,
        offset: float = 0.0,
        plausible: tuple[float, float] = DEFAULT_PLAUSIBLE,
        threshold: float = DEFAULT_THRESHOLD,
        response_timeout: float = MODBUS_RESPONSE_TIMEOUT,
        reopen_backoff: tuple[float, float] = REOPEN_BACKOFF,
    ) -> None:
        if plausible[0] > plausible[1]:
            raise ValueError(f"plausible range {plausible} is empty")
        if not plausible[0] <= threshold <= plausible[1]:
            raise ValueError(f"threshold {threshold} °C is outside the plausible range {plausible}")
        if not abs(offset) <= MAX_OFFSET:
            raise ValueError(f"calibration offset {offset} °C is beyond ±{MAX_OFFSET:g} °C")
        if parity not in serial.Serial.PARITIES:
            raise ValueError(f"parity must be one of {serial.Serial.PARITIES}, not {parity!r}")
        self.port = port
        self.protocol = protocol
        self.baud = baud
        self.parity = parity
        self.offset = offset
        self.plausible = plausible
        self.threshold = threshold
        self.response_timeout = response_timeout
        self._decoder = make_decoder(protocol, address=address, register=register)
        self._serial: serial.Serial | None = None
        self._backoff = _Backoff(*reopen_backoff)
        self._health = Health.OK
        self._since = time.monotonic()
        self._last_error: str | None = None
        self._asked_at: float | None = None  # Modbus: when the request in flight was sent

    # -- the port ---------------------------------------------------------------------------

    def open(self) -> bool:
        """Open the port now if it is not open; whether it is open. Never raises."""
        if self._serial is None:
            self._try_open(time.monotonic())
        return self._serial is not None

    def close(self) -> None:
        """Close the port; a later read opens it again."""
        if self._serial is not None:
            with contextlib.suppress(*_PORT_ERRORS):
                self._serial.close()
            self._serial = None
        self._decoder.reset()
        self._asked_at = None

    def status(self) -> ThermometerStatus:
        return ThermometerStatus(
            self._health, self._since, self._last_error, self._serial is not None
        )

    def _set_health(self, health: Health, error: str | None) -> None:
        if health != self._health:
            if health is Health.OK:
                logger.info("thermometer %s: readings again", self.port)
            else:
                logger.warning("thermometer %s: %s: %s", self.port, health.value, error)
            self._health = health
            self._since = time.monotonic()
        self._last_error = error

    def _try_open(self, now: float) -> None:
        if now < self._backoff.next_at:
            return
        try:
            self._serial = serial.Serial(
                self.port,
                baudrate=self.baud,
                bytesize=serial.EIGHTBITS,
                parity=self.parity,
                stopbits=serial.STOPBITS_ONE,
                timeout=READ_SLICE,
                write_timeout=1.0,
                exclusive=True,
            )
        except (*_PORT_ERRORS, ValueError) as error:
            self._serial = None
            self._backoff.failed(now)
            code = getattr(error, "errno", None)
            health = Health.ABSENT if code in _ABSENT_ERRNOS else Health.FAILING
            self._set_health(health, f"cannot open {self.port}: {_reason(error)}")
            return
        # pyserial flushed what arrived before; whatever arrives now may start mid-frame.
        self._decoder.reset()
        self._asked_at = None
        logger.debug("thermometer %s: opened", self.port)

    def _lost(self, error: Exception) -> None:
        self.close()
        self._backoff.failed(time.monotonic())
        self._set_health(Health.FAILING, f"lost {self.port}: {_reason(error)}")

    # -- readings ---------------------------------------------------------------------------

    def read(self, timeout: float, *, plausible_only: bool = True) -> Reading | None:
        """The next reading to arrive within timeout seconds, or None for "no reading".

        Only a reading that arrives after the call counts: one a streaming device sent before
        is dropped. With plausible_only (the default) readings outside the plausible range
        are skipped; otherwise the first reading is returned whatever its value. May return
        up to READ_SLICE seconds after the timeout. Never raises for a device failure.
        """
        return self._read(time.monotonic() + timeout, plausible_only, None)

    def _read(
        self, deadline: float, plausible_only: bool, implausible: list[Reading] | None
    ) -> Reading | None:
        self._drain()
        self._asked_at = None
        heard = False  # whether any reading, plausible or not, arrived in this call
        while True:
            now = time.monotonic()
            if now >= deadline:
                if not heard:
                    self._timed_out()
                return None
            port = self._serial
            if port is None:
                self._try_open(now)
                port = self._serial
                if port is None:
                    time.sleep(max(0.0, min(deadline, self._backoff.next_at) - now))
                    continue
            try:
                self._ask(port, now)
                data = port.read(1)
                if data:
                    data += port.read(port.in_waiting)
            except _PORT_ERRORS as error:
                self._lost(error)
                continue
            for item in self._decoder.feed(data):
                if isinstance(item, ProtocolError):
                    self._refused(item)
                    continue
                reading = self._reading(item)
                heard = True
                if reading.plausible or not plausible_only:
                    return reading
                if implausible is not None:
                    implausible.append(reading)

    def _drain(self) -> None:
        """Decode and drop what a streaming device sent before now, keeping the decoder in step."""
        if self._serial is None or self._decoder.request() is not None:
            return
        try:
            waiting = self._serial.in_waiting
            if waiting:
                self._decoder.feed(self._serial.read(waiting))
        except _PORT_ERRORS as error:
            self._lost(error)

    def _ask(self, port: serial.Serial, now: float) -> None:
        request = self._decoder.request()
        if request is None:
            return
        if self._asked_at is not None and now - self._asked_at < self.response_timeout:
            return  # its reply may be on its way, behind whatever was refused meanwhile
        if self._asked_at is not None:
            unanswered = f"no reply from the device within {self.response_timeout} s"
            self._set_health(Health.FAILING, self._last_error or unanswered)
        port.reset_input_buffer()
        self._decoder.reset()
        port.write(request)
        self._asked_at = now

    def _refused(self, error: ProtocolError) -> None:
        logger.debug("thermometer %s: %s", self.port, error)
        self._last_error = str(error)

    def _reading(self, raw: float) -> Reading:
        self._asked_at = None
        self._backoff.succeeded()
        self._set_health(Health.OK, None)
        celsius = round(raw + self.offset, 2)
        low, high = self.plausible
        return Reading(celsius, raw, self.protocol, time.monotonic(), low <= celsius <= high)

    def _timed_out(self) -> None:
        if self._serial is None:
            return  # already absent or failing, with the reason why
        if self._health is Health.OK:
            silence = "no reply" if self._decoder.request() else "the device sent nothing"
            self._set_health(Health.FAILING, self._last_error or f"no reading: {silence}")

    # -- measurements -----------------------------------------------------------------------

    def measure(self, timeout: float = 3.0, remeasure_timeout: float | None = None) -> Measurement:
        """A temperature for the policy, re-measured once when at or above the threshold.

        timeout bounds the wait for the first plausible reading, remeasure_timeout (by
        default the same) the wait for the second. See the module text for the rule.
        """
        implausible: list[Reading] = []

        def result(celsius: float | None, outcome: Outcome, *readings: Reading) -> Measurement:
            return Measurement(
                celsius, outcome, self.threshold, self.offset, readings, tuple(implausible)
            )

        first = self._read(time.monotonic() + timeout, True, implausible)
        if first is None:
            return result(None, "no-reading")
        if first.celsius < self.threshold:
            return result(first.celsius, "normal", first)
        wait = timeout if remeasure_timeout is None else remeasure_timeout
        second = self._read(time.monotonic() + wait, True, implausible)
        if second is None:
            return result(first.celsius, "unconfirmed", first)
        if second.celsius < self.threshold:
            return result(second.celsius, "normal", first, second)
        return result(second.celsius, "fever", first, second)


def _reason(error: Exception) -> str:
    """What went wrong with the port, in words: pyserial's messages repeat the errno."""
    if isinstance(error, termios.error) and len(error.args) == 2:
        return str(error.args[1])
    code = getattr(error, "errno", None)
    if code in (errno.EAGAIN, errno.EWOULDBLOCK):
        return "in use by another program"
    if isinstance(code, int) and code in errno.errorcode:
        return os.strerror(code)
    return str(error) or type(error).__name__
