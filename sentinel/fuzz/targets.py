"""The parsers of outside bytes, each as a fuzz target: what it is fed and which errors are fair.

A target takes any bytes. It passes when the parser answers or raises one of the target's
expected errors (the clear refusal it promises); anything else (an IndexError, a RecursionError,
a hang) is a crash, a bug to fix. Seeds are valid inputs, so the fuzzer starts from the deep
paths (a signed health code, a whole card frame) rather than from noise.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from hardware.idcard.ga467 import (
    CardDataError,
    Command,
    IdCardText,
    ProtocolError,
    build_request,
    parse_base_info,
)
from hardware.idcard.ga467 import FrameParser as IdCardFrames
from hardware.smartcard.apdu import ApduError, CommandApdu, ResponseApdu
from hardware.smartcard.lds import TlvError, iter_tlv
from hardware.smartcard.mrz import MrzError, parse_mrz
from hardware.smartcard.sod import verify_sod
from hardware.smartcard.specimen import SPECIMEN_TD1
from hardware.thermometer import line, modbus, stream
from hardware.thermometer.protocol import ReadingDecoder
from host.screening import StaffListError, parse_staff_list
from shared import healthcode, venuecode
from shared.base45 import Base45Error, b45decode, b45encode
from shared.denylist import DenyList
from shared.envelope import CredentialError, open_envelope
from shared.healthcode import CodeKind, Colour
from shared.keys import KeyPurpose, SigningKey, TrustStore
from shared.messages import CheckInBatch, PublishedKey, trust_store
from shared.policy import VenueCategory
from shared.rules.defaults import default_ruleset
from shared.sealed import SealError, SealingKey
from shared.venuecode import VenueCode
from shared.verification import CheckContext, assess

VENUE_BASE = "https://sentinel.example.org"


@dataclass(frozen=True)
class Target:
    """A parser under fuzzing: `parse` fed any bytes may raise only `expected`."""

    parse: Callable[[bytes], object]
    expected: tuple[type[Exception], ...]
    about: str
    seeds: Callable[[], list[bytes]] = list


@functools.cache
def _keys() -> tuple[SigningKey, SigningKey, SigningKey, TrustStore]:
    """Keys made once per fuzzing process: health, venue, policy, and the trust in them."""
    keys = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    purposes = (KeyPurpose.HEALTH, KeyPurpose.VENUE, KeyPurpose.POLICY)
    published = [PublishedKey.of(key, purpose) for key, purpose in zip(keys, purposes, strict=True)]
    return (*keys, trust_store(published))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _health_code_seed() -> list[bytes]:
    health, venue, _policy, _trust = _keys()
    code = healthcode.new_code(
        person_ref="p_fuzz",
        kind=CodeKind.DYNAMIC,
        colour=Colour.GREEN,
        test=None,
        now=datetime.now(UTC),
    )
    url = venuecode.issue_url(VenueCode("v_fuzz"), VENUE_BASE, venue)
    return [healthcode.issue(code, health).encode(), url.encode(), b"HC1:6BF+70790T9WJWG.FKY*4GO0"]


def _assess(data: bytes) -> object:
    *_keys_made, trust = _keys()
    context = CheckContext(now=datetime.now(UTC), clock_trusted=True)
    return assess(
        _text(data), trust=trust, rules=default_ruleset(VenueCategory.PUBLIC_PLACE), context=context
    )


def _inflated_envelope(data: bytes) -> object:
    *_keys_made, trust = _keys()
    text = healthcode.PREFIX + b45encode(zlib.compress(data))
    return open_envelope(text, healthcode.PREFIX, trust, KeyPurpose.HEALTH)


def _venue_url(data: bytes) -> object:
    *_keys_made, trust = _keys()
    return venuecode.read_url(f"{VENUE_BASE}/v/{_text(data)}", trust)


def _card_frames(data: bytes) -> list[bytes]:
    """Every frame the ID-card module's parser finds in `data`, skipping what it refuses."""
    parser = IdCardFrames()
    parser.feed(data)
    frames: list[bytes] = []
    for _ in range(len(data) + 1):  # each step consumes a frame or at least one byte
        try:
            frame = parser.next_frame()
        except ProtocolError:
            continue
        if frame is None:
            break
        frames.append(frame)
    return frames


