"""The kiosk agent: load the enrollment, scan a frame source, record, sync in the background."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from device.client import HostClient, HostError
from device.clock import DeviceClock
from device.denylist import DenyListHolder, stored_trust
from device.handheld import DEFAULT_SCAN_SECONDS, Handheld, ScanTrigger
from device.identity import load_enrollment
from device.peripherals import PeripheralOptions, Peripherals
from device.pins import StaffPins
from device.pipeline import (
    DEFAULT_REPEAT_WINDOW_SECONDS,
    REPEAT_REASON,
    Decoder,
    DenyListState,
    Event,
    Pipeline,
    VenueState,
)
from device.report import CAMERA_COMPONENT, StatusReporter, camera_component
from device.screen.server import COMPONENT as SCREEN_COMPONENT
from device.screen.server import ScreenOptions, ScreenServer
from device.screen.view import ScreenStatus
from device.staff import StaffDesk
from device.store import Store, StoreError
from device.sync import DEFAULT_RETENTION_DAYS, Syncer
from device.systemd import Notifier, Watchdog
from hardware.frames import FrameSource
from shared.dcc.schema import SchemaStore
from shared.healthcode import HealthStatus
from shared.messages import (
    ComponentHealth,
    DeviceConfig,
    DeviceForm,
    StatusRequest,
    StatusResponse,
)
from shared.rules.defaults import DENY_LIST_MAX_AGE_MINUTES
from shared.sealed import CardIdentity
from shared.verification import CardValidity, IdentityStatus

log = logging.getLogger(__name__)
DATABASE_FILE = "sentinel.db"
STATUS_TIMEOUT_SECONDS = 1.5  # a paper code's holder waits at most this for the online lookup
SERVICE_STATUS_SECONDS = 5.0  # how often systemd's status line is brought up to date


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
    peripherals: PeripheralOptions = field(default_factory=PeripheralOptions)
    retention_days: float = DEFAULT_RETENTION_DAYS  # acknowledged check-ins kept this long
    screen: ScreenOptions | None = None  # the local screen's address and hold; None: no screen
    form: DeviceForm | None = None  # None: the form it was enrolled as
    scan_seconds: float = DEFAULT_SCAN_SECONDS  # a handheld scans this long once triggered


class Agent:
    """One enrolled device: store, clock, host client, sync thread and pipeline.

    Staff settle referrals at its screen (`desk`); a handheld (`handheld`) scans only when
    triggered, and checks vehicles and registers people by hand.
    """

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
        self.form = options.form or enrollment.form
        handheld = self.form is DeviceForm.HANDHELD
        self.store = Store(state_dir / DATABASE_FILE)
        self.clock = DeviceClock()
        self.client = HostClient.enrolled(state_dir, self.clock)
        cached = self.store.load_config()
        venue = VenueState.from_config(cached) if cached else VenueState(enrollment.venue_id, None)
        self._venue = cached.venue if cached else None  # its name and time zone, for the screen
        self._venue_id = enrollment.venue_id
        self._device_id = enrollment.device_id
        self._events = events
        self.notifier = Notifier()  # systemd, when it runs the agent as a Type=notify service
        self.watchdog = Watchdog(self.notifier)
        self._ready = threading.Event()  # told systemd: the store is open, the camera answered
        self._ready_lock = threading.Lock()
        self.denylist = DenyListHolder(
            self.store, self.clock.now, trust=lambda: stored_trust(self.store)
        )
        self.denylist.restore()
        self.reporter = StatusReporter(self.store, self.clock, self.denylist, state_dir)
        if options.peripherals.trigger_pin is not None and not handheld:
            log.warning("--trigger-pin left unused: only a handheld scans on a trigger")
        self.peripherals = Peripherals(
            options.peripherals, self._card_read, self._scan_pressed if handheld else None
        )
        self.reporter.components.update(self.peripherals.components())

        def tell(event: Event) -> None:
            log_feedback(event)
            self.peripherals.announce(event)  # a pass (a staff let-through too) opens the gate
            self.desk.observe(event)
            if self.handheld is not None:
                self.handheld.observe(event)
            if self.screen is not None:
                self.screen.show(event)
            if self._events:
                self._events(event)

        self.syncer = Syncer(
            self.store,
            self.client,
            on_config=self._apply_config,
            on_revoked=self._revoked,
            denylist=self.denylist,
            report=self.reporter.report,
            idle_seconds=options.sync_idle_seconds,
            retention_days=options.retention_days,
        )
        self.reporter.components["store"] = self.store.component
        self.reporter.components["sync"] = self.syncer.component
        self.pipeline = Pipeline(
            decoder,
            self.store,
            self.clock,
            venue,
            feedback=tell,
            on_recorded=self.syncer.nudge,
            repeat_window_seconds=options.repeat_window_seconds,
            status_lookup=self._current_status,
            identity_lookup=self._identity_status,
            # A paper code waits for its holder's ID card: read, or typed on a handheld.
            id_reader=self.peripherals.card_reader is not None or handheld,
            temperature=self.peripherals.temperature
            if options.peripherals.thermometer_port
            else None,
            deny_list=self._deny_list_state,
            dcc_schemas=SchemaStore.default(),
        )
        self.desk = StaffDesk(
            self.store, StaffPins(self.store), self.clock, tell=tell, on_recorded=self.syncer.nudge
        )
        self.handheld = (
            Handheld(self.pipeline, ScanTrigger(options.scan_seconds), changed=self._panels_changed)
            if handheld
            else None
        )
        revoked = self.store.revocation(self._device_id)
        if revoked is not None:
            self._out_of_service(revoked)
        # Last: the screen reads the state all of the above make up.
        self.screen = (
            ScreenServer(
                options.screen, self._screen_status, desk=self.desk, handheld=self.handheld
            )
            if options.screen
            else None
        )
        if self.screen is not None:
            self.reporter.components[SCREEN_COMPONENT] = self.screen.component

    def _deny_list_state(self) -> DenyListState:
        """The held deny list and how many minutes ago the host last confirmed it current."""
        refreshed_at = self.denylist.refreshed_at()
        if refreshed_at is None:
            return DenyListState(None, None)
        age_seconds = (self.clock.now() - refreshed_at).total_seconds()
        return DenyListState(self.denylist.current(), max(0, int(age_seconds // 60)))

    def _screen_status(self) -> ScreenStatus:
        """What the screen shows beside the decisions: venue, host link, clock, deny list."""
        venue = self._venue
        age_minutes = self._deny_list_state().age_minutes
        return ScreenStatus(
            venue=venue.name if venue else self._venue_id,
            timezone=venue.timezone if venue else None,
            online=self.syncer.online,
            clock_trusted=self.clock.trusted,
            deny_list_stale=age_minutes is None or age_minutes > DENY_LIST_MAX_AGE_MINUTES,
            now=self.clock.now(),
            out_of_service=self.pipeline.out_of_service is not None,
        )

    def _ask_status(self, asked: StatusRequest) -> StatusResponse | None:
        try:
            return self.client.status(asked, timeout=STATUS_TIMEOUT_SECONDS)
        except HostError as error:
            log.info("status lookup unavailable, deciding offline: %s", error)
            return None

    def _current_status(self, person_ref: str) -> HealthStatus | None:
        """Ask the host for a paper code holder's current status; None when it cannot answer."""
        answer = self._ask_status(StatusRequest(person_ref=person_ref))
        return answer.health_status() if answer is not None else None

    def _identity_status(self, sealed_identity: str) -> IdentityStatus | None:
        """Ask the host who holds a sealed ID card, and their status; None when offline."""
        answer = self._ask_status(StatusRequest(sealed_identity=sealed_identity))
        if answer is None:
            return None
        return IdentityStatus(answer.person_ref, answer.health_status())

    def _card_read(self, identity: CardIdentity, origin: str, validity: CardValidity) -> None:
        self.pipeline.present_id(identity, origin, validity)

    def _scan_pressed(self) -> None:
        """The handheld's trigger button was pressed."""
        if self.handheld is not None:
            self.handheld.scan()

    def _panels_changed(self) -> None:
        if self.screen is not None:
            self.screen.hub.refresh()

    def _revoked(self, reason: str) -> None:
        """The host revoked this device: drop what it gave (keys, rules, deny list).

        It decides nothing more and keeps every check-in for an operator, until enrolled anew.
        """
        self.store.mark_revoked(self._device_id, reason)
        self._out_of_service(reason)

    def _out_of_service(self, reason: str) -> None:
        self.denylist.forget()
        self.pipeline.stop_service(reason)
        recorded, acked = self.store.counts()
        log.error(
            "OUT OF SERVICE: the host revoked this device (%s); every check is referred to"
            " staff; %d check-ins not synced are kept for an operator",
            reason,
            recorded - acked,
        )

    def _apply_config(self, config: DeviceConfig) -> None:
        self.pipeline.update_venue(VenueState.from_config(config))
        self._venue = config.venue
        log.info(
            "configuration loaded: venue %s, rule set v%d (%s), %d keys",
            config.venue.id,
            config.rules.version,
            config.rules.category.value,
            len(config.keys),
        )

    def _venue_midnight_ms(self) -> int:
        """The start of today at the venue (UTC until the host has said where it is), in ms."""
        zone = ZoneInfo(self._venue.timezone) if self._venue else UTC
        midnight = datetime.combine(self.clock.now().astimezone(zone).date(), time_of_day(), zone)
        return int(midnight.timestamp() * 1000)

    def status_line(self) -> str:
        """One line for `systemctl status`: what the kiosk does, check-ins, backlog, the host.

        Check-ins today are those in the store scanned since the venue's midnight.
        """
        camera = self.reporter.components.get(CAMERA_COMPONENT)
        camera_state = camera() if camera is not None else None
        if self.pipeline.out_of_service is not None:
            doing = f"out of service: {self.pipeline.out_of_service}"
        elif camera_state is not None and camera_state.state is ComponentHealth.FAILING:
            doing = f"camera failing: {camera_state.detail}"
        elif self._ready.is_set():
            doing = "scanning"
        else:
            doing = "starting"
        try:
            today, unsynced = self.store.since_and_unsynced(self._venue_midnight_ms())
            counts = f"{today} check-ins today · {unsynced} unsynced"
        except StoreError as error:
            counts = f"store failing: {error}"
        if self.syncer.online:
            host = "host reachable"
        elif self.syncer.first_contact.is_set():
            host = "host unreachable"
        else:
            host = "host not reached yet"
        return " · ".join((doing, counts, host))

    def _frame_seen(self) -> None:
        """The scan loop turned: systemd hears it is alive (and, the first time, ready)."""
        if not self._ready.is_set():
            with self._ready_lock:  # the scan loop and the status thread may both get here
                if not self._ready.is_set():
                    self._ready.set()
                    self.notifier.ready(self.status_line())
        self.watchdog.beat()

    def _keep_systemd_told(self, stop: threading.Event) -> None:
        """Bring systemd's status line up to date now and then, until `stop`.

        While the camera is failing the scan loop waits inside the camera's own reopening,
        which bounds each attempt: the agent is up and reporting it, so systemd is told it is
        ready and alive rather than left to restart it for a camera that a restart cannot mend.
        """
        told = None
        interval = min(SERVICE_STATUS_SECONDS, self.watchdog.interval or SERVICE_STATUS_SECONDS)
        while not stop.wait(interval):
            camera = self.reporter.components.get(CAMERA_COMPONENT)
            if camera is not None and camera().state is ComponentHealth.FAILING:
                self._frame_seen()
            line = self.status_line()
            if line != told:
                self.notifier.status(line)
                told = line

    def run(self, source: FrameSource) -> int:
        """Scan until the source ends; returns an exit status (0, or 3 if sync did not drain)."""
        self.reporter.components[CAMERA_COMPONENT] = camera_component(source)
        told_stop = threading.Event()
        teller = threading.Thread(
            target=self._keep_systemd_told, args=(told_stop,), name="systemd", daemon=True
        )
        if self.notifier.enabled:
            teller.start()
        if self.screen is not None:
            try:
                self.screen.start()
            except (OSError, RuntimeError) as error:
                log.error("no screen, scanning goes on without it: %s", error)
        self.peripherals.start()
        if self.pipeline.out_of_service is None:
            self.syncer.start()
            # A short, bounded wait for the host's time and keys; offline, scan on cached ones.
            if not self.syncer.first_contact.wait(self.options.startup_wait_seconds):
                log.warning("no answer from the host yet; scanning on the cached configuration")
        try:
            with source:
                for frame in source.frames():
                    self._frame_seen()
                    if self.handheld is not None and not self.handheld.trigger.armed():
                        self.pipeline.expire_waiting()  # not scanning: the frame is not read
                        continue
                    self.pipeline.process_image(frame.image, frame.origin)
        except KeyboardInterrupt:
            log.info("asked to stop")
        self.notifier.stopping()
        told_stop.set()
        if teller.ident is not None:
            teller.join()
        status = 0
        if self.options.exit_when_done:
            status = 0 if self.drain(self.options.drain_timeout_seconds) else 3
        self.peripherals.close()
        if self.screen is not None:
            self.screen.close()
        self.syncer.stop()
        self.client.close()
        self.notifier.close()
        recorded, acked = self.store.counts()
        log.info("stopping: %d check-ins recorded, %d acknowledged by the host", recorded, acked)
        return status

    def drain(self, timeout_seconds: float) -> bool:
        """Wait (bounded) until the host has acknowledged every check-in and staff decision."""
        deadline = time.monotonic() + timeout_seconds
        while (
            time.monotonic() < deadline
            and self.syncer.refused is None
            and self.pipeline.out_of_service is None
        ):
            if self._unsynced() == (0, 0):
                return True
            self.syncer.nudge()
            time.sleep(0.1)
        checkins, decisions = self._unsynced()
        if checkins or decisions:
            log.warning("%d check-ins, %d staff decisions still unsynced", checkins, decisions)
        return (checkins, decisions) == (0, 0)

    def _unsynced(self) -> tuple[int, int]:
        """Check-ins and staff decisions the host has not acknowledged yet."""
        recorded, acked = self.store.counts()
        decided, decisions_acked = self.store.staff_counts()
        return recorded - acked, decided - decisions_acked
