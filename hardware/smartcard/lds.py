"""The eMRTD Logical Data Structure (ICAO Doc 9303 Part 10): BER-TLV, EF.COM, DG1, DG2, file ids.

Used by the reader to read a document and by the virtual card to write one: the same
encoding both ways. DG2 is carried as bytes; face_image() finds the JPEG or JPEG 2000 image
in an ISO/IEC 19794-5 record when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# File identifiers (Part 10, 4.6) and the tag each file starts with.
EF_COM = 0x011E
EF_SOD = 0x011D
TAG_COM = 0x60
TAG_SOD = 0x77
TAG_MRZ = 0x5F1F
TAG_LDS_VERSION = 0x5F01
TAG_UNICODE_VERSION = 0x5F36
TAG_TAG_LIST = 0x5C
DG_TAGS: dict[int, int] = {
    1: 0x61,
    2: 0x75,
    3: 0x63,
    4: 0x76,
    5: 0x65,
    6: 0x66,
    7: 0x67,
    8: 0x68,
    9: 0x69,
    10: 0x6A,
    11: 0x6B,
    12: 0x6C,
    13: 0x6D,
    14: 0x6E,
    15: 0x6F,
    16: 0x70,
}
TAG_DGS = {tag: number for number, tag in DG_TAGS.items()}


class TlvError(ValueError):
    """Bytes that are not BER-TLV."""


def data_group_fid(number: int) -> int:
    """The file identifier of data group 1..16: 0x0101..0x0110."""
    if number not in DG_TAGS:
        raise ValueError("data groups are numbered 1 to 16")
    return 0x0100 + number


def file_name(fid: int) -> str:
    """The file's name for messages: EF.COM, EF.SOD, EF.DG1..."""
    if fid == EF_COM:
        return "EF.COM"
    if fid == EF_SOD:
        return "EF.SOD"
    if 0x0101 <= fid <= 0x0110:
        return f"EF.DG{fid - 0x0100}"
    return f"EF {fid:04X}"


