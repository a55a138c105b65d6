"""The GA 467 SAM module's serial protocol and ID-card data, shared by the driver and emulator.

Frame: the preamble AA AA AA 96 69, a 2-byte big-endian length counting every byte after it
(checksum included), the payload, and a checksum: the XOR of every byte after the preamble
except itself. A request's payload is command, parameter, data; a response's is SW1 SW2 SW3,
data, where SW3 is the status (SW1 SW2 are 00 00 in practice).

Everything here is pure: no I/O. Bytes from outside (a serial line, a card) only ever raise
ProtocolError (or a subclass) here, never anything else.

Privacy: an ID number never appears in a repr, an exception message or a log record written
by this package; screens show mask_id_number() of it (first 4 and last 4 characters).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from shared.idnumber import DIGITS, is_valid_id_number, mask_id_number

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_SIZE = len(PREAMBLE) + 2  # preamble and length field
DEFAULT_BAUDRATE = 115200
# The length field of the smallest valid frames: command + parameter + checksum for a request,
# SW1 SW2 SW3 + checksum for a response.
MIN_REQUEST_LENGTH = 3
MIN_RESPONSE_LENGTH = 4
# No frame of the protocol comes near this (base info with fingerprints is about 2.3 kB); a
# larger length field is corruption, refused at once instead of waiting for 64 kB.
MAX_LENGTH = 4096

TEXT_SIZE = 256  # the base info's text block, UCS-2LE
PHOTO_SIZE = 1024  # the base info's WLT photo, as the module sends it
SAM_ID_SIZE = 16
LONG_TERM = "长期"  # "valid to" of a card with no end date
_PAD = " "  # text fields are padded with U+0020 (bytes 20 00)


class ProtocolError(Exception):
    """Bytes from outside (a frame, a card's data) that do not follow the protocol."""


class ChecksumError(ProtocolError):
    """A frame whose checksum does not match its bytes."""


class LengthError(ProtocolError):
    """A frame whose length field, or whose content's length, is impossible."""


class CardDataError(ProtocolError):
    """A base-info block (text, photo) that cannot be what a card holds."""


class Command(enum.Enum):
    """The requests the driver makes: (command, parameter) bytes."""

    SAM_ID = (0x12, 0xFF)
    FIND_CARD = (0x20, 0x01)
    SELECT_CARD = (0x20, 0x02)
    READ_BASE_INFO = (0x30, 0x01)

    @property
    def cmd(self) -> int:
        return self.value[0]

    @property
    def para(self) -> int:
        return self.value[1]

    @classmethod
    def of(cls, cmd: int, para: int) -> Command | None:
        """The command with these bytes, or None for one this package does not know."""
        try:
            return cls((cmd, para))
        except ValueError:
            return None


class Status(enum.IntEnum):
    """SW3, the status byte of a response."""

    OK = 0x90
    CARD_FOUND = 0x9F
    NO_CARD = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    COMMAND_ERROR = 0x21
    CARD_AUTH_FAILED = 0x31
    SAM_AUTH_FAILED = 0x32
    VERIFY_FAILED = 0x33
    SAM_SELF_TEST_FAILED = 0x60

    @property
    def message(self) -> str:
        return _STATUS_MESSAGES[self]

    @classmethod
    def of(cls, sw3: int) -> Status | None:
        """The status with this code, or None for a code this package does not know."""
        try:
            return cls(sw3)
        except ValueError:
            return None


_STATUS_MESSAGES = {
    Status.OK: "success",
    Status.CARD_FOUND: "card found",
    Status.NO_CARD: "no card on the reader",
    Status.SELECT_FAILED: "the card could not be selected",
    Status.READ_FAILED: "the card could not be read",
    Status.CHECKSUM_ERROR: "the module received a frame with a wrong checksum",
    Status.LENGTH_ERROR: "the module received a frame with a wrong length",
    Status.COMMAND_ERROR: "the module does not know the command",
    Status.CARD_AUTH_FAILED: "authentication failed: the card refused the SAM",
    Status.SAM_AUTH_FAILED: "authentication failed: the SAM refused the card",
    Status.VERIFY_FAILED: "authentication failed: the card's data did not verify",
    Status.SAM_SELF_TEST_FAILED: "the SAM module failed its self-test",
}
AUTH_FAILURES = frozenset({Status.CARD_AUTH_FAILED, Status.SAM_AUTH_FAILED, Status.VERIFY_FAILED})


def status_text(sw3: int) -> str:
    """A status code for people and logs: "READ_FAILED (0x41): the card could not be read"."""
    status = Status.of(sw3)
    if status is None:
        return f"unknown status 0x{sw3:02X}"
    return f"{status.name} (0x{sw3:02X}): {status.message}"


# --- frames -------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The XOR of every byte: over the length field and payload, it is a frame's checksum."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(payload: bytes) -> bytes:
    """A whole frame around a payload (a request's or a response's, without checksum)."""
    length = len(payload) + 1
    if length > MAX_LENGTH:
        raise ValueError(f"a payload of {len(payload)} bytes is longer than a frame can hold")
    body = length.to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Request:
    """A request's payload: command, parameter and (for the commands here, empty) data."""

    cmd: int
    para: int
    data: bytes = b""

    @property
    def command(self) -> Command | None:
        return Command.of(self.cmd, self.para)

    def __repr__(self) -> str:
        name = self.command.name if self.command else f"0x{self.cmd:02X} 0x{self.para:02X}"
        return f"Request({name}, {len(self.data)} data bytes)"


@dataclass(frozen=True)
class Response:
    """A response's payload: SW1 SW2 SW3 and data. repr() never shows the data (card text)."""

    sw3: int
    data: bytes = b""
    sw1: int = 0
    sw2: int = 0

    @property
    def status(self) -> Status | None:
        return Status.of(self.sw3)

    def __repr__(self) -> str:
        name = self.status.name if self.status else f"0x{self.sw3:02X}"
        return f"Response({name}, {len(self.data)} data bytes)"


def build_request(command: Command, data: bytes = b"") -> bytes:
    """The frame that asks the module for command: find card is AA AA AA 96 69 00 03 20 01 22."""
    return encode_frame(bytes([command.cmd, command.para]) + data)


def build_response(sw3: int, data: bytes = b"", *, sw1: int = 0, sw2: int = 0) -> bytes:
    """The frame a module answers with (the emulator's side)."""
    return encode_frame(bytes([sw1, sw2, sw3]) + data)


def parse_request(payload: bytes) -> Request:
    """A request from a frame's payload (as FrameParser returns it)."""
    if len(payload) < MIN_REQUEST_LENGTH - 1:
        raise LengthError(f"a request needs command and parameter, got {len(payload)} bytes")
    return Request(payload[0], payload[1], bytes(payload[2:]))


def parse_response(payload: bytes) -> Response:
    """A response from a frame's payload (as FrameParser returns it)."""
    if len(payload) < MIN_RESPONSE_LENGTH - 1:
        raise LengthError(f"a response needs SW1 SW2 SW3, got {len(payload)} bytes")
    return Response(payload[2], bytes(payload[3:]), payload[0], payload[1])


class FrameParser:
    """Finds frames in a byte stream fed in pieces of any size.

    Bytes before a preamble are skipped (counted in discarded). next_frame() returns the next
    whole frame's payload, None until more bytes are fed, or raises LengthError (a length field
    below min_length or above max_length) or ChecksumError; after an error the parser drops the
    first byte of the bad frame and resynchronises on the next preamble, so a good frame that
    the bad one's length field swallowed is still found. It raises nothing else, whatever it is
    fed.
    """

    def __init__(
        self, *, min_length: int = MIN_REQUEST_LENGTH, max_length: int = MAX_LENGTH
    ) -> None:
        if not 1 <= min_length <= max_length <= 0xFFFF:
            raise ValueError(f"need 1 <= min_length <= max_length <= 65535, not {min_length}")
        self.min_length = min_length
        self.max_length = max_length
        self.discarded = 0
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def reset(self) -> None:
        """Forget the bytes buffered (not the discarded count)."""
        self._buffer.clear()

    @property
    def buffered(self) -> int:
        """How many bytes are held: a partial frame, or the start of a possible preamble."""
        return len(self._buffer)

    @property
    def expected_size(self) -> int | None:
        """The size of the frame under way, once its header has arrived; else None."""
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE or not buffer.startswith(PREAMBLE):
            return None
        return HEADER_SIZE + int.from_bytes(buffer[5:7], "big")

    def next_frame(self) -> bytes | None:
        buffer = self._buffer
        start = buffer.find(PREAMBLE)
        if start < 0:
            keep = _preamble_prefix_at_end(buffer)
            self._drop(len(buffer) - keep)
            return None
        self._drop(start)
        if len(buffer) < HEADER_SIZE:
            return None
        length = int.from_bytes(buffer[5:7], "big")
        if not self.min_length <= length <= self.max_length:
            self._drop(1)
            raise LengthError(f"length field {length} outside {self.min_length}..{self.max_length}")
        end = HEADER_SIZE + length
        if len(buffer) < end:
            return None
        expected = checksum(buffer[len(PREAMBLE) : end - 1])
        if expected != buffer[end - 1]:
            found = buffer[end - 1]
            self._drop(1)
            raise ChecksumError(
                f"checksum 0x{found:02X} should be 0x{expected:02X} in a {end}-byte frame"
            )
        payload = bytes(buffer[HEADER_SIZE : end - 1])
        del buffer[:end]
        return payload

    def _drop(self, count: int) -> None:
        if count:
            del self._buffer[:count]
            self.discarded += count


def _preamble_prefix_at_end(buffer: bytearray) -> int:
    """The length of the longest end of buffer that begins a preamble (kept for more bytes)."""
    for size in range(min(len(PREAMBLE) - 1, len(buffer)), 0, -1):
        if buffer.endswith(PREAMBLE[:size]):
            return size
    return 0


# --- ID numbers --------------------------------------------------------------------------

def _mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1)


