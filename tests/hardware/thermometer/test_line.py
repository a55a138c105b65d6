"""The text line protocol: the forms accepted, the ones refused, garbage and long lines skipped."""

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.thermometer import line
from hardware.thermometer.line import LineDecoder, LineError
from hardware.thermometer.protocol import ProtocolError


@pytest.mark.parametrize(
    ("text", "celsius"),
    [
        (b"T=36.7", 36.7),
        (b"36.7", 36.7),
        (b"T=36.7C", 36.7),
        (b"t = 36.7 c", 36.7),
        (b"TEMP:36.71", 36.71),
        ("T=36.7°C".encode(), 36.7),
        ("36.7 °C".encode(), 36.7),
        (b"  T=37  ", 37.0),
        (b"T=-4.5", -4.5),
        (b"T=100.125", 100.125),
    ],
)
def test_accepted_forms(text, celsius):
    assert line.parse_line(text) == celsius


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"T=nan", "nan"),
        (b"T=NaN", "nan"),
        (b"inf", "inf"),
        (b"T=-inf", "inf"),
        (b"T=ovf", "ovf"),
        (b"T=98.6F", "not a temperature"),
        (b"T=3.67e1", "not a temperature"),
        (b"T=36.7 A=25.0", "not a temperature"),
        (b"Object = 36.71*C", "not a temperature"),
        (b"T=", "not a temperature"),
        (b"T=.5", "not a temperature"),
        (b"T=+36.7", "not a temperature"),
        (b"T=1036.7", "not a temperature"),
        (
            "T=\u0663\u0666.\u0667".encode(),
            "not a temperature",
        ),  # Arabic-Indic digits: float() takes them
        (b"T=36.7\xff", "UTF-8"),
        (b"T=" + b"0" * 40, "longer"),
    ],
)
def test_refused_forms(text, why):
    with pytest.raises(LineError, match=why):
        line.parse_line(text)


def test_the_first_line_is_skipped_as_it_may_be_the_tail_of_one():
    decoder = LineDecoder()
    assert decoder.feed(b"6.7\r\nT=36.8\r\n") == [36.8]
    decoder.reset()
    assert decoder.feed(b"T=36.9\r\n") == []
    assert decoder.feed(b"T=37.0\n\nT=37.1\rT=37.2") == [37.0, 37.1]
    assert decoder.feed(b"\n") == [37.2]


def test_an_endless_line_is_refused_once_and_the_next_line_read():
    decoder = LineDecoder()
    decoder.feed(b"\n")
    found = decoder.feed(b"x" * 100)
    found += decoder.feed(b"y" * 100 + b"\nT=36.6\n")
    assert [type(item) for item in found] == [LineError, float]
    assert found[-1] == 36.6


temperatures = st.integers(-999, 999).map(lambda tenths: tenths / 10)
styles = st.sampled_from(
    [
        {"key": "T=", "unit": ""},
        {"key": "", "unit": ""},
        {"key": "T=", "unit": "C"},
        {"key": "TEMP: ", "unit": " °C"},
    ]
)


@given(temperatures, styles)
def test_a_line_round_trips(celsius, style):
    text = line.format_line(celsius, **style)
    assert text.endswith(b"\r\n")
    assert line.parse_line(text[:-2]) == celsius
    assert LineDecoder().feed(b"\n" + text) == [celsius]


@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_failed_sensor_is_printed_as_arduino_does_and_refused(value):
    text = line.format_line(value)
    with pytest.raises(LineError, match="sensor read failed"):
        line.parse_line(text.strip())


ends = st.sampled_from([b"\n", b"\r\n", b"\r"])


@given(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    ends,
    temperatures,
)
def test_a_line_is_found_after_garbage(garbage, end, celsius):
    found = LineDecoder().feed(garbage + end + line.format_line(celsius))
    assert found == [celsius]


@given(st.binary(max_size=300), st.integers(1, 9))
def test_any_bytes_give_only_readings_of_whole_good_lines(data, chunk):
    decoder = LineDecoder()
    found = []
    for start in range(0, len(data), chunk):
        found += decoder.feed(data[start : start + chunk])
    valid = set()
    for text in data.replace(b"\r", b"\n").split(b"\n")[1:-1]:
        with contextlib.suppress(ProtocolError):
            valid.add(line.parse_line(text))
    for item in found:
        assert isinstance(item, float | ProtocolError)
        if isinstance(item, float):
            assert math.isfinite(item)
            assert item in valid


@given(st.binary(max_size=200))
def test_the_decoder_holds_back_at_most_a_line(data):
    _, rest, _ = line.scan_lines(data, True)
    assert len(rest) <= line.MAX_LINE


@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_the_line_parser_raises_only_protocol_errors(data):
    with contextlib.suppress(ProtocolError):
        assert math.isfinite(line.parse_line(data))
