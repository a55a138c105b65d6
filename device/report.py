"""The device's status report: its deny list's age, its backlog and the health of its parts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError

from device.clock import DeviceClock
from device.denylist import DenyListHolder
from device.store import Store
from hardware.frames import FrameSource, LiveCamera
from shared.messages import ComponentHealth, ComponentState, DeviceReport, SelfTestSummary
from shared.private_files import write_private

SELFTEST_FILE = "selftest.json"  # in the state directory: the last self-test's summary
DENYLIST_COMPONENT = "denylist"
CAMERA_COMPONENT = "camera"
DISTRIBUTION = "digital-sentinel"


log = logging.getLogger(__name__)


def save_selftest(state: Path, summary: SelfTestSummary) -> None:
    """Keep the self-test's summary in the state directory, for the next device report."""
    write_private(state / SELFTEST_FILE, summary.model_dump_json().encode())


def last_selftest(state: Path | None) -> SelfTestSummary | None:
    """The last self-test's summary kept in `state`; None when there is none, or none readable."""
    if state is None:
        return None
    try:
        return SelfTestSummary.model_validate_json((state / SELFTEST_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as error:
        log.warning("the last self-test's summary cannot be read: %s", error)
        return None


def software_version() -> str | None:
    """The installed distribution's version; None when run from a tree that is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def monotonic_to_utc(moment: float) -> datetime:
    """A time.monotonic() reading as a wall-clock time, for a component's `since`."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - moment)


def component_state(state: str, since: datetime, detail: str | None) -> ComponentState:
    """A part's state as a driver tells it ("ok", "absent", "failing"), for the report."""
    return ComponentState(state=ComponentHealth(state), since=since, detail=detail)


def camera_component(source: FrameSource) -> Callable[[], ComponentState]:
    """The camera's state, as the report tells it.

    A live camera reports its own health: failing, with why, while it cannot be opened or gives
    no frame; ok again once frames come. Replayed pictures are always ok.
    """
    if isinstance(source, LiveCamera):
        camera = source

        def live() -> ComponentState:
            status = camera.status
            detail = status.last_error
            if status.state == "ok" and detail is not None:
                detail = f"frames again; last failure: {detail}"
            return component_state(status.state, monotonic_to_utc(status.since), detail)

        return live
    started = datetime.now(UTC)
    return lambda: component_state("ok", started, "replayed pictures, not a camera")


class StatusReporter:
    """Builds the report the syncer posts; a part reports its health by adding a component."""

    def __init__(
        self,
        store: Store,
        clock: DeviceClock,
        denylist: DenyListHolder,
        state: Path | None = None,
    ) -> None:
        self._store = store
        self._state = state  # where `sentinel selftest` leaves its summary
        self._clock = clock
        self._denylist = denylist
        self._version = software_version()
        # name -> its current state; peripherals (camera, card reader, thermometer) join here
        self.components: dict[str, Callable[[], ComponentState]] = {
            DENYLIST_COMPONENT: denylist.component
        }

    def report(self) -> DeviceReport:
        recorded, acknowledged = self._store.counts()
        return DeviceReport(
            sent_at=self._clock.now(),
            clock_trusted=self._clock.trusted,
            pending_checkins=recorded - acknowledged,
            denylist=self._denylist.status(),
            components={name: state() for name, state in self.components.items()},
            software_version=self._version,
            last_selftest=last_selftest(self._state),
        )
