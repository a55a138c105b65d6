"""Sealed ID-card identities: only the host's key opens them; altered or garbage seals refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.denylist import DenyList, HashKind, identity_hash
from shared.keys import b64url, b64url_decode
from shared.sealed import (
    PREFIX,
    CardIdentity,
    DocumentType,
    SealError,
    SealingKey,
    seal,
)

RESIDENT = CardIdentity.of(DocumentType.CN_ID, "chn", "11010519491231002x")
PASSPORT = CardIdentity.of(DocumentType.EMRTD, "UTO", "L898902C3")


@pytest.fixture(scope="module")
def host_key() -> SealingKey:
    return SealingKey.generate()


def test_the_host_opens_what_a_device_sealed(host_key: SealingKey) -> None:
    for identity in (RESIDENT, PASSPORT):
        sealed = seal(identity, host_key.public_raw)
        assert sealed.startswith(PREFIX)
        assert host_key.open(sealed) == identity
        assert identity.number not in sealed


def test_every_seal_is_different_and_shows_nothing(host_key: SealingKey) -> None:
    first, second = (seal(RESIDENT, host_key.public_raw) for _ in range(2))
    assert first != second  # a fresh ephemeral key: two check-ins of one person do not link
    assert "1101" not in repr(RESIDENT) and "<number>" in repr(RESIDENT)


def test_normalised_and_keyed_for_lookup() -> None:
    assert RESIDENT.number == "11010519491231002X"
    assert RESIDENT.country == "CHN"
    assert RESIDENT.lookup_key == "11010519491231002X"
    assert PASSPORT.lookup_key == "emrtd:UTO:L898902C3"
    with pytest.raises(ValueError):
        CardIdentity.of(DocumentType.CN_ID, "CHN", "   ")


def test_another_key_cannot_open_it(host_key: SealingKey) -> None:
    sealed = seal(RESIDENT, host_key.public_raw)
    with pytest.raises(SealError, match="not this host's"):
        SealingKey.generate().open(sealed)


def test_a_key_survives_storage(host_key: SealingKey) -> None:
    again = SealingKey.from_bytes(host_key.to_bytes())
    assert again.kid == host_key.kid
    assert again.open(seal(PASSPORT, host_key.public_raw)) == PASSPORT


@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_altered_byte_is_refused(position: int, flip: int) -> None:
    key = SealingKey.from_bytes(bytes(range(32)))
    data = bytearray(b64url_decode(seal(RESIDENT, key.public_raw)[len(PREFIX) :]))
    data[position % len(data)] ^= flip
    with pytest.raises(SealError):
        key.open(PREFIX + b64url(bytes(data)))


@given(text=st.text(max_size=500))
def test_garbage_is_a_seal_error_and_nothing_else(text: str) -> None:
    key = SealingKey.from_bytes(bytes(range(32)))
    with pytest.raises(SealError):
        key.open(text)
    with pytest.raises(SealError):
        key.open(PREFIX + text)


def test_an_identity_on_the_deny_list_is_found_by_its_slow_digest() -> None:
    listed = DenyList.of(1, datetime.now(UTC), [(HashKind.IDENTITY, identity_hash(RESIDENT))])
    assert listed.contains_identity(RESIDENT) is HashKind.IDENTITY
    assert listed.contains_identity(PASSPORT) is None
    assert len(identity_hash(RESIDENT)) == 16
    assert identity_hash(RESIDENT) != identity_hash(PASSPORT)
