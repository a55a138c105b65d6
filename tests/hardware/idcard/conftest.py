"""Fixtures for the ID-card tests: an emulated SAM module on a pty, a driver on its slave side."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware.idcard.ga467 import IdCardText
from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from hardware.idcard.samreader import SamReader

# A second fictional holder; 110101199003071233 has a right check character.
OTHER_TEXT = IdCardText(
    name="李四",
    sex="1",
    nation="03",
    birth="19900307",
    address="北京市东城区样例胡同2号",
    id_number="110101199003071233",
    authority="北京市公安局东城分局",
    valid_from="20150601",
    valid_to="20350601",
)
PERSONAL = [
    text for card in (SAMPLE_TEXT, OTHER_TEXT) for text in (card.id_number, card.name, card.address)
]


@pytest.fixture
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of the test, at every level, is free of ID numbers, names, addresses."""
    caplog.set_level(logging.DEBUG)
    yield
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for text in PERSONAL:
        assert text not in logged


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[SamEmulator]:
    """A module with no card, behind a stable link (as /dev/serial/by-id/... on a Pi)."""
    with SamEmulator(link=tmp_path / "ttyUSB-sam") as emulator:
        yield emulator


@pytest.fixture
def reader(emulator: SamEmulator) -> Iterator[SamReader]:
    with SamReader(emulator.port, timeout=0.5, read_timeout=1.0, poll_interval=0.02) as reader:
        yield reader
