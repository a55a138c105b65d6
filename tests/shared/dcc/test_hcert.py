"""verify_dcc: signers, key usage, the CWT tag, schema versions, value sets, expiry, fuzzing."""

from __future__ import annotations

import zlib
from datetime import timedelta

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.base45 import b45encode
from shared.dcc.certificates import trust_list
from shared.dcc.hcert import PREFIX, certificate_types, json_value, verify_dcc
from shared.dcc.schema import SchemaCheck, SchemaStore
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.dcc.value_sets import TEST_DEVICES, ValueSet, packaged_value_sets
from shared.envelope import CWT_TAG, CredentialError, Stage, sign_cose, wrap
from shared.keys import KeyPurpose, TrustedKey, TrustStore
from tests.shared.dcc.conftest import SCHEMA_DIR, real_dcc

NOW = EPOCH + timedelta(days=1)


def stage_of(text: str, trust: TrustStore, **options: object) -> Stage:
    options = {"now": NOW, "schemas": None, **options}
    with pytest.raises(CredentialError) as caught:
        verify_dcc(text, trust, **options)  # type: ignore[arg-type]
    return caught.value.stage


@pytest.mark.parametrize("signer_name", ["es256_signer", "ps256_signer"])
@pytest.mark.parametrize("kind", ["v", "t", "r"])
def test_a_valid_dcc_verifies_with_what_deny_lists_need(
    signer_name: str, kind: str, schemas: SchemaStore, request: pytest.FixtureRequest
) -> None:
    signer: SpecimenSigner = request.getfixturevalue(signer_name)
    payload = specimen_payload(kind, uvci="URN:UVCI:01:XX:TEST/12345#A")
    text = issue_dcc(payload, signer)
    verified = verify_dcc(text, trust_list([signer.certificate]), now=NOW, schemas=schemas)
    assert verified.certificate_type == kind
    assert verified.uvci == "URN:UVCI:01:XX:TEST/12345#A"
    assert verified.country == "XX"
    assert verified.payload == payload
    assert verified.issued_at == EPOCH
    assert verified.expires_at == EPOCH + timedelta(days=365)
    assert verified.kid == signer.kid
    assert len(verified.signature) == (64 if signer_name == "es256_signer" else 256)
    assert verified.schema == SchemaCheck("1.3.0", "1.3.0")
    assert not verified.schema.substituted
    assert verified.expiry_checked


def test_without_schemas_or_clock_the_result_says_what_was_not_checked(
    es256_signer: SpecimenSigner,
) -> None:
    text = issue_dcc(specimen_payload(), es256_signer, lifetime=timedelta(seconds=1))
    verified = verify_dcc(text, trust_list([es256_signer.certificate]), now=None, schemas=None)
    assert verified.schema is None
    assert verified.expiry_checked is False


def test_every_signer_under_a_shared_key_id_is_tried(
    es256_signer: SpecimenSigner, ps256_signer: SpecimenSigner
) -> None:
    shared_kid = es256_signer.kid
    trust = TrustStore.of(
        [
            ps256_signer.certificate.trusted_key(shared_kid),
            es256_signer.certificate.trusted_key(shared_kid),
        ]
    )
    assert len(trust.candidates(shared_kid, KeyPurpose.DCC)) == 2
    text = issue_dcc(specimen_payload(), es256_signer)
    assert verify_dcc(text, trust, now=NOW, schemas=None).kid == shared_kid


def test_a_signer_that_did_not_sign_is_refused(
    es256_signer: SpecimenSigner, vaccination_signer: SpecimenSigner
) -> None:
    impostor = vaccination_signer.certificate.trusted_key(es256_signer.kid)
    text = issue_dcc(specimen_payload(), es256_signer)
    assert stage_of(text, TrustStore.of([impostor])) is Stage.SIGNATURE


def test_an_unknown_signer_is_untrusted(es256_signer: SpecimenSigner) -> None:
    with pytest.raises(CredentialError) as caught:
        verify_dcc(issue_dcc(specimen_payload(), es256_signer), TrustStore(), now=NOW, schemas=None)
    assert caught.value.stage is Stage.SIGNATURE
    assert caught.value.untrusted_signer


def test_host_keys_are_not_dcc_signers(es256_signer: SpecimenSigner) -> None:
    key = es256_signer.certificate.public_key
    trust = TrustStore.of([TrustedKey(es256_signer.kid, KeyPurpose.HEALTH, key)])
    assert stage_of(issue_dcc(specimen_payload(), es256_signer), trust) is Stage.SIGNATURE


@pytest.mark.parametrize(("kind", "allowed"), [("v", True), ("t", False), ("r", False)])
def test_key_usage_limits_the_types_a_signer_may_sign(
    vaccination_signer: SpecimenSigner, kind: str, allowed: bool
) -> None:
    text = issue_dcc(specimen_payload(kind), vaccination_signer)
    trust = trust_list([vaccination_signer.certificate])
    if allowed:
        assert verify_dcc(text, trust, now=NOW, schemas=None).certificate_type == kind
    else:
        assert stage_of(text, trust) is Stage.KEYUSAGE


