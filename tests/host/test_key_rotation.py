"""Key rotation: `sentinel host keys`; old posters verify after it, new codes use the new keys."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from host import cli
from host.app import create_app
from host.core.config import Settings
from host.keystore import (
    DEFAULT_OVERLAP_DAYS,
    HostKeyPurpose,
    KeyDirectory,
    KeyDirectoryError,
    KeyState,
    retire,
    rotate,
)
from host.signing import HostKeys
from host.storage.base import Storage
from shared import healthcode, venuecode
from shared.envelope import CredentialError
from shared.keys import KeyPurpose, TrustStore, b64url_decode
from shared.messages import API_PREFIX, PublishedKey, trust_store
from shared.sealed import CardIdentity, DocumentType, SealError, seal
from tests.host.conftest import PUBLIC_URL, START, Admin, Device, TestClient

DAY_MS = 86_400_000
START_MS = int(START.timestamp() * 1000)
ROOM = {"binding": {"kind": "room", "value": "12"}}


def sentinel(argv: list[str]) -> int:
    """`sentinel host ...` as the command runs it, in this process."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert argv[0] == "host"
    return cli.run(parser.parse_args(argv[1:]))


def key_directory(settings: Settings) -> Path:
    storage = settings.database.open()
    try:
        return storage.default_key_directory
    finally:
        storage.close()


def open_sqlite(tmp_path: Path) -> Storage:
    settings = Settings(database=tmp_path / "host.db", public_url=PUBLIC_URL, admin_token="x" * 16)
    return settings.database.open()


def load_keys(settings: Settings) -> HostKeys:
    storage = settings.database.open()
    try:
        return HostKeys.load(storage, now_ms=START_MS)
    finally:
        storage.close()


def published(client: TestClient) -> list[PublishedKey]:
    keys = client.get(f"{API_PREFIX}/keys").json()["keys"]
    return [PublishedKey.model_validate(key) for key in keys]


def of_purpose(keys: list[PublishedKey], purpose: KeyPurpose) -> list[str]:
    return [key.kid for key in keys if key.purpose is purpose]


def only(keys: list[PublishedKey], kid: str) -> TrustStore:
    return trust_store([key for key in keys if key.kid == kid])


def venue_page(client: TestClient, url: str) -> tuple[int, bool]:
    """The host's venue page for a poster's URL: its status, and whether it took the code."""
    page = client.get(url.removeprefix(PUBLIC_URL))
    return page.status_code, "Not a valid venue code" not in page.text


def test_old_posters_verify_after_a_rotation_and_new_codes_carry_new_keys(
    settings: Settings, capsys: pytest.CaptureFixture[str]
):
    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        venue = admin.venue()
        poster = venue["code_url"]
        room = admin.ok("POST", f"/venues/{venue['id']}/codes", json=ROOM)["url"]
        before = published(client)
    (old_venue,) = of_purpose(before, KeyPurpose.VENUE)
    (old_health,) = of_purpose(before, KeyPurpose.HEALTH)
    directory = key_directory(settings)

    assert sentinel(["host", "keys", "rotate", "--keys", str(directory)]) == 0
    assert "restart `sentinel host serve`" in capsys.readouterr().out

    with TestClient(create_app(settings)) as client:  # the host restarted: keys read anew
        admin = Admin(client)
        after = published(client)
        (new_venue,) = set(of_purpose(after, KeyPurpose.VENUE)) - {old_venue}
        (new_health,) = set(of_purpose(after, KeyPurpose.HEALTH)) - {old_health}
        assert old_venue in of_purpose(after, KeyPurpose.VENUE)  # still published
        # The printed posters: on the host's venue page, and as a device checks them offline.
        assert venue_page(client, poster) == (200, True)
        assert venue_page(client, room) == (200, True)
        device = Device.enroll(client, admin.token(venue["id"]))
        assert {key["kid"] for key in device.config["keys"]} == {key.kid for key in after}
        assert venuecode.read_url(poster, device.trust()).venue_id == venue["id"]
        assert venuecode.read_url(room, only(after, old_venue)).venue_id == venue["id"]
        # What is signed now is signed with the new keys.
        other = admin.venue("Harbour Market")
        assert venuecode.read_url(other["code_url"], only(after, new_venue)).venue_id == other["id"]
        with pytest.raises(CredentialError):
            venuecode.read_url(other["code_url"], only(after, old_venue))
        ref = admin.import_person()["person_ref"]
        text = admin.ok("POST", f"/people/{ref}/codes", json={})["text"]
        assert healthcode.read(text, only(after, new_health), now=START).person_ref == ref
        with pytest.raises(CredentialError):
            healthcode.read(text, only(after, old_health), now=START)

    assert sentinel(["host", "keys", "retire", "--keys", str(directory), old_venue]) == 0
    with TestClient(create_app(settings)) as client:
        assert old_venue not in of_purpose(published(client), KeyPurpose.VENUE)
        assert venue_page(client, poster) == (400, False)  # a retired key's posters are gone
        admin = Admin(client)
        device = Device.enroll(client, admin.token(venue["id"]), name="gate-2")
        with pytest.raises(CredentialError, match="no venue key"):
            venuecode.read_url(poster, device.trust())


