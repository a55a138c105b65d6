"""A TCP proxy of ours on 127.0.0.1 that delays, drops, resets and truncates what it forwards."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from dataclasses import dataclass, replace
from types import TracebackType

CHUNK_BYTES = 64 * 1024
CONNECT_SECONDS = 3.0
CONTROL_SECONDS = 5.0  # starting and stopping the proxy's thread
RESET_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


@dataclass(frozen=True)
class Faults:
    """What the proxy does to the traffic from now on; the default forwards it untouched.

    latency_ms, plus a random share of jitter_ms, is added before each chunk in each
    direction. The rates are chances per forwarded chunk: drop_rate turns the connection
    into a black hole (nothing more goes either way, the client is left waiting), reset_rate
    forwards a random part of the chunk and resets both ends (RST), truncate_rate forwards a
    random part of a response chunk and closes both ends cleanly (FIN).
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    drop_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.drop_rate, self.reset_rate, self.truncate_rate)
        if min(self.latency_ms, self.jitter_ms, *rates) < 0 or sum(rates) > 1:
            raise ValueError(f"faults are not negative and their rates add up to 1 at most: {self}")


@dataclass(frozen=True)
class ProxyCounts:
    """What the proxy has done since it started."""

    connections: int = 0
    delayed: int = 0  # chunks held back by latency_ms or jitter_ms
    dropped: int = 0  # connections turned into black holes
    reset: int = 0
    truncated: int = 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: SO_LINGER on with a zero timeout, then abort."""
    with contextlib.suppress(OSError):
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, RESET_LINGER
        )
    writer.transport.abort()


class _Link:
    """One proxied connection: the client's and the target's streams."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.target_reader, self.target_writer = target
        self.black_hole = False
        self.ended = False

    def reset(self) -> None:
        """RST both ends at once."""
        self.ended = True
        _reset(self.client_writer)
        _reset(self.target_writer)

    def close(self) -> None:
        self.ended = True
        self.client_writer.close()
        self.target_writer.close()


class FaultProxy:
    """Listens on a free port of 127.0.0.1 and forwards each connection to the target.

    It runs in a thread of its own with its own event loop, so a test or a harness drives it
    from ordinary code: `with FaultProxy("127.0.0.1", port) as proxy: ...`, then
    `proxy.set_faults(Faults(drop_rate=0.2))`. `seed` makes its dice repeatable.
    """

    def __init__(self, target_host: str, target_port: int, *, seed: int | None = None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._faults = Faults()
        self._counts = ProxyCounts()
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._links: dict[asyncio.Task[None], socket.socket] = {}  # each with its socket

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def counts(self) -> ProxyCounts:
        """A snapshot; counts change only on the proxy's thread, each as one new value."""
        return self._counts

    def set_faults(self, faults: Faults) -> FaultProxy:
        """Apply `faults` to every chunk forwarded from now on, on old and new connections."""
        self._faults = faults
        return self

    def start(self) -> FaultProxy:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        started = asyncio.run_coroutine_threadsafe(self._start_accepting(), self._loop)
        self._acceptor = started.result(CONTROL_SECONDS)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(CONTROL_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONTROL_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._thread = self._acceptor = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _count(self, **more: int) -> None:
        now = self._counts
        self._counts = replace(now, **{name: getattr(now, name) + n for name, n in more.items()})

    async def _start_accepting(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._accept())

    async def _accept(self) -> None:
        """Accept connections; each is known, with its socket, before anything can stop it."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(self._listener)
            self._count(connections=1)
            task = asyncio.create_task(self._serve(connection))
            self._links[task] = connection
            task.add_done_callback(self._links.pop)

    async def _shut(self) -> None:
        if self._acceptor is not None:
            self._acceptor.cancel()
            await asyncio.gather(self._acceptor, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        connections = list(self._links.values())
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        await asyncio.sleep(0)  # the transports close in callbacks their close() scheduled
        for connection in connections:
            connection.close()  # one whose task never started (closing twice does nothing)

    async def _serve(self, connection: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=connection)
        link = None
        try:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    target = await asyncio.open_connection(self.target_host, self.target_port)
            except (OSError, TimeoutError):
                _reset(writer)  # the target is down: the client sees a reset, as by a dead host
                return
            link = _Link((reader, writer), target)
            await asyncio.gather(self._pump(link, upstream=True), self._pump(link, upstream=False))
        finally:
            if link is None:
                writer.close()
            elif not link.ended:
                link.close()

    async def _pump(self, link: _Link, *, upstream: bool) -> None:
        """Forward one direction chunk by chunk, rolling the dice for each chunk."""
        if upstream:
            source, sink = link.client_reader, link.target_writer
        else:
            source, sink = link.target_reader, link.client_writer
        try:
            while True:
                data = await source.read(CHUNK_BYTES)
                if link.ended:
                    return
                if link.black_hole:
                    if upstream and data:
                        continue  # swallow what the client sends until it gives up
                    return
                if not data:
                    sink.write_eof()
                    return
                if await self._forward(link, sink, data, upstream=upstream):
                    return
        except OSError:
            if not link.black_hole and not link.ended:
                link.close()

    async def _forward(
        self, link: _Link, sink: asyncio.StreamWriter, data: bytes, *, upstream: bool
    ) -> bool:
        """Forward one chunk under the current faults; True when the connection is done with."""
        faults = self._faults
        delay = faults.latency_ms + self._rng.random() * faults.jitter_ms
        if delay > 0:
            self._count(delayed=1)
            await asyncio.sleep(delay / 1000)
        roll = self._rng.random()
        if roll < faults.drop_rate:
            self._count(dropped=1)
            link.black_hole = True
            link.target_writer.close()
            return not upstream
        roll -= faults.drop_rate
        cut = self._rng.randrange(len(data))  # part of the chunk: 0 to len - 1 bytes
        if roll < faults.reset_rate:
            self._count(reset=1)
            await self._write(sink, data[:cut])
            link.reset()
            return True
        roll -= faults.reset_rate
        if not upstream and roll < faults.truncate_rate:
            self._count(truncated=1)
            await self._write(sink, data[: max(cut, 1)] if len(data) > 1 else b"")
            link.close()
            return True
        await self._write(sink, data)
        return False

    @staticmethod
    async def _write(sink: asyncio.StreamWriter, data: bytes) -> None:
        if data:
            sink.write(data)
            await sink.drain()
