"""`sentinel card read --sam PORT`: a resident ID card on an emulated module, masked by default."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hardware.idcard.sam_emulator import SAMPLE_TEXT, SamEmulator
from hardware.smartcard import cli

FIELDS = ("name", "sex", "nation", "birth", "address", "id_number", "authority", "valid_from",
          "valid_to")  # fmt: skip


def read(emulator: SamEmulator, *options: str) -> int:
    return cli.main(["read", "--sam", emulator.port, "--timeout", "1", *options])


def test_prints_the_fields_by_name_masked_unless_revealed(
    emulator: SamEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.insert(SAMPLE_TEXT)
    assert read(emulator, "--json") == cli.EXIT_READ
    masked = json.loads(capsys.readouterr().out)
    assert set(FIELDS) <= set(masked)
    number = SAMPLE_TEXT.id_number
    assert masked["id_number"] == number[:4] + "*" * 10 + number[-4:]
    assert masked["name"] == SAMPLE_TEXT.name[0] + "*" * (len(SAMPLE_TEXT.name) - 1)
    assert SAMPLE_TEXT.address not in json.dumps(masked, ensure_ascii=False)
    assert masked["problems"] == []
    assert read(emulator, "--json", "--reveal") == cli.EXIT_READ
    revealed = json.loads(capsys.readouterr().out)
    assert (revealed["id_number"], revealed["address"]) == (number, SAMPLE_TEXT.address)
    assert read(emulator) == cli.EXIT_READ
    text = capsys.readouterr().out
    assert "id_number: " + masked["id_number"] in text and number not in text


def test_a_card_with_problems_and_no_card_have_their_own_exit(
    emulator: SamEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert read(emulator) == cli.EXIT_NO_READ
    assert "no card within 1 s" in capsys.readouterr().err
    emulator.insert(dataclasses.replace(SAMPLE_TEXT, valid_to="20200101"))
    assert read(emulator, "--json") == cli.EXIT_CHECK_FAILED
    assert json.loads(capsys.readouterr().out)["problems"] == ["the card is expired"]


def test_a_missing_module_is_no_reader(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["read", "--sam", str(tmp_path / "nothing"), "--timeout", "0.2"])
    assert status == cli.EXIT_NO_READER
    assert "SAM module absent" in capsys.readouterr().err
