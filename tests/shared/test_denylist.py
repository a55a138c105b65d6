"""Deny lists: the hash kinds, lookups, and the signed document that no altered byte gets past."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.denylist import (
    DIGEST_BYTES,
    DenyList,
    HashKind,
    certificate_hashes,
    person_hash,
)
from shared.envelope import CredentialError, Stage, base45, inflate, parse_cose, parse_cwt, unprefix
from shared.keys import ES256, KeyPurpose, SigningKey, TrustedKey, TrustStore
from shared.signed import sign_document
from tests.conftest import SHARED_DATA

ISSUED = datetime(2022, 5, 1, 8, 30, 15, 123000, tzinfo=UTC)
UVCI = "URN:UVCI:01:SE:EHM/V12907267LAJW#E"
SWEDISH_DCC = SHARED_DATA / "dcc" / "dgc-testdata" / "SE" / "2DCode" / "raw" / "1.json"
HEALTH_CERTIFICATE = -260  # the CWT claim that holds an HCERT's certificate


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


def sample(version: int = 3) -> DenyList:
    signature = bytes(range(64))
    certificate = certificate_hashes(UVCI, "SE", signature, ecdsa=True)
    return DenyList.of(
        version,
        ISSUED,
        [
            (HashKind.PERSON, person_hash("p_listed")),
            (HashKind.UCI, certificate[HashKind.UCI]),
            (HashKind.SIGNATURE, sha(b"another certificate's r")),
        ],
    )


def only_trusting(key: SigningKey, purpose: KeyPurpose = KeyPurpose.POLICY) -> TrustStore:
    return TrustStore.of([TrustedKey(key.kid, purpose, key.private_key.public_key())])


# ---- hashing ------------------------------------------------------------------------------


def test_person_hash_is_domain_separated_and_pinned() -> None:
    digest = person_hash("p_abcdefghijklmnop")
    assert len(digest) == DIGEST_BYTES
    # Pinned: devices and host must agree on it across releases.
    assert digest.hex() == "220628e956e427e4b2bc8cb46fc41b26"
    assert digest != sha(b"p_abcdefghijklmnop")  # not the plain hash another list might hold
    assert person_hash("p_abcdefghijklmnoq") != digest


def test_certificate_hashes_follow_the_dcc_revocation_design() -> None:
    signature = bytes(range(64))
    ecdsa = certificate_hashes(UVCI, "SE", signature, ecdsa=True)
    assert ecdsa == {
        HashKind.UCI: sha(UVCI.encode()),
        HashKind.COUNTRYCODEUCI: sha(b"SE" + UVCI.encode()),
        HashKind.SIGNATURE: sha(signature[:32]),  # r only
    }
    rsa = certificate_hashes(UVCI, "SE", signature, ecdsa=False)
    assert rsa[HashKind.SIGNATURE] == sha(signature)
    s_changed = signature[:32] + bytes(32)  # the same r: the same certificate, re-encoded s
    assert certificate_hashes(UVCI, "SE", s_changed, ecdsa=True) == ecdsa


@pytest.mark.skipif(
    not SWEDISH_DCC.is_file(),
    reason=f"{SWEDISH_DCC} is not there (../shared/data/dcc/dgc-testdata)",
)
def test_a_real_dcc_is_found_under_each_kind_it_is_listed_by() -> None:
    case = json.loads(SWEDISH_DCC.read_text())
    cose = parse_cose(inflate(base45(unprefix(case["PREFIX"], "HC1:"))))
    cwt = parse_cwt(cose.payload)
    [vaccination] = cwt.claims[HEALTH_CERTIFICATE][1]["v"]
    uci, country, ecdsa = vaccination["ci"], cwt.issuer or "", cose.alg == ES256
    assert (country, ecdsa) == ("SE", True)
    unlisted = DenyList.of(1, ISSUED, [])
    assert unlisted.contains_certificate(uci, country, cose.signature, ecdsa=ecdsa) is None
    for kind, digest in certificate_hashes(uci, country, cose.signature, ecdsa=ecdsa).items():
        listed = DenyList.of(1, ISSUED, [(kind, digest)])
        assert listed.contains_certificate(uci, country, cose.signature, ecdsa=ecdsa) is kind


def test_lookups_counts_and_age() -> None:
    deny_list = sample()
    assert deny_list.contains_person("p_listed") is HashKind.PERSON
    assert deny_list.contains_person("p_other") is None
    signature = bytes(range(64))
    found = deny_list.contains_certificate(UVCI, "DE", signature, ecdsa=True)
    assert found is HashKind.UCI
    assert deny_list.contains_certificate("URN:UVCI:other", "SE", signature, ecdsa=True) is None
    assert len(deny_list) == 3
    assert deny_list.count(HashKind.PERSON) == 1
    assert deny_list.count(HashKind.COUNTRYCODEUCI) == 0
    assert deny_list.age(ISSUED + timedelta(hours=2)) == timedelta(hours=2)


def test_a_digest_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="17 bytes"):
        DenyList.of(1, ISSUED, [(HashKind.UCI, bytes(17))])


# ---- the signed document ------------------------------------------------------------------


def test_signed_list_opens_to_the_same_list(policy_key: SigningKey, trust: TrustStore) -> None:
    deny_list = sample()
    assert DenyList.open(deny_list.sign(policy_key), trust) == deny_list
    to_the_microsecond = DenyList.of(1, ISSUED + timedelta(microseconds=456), [])
    assert to_the_microsecond.issued_at == ISSUED  # the document carries milliseconds
    assert DenyList.open(to_the_microsecond.sign(policy_key), trust) == to_the_microsecond


def test_a_large_list_costs_sixteen_bytes_an_entry(policy_key: SigningKey) -> None:
    digests = [(HashKind.PERSON, sha(str(index).encode())) for index in range(5000)]
    size = len(DenyList.of(1, ISSUED, digests).sign(policy_key))
    assert 5000 * DIGEST_BYTES < size < 5000 * DIGEST_BYTES + 300


def stage_of(data: bytes, trust: TrustStore) -> Stage:
    with pytest.raises(CredentialError) as caught:
        DenyList.open(data, trust)
    return caught.value.stage


def test_a_tampered_byte_is_refused(policy_key: SigningKey, trust: TrustStore) -> None:
    document = bytearray(sample().sign(policy_key))
    at = bytes(document).index(person_hash("p_listed"))
    document[at] ^= 0x01  # one bit of a listed digest: someone taking themselves off the list
    assert stage_of(bytes(document), trust) is Stage.SIGNATURE


def test_a_list_signed_by_another_key_is_refused(trust: TrustStore) -> None:
    with pytest.raises(CredentialError) as caught:
        DenyList.open(sample().sign(SigningKey.generate()), trust)
    assert caught.value.stage is Stage.SIGNATURE
    assert caught.value.untrusted_signer


def test_a_key_trusted_for_another_purpose_cannot_sign_a_list(health_key: SigningKey) -> None:
    document = sample().sign(health_key)
    assert stage_of(document, only_trusting(health_key, KeyPurpose.HEALTH)) is Stage.SIGNATURE
    assert DenyList.open(document, only_trusting(health_key)) == sample()


def test_another_document_type_is_refused(policy_key: SigningKey, trust: TrustStore) -> None:
    body = cbor2.loads(cbor2.dumps({"version": 1, "issued_at": 0, "entries": {}}))
    assert stage_of(sign_document("ruleset", body, policy_key), trust) is Stage.SCHEMA


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"version": 1, "issued_at": 0},
        {"version": True, "issued_at": 0, "entries": {}},
        {"version": -1, "issued_at": 0, "entries": {}},
        {"version": 1, "issued_at": 10**20, "entries": {}},
        {"version": 1, "issued_at": 1.5, "entries": {}},
        {"version": 1, "issued_at": 0, "entries": []},
        {"version": 1, "issued_at": 0, "entries": {"person": bytes(17)}},
        {"version": 1, "issued_at": 0, "entries": {"person": "00" * 16}},
    ],
    ids=repr,
)
def test_a_malformed_body_is_refused_even_when_signed(
    body: object, policy_key: SigningKey, trust: TrustStore
) -> None:
    assert stage_of(sign_document("denylist", body, policy_key), trust) is Stage.SCHEMA


def test_kinds_from_a_newer_host_are_skipped(policy_key: SigningKey, trust: TrustStore) -> None:
    entries = {"person": person_hash("p_listed"), "passport": bytes(16)}
    body = {"version": 4, "issued_at": 0, "entries": entries}
    opened = DenyList.open(sign_document("denylist", body, policy_key), trust)
    assert opened.contains_person("p_listed")
    assert len(opened) == 1


# ---- properties: only CredentialError ever escapes ----------------------------------------

BODY_WORDS = st.sampled_from(["version", "issued_at", "entries", *HashKind])
cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=10)
    | BODY_WORDS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(BODY_WORDS | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)
# Bodies near the right shape, so that the checks past the first few are reached too.
near_bodies = st.fixed_dictionaries(
    {
        "version": st.integers(min_value=-2, max_value=2**64) | cbor_values,
        "issued_at": st.integers(min_value=-2, max_value=2**64) | cbor_values,
        "entries": st.dictionaries(BODY_WORDS | st.text(max_size=5), st.binary(max_size=48))
        | cbor_values,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_open(data: bytes, trust: TrustStore) -> None:
    with pytest.raises(CredentialError):
        DenyList.open(data, trust)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=near_bodies | cbor_values)
def test_any_signed_body_opens_or_fails_clearly(
    body: object, policy_key: SigningKey, trust: TrustStore
) -> None:
    try:
        opened = DenyList.open(sign_document("denylist", body, policy_key), trust)
    except CredentialError:
        return
    assert opened.version >= 0
    assert all(
        len(digest) == DIGEST_BYTES for kind in opened.entries for digest in opened.entries[kind]
    )


@pytest.fixture(scope="module")
def signed_sample(policy_key: SigningKey) -> bytes:
    return sample().sign(policy_key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_an_altered_document_never_opens_to_another_list(
    position: int, flip: int, signed_sample: bytes, trust: TrustStore
) -> None:
    document = bytearray(signed_sample)
    document[position % len(document)] ^= flip
    try:
        opened = DenyList.open(bytes(document), trust)
    except CredentialError:
        return
    assert opened == sample()  # only bytes the signature does not cover (unprotected header)
