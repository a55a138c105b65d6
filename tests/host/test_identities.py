"""ID cards on the host: sealed identities looked up online and resolved on ingest, never kept."""

from __future__ import annotations

from uuid import UUID

from host.core.config import Settings
from shared.messages import SealingKeyOut
from shared.sealed import CardIdentity, DocumentType, seal
from tests.host.conftest import ID_NUMBER, OTHER_ID_NUMBER, Admin, Clock, Device, db_rows


def sealed_for(device: Device, id_number: str) -> str:
    """Seal an ID number as a device does, to the key its configuration names."""
    key = SealingKeyOut.model_validate(device.config["sealing_key"])
    return seal(CardIdentity.of(DocumentType.CN_ID, "CHN", id_number), key.raw())


def status(device: Device, clock: Clock, body: dict) -> dict:
    response = device.request("POST", "/device/status", json_body=body, time_ms=clock.ms())
    assert response.status_code == 200, response.text
    return response.json()


def test_the_config_names_a_sealing_key_that_stays_across_requests(device: Device, clock: Clock):
    config = device.request("GET", "/device/config", time_ms=clock.ms()).json()
    assert config["sealing_key"] == device.config["sealing_key"]
    assert len(SealingKeyOut.model_validate(config["sealing_key"]).raw()) == 32


def test_a_sealed_card_finds_its_holders_status(admin: Admin, device: Device, clock: Clock):
    person = admin.import_person(colour="yellow")
    assert (
        status(device, clock, {"sealed_identity": sealed_for(device, ID_NUMBER)})
        == {"known": True} | person | {"updated_at": None}  # only what the kiosk needs
    )


def test_an_unknown_card_gets_a_stable_pseudonym(device: Device, clock: Clock):
    asked = [
        status(device, clock, {"sealed_identity": sealed_for(device, OTHER_ID_NUMBER)})
        for _ in range(2)
    ]
    assert asked[0] == asked[1]  # two seals of one card differ; its pseudonym does not
    assert asked[0]["known"] is False
    assert asked[0]["person_ref"].startswith("u_")
    assert OTHER_ID_NUMBER not in repr(asked)


def test_a_seal_that_does_not_open_is_refused_clearly(device: Device, clock: Clock):
    broken = sealed_for(device, ID_NUMBER)[:-4] + "AAAA"
    for body, error in (
        ({"sealed_identity": broken}, "bad-sealed-identity"),
        ({"person_ref": "p_x", "sealed_identity": broken}, "invalid-request"),
        ({}, "invalid-request"),
    ):
        response = device.request("POST", "/device/status", json_body=body, time_ms=clock.ms())
        assert response.status_code == 422, response.text
        assert response.json()["error"] == error


def test_ingest_keeps_the_holders_reference_and_drops_the_seal(
    admin: Admin, device: Device, clock: Clock, settings: Settings
):
    person = admin.import_person()
    known = device.checkin(kind="idcard", sealed_identity=sealed_for(device, ID_NUMBER))
    stranger = device.checkin(kind="idcard", sealed_identity=sealed_for(device, OTHER_ID_NUMBER))
    damaged = device.checkin(kind="idcard", sealed_identity="SI1:AAAA")
    response = device.request(
        "POST",
        "/device/checkins",
        json_body={"checkins": [known, stranger, damaged]},
        time_ms=clock.ms(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 3  # a seal that does not open costs the reference only
    stored = {
        str(UUID(bytes=row_id)): person_ref
        for row_id, person_ref in db_rows(settings, "SELECT id, person_ref FROM checkins")
    }
    everything = repr(db_rows(settings, "SELECT * FROM checkins"))
    assert stored[known["id"]] == person["person_ref"]
    assert stored[stranger["id"]].startswith("u_")
    assert stored[damaged["id"]] is None
    assert "SI1:" not in everything
