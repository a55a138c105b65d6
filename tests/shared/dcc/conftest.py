"""Specimen DCC signers (made once per session) and the reference schemas when present."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import SpecimenSigner
from shared.keys import ES256, PS256
from tests.conftest import SHARED_DATA

SCHEMA_DIR = SHARED_DATA / "dcc" / "eu-dcc-schema"
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
