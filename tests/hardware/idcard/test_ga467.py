"""Tests of hardware.idcard.ga467: frames, the stream parser, card text, ID numbers, masking."""

import contextlib
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.idcard.ga467 import (
    LONG_TERM,
    MAX_LENGTH,
    MIN_RESPONSE_LENGTH,
    NATIONS,
    PREAMBLE,
    SEXES,
    TEXT_LAYOUT,
    TEXT_SIZE,
    CardData,
    CardDataError,
    ChecksumError,
    Command,
    FrameParser,
    IdCardText,
    LengthError,
    ProtocolError,
    Request,
    Response,
    SamId,
    Status,
    Validity,
    build_base_info,
    build_request,
    build_response,
    checksum,
    encode_frame,
    parse_base_info,
    parse_request,
    parse_response,
    status_text,
)
from hardware.idcard.sam_emulator import SAMPLE_CARD, SAMPLE_SAM_ID, SAMPLE_TEXT
from shared.idnumber import id_check_character, is_valid_id_number, mask_id_number
from tests.hardware.idcard.conftest import OTHER_TEXT


def drain(parser: FrameParser) -> tuple[list[bytes], list[ProtocolError]]:
    """Every frame the parser can give now, and the errors on the way; bounded by its buffer."""
    frames, errors = [], []
    for _ in range(parser.buffered + 2):  # each frame or error consumes at least one byte
        try:
            payload = parser.next_frame()
        except ProtocolError as error:
            errors.append(error)
            continue
        if payload is None:
            return frames, errors
        frames.append(payload)
    raise AssertionError("the parser did not settle")


# --- frames --------------------------------------------------------------------------------


def test_find_card_request_is_the_documented_bytes_with_checksum_by_hand():
    frame = build_request(Command.FIND_CARD)
    assert frame == bytes.fromhex("AA AA AA 96 69 00 03 20 01 22")
    # The checksum is the XOR of everything after the preamble: length 00 03, then 20 01.
    assert 0x00 ^ 0x03 ^ 0x20 ^ 0x01 == 0x22 == frame[-1]


def test_known_frames_of_the_other_commands_and_answers():
    assert build_request(Command.SELECT_CARD) == bytes.fromhex("AAAAAA9669 0003 2002 21")
    assert build_request(Command.READ_BASE_INFO) == bytes.fromhex("AAAAAA9669 0003 3001 32")
    assert build_request(Command.SAM_ID) == bytes.fromhex("AAAAAA9669 0003 12FF EE")
    # "Card found" with its four zero bytes, and "no card": 0x08 ^ 0x9F = 0x97, 0x04 ^ 0x80.
    assert build_response(0x9F, bytes(4)) == bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")
    assert build_response(0x80) == bytes.fromhex("AAAAAA9669 0004 000080 84")


def test_base_info_answer_has_the_length_real_modules_send():
    frame = build_response(Status.OK, build_base_info(SAMPLE_CARD))
    # 3 status bytes + 2 + 2 lengths + 256 text + 1024 photo + checksum = 0x0508.
    assert frame[5:7] == bytes.fromhex("0508")
    assert frame[7:14] == bytes.fromhex("000090 0100 0400")
    assert len(frame) == 7 + 0x0508


@pytest.mark.parametrize("command", list(Command))
def test_request_round_trip(command):
    parser = FrameParser()
    parser.feed(build_request(command))
    request = parse_request(parser.next_frame())
    assert request == Request(command.cmd, command.para)
    assert request.command is command
    assert parser.next_frame() is None


def test_response_round_trip_and_unknown_codes():
    parser = FrameParser(min_length=MIN_RESPONSE_LENGTH)
    parser.feed(build_response(0x90, b"\x01\x02", sw1=0x12, sw2=0x34) + build_response(0x77))
    assert parse_response(parser.next_frame()) == Response(0x90, b"\x01\x02", 0x12, 0x34)
    unknown = parse_response(parser.next_frame())
    assert unknown.sw3 == 0x77
    assert unknown.status is None
    assert Command.of(0x55, 0x01) is None


