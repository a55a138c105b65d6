"""The agent's card reader loop against an emulated GA 467 module on a pty."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from device.cardreader import SamCardReader
from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from hardware.idcard.samreader import SamReader
from shared.messages import ComponentHealth
from shared.sealed import CardIdentity, DocumentType
from shared.verification import CardValidity
from tests.hardware.idcard.conftest import OTHER_TEXT, no_personal_data_in_logs  # noqa: F401

TODAY = date(2026, 6, 1)


@pytest.fixture
def module(tmp_path: Path) -> Iterator[SamEmulator]:
    with SamEmulator(link=tmp_path / "ttyUSB-sam") as emulator:
        yield emulator


@pytest.fixture
def handed() -> list[tuple[CardIdentity, str, CardValidity]]:
    return []


@pytest.fixture
def loop(module: SamEmulator, handed: list) -> Iterator[SamCardReader]:
    reader = SamReader(module.port, timeout=0.3, read_timeout=1.0, poll_interval=0.02)
    cards = SamCardReader(
        reader,
        lambda identity, origin, validity: handed.append((identity, origin, validity)),
        today=lambda: TODAY,
    )
    yield cards
    reader.close()


@pytest.mark.usefixtures("no_personal_data_in_logs")
def test_a_card_is_handed_on_once_while_it_lies_there(
    module: SamEmulator, loop: SamCardReader, handed: list
) -> None:
    assert loop.look_once() is None  # nothing on the module
    module.insert(SAMPLE_TEXT)
    first = loop.look_once()
    assert first == CardIdentity.of(DocumentType.CN_ID, "CHN", SAMPLE_TEXT.id_number)
    assert loop.look_once() is None  # still lying there
    module.remove()
    assert loop.look_once() is None
    module.insert(SAMPLE_TEXT)  # taken away and shown again: a new presentation
    assert loop.look_once() == first
    assert [origin for _, origin, _ in handed] == [f"sam:{module.port}"] * 2


@pytest.mark.usefixtures("no_personal_data_in_logs")
def test_a_card_with_a_broken_number_is_not_used(
    module: SamEmulator, loop: SamCardReader, handed: list
) -> None:
    module.insert(dataclasses.replace(OTHER_TEXT, id_number="110101199003071230"))
    assert loop.look_once() is None
    assert handed == []


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "validity"),
    [
        ("20150601", "20350601", CardValidity.VALID),
        ("20200101", "长期", CardValidity.VALID),  # long-term: no end date
        ("20150601", "20260601", CardValidity.VALID),  # its last day
        ("20060601", "20260531", CardValidity.EXPIRED),
        ("20260602", "20460602", CardValidity.NOT_YET_VALID),
        ("20150601", "2035????", CardValidity.UNREADABLE),
    ],
)
def test_a_card_is_handed_on_with_whether_it_is_in_date(
    module: SamEmulator,
    loop: SamCardReader,
    handed: list,
    valid_from: str,
    valid_to: str,
    validity: CardValidity,
) -> None:
    module.insert(dataclasses.replace(OTHER_TEXT, valid_from=valid_from, valid_to=valid_to))
    assert loop.look_once() is not None  # used all the same: staff decide on a card out of date
    assert [found for _, _, found in handed] == [validity]


def test_an_unplugged_module_is_reported_and_recovered(
    module: SamEmulator, loop: SamCardReader, handed: list
) -> None:
    assert loop.component().state is ComponentHealth.OK
    module.unplug()
    assert loop.look_once() is None
    state = loop.component()
    assert state.state in {ComponentHealth.ABSENT, ComponentHealth.FAILING}
    assert state.detail
    module.replug()
    module.insert(OTHER_TEXT)
    assert loop.look_once() is not None
    assert loop.component().state is ComponentHealth.OK
