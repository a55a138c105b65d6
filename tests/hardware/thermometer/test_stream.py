"""The streaming forehead frame: built and parsed both ways, garbage skipped, damage refused."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.thermometer import stream
from hardware.thermometer.protocol import ChecksumError, ProtocolError
from hardware.thermometer.stream import StreamDecoder, StreamFrameError

tenths = st.integers(0, 2559)


def test_the_frame_of_the_issue():
    # AA 55 06 24 07 -> 36.7 °C; checksum = (0xAA + 0x55 + 0x06 + 0x24 + 0x07) & 0xFF = 0x30.
    frame = bytes.fromhex("aa5506240730")
    assert stream.build_frame(36.7) == frame
    assert stream.parse_frame(frame) == 36.7


@given(tenths)
def test_a_frame_round_trips(value):
    frame = stream.build_frame(value / 10)
    assert stream.parse_frame(frame) == value / 10
    assert StreamDecoder().feed(frame) == [value / 10]


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (bytes.fromhex("aa5506240731"), ChecksumError),
        (bytes.fromhex("aa5507240731"), StreamFrameError),  # length byte
        (bytes.fromhex("aa55062410"), StreamFrameError),  # short
        (bytes([0xAA, 0x55, 6, 36, 10, (0xAA + 0x55 + 6 + 36 + 10) & 0xFF]), StreamFrameError),
        (bytes.fromhex("ab5506240731"), StreamFrameError),  # header
    ],
    ids=["checksum", "length-byte", "short", "tenths-10", "header"],
)
def test_bad_frames_are_protocol_errors(frame, error):
    with pytest.raises(error):
        stream.parse_frame(frame)


@pytest.mark.parametrize("celsius", [-0.1, 256.0, float("nan"), float("inf")])
def test_temperatures_a_frame_cannot_carry_are_refused_when_built(celsius):
    with pytest.raises(ValueError, match="stream frame"):
        stream.build_frame(celsius)


def test_frames_in_pieces_and_back_to_back_are_all_read():
    data = stream.build_frame(36.5) + stream.build_frame(36.6) + stream.build_frame(36.7)
    decoder = StreamDecoder()
    found = []
    for byte in data:
        found += decoder.feed(bytes([byte]))
    assert found == [36.5, 36.6, 36.7]


def test_a_false_header_just_before_a_frame_does_not_hide_it():
    found = StreamDecoder().feed(b"\xaa\x55" + stream.build_frame(36.9))
    assert found[-1] == 36.9
    assert all(isinstance(item, ProtocolError) for item in found[:-1])


garbage = st.binary(max_size=40).map(lambda data: data.replace(b"\xaa", b""))


@given(garbage, tenths, garbage, tenths)
def test_frames_are_found_among_garbage(before, first, between, second):
    """Garbage without 0xAA cannot start a header, so no frame can swallow a real one."""
    data = before + stream.build_frame(first / 10) + between + stream.build_frame(second / 10)
    found = StreamDecoder().feed(data)
    assert [item for item in found if isinstance(item, float)] == [first / 10, second / 10]


@given(st.binary(max_size=300), st.integers(1, 7))
def test_any_bytes_give_only_readings_of_whole_valid_frames(data, chunk):
    decoder = StreamDecoder()
    found = []
    for start in range(0, len(data), chunk):
        found += decoder.feed(data[start : start + chunk])
    valid = set()
    for i in range(len(data) - 5):
        with contextlib.suppress(ProtocolError):
            valid.add(stream.parse_frame(data[i : i + 6]))
    for item in found:
        assert isinstance(item, float | ProtocolError)
        if isinstance(item, float):
            assert item in valid


@given(tenths, st.integers(0, 5), st.integers(1, 255))
def test_one_damaged_byte_never_gives_a_reading(value, index, flip):
    frame = bytearray(stream.build_frame(value / 10))
    frame[index] ^= flip
    assert not [item for item in StreamDecoder().feed(bytes(frame)) if isinstance(item, float)]


@given(st.binary(max_size=100))
def test_the_decoder_holds_back_at_most_a_frame(data):
    _, rest = stream.scan_frames(data)
    assert len(rest) < stream.FRAME_SIZE


@given(st.binary(max_size=10))
def test_the_whole_frame_parser_raises_only_protocol_errors(data):
    with contextlib.suppress(ProtocolError):
        assert 0.0 <= stream.parse_frame(data) <= 255.9
