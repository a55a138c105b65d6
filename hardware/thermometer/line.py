"""A plain text line per reading, for do-it-yourself bridges (an MCU printing `T=36.7`).

What a line may hold (a line ends at LF or CR, so CRLF works; blank lines are ignored):

    [spaces] [key [spaces] (= or :) [spaces]] number [[space] unit] [spaces]

    key      T or TEMP, any case                          T=36.7  temp: 36.7
    number   optional minus, 1-3 digits, optionally a     36.7  36  36.71  -4.5
             point and 1-3 digits (ASCII digits only)
    unit     C or °C (UTF-8 degree sign), any case        T=36.7C  36.7 °C

Anything else is refused with LineError: other words, several values on a line, Fahrenheit,
exponents, a `nan` or `inf` (what Arduino's print writes when the sensor read failed), text
that is not UTF-8, and any line longer than 32 bytes (the rest of it is skipped up to the
next line end). The first line after the port opens is skipped, as it may be the tail of a
line whose start was sent before we listened ("6.7" of "T=36.7"). Unlike the other two
protocols a line has no checksum: a damaged digit can give a wrong value, so a bridge should
run at a low baud rate over a short cable.
"""

import math
import re

from hardware.thermometer.protocol import Decoded, ProtocolError, ReadingDecoder

MAX_LINE = 32  # bytes in a line, not counting its end
LINE_PERIOD = 0.5  # seconds between lines, as the emulator sends them

_LINE = re.compile(
    r"[ \t]*(?:(?:temp|t)[ \t]*[=:][ \t]*)?(-?[0-9]{1,3}(?:\.[0-9]{1,3})?)[ \t]*(?:°?c)?[ \t]*",
    re.IGNORECASE | re.ASCII,
)
_NOT_A_NUMBER = re.compile(r"[ \t]*(?:(?:temp|t)[ \t]*[=:][ \t]*)?[-+]?(nan|inf|ovf)", re.I | re.A)
_LINE_END = re.compile(rb"[\r\n]")


class LineError(ProtocolError):
    """A line that is not a temperature in one of the accepted forms."""


def format_line(
    celsius: float, *, key: str = "T=", decimals: int = 1, unit: str = "", newline: str = "\r\n"
) -> bytes:
    """A line as a bridge prints it; nan and inf as Arduino's print writes them."""
    if math.isnan(celsius):
        number = "nan"
    elif math.isinf(celsius):
        number = "inf" if celsius > 0 else "-inf"
    else:
        number = f"{celsius:.{decimals}f}"
    return f"{key}{number}{unit}{newline}".encode()


def parse_line(line: bytes) -> float:
    """The temperature in one line (without its end), or LineError saying why not."""
    if len(line) > MAX_LINE:
        raise LineError(f"line longer than {MAX_LINE} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("line is not UTF-8 text") from None
    match = _LINE.fullmatch(text)
    if match is None:
        bad = _NOT_A_NUMBER.match(text)
        if bad is not None:
            raise LineError(f"device reported {bad.group(1).lower()}: its sensor read failed")
        raise LineError(f"not a temperature line: {text[:MAX_LINE]!r}")
    return float(match.group(1))


def scan_lines(buffer: bytes, synced: bool) -> tuple[list[Decoded], bytes, bool]:
    """Find lines in received bytes.

    synced says whether buffer starts at the start of a line; while it does not, bytes are
    skipped up to the next line end. Returns the temperatures and rejected lines found, the
    bytes to keep (a line not yet ended, at most MAX_LINE of them) and whether they start a
    line. Never raises.
    """
    found: list[Decoded] = []
    start = 0
    while True:
        end = _LINE_END.search(buffer, start)
        if end is None:
            rest = buffer[start:]
            if not synced:
                return found, b"", False
            if len(rest) > MAX_LINE:
                found.append(LineError(f"line longer than {MAX_LINE} bytes"))
                return found, b"", False
            return found, bytes(rest), True
        line = buffer[start : end.start()]
        if synced and line.strip(b" \t"):
            try:
                found.append(parse_line(line))
            except ProtocolError as error:
                found.append(error)
        synced = True
        start = end.end()


class LineDecoder(ReadingDecoder):
    """Reads the lines a bridge prints; the first, perhaps partial, line is skipped."""

    name = "line"

    def __init__(self) -> None:
        self._buffer = b""
        self._synced = False

    def feed(self, data: bytes) -> list[Decoded]:
        found, self._buffer, self._synced = scan_lines(self._buffer + data, self._synced)
        return found

    def reset(self) -> None:
        self._buffer = b""
        self._synced = False
