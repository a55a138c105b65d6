"""Backoff for sync retries: grows exponentially, is capped, and is spread by jitter."""

from __future__ import annotations

import random

from device.sync import Backoff


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(base_seconds=0.5, cap_seconds=60)
    rng = random.Random(1)
    for failures in range(1, 40):
        ceiling = min(60, 0.5 * 2**failures)
        delays = [backoff.delay(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 40  # jitter: devices that failed together retry apart


def test_backoff_survives_a_huge_failure_count() -> None:
    assert Backoff(cap_seconds=60).delay(10**6, random.Random(0)) <= 60