def test_a_certificate_without_dcc_key_usage_may_sign_every_type() -> None:
    """dgc-testdata IS 3: its signer names no DCC key usage (HCERT A.4), and its test verifies.

    Upstream expects key usage to fail here (EXPECTEDKEYUSAGE false, dgc-testdata issue 244);
    the conformance runner names that expectation as a known issue.
    """
    real = real_dcc("IS/2DCode/raw/3.json")
    assert real.certificate.certificate_types is None
    verified = verify_dcc(real.text, real.trust, now=real.clock, schemas=None)
    assert verified.certificate_type == "t"


def test_a_cwt_tag_around_a_real_cose_sign1_verifies(schemas: SchemaStore) -> None:
    """dgc-testdata SE 1 with its tagged COSE_Sign1 inside the CWT tag, 61(18([...]))."""
    real = real_dcc("SE/2DCode/raw/1.json")
    assert real.cose[:1] == b"\xd2"  # tag 18
    inside_cwt_tag = bytes([0xD8, CWT_TAG]) + real.cose  # major type 6, a one-byte tag number
    plain = verify_dcc(real.text, real.trust, now=real.clock, schemas=schemas)
    wrapped = verify_dcc(wrap(PREFIX, inside_cwt_tag), real.trust, now=real.clock, schemas=schemas)
    assert wrapped == plain


def test_a_cwt_tag_around_an_untagged_cose_sign1_is_refused(es256_signer: SpecimenSigner) -> None:
    cose = cbor2.loads(sign_cose({1: "XX"}, es256_signer))
    text = wrap(PREFIX, cbor2.dumps(cbor2.CBORTag(CWT_TAG, list(cose.value))))
    with pytest.raises(CredentialError, match="must wrap a tagged COSE_Sign1") as caught:
        verify_dcc(text, trust_list([es256_signer.certificate]), now=NOW, schemas=None)
    assert caught.value.stage is Stage.COSE


def test_a_version_never_published_is_validated_against_the_newest_of_its_major(
    schemas: SchemaStore,
) -> None:
    """dgc-testdata IE 1 declares schema 1.0.4, which was never published."""
    real = real_dcc("IE/2DCode/Raw/1.json")
    assert real.payload["ver"] == "1.0.4"
    verified = verify_dcc(real.text, real.trust, now=real.clock, schemas=schemas)
    assert verified.schema == SchemaCheck("1.0.4", schemas.versions[-1])
    assert verified.schema.substituted
    strict = SchemaStore.from_directory(SCHEMA_DIR, strict=True)
    with pytest.raises(CredentialError, match=r"no schema for version 1\.0\.4") as caught:
        verify_dcc(real.text, real.trust, now=real.clock, schemas=strict)
    assert caught.value.stage is Stage.SCHEMA


@pytest.mark.parametrize(
    ("kind", "field", "code"),
    [
        ("v", "ma", "ORG-99999999"),  # a vaccine manufacturer
        ("v", "mp", "EU/1/99/9999"),
        ("v", "vp", "J07XX99"),
        ("t", "ma", "9999"),  # a test device
        ("t", "tt", "LP0000-0"),
        ("t", "tr", "999999999"),
        ("r", "co", "XY"),  # a country
        ("v", "co", "XY"),
        ("t", "tg", "840539007"),
    ],
)
def test_a_code_outside_its_value_set_fails_at_the_valueset_stage(
    es256_signer: SpecimenSigner, schemas: SchemaStore, kind: str, field: str, code: str
) -> None:
    payload = specimen_payload(kind)
    payload[kind][0][field] = code
    text = issue_dcc(payload, es256_signer)
    with pytest.raises(CredentialError) as caught:
        verify_dcc(text, trust_list([es256_signer.certificate]), now=NOW, schemas=schemas)
    assert caught.value.stage is Stage.VALUESET
    assert caught.value.reason.startswith(f"$.{kind}[0].{field} is not a code of the value set")
    assert code not in caught.value.reason


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("PL/1.3.0/2DCode/raw/7.json", "$.t[0].ma"),  # test device 9999
        ("PL/1.3.0/2DCode/raw/8.json", "$.r[0].co"),  # country XY
        ("PL/1.3.0/2DCode/raw/9.json", "$.v[0].ma"),  # manufacturer ORG-99999999
    ],
)
def test_real_dccs_with_unknown_codes_fail_at_the_valueset_stage(
    schemas: SchemaStore, name: str, field: str
) -> None:
    real = real_dcc(name)
    with pytest.raises(CredentialError) as caught:
        verify_dcc(real.text, real.trust, now=real.clock, schemas=schemas)
    assert caught.value.stage is Stage.VALUESET
    assert caught.value.reason.startswith(field)


