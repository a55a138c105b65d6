"""A serial GA 467 SAM module (China 2nd-generation ID cards) through pyserial, kept alive.

Two layers, and which one raises what:

- The commands (transact, sam_id, find_card, select_card, read_base_info) raise. ReaderError
  and its subclasses mean the module or its port failed: ReaderUnavailable (the port cannot be
  opened, or went away: unplugged; the port is closed and the next command reopens it),
  ReaderTimeout (no whole answer in time: a silent module, or an answer cut off), and
  ReaderProtocolError (an answer garbled twice, the module reporting a checksum or length error
  twice, or a status that means the module itself is at fault, such as a failed self-test).
  CardReadError means a card was found but could not be read: select failed, read failed, an
  authentication failure, the card taken away, or text that is not a card's. A corrupt answer
  and a checksum or length error reported by the module are retried once, inside transact.
- read_card(timeout), for a scan loop, never raises a ReaderError: it returns the card, or
  None when no card was presented or the reader failed, and tells the reader's health in
  status (ok / failing / absent, and since when), logging one warning per outage. It raises
  CardReadError only, as that is an answer for the person at the reader ("present your card
  again"), not a fault of the kiosk.

Nothing personal is logged: no card text, no frame bytes; errors carry status names only.
"""

from __future__ import annotations

import contextlib
import logging
import termios
import threading
import time
from dataclasses import dataclass
from typing import Literal

import serial

from hardware.closing import Closing
from hardware.idcard.ga467 import (
    AUTH_FAILURES,
    DEFAULT_BAUDRATE,
    MIN_RESPONSE_LENGTH,
    CardData,
    Command,
    FrameParser,
    ProtocolError,
    Response,
    SamId,
    Status,
    build_request,
    parse_base_info,
    parse_response,
    status_text,
)

logger = logging.getLogger(__name__)

# How long one read of the port may block: the answer deadline is checked this often.
_READ_SLICE = 0.05
# Statuses that are about the card presented, after a card was found.
_CARD_STATUSES = AUTH_FAILURES | {Status.NO_CARD, Status.SELECT_FAILED, Status.READ_FAILED}
# Statuses after which the same command is sent once more.
_RETRIED_STATUSES = frozenset({Status.CHECKSUM_ERROR, Status.LENGTH_ERROR})


class SamError(Exception):
    """Something the SAM reader reports; see ReaderError and CardReadError."""


class ReaderError(SamError):
    """The module or its port failed; read_card reports it in status instead of raising."""


class ReaderUnavailable(ReaderError):
    """The port cannot be opened, or went away (unplugged)."""


class ReaderTimeout(ReaderError):
    """No whole answer came in time: a silent module, or an answer cut off."""


class ReaderProtocolError(ReaderError):
    """Answers that make no sense, or a status meaning the module itself is at fault."""


class CardReadError(SamError):
    """A card was found but could not be read; status tells why (None: its data is not text)."""

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ReaderStatus:
    """The reader's health, for the agent to report.

    state: "ok" (answering, or not tried yet), "failing" (the port is open but the module did
    not answer properly), or "absent" (the port cannot be opened, or went away); since:
    time.monotonic() when it entered that state; last_error: the latest failure, kept after
    the reader recovers (None if it never failed).
    """

    state: Literal["ok", "failing", "absent"]
    since: float
    last_error: str | None


