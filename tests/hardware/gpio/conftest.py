"""Fixtures for the GPIO tests: a fresh MockFactory per test, and Signals closed after it."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from hardware.gpio import Signals, SignalsConfig

# BCM numbers of the outputs in the tests.
PINS = {"green_pin": 17, "red_pin": 27, "buzzer_pin": 22, "gate_pin": 23}
# Seconds to wait for something that should come: a wait returns as soon as it does, so only a
# broken driver ever waits this long.
WAIT = 5.0
# Short signals, to keep the tests quick.
FAST = {
    "gate_open_seconds": 0.05,
    "pass_seconds": 0.05,
    "deny_seconds": 0.05,
    "refer_seconds": 0.1,
    "blink_seconds": 0.01,
    "short_beep_seconds": 0.01,
    "long_beep_seconds": 0.02,
    "beep_gap_seconds": 0.01,
    "selftest_pulse_seconds": 0.02,
}


def levels(pin: MockPin) -> list[bool]:
    """The levels a mock pin has had, from its first (or since clear_states()) to now."""
    return [bool(change.state) for change in pin.states]


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A MockFactory passed explicitly to each Signals: gpiozero's global is never set."""
    factory = MockFactory()
    yield factory
    factory.close()
    assert Device.pin_factory is None


@pytest.fixture
def make_signals(factory: MockFactory) -> Iterator[Callable[..., Signals]]:
    """Signals on the mock pins (closed after the test): make_signals(gate_pin=None, ...)."""
    made: list[Signals] = []

    def make(**options: Any) -> Signals:
        signals = Signals(SignalsConfig(**(PINS | FAST | options)), pin_factory=factory)
        made.append(signals)
        return signals

    yield make
    for signals in made:
        signals.close()
