"""`sentinel bench screen`: from a check-in's commit to the decision on the kiosk screen.

The agent's path in one process: a real pipeline decides on real signed health codes (green,
red and untrusted in turn: pass, deny, refer) and commits each check-in to SQLite; its
feedback, called after the commit as the agent's is, notes the time and hands the event to the
screen server (the agent's, on its own thread). Headless Chromium shows the page at each kiosk
size; an observer in the page notes when the decision is in the page and when the next frame
begins (the frame that paints it). Python's time.time() and the page's performance.timeOrigin
+ now() both read the machine's wall clock, so their difference is the latency. Decisions come
one at a time, the next once the last is on screen, as at an entrance.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.clock import DeviceClock
from device.pipeline import Event, Pipeline, VenueState
from device.screen.server import ScreenOptions, ScreenServer
from device.screen.view import ScreenStatus
from device.store import Store
from hardware.qr import QrDecoder
from sentinel.browser import SCREEN_SIZES, chromium
from shared import healthcode
from shared.healthcode import CodeKind, Colour, NucleicTest, TestResult
from shared.keys import KeyPurpose, SigningKey, TrustedKey, TrustStore
from shared.policy import VenueCategory
from shared.rules.defaults import default_ruleset

if TYPE_CHECKING:
    from playwright.sync_api import Browser

BUDGET_MS = 100.0  # DESIGN.md: the decision on screen within 100 ms of the commit
WARM_UP = 3  # decisions shown first and not counted: the page's first layout of each kind
# In the page: when the screen's outcome changes, the time then, and at the next frame.
OBSERVE = """() => {
  window.benchSeen = [];
  const now = () => performance.timeOrigin + performance.now();
  new MutationObserver(() => {
    const page = now();
    requestAnimationFrame(() => window.benchSeen.push({ page, frame: now() }));
  }).observe(document.body, { attributes: true, attributeFilter: ["data-outcome"] });
}"""


@dataclass(frozen=True)
class ScreenLatency:
    """Milliseconds from each commit to the decision in the page, and to the next frame."""

    size: tuple[int, int]
    page_ms: list[float]
    frame_ms: list[float]

    def row(self) -> str:
        width, height = self.size
        over = sum(ms > BUDGET_MS for ms in self.frame_ms)
        return (
            f"| {width}x{height} | {len(self.page_ms)} | {_spread(self.page_ms)} | "
            f"{_spread(self.frame_ms)} | {over} |"
        )

    def as_json(self) -> dict[str, object]:
        width, height = self.size
        return {
            "size": f"{width}x{height}",
            "decisions": len(self.page_ms),
            "page_ms": _summary(self.page_ms),
            "frame_ms": _summary(self.frame_ms),
            "over_budget": sum(ms > BUDGET_MS for ms in self.frame_ms),
        }


def _spread(values: list[float]) -> str:
    summary = _summary(values)
    return f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['max']:.1f}"


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def table(results: list[ScreenLatency]) -> list[str]:
    return [
        "| screen | decisions | commit to page, p50 / p95 / max ms "
        f"| commit to next frame, p50 / p95 / max ms | over {BUDGET_MS:.0f} ms |",
        "|---|---|---|---|---|",
        *(result.row() for result in results),
    ]


def _codes(key: SigningKey, count: int) -> list[str]:
    """Health codes that pass, are denied (red) and are referred (signer not trusted), in turn."""
    now = datetime.now(UTC)
    test = NucleicTest(now - timedelta(hours=10), TestResult.NEGATIVE)
    stranger = SigningKey.generate()
    codes = []
    for number in range(count):
        colour = Colour.RED if number % 3 == 1 else Colour.GREEN
        signer = stranger if number % 3 == 2 else key
        code = healthcode.new_code(
            person_ref=f"p_screen_{number}",
            kind=CodeKind.DYNAMIC,
            colour=colour,
            test=test,
            now=now,
        )
        codes.append(healthcode.issue(code, signer))
    return codes


def _status() -> ScreenStatus:
    return ScreenStatus("Benchmark venue", None, True, True, False, datetime.now(UTC))


def measure(decisions: int = 60) -> list[ScreenLatency]:
    """Time `decisions` commits to the screen at each kiosk size; BrowserUnavailable without one."""
    key = SigningKey.generate()
    trust = TrustStore.of([TrustedKey(key.kid, KeyPurpose.HEALTH, key.private_key.public_key())])
    venue = VenueState("v_bench", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as temporary, chromium() as browser:
        return [
            _time_size(
                browser,
                size,
                _codes(key, decisions + WARM_UP),
                venue,
                Store(Path(temporary) / f"{size[0]}x{size[1]}.db"),
            )
            for size in SCREEN_SIZES
        ]


def _time_size(
    browser: Browser, size: tuple[int, int], codes: list[str], venue: VenueState, store: Store
) -> ScreenLatency:
    """Each code through the pipeline to the screen, shown on a page of this size."""
    server = ScreenServer(ScreenOptions("127.0.0.1", 0, hold_seconds=600), _status)
    committed: list[float] = []

    def feedback(event: Event) -> None:  # as the agent's: called once the check-in is committed
        committed.append(time.time() * 1000)
        server.show(event)

    clock = DeviceClock()
    now_ms = clock.now_ms()
    clock.observe_host_time(now_ms, now_ms, now_ms)  # trusted, as after a sync
    pipeline = Pipeline(QrDecoder(), store, clock, venue, feedback=feedback)
    server.start()
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.set_default_timeout(10_000)
    try:
        page.goto(server.url)
        page.wait_for_function("() => document.body.dataset.outcome === 'idle'")
        page.evaluate(OBSERVE)
        for number, text in enumerate(codes, start=1):
            pipeline.process_text(text, "bench")
            page.wait_for_function("n => window.benchSeen.length >= n", arg=number)
        seen = page.evaluate("window.benchSeen")
    finally:
        page.close()
        server.close()
    pairs = list(zip(committed, seen, strict=True))[WARM_UP:]
    return ScreenLatency(
        size,
        [shown["page"] - at for at, shown in pairs],
        [shown["frame"] - at for at, shown in pairs],
    )
