"""The agent's ID-card reader thread: a GA 467 SAM module polled, each card handed on once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date

from device.report import component_state, monotonic_to_utc
from hardware.idcard.ga467 import Validity
from hardware.idcard.samreader import CardReadError, SamReader
from shared.idnumber import is_valid_id_number
from shared.messages import ComponentState
from shared.sealed import CardIdentity, DocumentType
from shared.verification import CardValidity

log = logging.getLogger(__name__)
LOOK_SECONDS = 0.5  # each look for a card waits at most this long, so stop() is prompt
COMPONENT = "idcard"
RESIDENT_CARD_ISSUER = "CHN"
CARD_VALIDITY = {
    Validity.VALID: CardValidity.VALID,
    Validity.EXPIRED: CardValidity.EXPIRED,
    Validity.NOT_YET_VALID: CardValidity.NOT_YET_VALID,
    Validity.UNREADABLE: CardValidity.UNREADABLE,
}
# Told of each card read: who it names, where it was read, whether it is in date.
OnCard = Callable[[CardIdentity, str, CardValidity], object]


class SamCardReader:
    """Reads resident identity cards and hands each one to `on_card` once while it lies there.

    A card left on the module is not handed on again until the module has seen no card; a card
    that cannot be read, a silent or unplugged module, are logged (never the number) and shown
    in `component()`, and the loop goes on.
    """

    def __init__(
        self,
        reader: SamReader,
        on_card: OnCard,
        *,
        today: Callable[[], date] = date.today,  # the local day, as the card's dates are
    ) -> None:
        self._reader = reader
        self._on_card = on_card
        self._today = today
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lying_there: str | None = None  # the number of the card still on the module
        self.origin = f"sam:{reader.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="card-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.look_once()
            except Exception:  # a bug here must not stop the kiosk from reading cards
                log.exception("card reader: unexpected error; going on")
                self._stop.wait(LOOK_SECONDS)

    def look_once(self) -> CardIdentity | None:
        """Look for a card for up to LOOK_SECONDS; hand on a new one and return it."""
        try:
            card = self._reader.read_card(LOOK_SECONDS)
        except CardReadError as error:
            log.info("card reader: a card was presented but not read: %s", error)
            return None
        if card is None:
            if self._reader.status.state == "ok":
                self._lying_there = None  # the module answered: no card on it now
            else:
                self._stop.wait(LOOK_SECONDS)  # the module failed at once: do not spin
            return None
        number = card.text.id_number
        if number == self._lying_there:
            return None
        self._lying_there = number
        if not is_valid_id_number(number):
            log.warning("card reader: the card's ID number is malformed; not used")
            return None
        today = self._today()
        for problem in card.text.problems(today):
            log.info("card reader: %s", problem)
        identity = CardIdentity.of(DocumentType.CN_ID, RESIDENT_CARD_ISSUER, number)
        self._on_card(identity, self.origin, CARD_VALIDITY[card.text.validity_on(today)])
        return identity

    def component(self) -> ComponentState:
        """The reader's health for the device report."""
        status = self._reader.status
        detail = status.last_error if status.state != "ok" else None
        return component_state(status.state, monotonic_to_utc(status.since), detail)