# --- BER-TLV -------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    """A BER length: one byte below 128, else 81 xx, 82 xx xx, 83 xx xx xx."""
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    if size > 3:
        raise TlvError("a length above 16 MiB")
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def encode_tag(tag: int) -> bytes:
    """A tag number as its bytes (0x5F1F -> 5F 1F)."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_tlv(tag: int, value: bytes) -> bytes:
    """Tag, length, value."""
    return encode_tag(tag) + encode_length(len(value)) + value


def decode_header(data: bytes, start: int = 0) -> tuple[int, int, int]:
    """(tag, value length, header length) of the TLV at data[start:]; raises TlvError."""
    pos = start
    if pos >= len(data):
        raise TlvError("no tag")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise TlvError("a tag cut short")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
            if pos - start > 4:
                raise TlvError("a tag longer than 4 bytes")
    if pos >= len(data):
        raise TlvError("no length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 3:
            raise TlvError("an indefinite or oversized length")
        if pos + size > len(data):
            raise TlvError("a length cut short")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    return tag, length, pos - start


def iter_tlv(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """Each (tag, value, whole TLV bytes) of concatenated TLVs; raises TlvError."""
    pos = 0
    while pos < len(data):
        tag, length, header = decode_header(data, pos)
        end = pos + header + length
        if end > len(data):
            raise TlvError("a value cut short")
        yield tag, bytes(data[pos + header : end]), bytes(data[pos:end])
        pos = end


def decode_tlv(data: bytes, expected_tag: int | None = None) -> bytes:
    """The value of the single TLV that data is (trailing bytes are an error)."""
    items = list(iter_tlv(data))
    if len(items) != 1:
        raise TlvError(f"{len(items)} TLV objects where one was expected")
    tag, value, _ = items[0]
    if expected_tag is not None and tag != expected_tag:
        raise TlvError(f"tag {tag:X} where {expected_tag:X} was expected")
    return value


def children(value: bytes) -> dict[int, bytes]:
    """The TLVs inside a constructed value, by tag (the first of each tag)."""
    found: dict[int, bytes] = {}
    for tag, inner, _ in iter_tlv(value):
        found.setdefault(tag, inner)
    return found


# --- EF.COM --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EfCom:
    """EF.COM: the LDS and Unicode versions and the data groups present."""

    lds_version: str
    unicode_version: str
    data_groups: tuple[int, ...]


def build_ef_com(
    data_groups: tuple[int, ...], lds_version: str = "0107", unicode_version: str = "040000"
) -> bytes:
    """EF.COM listing the data groups."""
    tags = bytes(DG_TAGS[number] for number in data_groups)
    return encode_tlv(
        TAG_COM,
        encode_tlv(TAG_LDS_VERSION, lds_version.encode("ascii"))
        + encode_tlv(TAG_UNICODE_VERSION, unicode_version.encode("ascii"))
        + encode_tlv(TAG_TAG_LIST, tags),
    )


def parse_ef_com(data: bytes) -> EfCom:
    """Parse EF.COM; raises TlvError."""
    inner = children(decode_tlv(data, TAG_COM))
    if TAG_TAG_LIST not in inner:
        raise TlvError("EF.COM has no tag list (5C)")
    unknown = [tag for tag in inner[TAG_TAG_LIST] if tag not in TAG_DGS]
    if unknown:
        raise TlvError("EF.COM lists a tag that is no data group")
    return EfCom(
        lds_version=inner.get(TAG_LDS_VERSION, b"").decode("ascii", "replace"),
        unicode_version=inner.get(TAG_UNICODE_VERSION, b"").decode("ascii", "replace"),
        data_groups=tuple(sorted(TAG_DGS[tag] for tag in inner[TAG_TAG_LIST])),
    )


# --- DG1 and DG2 ---------------------------------------------------------------------------


def build_dg1(mrz_text: str) -> bytes:
    """DG1 holding an MRZ (its lines concatenated, as DG1 stores them)."""
    mrz = "".join(mrz_text.split())
    return encode_tlv(DG_TAGS[1], encode_tlv(TAG_MRZ, mrz.encode("ascii")))


def parse_dg1(data: bytes) -> str:
    """The MRZ characters in DG1 (tag 61, then 5F1F), lines concatenated; raises TlvError."""
    inner = children(decode_tlv(data, DG_TAGS[1]))
    if TAG_MRZ not in inner:
        raise TlvError("DG1 has no MRZ (5F1F)")
    try:
        return inner[TAG_MRZ].decode("ascii")
    except UnicodeDecodeError:
        raise TlvError("DG1's MRZ is not ASCII") from None


FACE_JPEG = 0
FACE_JPEG2000 = 1
_FACE_HEADER = 14  # "FAC\0", version, record length (4), number of images (2)
_FACE_INFO = 20  # block length (4) ... pose uncertainty, before the feature points
_IMAGE_INFO = 12


def build_dg2(image: bytes, image_type: int = FACE_JPEG, width: int = 0, height: int = 0) -> bytes:
    """DG2 with one ISO/IEC 19794-5 facial record holding an image (JPEG by default)."""
    block = (
        (_FACE_INFO + _IMAGE_INFO + len(image)).to_bytes(4, "big")
        + bytes(2)  # no feature points
        + bytes(1 + 1 + 1 + 3 + 2 + 3 + 3)  # gender, eyes, hair, properties, expression, pose
        + bytes((1, image_type))  # full frontal, data type
        + width.to_bytes(2, "big")
        + height.to_bytes(2, "big")
        + bytes((1, 2))  # 24-bit RGB, digital still camera
        + bytes(4)  # device type, quality
        + image
    )
    record = b"FAC\x00010\x00" + (_FACE_HEADER + len(block)).to_bytes(4, "big") + b"\x00\x01"
    biometric_header = encode_tlv(0x81, b"\x02") + encode_tlv(0x87, b"\x01\x01")
    biometric_header += encode_tlv(0x88, b"\x00\x08")
    template = encode_tlv(0xA1, biometric_header) + encode_tlv(0x5F2E, record + block)
    group = encode_tlv(0x02, b"\x01") + encode_tlv(0x7F60, template)
    return encode_tlv(DG_TAGS[2], encode_tlv(0x7F61, group))


def face_image(dg2: bytes) -> tuple[str, bytes] | None:
    """("jpeg" or "jpeg2000", image bytes) of DG2's first face, or None when there is none."""
    try:
        group = children(decode_tlv(dg2, DG_TAGS[2])).get(0x7F61)
        template = children(group or b"").get(0x7F60)
        inner = children(template or b"")
    except TlvError:
        return None
    record = inner.get(0x5F2E) or inner.get(0x7F2E)
    if record is None or not record.startswith(b"FAC\x00"):
        return None
    info = _FACE_HEADER
    if len(record) < info + _FACE_INFO + _IMAGE_INFO:
        return None
    points = int.from_bytes(record[info + 4 : info + 6], "big")
    image_info = info + _FACE_INFO + 8 * points
    if len(record) < image_info + _IMAGE_INFO:
        return None
    kind = "jpeg2000" if record[image_info + 1] == FACE_JPEG2000 else "jpeg"
    block_end = info + int.from_bytes(record[info : info + 4], "big")
    return kind, bytes(record[image_info + _IMAGE_INFO : block_end])
