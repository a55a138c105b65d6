"""EF.SOD and passive authentication (ICAO Doc 9303 Parts 10-12): build, verify, CSCA lists.

EF.SOD (tag 77) holds a CMS SignedData whose content is the LDS Security Object: the hash
of each data group. Passive authentication checks, in order:

1. the Document Signer (DS) certificate in the SOD is signed by a CSCA of the configured
   list, and is within its validity period;
2. the SignerInfo signature (over the signed attributes, whose message digest is the hash
   of the LDS Security Object) verifies with the DS public key;
3. the hash of every data group read equals the one in the LDS Security Object.

verify_sod() returns a PassiveAuthentication (passed / failed with a reason / not
configured when no CSCA list was given: then the signature and the hashes are still checked
and reported, but the document is not called authentic). build_sod() is the issuer's side,
used by the virtual card and the tests. ASN.1 is handled by asn1crypto, the cryptography by
cryptography.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hardware.smartcard.lds import TAG_SOD, TlvError, decode_tlv, encode_tlv

LDS_SECURITY_OBJECT_OID = "2.23.136.1.1.1"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class SodError(ValueError):
    """EF.SOD is not a CMS SignedData holding an LDS Security Object."""


# What asn1crypto and cryptography raise for malformed or hostile input: asn1crypto parses
# lazily, so a damaged SOD can fail at any later access, not only at load().
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


class DataGroupHash(core.Sequence):
    """DataGroupHash ::= SEQUENCE { dataGroupNumber INTEGER, dataGroupHashValue OCTET STRING }."""

    _fields = [  # noqa: RUF012 - asn1crypto wants a list
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):
    """SEQUENCE OF DataGroupHash."""

    _child_spec = DataGroupHash


class LdsVersionInfo(core.Sequence):
    """LDSVersionInfo ::= SEQUENCE { ldsVersion, unicodeVersion } (LDS 1.8)."""

    _fields = [  # noqa: RUF012 - asn1crypto wants a list
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class LdsSecurityObject(core.Sequence):
    """LDSSecurityObject (Doc 9303 Part 10, 4.6.2.2)."""

    _fields = [  # noqa: RUF012 - asn1crypto wants a list
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LdsVersionInfo, {"optional": True}),
    ]


class Outcome(StrEnum):
    """The outcome of a check."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CONFIGURED = "not configured"
    NOT_PERFORMED = "not performed"


@dataclass(frozen=True)
class PassiveAuthentication:
    """What passive authentication found; `reason` says why it failed or was not done."""

    outcome: Outcome
    reason: str = ""
    signature: Outcome = Outcome.NOT_PERFORMED
    certificate: Outcome = Outcome.NOT_PERFORMED
    hashes: Outcome = Outcome.NOT_PERFORMED
    hash_algorithm: str = ""
    data_groups: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """For --json output."""
        return {
            "outcome": str(self.outcome),
            "reason": self.reason,
            "signature": str(self.signature),
            "certificate": str(self.certificate),
            "hashes": str(self.hashes),
            "hash_algorithm": self.hash_algorithm,
            "data_groups_signed": list(self.data_groups),
        }


@dataclass(frozen=True)
class SecurityObject:
    """The parts of EF.SOD passive authentication uses."""

    hash_algorithm: str
    hashes: dict[int, bytes]
    certificates: tuple[x509.Certificate, ...]
    signer: cms.SignerInfo
    content: bytes


