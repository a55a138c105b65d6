"""The kiosk agent: load the enrollment, scan a frame source, record, sync in the background."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from device.client import HostClient
from device.clock import DeviceClock
from device.identity import load_enrollment, load_or_create_key
from device.pipeline import (
    DEFAULT_REPEAT_WINDOW_SECONDS,
    REPEAT_REASON,
    Decoder,
    Event,
    Pipeline,
    VenueState,
)
from device.store import Store
from device.sync import Syncer
from hardware.frames import FrameSource
from shared.messages import DeviceConfig

log = logging.getLogger(__name__)
DATABASE_FILE = "sentinel.db"


def log_feedback(event: Event) -> None:
    """Feedback for now: one log line; no personal data, only the outcome and its reasons."""
    level = logging.DEBUG if event.decision.reasons == (REPEAT_REASON,) else logging.INFO
    log.log(
        level,
        "%s %s: %s",
        event.decision.outcome.value.upper(),
        event.kind.value,
        "; ".join(event.decision.reasons),
    )


def json_lines(stream: TextIO) -> Callable[[Event], None]:
    def emit(event: Event) -> None:
        stream.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
        stream.flush()

    return emit


@dataclass(frozen=True)
class RunOptions:
    exit_when_done: bool = False
    drain_timeout_seconds: float = 30.0
    sync_idle_seconds: float = 2.0
    startup_wait_seconds: float = 2.0
    repeat_window_seconds: float = DEFAULT_REPEAT_WINDOW_SECONDS


class Agent:
    """One enrolled device: store, clock, host client, sync thread and pipeline."""

    def __init__(
        self,
        state_dir: Path,
        decoder: Decoder,
        *,
        options: RunOptions,
        events: Callable[[Event], None] | None = None,
    ) -> None:
        enrollment = load_enrollment(state_dir)
        self.options = options
        self.store = Store(state_dir / DATABASE_FILE)
        self.clock = DeviceClock()
        self.client = HostClient(
            enrollment.host_url, enrollment.device_id, load_or_create_key(state_dir), self.clock
        )
        cached = self.store.load_config()
        venue = VenueState.from_config(cached) if cached else VenueState(enrollment.venue_id, None)
        self._events = events

        def tell(event: Event) -> None:
            log_feedback(event)
            if self._events:
                self._events(event)

        self.syncer = Syncer(
            self.store,
            self.client,
            on_config=self._apply_config,
            idle_seconds=options.sync_idle_seconds,
        )
        self.pipeline = Pipeline(
            decoder,
            self.store,
            self.clock,
            venue,
            feedback=tell,
            on_recorded=self.syncer.nudge,
            repeat_window_seconds=options.repeat_window_seconds,
        )

    def _apply_config(self, config: DeviceConfig) -> None:
        self.pipeline.update_venue(VenueState.from_config(config))
        log.info(
            "configuration loaded: venue %s, policy v%d (%s), %d keys",
            config.venue.id,
            config.policy.version,
            config.policy.category.value,
            len(config.keys),
        )

    def run(self, source: FrameSource) -> int:
        """Scan until the source ends; returns an exit status (0, or 3 if sync did not drain)."""
        self.syncer.start()
        # A short, bounded wait for the host's time and keys; offline, scan on the cached ones.
        if not self.syncer.first_contact.wait(self.options.startup_wait_seconds):
            log.warning("no answer from the host yet; scanning on the cached configuration")
        try:
            with source:
                for frame in source.frames():
                    self.pipeline.process_image(frame.image, frame.origin)
        except KeyboardInterrupt:
            log.info("asked to stop")
        status = 0
        if self.options.exit_when_done:
            status = 0 if self.drain(self.options.drain_timeout_seconds) else 3
        self.syncer.stop()
        self.client.close()
        recorded, acked = self.store.counts()
        log.info("stopping: %d check-ins recorded, %d acknowledged by the host", recorded, acked)
        return status

    def drain(self, timeout_seconds: float) -> bool:
        """Wait (bounded) until the host has acknowledged every recorded check-in."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline and self.syncer.refused is None:
            recorded, acked = self.store.counts()
            if recorded == acked:
                return True
            self.syncer.nudge()
            time.sleep(0.1)
        recorded, acked = self.store.counts()
        log.warning("%d check-ins still unsynced", recorded - acked)
        return recorded == acked
