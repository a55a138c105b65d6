"""Security headers on every response, no Host-header redirects, an access log without people."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from host.api.hardening import HSTS, redact_target
from shared.messages import API_PREFIX

EVERY_RESPONSE = ("X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


@pytest.mark.parametrize(
    "path",
    [
        f"{API_PREFIX}/health",  # JSON
        f"{API_PREFIX}/keys",
        f"{API_PREFIX}/admin/stats",  # 401
        "/no-such-page",  # 404
        "/assets/phone.css",  # a file
        "/dashboard/sign-in",  # a page with its own policy
        "/v/v_unknown",  # a citizen's page
    ],
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # plain http: no HSTS


def test_a_page_keeps_its_own_policy_and_json_gets_one_that_allows_nothing(
    client: TestClient,
) -> None:
    page = client.get("/dashboard/sign-in").headers["Content-Security-Policy"]
    assert "default-src 'self'" in page and "form-action 'self'" in page
    json_policy = client.get(f"{API_PREFIX}/health").headers["Content-Security-Policy"]
    assert json_policy.startswith("default-src 'none'")


def test_hsts_is_sent_over_https(client: TestClient) -> None:
    response = client.get("https://testserver" + f"{API_PREFIX}/health")
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize("path", [f"{API_PREFIX}/health/", "/dashboard/sign-in/", "/me/"])
def test_no_redirect_is_built_from_the_host_header(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert "location" not in response.headers
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/v/v_abc?b=plate:%E4%BA%ACA12345&k=kid&s=sig", "/v/v_abc?b=…&k=…&s=…"),
        (f"{API_PREFIX}/people/p_7xk2?purpose=case-12", f"{API_PREFIX}/people/…?purpose=…"),
        ("/sign-in?token=signin_secret", "/sign-in?token=…"),
        (f"{API_PREFIX}/health", f"{API_PREFIX}/health"),
    ],
)
def test_the_access_log_keeps_no_person_plate_or_token(target: str, logged: str) -> None:
    assert redact_target(target) == logged