def parse_sod(sod: bytes) -> SecurityObject:
    """Parse EF.SOD; raises SodError."""
    try:
        info = cms.ContentInfo.load(decode_tlv(sod, TAG_SOD))
        if info["content_type"].native != "signed_data":
            raise SodError("EF.SOD is not a CMS SignedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != LDS_SECURITY_OBJECT_OID:
            raise SodError("EF.SOD's content is not an LDS Security Object")
        content = encap["content"].contents
        lds = LdsSecurityObject.load(content)
        algorithm = lds["hash_algorithm"]["algorithm"].native
        table = {
            int(item["data_group_number"].native): bytes(item["data_group_hash_value"].native)
            for item in lds["data_group_hash_values"]
        }
        certificates = tuple(
            x509.load_der_x509_certificate(choice.chosen.dump())
            for choice in (signed["certificates"] or [])
            if choice.name == "certificate"
        )
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            raise SodError(f"EF.SOD has {len(signers)} signers where 1 was expected")
    except SodError:
        raise
    except (TlvError, *_MALFORMED) as error:
        raise SodError(f"EF.SOD cannot be parsed: {type(error).__name__}") from None
    if algorithm not in _HASHES:
        raise SodError(f"EF.SOD uses an unsupported hash algorithm ({algorithm})")
    return SecurityObject(algorithm, table, certificates, signers[0], content)


def _digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()


def _signer_certificate(security: SecurityObject) -> x509.Certificate:
    sid = security.signer["sid"]
    for certificate in security.certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            parsed = asn1_x509.Certificate.load(
                certificate.public_bytes(serialization.Encoding.DER)
            )
            if (
                parsed.serial_number == wanted["serial_number"].native
                and parsed.issuer == wanted["issuer"]
            ):
                return certificate
        elif sid.name == "subject_key_identifier":
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return certificate
    raise SodError("EF.SOD does not hold its Document Signer certificate")


def _verify_signature(security: SecurityObject, certificate: x509.Certificate) -> None:
    """Check the signed attributes and the signature; raises SodError or InvalidSignature."""
    signer = security.signer
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise SodError(f"the SignerInfo uses an unsupported digest ({digest_name})")
    attributes = signer["signed_attrs"]
    if attributes.native is None or not len(attributes):
        signed_bytes = security.content  # no signed attributes: the content is signed
    else:
        values = {attr["type"].native: attr["values"] for attr in attributes}
        content_type = values.get("content_type")
        if content_type is None or content_type[0].dotted != LDS_SECURITY_OBJECT_OID:
            raise SodError("the signed content type is not the LDS Security Object")
        digest = values.get("message_digest")
        if digest is None or not hmac.compare_digest(
            bytes(digest[0].native), _digest(digest_name, security.content)
        ):
            raise SodError("the signed message digest is not the LDS Security Object's")
        # Signed over the DER of the attributes as a SET OF, not as their [0] tag.
        signed_bytes = b"\x31" + attributes.dump()[1:]
    algorithm = signer["signature_algorithm"]
    signature = bytes(signer["signature"].native)
    key = certificate.public_key()
    scheme = algorithm.signature_algo
    try:
        hash_name = algorithm.hash_algo
    except ValueError:
        hash_name = digest_name
    chosen = _HASHES.get(hash_name)
    if chosen is None:
        raise SodError(f"the signature uses an unsupported hash ({hash_name})")
    if scheme == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, signed_bytes, padding.PKCS1v15(), chosen())
    elif scheme == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        params = algorithm["parameters"]
        pss_hash = _HASHES[params["hash_algorithm"]["algorithm"].native]()
        mgf_hash = _HASHES[params["mask_gen_algorithm"]["parameters"]["algorithm"].native]()
        salt = params["salt_length"].native
        key.verify(signature, signed_bytes, padding.PSS(padding.MGF1(mgf_hash), salt), pss_hash)
    elif scheme == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, signed_bytes, ec.ECDSA(chosen()))
    else:
        raise SodError(f"the signature scheme {scheme} does not fit the Document Signer key")


def _check_certificate(
    certificate: x509.Certificate, csca: Sequence[x509.Certificate], at: datetime
) -> str:
    """Why the DS certificate is not trusted at `at`; empty when a CSCA of the list issued it."""
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        return "the Document Signer certificate is outside its validity period"
    issuers = [c for c in csca if c.subject == certificate.issuer]
    if not issuers:
        return "no CSCA certificate of the list issued the Document Signer certificate"
    for issuer in issuers:
        try:
            certificate.verify_directly_issued_by(issuer)
        except (InvalidSignature, UnsupportedAlgorithm, *_MALFORMED):
            continue
        return ""
    return "the Document Signer certificate's signature does not verify with the CSCA"


