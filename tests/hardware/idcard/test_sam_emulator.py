"""Tests of hardware.idcard.sam_emulator: its answers on the wire, unplugging, its command."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from hardware.idcard.ga467 import (
    MIN_RESPONSE_LENGTH,
    PREAMBLE,
    Command,
    FrameParser,
    Request,
    Response,
    Status,
    build_request,
    encode_frame,
    parse_response,
)
from hardware.idcard.sam_emulator import SAMPLE_CARD, SAMPLE_TEXT, SamEmulator, SamModule
from hardware.idcard.samreader import SamReader

pytestmark = pytest.mark.usefixtures("no_personal_data_in_logs")
REPO_ROOT = Path(__file__).resolve().parents[3]


def exchange(port: serial.Serial, frame: bytes, limit: float = 5.0) -> Response:
    """Write frame, read one answer through the shared parser, within limit seconds."""
    port.write(frame)
    parser = FrameParser(min_length=MIN_RESPONSE_LENGTH)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        parser.feed(port.read(max(1, port.in_waiting)))
        payload = parser.next_frame()
        if payload is not None:
            return parse_response(payload)
    raise AssertionError("no answer from the emulator")


def test_module_logic_without_io():
    module = SamModule()
    read = Request(*Command.READ_BASE_INFO.value)
    assert module.answer(Request(*Command.FIND_CARD.value)) == (Status.NO_CARD, b"")
    assert module.answer(Request(*Command.SELECT_CARD.value))[0] == Status.SELECT_FAILED
    module.insert(SAMPLE_CARD)
    assert module.answer(read)[0] == Status.READ_FAILED  # not found and selected yet
    assert module.answer(Request(*Command.FIND_CARD.value)) == (Status.CARD_FOUND, bytes(4))
    assert module.answer(Request(*Command.SELECT_CARD.value)) == (Status.OK, bytes(8))
    sw3, data = module.answer(read)
    assert sw3 == Status.OK
    assert len(data) == 4 + 256 + 1024
    assert module.answer(Request(0x20, 0x09))[0] == Status.COMMAND_ERROR


def test_wire_answers_to_bad_requests(emulator):
    with serial.Serial(emulator.port, 115200, timeout=0.05) as port:
        bad_checksum = bytearray(build_request(Command.FIND_CARD))
        bad_checksum[-1] ^= 0x55
        assert exchange(port, bytes(bad_checksum)).status is Status.CHECKSUM_ERROR
        too_short = PREAMBLE + b"\x00\x01" + b"\x01"
        assert exchange(port, too_short).status is Status.LENGTH_ERROR
        assert exchange(port, encode_frame(b"\x55\x01")).status is Status.COMMAND_ERROR
        with_data = encode_frame(b"\x20\x01\x00")
        assert exchange(port, with_data).status is Status.COMMAND_ERROR
        assert exchange(port, build_request(Command.FIND_CARD)).status is Status.NO_CARD
    # Frames with a bad checksum or length are answered but are no requests.
    assert emulator.requests == [
        Request(0x55, 0x01),
        Request(0x20, 0x01, b"\x00"),
        Request(0x20, 0x01),
    ]


def test_answers_one_request_split_over_many_writes(emulator):
    emulator.insert(SAMPLE_TEXT)
    with serial.Serial(emulator.port, 115200, timeout=0.05) as port:
        frame = build_request(Command.FIND_CARD)
        for byte in frame[:-1]:
            port.write(bytes([byte]))
            port.flush()
        assert exchange(port, frame[-1:]).status is Status.CARD_FOUND


def test_unplug_closes_the_pty_and_the_link(tmp_path):
    link = tmp_path / "ttyUSB0"
    with SamEmulator(SAMPLE_CARD, link=link) as emulator:
        first = emulator.pty_name
        assert os.path.realpath(link) == first
        emulator.unplug()
        assert not emulator.plugged
        assert not link.exists()
        assert not link.is_symlink()
        emulator.replug()
        assert emulator.plugged
        assert os.path.realpath(link) == emulator.pty_name
        with SamReader(emulator.port) as reader:
            assert reader.read_card() == SAMPLE_CARD
    assert not link.is_symlink()


def test_without_a_link_the_port_is_the_pty_itself():
    with SamEmulator(SAMPLE_CARD) as emulator:
        assert emulator.port == emulator.pty_name
        assert emulator.port.startswith("/dev/pts/")
        with SamReader(emulator.port) as reader:
            assert reader.read_card() == SAMPLE_CARD


def test_command_prints_the_port_and_serves_the_sample_card(tmp_path):
    link = tmp_path / "ttySAM"
    process = subprocess.Popen(
        [sys.executable, "-m", "hardware.idcard.sam_emulator", "--link", str(link)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the emulator printed no port within 20 s"
        port = process.stdout.readline().strip()
        assert port == str(link)
        with SamReader(port) as reader:
            assert reader.read_card() == SAMPLE_CARD
            assert str(reader.sam_id()).startswith("05.01-")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "serving the sample card" in stderr
    assert SAMPLE_TEXT.id_number not in stderr
    assert not link.is_symlink()
