"""Modbus RTU, the subset a thermometer needs: read holding registers (function 0x03) and CRC.

Frames on the wire (RS-485; every multi-byte field big-endian except the CRC):

    request    address, 0x03, register (2), count (2), CRC (2)
    reply      address, 0x03, byte count (= 2 * count), count registers (2 each), CRC (2)
    exception  address, 0x83, exception code, CRC (2)

The CRC is CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF) over every byte
before it, sent low byte first. A temperature register holds a signed 16-bit number of tenths
of a degree Celsius (365 is 36.5 °C, 0xFF9C is -10.0 °C).

Real Modbus RTU marks the end of a frame by 3.5 characters of silence. Timing is not visible
through a pty or a USB adapter's buffering, so both sides here find frames by their shape and
CRC instead: they slide over the received bytes and take the first window that is a whole,
CRC-valid frame, skipping garbage byte by byte. A reply window is never longer than the reply
expected, so garbage before a real frame cannot make the decoder wait past it, and the echo of
our own request (a 2-wire adapter without echo suppression) is never mistaken for a reply.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hardware.thermometer.protocol import ChecksumError, Decoded, ProtocolError, ReadingDecoder

READ_HOLDING_REGISTERS = 0x03
EXCEPTION_FLAG = 0x80
MAX_REGISTERS = 125  # the most one read may ask for: 250 bytes of data in a 256-byte frame
MAX_ADDRESS = 247  # 1..247 are devices; 0 is broadcast, which no device answers
REQUEST_SIZE = 8

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
DEVICE_FAILURE = 0x04
EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of data: poly 0xA001 (reflected 0x8005), init 0xFFFF, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """The frame: body followed by its CRC, low byte first."""
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """Whether the last two bytes of frame are the CRC of the bytes before them."""
    return len(frame) >= 3 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


class ModbusError(ProtocolError):
    """A Modbus frame that is not the answer asked for: wrong shape, address or function."""


class ModbusExceptionReply(ModbusError):
    """The device understood the request and refused it with a Modbus exception code."""

    def __init__(self, address: int, function: int, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        hint = " (no such register: check the register number)" if code == 2 else ""
        super().__init__(
            f"device {address} refused function 0x{function:02X}: "
            f"Modbus exception {code} ({name}){hint}"
        )
        self.address = address
        self.function = function
        self.code = code


@dataclass(frozen=True)
class Request:
    """A request as a device receives it: any function, with its four data bytes."""

    address: int
    function: int
    data: bytes

    @property
    def register(self) -> int:
        return int.from_bytes(self.data[:2], "big")

    @property
    def count(self) -> int:
        return int.from_bytes(self.data[2:4], "big")


def _check_address(address: int) -> None:
    if not 1 <= address <= MAX_ADDRESS:
        raise ValueError(f"Modbus device address must be 1..{MAX_ADDRESS}, not {address}")


def _check_range(register: int, count: int) -> None:
    if not 0 <= register <= 0xFFFF:
        raise ValueError(f"Modbus register must be 0..65535, not {register}")
    if not 1 <= count <= MAX_REGISTERS or register + count > 0x10000:
        raise ValueError(f"cannot read {count} registers from {register}")


def build_read_request(address: int, register: int, count: int = 1) -> bytes:
    """The request for count holding registers from register on the device at address."""
    _check_address(address)
    _check_range(register, count)
    body = bytes([address, READ_HOLDING_REGISTERS])
    return with_crc(body + register.to_bytes(2, "big") + count.to_bytes(2, "big"))


def parse_request(frame: bytes) -> Request:
    """One whole 8-byte request frame (address, function, 4 data bytes, CRC)."""
    if len(frame) != REQUEST_SIZE:
        raise ModbusError(f"a request is {REQUEST_SIZE} bytes, not {len(frame)}")
    if not crc_ok(frame):
        raise ChecksumError("request CRC does not match")
    return Request(frame[0], frame[1], bytes(frame[2:6]))


def build_read_reply(address: int, words: Sequence[int]) -> bytes:
    """A device's reply to a read: the registers' values, each 0..65535."""
    if not 1 <= len(words) <= MAX_REGISTERS:
        raise ValueError(f"a reply holds 1..{MAX_REGISTERS} registers, not {len(words)}")
    data = b"".join(word.to_bytes(2, "big") for word in words)
    return with_crc(bytes([address, READ_HOLDING_REGISTERS, len(data)]) + data)


def build_exception_reply(address: int, function: int, code: int) -> bytes:
    """A device's refusal of a request with this function."""
    return with_crc(bytes([address, (function | EXCEPTION_FLAG) & 0xFF, code]))


