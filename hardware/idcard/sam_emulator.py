"""An emulated GA 467 SAM module on a pty, for tests and demos: `python -m` serves a sample card.

The emulator holds the master side of a pty (raw mode) and answers, through ga467's frame
functions, whatever is written to the slave side: a driver opens the slave path as it would
/dev/ttyUSB0. SamModule is the module's logic without I/O (find, then select, then read, as a
real module insists); SamEmulator adds the pty, a card that can be put on and taken off, and
faults injected into its answers (Fault), including an unplug. With link, the emulator keeps
a symbolic link at that path pointing to its pty, as udev keeps /dev/serial/by-id/...: the
path stays the same across an unplug and replug, while the pty behind it changes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Self

from hardware.closing import Closing
from hardware.idcard.ga467 import (
    SAM_ID_SIZE,
    CardData,
    ChecksumError,
    Command,
    FrameParser,
    IdCardText,
    LengthError,
    Request,
    Status,
    build_base_info,
    build_response,
    parse_request,
)

# A fictional holder, with the example ID number of the national standard (GB 11643).
SAMPLE_TEXT = IdCardText(
    name="张丽",
    sex="2",
    nation="01",
    birth="19491231",
    address="北京市朝阳区示例路1号",
    id_number="11010519491231002X",
    authority="北京市公安局朝阳分局",
    valid_from="20200101",
    valid_to="长期",
)
# Stands for a WLT photo: the driver keeps it as opaque bytes, so any 1024 bytes do.
SAMPLE_PHOTO = bytes((i * 37 + 11) % 256 for i in range(1024))
SAMPLE_CARD = CardData(SAMPLE_TEXT, SAMPLE_PHOTO)
SAMPLE_SAM_ID = (
    (5).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (20200101).to_bytes(4, "little")
    + (12345678).to_bytes(4, "little")
    + (987654321).to_bytes(4, "little")
)
_FIND_DATA = bytes(4)  # what a module sends with "card found"
_SELECT_DATA = bytes(8)  # and with "card selected"
_SEND_LIMIT = 2.0  # seconds to wait for a peer that does not read before dropping an answer
_CALL_LIMIT = 5.0  # seconds to wait for the serving thread to run a call


class SamModule:
    """The module's answers, no I/O: find, select, read base info, SAM id."""

    def __init__(self, card: CardData | None = None, sam_id: bytes = SAMPLE_SAM_ID) -> None:
        if len(sam_id) != SAM_ID_SIZE:
            raise ValueError(f"a SAM id has {SAM_ID_SIZE} bytes, not {len(sam_id)}")
        self.card = card
        self.sam_id = sam_id
        self.found = False
        self.selected = False

    def insert(self, card: CardData) -> None:
        self.card = card
        self.found = self.selected = False

    def remove(self) -> None:
        self.card = None
        self.found = self.selected = False

    def reset(self) -> None:
        """Power lost: the card stays on the reader but must be found again."""
        self.found = self.selected = False

    def answer(self, request: Request) -> tuple[int, bytes]:
        """SW3 and data for request."""
        command = request.command
        if command is None or request.data:
            return Status.COMMAND_ERROR, b""
        if command is Command.SAM_ID:
            return Status.OK, self.sam_id
        if command is Command.FIND_CARD:
            self.found = self.card is not None
            self.selected = False
            return (Status.CARD_FOUND, _FIND_DATA) if self.found else (Status.NO_CARD, b"")
        if command is Command.SELECT_CARD:
            self.selected = self.found and self.card is not None
            return (Status.OK, _SELECT_DATA) if self.selected else (Status.SELECT_FAILED, b"")
        # READ_BASE_INFO
        if not self.selected or self.card is None:
            return Status.READ_FAILED, b""
        return Status.OK, build_base_info(self.card)


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one answer: the next answer, or the next one to command `on`.

    garbage: bytes sent before the answer; sw3: answer with this status and no data instead;
    bad_checksum: the answer's checksum is wrong; truncate_to: only the first bytes of the
    answer are sent; drop: nothing is sent; remove_card: the card is taken away once the
    module has answered; unplug: the module is unplugged after sending what it sends.
    """

    on: Command | None = None
    garbage: bytes = b""
    sw3: int | None = None
    bad_checksum: bool = False
    truncate_to: int | None = None
    drop: bool = False
    remove_card: bool = False
    unplug: bool = False

    def apply(self, frame: bytes) -> bytes:
        """The bytes sent instead of frame."""
        if self.drop:
            return self.garbage
        if self.bad_checksum:
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if self.truncate_to is not None:
            frame = frame[: self.truncate_to]
        return self.garbage + frame


class SamEmulator(Closing):
    """A SAM module on a pty, answered from a thread; a context manager.

    port is the path to give a driver: link if given, else the pty's slave (which changes on
    replug). Calls from any thread; requests lists the requests received, in order.
    """

    def __init__(
        self,
        card: CardData | None = None,
        *,
        link: str | os.PathLike[str] | None = None,
        sam_id: bytes = SAMPLE_SAM_ID,
    ) -> None:
        self.link = Path(link) if link is not None else None
        self._module = SamModule(card, sam_id)
        self._faults: collections.deque[Fault] = collections.deque()
        self._requests: list[Request] = []
        self._silent = False
        self._lock = threading.Lock()  # the module's state, faults, requests
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_name: str | None = None
        self._parser = FrameParser()
        self._calls: collections.deque[tuple[Callable[[], None], threading.Event]] = (
            collections.deque()
        )
        self._stop = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # --- life -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        self._plug()
        self._thread = threading.Thread(target=self._serve, name="sam-emulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close the pty and remove the link. Idempotent."""
        if self._thread is not None:
            self._stop = True
            self._wake()
            self._thread.join(_CALL_LIMIT)
        self._unplug()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> Self:
        return self.start()

    # --- what tests drive -----------------------------------------------------------------

    @property
    def port(self) -> str:
        if self.link is not None:
            return str(self.link)
        if self._pty_name is None:
            raise RuntimeError("the emulator is not plugged in")
        return self._pty_name

    @property
    def pty_name(self) -> str | None:
        """The pty's slave path now; None while unplugged."""
        return self._pty_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def silent(self) -> bool:
        """A silent module takes requests and answers none (a module that stopped answering)."""
        return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = value

    def insert(self, card_text: IdCardText, photo: bytes = SAMPLE_PHOTO) -> None:
        """Put a card on the reader."""
        with self._lock:
            self._module.insert(CardData(card_text, photo))

    def remove(self) -> None:
        """Take the card off the reader."""
        with self._lock:
            self._module.remove()

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each spoils the next answer it matches (see Fault.on)."""
        with self._lock:
            self._faults.extend(faults)

    def unplug(self) -> None:
        """Pull the module out: the pty closes (and the link goes), the driver's port fails."""
        self._call(self._unplug)

    def replug(self) -> None:
        """Plug the module back in: a new pty (the link, if any, points to it)."""
        self._call(self._plug)

    # --- the serving thread -----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop:
            watched = [self._wake_r] if self._master is None else [self._wake_r, self._master]
            ready, _, _ = select.select(watched, [], [])
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                self._run_calls()
                continue
            master = self._master
            if master is None or master not in ready:
                continue
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # no slave open at all: cannot happen while we hold ours
                time.sleep(0.01)
                continue
            self._receive(data)

    def _receive(self, data: bytes) -> None:
        self._parser.feed(data)
        while self._master is not None:
            try:
                payload = self._parser.next_frame()
            except ChecksumError:
                self._answer(None)
                continue
            except LengthError:
                self._answer(None, Status.LENGTH_ERROR)
                continue
            if payload is None:
                return
            request = parse_request(payload)
            with self._lock:
                self._requests.append(request)
            self._answer(request)

    def _answer(self, request: Request | None, error: int = Status.CHECKSUM_ERROR) -> None:
        with self._lock:
            if self._silent:
                return
            command = request.command if request is not None else None
            fault = self._take_fault(command)
            if fault is not None and fault.sw3 is not None:
                sw3, data = fault.sw3, b""
            elif request is None:
                sw3, data = error, b""
            else:
                sw3, data = self._module.answer(request)
            if fault is not None and fault.remove_card:
                self._module.remove()
        frame = build_response(sw3, data)
        self._send(fault.apply(frame) if fault is not None else frame)
        if fault is not None and fault.unplug:
            self._unplug()

    def _take_fault(self, command: Command | None) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.on is None or fault.on is command:
                del self._faults[index]
                return fault
        return None

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + _SEND_LIMIT
        while view and self._master is not None and not self._stop:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # the peer does not read: the answer is lost, as on a wire
                select.select([], [self._master], [], 0.05)
                continue
            except OSError:
                return
            view = view[written:]

    def _plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_name = os.ttyname(slave)
        self._parser = FrameParser()
        with self._lock:
            self._module.reset()
        if self.link is not None:
            temporary = self.link.with_name(self.link.name + ".new")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self._pty_name)
            temporary.replace(self.link)

    def _unplug(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._pty_name = None

    def _call(self, function: Callable[[], None]) -> None:
        """Run function in the serving thread (the one that uses the pty), and wait for it."""
        if self._thread is None or not self._thread.is_alive():
            function()
            return
        done = threading.Event()
        self._calls.append((function, done))
        self._wake()
        if not done.wait(_CALL_LIMIT):
            raise RuntimeError("the emulator's thread did not answer")

    def _run_calls(self) -> None:
        while self._calls:
            function, done = self._calls.popleft()
            try:
                function()
            finally:
                done.set()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")


def main(argv: list[str] | None = None) -> int:
    """Serve the sample card (or none) until SIGINT or SIGTERM; print the port path first."""
    parser = argparse.ArgumentParser(
        prog="python -m hardware.idcard.sam_emulator",
        description="An emulated GA 467 SAM ID-card module on a pty.",
    )
    parser.add_argument("--link", help="keep a symbolic link to the pty at this path")
    parser.add_argument("--no-card", action="store_true", help="start with no card on it")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    card = None if args.no_card else SAMPLE_CARD
    with SamEmulator(card, link=args.link) as emulator:
        print(emulator.port, flush=True)
        what = "no card" if card is None else "the sample card"
        print(
            f"SAM emulator on {emulator.pty_name}, serving {what}; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
