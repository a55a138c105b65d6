"""The device's status report: its deny list's age, its backlog and the health of its parts."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from device.clock import DeviceClock
from device.denylist import DenyListHolder
from device.store import Store
from shared.messages import ComponentHealth, ComponentState, DeviceReport

DENYLIST_COMPONENT = "denylist"


def monotonic_to_utc(moment: float) -> datetime:
    """A time.monotonic() reading as a wall-clock time, for a component's `since`."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - moment)


def component_state(state: str, since: datetime, detail: str | None) -> ComponentState:
    """A part's state as a driver tells it ("ok", "absent", "failing"), for the report."""
    return ComponentState(state=ComponentHealth(state), since=since, detail=detail)


class StatusReporter:
    """Builds the report the syncer posts; a part reports its health by adding a component."""

    def __init__(self, store: Store, clock: DeviceClock, denylist: DenyListHolder) -> None:
        self._store = store
        self._clock = clock
        self._denylist = denylist
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
        )