def parse_read_reply(frame: bytes, address: int, count: int) -> tuple[int, ...]:
    """The register values in one whole reply frame to a read of count registers from address.

    Raises ModbusExceptionReply for an exception reply, ChecksumError for a bad CRC and
    ModbusError for anything else that is not the reply asked for.
    """
    if len(frame) < 5:
        raise ModbusError(f"a reply is at least 5 bytes, not {len(frame)}")
    if not crc_ok(frame):
        raise ChecksumError("reply CRC does not match")
    if frame[0] != address:
        raise ModbusError(f"reply from device {frame[0]}, but device {address} was asked")
    function = frame[1]
    if function == READ_HOLDING_REGISTERS | EXCEPTION_FLAG and len(frame) == 5:
        raise ModbusExceptionReply(address, READ_HOLDING_REGISTERS, frame[2])
    if function != READ_HOLDING_REGISTERS:
        raise ModbusError(f"reply is for function 0x{function:02X}, not 0x03")
    if frame[2] != 2 * count or len(frame) != 5 + 2 * count:
        raise ModbusError(f"reply holds {frame[2]} data bytes, {2 * count} expected")
    return tuple(int.from_bytes(frame[3 + 2 * i : 5 + 2 * i], "big") for i in range(count))


def scan_replies(
    buffer: bytes, address: int, count: int
) -> tuple[list[tuple[int, ...] | ProtocolError], bytes]:
    """Find replies to a read of count registers in received bytes, skipping garbage.

    Returns what was found (register values, or the error a CRC-valid frame from the wrong
    device or an exception stands for, or a ChecksumError for a frame shaped like our reply
    whose CRC is wrong) and the bytes to keep for the next call: a possible frame not yet
    whole. Never raises.
    """
    found: list[tuple[int, ...] | ProtocolError] = []
    reply_size = 5 + 2 * count
    start = 0
    while len(buffer) - start >= 2:
        function = buffer[start + 1]
        if function == READ_HOLDING_REGISTERS | EXCEPTION_FLAG:
            size = 5
        elif function == READ_HOLDING_REGISTERS:
            if len(buffer) - start < 3:
                break
            if buffer[start + 2] != 2 * count:
                start += 1
                continue
            size = reply_size
        else:
            start += 1
            continue
        if len(buffer) - start < size:
            break
        frame = buffer[start : start + size]
        if not crc_ok(frame):
            if frame[0] == address:
                found.append(ChecksumError("reply CRC does not match: damaged on the line"))
            start += 1
            continue
        try:
            found.append(parse_read_reply(frame, address, count))
        except ProtocolError as error:
            found.append(error)
        start += size
    return found, bytes(buffer[start:])


def scan_requests(buffer: bytes) -> tuple[list[Request], bytes]:
    """Find whole CRC-valid 8-byte requests in bytes a device received, skipping garbage.

    Returns the requests, for any address and function, and the bytes to keep for next time.
    """
    found = []
    start = 0
    while len(buffer) - start >= REQUEST_SIZE:
        frame = buffer[start : start + REQUEST_SIZE]
        if crc_ok(frame):
            found.append(Request(frame[0], frame[1], bytes(frame[2:6])))
            start += REQUEST_SIZE
        else:
            start += 1
    return found, bytes(buffer[start:])


def answer(
    request: Request, address: int, registers: dict[int, int], reply_as: int | None = None
) -> bytes | None:
    """A device's answer to a request: None when it is for another device (or broadcast).

    registers maps each register the device has to its value (0..65535); reading any other
    is refused with exception 2, other functions with exception 1. reply_as, when given, is
    the address written in the answer (to emulate a confused device).
    """
    if request.address != address:
        return None
    source = address if reply_as is None else reply_as
    if request.function != READ_HOLDING_REGISTERS:
        return build_exception_reply(source, request.function, ILLEGAL_FUNCTION)
    if not 1 <= request.count <= MAX_REGISTERS:
        return build_exception_reply(source, request.function, ILLEGAL_DATA_VALUE)
    wanted = range(request.register, request.register + request.count)
    if any(register not in registers for register in wanted):
        return build_exception_reply(source, request.function, ILLEGAL_DATA_ADDRESS)
    return build_read_reply(source, [registers[register] for register in wanted])


def celsius_to_word(celsius: float) -> int:
    """The register value for a temperature: signed 16-bit tenths of a degree."""
    tenths = round(celsius * 10) if math.isfinite(celsius) else 0x10000
    if not -0x8000 <= tenths <= 0x7FFF:
        raise ValueError(f"{celsius} °C does not fit a signed 16-bit register of tenths")
    return tenths & 0xFFFF


def word_to_celsius(word: int) -> float:
    """The temperature a register value stands for."""
    signed = word - 0x10000 if word & 0x8000 else word
    return signed / 10


class ModbusDecoder(ReadingDecoder):
    """Asks one device for one register holding the temperature, and reads its replies."""

    name = "modbus"

    def __init__(self, address: int = 1, register: int = 0) -> None:
        self._request = build_read_request(address, register, 1)
        self.address = address
        self.register = register
        self._buffer = b""

    def request(self) -> bytes:
        return self._request

    def feed(self, data: bytes) -> list[Decoded]:
        items, self._buffer = scan_replies(self._buffer + data, self.address, 1)
        return [
            item if isinstance(item, ProtocolError) else word_to_celsius(item[0]) for item in items
        ]

    def reset(self) -> None:
        self._buffer = b""
