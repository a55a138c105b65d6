"""A kiosk's optional peripherals, configured once for the agent and the self-test.

Each one (ID-card module, thermometer, lights and gate, voice) is optional: left out, it is
reported absent; failing at run time, it is reported failing and the kiosk goes on. Opening
one never raises into the agent: a mistake shows in its component state.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from device.cardreader import COMPONENT as CARD_READER_COMPONENT
from device.cardreader import OnCard, SamCardReader
from device.pipeline import NO_THERMOMETER, Event, Temperature
from device.report import component_state, monotonic_to_utc
from hardware.gpio import Button, Signals, SignalsConfig, SignalsHealth
from hardware.gpio.signals import Pin
from hardware.idcard.samreader import SamReader
from hardware.thermometer.driver import Measurement, Thermometer
from hardware.thermometer.protocol import PROTOCOL_NAMES
from hardware.voice.language import Language
from hardware.voice.prompts import fixed_prompts, prompt_for
from hardware.voice.speaker import Speaker, VoiceHealth
from shared.messages import MAX_IMPLAUSIBLE_READINGS, ComponentState, ThermometerReadings
from shared.policy import Outcome

log = logging.getLogger(__name__)
THERMOMETER_COMPONENT = "thermometer"
TRIGGER_COMPONENT = "trigger"
MEASURE_SECONDS = 3.0  # how long a check waits for a first plausible temperature
LANGUAGES = {"zh": Language.MANDARIN, "en": Language.ENGLISH}
Fitted = TypeVar("Fitted")


def thermometer_readings(measurement: Measurement) -> ThermometerReadings:
    """A measurement as the check-in keeps it: raw readings, offset, threshold and outcome."""
    implausible = [reading.raw for reading in measurement.implausible]
    return ThermometerReadings(
        outcome=measurement.outcome,
        threshold=measurement.threshold,
        offset=measurement.offset,
        raw=list(measurement.raw),
        implausible_raw=implausible[-MAX_IMPLAUSIBLE_READINGS:],
    )


@dataclass(frozen=True)
class PeripheralOptions:
    """What is fitted to this kiosk; None or empty means not fitted."""

    sam_port: str | None = None
    thermometer_port: str | None = None
    thermometer_protocol: str = "stream"
    thermometer_offset: float = 0.0
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    voice: tuple[Language, ...] = ()
    voice_cache: Path = Path("/var/cache/sentinel/voice")
    player: tuple[str, ...] | None = None
    trigger_pin: Pin | None = None  # a handheld's scan button
    pin_factory: Any = None  # gpiozero's pin factory for every GPIO part; None: its default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The peripheral options of `sentinel device run` and `sentinel selftest`."""
    fitted = parser.add_argument_group("peripherals (each optional)")
    fitted.add_argument(
        "--sam",
        metavar="PORT",
        help="a GA 467 ID-card module's serial port, e.g. /dev/serial/by-id/usb-...; people "
        "without a phone show their ID card, and paper codes are checked against it",
    )
    fitted.add_argument("--thermometer", metavar="PORT", help="a serial thermometer's port")
    fitted.add_argument(
        "--thermometer-protocol",
        choices=PROTOCOL_NAMES,
        default="stream",
        metavar="PROTOCOL",
        help=f"what the thermometer speaks: {', '.join(PROTOCOL_NAMES)}",
    )
    fitted.add_argument(
        "--thermometer-offset", type=float, default=0.0, metavar="C", help="calibration offset"
    )
    for name in ("green", "red", "buzzer", "gate"):
        fitted.add_argument(f"--{name}-pin", metavar="GPIO", help=f"the {name} output's pin")
    fitted.add_argument(
        "--gate-active-low", action="store_true", help="the gate relay closes on a low pin"
    )
    fitted.add_argument(
        "--gate-open",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long the gate stays open after a pass",
    )
    fitted.add_argument(
        "--trigger-pin",
        metavar="GPIO",
        help="a handheld's scan button (to ground, pulled up): each press scans for a while",
    )
    fitted.add_argument(
        "--voice",
        default="",
        metavar="LANGS",
        help="say each result aloud: zh, en or zh,en (espeak-ng; Mandarin first)",
    )
    fitted.add_argument(
        "--voice-cache",
        type=Path,
        default=PeripheralOptions.voice_cache,
        metavar="DIR",
        help="where rendered prompts (WAV files) are kept",
    )
    fitted.add_argument(
        "--voice-player",
        metavar="COMMAND",
        help="the command that plays a WAV, its path appended (default: aplay -q)",
    )


def from_arguments(args: argparse.Namespace) -> PeripheralOptions:
    """The options as parsed; ValueError names a wrong one."""
    languages = [part.strip() for part in args.voice.split(",") if part.strip()]
    unknown = [language for language in languages if language not in LANGUAGES]
    if unknown:
        raise ValueError(f"--voice: unknown language {', '.join(unknown)} (zh, en)")
    pin = {name: getattr(args, f"{name}_pin") for name in ("green", "red", "buzzer", "gate")}
    signals = SignalsConfig(
        green_pin=pin["green"],
        red_pin=pin["red"],
        buzzer_pin=pin["buzzer"],
        gate_pin=pin["gate"],
        gate_active_low=args.gate_active_low,
        gate_open_seconds=args.gate_open,
    )
    return PeripheralOptions(
        sam_port=args.sam,
        thermometer_port=args.thermometer,
        thermometer_protocol=args.thermometer_protocol,
        thermometer_offset=args.thermometer_offset,
        signals=signals,
        voice=tuple(LANGUAGES[language] for language in languages),
        voice_cache=args.voice_cache,
        player=tuple(shlex.split(args.voice_player)) if args.voice_player else None,
        trigger_pin=args.trigger_pin,
    )


