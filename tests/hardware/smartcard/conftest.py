"""Fixtures for the smart-card tests: a real pcscd with the vpcd reader, virtual cards, a test PKI.

The `pcscd` fixture (session) uses a pcscd that is already running with the vpcd reader
("Virtual PCD 00 00", the installed /etc/reader.conf.d/vpcd), or else starts its own in the
foreground (`pcscd --foreground --config DIR`) with a private reader.conf.d naming the vpcd
reader "Sentinel Test PCD" on a free port pair, and stops it at the end. pcscd 1.9 serves one
socket, /run/pcscd/pcscd.comm, so starting it needs root. The tests skip, saying why, only
when pyscard, pcscd or the vpcd driver are not installed, or pcscd is not running and this
is not root.

`slots` puts virtual cards into the two vpcd slots and takes them out, each time waiting
until pcscd has seen the change (its event counter moved), so one test's card never leaks
into the next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hardware.smartcard.specimen import SPECIMEN_TD1, SPECIMEN_TD3, TestPki, make_test_pki
from hardware.smartcard.virtual_card import VirtualPassport
from hardware.smartcard.vpcd_card import VpcdCard

# Seconds to wait for something that should come (pcscd polls a vpcd slot every 0.4 s):
# a wait returns as soon as it comes, so only a broken stack ever waits this long.
WAIT = 10.0
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
REPO_ROOT_FOR_SUBPROCESS = Path(__file__).resolve().parents[3]
VPCD_LIBRARY = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
TEST_READER = "Sentinel Test PCD"
SYSTEM_READER = "Virtual PCD"

# Every personal datum of the specimen documents, for the no-personal-data-in-logs checks.
PERSONAL = [
    "L898902C3",
    "L898902C",
    "ERIKSSON",
    "ANNA",
    "740812",
    "D23145890734",
    "STEVENSON",
    SPECIMEN_TD3.split("\n")[1],
    SPECIMEN_TD1.split("\n")[0],
]


@pytest.fixture
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of the test, at every level, is free of document numbers and names."""
    caplog.set_level(logging.DEBUG)
    yield
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for text in PERSONAL:
        assert text not in logged


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return make_test_pki("ec")


# --- pcscd ---------------------------------------------------------------------------------


def _pcscd_binary() -> str | None:
    return shutil.which("pcscd") or next(
        (p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if os.access(p, os.X_OK)), None
    )


