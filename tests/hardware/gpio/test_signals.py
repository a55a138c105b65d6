"""Signals on gpiozero's mock pins: each outcome's pin history, overrides, failures, selftest."""

import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPin

from hardware.gpio import OutputCheck, Signals, SignalsConfig
from tests.hardware.gpio.conftest import PINS, levels, wait_until

# A change is never early (the worker waits for its deadline) but may be late on a busy machine.
EARLY = 0.01
LATE = 0.3
# Seconds to watch a pin that must keep still: many blink periods of the patterns under test.
STILL = 0.15


def pin_of(factory: MockFactory, output: str) -> MockPin:
    return factory.pin(PINS[f"{output}_pin"])


def all_pins(factory: MockFactory) -> tuple[MockPin, ...]:
    """The green, red, buzzer and gate pins."""
    return tuple(pin_of(factory, name) for name in ("green", "red", "buzzer", "gate"))


def held(pin: MockPin, index: int) -> float:
    """Seconds the pin kept the level it took at change number index - 1."""
    return pin.states[index].timestamp


class FlakyPin(MockPin):
    """A mock pin whose writes fail while `broken` (a lost GPIO line)."""

    broken = False

    def _set_state(self, value):
        if self.broken:
            raise OSError("GPIO line lost")
        super()._set_state(value)


class BusyPin(MockPin):
    """A mock pin that cannot be made an output (claimed by another process)."""

    def _set_function(self, value):
        if value == "output":
            raise OSError("GPIO busy")
        super()._set_function(value)


def test_pass_lights_green_beeps_once_and_opens_the_gate_for_its_time(make_signals, factory):
    signals = make_signals(gate_open_seconds=0.2, pass_seconds=0.1, short_beep_seconds=0.03)
    green, red, buzzer, gate = all_pins(factory)

    signals.show("pass")

    assert wait_until(lambda: len(gate.states) == 3)
    assert levels(gate) == [False, True, False]
    assert 0.2 - EARLY <= held(gate, 2) <= 0.2 + LATE
    assert levels(green) == [False, True, False]
    assert 0.1 - EARLY <= held(green, 2) <= 0.1 + LATE
    assert levels(buzzer) == [False, True, False]  # one beep, long over by now
    assert 0.03 - EARLY <= held(buzzer, 2) <= 0.03 + LATE
    assert levels(red) == [False]


def test_show_returns_at_once(make_signals):
    signals = make_signals(gate_open_seconds=5.0, pass_seconds=5.0, refer_seconds=5.0)
    started = time.monotonic()
    for outcome in ("pass", "deny", "refer"):
        signals.show(outcome)
    assert time.monotonic() - started < 0.1


def test_active_low_gate_is_high_when_shut_and_low_while_open(make_signals, factory):
    signals = make_signals(gate_active_low=True, gate_open_seconds=0.1)
    gate = pin_of(factory, "gate")
    assert gate.state  # shut from the start: the relay board's input is held high
    gate.clear_states()

    signals.show("pass")

    assert wait_until(lambda: len(gate.states) == 3)
    assert levels(gate) == [True, False, True]
    assert 0.1 - EARLY <= held(gate, 2) <= 0.1 + LATE


def test_deny_lights_red_beeps_twice_long_and_leaves_the_gate_shut(make_signals, factory):
    signals = make_signals(deny_seconds=0.1, long_beep_seconds=0.03, beep_gap_seconds=0.02)
    green, red, buzzer, gate = all_pins(factory)

    signals.show("deny")

    assert wait_until(lambda: len(red.states) == 3)
    assert levels(red) == [False, True, False]
    assert 0.1 - EARLY <= held(red, 2) <= 0.1 + LATE  # steady, not blinking
    assert levels(buzzer) == [False, True, False, True, False]
    assert 0.03 - EARLY <= held(buzzer, 2) <= 0.03 + LATE
    assert 0.03 - EARLY <= held(buzzer, 4) <= 0.03 + LATE
    assert levels(gate) == [False]
    assert levels(green) == [False]


def test_refer_blinks_red_and_beeps_three_times(make_signals, factory):
    signals = make_signals(refer_seconds=0.1, blink_seconds=0.01)  # five blinks
    green, red, buzzer, gate = all_pins(factory)

    signals.show("refer")

    assert wait_until(lambda: len(red.states) == 11)
    assert wait_until(lambda: len(buzzer.states) == 7)
    time.sleep(STILL)
    assert levels(red) == [False] + [True, False] * 5
    assert levels(buzzer) == [False] + [True, False] * 3
    assert levels(gate) == [False]
    assert levels(green) == [False]


