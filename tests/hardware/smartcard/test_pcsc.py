"""Through real software: pyscard -> pcscd -> the vpcd reader driver -> our virtual card.

Readers found by name, insertion and removal events, ATR and UID, a passport read end to
end, a wrong MRZ, a card pulled mid-read, unexpected status words, a corrupted MAC, and the
reader unplugged (pcscd stopped and started again under a live PcscReader).
"""

import threading

import pytest

from hardware.smartcard.apdu import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_READ_BINARY,
    INS_SELECT,
)
from hardware.smartcard.emrtd import WRONG_MRZ
from hardware.smartcard.errors import (
    AccessDenied,
    CardRemoved,
    CardStatusError,
    FileNotFound,
    NoCard,
    ReaderNotFound,
    ReaderUnavailable,
    SecureMessagingError,
    SecurityNotSatisfied,
)
from hardware.smartcard.mrz import parse_mrz
from hardware.smartcard.pcsc import PcscReader, list_readers, read_document
from hardware.smartcard.sod import Outcome
from hardware.smartcard.specimen import SPECIMEN_FACE, SPECIMEN_TD1, SPECIMEN_TD3, issue_passport
from hardware.smartcard.virtual_card import DEFAULT_ATR
from tests.conftest import PCSCD_GROUP
from tests.hardware.smartcard.conftest import WAIT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.xdist_group(PCSCD_GROUP),  # one pcscd, one worker
]

INFO = parse_mrz(SPECIMEN_TD3).information


def test_readers_are_found_by_part_of_their_name(slots):
    first, second = slots
    names = list_readers()
    assert {first.reader, second.reader} <= set(names)
    with PcscReader(second.reader[-12:].lower()) as reader:
        assert reader.resolve() == second.reader
    with PcscReader(None) as reader:
        assert reader.resolve() == names[0]
    with PcscReader("no such reader") as reader, pytest.raises(ReaderNotFound) as caught:
        reader.resolve()
    assert first.reader in str(caught.value)


def test_insertion_and_removal_events(slots):
    first, second = slots
    with PcscReader(first.reader) as reader, PcscReader(second.reader) as other:
        assert reader.next_event(0) is None  # empty, and nothing happens in no time
        assert other.next_event(0) is None
        first.insert(issue_passport(), wait=False)
        event = reader.next_event(WAIT)
        assert event is not None
        assert (event.kind, event.reader, event.atr) == ("inserted", first.reader, DEFAULT_ATR)
        assert reader.wait_for_card(WAIT) == DEFAULT_ATR
        first.remove()
        event = reader.next_event(WAIT)
        assert event is not None
        assert (event.kind, event.atr) == ("removed", b"")
        reader.wait_for_removal(WAIT)
        assert other.next_event(0) is None  # the other slot saw nothing
        with pytest.raises(NoCard, match="no card on"):
            reader.wait_for_card(0.2)


def test_a_card_already_there_is_reported_inserted_first(slots):
    first, _ = slots
    first.insert(issue_passport())
    with PcscReader(first.reader) as reader:
        event = reader.next_event(0)
        assert event is not None and event.kind == "inserted"
        assert reader.next_event(0) is None


def test_atr_and_uid(slots):
    first, second = slots
    first.insert(issue_passport(uid=bytes.fromhex("04A1B2C3D4E5F6")))
    second.insert(issue_passport(answer_uid=False))
    with PcscReader(first.reader) as reader:
        assert reader.read_uid() == bytes.fromhex("04A1B2C3D4E5F6")
        with reader.connect() as card:
            assert card.atr == DEFAULT_ATR
    with PcscReader(second.reader) as reader, pytest.raises(CardStatusError) as caught:
        reader.read_uid()
    assert caught.value.sw == 0x6D00
    assert "gave no UID" in str(caught.value)


def test_a_passport_and_an_id_card_read_end_to_end(slots, pki, no_personal_data_in_logs):
    first, second = slots
    first.insert(issue_passport(SPECIMEN_TD3, pki=pki, dg2=True))
    second.insert(issue_passport(SPECIMEN_TD1, pki=pki))
    document = read_document(first.reader, INFO, read_dg2=True, csca=[pki.csca])
    assert document.mrz.document_number == "L898902C3"
    assert document.mrz.secondary_identifier == "ANNA MARIA"
    assert document.face == ("jpeg", SPECIMEN_FACE)
    assert document.checks.passive_authentication.outcome is Outcome.PASSED
    assert "L898902C" not in repr(document)
    card = read_document(second.reader, "D23145890734,340712,950712", csca=[pki.csca])
    assert (card.mrz.format, card.mrz.document_number) == ("TD1", "D23145890734")
    assert card.checks.passive_authentication.outcome is Outcome.PASSED


