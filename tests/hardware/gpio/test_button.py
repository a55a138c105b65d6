"""The scan trigger's push button on a mock GPIO input: a call per press, failures reported."""

import logging

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.gpio import Button
from tests.hardware.gpio.conftest import wait_until


def test_each_press_calls_back_once(factory: MockFactory) -> None:
    presses: list[int] = []
    with Button(5, lambda: presses.append(1), pin_factory=factory, bounce_seconds=None) as button:
        pin = factory.pin(5)
        assert pin.state  # pulled up: high while not pressed
        for _ in range(3):
            pin.drive_low()
            pin.drive_high()
        assert wait_until(lambda: len(presses) == 3)
        assert button.health().state == "ok"


def test_a_failing_handler_is_logged_and_the_next_press_still_counts(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    presses: list[int] = []

    def handler() -> None:
        presses.append(1)
        if len(presses) == 1:
            raise RuntimeError("a bug in the handler")

    with Button(5, handler, pin_factory=factory, bounce_seconds=None):
        pin = factory.pin(5)
        with caplog.at_level(logging.ERROR):
            pin.drive_low()
            pin.drive_high()
            pin.drive_low()
        assert wait_until(lambda: len(presses) == 2)
    assert "the press handler failed" in caplog.text


def test_a_pin_that_cannot_be_set_up_is_reported_not_raised(factory: MockFactory) -> None:
    with Button("NOT-A-PIN", lambda: None, pin_factory=factory) as button:
        health = button.health()
    assert health.state == "failing"
    assert health.detail is not None and "cannot set up pin NOT-A-PIN" in health.detail


def test_closing_frees_the_pin(factory: MockFactory) -> None:
    Button(5, lambda: None, pin_factory=factory).close()
    with Button(5, lambda: None, pin_factory=factory) as again:
        assert again.health().state == "ok"
