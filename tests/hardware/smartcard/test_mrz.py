"""MRZ parsing (TD1, TD2, TD3), check digits, MRZ information, masking, and property tests."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.smartcard.mrz import (
    MrzError,
    MrzFields,
    MrzInformation,
    build_td1,
    build_td2,
    build_td3,
    check_digit,
    mask_document_number,
    parse_mrz,
)
from hardware.smartcard.specimen import SPECIMEN_TD1, SPECIMEN_TD3

# Doc 9303 Part 5's TD1 specimen (a 9-character document number).
TD1_SHORT = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
# Doc 9303 Part 11, Appendix D.2: TD2 with a 12-character number, and with a 9-character one.
TD2_LONG = "I<UTOSTEVENSON<<PETER<JOHN<<<<<<<<<<\nD23145890<UTO3407127M95071227349<<<8"
TD2_SHORT = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL898902C<3UTO6908061F9406236<<<<<<<2"


@pytest.mark.parametrize(
    ("text", "digit"),
    [
        ("L898902C<", "3"),  # Part 11, D.2
        ("690806", "1"),
        ("940623", "6"),
        ("D23145890734", "9"),  # Part 11, D.2, the long TD1 number
        ("340712", "7"),
        ("950712", "2"),
        ("520727", "3"),  # Part 3, 4.9
        ("<<<<<<<<<", "0"),
    ],
)
def test_check_digits_of_the_icao_examples(text, digit):
    assert check_digit(text) == digit


def test_td3_specimen_passport():
    mrz = parse_mrz(SPECIMEN_TD3)
    assert mrz.format == "TD3"
    assert mrz.document_code == "P"
    assert mrz.issuing_state == "UTO"
    assert mrz.document_number == "L898902C3"
    assert mrz.primary_identifier == "ERIKSSON"
    assert mrz.secondary_identifier == "ANNA MARIA"
    assert mrz.nationality == "UTO"
    assert mrz.birth_date == "740812"
    assert mrz.birth is not None and mrz.birth.isoformat() == "1974-08-12"
    assert mrz.sex == "F"
    assert mrz.expiry_date == "120415"
    assert mrz.expiry is not None and mrz.expiry.isoformat() == "2012-04-15"
    assert mrz.optional_data == "ZE184226B"
    assert mrz.information.key_input() == "L898902C3674081221204159"


def test_td1_with_a_document_number_overflowing_into_the_optional_data():
    """Part 5: "<" in the check-digit place, the rest of the number and its digit after."""
    mrz = parse_mrz(SPECIMEN_TD1)
    assert mrz.format == "TD1"
    assert mrz.document_number == "D23145890734"
    assert mrz.optional_data == ""
    assert (mrz.primary_identifier, mrz.secondary_identifier) == ("STEVENSON", "PETER JOHN")
    assert (mrz.birth_date, mrz.sex, mrz.expiry_date) == ("340712", "M", "950712")
    # Part 11, D.2: the whole number and its check digit go into the MRZ information.
    assert mrz.information.key_input() == "D23145890734934071279507122"


def test_td1_without_overflow():
    mrz = parse_mrz(TD1_SHORT)
    assert mrz.document_number == "D23145890"
    assert (mrz.primary_identifier, mrz.secondary_identifier) == ("ERIKSSON", "ANNA MARIA")
    assert mrz.information.key_input() == "D23145890774081221204159"


def test_td2_long_and_short_numbers():
    long = parse_mrz(TD2_LONG)
    assert long.format == "TD2"
    assert long.document_number == "D23145890734"
    assert long.information.key_input() == "D23145890734934071279507122"
    short = parse_mrz(TD2_SHORT)
    assert short.document_number == "L898902C"
    # The worked example of Part 11, D.2.
    assert short.information.key_input() == "L898902C<369080619406236"


def test_one_line_lower_case_and_surrounding_blanks_are_accepted():
    joined = " " + SPECIMEN_TD3.replace("\n", "").lower() + "\n"
    assert parse_mrz(joined) == parse_mrz(SPECIMEN_TD3)


@pytest.mark.parametrize(
    ("position", "field"),
    [
        (44 + 9, "document number"),
        (44 + 19, "birth date"),
        (44 + 27, "expiry date"),
        (44 + 42, "optional data"),
        (44 + 43, "composite"),
    ],
)
def test_a_wrong_check_digit_is_named_in_the_error(position, field):
    text = SPECIMEN_TD3.replace("\n", "")
    wrong = str((int(text[position]) + 1) % 10)
    with pytest.raises(MrzError, match=f"the {field} check digit is wrong") as caught:
        parse_mrz(text[:position] + wrong + text[position + 1 :])
    assert "L898902C" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "3 lines of 30"),
        ("P<UTO", "3 lines of 30"),
        (SPECIMEN_TD3 + "\n" + "<" * 44, "3 lines of 30"),
        (SPECIMEN_TD3.replace("ERIKSSON", "ERIKSS0N!"), "3 lines of 30"),
        (SPECIMEN_TD3.replace("ERIKSSON", "ERIKSSO-"), "only A-Z, 0-9 and <"),
        (SPECIMEN_TD3.replace("7408122F", "7413122F"), "no such month"),
        (SPECIMEN_TD3.replace("2F12", "2Q12"), "sex"),
        (SPECIMEN_TD1.replace("D23145890<7349", "D23145890<<<<<"), "check digit is missing"),
    ],
)
def test_malformed_mrz_errors(text, message):
    with pytest.raises(MrzError, match=message):
        parse_mrz(text)


def test_mrz_information_typed_by_an_operator():
    expected = "L898902C<369080619406236"
    assert MrzInformation.parse("L898902C<,690806,940623").key_input() == expected
    assert MrzInformation.parse("l898902c, 1969-08-06, 1994-06-23").key_input() == expected
    assert MrzInformation.parse(TD2_SHORT).key_input() == expected
    for bad in ("L898902C<,690806", "L898902C<,6908,940623", ",690806,940623", "A-1,690806,1"):
        with pytest.raises(MrzError):
            MrzInformation.parse(bad)


def test_reprs_and_screens_mask_the_number_and_the_names():
    mrz = parse_mrz(SPECIMEN_TD3)
    for text in (repr(mrz), repr(mrz.information), str(mrz.masked())):
        assert "L898902C" not in text
        assert "ERIKSSON" not in text
        assert "740812" not in text
    assert mrz.masked()["document_number"] == "L8*****C3"
    assert mrz.masked()["surname"] == "E*******"
    assert mask_document_number("AB123") == "*****"
    assert mrz.revealed()["document_number"] == "L898902C3"


# --- property tests --------------------------------------------------------------------------

MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"


@settings(max_examples=400)
@given(st.text())
def test_any_text_raises_nothing_but_mrz_error(text):
    with contextlib.suppress(MrzError):
        parse_mrz(text)


@st.composite
def mrz_shaped(draw):
    """Text of MRZ characters in the right shapes, often with the right check digits."""
    shape = draw(st.sampled_from([(30, 30, 30), (36, 36), (44, 44)]))
    lines = [draw(st.text(MRZ_CHARS, min_size=n, max_size=n)) for n in shape]
    return "\n".join(lines)


@settings(max_examples=400)
@given(mrz_shaped())
def test_mrz_shaped_text_raises_nothing_but_mrz_error(text):
    try:
        mrz = parse_mrz(text)
    except MrzError:
        return
    assert mrz.information.key_input()


@settings(max_examples=300)
@given(st.text(), st.text(), st.text())
def test_any_operator_entry_raises_nothing_but_mrz_error(number, birth, expiry):
    with contextlib.suppress(MrzError):
        MrzInformation.parse(f"{number},{birth},{expiry}")


def _date():
    return st.builds(
        lambda y, m, d: f"{y:02d}{m:02d}{d:02d}",
        st.integers(0, 99),
        st.integers(1, 12),
        st.integers(1, 28),
    )


_NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)


@st.composite
def fields(draw, max_number):
    return MrzFields(
        document_number=draw(st.text(MRZ_CHARS[:-1], min_size=1, max_size=max_number)),
        birth_date=draw(_date()),
        expiry_date=draw(_date()),
        primary_identifier=draw(_NAME),
        secondary_identifier=" ".join(draw(st.lists(_NAME, max_size=2))),
        sex=draw(st.sampled_from("MFX<")),
        document_code=draw(st.sampled_from(["P", "I", "ID", "AC"])),
    )


@settings(max_examples=200)
@given(fields(9), st.sampled_from([build_td1, build_td2, build_td3]))
def test_written_mrz_parses_back_to_its_fields(values, build):
    mrz = parse_mrz(build(values))
    assert mrz.document_number == values.document_number
    assert (mrz.birth_date, mrz.expiry_date, mrz.sex) == (
        values.birth_date,
        values.expiry_date,
        values.sex,
    )
    assert mrz.primary_identifier == values.primary_identifier
    assert mrz.secondary_identifier == values.secondary_identifier
    assert mrz.document_code == values.document_code


@settings(max_examples=200)
@given(fields(14), st.sampled_from([build_td1, build_td2]))
def test_long_document_numbers_overflow_and_parse_back(values, build):
    if build is build_td2 and len(values.document_number) > 14:
        return
    mrz = parse_mrz(build(values))
    assert mrz.document_number == values.document_number
    assert mrz.information.key_input().startswith(values.document_number.ljust(9, "<"))
