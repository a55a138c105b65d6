"""Fixtures for the thermometer tests: emulators on real ptys, and drivers opened on them."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hardware.thermometer.driver import Thermometer
from hardware.thermometer.emulator import Emulator

# Seconds to wait for something that should come: a wait returns as soon as it does, so only a
# broken driver or emulator ever waits this long.
WAIT = 10.0
# Seconds to wait for something that should not come (a silent device's reading).
SILENCE = 0.3
# Seconds between frames or lines of a streaming emulator: quick, to keep the tests short.
PERIOD = 0.02


@pytest.fixture
def emulate() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator (closed after the test): emulate("stream", celsius=36.6, ...)."""
    started: list[Emulator] = []

    def start(protocol: str, **options: Any) -> Emulator:
        options.setdefault("period", PERIOD)
        emulator = Emulator(protocol, **options).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.close()


@pytest.fixture
def connect() -> Iterator[Callable[..., Thermometer]]:
    """A driver on an emulator's port (closed after the test): connect(emulator, offset=...)."""
    opened: list[Thermometer] = []

    def open_(emulator: Emulator, **options: Any) -> Thermometer:
        options.setdefault("address", emulator.address)
        options.setdefault("register", emulator.register)
        options.setdefault("reopen_backoff", (0.02, 0.2))
        thermometer = Thermometer(emulator.port, emulator.protocol, **options)
        opened.append(thermometer)
        return thermometer

    yield open_
    for thermometer in opened:
        thermometer.close()