def parse_date(text: str) -> date | None:
    """A YYYYMMDD date, or None when text is not one."""
    if len(text) != 8 or not set(text) <= DIGITS:
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


# --- code tables ---------------------------------------------------------------------------

# GB/T 2261.1 sex codes.
SEXES = {"0": "未知的性别", "1": "男", "2": "女", "9": "未说明的性别"}

# GB 3304 nationality codes: the 56 nationalities, then "other" and "foreign origin".
NATIONS = {
    "01": "汉族",
    "02": "蒙古族",
    "03": "回族",
    "04": "藏族",
    "05": "维吾尔族",
    "06": "苗族",
    "07": "彝族",
    "08": "壮族",
    "09": "布依族",
    "10": "朝鲜族",
    "11": "满族",
    "12": "侗族",
    "13": "瑶族",
    "14": "白族",
    "15": "土家族",
    "16": "哈尼族",
    "17": "哈萨克族",
    "18": "傣族",
    "19": "黎族",
    "20": "傈僳族",
    "21": "佤族",
    "22": "畲族",
    "23": "高山族",
    "24": "拉祜族",
    "25": "水族",
    "26": "东乡族",
    "27": "纳西族",
    "28": "景颇族",
    "29": "柯尔克孜族",
    "30": "土族",
    "31": "达斡尔族",
    "32": "仫佬族",
    "33": "羌族",
    "34": "布朗族",
    "35": "撒拉族",
    "36": "毛南族",
    "37": "仡佬族",
    "38": "锡伯族",
    "39": "阿昌族",
    "40": "普米族",
    "41": "塔吉克族",
    "42": "怒族",
    "43": "乌孜别克族",
    "44": "俄罗斯族",
    "45": "鄂温克族",
    "46": "德昂族",
    "47": "保安族",
    "48": "裕固族",
    "49": "京族",
    "50": "塔塔尔族",
    "51": "独龙族",
    "52": "鄂伦春族",
    "53": "赫哲族",
    "54": "门巴族",
    "55": "珞巴族",
    "56": "基诺族",
    "97": "其他",
    "98": "外国血统中国籍人士",
}


