"""The errors of the smart-card stack, in one place: what a reader, a card or a document did wrong.

Every message is written for the operator at the reader or the technician at the kiosk, and
none carries personal data: no document number, name, date or MRZ text, only status words,
file names and lengths. Two families:

- ReaderError: the reader or the PC/SC service failed (ReaderNotFound, ReaderUnavailable).
  Nothing about the person in front of the kiosk; the kiosk needs attention.
- CardError: a card was presented but could not be read as expected (NoCard, CardRemoved,
  AccessDenied, SecureMessagingError, CardStatusError and its kinds, DocumentError). An
  answer for the person: present the card again, check the MRZ entered.
"""

from __future__ import annotations


class SmartcardError(Exception):
    """Base of everything the smart-card stack raises on purpose."""


class ReaderError(SmartcardError):
    """The reader or the PC/SC service failed."""


class ReaderUnavailable(ReaderError):
    """pcscd is not running, or stopped, or the reader was unplugged; the next call retries."""


class ReaderNotFound(ReaderUnavailable):
    """No reader has a name that matches; the message lists the readers there are."""


class CardError(SmartcardError):
    """A card was presented but could not be read as expected."""


class NoCard(CardError):
    """No card was presented within the timeout."""


class CardRemoved(CardError):
    """The card was taken away, or stopped answering, before the read finished."""


class AccessDenied(CardError):
    """Basic Access Control refused: the MRZ information does not match this document."""


class SecureMessagingError(CardError):
    """A secure-messaging response failed its MAC check or lacks a data object; read aborted."""


class DocumentError(CardError):
    """The card's files are not a well-formed ICAO 9303 LDS (EF.COM, DG1, EF.SOD)."""


# Status words (ISO/IEC 7816-4) an eMRTD may answer with, and what they mean to a reader.
STATUS_MEANINGS: dict[int, str] = {
    0x6282: "end of file reached before the requested length",
    0x6300: "authentication failed",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6882: "secure messaging not supported",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "reference data not usable",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "secure messaging data objects incorrect",
    0x6A80: "incorrect parameters in the data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A86: "incorrect parameters P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters (offset outside the file)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def status_text(sw: int) -> str:
    """A status word and its meaning for a message: "6A82 (file or application not found)"."""
    meaning = STATUS_MEANINGS.get(sw)
    if meaning is None and sw >> 8 == 0x6C:
        meaning = f"wrong Le, {sw & 0xFF} bytes available"
    if meaning is None and sw >> 8 == 0x61:
        meaning = f"{sw & 0xFF} more bytes available"
    return f"{sw:04X} ({meaning})" if meaning else f"{sw:04X}"


class CardStatusError(CardError):
    """The card answered a command with a status word other than success.

    `sw` is the status word, `command` names the command ("SELECT EF.DG1", "READ BINARY").
    """

    def __init__(self, sw: int, command: str, message: str | None = None) -> None:
        self.sw = sw
        self.command = command
        super().__init__(message or f"{command}: the card answered {status_text(sw)}")


class FileNotFound(CardStatusError):
    """6A82: the file or application is not on this card."""


class SecurityNotSatisfied(CardStatusError):
    """6982: the card wants access control (or secure messaging) first."""


class SecureMessagingRejected(CardStatusError, SecureMessagingError):
    """6987 or 6988: the card found our secure-messaging objects wrong and ended the session."""


def status_error(sw: int, command: str) -> CardStatusError:
    """The CardStatusError subclass for a status word."""
    if sw == 0x6A82:
        return FileNotFound(sw, command)
    if sw == 0x6982:
        return SecurityNotSatisfied(sw, command)
    if sw in (0x6987, 0x6988):
        return SecureMessagingRejected(
            sw, command, f"{command}: the card rejected secure messaging, {status_text(sw)}"
        )
    return CardStatusError(sw, command)
