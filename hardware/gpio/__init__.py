"""GPIO through gpiozero: lights, a buzzer and a gate relay (signals); a scan trigger (button)."""

from hardware.gpio.button import Button
from hardware.gpio.signals import (
    OUTPUT_NAMES,
    HealthState,
    OutputCheck,
    Signals,
    SignalsConfig,
    SignalsHealth,
)

__all__ = [
    "OUTPUT_NAMES",
    "Button",
    "HealthState",
    "OutputCheck",
    "Signals",
    "SignalsConfig",
    "SignalsHealth",
]
