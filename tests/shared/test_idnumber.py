"""ID numbers: one normal form however written, the MOD 11-2 check, numbers found in free text."""

from hypothesis import given
from hypothesis import strategies as st

from shared.idnumber import (
    holds_id_number,
    id_check_character,
    is_valid_id_number,
    mask_id_number,
    normalise_id_number,
)

FULL_WIDTH = {ord(d): 0xFF10 + int(d) for d in "0123456789"} | {ord("X"): 0xFF38}
seventeen_digits = st.text("0123456789", min_size=17, max_size=17)


def valid(first17: str) -> str:
    return first17 + id_check_character(first17)


@given(seventeen_digits)
def test_full_width_and_spaced_numbers_are_the_same_number(first17: str):
    number = valid(first17)
    written = " ".join([number[:6], number[6:14], number[14:]]).translate(FULL_WIDTH)
    assert normalise_id_number(written) == number
    assert normalise_id_number(number.lower()) == number
    assert is_valid_id_number(normalise_id_number(written))


@given(seventeen_digits, st.sampled_from(["", " ", "-", " - ", ".", "\u3000"]))
def test_a_number_in_text_is_found_however_it_is_separated(first17: str, separator: str):
    number = valid(first17)
    groups = [number[:6], number[6:10], number[10:14], number[14:]]
    assert holds_id_number(f"reason: listed {separator.join(groups)} by order 7")
    assert holds_id_number(f"reason {separator.join(groups).translate(FULL_WIDTH)}")


@given(st.text("0123456789 -abc", max_size=14))
def test_short_runs_of_digits_are_not_numbers(text: str):
    assert not holds_id_number(text)


def test_case_numbers_and_dates_are_not_id_numbers():
    for text in ["case 2022-0417", "order 20220417-12", "outbreak 3, 14 contacts", "ward 12B"]:
        assert not holds_id_number(text), text


@given(seventeen_digits, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_a_changed_character_fails_the_check(first17: str, position: int, character: str):
    number = valid(first17)
    changed = number[:position] + character + number[position + 1 :]
    assert is_valid_id_number(changed) == (changed == number)


@given(seventeen_digits)
def test_a_masked_number_shows_its_ends_only(first17: str):
    masked = mask_id_number(valid(first17))
    assert masked[4:14] == "*" * 10 and masked[:4] == first17[:4]
