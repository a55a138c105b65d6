"""Signer certificates: loading from PEM, DER and directories, key usage, the lenient fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from asn1crypto import x509 as lenient_x509
from cryptography import x509

from shared.dcc.certificates import (
    LENIENT_PARSER,
    STRICT_PARSER,
    CertificateError,
    certificates_in,
    load_certificate,
    load_certificates,
    trust_list,
    types_allowed_by,
)
from shared.dcc.specimen import SpecimenSigner
from shared.keys import KeyPurpose, key_id, public_key_der
from tests.shared.dcc.conftest import RECOVERY_OID, TEST_OID, VACCINATION_OID


@pytest.mark.parametrize(
    ("oids", "types"),
    [
        ([TEST_OID], {"t"}),
        ([VACCINATION_OID], {"v"}),
        ([RECOVERY_OID], {"r"}),
        (["1.3.6.1.4.1.0.1847.2021.1.1"], {"t"}),
        (["1.3.6.1.4.1.0.1847.2021.1.2"], {"v"}),
        (["1.3.6.1.4.1.0.1847.2021.1.3"], {"r"}),
        ([TEST_OID, RECOVERY_OID, "1.3.6.1.5.5.7.3.2"], {"t", "r"}),
    ],
)
def test_each_key_usage_oid_allows_its_type(oids: list[str], types: set[str]) -> None:
    signer = SpecimenSigner.generate(extended_key_usage=oids)
    assert signer.certificate.certificate_types == types


@pytest.mark.parametrize("oids", [[], ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4"]])
def test_no_dcc_key_usage_places_no_limit(oids: list[str]) -> None:
    assert types_allowed_by(oids) is None
    assert SpecimenSigner.generate(extended_key_usage=oids).certificate.certificate_types is None


def test_kid_is_the_first_8_bytes_of_the_certificate_sha256(es256_signer: SpecimenSigner) -> None:
    certificate = es256_signer.certificate
    assert certificate.kid == key_id(es256_signer.certificate_der)
    assert len(certificate.kid) == 8
    trusted = certificate.trusted_key()
    assert (trusted.kid, trusted.purpose) == (certificate.kid, KeyPurpose.DCC)
    assert trust_list([certificate]).candidates(certificate.kid, KeyPurpose.DCC) == [trusted]


def test_pem_der_base64_and_directories_load_alike(
    tmp_path: Path, es256_signer: SpecimenSigner, ps256_signer: SpecimenSigner
) -> None:
    (tmp_path / "a.pem").write_bytes(es256_signer.pem + ps256_signer.pem)  # two in one file
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.der").write_bytes(es256_signer.certificate_der)
    (tmp_path / "notes.txt").write_text("not a certificate")
    kids = [certificate.kid for certificate in load_certificates(tmp_path)]
    assert kids == [es256_signer.kid, ps256_signer.kid, es256_signer.kid]
    base64_text = es256_signer.pem.split(b"-----")[2]  # the PEM body alone
    assert certificates_in(base64_text)[0].kid == es256_signer.kid


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ],
)
def test_what_is_no_certificate_raises_certificate_error(data: bytes) -> None:
    with pytest.raises(CertificateError):
        certificates_in(data)


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + body


def with_explicit_non_critical(der: bytes) -> bytes:
    """The certificate re-encoded with `critical FALSE` written out: DER forbids that default."""
    certificate = lenient_x509.Certificate.load(der)
    tbs = certificate["tbs_certificate"]
    extensions = b"".join(
        _tlv(0x30, ext["extn_id"].dump() + b"\x01\x01\x00" + ext["extn_value"].dump())
        for ext in tbs["extensions"]
    )
    fields = ("version", "serial_number", "signature", "issuer", "validity", "subject")
    body = b"".join(tbs[name].dump() for name in fields)
    body += tbs["subject_public_key_info"].dump() + _tlv(0xA3, _tlv(0x30, extensions))
    return _tlv(
        0x30,
        _tlv(0x30, body)
        + certificate["signature_algorithm"].dump()
        + certificate["signature_value"].dump(),
    )


def test_a_certificate_the_strict_parser_refuses_still_yields_key_and_usage() -> None:
    signer = SpecimenSigner.generate(extended_key_usage=[RECOVERY_OID])
    der = with_explicit_non_critical(signer.certificate_der)
    with pytest.raises(ValueError, match="EncodedDefault"):
        x509.load_der_x509_certificate(der)
    certificate = load_certificate(der)
    assert certificate.parser == LENIENT_PARSER
    assert certificate.certificate_types == {"r"}
    assert public_key_der(certificate.public_key) == public_key_der(signer.private_key.public_key())
    assert certificate.kid == key_id(der)
    assert signer.certificate.parser == STRICT_PARSER