def test_a_wrong_mrz_is_refused_then_the_right_one_reads(slots, no_personal_data_in_logs):
    first, _ = slots
    first.insert(issue_passport())
    with PcscReader(first.reader) as reader:
        with pytest.raises(AccessDenied) as caught:
            reader.read_document("L898902C3,740812,120416")
        assert str(caught.value) == WRONG_MRZ
        assert reader.read_document(INFO).mrz.document_number == "L898902C3"


@pytest.mark.parametrize(
    ("ins", "after"),
    [
        (INS_EXTERNAL_AUTHENTICATE, 0),  # during BAC
        (INS_READ_BINARY, 1),  # in the middle of EF.COM
        (INS_READ_BINARY, 12),  # in the middle of DG2
    ],
    ids=["during-BAC", "in-EF.COM", "in-DG2"],
)
def test_a_card_pulled_mid_read_is_a_clear_error_and_the_next_card_reads(slots, pki, ins, after):
    first, _ = slots
    card = issue_passport(pki=pki, dg2=True)
    card.hang_up(ins, after)
    vcard = first.insert(card)
    with PcscReader(first.reader) as reader:
        with pytest.raises(CardRemoved, match="taken away"):
            reader.read_document(INFO, read_dg2=True)
        assert vcard.hung_up.is_set()
        reader.wait_for_removal(WAIT)
        first.remove()
        first.insert(issue_passport(pki=pki, dg2=True))
        document = reader.read_document(INFO, read_dg2=True, csca=[pki.csca])
        assert document.checks.passive_authentication.outcome is Outcome.PASSED


@pytest.mark.parametrize(
    ("ins", "sw", "error", "text"),
    [
        (INS_SELECT, 0x6A82, FileNotFound, "no ICAO eMRTD application"),
        (INS_GET_CHALLENGE, 0x6E00, CardStatusError, "GET CHALLENGE: .* 6E00"),
        (INS_EXTERNAL_AUTHENTICATE, 0x6300, AccessDenied, "Basic Access Control refused"),
        (INS_READ_BINARY, 0x6982, SecurityNotSatisfied, "READ BINARY EF.COM at 0: .* 6982"),
        (INS_READ_BINARY, 0x6F00, CardStatusError, "6F00 .no precise diagnosis"),
    ],
    ids=["SELECT-6A82", "GET-CHALLENGE-6E00", "EXT-AUTH-6300", "READ-6982", "READ-6F00"],
)
def test_unexpected_status_words(slots, ins, sw, error, text):
    first, _ = slots
    card = issue_passport()
    first.insert(card)
    card.status_next(sw, ins)
    with PcscReader(first.reader) as reader:
        with pytest.raises(error, match=text):
            reader.read_document(INFO)
        assert reader.read_document(INFO).mrz.document_number == "L898902C3"


def test_a_corrupted_mac_ends_the_read(slots, no_personal_data_in_logs):
    first, _ = slots
    card = issue_passport()
    first.insert(card)
    card.corrupt_mac_next(INS_READ_BINARY)
    with PcscReader(first.reader) as reader:
        with pytest.raises(SecureMessagingError, match="MAC does not match"):
            reader.read_document(INFO)
        assert reader.read_document(INFO).checks.secure_messaging is Outcome.PASSED


def test_reader_unplugged_pcscd_stopped_and_back(pcscd, slots, pki):
    """The reader goes away with pcscd: every call says so at once; when pcscd is back (the
    card, still on the reader, reconnects by itself), the same PcscReader works again."""
    if not pcscd.owned:
        pytest.skip("the tests use a pcscd they did not start, so they cannot stop it")
    first, _ = slots
    first.insert(issue_passport(pki=pki))
    reader = PcscReader(first.reader)
    try:
        assert reader.read_document(INFO).mrz.document_number == "L898902C3"
        assert reader.next_event(0) is not None  # the card, reported once
        pcscd.stop()
        for call in (
            lambda: reader.read_document(INFO),
            lambda: reader.wait_for_card(WAIT),
            lambda: reader.next_event(WAIT),
            reader.read_uid,
            list_readers,
        ):
            with pytest.raises(ReaderUnavailable, match="pcscd"):
                call()
        pcscd.start()
        first.wait_present()
        document = reader.read_document(INFO, csca=[pki.csca])
        assert document.checks.passive_authentication.outcome is Outcome.PASSED
        event = reader.next_event(WAIT)  # a new pcscd: the card is news again
        assert event is not None and event.kind == "inserted"

        # pcscd stopping while a call waits on it ends the wait with the same error.
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                reader.wait_for_removal(WAIT)
            except BaseException as error:
                outcome.append(error)

        waiter = threading.Thread(target=wait)
        waiter.start()
        pcscd.stop()
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], ReaderUnavailable)
    finally:
        reader.close()
        if pcscd.process is None:
            pcscd.start()
            first.wait_present()
