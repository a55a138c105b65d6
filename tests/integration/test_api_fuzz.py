"""The whole API under property-based requests made from its own OpenAPI schema (schemathesis).

A real host process on 127.0.0.1, asked by an admin (so admin routes are reached past the
token check) and by nobody (so every refusal path is too), with valid and invalid requests
made from the schema: whatever the request, the host answers with a status it chose, never a
500. Bounded: a fixed number of examples per operation, mode and caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from sentinel.demo import HostProcess, free_port

pytestmark = pytest.mark.integration
EXAMPLES = 10  # per operation, generation mode and caller: about 1,500 requests in all


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path_factory.mktemp("api-fuzz"), free_port(), os.urandom(16).hex())
    process.start()
    yield process
    process.stop()


def server_errors(
    served: HostProcess,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
) -> list[str]:
    """Each request of `operation` the host answered with a 5xx: how it was made and answered."""
    strategy = operation.as_strategy(generation_mode=mode)
    found: list[str] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def ask(case: schemathesis.Case) -> None:
        response = case.call(base_url=served.url, headers=headers, timeout=30)
        if response.status_code >= 500:
            found.append(f"{mode.value}: {response.status_code} {case!r}")

    try:
        ask()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # An operation with nothing to get wrong (no parameters, no body) has no invalid request.
    return found


def test_no_request_makes_the_host_fail(served: HostProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20  # the schema was read whole
    admin = {"Authorization": f"Bearer {served.token_file.read_text().strip()}"}
    failures = [
        f"{operation.label} as {caller}: {failure}"
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for caller, headers in (("admin", admin), ("nobody", {}))
        for failure in server_errors(served, operation, mode, headers)
    ]
    assert failures == []