def verify_sod(
    sod: bytes,
    data_groups: Mapping[int, bytes],
    csca: Sequence[x509.Certificate] | None = None,
    *,
    at: datetime | None = None,
) -> PassiveAuthentication:
    """Passive authentication of the data groups read, against a CSCA list (None: no list)."""
    at = at or datetime.now(UTC)
    try:
        security = parse_sod(sod)
    except SodError as error:
        return PassiveAuthentication(Outcome.FAILED, str(error))
    signed = tuple(sorted(security.hashes))
    common = {"hash_algorithm": security.hash_algorithm, "data_groups": signed}

    # The data-group hashes.
    hashes_outcome, reason = Outcome.PASSED, ""
    for number, content in sorted(data_groups.items()):
        expected = security.hashes.get(number)
        if expected is None:
            hashes_outcome, reason = Outcome.FAILED, f"DG{number} is not in EF.SOD"
            break
        if not hmac.compare_digest(_digest(security.hash_algorithm, content), expected):
            hashes_outcome, reason = Outcome.FAILED, f"DG{number}'s hash differs from EF.SOD's"
            break

    # The signature with the DS certificate.
    certificate: x509.Certificate | None = None
    try:
        certificate = _signer_certificate(security)
        _verify_signature(security, certificate)
        signature_outcome = Outcome.PASSED
    except SodError as error:
        signature_outcome, reason = Outcome.FAILED, reason or str(error)
    except (InvalidSignature, UnsupportedAlgorithm, *_MALFORMED):
        signature_outcome = Outcome.FAILED
        reason = reason or "the EF.SOD signature does not verify with the Document Signer key"

    # The DS certificate against the CSCA list.
    if csca is None:
        certificate_outcome = Outcome.NOT_CONFIGURED
    elif certificate is None:
        certificate_outcome = Outcome.NOT_PERFORMED
    else:
        why = _check_certificate(certificate, csca, at)
        certificate_outcome = Outcome.FAILED if why else Outcome.PASSED
        reason = reason or why

    if Outcome.FAILED in (hashes_outcome, signature_outcome, certificate_outcome):
        outcome = Outcome.FAILED
    elif certificate_outcome is Outcome.NOT_CONFIGURED:
        outcome = Outcome.NOT_CONFIGURED
        reason = "no CSCA list configured: signature and hashes checked, issuer not trusted"
    else:
        outcome = Outcome.PASSED
    return PassiveAuthentication(
        outcome,
        reason,
        signature=signature_outcome,
        certificate=certificate_outcome,
        hashes=hashes_outcome,
        **common,
    )


def load_csca_list(path: str | Path) -> list[x509.Certificate]:
    """CSCA certificates from a PEM or DER file, or every such file in a folder.

    A PEM file may hold many certificates. Raises ValueError when none can be read.
    """
    root = Path(path)
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else [root]
    found: list[x509.Certificate] = []
    for file in files:
        data = file.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            found.extend(x509.load_pem_x509_certificates(data))
        elif file.suffix.lower() in {".der", ".cer", ".crt"} or not root.is_dir():
            try:
                found.append(x509.load_der_x509_certificate(data))
            except ValueError:
                if not root.is_dir():
                    raise ValueError(f"{file} is not a PEM or DER certificate") from None
    if not found:
        raise ValueError(f"no CSCA certificate found in {root}")
    return found


# --- the issuer's side ---------------------------------------------------------------------


def build_sod(
    data_groups: Mapping[int, bytes],
    signer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    signer_certificate: x509.Certificate,
    *,
    hash_algorithm: str = "sha256",
    extra_certificates: Iterable[x509.Certificate] = (),
) -> bytes:
    """EF.SOD signing the data groups' hashes with a Document Signer key (RSA or EC)."""
    lds = LdsSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": hash_algorithm},
            "data_group_hash_values": [
                {"data_group_number": number, "data_group_hash_value": _digest(hash_algorithm, dg)}
                for number, dg in sorted(data_groups.items())
            ],
        }
    )
    content = lds.dump()
    attributes = cms.CMSAttributes(
        [
            {"type": "content_type", "values": [LDS_SECURITY_OBJECT_OID]},
            {"type": "message_digest", "values": [_digest(hash_algorithm, content)]},
        ]
    )
    chosen = _HASHES[hash_algorithm]()
    if isinstance(signer_key, rsa.RSAPrivateKey):
        signature = signer_key.sign(attributes.dump(), padding.PKCS1v15(), chosen)
        signature_algorithm = f"{hash_algorithm}_rsa"
    else:
        signature = signer_key.sign(attributes.dump(), ec.ECDSA(chosen))
        signature_algorithm = f"{hash_algorithm}_ecdsa"
    certificate = asn1_x509.Certificate.load(
        signer_certificate.public_bytes(serialization.Encoding.DER)
    )
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": certificate.issuer,
                        "serial_number": certificate.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": hash_algorithm},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": signature,
        }
    )
    extra = [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
        for c in extra_certificates
    ]
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": hash_algorithm}],
            "encap_content_info": {
                "content_type": LDS_SECURITY_OBJECT_OID,
                "content": content,
            },
            "certificates": [certificate, *extra],
            "signer_infos": [signer],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return encode_tlv(TAG_SOD, info.dump())
