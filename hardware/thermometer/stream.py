"""The streaming forehead-module frame: `AA 55 06 <degrees> <tenths> <checksum>`, unasked.

The module sends one 6-byte frame about every 500 ms:

    0xAA 0x55   header
    0x06        frame length, header and checksum included
    degrees     whole degrees Celsius, 0..255
    tenths      tenths of a degree, 0..9
    checksum    low byte of the sum of the five bytes before it

A decoder hunts for the header, then checks the length byte, the tenths digit and the
checksum; a frame failing any of them is reported and the hunt goes on from the byte after
its first, so a real frame right behind garbage is still found. The checksum catches any
single damaged byte in a frame.
"""

import math

from hardware.thermometer.protocol import ChecksumError, Decoded, ProtocolError, ReadingDecoder

HEADER = b"\xaa\x55"
FRAME_SIZE = 6
FRAME_PERIOD = 0.5  # seconds between frames, as the module sends them


class StreamFrameError(ProtocolError):
    """A streaming frame with a good header but a wrong length byte or tenths digit."""


def checksum(head: bytes) -> int:
    """The checksum byte for the first five bytes of a frame: the low byte of their sum."""
    return sum(head) & 0xFF


def build_frame(celsius: float) -> bytes:
    """The frame for a temperature, rounded to the tenth (0.0 to 255.9 °C)."""
    tenths = round(celsius * 10) if math.isfinite(celsius) else -1
    if not 0 <= tenths <= 2559:
        raise ValueError(f"{celsius} °C cannot be sent in a stream frame (0.0 to 255.9)")
    head = HEADER + bytes([FRAME_SIZE, tenths // 10, tenths % 10])
    return head + bytes([checksum(head)])


def parse_frame(frame: bytes) -> float:
    """The temperature in one whole frame, or ProtocolError saying what is wrong with it."""
    if len(frame) != FRAME_SIZE:
        raise StreamFrameError(f"a frame is {FRAME_SIZE} bytes, not {len(frame)}")
    if frame[:2] != HEADER:
        raise StreamFrameError(f"frame does not start with AA 55: {frame[:2].hex(' ')}")
    if frame[2] != FRAME_SIZE:
        raise StreamFrameError(f"frame length byte is 0x{frame[2]:02X}, not 0x06")
    if frame[5] != checksum(frame[:5]):
        raise ChecksumError(
            f"frame checksum is 0x{frame[5]:02X}, its bytes sum to 0x{checksum(frame[:5]):02X}"
        )
    if frame[4] > 9:
        raise StreamFrameError(f"tenths digit is {frame[4]}, not 0..9")
    return (frame[3] * 10 + frame[4]) / 10


def scan_frames(buffer: bytes) -> tuple[list[Decoded], bytes]:
    """Find frames in received bytes, skipping garbage.

    Returns the temperatures and rejected frames found, in order, and the bytes to keep for
    the next call (at most a frame's worth). Never raises.
    """
    found: list[Decoded] = []
    start = 0
    while True:
        start = buffer.find(HEADER, start)
        if start < 0:
            # Keep a last 0xAA: it may be the first half of a header still on its way.
            keep = buffer[-1:] if buffer[-1:] == HEADER[:1] else b""
            return found, bytes(keep)
        if len(buffer) - start < FRAME_SIZE:
            return found, bytes(buffer[start:])
        try:
            found.append(parse_frame(buffer[start : start + FRAME_SIZE]))
        except ProtocolError as error:
            found.append(error)
            start += 1
        else:
            start += FRAME_SIZE


class StreamDecoder(ReadingDecoder):
    """Reads the frames a forehead module streams."""

    name = "stream"

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Decoded]:
        found, self._buffer = scan_frames(self._buffer + data)
        return found

    def reset(self) -> None:
        self._buffer = b""