# --- the card's text ---------------------------------------------------------------------

# (field, byte offset, byte length) in the 256-byte text block.
TEXT_LAYOUT = (
    ("name", 0, 30),
    ("sex", 30, 2),
    ("nation", 32, 4),
    ("birth", 36, 16),
    ("address", 52, 70),
    ("id_number", 122, 36),
    ("authority", 158, 30),
    ("valid_from", 188, 16),
    ("valid_to", 204, 16),
)


class Validity(enum.Enum):
    """Whether a card is valid on a given day."""

    VALID = "valid"
    NOT_YET_VALID = "not yet valid"
    EXPIRED = "expired"
    UNREADABLE = "validity dates unreadable"


@dataclass(frozen=True, repr=False)
class IdCardText:
    """The text of a card, each field as the card holds it, padding trimmed.

    sex is a GB/T 2261.1 code, nation a GB 3304 code, birth and valid_from YYYYMMDD, valid_to
    YYYYMMDD or "长期" (LONG_TERM). Nothing is checked on parsing: a card's problems (check
    character, dates) are for problems() to tell. repr() masks the ID number and the name and
    leaves out the birth date and address, so that logging one by accident leaks nothing.
    """

    name: str
    sex: str
    nation: str
    birth: str
    address: str
    id_number: str
    authority: str
    valid_from: str
    valid_to: str

    @classmethod
    def from_bytes(cls, raw: bytes) -> IdCardText:
        """Parse the 256-byte UCS-2LE text block (CardDataError if it is not one)."""
        if len(raw) != TEXT_SIZE:
            raise CardDataError(f"the text block has {len(raw)} bytes, not {TEXT_SIZE}")
        fields = {}
        for field, offset, size in TEXT_LAYOUT:
            try:
                text = bytes(raw[offset : offset + size]).decode("utf-16-le")
            except UnicodeDecodeError:
                raise CardDataError(f"the {field} field is not UCS-2 text") from None
            fields[field] = text.strip(" \x00")
        return cls(**fields)

    def to_bytes(self) -> bytes:
        """The 256-byte text block (ValueError if a field does not fit)."""
        raw = bytearray(_PAD.encode("utf-16-le") * (TEXT_SIZE // 2))
        for field, offset, size in TEXT_LAYOUT:
            encoded = getattr(self, field).encode("utf-16-le")
            if len(encoded) > size:
                raise ValueError(f"the {field} field takes {size} bytes, not {len(encoded)}")
            raw[offset : offset + len(encoded)] = encoded
        return bytes(raw)

    @property
    def sex_name(self) -> str | None:
        return SEXES.get(self.sex)

    @property
    def nation_name(self) -> str | None:
        return NATIONS.get(self.nation)

    @property
    def birth_date(self) -> date | None:
        return parse_date(self.birth)

    @property
    def valid_from_date(self) -> date | None:
        return parse_date(self.valid_from)

    @property
    def long_term(self) -> bool:
        return self.valid_to == LONG_TERM

    @property
    def valid_to_date(self) -> date | None:
        """The last day of validity; None for a long-term card or an unreadable date."""
        return parse_date(self.valid_to)

    def validity_on(self, day: date) -> Validity:
        """Whether the card is valid on day: from valid_from to valid_to, both days included."""
        start = self.valid_from_date
        end = self.valid_to_date
        if start is None or (end is None and not self.long_term):
            return Validity.UNREADABLE
        if day < start:
            return Validity.NOT_YET_VALID
        if end is not None and day > end:
            return Validity.EXPIRED
        return Validity.VALID

    def problems(self, day: date) -> list[str]:
        """What is wrong with the card on day, for people and logs (never the ID number)."""
        found = []
        if not is_valid_id_number(self.id_number):
            found.append("the ID number is malformed or its check character is wrong")
        elif self.id_number[6:14] != self.birth:
            found.append("the ID number's birth date differs from the card's")
        if self.birth_date is None:
            found.append("the birth date is unreadable")
        validity = self.validity_on(day)
        if validity is not Validity.VALID:
            found.append(f"the card is {validity.value}")
        return found

    def fields(self, *, reveal: bool = False) -> dict[str, str]:
        """The fields by name for a screen or `--json`: masked unless reveal.

        Masked: the ID number keeps its first and last 4 characters, the name its first
        character, the birth date its year, the address its first 6 characters (the district).
        """
        fields = {field: getattr(self, field) for field, _, _ in TEXT_LAYOUT}
        fields["sex"] = self.sex_name or self.sex
        fields["nation"] = self.nation_name or self.nation
        if reveal:
            return fields
        return fields | {
            "name": _mask_name(self.name),
            "birth": self.birth[:4] + "*" * (len(self.birth) - 4),
            "address": self.address[:6] + "*" * max(0, len(self.address) - 6),
            "id_number": mask_id_number(self.id_number),
        }

    def __repr__(self) -> str:
        return (
            f"IdCardText(name={_mask_name(self.name)!r}, sex={self.sex!r}, "
            f"nation={self.nation!r}, id_number={mask_id_number(self.id_number)!r}, "
            f"valid_from={self.valid_from!r}, valid_to={self.valid_to!r})"
        )


@dataclass(frozen=True, repr=False)
class CardData:
    """What "read base info" returns: the card's text and its WLT photo (opaque, not decoded).

    repr() shows the masked text and the photo's size only.
    """

    text: IdCardText
    photo: bytes

    def __repr__(self) -> str:
        return f"CardData({self.text!r}, photo=<{len(self.photo)} bytes>)"


def parse_base_info(data: bytes) -> CardData:
    """A read-base-info response's data: text and photo lengths (big-endian), text, photo."""
    if len(data) < 4:
        raise CardDataError(f"base info of {len(data)} bytes has no lengths")
    text_size = int.from_bytes(data[0:2], "big")
    photo_size = int.from_bytes(data[2:4], "big")
    if text_size != TEXT_SIZE:
        raise CardDataError(f"base info text of {text_size} bytes, not {TEXT_SIZE}")
    if len(data) != 4 + text_size + photo_size:
        raise CardDataError(
            f"base info of {len(data)} bytes, its lengths say {4 + text_size + photo_size}"
        )
    text = IdCardText.from_bytes(data[4 : 4 + text_size])
    return CardData(text, bytes(data[4 + text_size :]))


def build_base_info(card: CardData) -> bytes:
    """A read-base-info response's data for card (the emulator's side)."""
    text = card.text.to_bytes()
    return len(text).to_bytes(2, "big") + len(card.photo).to_bytes(2, "big") + text + card.photo


@dataclass(frozen=True)
class SamId:
    """The SAM module's 16-byte id, with the display form readers' tools customarily use."""

    raw: bytes

    @classmethod
    def from_data(cls, data: bytes) -> SamId:
        if len(data) != SAM_ID_SIZE:
            raise LengthError(f"a SAM id has {SAM_ID_SIZE} bytes, not {len(data)}")
        return cls(bytes(data))

    def __str__(self) -> str:
        """Little-endian numbers: 2 bytes, 2 bytes, 4 (a date), 4, 4: "05.01-20200101-..."."""
        raw = self.raw

        def number(start: int, end: int) -> int:
            return int.from_bytes(raw[start:end], "little")

        return (
            f"{number(0, 2):02d}.{number(2, 4):02d}-{number(4, 8):08d}"
            f"-{number(8, 12):010d}-{number(12, 16):010d}"
        )
