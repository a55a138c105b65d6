"""Base45 against the RFC 9285 examples, its error cases, and a round-trip property."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.base45 import Base45Error, b45decode, b45encode

RFC_9285_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


@pytest.mark.parametrize(("data", "text"), RFC_9285_EXAMPLES)
def test_rfc_examples(data: bytes, text: str) -> None:
    assert b45encode(data) == text
    assert b45decode(text) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GGW", "more than two bytes"),  # 65535 + 1 overflows
        ("abc", "not in the Base45 alphabet"),
        ("BB8B", "dangling"),
        (":;", "not in the Base45 alphabet"),
        ("::", "more than one byte"),
    ],
)
def test_invalid_text_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(Base45Error, match=message):
        b45decode(text)


@given(st.binary(max_size=512))
def test_round_trip(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


@given(st.text(max_size=64))
def test_decode_raises_only_base45_error(text: str) -> None:
    with contextlib.suppress(Base45Error):
        b45decode(text)
