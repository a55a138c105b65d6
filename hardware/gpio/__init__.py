"""GPIO outputs through gpiozero: green and red lights, a buzzer and a gate relay (signals)."""

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
    "HealthState",
    "OutputCheck",
    "Signals",
    "SignalsConfig",
    "SignalsHealth",
]
