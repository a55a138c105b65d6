"""The screen's live state: decisions from the scan thread and a polled status, fanned out by SSE.

The scan thread only schedules a call on the screen server's event loop (`show`), which never
blocks: the decision's texts are chosen, and the streams fed, on that loop. The staff's panels
(referrals waiting for them, a handheld's scan and vehicle) are polled with the status, and
redrawn at once when one changes (`refresh`). Each open page
has a short queue of its own; a page that does not keep up loses its oldest messages (the
latest decision and status are what count), so a slow or absent browser never holds up a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

from device.pipeline import Event
from device.screen.view import ScreenStatus, decision_view

log = logging.getLogger(__name__)
STREAM_BACKLOG = 16  # messages a page may fall behind by before its oldest are dropped
MAX_STREAMS = 8  # pages open at once (one kiosk display, a technician's second look)
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 1000  # how soon a page reconnects when its stream drops (the agent restarted)


def sse(kind: str, data: object) -> str:
    """One server-sent event of this kind, its data as one line of JSON."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class ScreenHub:
    """The decision on screen (until `hold_seconds` pass) and the status, for every open page.

    Everything but `show` and `close` runs on the server's event loop, so the state needs no
    lock: `show` and `close` only schedule work there.
    """

    def __init__(
        self,
        status: Callable[[], ScreenStatus],
        *,
        hold_seconds: float,
        poll_seconds: float = 1.0,
        panels: Callable[[ScreenStatus], dict[str, object]] = lambda status: {},
    ) -> None:
        self._status_of = status  # cheap and non-blocking: called on the event loop
        self._panels_of = panels  # likewise
        self._panels: dict[str, object] = {}
        self._hold = hold_seconds
        self._poll = poll_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._status = status()
        self._shown: dict[str, object] | None = None  # the decision on screen; None: idle
        self._to_idle: asyncio.TimerHandle | None = None
        self._streams: set[asyncio.Queue[str | None]] = set()

    # ---- from any thread --------------------------------------------------------------------

    def show(self, event: Event) -> None:
        """Put a decision on screen; returns at once, and drops it while the screen is not up."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the screen is stopping
                loop.call_soon_threadsafe(self._on_event, event)

    def refresh(self) -> None:
        """A panel changed: send it now rather than at the next poll; returns at once."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._refresh_panels)

    def close(self) -> None:
        """End every stream and the status poll, so the server can stop at once."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end)

    # ---- on the server's event loop ---------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Take decisions from now on; the task polls the status until the hub is closed."""
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        return self._loop.create_task(self._poll_status(self._closing))

    async def _poll_status(self, closing: asyncio.Event) -> None:
        while not closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), self._poll)
            self._refresh_status()
            self._refresh_panels()  # a referral's time runs out, a handheld's scan ends

    def snapshot(self) -> tuple[ScreenStatus, dict[str, object] | None]:
        """The status and the decision on screen (None: idle), as a page is first drawn."""
        return self._refresh_status(), self._shown

    def panels(self) -> dict[str, object]:
        """The staff's panels as they are now, as a page is first drawn."""
        return self._refresh_panels()

    async def stream(self) -> AsyncIterator[str]:
        """One page's server-sent events: the state now, then each change, until closed.

        It ends when the page goes (the server cancels it) or the hub closes.
        """
        if len(self._streams) >= MAX_STREAMS:
            log.warning("screen: %d pages open already, one more refused", MAX_STREAMS)
            yield f"retry: {RETRY_MS * 10}\n\n"
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue(STREAM_BACKLOG)
        status, shown = self.snapshot()
        panels = self.panels()
        self._streams.add(queue)  # what changes from here on comes after the snapshot
        try:
            yield f"retry: {RETRY_MS}\n\n"
            yield sse("status", status.as_json())
            if panels:  # a screen without staff panels sends none
                yield sse("panels", panels)
            yield sse("idle", {}) if shown is None else sse("decision", shown)
            while (message := await self._next(queue)) is not None:
                yield message
        finally:
            self._streams.discard(queue)

    @staticmethod
    async def _next(queue: asyncio.Queue[str | None]) -> str | None:
        try:
            return await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
        except TimeoutError:
            return ": keep-alive\n\n"  # a comment line: proxies and the browser see it alive

    def _refresh_status(self) -> ScreenStatus:
        status = self._status_of()
        if status != self._status:
            self._broadcast(sse("status", status.as_json()))
        self._status = status
        return status

    def _refresh_panels(self) -> dict[str, object]:
        panels = self._panels_of(self._status)
        if panels != self._panels:
            self._broadcast(sse("panels", panels))
        self._panels = panels
        return panels

    def _on_event(self, event: Event) -> None:
        view = decision_view(event, self._refresh_status())
        if view is None:
            return
        self._shown = view
        if self._to_idle is not None:
            self._to_idle.cancel()
        self._to_idle = asyncio.get_running_loop().call_later(self._hold, self._idle)
        self._broadcast(sse("decision", view))

    def _idle(self) -> None:
        self._shown = self._to_idle = None
        self._broadcast(sse("idle", {}))

    def _broadcast(self, message: str | None) -> None:
        for queue in self._streams:
            if queue.full():
                queue.get_nowait()  # a page that fell behind: its oldest message goes
            queue.put_nowait(message)

    def _end(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._to_idle is not None:
            self._to_idle.cancel()
        self._broadcast(None)