def _card_text(data: bytes) -> object:
    parse_base_info(data)
    return IdCardText.from_bytes(data)


def _decoder(make: Callable[[], ReadingDecoder]) -> Callable[[bytes], object]:
    def feed_in_pieces(data: bytes) -> object:
        decoder = make()
        middle = len(data) // 2
        return decoder.feed(data[:middle]) + decoder.feed(data[middle:])

    return feed_in_pieces


def _apdu(data: bytes) -> object:
    try:
        return CommandApdu.parse(data)
    finally:
        ResponseApdu.parse(data)


def _deny_list(data: bytes) -> object:
    *_keys_made, trust = _keys()
    return DenyList.open(data, trust)


def _sealed(data: bytes) -> object:
    return SealingKey.from_bytes(bytes(range(32))).open(_text(data))


def _checkin_batch(data: bytes) -> object:
    return CheckInBatch.model_validate_json(data)


def _seeds(*items: bytes) -> Callable[[], list[bytes]]:
    return lambda: list(items)


TARGETS: dict[str, Target] = {
    "scanned-text": Target(
        _assess, (), "any text a camera decodes, assessed as the kiosk does", _health_code_seed
    ),
    "envelope": Target(
        _inflated_envelope, (CredentialError,), "a health code's inflated COSE/CWT bytes"
    ),
    "base45": Target(
        lambda data: b45decode(_text(data)),
        (Base45Error,),
        "Base45 text",
        _seeds(b"BB8", b"%69 VD92EX0"),
    ),
    "venue-url": Target(_venue_url, (CredentialError,), "the tail of a venue-code URL"),
    "idcard-frames": Target(
        _card_frames,
        (),
        "bytes from a GA 467 ID-card module's serial port",
        _seeds(build_request(Command.READ_BASE_INFO)),
    ),
    "idcard-text": Target(_card_text, (CardDataError,), "an ID card's base information block"),
    "thermometer-modbus": Target(
        _decoder(lambda: modbus.ModbusDecoder(1, 0)),
        (),
        "a Modbus RTU thermometer's bytes",
        _seeds(modbus.build_read_reply(1, [modbus.celsius_to_word(36.6)])),
    ),
    "thermometer-stream": Target(
        _decoder(stream.StreamDecoder), (), "a streaming thermometer's frames"
    ),
    "thermometer-line": Target(
        _decoder(line.LineDecoder),
        (),
        "a line-printing thermometer's text",
        _seeds(b"T=36.6\r\n36.60 C\r\n"),
    ),
    "apdu": Target(_apdu, (ApduError,), "command and response APDUs"),
    "tlv": Target(lambda data: list(iter_tlv(data)), (TlvError,), "BER-TLV of an eMRTD file"),
    "sod": Target(lambda data: verify_sod(data, {}, None), (), "an eMRTD's EF.SOD"),
    "mrz": Target(
        lambda data: parse_mrz(_text(data)),
        (MrzError,),
        "machine-readable zone text",
        _seeds(SPECIMEN_TD1.encode()),
    ),
    "deny-list": Target(_deny_list, (CredentialError,), "a signed deny-list document"),
    "sealed-identity": Target(_sealed, (SealError,), "an ID identity sealed by a kiosk"),
    "checkin-batch": Target(_checkin_batch, (ValidationError,), "a device's check-in batch (JSON)"),
    "staff-list": Target(
        parse_staff_list,
        (StaffListError,),
        "a screener's uploaded staff CSV",
        _seeds("姓名,身份证号\n张三,11010519491231002X\n".encode()),
    ),
}


def file_stem(name: str) -> str:
    """A target's name as its log and crash files are named (a `module:function` has no colon)."""
    return name.replace(":", "-")


def seeds(name: str) -> Iterator[bytes]:
    """The valid inputs a target's corpus starts from."""
    yield from TARGETS[name].seeds()