class Peripherals:
    """The fitted peripherals, opened; their health as device-report components."""

    def __init__(
        self,
        options: PeripheralOptions,
        on_card: OnCard,
        on_trigger: Callable[[], object] | None = None,
    ) -> None:
        """`on_trigger` is called on each press of the trigger button (None: it is not used)."""
        self.options = options
        self._started = datetime.now(UTC)
        self.failed: dict[str, str] = {}  # a peripheral that could not even be set up: why
        self.thermometer: Thermometer | None = None
        if options.thermometer_port is not None:
            port = options.thermometer_port
            self.thermometer = self._set_up(
                THERMOMETER_COMPONENT,
                lambda: Thermometer(
                    port, options.thermometer_protocol, offset=options.thermometer_offset
                ),
            )
        self.signals = self._set_up(
            "signals", lambda: Signals(options.signals, pin_factory=options.pin_factory)
        )
        self.trigger: Button | None = None
        if options.trigger_pin is not None and on_trigger is not None:
            pin = options.trigger_pin
            self.trigger = self._set_up(
                TRIGGER_COMPONENT,
                lambda: Button(pin, on_trigger, pin_factory=options.pin_factory),
            )
        self.speaker: Speaker | None = None
        if options.voice:
            self.speaker = self._set_up(
                "voice", lambda: Speaker(options.voice_cache, player=options.player)
            )
        self.card_reader: SamCardReader | None = None
        if options.sam_port is not None:
            self.card_reader = SamCardReader(SamReader(options.sam_port), on_card)
        self._measure_lock = threading.Lock()

    def _set_up(self, name: str, make: Callable[[], Fitted]) -> Fitted | None:
        try:
            return make()
        except (ImportError, OSError, ValueError, RuntimeError) as error:
            log.error("%s could not be set up, going on without it: %s", name, error)
            self.failed[name] = f"{type(error).__name__}: {error}"
            return None

    def start(self) -> None:
        """Start what runs aside: the card reader's thread, the voice's first renders."""
        if self.card_reader is not None:
            self.card_reader.start()
        if self.speaker is not None:
            speaker = self.speaker
            prompts = [
                prompt for language in self.options.voice for prompt in fixed_prompts(language)
            ]
            threading.Thread(
                target=speaker.prerender, args=(prompts,), name="voice-prerender", daemon=True
            ).start()

    def temperature(self) -> Temperature:
        """A temperature for a check, re-measured at the threshold, with its raw readings."""
        if self.thermometer is None:
            return NO_THERMOMETER
        with self._measure_lock:
            measurement = self.thermometer.measure(MEASURE_SECONDS)
        return Temperature(measurement.celsius, thermometer_readings(measurement))

    def announce(self, event: Event) -> None:
        """Lights, buzzer, gate and voice for a decision; an ignored scan only speaks, if asked."""
        outcome = event.decision.outcome
        if self.signals is not None and outcome is not Outcome.IGNORED:
            self.signals.show(outcome)
        if self.speaker is not None:
            self.speaker.say(
                *(
                    prompt_for(outcome, event.decision.reasons, event.temperature_c, language)
                    for language in self.options.voice
                )
            )

    def components(self) -> dict[str, Callable[[], ComponentState]]:
        """Each fitted peripheral's current state, by component name."""
        states: dict[str, Callable[[], ComponentState]] = {
            name: lambda detail=detail: component_state("failing", self._started, detail)
            for name, detail in self.failed.items()
        }
        if self.card_reader is not None:
            states[CARD_READER_COMPONENT] = self.card_reader.component
        if self.thermometer is not None:
            thermometer = self.thermometer

            def thermometer_state() -> ComponentState:
                status = thermometer.status()
                since = monotonic_to_utc(status.since)
                return component_state(status.health.value, since, status.last_error)

            states[THERMOMETER_COMPONENT] = thermometer_state
        if self.signals is not None and self.options.signals.pins:
            states["signals"] = _reported(self.signals.health)
        if self.speaker is not None:
            states["voice"] = _reported(self.speaker.health)
        if self.trigger is not None:
            states[TRIGGER_COMPONENT] = _reported(self.trigger.health)
        return states

    def close(self) -> None:
        if self.card_reader is not None:
            self.card_reader.stop()
        for part in (self.thermometer, self.signals, self.speaker, self.trigger):
            if part is not None:
                part.close()


def _reported(health: Callable[[], SignalsHealth | VoiceHealth]) -> Callable[[], ComponentState]:
    """A driver's health() (state, since, detail) as the report's component state."""

    def state() -> ComponentState:
        now = health()
        return component_state(now.state, now.since, now.detail)

    return state
