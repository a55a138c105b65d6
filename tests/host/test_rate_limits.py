"""Rate limits kept in the database: wrong tokens, enrollments, sign-in, status lookups."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from host.app import create_app
from host.core.config import Settings
from host.ratelimit import Limits, networks
from host.web.dashboard.auth import SIGN_IN_COOKIE
from host.web.dashboard.common import CSRF_FIELD
from shared.auth import public_key_bytes
from shared.keys import b64url
from shared.messages import API_PREFIX
from tests.host.conftest import ADMIN_TOKEN, Admin, Clock, Device

LIMITS = Limits()
WRONG = "Bearer not-a-token-of-anyones-0000"


def assert_rate_limited(response, retry_after: int | None = None) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "rate-limited"
    seconds = int(response.headers["Retry-After"])
    assert seconds >= 1
    if retry_after is not None:
        assert seconds == retry_after


def wrong_token(client: TestClient, headers: dict[str, str] | None = None):
    return client.get(
        f"{API_PREFIX}/admin/venues", headers={"Authorization": WRONG} | (headers or {})
    )


def test_wrong_tokens_are_limited_per_address_then_even_the_right_one_waits(
    client: TestClient, admin: Admin, clock: Clock
):
    for _ in range(LIMITS.failed_tokens.hits):
        assert wrong_token(client).status_code == 401
    assert_rate_limited(wrong_token(client), LIMITS.failed_tokens.window_s)
    # Refused before the token is checked: a right guess is not told apart from a wrong one.
    assert_rate_limited(admin.request("GET", "/venues"))
    clock.advance(LIMITS.failed_tokens.window_s)
    assert admin.request("GET", "/venues").status_code == 200


def test_right_tokens_do_not_count(client: TestClient, admin: Admin):
    for _ in range(LIMITS.failed_tokens.hits + 5):
        assert admin.request("GET", "/venues").status_code == 200
    assert wrong_token(client).status_code == 401


@pytest.fixture
def second_client(settings: Settings) -> Iterator[TestClient]:
    """A second app on the same database: another worker, with nothing in memory shared."""
    with TestClient(create_app(settings)) as other:
        yield other


def test_two_workers_enforce_one_limit(client: TestClient, second_client: TestClient):
    for attempt in range(LIMITS.failed_tokens.hits):
        worker = client if attempt % 2 else second_client
        assert wrong_token(worker).status_code == 401
    assert_rate_limited(wrong_token(client))
    assert_rate_limited(wrong_token(second_client))


def test_a_forwarded_for_header_is_believed_only_from_a_trusted_proxy(client: TestClient):
    for attempt in range(LIMITS.failed_tokens.hits):
        spoofed = {"X-Forwarded-For": f"203.0.113.{attempt}"}
        assert wrong_token(client, spoofed).status_code == 401
    assert_rate_limited(wrong_token(client, {"X-Forwarded-For": "203.0.113.200"}))


def test_the_client_behind_trusted_proxies_is_the_first_untrusted_hop():
    limits = Limits(trusted_proxies=networks("10.0.0.0/8, ::1"))
    forwarded = ["198.51.100.7, 203.0.113.9", "10.1.1.1"]
    assert limits.client_address("10.0.0.2", forwarded) == "203.0.113.9"
    assert limits.client_address("::1", ["203.0.113.9"]) == "203.0.113.9"
    assert limits.client_address("192.0.2.1", forwarded) == "192.0.2.1"
    assert Limits().client_address("10.0.0.2", forwarded) == "10.0.0.2"


def test_refused_enrollments_are_limited_per_address(client: TestClient, admin: Admin, venue):
    public_key = b64url(public_key_bytes(Ed25519PrivateKey.generate().public_key()))
    body = {"token": "enroll_not-a-real-token-0000", "public_key": public_key, "name": "x"}
    for _ in range(LIMITS.failed_enrollments.hits):
        refused = client.post(f"{API_PREFIX}/devices/enroll", json=body)
        assert (refused.status_code, refused.json()["error"]) == (401, "bad-token")
    assert_rate_limited(client.post(f"{API_PREFIX}/devices/enroll", json=body))
    good = client.post(
        f"{API_PREFIX}/devices/enroll", json=body | {"token": admin.token(venue["id"])}
    )
    assert_rate_limited(good)


def sign_in(client: TestClient, token: str):
    form = client.get("/dashboard/sign-in")
    assert form.status_code == 200
    secret = client.cookies.get(SIGN_IN_COOKIE)
    return client.post(
        "/dashboard/sign-in",
        data={"token": token, CSRF_FIELD: secret, "then": ""},
        follow_redirects=False,
    )


def test_the_sign_in_form_is_limited_per_address(client: TestClient):
    for _ in range(LIMITS.failed_tokens.hits):
        assert sign_in(client, "not-a-token-of-anyones").status_code == 401
    assert_rate_limited(sign_in(client, ADMIN_TOKEN))


def status(device: Device, clock: Clock, person_ref: str = "p_nobody"):
    body = {"person_ref": person_ref}
    return device.request("POST", "/device/status", json_body=body, time_ms=clock.ms())


def test_status_lookups_are_limited_per_device(
    client: TestClient, admin: Admin, venue, device: Device, clock: Clock
):
    person = admin.import_person()
    for _ in range(LIMITS.status_burst.hits):
        assert status(device, clock, person["person_ref"]).status_code == 200
    assert_rate_limited(status(device, clock, person["person_ref"]))
    other = Device.enroll(client, admin.token(venue["id"]), name="gate-2")
    assert status(other, clock, person["person_ref"]).status_code == 200
    # A real queue: one person every 3 s never meets a limit.
    clock.advance(LIMITS.status_sustained.window_s)
    for _ in range(3 * LIMITS.status_sustained.hits):
        clock.advance(3)
        assert status(device, clock, person["person_ref"]).status_code == 200


def test_verification_and_check_ins_are_not_limited(device: Device, clock: Clock):
    for _ in range(LIMITS.status_burst.hits + 5):
        sent = device.request(
            "POST",
            "/device/checkins",
            json_body={"checkins": [device.checkin()]},
            time_ms=clock.ms(),
        )
        assert sent.status_code == 200, sent.text
