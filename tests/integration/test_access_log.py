"""A real host's access log: every request logged, no plate, person reference or token in it."""

from __future__ import annotations

import httpx
import pytest

from sentinel.demo import HostProcess
from shared.messages import API_PREFIX

pytestmark = pytest.mark.integration


def test_a_real_hosts_access_log_is_redacted(host: HostProcess) -> None:
    for target in (
        "/v/v_abc?b=plate:%E4%BA%ACA12345&k=a&s=b",
        f"{API_PREFIX}/people/p_7xk2secret?purpose=case",
        "/sign-in?token=signin_topsecret",
    ):
        httpx.get(host.url + target, timeout=10)
    host.stop()  # the log is whole once the process has ended
    log = host.log.read_text()
    assert "GET /v/v_abc?b=…&k=…&s=…" in log  # the request is logged, its values are not
    for secret in ("A12345", "%E4%BA%AC", "p_7xk2secret", "signin_topsecret"):
        assert secret not in log
