"""Reading an eMRTD: our reader against our virtual card in-process (no pcscd), with faults."""

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.smartcard.apdu import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    INS_READ_BINARY,
    INS_SELECT,
    ResponseApdu,
)
from hardware.smartcard.emrtd import WRONG_MRZ, read_emrtd
from hardware.smartcard.errors import (
    AccessDenied,
    CardStatusError,
    DocumentError,
    FileNotFound,
    SecureMessagingError,
    SecureMessagingRejected,
    SecurityNotSatisfied,
    SmartcardError,
)
from hardware.smartcard.lds import build_dg1, build_dg2, data_group_fid
from hardware.smartcard.mrz import MrzInformation, parse_mrz
from hardware.smartcard.sod import Outcome
from hardware.smartcard.specimen import SPECIMEN_FACE, SPECIMEN_TD1, SPECIMEN_TD3, issue_passport
from tests.conftest import PCSCD_GROUP

pytestmark = pytest.mark.xdist_group(PCSCD_GROUP)  # one pcscd, one worker

INFO = parse_mrz(SPECIMEN_TD3).information


def test_a_passport_is_read_and_passes_passive_authentication(pki, no_personal_data_in_logs):
    card = issue_passport(SPECIMEN_TD3, pki=pki, dg2=True)
    document = read_emrtd(card.process, INFO, read_dg2=True, csca=[pki.csca])
    mrz = document.mrz
    assert (mrz.document_number, mrz.primary_identifier, mrz.secondary_identifier) == (
        "L898902C3",
        "ERIKSSON",
        "ANNA MARIA",
    )
    assert (mrz.nationality, mrz.birth_date, mrz.sex, mrz.expiry_date) == (
        "UTO",
        "740812",
        "F",
        "120415",
    )
    assert document.com.data_groups == (1, 2)
    assert document.face == ("jpeg", SPECIMEN_FACE)
    checks = document.checks
    assert (checks.bac, checks.secure_messaging) == (Outcome.PASSED, Outcome.PASSED)
    assert checks.passive_authentication.outcome is Outcome.PASSED
    assert not checks.failed
    for shown in (repr(document), str(document.as_dict())):
        assert "L898902C" not in shown
        assert "ERIKSSON" not in shown
    assert document.as_dict(reveal=True)["document_number"] == "L898902C3"
    assert document.identity()["birth_date"] == "740812"


def test_an_id_card_with_a_long_document_number(pki):
    card = issue_passport(SPECIMEN_TD1, pki=pki)
    document = read_emrtd(card.process, MrzInformation.parse("D23145890734,340712,950712"))
    assert document.mrz.format == "TD1"
    assert document.mrz.document_number == "D23145890734"
    assert document.checks.passive_authentication.outcome is Outcome.NOT_CONFIGURED
    assert document.dg2 is None


def test_a_wrong_mrz_is_refused_with_a_clear_message(no_personal_data_in_logs):
    card = issue_passport(SPECIMEN_TD3)
    wrong = MrzInformation("L898902C3", "740812", "120416")
    with pytest.raises(AccessDenied) as caught:
        read_emrtd(card.process, wrong)
    assert str(caught.value) == WRONG_MRZ
    assert not card.authenticated
    # The card is not harmed: the right MRZ reads it.
    assert read_emrtd(card.process, INFO).mrz.document_number == "L898902C3"


@pytest.mark.parametrize(
    ("ins", "sw", "error", "text"),
    [
        (INS_SELECT, 0x6A82, FileNotFound, "no ICAO eMRTD application"),
        (INS_GET_CHALLENGE, 0x6D00, CardStatusError, "GET CHALLENGE: the card answered 6D00"),
        (INS_EXTERNAL_AUTHENTICATE, 0x6982, AccessDenied, "Basic Access Control refused"),
        (INS_EXTERNAL_AUTHENTICATE, 0x6A80, CardStatusError, "EXTERNAL AUTHENTICATE"),
    ],
)
def test_unexpected_status_words_before_bac(ins, sw, error, text):
    card = issue_passport(SPECIMEN_TD3)
    card.status_next(sw, ins)
    with pytest.raises(error, match=text):
        read_emrtd(card.process, INFO)