def test_parser_takes_a_frame_a_byte_at_a_time():
    frame = build_response(Status.OK, build_base_info(SAMPLE_CARD))
    parser = FrameParser(min_length=MIN_RESPONSE_LENGTH)
    for byte in frame[:-1]:
        parser.feed(bytes([byte]))
        assert parser.next_frame() is None
    assert parser.expected_size == len(frame)
    assert parser.buffered == len(frame) - 1
    parser.feed(frame[-1:])
    assert parse_response(parser.next_frame()).data == build_base_info(SAMPLE_CARD)


def test_parser_skips_garbage_and_partial_preambles():
    frame = build_request(Command.FIND_CARD)
    parser = FrameParser()
    parser.feed(b"\x00\xff" + PREAMBLE[:3] + b"\x13" + PREAMBLE[:4])
    assert parser.next_frame() is None
    assert parser.buffered == 4  # a possible start of a preamble is kept
    parser.feed(frame[4:])  # the last preamble byte and the rest: the kept bytes were its start
    assert parser.next_frame() == b"\x20\x01"
    assert parser.discarded == 2 + 3 + 1


def test_bad_checksum_is_refused_and_the_next_frame_recovered():
    bad = bytearray(build_request(Command.FIND_CARD))
    bad[-1] ^= 0x01
    parser = FrameParser()
    parser.feed(bytes(bad) + build_request(Command.SELECT_CARD))
    with pytest.raises(ChecksumError, match="checksum 0x23 should be 0x22"):
        parser.next_frame()
    assert parser.next_frame() == b"\x20\x02"


@pytest.mark.parametrize("length", [0, 1, 2, MAX_LENGTH + 1, 0xFFFF])
def test_impossible_length_is_refused_at_once(length):
    parser = FrameParser()
    parser.feed(PREAMBLE + length.to_bytes(2, "big"))
    with pytest.raises(LengthError):
        parser.next_frame()
    assert parser.next_frame() is None


def test_short_payloads_are_length_errors():
    with pytest.raises(LengthError):
        parse_request(b"\x20")
    with pytest.raises(LengthError):
        parse_response(b"\x00\x00")
    with pytest.raises(ValueError, match="longer than a frame"):
        encode_frame(bytes(MAX_LENGTH))


def test_a_fake_header_that_swallows_a_good_frame_does_not_lose_it():
    # A preamble in the garbage whose length reaches over the real frame: the checksum fails,
    # and the parser finds the real frame inside the bytes it had taken for the fake one.
    frame = build_request(Command.READ_BASE_INFO)
    parser = FrameParser()
    parser.feed(PREAMBLE + b"\x00\x0b" + b"\x01" + frame)
    frames, errors = drain(parser)
    assert frames == [b"\x30\x01"]
    assert len(errors) == 1
    assert isinstance(errors[0], ChecksumError)


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=64), max_size=20),
    min_length=st.sampled_from([3, 4]),
)
def test_arbitrary_bytes_raise_nothing_but_protocol_errors(chunks, min_length):
    parser = FrameParser(min_length=min_length, max_length=64)
    for chunk in chunks:
        parser.feed(chunk)
        for payload in drain(parser)[0]:
            assert len(payload) >= min_length - 1
            if min_length == MIN_RESPONSE_LENGTH:
                parse_response(payload)
            else:
                parse_request(payload)


# Garbage rich in the preamble's own bytes, so near-misses are tried, but without a preamble.
_garbage = st.lists(
    st.one_of(st.sampled_from([0xAA, 0x96, 0x69, 0x00]), st.integers(0, 255)), max_size=40
).map(bytes)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=3, max_size=40), min_size=1, max_size=5),
    garbage=st.lists(_garbage, min_size=6, max_size=6),
    split=st.integers(1, 17),
)
def test_frames_in_garbage_are_all_recovered(payloads, garbage, split):
    garbage = [g for g in garbage if PREAMBLE not in g]
    stream = b""
    for index, payload in enumerate(payloads):
        stream += (garbage[index] if index < len(garbage) else b"") + encode_frame(payload)
    stream += garbage[-1] if garbage else b""
    parser = FrameParser(min_length=MIN_RESPONSE_LENGTH)
    found = []
    for start in range(0, len(stream), split):  # fed in pieces of any size
        parser.feed(stream[start : start + split])
        frames, errors = drain(parser)
        found += frames
        assert errors == []
    assert found == payloads


