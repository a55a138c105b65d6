"""Specimen DCC signers (made once per session), the reference schemas and real DCCs."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.dcc.certificates import SignerCertificate, load_certificate, trust_list
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import SpecimenSigner
from shared.keys import ES256, PS256, TrustStore
from tests.conftest import SHARED_DATA

SCHEMA_DIR = SHARED_DATA / "dcc" / "eu-dcc-schema"
DGC_TESTDATA = SHARED_DATA / "dcc" / "dgc-testdata"
VALUE_SET_DIR = SHARED_DATA / "dcc" / "ehn-dcc-valuesets"
TEST_OID = "1.3.6.1.4.1.1847.2021.1.1"
VACCINATION_OID = "1.3.6.1.4.1.1847.2021.1.2"
RECOVERY_OID = "1.3.6.1.4.1.1847.2021.1.3"


@pytest.fixture(scope="session")
def schemas() -> SchemaStore:
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"the DCC schemas are not at {SCHEMA_DIR} (../shared/data/dcc/eu-dcc-schema)")
    return SchemaStore.from_directory(SCHEMA_DIR)


@pytest.fixture(scope="session")
def es256_signer() -> SpecimenSigner:
    return SpecimenSigner.generate(ES256)


@pytest.fixture(scope="session")
def ps256_signer() -> SpecimenSigner:
    return SpecimenSigner.generate(PS256)


@pytest.fixture(scope="session")
def vaccination_signer() -> SpecimenSigner:
    return SpecimenSigner.generate(ES256, extended_key_usage=[VACCINATION_OID])


@pytest.fixture(scope="session")
def p384_signer() -> SpecimenSigner:
    return SpecimenSigner.generate(ES256, curve=ec.SECP384R1())


@dataclass(frozen=True)
class RealDcc:
    """One dgc-testdata file: the DCC as scanned, its COSE, its signer and its clock."""

    text: str
    cose: bytes
    certificate: SignerCertificate
    clock: datetime
    payload: dict

    @property
    def trust(self) -> TrustStore:
        return trust_list([self.certificate])


def real_dcc(name: str) -> RealDcc:
    """A dgc-testdata file by its path under dgc-testdata/; skips when the data is absent."""
    path = DGC_TESTDATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (../shared/data/dcc/dgc-testdata)")
    data = json.loads(path.read_text("utf-8"))
    context = data["TESTCTX"]
    clock = datetime.fromisoformat(context["VALIDATIONCLOCK"])
    return RealDcc(
        text=data["PREFIX"],
        cose=bytes.fromhex(data["COSE"]),
        certificate=load_certificate(base64.b64decode(context["CERTIFICATE"])),
        clock=clock if clock.tzinfo else clock.replace(tzinfo=UTC),
        payload=data["JSON"],
    )