def test_deny_shown_for_the_next_person_does_not_cut_the_gate_short(make_signals, factory):
    signals = make_signals(gate_open_seconds=0.3, deny_seconds=1.0)
    red, gate = pin_of(factory, "red"), pin_of(factory, "gate")

    signals.show("pass")
    assert wait_until(lambda: gate.state)
    signals.show("deny")

    assert wait_until(lambda: red.state)
    assert wait_until(lambda: len(gate.states) == 3)
    assert levels(gate) == [False, True, False]
    assert held(gate, 2) >= 0.3 - EARLY


def test_a_new_pass_keeps_the_gate_open_for_its_own_time(make_signals, factory):
    signals = make_signals(gate_open_seconds=0.3)
    gate = pin_of(factory, "gate")

    signals.show("pass")
    assert wait_until(lambda: gate.state)
    time.sleep(0.15)
    signals.show("pass")

    assert wait_until(lambda: len(gate.states) == 3)
    assert levels(gate) == [False, True, False]  # no flicker: it stayed open
    assert held(gate, 2) >= 0.45 - EARLY


def test_deny_replaces_the_blinking_of_refer_with_a_steady_red(make_signals, factory):
    signals = make_signals(refer_seconds=5.0, blink_seconds=0.02, deny_seconds=5.0)
    red = pin_of(factory, "red")
    signals.show("refer")
    assert wait_until(lambda: len(red.states) >= 5)  # blinking

    signals.show("deny")

    assert wait_until(lambda: red.state)
    changes = len(red.states)
    time.sleep(STILL)
    assert red.state
    assert len(red.states) == changes


def test_pass_puts_out_the_red_of_refer_at_once(make_signals, factory):
    signals = make_signals(refer_seconds=5.0, blink_seconds=0.02, pass_seconds=5.0)
    green, red = pin_of(factory, "green"), pin_of(factory, "red")
    signals.show("refer")
    assert wait_until(lambda: len(red.states) >= 5)

    signals.show("pass")

    assert wait_until(lambda: green.state and not red.state)
    changes = len(red.states)
    time.sleep(STILL)
    assert not red.state
    assert len(red.states) == changes


def test_an_unknown_outcome_is_refused_and_changes_nothing(make_signals, factory):
    signals = make_signals(deny_seconds=5.0)
    red = pin_of(factory, "red")
    signals.show("deny")
    assert wait_until(lambda: red.state)

    with pytest.raises(ValueError, match="'pass', 'deny' or 'refer'"):
        signals.show("ignored")

    time.sleep(STILL)
    assert levels(red) == [False, True]


def test_a_kiosk_without_gate_or_buzzer_shows_every_outcome(make_signals, factory):
    signals = make_signals(gate_pin=None, buzzer_pin=None)
    green, red = pin_of(factory, "green"), pin_of(factory, "red")

    signals.show("pass")
    assert wait_until(lambda: len(green.states) == 3)
    signals.show("deny")
    assert wait_until(lambda: len(red.states) == 3)
    signals.show("refer")
    assert wait_until(lambda: len(red.states) == 3 + 2 * 5)

    assert {info.name for info in factory.pins} == {"GPIO17", "GPIO27"}
    assert signals.health().state == "ok"
    assert set(signals.selftest()) == {"green", "red"}


def test_no_pins_at_all_is_absent_and_harmless(factory):
    with Signals(SignalsConfig(), pin_factory=factory) as signals:
        health = signals.health()
        assert (health.state, health.detail) == ("absent", "no GPIO pins configured")
        signals.show("pass")
        assert signals.selftest() == {}
    assert not factory.pins


def test_a_pin_failing_at_run_time_is_reported_logged_once_and_not_raised(
    make_signals, factory, caplog
):
    gate = factory.pin(PINS["gate_pin"], pin_class=FlakyPin)
    signals = make_signals(gate_open_seconds=0.02, pass_seconds=0.05)
    green = pin_of(factory, "green")
    before = signals.health()
    gate.broken = True

    with caplog.at_level(logging.INFO, logger="hardware.gpio.signals"):
        healths = []
        for shown in (1, 2):
            signals.show("pass")  # the gate's on and its off fail
            assert wait_until(lambda shown=shown: len(green.states) == 1 + 2 * shown)
            healths.append(signals.health())
        health = healths[0]
        assert (health.state, health.detail) == ("failing", "gate: OSError: GPIO line lost")
        assert health.since > before.since
        assert healths[1] == health  # failing since the first failure
        assert levels(green) == [False, True, False, True, False]  # the rest still works

        gate.broken = False
        signals.show("pass")
        assert wait_until(lambda: len(gate.states) == 3)

    assert levels(gate) == [False, True, False]
    assert signals.health().state == "ok"
    assert signals.health().since > health.since
    assert [record.getMessage() for record in caplog.records] == [
        "GPIO output gate failing: OSError: GPIO line lost",
        "GPIO output gate works again",
    ]