class SamReader(Closing):
    """A SAM module on a serial port (8N1), opened on first use and reopened after unplugs.

    timeout bounds the wait for each answer (read_timeout for read base info, which takes the
    module longer); poll_interval is the pause between looks for a card within read_card's
    timeout. Thread-safe: one command at a time.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUDRATE,
        timeout: float = 1.0,
        *,
        read_timeout: float = 3.0,
        poll_interval: float = 0.2,
    ) -> None:
        if timeout <= 0 or read_timeout <= 0:
            raise ValueError(f"timeouts must be positive, not {timeout} and {read_timeout}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval}")
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.read_timeout = read_timeout
        self.poll_interval = poll_interval
        self._serial: serial.Serial | None = None
        self._lock = threading.RLock()
        self._status = ReaderStatus("ok", time.monotonic(), None)

    @property
    def status(self) -> ReaderStatus:
        """The reader's health now."""
        return self._status

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open the port if it is closed (ReaderUnavailable if it cannot be)."""
        with self._lock:
            if self._serial is not None:
                return
            try:
                self._serial = serial.Serial(
                    self.port,
                    self.baudrate,
                    bytesize=serial.EIGHTBITS,
                    parity=serial.PARITY_NONE,
                    stopbits=serial.STOPBITS_ONE,
                    timeout=_READ_SLICE,
                    write_timeout=self.timeout,
                    exclusive=True,
                )
            except OSError as error:
                raise ReaderUnavailable(f"{self.port}: cannot open: {error}") from error

    def close(self) -> None:
        """Close the port; the next command opens it again. Idempotent."""
        with self._lock:
            port, self._serial = self._serial, None
            if port is not None:
                with contextlib.suppress(OSError, termios.error):
                    port.close()

    # --- commands: these raise --------------------------------------------------------

    def transact(self, command: Command, timeout: float | None = None) -> Response:
        """Send command and return the module's answer, whatever its status.

        A garbled answer, or a checksum or length error reported by the module, is retried
        once; raises ReaderError subclasses.
        """
        wait = self.timeout if timeout is None else timeout
        with self._lock:
            self.open()
            assert self._serial is not None
            problem = ""
            for _attempt in range(2):
                try:
                    response = self._exchange(self._serial, command, wait)
                except ProtocolError as error:
                    problem = f"garbled answer ({error})"
                else:
                    if response.status not in _RETRIED_STATUSES:
                        return response
                    problem = f"the module reported {status_text(response.sw3)}"
                logger.debug("%s: %s", command.name, problem)
            raise ReaderProtocolError(f"{command.name}: {problem}, again after a retry")

    def sam_id(self) -> SamId:
        """The module's id."""
        response = self.transact(Command.SAM_ID)
        if response.status is not Status.OK:
            raise self._unexpected(Command.SAM_ID, response, card_level=False)
        try:
            return SamId.from_data(response.data)
        except ProtocolError as error:
            raise ReaderProtocolError(f"SAM_ID: {error}") from error

    def find_card(self) -> bool:
        """Whether a card is on the reader (the first step of a read)."""
        response = self.transact(Command.FIND_CARD)
        if response.status is Status.CARD_FOUND:
            return True
        if response.status is Status.NO_CARD:
            return False
        raise self._unexpected(Command.FIND_CARD, response, card_level=False)

    def select_card(self) -> None:
        """Select the card found (CardReadError if it cannot be: taken away, for one)."""
        response = self.transact(Command.SELECT_CARD)
        if response.status is not Status.OK:
            raise self._unexpected(Command.SELECT_CARD, response, card_level=True)

    def read_base_info(self) -> CardData:
        """Read the selected card's text and photo."""
        response = self.transact(Command.READ_BASE_INFO, self.read_timeout)
        if response.status is not Status.OK:
            raise self._unexpected(Command.READ_BASE_INFO, response, card_level=True)
        try:
            return parse_base_info(response.data)
        except ProtocolError as error:
            raise CardReadError(f"READ_BASE_INFO: the card's data is unreadable: {error}") from None

    # --- the scan loop's call: this reports ----------------------------------------------

    def read_card(self, timeout: float = 0.0) -> CardData | None:
        """Find, select and read a card, looking for one until timeout seconds have passed.

        Returns None when no card came or the reader failed (see status); raises CardReadError
        when a card was found but could not be read. timeout 0 looks once.
        """
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout}")
        deadline = time.monotonic() + timeout
        while True:
            card = self._read_once()
            if card is not None:
                return card
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.poll_interval, remaining))

    def _read_once(self) -> CardData | None:
        try:
            if not self.find_card():
                card = None
            else:
                self.select_card()
                card = self.read_base_info()
        except CardReadError as error:
            self._set_ok()
            logger.info("%s: a card was presented but not read: %s", self.port, error)
            raise
        except ReaderError as error:
            self._set_failed(error)
            return None
        self._set_ok()
        return card

    def _set_ok(self) -> None:
        status = self._status
        if status.state != "ok":
            now = time.monotonic()
            logger.info("%s: reader back after %.1f s", self.port, now - status.since)
            self._status = ReaderStatus("ok", now, status.last_error)

    def _set_failed(self, error: ReaderError) -> None:
        state: Literal["failing", "absent"] = (
            "absent" if isinstance(error, ReaderUnavailable) else "failing"
        )
        status = self._status
        if status.state == state:
            self._status = ReaderStatus(state, status.since, str(error))
            return
        if status.state == "ok":
            logger.warning("%s: reader %s: %s; trying again on each read", self.port, state, error)
        else:
            logger.info("%s: reader now %s: %s", self.port, state, error)
        self._status = ReaderStatus(state, time.monotonic(), str(error))

    # --- I/O --------------------------------------------------------------------------

    def _exchange(self, port: serial.Serial, command: Command, timeout: float) -> Response:
        """One request and its answer; ProtocolError for a garbled one (I/O errors translated)."""
        parser = FrameParser(min_length=MIN_RESPONSE_LENGTH)
        try:
            port.reset_input_buffer()  # what a late answer to an earlier request left
            port.write(build_request(command))
            deadline = time.monotonic() + timeout
            while True:
                payload = parser.next_frame()
                if payload is not None:
                    return parse_response(payload)
                if time.monotonic() >= deadline:
                    raise ReaderTimeout(_timeout_message(command, parser, timeout))
                parser.feed(port.read(max(1, port.in_waiting)))
        except serial.SerialTimeoutException as error:
            raise ReaderTimeout(f"{command.name}: the port took no request: {error}") from error
        except (OSError, termios.error) as error:
            self.close()
            raise ReaderUnavailable(f"{self.port}: lost: {error}") from error

    @staticmethod
    def _unexpected(command: Command, response: Response, *, card_level: bool) -> SamError:
        message = f"{command.name}: {status_text(response.sw3)}"
        status = response.status
        if card_level and status in _CARD_STATUSES:
            return CardReadError(message, status)
        return ReaderProtocolError(message)


def _timeout_message(command: Command, parser: FrameParser, timeout: float) -> str:
    expected = parser.expected_size
    if expected is not None:
        return (
            f"{command.name}: answer cut off, {parser.buffered} of {expected} bytes"
            f" within {timeout:g} s"
        )
    stray = parser.discarded + parser.buffered
    if stray:
        return f"{command.name}: no answer within {timeout:g} s, only {stray} stray bytes"
    return f"{command.name}: no answer within {timeout:g} s"
