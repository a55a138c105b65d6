"""`scripts/chaos --quick --json`: under each fault, each check-in told is on the host once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.chaos.harness import FAULTS

pytestmark = pytest.mark.integration


def test_no_fault_loses_or_doubles_an_acknowledged_checkin(tmp_path: Path) -> None:
    # Its own process group: whatever happens, the suite and every process it started go.
    suite = subprocess.Popen(
        [sys.executable, "-m", "sentinel.chaos", "--quick", "--json",
         "--workdir", str(tmp_path / "chaos")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = suite.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(suite.pid, signal.SIGKILL)
    assert suite.returncode == 0, stderr[-3000:]
    rows = json.loads(stdout)["faults"]
    assert [row["fault"] for row in rows] == list(FAULTS)
    for row in rows:
        assert row["runs"] > 0, row  # the fault really struck
        assert row["acknowledged"] > 0, row
        assert row["lost"] == row["doubled"] == 0, row
        assert row["on_host"] == row["acknowledged"], row