def _vpcd_config() -> tuple[str, int]:
    """(driver library, first port) from the installed vpcd reader.conf, or the defaults."""
    library, port = VPCD_LIBRARY, 0x8C7B
    if VPCD_CONF.is_file():
        text = VPCD_CONF.read_text()
        if match := re.search(r"^LIBPATH\s+(\S+)", text, re.MULTILINE):
            library = match.group(1)
        if match := re.search(r"^CHANNELID\s+(\S+)", text, re.MULTILINE):
            port = int(match.group(1), 0)
    return library, port


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on every interface (vpcd binds to INADDR_ANY)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("0.0.0.0", port))
                two.bind(("0.0.0.0", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def _readers() -> list[str]:
    from hardware.smartcard.errors import ReaderError
    from hardware.smartcard.pcsc import list_readers

    try:
        return list_readers()
    except ReaderError:
        return []


@dataclass
class Pcscd:
    """The pcscd the tests use: its two vpcd slots, and (when ours) how to stop and start it."""

    readers: tuple[str, str]
    ports: tuple[int, int]
    binary: str
    conf_dir: Path | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def owned(self) -> bool:
        """Whether the tests started this pcscd (and may stop it)."""
        return self.conf_dir is not None

    def start(self) -> None:
        assert self.conf_dir is not None and self.log_path is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--foreground", "--debug", "--config", str(self.conf_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if set(self.readers) <= set(_readers()):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"pcscd did not come up with the vpcd reader; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    try:
        import smartcard.scard  # noqa: F401
    except ImportError as error:
        pytest.skip(f"pyscard is not installed or cannot load libpcsclite ({error})")
    binary = _pcscd_binary()
    if binary is None:
        pytest.skip("pcscd is not installed (Debian package pcscd)")
    library, system_port = _vpcd_config()
    if not Path(library).exists():
        pytest.skip(f"the vpcd reader driver is not installed ({library}: vsmartcard-vpcd)")
    if _service_answers():
        vpcd = sorted(r for r in _readers() if r.startswith(SYSTEM_READER))
        if len(vpcd) < 2:
            pytest.skip(
                "a pcscd is running without the vpcd reader: restart it after installing "
                "vsmartcard-vpcd, or stop it and let the tests start their own"
            )
        yield Pcscd((vpcd[0], vpcd[1]), (system_port, system_port + 1), binary)
        return
    if os.geteuid() != 0:
        pytest.skip("pcscd is not running, and only root can start one (/run/pcscd)")
    conf_dir = tmp_path_factory.mktemp("reader.conf.d")
    port = _free_port_pair()
    (conf_dir / "vpcd").write_text(
        f'FRIENDLYNAME "{TEST_READER}"\nDEVICENAME /dev/null:0x{port:04X}\n'
        f"LIBPATH {library}\nCHANNELID 0x{port:04X}\n"
    )
    daemon = Pcscd(
        readers=(f"{TEST_READER} 00 00", f"{TEST_READER} 00 01"),
        ports=(port, port + 1),
        binary=binary,
        conf_dir=conf_dir,
        log_path=conf_dir.parent / "pcscd.log",
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _service_answers() -> bool:
    from hardware.smartcard.errors import ReaderError
    from hardware.smartcard.pcsc import list_readers

    try:
        list_readers()
    except ReaderError:
        return False
    return True


# --- cards in slots ------------------------------------------------------------------------


def _event_state(reader: str) -> int:
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return 0
    try:
        result, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        return states[0][1] if result == scard.SCARD_S_SUCCESS else 0
    finally:
        scard.SCardReleaseContext(context)


def _present(state: int) -> bool:
    from smartcard import scard

    return bool(state & scard.SCARD_STATE_PRESENT)


@dataclass
class Slot:
    """One vpcd slot: the reader's full name, its port, and the card in it."""

    reader: str
    port: int
    card: VpcdCard | None = None
    counter: int = 0  # pcscd's event counter when the card was seen inserted

    def insert(self, card: VirtualPassport, *, wait: bool = True) -> VpcdCard:
        """Put a card in the slot; with wait, until pcscd reports it present."""
        assert self.card is None, "the slot already holds a card"
        self.card = VpcdCard(card, self.port).insert(WAIT)
        if wait:
            self.wait_present()
        return self.card

    def wait_present(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            state = _event_state(self.reader)
            if _present(state):
                self.counter = state >> 16
                return
            time.sleep(0.02)
        pytest.fail(f"pcscd did not see the card in {self.reader}")

    def remove(self) -> None:
        """Take the card out and wait until pcscd's event thread has seen it go.

        pcscd may already report the slot empty after a failed transmission while its
        event thread still thinks the card is there; a new card put in before that thread's
        next poll would then never be announced. Its event counter moves when the thread
        notices, so wait for an empty slot with a counter other than the insertion's.
        """
        if self.card is None:
            return
        self.card.remove()
        self.card = None
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            state = _event_state(self.reader)
            if state and not _present(state) and state >> 16 != self.counter:
                return
            time.sleep(0.02)
        pytest.fail(f"pcscd did not see the card leave {self.reader}")


@pytest.fixture
def slots(pcscd: Pcscd) -> Iterator[tuple[Slot, Slot]]:
    """The two vpcd slots, emptied (and pcscd told) at the end of the test."""
    pair = (Slot(pcscd.readers[0], pcscd.ports[0]), Slot(pcscd.readers[1], pcscd.ports[1]))
    yield pair
    for slot in pair:
        with contextlib.suppress(Exception):
            slot.remove()
