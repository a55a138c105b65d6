"""Tests of hardware.idcard.samreader against the emulated module on a real pty."""

import threading
from datetime import date

import pytest

from hardware.idcard.ga467 import Command, Status
from hardware.idcard.sam_emulator import SAMPLE_CARD, SAMPLE_PHOTO, SAMPLE_TEXT, Fault
from hardware.idcard.samreader import (
    CardReadError,
    ReaderProtocolError,
    ReaderTimeout,
    ReaderUnavailable,
    SamReader,
)
from tests.hardware.idcard.conftest import OTHER_TEXT

pytestmark = pytest.mark.usefixtures("no_personal_data_in_logs")

FIND, SELECT, READ = Command.FIND_CARD, Command.SELECT_CARD, Command.READ_BASE_INFO


def commands(emulator):
    return [request.command for request in emulator.requests]


def test_reads_a_card_end_to_end(emulator, reader):
    emulator.insert(OTHER_TEXT, photo=SAMPLE_PHOTO)
    card = reader.read_card()
    assert card is not None
    assert card.text == OTHER_TEXT
    assert card.photo == SAMPLE_PHOTO
    assert card.text.problems(date(2022, 4, 1)) == []
    assert commands(emulator) == [FIND, SELECT, READ]
    assert reader.status.state == "ok"
    assert reader.status.last_error is None


def test_sam_id(emulator, reader):
    assert str(reader.sam_id()) == "05.01-20200101-0012345678-0987654321"


def test_no_card_is_none(emulator, reader):
    assert reader.read_card() is None
    assert commands(emulator) == [FIND]
    assert reader.find_card() is False
    assert reader.status.state == "ok"


def test_waits_for_a_card_within_its_timeout(emulator, reader):
    timer = threading.Timer(0.1, emulator.insert, (SAMPLE_TEXT,))
    timer.start()
    try:
        card = reader.read_card(timeout=10)
    finally:
        timer.cancel()
    assert card == SAMPLE_CARD
    assert commands(emulator)[-3:] == [FIND, SELECT, READ]


def test_the_low_level_steps_must_come_in_order(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    with pytest.raises(CardReadError, match="READ_FAILED") as failure:
        reader.read_base_info()  # the module reads only a selected card
    assert failure.value.status is Status.READ_FAILED
    assert reader.find_card() is True
    reader.select_card()
    assert reader.read_base_info() == SAMPLE_CARD


def test_card_taken_away_after_find(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=FIND, remove_card=True))
    with pytest.raises(CardReadError, match=r"SELECT_CARD: SELECT_FAILED \(0x81\)") as failure:
        reader.read_card()
    assert failure.value.status is Status.SELECT_FAILED
    assert reader.status.state == "ok"  # the card went, the reader is fine
    assert reader.read_card() is None


def test_card_taken_away_between_select_and_read(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=SELECT, remove_card=True))
    with pytest.raises(CardReadError, match="READ_FAILED") as failure:
        reader.read_card()
    assert failure.value.status is Status.READ_FAILED
    assert commands(emulator) == [FIND, SELECT, READ]
    assert reader.read_card() is None


@pytest.mark.parametrize(
    "sw3", [Status.CARD_AUTH_FAILED, Status.SAM_AUTH_FAILED, Status.VERIFY_FAILED]
)
def test_authentication_failure_is_a_card_read_error_with_its_name(emulator, reader, sw3):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=READ, sw3=sw3))
    with pytest.raises(CardReadError, match=sw3.name) as failure:
        reader.read_card()
    assert failure.value.status is sw3
    assert reader.status.state == "ok"
    assert reader.read_card() == SAMPLE_CARD


