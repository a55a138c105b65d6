"""Device enrollment and signed device requests: signatures, replays, clock skew, revocation."""

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from host.app import create_app
from host.core.config import Settings
from shared.auth import HEADER_SERVER_TIME, MAX_SKEW_MS, public_key_bytes
from shared.keys import KeyPurpose, b64url
from shared.messages import API_PREFIX, DeviceConfig, trust_store
from tests.host.conftest import Admin, Clock, Device, TestClient, db_rows

ENROLL = f"{API_PREFIX}/devices/enroll"


def enroll_body(token: str, key: Ed25519PrivateKey | None = None) -> dict:
    key = key or Ed25519PrivateKey.generate()
    return {"token": token, "public_key": b64url(public_key_bytes(key.public_key()))}


# ---- enrollment ---------------------------------------------------------------------------


def test_enrollment_gives_the_device_its_config(admin: Admin, venue: dict, clock: Clock):
    device = Device.enroll(admin.client, admin.token(venue["id"]), name="north gate")
    config = DeviceConfig.model_validate(device.config)
    assert device.device_id.startswith("d_")
    assert config.device_id == device.device_id
    assert config.venue.model_dump(mode="json") == venue
    assert config.rules.category.value == "public_place"
    assert {key.purpose for key in config.keys} == {
        KeyPurpose.HEALTH,
        KeyPurpose.VENUE,
        KeyPurpose.POLICY,
    }
    assert config.rules.open(trust_store(config.keys)).version == 1
    assert len(device.trust()) == 3
    assert config.server_time.timestamp() == clock.now

    [info] = admin.ok("GET", "/devices")
    assert info["id"] == device.device_id
    assert info["name"] == "north gate"
    assert info["form"] == "kiosk"
    assert info["venue_id"] == venue["id"]
    assert info["last_seen_at"] is None
    assert info["revoked"] is False


def test_an_enrollment_token_works_once(admin: Admin, venue: dict):
    token = admin.token(venue["id"])
    Device.enroll(admin.client, token)
    again = admin.client.post(ENROLL, json=enroll_body(token))
    assert (again.status_code, again.json()["error"]) == (401, "token-used")
    unknown = admin.client.post(ENROLL, json=enroll_body("x" * 43))
    assert (unknown.status_code, unknown.json()["error"]) == (401, "bad-token")


def test_enrollment_tokens_never_look_like_command_line_options(admin: Admin, venue: dict):
    tokens = {admin.token(venue["id"]) for _ in range(100)}
    assert len(tokens) == 100
    assert all(token.startswith("enroll_") and len(token) == 50 for token in tokens)


def test_an_enrollment_token_expires(admin: Admin, venue: dict, clock: Clock):
    token = admin.token(venue["id"], ttl_seconds=60)
    clock.advance(61)
    expired = admin.client.post(ENROLL, json=enroll_body(token))
    assert (expired.status_code, expired.json()["error"]) == (401, "token-expired")


def test_a_bad_public_key_does_not_use_up_the_token(admin: Admin, venue: dict):
    token = admin.token(venue["id"])
    for bad in ["AAAA", "not base64 at all!", b64url(bytes(33))]:
        response = admin.client.post(ENROLL, json={"token": token, "public_key": bad})
        assert (response.status_code, response.json()["error"]) == (422, "bad-public-key")
    Device.enroll(admin.client, token)


# The identity point: OpenSSL verifies the signature (identity, 0) under it for any message.
IDENTITY_KEY = bytes.fromhex("01" + "00" * 31)


def test_a_weak_key_is_refused_and_does_not_use_up_the_token(admin: Admin, venue: dict):
    forged = Ed25519PublicKey.from_public_bytes(IDENTITY_KEY)
    forged.verify(IDENTITY_KEY + bytes(32), b"any request at all")  # what enrolling it allowed
    token = admin.token(venue["id"])
    order_8 = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
    for weak in [IDENTITY_KEY, bytes.fromhex(order_8)]:
        response = admin.client.post(ENROLL, json={"token": token, "public_key": b64url(weak)})
        assert (response.status_code, response.json()["error"]) == (422, "weak-public-key")
    Device.enroll(admin.client, token)


