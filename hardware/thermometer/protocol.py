"""What every thermometer protocol shares: its error classes and the decoder the driver drives."""

import abc
from typing import ClassVar

PROTOCOL_NAMES = ("modbus", "stream", "line")


class ProtocolError(Exception):
    """Bytes from a thermometer that do not make a valid reading; the only error a parser raises."""


class ChecksumError(ProtocolError):
    """A frame whose checksum or CRC does not match its contents: damaged on the line."""


# What a decoder turns received bytes into: a temperature as the device reported it (degrees
# Celsius, before any calibration offset), or the reason a frame or line was rejected.
Decoded = float | ProtocolError


class ReadingDecoder(abc.ABC):
    """The driver's side of one protocol: what to send to ask for a reading, how to read replies.

    Bytes arrive in pieces of any size, with garbage before, among and inside frames; feed()
    keeps what it cannot decode yet, skips what can never be a frame, and never raises.
    """

    name: ClassVar[str]

    def request(self) -> bytes | None:
        """Bytes that ask the device for a reading, or None for a device that sends unasked."""
        return None

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[Decoded]:
        """Take received bytes; return the readings and rejected frames completed, in order."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget bytes held back: after the port was reopened or its input buffer flushed."""