def test_module_checksum_or_length_error_is_retried_once(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(
        Fault(on=READ, sw3=Status.CHECKSUM_ERROR), Fault(on=FIND, sw3=Status.LENGTH_ERROR)
    )
    assert reader.read_card() == SAMPLE_CARD
    assert commands(emulator) == [FIND, FIND, SELECT, READ, READ]
    assert reader.status.state == "ok"


def test_module_checksum_error_twice_is_reported_not_raised(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    twice = Fault(on=READ, sw3=Status.CHECKSUM_ERROR)
    emulator.inject(twice, twice)
    assert reader.read_card() is None
    assert reader.status.state == "failing"
    assert "CHECKSUM_ERROR" in reader.status.last_error
    assert reader.read_card() == SAMPLE_CARD
    assert reader.status.state == "ok"
    emulator.inject(twice, twice)
    assert reader.find_card() is True
    reader.select_card()
    with pytest.raises(ReaderProtocolError, match="again after a retry"):
        reader.read_base_info()


def test_garbage_before_an_answer_is_skipped(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    noise = b"\x00\xff\xaa\xaa\x96\x69" + bytes(range(200))
    emulator.inject(Fault(garbage=noise), Fault(garbage=noise), Fault(garbage=noise))
    assert reader.read_card() == SAMPLE_CARD
    assert commands(emulator) == [FIND, SELECT, READ]  # no retry was needed


def test_answer_with_a_bad_checksum_is_asked_again(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=READ, bad_checksum=True))
    assert reader.read_card() == SAMPLE_CARD
    assert commands(emulator) == [FIND, SELECT, READ, READ]


def test_answer_cut_off_times_out_with_a_clear_error(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=READ, truncate_to=300))
    assert reader.read_card() is None
    status = reader.status
    assert status.state == "failing"
    assert status.last_error == "READ_BASE_INFO: answer cut off, 300 of 1295 bytes within 1 s"
    assert reader.read_card() == SAMPLE_CARD  # the next read starts afresh
    assert reader.status.state == "ok"
    emulator.inject(Fault(on=FIND, truncate_to=9))
    with pytest.raises(ReaderTimeout, match="FIND_CARD: answer cut off, 9 of 15 bytes"):
        reader.find_card()


def test_no_answer_times_out(emulator, reader):
    emulator.inject(Fault(drop=True))
    with pytest.raises(ReaderTimeout, match=r"FIND_CARD: no answer within 0.5 s$"):
        reader.find_card()
    emulator.inject(Fault(drop=True, garbage=b"\x01\x02\x03"))
    with pytest.raises(ReaderTimeout, match="only 3 stray bytes"):
        reader.find_card()
    assert reader.find_card() is False


def test_given_status_for_the_next_command(emulator, reader):
    emulator.inject(Fault(sw3=Status.SAM_SELF_TEST_FAILED))
    with pytest.raises(ReaderProtocolError, match=r"SAM_SELF_TEST_FAILED \(0x60\)"):
        reader.find_card()
    emulator.inject(Fault(sw3=0x42))
    with pytest.raises(ReaderProtocolError, match="unknown status 0x42"):
        reader.sam_id()
    emulator.inject(Fault(sw3=Status.SAM_SELF_TEST_FAILED))
    assert reader.read_card() is None
    assert reader.status.state == "failing"


def test_module_that_stops_answering_is_failing_since_then(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    assert reader.read_card() == SAMPLE_CARD
    emulator.silent = True
    assert reader.read_card() is None
    failing = reader.status
    assert failing.state == "failing"
    assert failing.last_error == "FIND_CARD: no answer within 0.5 s"
    assert reader.read_card() is None
    assert reader.status.since == failing.since  # still the same outage
    emulator.silent = False
    assert reader.read_card() == SAMPLE_CARD
    assert reader.status.state == "ok"
    assert reader.status.since >= failing.since
    assert reader.status.last_error == failing.last_error  # kept for the report


def test_unplugged_mid_read_then_plugged_back(emulator, reader, caplog):
    emulator.insert(SAMPLE_TEXT)
    emulator.inject(Fault(on=READ, truncate_to=200, unplug=True))
    assert reader.read_card() is None  # no exception into the scan loop
    lost = reader.status
    assert lost.state == "absent"
    assert "lost" in lost.last_error
    assert not reader.is_open
    assert reader.read_card(timeout=0.1) is None  # reopening fails while it is out
    assert reader.status.state == "absent"
    assert reader.status.since == lost.since
    assert "cannot open" in reader.status.last_error
    with pytest.raises(ReaderUnavailable, match="cannot open"):
        reader.find_card()
    emulator.replug()
    assert reader.read_card() == SAMPLE_CARD
    assert reader.status.state == "ok"
    warnings = [r for r in caplog.records if r.name == "hardware.idcard.samreader"]
    assert [r.levelname for r in warnings if r.levelname != "DEBUG"] == ["WARNING", "INFO"]


def test_unplugged_while_idle_is_seen_on_the_next_read(emulator, reader):
    emulator.insert(SAMPLE_TEXT)
    assert reader.read_card() == SAMPLE_CARD
    emulator.unplug()
    assert reader.read_card() is None
    assert reader.status.state == "absent"
    assert emulator.pty_name is None
    emulator.replug()
    assert emulator.pty_name is not None
    assert reader.read_card() == SAMPLE_CARD


def test_port_that_never_existed_is_absent(tmp_path):
    with SamReader(str(tmp_path / "nothing"), timeout=0.2) as reader:
        assert reader.read_card() is None
        assert reader.status.state == "absent"
        with pytest.raises(ReaderUnavailable):
            reader.sam_id()


def test_bad_arguments_are_programming_errors(emulator):
    with pytest.raises(ValueError):
        SamReader(emulator.port, timeout=0)
    with pytest.raises(ValueError):
        SamReader(emulator.port, poll_interval=0)
    with SamReader(emulator.port) as reader, pytest.raises(ValueError):
        reader.read_card(timeout=-1)


def test_nothing_personal_in_logs_or_errors_of_a_whole_session(emulator, reader, caplog):
    # The fixture no_personal_data_in_logs checks every record; this session logs at each level.
    emulator.insert(OTHER_TEXT)
    card = reader.read_card()
    assert "110101199003071233" not in repr(card)
    assert "110101199003071233" not in str(card)
    emulator.inject(Fault(on=READ, sw3=Status.VERIFY_FAILED))
    with pytest.raises(CardReadError) as failure:
        reader.read_card()
    assert "110101199003071233" not in str(failure.value)
    emulator.inject(Fault(on=READ, bad_checksum=True), Fault(on=READ, bad_checksum=True))
    assert reader.read_card() is None
    assert reader.read_card() == card
    levels = {record.levelname for record in caplog.records}
    assert {"DEBUG", "INFO", "WARNING"} <= levels
