"""EU DCCs at the host: signer certificates published to devices, and online verification."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from host.app import create_app
from host.core.config import Settings
from shared.dcc.certificates import load_certificate
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.denylist import HashKind, certificate_hashes
from shared.keys import KeyPurpose, b64url_decode
from shared.messages import DeviceConfig
from tests.conftest import SHARED_DATA
from tests.host.conftest import Admin, Clock, Device

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "dcc" / "eu-dcc-schema").is_dir(),
    reason="the EU DCC schemas (../shared/data/dcc/eu-dcc-schema) are not present",
)


@pytest.fixture(scope="module")
def signer() -> SpecimenSigner:
    return SpecimenSigner.generate()


@pytest.fixture
def dcc_client(
    settings: Settings, signer: SpecimenSigner, tmp_path: Path, clock: Clock
) -> Iterator[TestClient]:
    trust_dir = tmp_path / "dsc"
    trust_dir.mkdir()
    (trust_dir / "specimen.pem").write_bytes(signer.pem)
    clock.now = (EPOCH + timedelta(hours=2)).timestamp()  # the specimen's lifetime
    with TestClient(create_app(replace(settings, dcc_trust=trust_dir))) as client:
        yield client


def test_signers_reach_devices_and_dccs_verify_online(
    dcc_client: TestClient, signer: SpecimenSigner, clock: Clock
) -> None:
    admin = Admin(dcc_client)
    venue = admin.venue(category="office")
    device = Device.enroll(dcc_client, admin.token(venue["id"]))
    config = DeviceConfig.model_validate(device.config)
    [published] = config.dcc_signers
    assert load_certificate(b64url_decode(published)).kid == signer.certificate.kid
    assert config.trust().candidates(signer.certificate.kid, KeyPurpose.DCC)

    test = issue_dcc(specimen_payload("t"), signer)
    vaccination = issue_dcc(specimen_payload("v"), signer)
    assert _verify(device, clock, test)["outcome"] == "pass"
    refused = _verify(device, clock, vaccination)  # an office wants a test
    assert refused["outcome"] == "deny"
    assert refused["reasons"][0].startswith("no-test")

    stranger = issue_dcc(specimen_payload("t"), SpecimenSigner.generate())
    assert _verify(device, clock, stranger)["reasons"][0].startswith("untrusted-signer")

    uvci = specimen_payload("t")["t"][0]["ci"]
    digest = certificate_hashes(uvci, "XX", b"", ecdsa=True)[HashKind.UCI]
    admin.ok(
        "POST",
        "/denylist",
        json={"reason": "reported stolen", "entries": [{"kind": "uci", "digest": digest.hex()}]},
    )
    listed = _verify(device, clock, test)
    assert listed["outcome"] == "deny"
    assert listed["reasons"][0].startswith("deny-listed")


def _verify(device: Device, clock: Clock, text: str) -> dict:
    response = device.request(
        "POST", "/device/verify", json_body={"text": text}, time_ms=clock.ms()
    )
    assert response.status_code == 200, response.text
    return response.json()
