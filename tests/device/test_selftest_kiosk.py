"""The self-test's judgement of the clock and of free disk space, at and around its limits."""

from __future__ import annotations

import shutil
from pathlib import Path

from device.selftest import _clock, _disk

HOUR_MS = 3_600_000


def test_ntp_synchronised_is_enough() -> None:
    assert _clock(True, None).result == "pass"
    assert _clock(True, 5 * HOUR_MS).result == "pass"  # NTP is the reference, not the host


def test_a_clock_far_from_the_host_s_fails_with_how_far() -> None:
    late = _clock(None, -3 * HOUR_MS)
    assert (late.result, late.detail) == (
        "fail",
        "no word from timedatectl; 3.0 h off the host's clock",
    )
    assert "timedatectl set-ntp true" in late.remedy
    assert _clock(False, 90_000).detail == "NTP not synchronised; 1.5 min off the host's clock"


def test_without_ntp_a_clock_that_agrees_with_the_host_warns() -> None:
    assert _clock(False, 0).result == "warn"
    assert _clock(None, 0).result == "pass"


def test_with_neither_ntp_nor_host_the_clock_is_unknown() -> None:
    assert _clock(None, None).result == "absent"
    assert _clock(False, None).result == "fail"


def test_free_disk_space_is_judged_against_the_limits(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    state = tmp_path / "state"  # not made yet: the file system it will be made on counts
    assert _disk(state, fail_below=free // 2, warn_below=free // 2).result == "pass"
    warned = _disk(state, fail_below=free // 2, warn_below=free * 2)
    assert warned.result == "warn"
    assert f"free for the store at {tmp_path}" in warned.detail
    failed = _disk(state, fail_below=free * 2, warn_below=free * 4)
    assert failed.result == "fail"
    assert "retention_days" in failed.remedy
    assert _disk(None).result == "absent"
