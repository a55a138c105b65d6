"""A decision shown on GPIO outputs: green and red lights, a buzzer, a gate relay (gpiozero).

Signals.show("pass" | "deny" | "refer") returns at once; one worker thread per Signals plays
the outcome's timed pattern:

- pass: green on for pass_seconds, one short beep, the gate relay on for gate_open_seconds;
- deny: red on for deny_seconds, two long beeps; the gate is left alone;
- refer: red blinking for refer_seconds, three short beeps (staff, please come).

The lights and the buzzer are the display, and a new outcome replaces the previous one's
display at once. The gate is not display: only a pass touches it (it opens, or stays open
gate_open_seconds from this pass), so a deny or refer shown at once for the next person does
not cut short the passage of the person before them.

The pattern is played on one timeline of the worker's own rather than by gpiozero's blink()
threads (one per device): a new outcome then replaces all outputs' changes in one step, and a
pin that fails in the middle of a pattern is caught here, reported by health() and logged once,
never raised into the caller's scan loop. Every configured output is optional; a pin that
cannot be set up makes health() "failing" while the other outputs keep working.

gpiozero is imported when a Signals with pins is made, not with this module. The pin factory
is gpiozero's: pass one (tests pass MockFactory()), or None for its default (lgpio on a Pi).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Literal, NamedTuple

from hardware.closing import Closing

if TYPE_CHECKING:
    from gpiozero import OutputDevice
    from gpiozero.pins import Factory

logger = logging.getLogger(__name__)

# The outputs by name, in the order selftest() checks them.
OUTPUT_NAMES = ("green", "red", "buzzer", "gate")
MAX_SELFTEST_PULSE = 0.2  # seconds: four outputs one after another stay under a second
WORKER_JOIN_TIMEOUT = 2.0  # seconds close() waits for the worker, which only waits or writes

Pin = int | str  # what gpiozero takes: a BCM number (17) or a name ("GPIO17", "BOARD11")
HealthState = Literal["ok", "absent", "failing"]


@dataclass(frozen=True)
class SignalsConfig:
    """Which pins the outputs are on (None: not fitted) and how long each signal lasts.

    gate_active_low: the relay board switches on a low level (most opto-isolated boards do).
    Durations are in seconds; refer blinks the red light blink_seconds on, blink_seconds off.
    """

    green_pin: Pin | None = None
    red_pin: Pin | None = None
    buzzer_pin: Pin | None = None
    gate_pin: Pin | None = None
    gate_active_low: bool = False
    gate_open_seconds: float = 3.0
    pass_seconds: float = 2.0
    deny_seconds: float = 3.0
    refer_seconds: float = 6.0
    blink_seconds: float = 0.25
    short_beep_seconds: float = 0.1
    long_beep_seconds: float = 0.5
    beep_gap_seconds: float = 0.15
    selftest_pulse_seconds: float = 0.15

    def __post_init__(self) -> None:
        for field in fields(self):
            seconds = getattr(self, field.name)
            if field.name.endswith("_seconds") and not seconds > 0:
                raise ValueError(f"{field.name} must be positive, not {seconds}")
        if self.selftest_pulse_seconds > MAX_SELFTEST_PULSE:
            raise ValueError(
                f"selftest_pulse_seconds must be at most {MAX_SELFTEST_PULSE}, "
                f"not {self.selftest_pulse_seconds}"
            )
        pins = list(self.pins.values())
        if len(set(pins)) < len(pins):
            raise ValueError(f"two outputs on one pin: {self.pins}")

    @property
    def pins(self) -> dict[str, Pin]:
        """The fitted outputs' pins by output name, in OUTPUT_NAMES order."""
        fitted = zip(
            OUTPUT_NAMES,
            (self.green_pin, self.red_pin, self.buzzer_pin, self.gate_pin),
            strict=True,
        )
        return {name: pin for name, pin in fitted if pin is not None}


