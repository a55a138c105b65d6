"""PC/SC readers through pyscard: discovery by name, card events, ATR, UID, eMRTD reading.

PcscReader is one reader, chosen by a substring of its name (None: the first reader). It
keeps a PC/SC context and makes a new one after pcscd went away (stopped, restarted, the
reader unplugged), so a kiosk's long-lived reader object recovers by itself: the call that
meets the outage raises ReaderUnavailable, a later one works again once pcscd is back.

Every wait is bounded: wait_for_card, wait_for_removal and next_event take a timeout and
use SCardGetStatusChange, which pcscd ends early when it stops. PC/SC results are
translated to the errors of errors.py in one place (_check):

- service gone, reader gone or unknown: ReaderUnavailable (ReaderNotFound when no reader
  matches the name);
- card removed, reset, mute, a transmission that failed or came back empty: CardRemoved;
- anything else: ReaderError with pcsc-lite's message.

pyscard is imported on first use, so the rest of hardware.smartcard works without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from cryptography import x509

from hardware.closing import Closing
from hardware.smartcard.apdu import GET_UID, SW_OK, ResponseApdu
from hardware.smartcard.emrtd import Document, read_emrtd
from hardware.smartcard.errors import (
    CardError,
    CardRemoved,
    CardStatusError,
    NoCard,
    ReaderError,
    ReaderNotFound,
    ReaderUnavailable,
    status_text,
)
from hardware.smartcard.mrz import MrzInformation

logger = logging.getLogger(__name__)

_scard: ModuleType | None = None

# Codes of pcsc-lite (winscard.h / pcsclite.h): stable numbers, so no pyscard import needed.
_SERVICE_GONE = {
    0x8010001D,  # SCARD_E_NO_SERVICE
    0x8010001E,  # SCARD_E_SERVICE_STOPPED
    0x80100017,  # SCARD_E_READER_UNAVAILABLE
    0x80100009,  # SCARD_E_UNKNOWN_READER
    0x8010002E,  # SCARD_E_NO_READERS_AVAILABLE
    0x80100003,  # SCARD_E_INVALID_HANDLE (a context or card handle of a pcscd now gone)
    0x80100013,  # SCARD_F_COMM_ERROR
    0x8010002F,  # SCARD_E_COMM_DATA_LOST
}
_CARD_GONE = {
    0x80100069,  # SCARD_W_REMOVED_CARD
    0x8010000C,  # SCARD_E_NO_SMARTCARD
    0x80100068,  # SCARD_W_RESET_CARD
    0x80100066,  # SCARD_W_UNRESPONSIVE_CARD
    0x80100067,  # SCARD_W_UNPOWERED_CARD
    0x80100016,  # SCARD_E_NOT_TRANSACTED
    0x8010000F,  # SCARD_E_PROTO_MISMATCH
}
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
# An APDU chain of GET RESPONSE (61xx) is followed at most this many times.
_MAX_GET_RESPONSE = 64
CARD_REMOVED = "the card was taken away (or stopped answering) before the read finished"


def _pyscard() -> ModuleType:
    global _scard  # noqa: PLW0603 - imported once, on first use
    if _scard is None:
        try:
            from smartcard import scard
        except ImportError as error:
            raise ReaderUnavailable(
                f"pyscard is not installed or cannot load libpcsclite ({error})"
            ) from None
        _scard = scard
    return _scard


@dataclass(frozen=True)
class CardEvent:
    """A card put on (inserted) or taken off (removed) a reader; atr is empty on removal."""

    kind: Literal["inserted", "removed"]
    reader: str
    atr: bytes = b""


class _Context:
    """A PC/SC context, made on first use and again after pcscd went away."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.generation = 0  # how many contexts were made: a new one means pcscd restarted

    def get(self) -> Any:
        scard = _pyscard()
        if self.handle is None:
            result, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if result != scard.SCARD_S_SUCCESS:
                raise ReaderUnavailable(
                    "the PC/SC service (pcscd) is not running: " + _message(result)
                )
            self.handle = handle
            self.generation += 1
        return self.handle

    def drop(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            try:
                _pyscard().SCardReleaseContext(handle)
            except Exception:  # a context of a dead pcscd may not release
                logger.debug("releasing a stale PC/SC context failed")


def _message(result: int) -> str:
    try:
        return f"{_pyscard().SCardGetErrorMessage(result)} (0x{result & 0xFFFFFFFF:08X})"
    except ReaderUnavailable:
        return f"0x{result & 0xFFFFFFFF:08X}"


def list_readers() -> list[str]:
    """The names of the readers pcscd knows now; raises ReaderUnavailable without pcscd."""
    context = _Context()
    try:
        return _list(context)
    finally:
        context.drop()


def _list(context: _Context) -> list[str]:
    scard = _pyscard()
    result, readers = scard.SCardListReaders(context.get(), [])
    if result == 0x8010002E:  # SCARD_E_NO_READERS_AVAILABLE: an empty list, not an error
        return []
    _check(result, "listing readers", context)
    return list(readers)


def _check(result: int, what: str, context: _Context | None = None) -> None:
    """Translate a PC/SC result into the errors of errors.py (the one place that does)."""
    result &= 0xFFFFFFFF
    if result == 0:
        return
    if result in _SERVICE_GONE:
        if context is not None:
            context.drop()
        raise ReaderUnavailable(f"{what}: the reader or pcscd went away: {_message(result)}")
    if result in _CARD_GONE:
        raise CardRemoved(f"{what}: {CARD_REMOVED}")
    if result == SCARD_E_SHARING_VIOLATION:
        raise ReaderError(f"{what}: another program holds the card")
    if context is not None and _service_gone(context):
        # A pcscd shutting down can end a pending call with odd codes (0x8010006A,
        # "access denied", was seen): an unexplained error is an outage if pcscd is gone.
        context.drop()
        raise ReaderUnavailable(f"{what}: the reader or pcscd went away: {_message(result)}")
    raise ReaderError(f"{what}: {_message(result)}")


def _service_gone(context: _Context, tries: int = 5) -> bool:
    """Whether pcscd stopped answering on this context (asked a few times, 50 ms apart)."""
    if context.handle is None:
        return False
    scard = _pyscard()
    for attempt in range(tries):
        if attempt:
            time.sleep(0.05)  # a pcscd that is shutting down answers for a moment more
        result, _ = scard.SCardListReaders(context.handle, [])
        if result & 0xFFFFFFFF in _SERVICE_GONE:
            return True
    return False


class PcscReader(Closing):
    """One PC/SC reader, found by its name or a part of it (case-insensitive; the first match).

    The name is looked up again on every call, so a reader unplugged and plugged back in
    (or a pcscd restarted) is found again.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._context = _Context()
        self._state: int | None = None  # for next_event: the state last seen
        self._present: bool | None = None
        self._generation = 0  # the context generation _state belongs to

    def close(self) -> None:
        """Release the PC/SC context."""
        self._context.drop()

    def resolve(self) -> str:
        """The full name of the reader; raises ReaderNotFound, naming the readers there are."""
        readers = _list(self._context)
        if self.name is None:
            if readers:
                return readers[0]
            raise ReaderNotFound("no smart-card reader is connected")
        wanted = self.name.lower()
        exact = [reader for reader in readers if reader.lower() == wanted]
        for reader in exact or readers:
            if wanted in reader.lower():
                return reader
        there = ", ".join(repr(r) for r in readers) or "none"
        raise ReaderNotFound(f"no reader named like {self.name!r} (readers: {there})")

    def _status(self, reader: str, state: int, timeout: float) -> tuple[int, bytes]:
        scard = _pyscard()
        milliseconds = max(0, int(timeout * 1000))
        result, states = scard.SCardGetStatusChange(
            self._context.get(), milliseconds, [(reader, state)]
        )
        if result & 0xFFFFFFFF == SCARD_E_TIMEOUT:
            return state, b""
        _check(result, f"watching {reader}", self._context)
        _, event, atr = states[0]
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            self._context.drop()
            raise ReaderUnavailable(f"the reader {reader!r} is gone (unplugged?)")
        return event & ~scard.SCARD_STATE_CHANGED, bytes(atr)

    def _present_in(self, event: int) -> bool:
        scard = _pyscard()
        return bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE

    def _wait(self, present: bool, timeout: float) -> bytes:
        reader = self.resolve()
        deadline = time.monotonic() + timeout
        state, atr = self._status(reader, _pyscard().SCARD_STATE_UNAWARE, 0)
        while self._present_in(state) != present:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if present:
                    raise NoCard(f"no card on {reader} within {timeout:g} s")
                raise CardError(f"the card is still on {reader} after {timeout:g} s")
            state, atr = self._status(reader, state, remaining)
        return atr

    def wait_for_card(self, timeout: float) -> bytes:
        """Wait until a card is on the reader; returns its ATR; raises NoCard on timeout."""
        return self._wait(True, timeout)

    def wait_for_removal(self, timeout: float) -> None:
        """Wait until the reader is empty; raises CardError if the card is still there."""
        self._wait(False, timeout)

    def next_event(self, timeout: float) -> CardEvent | None:
        """The next insertion or removal within timeout, or None.

        The first call reports a card already on the reader as inserted, so a card that is
        there when a kiosk starts gets read.
        """
        reader = self.resolve()
        deadline = time.monotonic() + timeout
        scard = _pyscard()
        if self._generation != self._context.generation:  # a new pcscd: start afresh
            self._state, self._generation = None, self._context.generation
        if self._state is None:
            self._state, atr = self._status(reader, scard.SCARD_STATE_UNAWARE, 0)
            self._present = self._present_in(self._state)
            if self._present:
                return CardEvent("inserted", reader, atr)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                state, atr = self._status(reader, self._state, remaining)
            except ReaderUnavailable:
                self._state = self._present = None
                raise
            self._state = state
            present = self._present_in(state)
            if present != self._present:
                self._present = present
                return CardEvent("inserted" if present else "removed", reader, atr)

    def connect(self, *, exclusive: bool = False) -> CardConnection:
        """Connect to the card on the reader (T=0 or T=1); raises NoCard when there is none."""
        scard = _pyscard()
        reader = self.resolve()
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        result, handle, protocol = scard.SCardConnect(
            self._context.get(),
            reader,
            share,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if result & 0xFFFFFFFF in (0x8010000C, 0x80100069):  # no card, removed card
            raise NoCard(f"no card on {reader}")
        _check(result, f"connecting to the card on {reader}", self._context)
        return CardConnection(self, reader, handle, protocol)

    def read_uid(self, timeout: float = 0.0) -> bytes:
        """The contactless UID of the card on the reader (waiting up to timeout for one)."""
        if timeout > 0:
            self.wait_for_card(timeout)
        with self.connect() as card:
            return card.uid()

    def read_document(
        self,
        information: MrzInformation | str,
        *,
        timeout: float = 0.0,
        read_dg2: bool = False,
        csca: Sequence[x509.Certificate] | None = None,
        passive_authentication: bool = True,
    ) -> Document:
        """Read an eMRTD on the reader with BAC from the MRZ information (see read_emrtd)."""
        if isinstance(information, str):
            information = MrzInformation.parse(information)
        if timeout > 0:
            self.wait_for_card(timeout)
        with self.connect(exclusive=True) as card:
            return read_emrtd(
                card.transmit,
                information,
                read_dg2=read_dg2,
                csca=csca,
                passive_authentication=passive_authentication,
            )


class CardConnection(Closing):
    """A connection to the card on a reader: ATR, transmit, UID; reset when closed."""

    def __init__(self, owner: PcscReader, reader: str, handle: Any, protocol: int) -> None:
        self._owner = owner
        self.reader = reader
        self._handle = handle
        self._protocol = protocol

    def close(self, *, reset: bool = True) -> None:
        """Disconnect; reset the card (ending any secure-messaging session) unless told not."""
        if self._handle is None:
            return
        scard = _pyscard()
        handle, self._handle = self._handle, None
        disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
        result = scard.SCardDisconnect(handle, disposition)
        if result:
            logger.debug("disconnect: %s", _message(result))

    @property
    def atr(self) -> bytes:
        """The card's ATR."""
        scard = _pyscard()
        result, _, _, _, atr = scard.SCardStatus(self._handle)
        _check(result, f"reading the ATR on {self.reader}", self._owner._context)
        return bytes(atr)

    def transmit(self, command: bytes) -> bytes:
        """Send a command APDU, return the response APDU (following 61xx GET RESPONSE)."""
        response = self._transmit_once(command)
        data = b""
        for _ in range(_MAX_GET_RESPONSE):
            if response[-2] != 0x61:
                break
            data += response[:-2]
            response = self._transmit_once(bytes((command[0] & 0x03, 0xC0, 0, 0, response[-1])))
        return data + response

    def _transmit_once(self, command: bytes) -> bytes:
        scard = _pyscard()
        if self._handle is None:
            raise CardError("the card connection is closed")
        pci = (
            scard.SCARD_PCI_T1 if self._protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        )
        result, response = scard.SCardTransmit(self._handle, pci, list(command))
        _check(result, f"sending a command to the card on {self.reader}", self._owner._context)
        if len(response) < 2:  # vpcd and some drivers: an empty answer when the card left
            raise CardRemoved(CARD_REMOVED)
        return bytes(response)

    def uid(self) -> bytes:
        """The UID the contactless reader reports (GET DATA, FF CA 00 00 00)."""
        response = ResponseApdu.parse(self.transmit(GET_UID))
        if response.sw != SW_OK or not response.data:
            raise CardStatusError(
                response.sw,
                "GET DATA (UID)",
                f"the reader gave no UID ({status_text(response.sw)}): a contact card, "
                "or a reader without the PC/SC contactless commands",
            )
        return response.data


def read_document(
    reader: str | None,
    information: MrzInformation | str,
    *,
    timeout: float = 5.0,
    read_dg2: bool = False,
    csca: Sequence[x509.Certificate] | None = None,
    passive_authentication: bool = True,
) -> Document:
    """Wait up to timeout for a card on the reader named like `reader`, read it as an eMRTD."""
    with PcscReader(reader) as pcsc:
        return pcsc.read_document(
            information,
            timeout=timeout,
            read_dg2=read_dg2,
            csca=csca,
            passive_authentication=passive_authentication,
        )
