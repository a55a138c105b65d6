"""EU DCCs at the host: signers and value sets published to devices, and online verification."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from host.app import create_app
from host.core.config import Settings
from shared.dcc.certificates import load_certificate
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.dcc.value_sets import (
    NEEDED,
    TEST_DEVICES,
    VALUE_SETS_DIR_ENV,
    packaged_value_sets,
)
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


def test_value_sets_reach_devices_and_newer_ones_admit_new_codes(
    dcc_client: TestClient,
    settings: Settings,
    signer: SpecimenSigner,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host sends its value sets with the signers; $SENTINEL_DCC_VALUE_SETS names newer
    ones (the live test-device set, say), which the next configuration carries."""
    admin = Admin(dcc_client)
    device = Device.enroll(dcc_client, admin.token(admin.venue(category="office")["id"]))
    config = DeviceConfig.model_validate(device.config)
    assert {sent.id for sent in config.dcc_value_sets} >= NEEDED
    assert config.value_sets() == packaged_value_sets()
    payload = specimen_payload("t")
    payload["t"][0] |= {"tt": "LP217198-3", "ma": "9999"}  # a rapid test, a device unknown
    rapid = issue_dcc(payload, signer)
    refused = _verify(device, clock, rapid)
    assert refused["outcome"] == "refer"
    assert refused["reasons"][0].startswith("unknown-code: $.t[0].ma")

    held = packaged_value_sets().sets[TEST_DEVICES]
    newer = tmp_path / "value-sets"
    newer.mkdir()
    (newer / "test-manf.json").write_text(
        json.dumps(
            {
                "valueSetId": TEST_DEVICES,
                "valueSetDate": "2023-06-30",
                "valueSetValues": {code: {"active": True} for code in held.codes | {"9999"}},
            }
        )
    )
    monkeypatch.setenv(VALUE_SETS_DIR_ENV, str(newer))
    with TestClient(create_app(replace(settings, dcc_trust=tmp_path / "dsc"))) as client:
        restarted = replace(device, client=client)
        response = restarted.request("GET", "/device/config", time_ms=clock.ms())
        assert response.status_code == 200, response.text
        config = DeviceConfig.model_validate(response.json())
        [devices] = [sent for sent in config.dcc_value_sets if sent.id == TEST_DEVICES]
        assert (devices.date, "9999" in devices.codes) == (date(2023, 6, 30), True)
        assert "9999" in config.value_sets().sets[TEST_DEVICES].codes
        assert _verify(restarted, clock, rapid)["outcome"] == "pass"


def _verify(device: Device, clock: Clock, text: str) -> dict:
    response = device.request(
        "POST", "/device/verify", json_body={"text": text}, time_ms=clock.ms()
    )
    assert response.status_code == 200, response.text
    return response.json()
