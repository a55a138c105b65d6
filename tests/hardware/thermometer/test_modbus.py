"""Modbus RTU: CRC, frames built and parsed both ways, garbage skipped, damage never misread."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.thermometer import modbus
from hardware.thermometer.modbus import (
    ModbusDecoder,
    ModbusError,
    ModbusExceptionReply,
    Request,
)
from hardware.thermometer.protocol import ChecksumError, ProtocolError

addresses = st.integers(1, modbus.MAX_ADDRESS)
words = st.integers(0, 0xFFFF)
tenths = st.integers(-0x8000, 0x7FFF)


def test_crc_matches_the_published_check_value_and_a_known_frame():
    # The catalogue check value of CRC-16/MODBUS over "123456789".
    assert modbus.crc16(b"123456789") == 0x4B37
    # The classic request "device 1, read 1 holding register from 0", CRC sent as 84 0A.
    assert modbus.build_read_request(1, 0, 1) == bytes.fromhex("010300000001840a")


def test_a_reply_is_read_as_signed_tenths():
    reply = modbus.build_read_reply(1, [365])
    assert reply[:5] == bytes.fromhex("010302016d")
    decoder = ModbusDecoder(1, 0)
    assert decoder.feed(reply) == [36.5]
    assert decoder.feed(modbus.build_read_reply(1, [0xFF9C])) == [-10.0]


@given(addresses, st.integers(0, 0xFFFF - 124), st.integers(1, 125))
def test_a_request_round_trips(address, register, count):
    frame = modbus.build_read_request(address, register, count)
    assert len(frame) == modbus.REQUEST_SIZE
    assert modbus.parse_request(frame) == Request(
        address, 3, register.to_bytes(2, "big") + count.to_bytes(2, "big")
    )
    assert modbus.scan_requests(frame) == ([modbus.parse_request(frame)], b"")


@given(addresses, st.lists(words, min_size=1, max_size=125))
def test_a_reply_round_trips(address, values):
    frame = modbus.build_read_reply(address, values)
    assert modbus.parse_read_reply(frame, address, len(values)) == tuple(values)
    assert modbus.scan_replies(frame, address, len(values)) == ([tuple(values)], b"")


@given(tenths)
def test_a_temperature_round_trips_through_a_register(value):
    assert modbus.word_to_celsius(modbus.celsius_to_word(value / 10)) == value / 10


@given(addresses, st.integers(1, 255))
def test_an_exception_reply_is_reported_with_its_code(address, code):
    frame = modbus.build_exception_reply(address, 3, code)
    with pytest.raises(ModbusExceptionReply) as caught:
        modbus.parse_read_reply(frame, address, 1)
    assert caught.value.code == code
    [found], rest = modbus.scan_replies(frame, address, 1)
    assert isinstance(found, ModbusExceptionReply)
    assert rest == b""


def test_a_reply_from_another_device_is_not_a_reading():
    frame = modbus.build_read_reply(2, [365])
    [found] = ModbusDecoder(1, 0).feed(frame)
    assert isinstance(found, ModbusError)
    assert "device 2" in str(found)


def test_a_reply_with_a_bad_crc_is_reported_not_read():
    frame = bytearray(modbus.build_read_reply(1, [365]))
    frame[-1] ^= 0x01
    found, _ = modbus.scan_replies(bytes(frame), 1, 1)
    assert found
    assert all(isinstance(item, ChecksumError) for item in found)
    with pytest.raises(ChecksumError):
        modbus.parse_read_reply(bytes(frame), 1, 1)


def test_the_echo_of_our_own_request_is_skipped():
    """A 2-wire RS-485 adapter without echo suppression hands back what we sent."""
    decoder = ModbusDecoder(1, 0)
    assert decoder.feed(decoder.request() + modbus.build_read_reply(1, [370])) == [37.0]


def test_a_reply_in_pieces_is_put_together():
    frame = modbus.build_read_reply(1, [366])
    decoder = ModbusDecoder(1, 0)
    assert [decoder.feed(frame[i : i + 1]) for i in range(len(frame))][-1] == [36.6]


@pytest.mark.parametrize(
    ("request_frame", "expected"),
    [
        (modbus.build_read_request(1, 0, 1), modbus.build_read_reply(1, [365])),
        (modbus.build_read_request(2, 0, 1), None),  # another device's
        (modbus.build_read_request(1, 7, 1), modbus.build_exception_reply(1, 3, 2)),
        (modbus.build_read_request(1, 0, 2), modbus.build_exception_reply(1, 3, 2)),
        (modbus.with_crc(bytes([1, 3, 0, 0, 0, 0])), modbus.build_exception_reply(1, 3, 3)),
        (modbus.with_crc(bytes([1, 6, 0, 0, 0, 1])), modbus.build_exception_reply(1, 6, 1)),
    ],
    ids=["ours", "other-device", "unknown-register", "past-the-end", "count-0", "write"],
)
def test_the_device_side_answers_as_a_device_does(request_frame, expected):
    request = modbus.parse_request(request_frame)
    assert modbus.answer(request, 1, {0: 365}) == expected


garbage = st.binary(max_size=40)


@given(garbage, st.integers(-450, 450), garbage)
def test_a_reply_is_found_among_garbage(before, value, after):
    """Garbage free of the function bytes 0x03 and 0x83 can never start a candidate frame."""
    before = bytes(b for b in before if b not in (0x03, 0x83))
    frame = modbus.build_read_reply(1, [modbus.celsius_to_word(value / 10)])
    found = ModbusDecoder(1, 0).feed(before + frame + after)
    readings = [item for item in found if not isinstance(item, ProtocolError)]
    assert readings[:1] == [value / 10]


@given(st.binary(max_size=300), st.integers(1, 4))
def test_any_bytes_give_only_readings_framed_with_a_good_crc(data, chunk):
    """Arbitrary input never raises, and every value read is in a CRC-valid reply from us."""
    decoder = ModbusDecoder(1, 0)
    found = []
    for start in range(0, len(data), chunk):
        found += decoder.feed(data[start : start + chunk])
    valid = {
        modbus.word_to_celsius(int.from_bytes(data[i + 3 : i + 5], "big"))
        for i in range(len(data) - 6)
        if data[i : i + 3] == b"\x01\x03\x02" and modbus.crc_ok(data[i : i + 7])
    }
    for item in found:
        assert isinstance(item, float | ProtocolError)
        if isinstance(item, float):
            assert item in valid


@given(st.integers(-450, 450), st.integers(0, 6), st.integers(1, 255))
def test_one_damaged_byte_never_gives_a_reading(value, index, flip):
    frame = bytearray(modbus.build_read_reply(1, [modbus.celsius_to_word(value / 10)]))
    frame[index] ^= flip
    found = ModbusDecoder(1, 0).feed(bytes(frame))
    assert not [item for item in found if isinstance(item, float)]


@given(st.binary(max_size=300))
def test_any_bytes_give_only_whole_crc_valid_requests(data):
    requests, rest = modbus.scan_requests(data)
    assert len(rest) < modbus.REQUEST_SIZE
    for request in requests:
        frame = bytes([request.address, request.function]) + request.data
        assert modbus.with_crc(frame) in data


@pytest.mark.parametrize("frame", [b"", b"\x01", b"\x01\x03\x02\x01", b"\x01\x83\x02\x00"])
def test_short_frames_are_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        modbus.parse_read_reply(frame, 1, 1)
    with pytest.raises(ProtocolError):
        modbus.parse_request(frame)


@pytest.mark.parametrize(
    ("address", "register", "count"), [(0, 0, 1), (248, 0, 1), (1, -1, 1), (1, 0, 126)]
)
def test_impossible_requests_are_refused_when_built(address, register, count):
    with pytest.raises(ValueError, match=r"."):
        modbus.build_read_request(address, register, count)


@given(st.binary(max_size=20), st.integers(1, 3))
def test_whole_frame_parsers_raise_only_protocol_errors(data, count):
    with contextlib.suppress(ProtocolError):
        modbus.parse_read_reply(data, 1, count)
    with contextlib.suppress(ProtocolError):
        modbus.parse_request(data)