def test_every_status_has_a_message():
    for status in Status:
        assert status.message
        assert status.name in status_text(status)
    assert status_text(0x41) == "READ_FAILED (0x41): the card could not be read"
    assert status_text(0x42) == "unknown status 0x42"


def test_sam_id_display():
    assert str(SamId.from_data(SAMPLE_SAM_ID)) == "05.01-20200101-0012345678-0987654321"
    with pytest.raises(LengthError):
        SamId.from_data(bytes(15))


# --- the card's text -----------------------------------------------------------------------


def test_text_fields_sit_at_their_offsets():
    raw = OTHER_TEXT.to_bytes()
    assert len(raw) == TEXT_SIZE
    expected = {
        "name": (0, 30),
        "sex": (30, 2),
        "nation": (32, 4),
        "birth": (36, 16),
        "address": (52, 70),
        "id_number": (122, 36),
        "authority": (158, 30),
        "valid_from": (188, 16),
        "valid_to": (204, 16),
    }
    assert {field: (offset, size) for field, offset, size in TEXT_LAYOUT} == expected
    for field, (offset, size) in expected.items():
        value = getattr(OTHER_TEXT, field)
        encoded = value.encode("utf-16-le")
        assert raw[offset : offset + len(encoded)] == encoded, field
        assert raw[offset + len(encoded) : offset + size] == b"\x20\x00" * (
            (size - len(encoded)) // 2
        )
    assert raw[122:158].decode("utf-16-le") == "110101199003071233"
    assert raw[220:] == b"\x20\x00" * 18  # the rest of the block: padding
    assert IdCardText.from_bytes(raw) == OTHER_TEXT


def test_text_parsing_trims_spaces_and_nuls_and_reads_long_term():
    raw = bytearray(SAMPLE_TEXT.to_bytes())
    raw[26:30] = bytes(4)  # the name field's end zero-padded instead of space-padded
    text = IdCardText.from_bytes(bytes(raw))
    assert text == SAMPLE_TEXT
    assert text.valid_to == LONG_TERM
    assert text.long_term
    assert text.valid_to_date is None
    assert text.sex_name == "女"
    assert text.nation_name == "汉族"
    assert text.birth_date == date(1949, 12, 31)


def test_text_that_does_not_fit_or_is_not_text_is_refused():
    with pytest.raises(ValueError, match="name field takes 30 bytes"):
        IdCardText("名" * 16, "1", "01", "", "", "", "", "", "").to_bytes()
    with pytest.raises(CardDataError, match="255 bytes"):
        IdCardText.from_bytes(bytes(255))
    broken = bytearray(SAMPLE_TEXT.to_bytes())
    broken[0:2] = b"\x00\xd8"  # a lone UTF-16 surrogate
    with pytest.raises(CardDataError, match="name field is not UCS-2"):
        IdCardText.from_bytes(bytes(broken))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=TEXT_SIZE, max_size=TEXT_SIZE))
def test_any_text_block_parses_or_is_a_card_data_error(raw):
    with contextlib.suppress(CardDataError):
        IdCardText.from_bytes(raw)


def test_base_info_round_trip_keeps_the_photo_as_bytes():
    card = CardData(OTHER_TEXT, bytes(range(256)) * 4)
    assert parse_base_info(build_base_info(card)) == card
    data = build_base_info(card)
    with pytest.raises(CardDataError, match="lengths say"):
        parse_base_info(data[:-1])
    with pytest.raises(CardDataError, match="not 256"):
        parse_base_info(b"\x00\x10\x00\x00" + bytes(16))
    with pytest.raises(CardDataError, match="no lengths"):
        parse_base_info(b"\x01")


def test_code_tables():
    assert len([code for code in NATIONS if int(code) <= 56]) == 56
    assert [int(code) for code in NATIONS][:56] == list(range(1, 57))
    assert len(set(NATIONS.values())) == len(NATIONS)
    assert NATIONS["01"] == "汉族"
    assert NATIONS["05"] == "维吾尔族"
    assert NATIONS["56"] == "基诺族"
    assert SEXES["1"] == "男"
    assert SEXES["2"] == "女"
    assert set(SEXES) == {"0", "1", "2", "9"}


