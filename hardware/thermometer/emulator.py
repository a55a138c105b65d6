"""A thermometer emulator on a pty: the device's end of the line, speaking the same bytes.

Emulator(protocol, celsius=...) opens a pseudo-terminal and serves it from a thread: the
stream and line protocols send a frame or line every period, Modbus answers requests for its
own address (exception 2 for registers it does not have, exception 1 for other functions). The
driver opens the pty's slave end through pyserial exactly as it opens /dev/ttyUSB0.

Its port is a stable symlink (in a temporary folder unless link= names one) to the current
pty, as udev's /dev/serial/by-id/ links are to /dev/ttyUSBn. unplug() closes the pty, so a
driver that has it open gets an error or end-of-file at once, and removes the symlink, as
udev does; replug() opens a new pty, usually at a new /dev/pts/N path, and points the
symlink at it. A driver configured with the symlink finds the device again; one holding
the old /dev/pts/N path would not, just as a USB adapter replugged while the old
/dev/ttyUSB0 is still held open comes back as /dev/ttyUSB1.

From a shell (the demo): `python -m hardware.thermometer.emulator --protocol stream
--celsius 38.2` prints the port's path on its first line, then obeys commands on standard
input, one per line: `celsius 36.6`, `silent`, `speak`, `unplug`, `replug`, `garbage`,
`quit`, answering each with a line starting with "ok" or "error". It runs until quit, end of
input followed by SIGTERM or SIGINT.
"""

import argparse
import collections
import contextlib
import errno
import math
import os
import queue
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from hardware.closing import Closing
from hardware.thermometer import line, modbus, stream
from hardware.thermometer.protocol import PROTOCOL_NAMES

DEFAULT_PERIOD = 0.5
_COMMAND_TIMEOUT = 5.0  # seconds a caller waits for the emulator's thread to do its bidding
_GARBAGE = bytes([0xAA, 0x55, 0x07, 0x13, 0x00, 0xFF, 0x0D, 0x54, 0x3D, 0x01, 0x03, 0x55])