@pytest.mark.parametrize(
    ("gate_pin", "pin_class", "reason"),
    [
        (PINS["gate_pin"], BusyPin, "cannot set up pin 23: OSError: GPIO busy"),
        ("GPIO99", None, "cannot set up pin GPIO99: PinInvalidPin: GPIO99 is not a valid pin name"),
    ],
)
def test_a_pin_that_cannot_be_set_up_is_reported_and_the_others_work(
    make_signals, factory, gate_pin, pin_class, reason
):
    if pin_class is not None:
        factory.pin(gate_pin, pin_class=pin_class)
    signals = make_signals(gate_pin=gate_pin)
    green = pin_of(factory, "green")

    health = signals.health()
    assert (health.state, health.detail) == ("failing", f"gate: {reason}")
    signals.show("pass")
    assert wait_until(lambda: len(green.states) == 3)
    assert signals.health().detail == f"gate: {reason}"


def test_health_since_is_an_aware_utc_time(make_signals):
    before = datetime.now(UTC)
    health = make_signals().health()
    assert health.state == "ok"
    assert health.detail is None
    assert before <= health.since <= datetime.now(UTC)


def test_selftest_switches_each_output_on_and_off_in_turn_within_a_second(make_signals, factory):
    signals = make_signals(gate_active_low=True, selftest_pulse_seconds=0.15)
    for pin in all_pins(factory):
        pin.clear_states()

    started = time.monotonic()
    results = signals.selftest()
    elapsed = time.monotonic() - started

    assert 4 * 0.15 - EARLY <= elapsed < 1.0  # one after another, not all at once
    assert results == {
        name: OutputCheck(True, f"pin {PINS[f'{name}_pin']} on for 0.15 s, then off")
        for name in ("green", "red", "buzzer")
    } | {"gate": OutputCheck(True, "pin 23 on for 0.15 s, then off")}
    for name in ("green", "red", "buzzer"):
        pin = pin_of(factory, name)
        assert levels(pin) == [False, True, False]
        assert held(pin, 2) >= 0.15 - EARLY
    assert levels(pin_of(factory, "gate")) == [True, False, True]  # active low


def test_selftest_reports_each_failing_output_with_its_reason(make_signals, factory):
    factory.pin(PINS["red_pin"], pin_class=BusyPin)
    gate = factory.pin(PINS["gate_pin"], pin_class=FlakyPin)
    signals = make_signals()
    gate.broken = True

    results = signals.selftest()

    assert {name: check.ok for name, check in results.items()} == {
        "green": True,
        "red": False,
        "buzzer": True,
        "gate": False,
    }
    assert results["red"].detail == "cannot set up pin 27: OSError: GPIO busy"
    assert results["gate"].detail == "OSError: GPIO line lost"
    assert signals.health().detail == (
        "red: cannot set up pin 27: OSError: GPIO busy; gate: OSError: GPIO line lost"
    )


def test_selftest_stops_the_pattern_shown_and_leaves_everything_off(make_signals, factory):
    signals = make_signals(refer_seconds=5.0, blink_seconds=0.02)
    red = pin_of(factory, "red")
    signals.show("refer")
    assert wait_until(lambda: len(red.states) >= 5)

    signals.selftest()

    changes = len(red.states)
    time.sleep(STILL)
    assert len(red.states) == changes
    assert not any(pin.state for pin in all_pins(factory))


def test_close_shuts_the_gate_at_once_releases_the_pins_and_stops_the_worker(make_signals, factory):
    signals = make_signals(gate_open_seconds=5.0)
    gate = pin_of(factory, "gate")
    signals.show("pass")
    assert wait_until(lambda: gate.state)

    signals.close()
    signals.close()

    assert levels(gate) == [False, True, False]
    assert "gpio-signals" not in {thread.name for thread in threading.enumerate()}
    LED(PINS["gate_pin"], pin_factory=factory).close()  # the pin is free again


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gate_open_seconds": 0}, "gate_open_seconds must be positive"),
        ({"blink_seconds": float("nan")}, "blink_seconds must be positive"),
        ({"selftest_pulse_seconds": 0.5}, "selftest_pulse_seconds must be at most 0.2"),
        ({"green_pin": 17, "gate_pin": 17}, "two outputs on one pin"),
    ],
)
def test_impossible_configurations_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SignalsConfig(**options)


def test_without_gpiozero_pins_ask_for_it_and_no_pins_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # import gpiozero now fails
    with Signals(SignalsConfig()) as signals:
        assert signals.health().state == "absent"
    with pytest.raises(ImportError, match="pip install gpiozero"):
        Signals(SignalsConfig(green_pin=17))


def test_importing_the_package_does_not_import_gpiozero():
    code = "import sys, hardware.gpio; assert 'gpiozero' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