# --- ID numbers, validity, masking ---------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["11010519491231002X", "440524188001010014", "110101199003071233"],
)
def test_valid_id_numbers(number):
    assert is_valid_id_number(number)
    assert id_check_character(number[:17]) == number[17]


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # the check character should be X
        "11010519491231002x",  # a lower-case x is not what cards hold
        "440524188001010015",
        "44052418800101001",  # 17 characters
        "4405241880010100140",
        "44052418800101001A",
        "\uff1440524188001010014",  # a full-width digit 4 first
        "",
    ],
)
def test_invalid_id_numbers(number):
    assert not is_valid_id_number(number)


def test_check_character_by_hand():
    # 11010519491231002: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 give a sum of 167;
    # 167 mod 11 = 2, and (12 - 2) mod 11 = 10, written X.
    digits = "11010519491231002"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    assert sum(int(d) * w for d, w in zip(digits, weights, strict=True)) == 167
    assert id_check_character(digits) == "X"
    with pytest.raises(ValueError):
        id_check_character("1101051949123100")


def _card(valid_from: str, valid_to: str, **changes: str) -> IdCardText:
    fields = {**vars(OTHER_TEXT), "valid_from": valid_from, "valid_to": valid_to, **changes}
    return IdCardText(**fields)


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "day", "validity"),
    [
        ("20150601", "20350601", date(2022, 4, 1), Validity.VALID),
        ("20150601", "20350601", date(2015, 6, 1), Validity.VALID),  # the first day
        ("20150601", "20350601", date(2035, 6, 1), Validity.VALID),  # the last day
        ("20150601", "20350601", date(2035, 6, 2), Validity.EXPIRED),
        ("20150601", "20350601", date(2015, 5, 31), Validity.NOT_YET_VALID),
        ("20150601", LONG_TERM, date(2099, 1, 1), Validity.VALID),
        ("20150601", LONG_TERM, date(2015, 5, 31), Validity.NOT_YET_VALID),
        ("20150601", "20350231", date(2022, 4, 1), Validity.UNREADABLE),  # no 31 February
        ("2015060", "20350601", date(2022, 4, 1), Validity.UNREADABLE),
        ("20150601", "", date(2022, 4, 1), Validity.UNREADABLE),
    ],
)
def test_validity_dates(valid_from, valid_to, day, validity):
    assert _card(valid_from, valid_to).validity_on(day) is validity


def test_problems_name_what_is_wrong_but_never_the_number():
    assert _card("20150601", "20350601").problems(date(2022, 4, 1)) == []
    assert SAMPLE_TEXT.problems(date(2022, 4, 1)) == []
    wrong = _card("20150601", "20200601", id_number="110101199003071234", birth="1990037")
    problems = wrong.problems(date(2022, 4, 1))
    assert problems == [
        "the ID number is malformed or its check character is wrong",
        "the birth date is unreadable",
        "the card is expired",
    ]
    other_birth = _card("20150601", "20350601", birth="19900308")
    assert other_birth.problems(date(2022, 4, 1)) == [
        "the ID number's birth date differs from the card's"
    ]
    assert not any("110101" in problem for problem in problems)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("110101199003071234", "1101**********1234"),
        ("11010519491231002X", "1101**********002X"),
        ("110101900307123", "1101*******7123"),  # a 15-digit first-generation number
        ("123456789", "1234*6789"),
        ("12345678", "********"),
        ("", ""),
    ],
)
def test_mask_id_number(number, masked):
    assert mask_id_number(number) == masked


def test_reprs_never_show_the_id_number_nor_the_address():
    card = CardData(OTHER_TEXT, bytes(1024))
    response = Response(Status.OK, build_base_info(card))
    for shown in (repr(OTHER_TEXT), str(OTHER_TEXT), repr(card), str(card), repr(response)):
        assert "110101199003071233" not in shown
        assert OTHER_TEXT.address not in shown
        assert OTHER_TEXT.name not in shown
    assert "1101**********1233" in repr(card)
    assert "photo=<1024 bytes>" in repr(card)
    assert repr(response) == "Response(OK, 1284 data bytes)"
    assert f"{card}" == repr(card)
    assert f"{[card]}" == f"[{card!r}]"


def test_checksum_is_xor():
    assert checksum(b"") == 0
    assert checksum(b"\x00\x03\x20\x01") == 0x22
    assert checksum(bytes([0xFF, 0x0F])) == 0xF0
