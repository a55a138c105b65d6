"""ISO/IEC 7816-4 APDUs: command and response encoding and decoding, the eMRTD commands.

Shared by the reader side (emrtd.py, pcsc.py) and the virtual card (virtual_card.py), so
both speak exactly the same bytes. Short and extended lengths are both read and written.
"""

from __future__ import annotations

from dataclasses import dataclass

SW_OK = 0x9000

# Instructions an eMRTD reader uses.
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_GET_DATA = 0xCA

# The eMRTD application (Doc 9303 Part 10, 3.1) and its SELECT P1 values.
EMRTD_AID = bytes.fromhex("A0000002471001")
SELECT_BY_AID = 0x04
SELECT_EF_UNDER_DF = 0x02
SELECT_NO_RESPONSE_DATA = 0x0C

# PC/SC Part 3 pseudo-APDU answered by a contactless reader: the card's UID.
GET_UID = bytes.fromhex("FFCA000000")


class ApduError(ValueError):
    """Bytes that are not a well-formed APDU."""


@dataclass(frozen=True)
class CommandApdu:
    """A command: header, data (may be empty), Le (None: no response data expected).

    Le is the number of bytes expected, 1..65536; 256 is written "00" in a short APDU.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ApduError(f"{name} is one byte")
        if len(self.data) > 65535:
            raise ApduError("command data longer than 65535 bytes")
        if self.le is not None and not 1 <= self.le <= 65536:
            raise ApduError("Le is 1..65536")

    @property
    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    @property
    def extended(self) -> bool:
        """Whether the APDU needs extended lengths."""
        return len(self.data) > 255 or (self.le is not None and self.le > 256)

    def to_bytes(self) -> bytes:
        """The APDU as sent to the card."""
        out = bytearray(self.header)
        if self.extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = b"\x00\x00" if self.le == 65536 else self.le.to_bytes(2, "big")
                out += le if self.data else b"\x00" + le
            return bytes(out)
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out.append(0 if self.le == 256 else self.le)
        return bytes(out)

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode cases 1-4, short or extended; raises ApduError."""
        if len(raw) < 4:
            raise ApduError("a command APDU has at least 4 bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:  # short, with data
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1:]))
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), body[-1] or 256)
            raise ApduError("Lc does not match the length of the APDU")
        # Extended: 00 then two bytes.
        if len(body) == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduError("extended Lc of 0")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, bytes(body[3:]))
        if len(body) == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, bytes(body[3 : 3 + lc]), le)
        raise ApduError("extended Lc does not match the length of the APDU")


@dataclass(frozen=True)
class ResponseApdu:
    """A response: data and the status word SW1-SW2."""

    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        """SW 9000."""
        return self.sw == SW_OK

    def to_bytes(self) -> bytes:
        """The response as the card sends it."""
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split data and status word; raises ApduError for fewer than 2 bytes."""
        if len(raw) < 2:
            raise ApduError("a response APDU has at least 2 bytes (SW1 SW2)")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


def select_aid(aid: bytes = EMRTD_AID) -> CommandApdu:
    """SELECT the application by AID, no response data."""
    return CommandApdu(0x00, INS_SELECT, SELECT_BY_AID, SELECT_NO_RESPONSE_DATA, aid)


def select_file(fid: int) -> CommandApdu:
    """SELECT an EF by its file identifier under the current DF, no response data."""
    return CommandApdu(
        0x00, INS_SELECT, SELECT_EF_UNDER_DF, SELECT_NO_RESPONSE_DATA, fid.to_bytes(2, "big")
    )


def read_binary(offset: int, length: int) -> CommandApdu:
    """READ BINARY of the current EF at an offset below 32768."""
    if not 0 <= offset <= 0x7FFF:
        raise ApduError("READ BINARY (B0) offsets are 0..32767")
    return CommandApdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)


def get_challenge() -> CommandApdu:
    """GET CHALLENGE of 8 bytes (RND.ICC)."""
    return CommandApdu(0x00, INS_GET_CHALLENGE, 0x00, 0x00, le=8)


def external_authenticate(cmd_data: bytes) -> CommandApdu:
    """EXTERNAL AUTHENTICATE with E.IFD || M.IFD, expecting E.ICC || M.ICC (40 bytes)."""
    return CommandApdu(0x00, INS_EXTERNAL_AUTHENTICATE, 0x00, 0x00, cmd_data, le=40)