def test_two_devices_racing_for_one_token_one_wins(admin: Admin, venue: dict):
    token = admin.token(venue["id"])
    racers = 6
    barrier = threading.Barrier(racers)
    results: list[tuple[int, str | None]] = []

    def enroll() -> None:
        body = enroll_body(token)
        barrier.wait()
        response = admin.client.post(ENROLL, json=body)
        results.append((response.status_code, response.json().get("error")))

    threads = [threading.Thread(target=enroll) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [(201, None)] + [(401, "token-used")] * (racers - 1)
    assert len(admin.ok("GET", "/devices")) == 1


# ---- signed requests ----------------------------------------------------------------------


def test_a_signed_request_is_accepted_and_marks_the_device_seen(
    admin: Admin, device: Device, clock: Clock
):
    clock.advance(5)
    response = device.request("GET", "/device/config", time_ms=clock.ms())
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == device.device_id
    assert response.headers[HEADER_SERVER_TIME] == str(clock.ms())
    [info] = admin.ok("GET", "/devices")
    assert info["last_seen_at"] == response.json()["server_time"]


def test_a_signature_from_another_key_is_refused(device: Device, clock: Clock):
    impostor = Device(device.client, Ed25519PrivateKey.generate(), device.device_id, device.config)
    response = impostor.request("GET", "/device/config", time_ms=clock.ms())
    assert (response.status_code, response.json()["error"]) == (401, "bad-signature")


def test_a_tampered_body_is_refused(device: Device, clock: Clock):
    target = f"{API_PREFIX}/device/status"
    headers = device.headers("POST", target, b'{"person_ref": "p_a"}', clock.ms())
    response = device.client.post(target, content=b'{"person_ref": "p_b"}', headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, "bad-signature")


def test_the_signature_covers_the_query(device: Device, clock: Clock):
    target = f"{API_PREFIX}/device/config"
    headers = device.headers("GET", target, b"", clock.ms())
    response = device.client.get(f"{target}?venue=elsewhere", headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, "bad-signature")
    headers = device.headers("GET", f"{target}?venue=elsewhere", b"", clock.ms())
    assert device.client.get(f"{target}?venue=elsewhere", headers=headers).status_code == 200


def test_a_replayed_request_is_refused(device: Device, clock: Clock):
    target = f"{API_PREFIX}/device/config"
    headers = device.headers("GET", target, b"", clock.ms())
    assert device.client.get(target, headers=headers).status_code == 200
    replay = device.client.get(target, headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replay")


def test_a_request_signed_before_the_host_started_is_refused_as_a_skew(
    device: Device, clock: Clock, settings: Settings
):
    """A replay of a request from before a restart finds no nonce, if the power took it."""
    clock.advance(60)
    signed_earlier = device.headers("GET", f"{API_PREFIX}/device/config", b"", clock.ms() - 1)
    with TestClient(create_app(settings)) as restarted:  # the host starts again, a minute on
        old = restarted.get(f"{API_PREFIX}/device/config", headers=signed_earlier)
        assert (old.status_code, old.json()["error"]) == (401, "clock-skew")
        assert "signed before this host started" in old.json()["detail"]
        again = Device(restarted, device.key, device.device_id, device.config)
        assert again.request("GET", "/device/config", time_ms=clock.ms()).status_code == 200


def test_clock_skew_is_refused_with_the_server_time_to_correct_by(device: Device, clock: Clock):
    for offset_ms in (-MAX_SKEW_MS - 1000, MAX_SKEW_MS + 1000):
        response = device.request("GET", "/device/config", time_ms=clock.ms() + offset_ms)
        assert response.status_code == 401
        assert response.json()["error"] == "clock-skew"
        server_ms = int(response.headers[HEADER_SERVER_TIME])
        assert server_ms == clock.ms()
        # The device corrects its clock by the server's time and retries.
        assert device.request("GET", "/device/config", time_ms=server_ms).status_code == 200


def test_requests_without_auth_headers_or_from_strangers_are_refused(device: Device, clock: Clock):
    bare = device.client.get(f"{API_PREFIX}/device/config")
    assert (bare.status_code, bare.json()["error"]) == (401, "bad-request-auth")
    stranger = Device(device.client, device.key, "d_unknown", device.config)
    response = stranger.request("GET", "/device/config", time_ms=clock.ms())
    assert (response.status_code, response.json()["error"]) == (401, "unknown-device")


def test_a_non_ascii_digit_in_the_time_header_is_a_401(device: Device, clock: Clock):
    target = f"{API_PREFIX}/device/config"
    headers = device.headers("GET", target, b"", clock.ms()) | {
        "X-Sentinel-Time": "\xb2".encode("latin-1")
    }
    response = device.client.get(target, headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, "bad-request-auth")


def test_a_revoked_device_is_refused_at_once(admin: Admin, device: Device, clock: Clock):
    assert device.request("GET", "/device/config", time_ms=clock.ms()).status_code == 200
    revoked = admin.ok("POST", f"/devices/{device.device_id}/revoke")
    assert revoked["revoked"] is True
    response = device.request("GET", "/device/config", time_ms=clock.ms())
    assert (response.status_code, response.json()["error"]) == (403, "device-revoked")
    again = Device.enroll(admin.client, admin.token(device.venue_id))
    assert again.request("GET", "/device/config", time_ms=clock.ms()).status_code == 200
    assert admin.request("POST", "/devices/d_unknown/revoke").status_code == 404


def test_an_oversized_body_is_refused(device: Device, clock: Clock, settings: Settings):
    body = b" " * (settings.max_device_body_bytes + 1)
    response = device.request("POST", "/device/checkins", content=body, time_ms=clock.ms())
    assert (response.status_code, response.json()["error"]) == (413, "too-large")


def test_old_nonces_are_purged(device: Device, clock: Clock, settings: Settings):
    def nonces() -> int:
        return db_rows(settings, "SELECT COUNT(*) FROM device_nonces")[0][0]

    for _ in range(3):
        assert device.request("GET", "/device/config", time_ms=clock.ms()).status_code == 200
    assert nonces() == 3
    clock.advance(2 * MAX_SKEW_MS / 1000 + settings.nonce_purge_interval_s + 1)
    assert device.request("GET", "/device/config", time_ms=clock.ms()).status_code == 200
    assert nonces() == 1
