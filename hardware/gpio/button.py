"""A push button on a GPIO input (gpiozero): a handheld's scan trigger.

The button connects the pin to ground when pressed (the pin's pull-up holds it high
otherwise), as the usual momentary switch on a Raspberry Pi header is wired. Each press calls
`on_press` once, on gpiozero's own thread; an exception there is logged, never raised into it.
As with Signals, gpiozero is imported when a button is made, and the pin factory is gpiozero's:
pass one (tests pass MockFactory()), or None for its default (lgpio on a Pi).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hardware.closing import Closing
from hardware.gpio.signals import Pin, SignalsHealth, import_gpiozero

if TYPE_CHECKING:
    import gpiozero
    from gpiozero.pins import Factory

logger = logging.getLogger(__name__)
BOUNCE_SECONDS = 0.05  # a switch's contacts chatter this long; gpiozero ignores edges within it


class Button(Closing):
    """One push button; `on_press()` is called on each press. Raises ImportError without gpiozero.

    A pin that cannot be set up is reported by health() ("failing", and why) rather than raised.
    """

    def __init__(
        self,
        pin: Pin,
        on_press: Callable[[], object],
        *,
        pin_factory: Factory | None = None,
        bounce_seconds: float | None = BOUNCE_SECONDS,
    ) -> None:
        library = import_gpiozero()
        self.pin = pin
        self._on_press = on_press
        self._since = datetime.now(UTC)
        self._failure: str | None = None
        self._device: gpiozero.Button | None = None
        try:
            self._device = library.Button(
                pin, pull_up=True, bounce_time=bounce_seconds, pin_factory=pin_factory
            )
        except Exception as error:  # whatever the pin library raises: gpiozero's, lgpio's
            self._failure = f"cannot set up pin {pin}: {type(error).__name__}: {error}"
            logger.warning("GPIO button: %s", self._failure)
            return
        self._device.when_pressed = self._pressed

    def _pressed(self) -> None:
        try:
            self._on_press()
        except Exception:  # the callback's bug must not end gpiozero's event thread
            logger.exception("GPIO button on pin %s: the press handler failed", self.pin)

    def health(self) -> SignalsHealth:
        """Ok while the pin is set up; failing, saying why, when it could not be."""
        if self._failure is not None:
            return SignalsHealth("failing", self._since, self._failure)
        return SignalsHealth("ok", self._since, None)

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
