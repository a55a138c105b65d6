"""Device request signatures and UUIDv7 ids."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from shared.auth import (
    MAX_SKEW_MS,
    AuthError,
    SignedRequest,
    load_device_public_key,
    public_key_bytes,
    sign_request,
    weak_public_key,
)
from shared.keys import b64url
from shared.uuid7 import Uuid7Generator, uuid7, uuid7_time_ms

NOW_MS = 1_795_000_000_000
KEY = Ed25519PrivateKey.generate()


def signed(body: bytes = b"{}", target: str = "/api/v1/device/checkins") -> dict[str, str]:
    return sign_request(KEY, "d_1", method="POST", target=target, body=body, time_ms=NOW_MS)


def check(
    headers: dict[str, str],
    body: bytes = b"{}",
    now_ms: int = NOW_MS,
    target: str = "/api/v1/device/checkins",
    method: str = "POST",
) -> None:
    SignedRequest.from_headers(headers).check(KEY.public_key(), method, target, body, now_ms)


def test_signed_request_verifies() -> None:
    check(signed())


def test_header_names_are_case_insensitive() -> None:
    check({name.lower(): value for name, value in signed().items()})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"x":1}'}, "does not verify"),
        ({"target": "/api/v1/device/status"}, "does not verify"),
        ({"method": "PUT"}, "does not verify"),
        ({"now_ms": NOW_MS + MAX_SKEW_MS + 1}, "clock-skew"),
        ({"now_ms": NOW_MS - MAX_SKEW_MS - 1}, "clock-skew"),
    ],
)
def test_anything_changed_is_refused(change: dict, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        check(signed(), **change)


def test_another_devices_key_is_refused() -> None:
    headers = signed()
    with pytest.raises(AuthError):
        SignedRequest.from_headers(headers).check(
            Ed25519PrivateKey.generate().public_key(),
            "POST",
            "/api/v1/device/checkins",
            b"{}",
            NOW_MS,
        )


def test_every_request_gets_a_fresh_nonce() -> None:
    assert signed()["X-Sentinel-Nonce"] != signed()["X-Sentinel-Nonce"]


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("X-Sentinel-Time", "soon", "timestamp"),
        ("X-Sentinel-Nonce", "short", "nonce"),
        ("X-Sentinel-Signature", "!!!", "base64url"),
    ],
)
def test_malformed_headers_are_refused(header: str, value: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        SignedRequest.from_headers({**signed(), header: value})


def test_missing_header_is_named() -> None:
    headers = signed()
    del headers["X-Sentinel-Nonce"]
    with pytest.raises(AuthError, match="X-Sentinel-Nonce"):
        SignedRequest.from_headers(headers)


def test_device_public_key_travels_as_32_raw_bytes() -> None:
    text = b64url(public_key_bytes(KEY.public_key()))
    assert public_key_bytes(load_device_public_key(text)) == public_key_bytes(KEY.public_key())
    with pytest.raises(ValueError, match="32 bytes"):
        load_device_public_key(b64url(b"short"))


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(item.version == 7 and item.variant == uuid.RFC_4122 for item in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_carries_its_time_and_stays_ordered_when_the_clock_steps_back() -> None:
    generator = Uuid7Generator()
    first = generator(now_ms=NOW_MS + 10_000_000)
    second = generator(now_ms=NOW_MS)  # clock stepped back
    assert second > first
    assert uuid7_time_ms(first) == NOW_MS + 10_000_000
    with pytest.raises(ValueError, match="version 4"):
        uuid7_time_ms(uuid.uuid4())


# The eight points of small order (the 8-torsion of edwards25519), each in its one encoding
# with the sign bit a canonical point allows, and their orders.
SMALL_ORDER = {
    "0100000000000000000000000000000000000000000000000000000000000000": 1,
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f": 2,
    "0000000000000000000000000000000000000000000000000000000000000000": 4,
    "0000000000000000000000000000000000000000000000000000000000000080": 4,
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05": 8,
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85": 8,
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a": 8,
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa": 8,
}


def test_keys_of_real_devices_are_sound() -> None:
    for _ in range(50):
        raw = public_key_bytes(Ed25519PrivateKey.generate().public_key())
        assert weak_public_key(raw) is None


@pytest.mark.parametrize("encoded", SMALL_ORDER)
def test_every_point_of_small_order_is_refused(encoded: str) -> None:
    assert "small order" in (weak_public_key(bytes.fromhex(encoded)) or "")


@pytest.mark.parametrize(
    "encoded",
    [
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
        "0100000000000000000000000000000000000000000000000000000000000080",  # x = 0, odd
        "0200000000000000000000000000000000000000000000000000000000000000",  # y = 2: no x
    ],
)
def test_encodings_of_no_point_or_not_canonical_are_refused(encoded: str) -> None:
    assert "not a canonical encoding" in (weak_public_key(bytes.fromhex(encoded)) or "")


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_are_sound_or_refused_with_a_reason(raw: bytes) -> None:
    assert weak_public_key(raw) in {
        None,
        "the key is not a canonical encoding of a point of edwards25519",
        "the key is a point of small order, which no private key stands behind",
    }