@dataclass(frozen=True)
class SignalsHealth:
    """How the outputs are doing, for the agent to report.

    state: "ok" (every fitted output works, or none was tried yet), "failing" (an output could
    not be set up, or its latest write failed), "absent" (no pins configured); since: when
    that state began (UTC); detail: what fails ("gate: <reason>; ..."), or why absent.
    """

    state: HealthState
    since: datetime
    detail: str | None


class OutputCheck(NamedTuple):
    """One output's selftest result: whether it switched on and off, and what happened."""

    ok: bool
    detail: str


class _Change(NamedTuple):
    at: float  # seconds from the start of the pattern
    output: str
    active: bool


class _Due(NamedTuple):
    deadline: float  # time.monotonic()
    order: int  # keeps a pattern's changes for one moment in their order
    output: str
    active: bool


def _pulses(output: str, *, count: int, on: float, off: float) -> list[_Change]:
    """Pulses from the start, `count` of them: on for `on` seconds, then off for `off`."""
    changes = []
    for index in range(count):
        begin = index * (on + off)
        changes += [_Change(begin, output, True), _Change(begin + on, output, False)]
    return changes


def _pattern(config: SignalsConfig, outcome: str) -> list[_Change]:
    """The changes that show an outcome; the outputs named in them are the ones it replaces."""
    if outcome == "pass":
        return [
            _Change(0.0, "red", False),
            *_pulses("green", count=1, on=config.pass_seconds, off=0.0),
            *_pulses("buzzer", count=1, on=config.short_beep_seconds, off=0.0),
            *_pulses("gate", count=1, on=config.gate_open_seconds, off=0.0),
        ]
    if outcome == "deny":
        return [
            _Change(0.0, "green", False),
            *_pulses("red", count=1, on=config.deny_seconds, off=0.0),
            *_pulses("buzzer", count=2, on=config.long_beep_seconds, off=config.beep_gap_seconds),
        ]
    if outcome == "refer":
        blinks = max(1, round(config.refer_seconds / (2 * config.blink_seconds)))
        return [
            _Change(0.0, "green", False),
            *_pulses("red", count=blinks, on=config.blink_seconds, off=config.blink_seconds),
            *_pulses("buzzer", count=3, on=config.short_beep_seconds, off=config.beep_gap_seconds),
        ]
    raise ValueError(f"outcome must be 'pass', 'deny' or 'refer', not {outcome!r}")


