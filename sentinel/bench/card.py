"""`sentinel bench card`: a full eMRTD read (BAC, EF.COM, DG1) and a GA 467 read, timed.

The eMRTD is our virtual passport, read in process (the protocol work alone) and, when a
pcscd with the vpcd reader is running, through pcscd and pyscard as a USB reader would be. The
GA 467 module is our emulator on a pty; a pty passes bytes at once, so the table also gives
the time the same frames take on a 115200-baud wire, which is what a real module adds.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from hardware.idcard.ga467 import (
    DEFAULT_BAUDRATE,
    Command,
    Request,
    build_request,
    build_response,
)
from hardware.idcard.sam_emulator import SAMPLE_CARD, SamEmulator, SamModule
from hardware.idcard.samreader import SamReader
from hardware.smartcard.emrtd import read_emrtd
from hardware.smartcard.errors import SmartcardError
from hardware.smartcard.mrz import parse_mrz
from hardware.smartcard.specimen import SPECIMEN_TD3, issue_passport, make_test_pki

VPCD_PORT = 0x8C7B  # the first slot of Debian's installed vpcd reader
VPCD_READER = "Virtual PCD 00 00"
BITS_PER_BYTE_8N1 = 10  # start bit, 8 data bits, stop bit
READ_STEPS = (Command.FIND_CARD, Command.SELECT_CARD, Command.READ_BASE_INFO)


def ga467_wire_bytes() -> int:
    """The bytes a card read puts on the wire both ways, from the frames the emulator answers."""
    module = SamModule(SAMPLE_CARD)
    total = 0
    for command in READ_STEPS:
        sw3, data = module.answer(Request(command.cmd, command.para))
        total += len(build_request(command)) + len(build_response(sw3, data))
    return total


@dataclass(frozen=True)
class Timing:
    what: str
    reads: int
    median_ms: float
    p95_ms: float
    note: str = ""

    def row(self) -> str:
        figures = f"{self.reads:>5} {self.median_ms:>9.2f} {self.p95_ms:>9.2f}"
        return f"{self.what:<44} {figures}  {self.note}".rstrip()

    def as_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "reads": self.reads,
            "median_ms": round(self.median_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "note": self.note,
        }


def _timed(what: str, reads: int, read: Callable[[], object], note: str = "") -> Timing:
    read()  # warm up: imports, first connection
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        read()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(what, reads, statistics.median(samples), p95, note)


def _emrtd_through_pcscd(reads: int) -> Timing | str:
    """Through a running pcscd's vpcd reader, or the reason it could not be measured."""
    try:
        from hardware.smartcard.pcsc import PcscReader, list_readers
        from hardware.smartcard.vpcd_card import VpcdCard
    except ImportError as error:
        return f"pyscard missing ({error})"
    try:
        if VPCD_READER not in list_readers():
            return f"no '{VPCD_READER}' reader: start pcscd with vsmartcard-vpcd installed"
    except SmartcardError as error:
        return f"pcscd not running ({error})"
    information = parse_mrz(SPECIMEN_TD3).information
    with VpcdCard(issue_passport(SPECIMEN_TD3, pki=make_test_pki()), VPCD_PORT) as card:
        card.insert()
        with PcscReader(VPCD_READER) as reader:
            reader.wait_for_card(10.0)
            return _timed(
                "eMRTD BAC + EF.COM + DG1, pcscd + vpcd",
                reads,
                lambda: reader.read_document(information, passive_authentication=False),
            )


def measure(reads: int) -> tuple[list[Timing], list[str]]:
    """The timings, and the rows that could not be measured here, with why."""
    logging.getLogger("hardware.smartcard").setLevel(logging.WARNING)  # a line per read
    pki = make_test_pki()
    information = parse_mrz(SPECIMEN_TD3).information
    passport = issue_passport(SPECIMEN_TD3, pki=pki)
    timings = [
        _timed(
            "eMRTD BAC + EF.COM + DG1, in process",
            reads,
            lambda: read_emrtd(passport.process, information, passive_authentication=False),
        ),
        _timed(
            "eMRTD + EF.SOD + passive authentication",
            reads,
            lambda: read_emrtd(passport.process, information, csca=[pki.csca]),
        ),
    ]
    skipped = []
    through_pcscd = _emrtd_through_pcscd(reads)
    if isinstance(through_pcscd, Timing):
        timings.append(through_pcscd)
    else:
        skipped.append(f"eMRTD through pcscd: {through_pcscd}")
    wire_ms = ga467_wire_bytes() * BITS_PER_BYTE_8N1 / DEFAULT_BAUDRATE * 1000
    with TemporaryDirectory() as folder, SamEmulator(link=Path(folder) / "ttyUSB-sam") as module:
        module.insert(SAMPLE_CARD.text)
        with SamReader(module.port) as reader:
            timings.append(
                _timed(
                    "GA 467 find + select + read base info, pty",
                    reads,
                    reader.read_card,
                    f"+{wire_ms:.0f} ms on a {DEFAULT_BAUDRATE}-baud wire",
                )
            )
    return timings, skipped


def table(timings: list[Timing], skipped: list[str]) -> list[str]:
    lines = [f"{'read':<44} {'reads':>5} {'median ms':>9} {'p95 ms':>9}", "-" * 72]
    lines += [timing.row() for timing in timings]
    lines += [f"(not measured: {reason})" for reason in skipped]
    return lines