@pytest.mark.parametrize(
    ("skip", "sw", "error", "text"),
    [
        (1, 0x6A82, FileNotFound, "SELECT EF.COM: the card answered 6A82 .file or application"),
        (2, 0x6982, SecurityNotSatisfied, "READ BINARY EF.COM at 0: .* 6982 .security status"),
        (3, 0x6F00, CardStatusError, "READ BINARY EF.COM at 4: .* 6F00 .no precise diagnosis"),
        (4, 0x6A82, FileNotFound, "SELECT EF.DG1"),
        (5, 0x6988, SecureMessagingRejected, "rejected secure messaging, 6988"),
        (6, 0x6B00, CardStatusError, "READ BINARY EF.DG1 at 4"),
        (7, 0x6581, CardStatusError, "memory failure"),
    ],
)
def test_unexpected_status_words_under_secure_messaging(skip, sw, error, text, monkeypatch):
    """The card answers its skip-th protected command with sw (protected, as a chip does).

    The protected commands: SELECT EF.COM, READ 4, READ 18, SELECT EF.DG1, READ 4, READ 89,
    SELECT EF.SOD.
    """
    card = issue_passport(SPECIMEN_TD3)
    count = 0
    original = card._dispatch

    def dispatch(command, *, secured):
        nonlocal count
        if secured:
            count += 1
            if count == skip:
                return ResponseApdu(b"", sw)
        return original(command, secured=secured)

    monkeypatch.setattr(card, "_dispatch", dispatch)
    with pytest.raises(error, match=text):
        read_emrtd(card.process, INFO)


def test_a_corrupted_response_mac_ends_the_read(no_personal_data_in_logs):
    card = issue_passport(SPECIMEN_TD3)
    card.corrupt_mac_next(INS_READ_BINARY)
    with pytest.raises(SecureMessagingError, match="response MAC does not match"):
        read_emrtd(card.process, INFO)


def test_no_sod_fails_passive_authentication(pki):
    card = issue_passport(SPECIMEN_TD3)
    document = read_emrtd(card.process, INFO, csca=[pki.csca])
    assert document.checks.passive_authentication.outcome is Outcome.FAILED
    assert document.checks.passive_authentication.reason == "the document has no EF.SOD"
    assert document.checks.failed
    skipped = read_emrtd(card.process, INFO, passive_authentication=False)
    assert skipped.checks.passive_authentication.outcome is Outcome.NOT_PERFORMED


def test_a_sod_over_other_data_fails_passive_authentication(pki):
    other = {1: build_dg1(SPECIMEN_TD3.replace("ANNA", "ANNE"))}
    card = issue_passport(SPECIMEN_TD3, pki=pki, sod_groups=other)
    result = read_emrtd(card.process, INFO, csca=[pki.csca]).checks.passive_authentication
    assert (result.outcome, result.reason) == (Outcome.FAILED, "DG1's hash differs from EF.SOD's")


def test_an_invalid_mrz_in_dg1_is_a_document_error():
    bad = SPECIMEN_TD3[:-1] + "1"  # wrong composite check digit
    card = issue_passport(SPECIMEN_TD3, extra_files={data_group_fid(1): build_dg1(bad)})
    with pytest.raises(DocumentError, match=r"the MRZ in EF\.DG1 is not valid: the composite"):
        read_emrtd(card.process, INFO)


def test_a_file_beyond_read_binary_reach_is_a_document_error():
    card = issue_passport(SPECIMEN_TD3, dg2=build_dg2(bytes(40000)))
    with pytest.raises(DocumentError, match="more than READ BINARY"):
        read_emrtd(card.process, INFO, read_dg2=True)


@pytest.mark.parametrize("chunk", [1, 8, 100, 231])
def test_any_chunk_size_reads_the_same(chunk, pki):
    card = issue_passport(SPECIMEN_TD3, pki=pki, dg2=True)
    document = read_emrtd(card.process, INFO, read_dg2=True, csca=[pki.csca], chunk=chunk)
    assert document.checks.passive_authentication.outcome is Outcome.PASSED
    assert document.face == ("jpeg", SPECIMEN_FACE)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_hostile_card_raises_only_smartcard_errors(data):
    """Each answer of a good card, sometimes damaged (bits flipped, cut, replaced by noise):
    the reader raises only its own errors (or reads through), never a crash."""
    card = issue_passport(SPECIMEN_TD3)

    def transmit(command: bytes) -> bytes:
        response = card.process(command)
        action = data.draw(st.sampled_from(["keep"] * 6 + ["flip", "cut", "noise"]))
        if action == "flip" and response:
            damaged = bytearray(response)
            damaged[data.draw(st.integers(0, len(damaged) - 1))] ^= 1 << data.draw(
                st.integers(0, 7)
            )
            return bytes(damaged)
        if action == "cut":
            return response[: data.draw(st.integers(0, len(response)))]
        if action == "noise":
            return data.draw(st.binary(max_size=64))
        return response

    with contextlib.suppress(SmartcardError):
        read_emrtd(transmit, INFO)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_the_virtual_card_answers_anything(raw):
    card = issue_passport(SPECIMEN_TD3)
    response = card.process(raw)
    assert len(response) >= 2