def import_gpiozero() -> ModuleType:
    """gpiozero, or an ImportError that says how to install it."""
    try:
        import gpiozero
    except ImportError as error:
        raise ImportError(
            "GPIO signals need gpiozero: pip install gpiozero (on a Raspberry Pi also lgpio; "
            "both come with the project's 'pi' extra)",
            name="gpiozero",
        ) from error
    return gpiozero


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Signals(Closing):
    """The kiosk's lights, buzzer and gate relay, showing decisions without blocking.

    Outputs are set up in the constructor, each switched off; one that cannot be (a bad pin, a
    pin in use, no pin library) is reported by health() and left out. Raises ImportError when
    pins are configured and gpiozero is not installed. Thread-safe.
    """

    def __init__(self, config: SignalsConfig, *, pin_factory: Factory | None = None) -> None:
        self.config = config
        self._devices: dict[str, OutputDevice] = {}
        self._failures: dict[str, str] = {}  # output name -> why it fails
        self._since = datetime.now(UTC)
        self._due: list[_Due] = []  # a heap: the changes still to make
        self._order = itertools.count()
        self._closed = False
        # Guards all of the above; held while pins are written, so that once show() has
        # replaced the display, no change of the pattern before it can still reach a pin.
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None
        if config.pins:
            self._set_up(config, pin_factory)
        if self._devices:
            self._worker = threading.Thread(target=self._play, name="gpio-signals", daemon=True)
            self._worker.start()

    def _set_up(self, config: SignalsConfig, pin_factory: Factory | None) -> None:
        gpiozero = import_gpiozero()
        kinds = {
            "green": gpiozero.LED,
            "red": gpiozero.LED,
            "buzzer": gpiozero.Buzzer,
            "gate": gpiozero.OutputDevice,
        }
        for name, pin in config.pins.items():
            try:
                self._devices[name] = kinds[name](
                    pin,
                    active_high=not (name == "gate" and config.gate_active_low),
                    initial_value=False,
                    pin_factory=pin_factory,
                )
            except Exception as error:  # whatever the pin library raises: gpiozero's, lgpio's
                self._record(name, f"cannot set up pin {pin}: {_reason(error)}")

    def show(self, outcome: str) -> None:
        """Show "pass", "deny" or "refer" (a shared.policy.Outcome will do); returns at once."""
        changes = _pattern(self.config, outcome)
        replaced = {change.output for change in changes}
        start = time.monotonic()
        with self._lock:
            self._due = [due for due in self._due if due.output not in replaced]
            self._due += [
                _Due(start + change.at, next(self._order), change.output, change.active)
                for change in changes
                if change.output in self._devices
            ]
            heapq.heapify(self._due)
            self._lock.notify()

    def health(self) -> SignalsHealth:
        with self._lock:
            if not self.config.pins:
                return SignalsHealth("absent", self._since, "no GPIO pins configured")
            detail = "; ".join(f"{name}: {reason}" for name, reason in self._failures.items())
            return SignalsHealth(self._state(), self._since, detail or None)

    def selftest(self) -> dict[str, OutputCheck]:
        """Switch each fitted output on and off in turn; under a second in all.

        Stops the pattern being shown, and leaves every output off. show() waits meanwhile.
        """
        pulse = self.config.selftest_pulse_seconds
        results = {}
        with self._lock:
            self._due.clear()
            for name, pin in self.config.pins.items():
                device = self._devices.get(name)
                if device is None:
                    results[name] = OutputCheck(False, self._failures[name])
                    continue
                try:
                    device.on()
                    time.sleep(pulse)
                    device.off()
                except Exception as error:  # whatever the pin library raises
                    self._record(name, _reason(error))
                    with contextlib.suppress(Exception):
                        device.off()
                    results[name] = OutputCheck(False, _reason(error))
                else:
                    self._record(name, None)
                    results[name] = OutputCheck(True, f"pin {pin} on for {pulse} s, then off")
        return results

    def close(self) -> None:
        """Stop the pattern, switch every output off (the gate shuts), release the pins.

        A show() after it does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._due.clear()
            self._lock.notify()
        if self._worker is not None:
            self._worker.join(WORKER_JOIN_TIMEOUT)
        with self._lock:
            for name, device in self._devices.items():
                self._write(name, False)
                with contextlib.suppress(Exception):
                    device.close()

    def _play(self) -> None:
        """The worker: make each change when it is due, until closed."""
        with self._lock:
            while not self._closed:
                while self._due and self._due[0].deadline <= time.monotonic():
                    due = heapq.heappop(self._due)
                    self._write(due.output, due.active)
                self._lock.wait(self._due[0].deadline - time.monotonic() if self._due else None)

    def _write(self, name: str, active: bool) -> None:
        try:
            self._devices[name].value = active
        except Exception as error:  # whatever the pin library raises: gpiozero's, lgpio's, OS's
            self._record(name, _reason(error))
        else:
            self._record(name, None)

    def _state(self) -> HealthState:
        return "failing" if self._failures else "ok"

    def _record(self, name: str, failure: str | None) -> None:
        """Note whether an output works (failure None) or why not; log each change once."""
        before = self._state()
        if failure is None:
            if self._failures.pop(name, None) is not None:
                logger.info("GPIO output %s works again", name)
        else:
            if name not in self._failures:
                logger.warning("GPIO output %s failing: %s", name, failure)
            self._failures[name] = failure
        if self._state() != before:
            self._since = datetime.now(UTC)