def test_a_deprecated_code_is_still_a_code(es256_signer: SpecimenSigner) -> None:
    """J07BX03 may no longer be issued (value sets 2.11.0), but its certificates stay valid."""
    payload = specimen_payload("v")
    payload["v"][0]["vp"] = "J07BX03"
    text = issue_dcc(payload, es256_signer)
    verified = verify_dcc(text, trust_list([es256_signer.certificate]), now=NOW, schemas=None)
    assert verified.payload == payload


def test_newer_value_sets_admit_a_new_code(es256_signer: SpecimenSigner) -> None:
    payload = specimen_payload("t")
    payload["t"][0]["ma"] = "9999"
    text = issue_dcc(payload, es256_signer)
    trust = trust_list([es256_signer.certificate])
    assert stage_of(text, trust) is Stage.VALUESET
    held = packaged_value_sets().sets[TEST_DEVICES]
    newer = ValueSet(TEST_DEVICES, held.date + timedelta(days=1), held.codes | {"9999"})
    value_sets = packaged_value_sets().updated([newer])
    assert verify_dcc(text, trust, now=NOW, schemas=None, value_sets=value_sets).uvci


def test_expired_and_future_certificates_fail_at_expiry(es256_signer: SpecimenSigner) -> None:
    trust = trust_list([es256_signer.certificate])
    text = issue_dcc(specimen_payload(), es256_signer, lifetime=timedelta(days=1))
    expires = EPOCH + timedelta(days=1)
    assert verify_dcc(text, trust, now=expires, schemas=None).expiry_checked  # valid at exp
    assert stage_of(text, trust, now=expires + timedelta(seconds=1)) is Stage.EXPIRY
    assert stage_of(text, trust, now=EPOCH - timedelta(hours=1)) is Stage.EXPIRY  # not yet issued


def test_a_payload_breaking_its_schema_fails_without_quoting_it(
    es256_signer: SpecimenSigner, schemas: SchemaStore
) -> None:
    payload = specimen_payload()
    payload["nam"]["fnt"] = "lower case"
    text = issue_dcc(payload, es256_signer)
    with pytest.raises(CredentialError) as caught:
        verify_dcc(text, trust_list([es256_signer.certificate]), now=NOW, schemas=schemas)
    assert caught.value.stage is Stage.SCHEMA
    assert "$.nam.fnt" in caught.value.reason
    assert "lower case" not in caught.value.reason


@pytest.mark.parametrize(
    ("hcert", "stage"),
    [
        (None, Stage.CWT),
        ({2: {}}, Stage.CWT),
        ({1: {"ver": "1.3.0", "x": b"bytes"}}, Stage.CWT),
        ({1: {"ver": "1.3.0", "nam": {}}}, Stage.SCHEMA),  # no entry at all
        ({1: {**specimen_payload("v"), "t": specimen_payload("t")["t"]}}, Stage.SCHEMA),
        ({1: {**specimen_payload("v"), "v": [{}, {}]}}, Stage.SCHEMA),
    ],
)
def test_malformed_hcert_claims_fail_at_their_stage(
    es256_signer: SpecimenSigner, hcert: object, stage: Stage
) -> None:
    claims = {1: "XX", 6: int(EPOCH.timestamp()), 4: int(NOW.timestamp()) + 60}
    if hcert is not None:
        claims[-260] = hcert
    text = wrap(PREFIX, sign_cose(claims, es256_signer))
    assert stage_of(text, trust_list([es256_signer.certificate])) is stage


def test_types_and_json_values() -> None:
    assert certificate_types({"v": [{}], "t": None, "r": []}) == {"v"}
    assert json_value(cbor2.loads(cbor2.dumps(cbor2.CBORTag(0, "2021-06-04T08:13:51Z")))) == (
        "2021-06-04T08:13:51Z"
    )
    with pytest.raises(ValueError):
        json_value({1: "a key that is not text"})


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_raises_only_credential_errors(text: str) -> None:
    for candidate in (text, PREFIX + text):
        with pytest.raises(CredentialError):
            verify_dcc(candidate, TrustStore(), now=NOW, schemas=None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_inflated_bytes_raise_only_credential_errors(data: bytes) -> None:
    with pytest.raises(CredentialError):
        verify_dcc(PREFIX + b45encode(zlib.compress(data)), TrustStore(), now=NOW, schemas=None)


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claims=st.dictionaries(st.sampled_from([1, 4, 6, -260, 7]), JSON_LIKE, max_size=5))
def test_any_signed_claims_raise_only_credential_errors(
    es256_signer: SpecimenSigner, schemas: SchemaStore, claims: dict
) -> None:
    """Whatever a trusted signer signed, the verifier answers or names the failing stage."""
    text = wrap(PREFIX, sign_cose(claims, es256_signer))
    trust = trust_list([es256_signer.certificate])
    try:
        verified = verify_dcc(text, trust, now=NOW, schemas=schemas)
    except CredentialError as error:
        assert error.stage in {Stage.CWT, Stage.SCHEMA, Stage.VALUESET, Stage.EXPIRY}
    else:
        assert verified.certificate_type in {"v", "t", "r"}