def test_a_devices_trust_holds_the_old_and_new_keys_of_each_purpose(settings: Settings):
    with TestClient(create_app(settings)) as client:
        before = published(client)
    rotate(KeyDirectory(key_directory(settings)), list(HostKeyPurpose), START_MS)
    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        device = Device.enroll(client, admin.token(admin.venue()["id"]))
    trust = device.trust()
    for key in before:
        assert trust.candidates(b64url_decode(key.kid), key.purpose)
    assert len(trust) == 2 * len(before)


def test_devices_seal_to_the_newest_key_and_the_host_opens_with_any(settings: Settings):
    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        device = Device.enroll(client, admin.token(admin.venue()["id"]))
    identity = CardIdentity.of(DocumentType.CN_ID, "CHN", "110101199003077774")
    sealed_before = seal(identity, b64url_decode(device.config["sealing_key"]["public_key"]))
    directory = key_directory(settings)
    rotate(KeyDirectory(directory), [HostKeyPurpose.SEALING], START_MS)

    with TestClient(create_app(settings)) as client:
        admin = Admin(client)
        again = Device.enroll(client, admin.token(admin.venue("Harbour")["id"]), name="gate-2")
    old_kid = device.config["sealing_key"]["kid"]
    assert again.config["sealing_key"]["kid"] != old_kid
    keys = load_keys(settings)
    sealed_after = seal(identity, b64url_decode(again.config["sealing_key"]["public_key"]))
    assert keys.sealing.open(sealed_before) == identity
    assert keys.sealing.open(sealed_after) == identity

    retire(KeyDirectory(directory), old_kid, START_MS)
    with pytest.raises(SealError):
        load_keys(settings).sealing.open(sealed_before)
    old_file = f"sealing-{b64url_decode(old_kid).hex()}.key"
    assert old_file not in {path.name for path in directory.iterdir()}  # its private half too


def test_a_replaced_health_key_is_trusted_for_its_overlap_then_published_no_more(tmp_path: Path):
    opened = open_sqlite(tmp_path)
    try:
        first = HostKeys.load(opened, now_ms=START_MS)
        directory = KeyDirectory(opened.default_key_directory)
        rotate(directory, [HostKeyPurpose.HEALTH, HostKeyPurpose.VENUE], START_MS)
        within = HostKeys.load(opened, now_ms=START_MS + 29 * DAY_MS)
        beyond = HostKeys.load(opened, now_ms=START_MS + 31 * DAY_MS)
    finally:
        opened.close()
    assert DEFAULT_OVERLAP_DAYS[HostKeyPurpose.HEALTH] == 30
    old_health = PublishedKey.of(first.health, KeyPurpose.HEALTH)
    old_venue = PublishedKey.of(first.venue, KeyPurpose.VENUE)
    assert old_health in within.published and old_health not in beyond.published
    assert old_venue in beyond.published  # venue keys: until retired
    assert within.health.kid == beyond.health.kid != first.health.kid
    later = START_MS + 31 * DAY_MS
    states = {record.kid: record.state(later) for record in directory.require().keys}
    assert states[old_health.kid] is KeyState.EXPIRED
    assert states[old_venue.kid] is KeyState.TRUSTED


def test_the_commands_say_what_they_did_and_refuse_what_they_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    opened = open_sqlite(tmp_path)
    try:
        keys = HostKeys.load(opened)
        directory = opened.default_key_directory
    finally:
        opened.close()
    policy = PublishedKey.of(keys.policy, KeyPurpose.POLICY).kid
    assert sentinel(["host", "keys", "retire", "--keys", str(directory), policy]) == 2
    assert "is the current policy key: rotate it first" in capsys.readouterr().err

    rotating = ["rotate", "--keys", str(directory), "--purpose", "policy", "--overlap-days", "2"]
    assert sentinel(["host", "keys", *rotating]) == 0
    listed = capsys.readouterr().out
    assert "policy: new current key" in listed
    assert f"{policy}  policy   trusted" in listed
    manifest = json.loads((directory / "keys.json").read_text())
    assert [key["purpose"] for key in manifest["keys"]].count("policy") == 2
    # The replaced signing key's private half is gone: only its public half is published.
    policy_files = {path.name for path in directory.iterdir() if path.name.startswith("policy-")}
    assert policy_files == {manifest["keys"][-1]["file"]}

    assert sentinel(["host", "keys", "list", "--keys", str(tmp_path / "none")]) == 2
    assert "holds no key ring" in capsys.readouterr().err
    with pytest.raises(KeyDirectoryError, match="no key nosuchkey"):
        retire(KeyDirectory(directory), "nosuchkey", START_MS)