@dataclass
class _Command:
    """Something for the serving thread to do, and how it went."""

    action: Callable[[], None]
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class Emulator(Closing):
    """One emulated thermometer; a context manager that starts serving on entry.

    protocol: "modbus", "stream" or "line"; celsius: the temperature it reports (settable);
    address, register: its Modbus address and the holding register with the temperature;
    period: seconds between frames or lines sent unasked; link: the stable port path to keep;
    echo: Modbus only, repeat each request back first, as a 2-wire RS-485 adapter without echo
    suppression does; line_key, line_decimals, line_unit: how a line is printed.
    """

    def __init__(
        self,
        protocol: str,
        *,
        celsius: float = 36.6,
        address: int = 1,
        register: int = 0,
        period: float = DEFAULT_PERIOD,
        link: str | os.PathLike[str] | None = None,
        echo: bool = False,
        line_key: str = "T=",
        line_decimals: int = 1,
        line_unit: str = "",
    ) -> None:
        if protocol not in PROTOCOL_NAMES:
            raise ValueError(f"unknown thermometer protocol {protocol!r}: one of {PROTOCOL_NAMES}")
        self.protocol = protocol
        self.address = address
        self.register = register
        self.period = period
        self.echo = echo
        self._line_format = {"key": line_key, "decimals": line_decimals, "unit": line_unit}
        self._encode(celsius)
        self._celsius = celsius
        self._own_dir: str | None = None
        self._link = Path(link) if link is not None else None
        self._lock = threading.Lock()
        self._silent = False
        self._script: collections.deque[float] = collections.deque()
        self._then_silent = False
        self._noise = b""
        self._corrupt = 0
        self._reply_as: int | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path: str | None = None
        self._inbox = b""
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1  # a pipe that wakes the thread up, made by start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0
        self.requests_seen = 0

    # -- life -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the pty, make the link and start serving; returns self."""
        if self._thread is not None:
            return self
        if self._stop.is_set():
            raise RuntimeError("a closed emulator cannot start again")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        if self._link is None:
            self._own_dir = tempfile.mkdtemp(prefix="thermometer-")
            self._link = Path(self._own_dir) / f"tty-{self.protocol}"
        self._plug()
        self._thread = threading.Thread(
            target=self._serve, name=f"thermometer-emulator-{self.protocol}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close the pty and remove the link; idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(_COMMAND_TIMEOUT)
            self._thread = None
        self._unplug()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> Self:
        return self.start()

    @property
    def port(self) -> str:
        """The stable path a driver opens: a symlink to the current pty (absent if unplugged)."""
        if self._link is None:
            raise RuntimeError("the emulator has not started")
        return str(self._link)

    @property
    def pty_path(self) -> str | None:
        """The current pty slave path (/dev/pts/N), None while unplugged."""
        return self._pty_path

    # -- what tests and the demo change -----------------------------------------------------

    @property
    def celsius(self) -> float:
        return self._celsius

    def set_celsius(self, celsius: float) -> None:
        """Report this temperature from now on (nan and inf only in the line protocol)."""
        self._encode(celsius)
        with self._lock:
            self._celsius = celsius

    def play(self, values: Sequence[float], *, then_silent: bool = False) -> None:
        """Report these temperatures, one per frame, line or reply, then the set one again.

        With then_silent, fall silent after them instead (speak() ends that). For Modbus the
        order in which a driver sees them is exact; a streaming device sends them whether
        anyone listens or not.
        """
        for value in values:
            self._encode(value)
        with self._lock:
            self._script = collections.deque(values)
            self._then_silent = then_silent

    def go_silent(self) -> None:
        """Send nothing and answer nothing, with the port still there."""
        with self._lock:
            self._silent = True

    def speak(self) -> None:
        """Undo go_silent() (and a silence after play())."""
        with self._lock:
            self._silent = False
            self._then_silent = False

    def set_noise(self, noise: bytes) -> None:
        """Send these bytes before every frame, line or reply (b"" for none)."""
        with self._lock:
            self._noise = bytes(noise)

    def corrupt(self, count: int = 1) -> None:
        """Damage the next count frames, lines or replies: a wrong checksum or CRC, a bad digit."""
        with self._lock:
            self._corrupt += count

    def reply_as(self, address: int | None) -> None:
        """Modbus: write this address in replies instead of its own (None: its own again)."""
        with self._lock:
            self._reply_as = address

    def inject(self, data: bytes) -> None:
        """Send these bytes once, now, between frames."""
        self._call(lambda: self._write(data))

    def unplug(self) -> None:
        """Close the pty and remove the link, as pulling the USB adapter out does."""
        self._call(self._unplug)

    def replug(self) -> None:
        """Open a new pty and point the link at it, as plugging the adapter back in does."""
        self._call(self._plug)

    # -- the thread -------------------------------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        """Do action on the serving thread, between reads and writes, and wait for it."""
        if self._stop.is_set():
            raise RuntimeError("the emulator is closed")
        thread = self._thread
        if thread is None or not thread.is_alive():
            action()
            return
        command = _Command(action)
        self._commands.put(command)
        self._wake()
        if not command.done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError("the emulator's thread did not answer")
        if command.error is not None:
            raise command.error

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _serve(self) -> None:
        next_send = time.monotonic()
        streaming = self.protocol != "modbus"
        while not self._stop.is_set():
            self._run_commands()
            waiting = [self._wake_r] if self._master is None else [self._wake_r, self._master]
            timeout = None
            if streaming and self._master is not None:
                timeout = max(0.0, next_send - time.monotonic())
            ready, _, _ = select.select(waiting, [], [], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                continue  # run the commands, and look at the fds again: they may have changed
            if self._master is not None and self._master in ready:
                self._receive()
            if streaming and self._master is not None and time.monotonic() >= next_send:
                self._send_reading()
                next_send = max(next_send + self.period, time.monotonic())

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command.action()
            except Exception as error:  # handed to the caller, who raises it
                command.error = error
            finally:
                command.done.set()

    def _receive(self) -> None:
        try:
            data = os.read(self._master, 4096) if self._master is not None else b""
        except BlockingIOError:
            return
        except OSError as error:  # EIO: nobody holds the slave end (we always do, but still)
            if error.errno != errno.EIO:
                raise
            time.sleep(0.01)
            return
        if self.protocol != "modbus":
            return  # a streaming device ignores what it is sent
        with self._lock:
            silent = self._silent
        if self.echo:
            self._write(data)
        requests, self._inbox = modbus.scan_requests(self._inbox + data)
        for request in requests:
            self.requests_seen += 1
            if silent:
                continue
            with self._lock:
                if request.address != self.address:
                    continue  # not for us: a device on a shared bus keeps quiet
                celsius = self._next_celsius()
                if celsius is None:
                    continue
                registers = {self.register: modbus.celsius_to_word(celsius)}
                reply = modbus.answer(request, self.address, registers, self._reply_as)
                if reply is not None and self._corrupt:
                    self._corrupt -= 1
                    reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
                noise = self._noise
            if reply is not None:
                self._write(noise + reply)

    def _send_reading(self) -> None:
        with self._lock:
            celsius = None if self._silent else self._next_celsius()
            if celsius is None:
                return
            frame = self._encode(celsius)
            if self._corrupt:
                self._corrupt -= 1
                frame = self._damage(frame)
            frame = self._noise + frame
        self._write(frame)
        self.frames_sent += 1

    def _next_celsius(self) -> float | None:
        """The temperature for the next frame or reply, None for none; call with the lock."""
        if self._script:
            return self._script.popleft()
        if self._then_silent:
            return None
        return self._celsius

    def _encode(self, celsius: float) -> bytes:
        """The frame or line for a temperature; ValueError if the protocol cannot carry it."""
        if self.protocol == "stream":
            return stream.build_frame(celsius)
        if self.protocol == "line":
            fmt = self._line_format
            return line.format_line(
                celsius, key=str(fmt["key"]), decimals=int(fmt["decimals"]), unit=str(fmt["unit"])
            )
        if not math.isfinite(celsius):
            raise ValueError(f"{celsius} °C cannot be held in a Modbus register")
        modbus.celsius_to_word(celsius)
        return b""

    def _damage(self, frame: bytes) -> bytes:
        if self.protocol == "stream":
            return frame[:-1] + bytes([frame[-1] ^ 0xFF])
        return frame.replace(b".", b"?", 1) if b"." in frame else b"T=?" + frame

    def _write(self, data: bytes) -> None:
        """Send bytes; what does not fit the pty's buffer (nobody reading) is lost.

        So it is on a real line whose receiver overruns.
        """
        if self._master is None or not data:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.write(self._master, data)

    def _plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: bytes as sent
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        self._inbox = b""
        if self._link is not None:
            staging = self._link.with_name(self._link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            staging.symlink_to(self._pty_path)
            staging.replace(self._link)

    def _unplug(self) -> None:
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()
        # Closing the master hangs the line up: a driver reading the slave gets end-of-file, a
        # driver writing gets EIO. The slave end we held (so our writes never failed) goes too.
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._pty_path = None


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hardware.thermometer.emulator",
        description="Serve an emulated serial thermometer on a pty; print its path, then obey "
        "commands on standard input (celsius N, silent, speak, unplug, replug, garbage, quit).",
    )
    parser.add_argument("--protocol", choices=PROTOCOL_NAMES, required=True)
    parser.add_argument("--celsius", type=float, default=36.6, help="temperature to report")
    parser.add_argument("--address", type=int, default=1, help="Modbus device address")
    parser.add_argument("--register", type=int, default=0, help="Modbus holding register")
    parser.add_argument(
        "--period", type=float, default=DEFAULT_PERIOD, help="seconds between frames or lines"
    )
    parser.add_argument("--link", help="the stable port path (a symlink) to keep")
    return parser


def _obey(emulator: Emulator, command: str) -> str:
    words = command.split()
    if not words:
        return ""
    verb, args = words[0].lower(), words[1:]
    try:
        if verb == "celsius" and len(args) == 1:
            emulator.set_celsius(float(args[0]))
        elif verb == "silent" and not args:
            emulator.go_silent()
        elif verb == "speak" and not args:
            emulator.speak()
        elif verb == "unplug" and not args:
            emulator.unplug()
        elif verb == "replug" and not args:
            emulator.replug()
        elif verb == "garbage" and not args:
            emulator.inject(_GARBAGE)
        else:
            return f"error: unknown command {command.strip()!r}"
    except ValueError as error:
        return f"error: {error}"
    return f"ok {command.strip()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        emulator = Emulator(
            args.protocol,
            celsius=args.celsius,
            address=args.address,
            register=args.register,
            period=args.period,
            link=args.link,
        )
    except ValueError as error:
        parser.error(str(error))
    with emulator:
        print(emulator.port, flush=True)
        try:
            for command in sys.stdin:
                if command.strip().lower() == "quit":
                    return 0
                reply = _obey(emulator, command)
                if reply:
                    print(reply, flush=True)
            while True:
                signal.pause()
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
