"""Resident ID numbers (GB 11643): normal form, the ISO 7064 MOD 11-2 check, masking."""

from __future__ import annotations

import re
import unicodedata

DIGITS = frozenset("0123456789")
CHECK_CHARACTERS = DIGITS | {"X"}
# ISO 7064 MOD 11-2 weights of the first 17 characters: 2**(17 - i) mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# What an ID number looks like inside free text, once normalised: 17 digits and a check
# character, or the 15 digits of a first-generation card.
_NUMBER_IN_TEXT = re.compile(r"(?<!\d)(\d{17}[\dX]|\d{15})(?![\dX])")


def normalise_id_number(id_number: str) -> str:
    """One form for every way a number is written: NFKC (full-width digits), no spaces, upper."""
    return "".join(unicodedata.normalize("NFKC", id_number).split()).upper()


def id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character (0-9 or X) of a resident ID number's 17 digits."""
    if len(first17) != 17 or not set(first17) <= DIGITS:
        raise ValueError("need the 17 digits before the check character")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def is_valid_id_number(number: str) -> bool:
    """An 18-character resident ID number with a right check character (an upper-case X)."""
    if len(number) != 18 or not set(number[:17]) <= DIGITS:
        return False
    return number[17] == id_check_character(number[:17])


def with_check_character(first17: str) -> str:
    """A whole resident ID number: its 17 digits and the check character they call for."""
    return first17 + id_check_character(first17)


def checked_id_number(id_number: str) -> str:
    """The normal form of a resident ID number, or a ValueError that says why and never repeats it.

    Full-width digits, spaces and a lower-case x are how people write a number, not another
    number: they are normalised first. A passport number is no resident ID number.
    """
    number = normalise_id_number(id_number)
    if len(number) != 18:
        raise ValueError(
            f"is not a resident ID number: it has {len(number)} characters besides spaces, not 18"
        )
    if not set(number[:17]) <= DIGITS or number[17] not in CHECK_CHARACTERS:
        raise ValueError("is not a resident ID number: only digits belong in it, and a last X")
    if not is_valid_id_number(number):
        raise ValueError("is not a resident ID number: its check character is wrong (mistyped?)")
    return number


def mask_id_number(number: str) -> str:
    """The number for a screen: "110101199003071234" -> "1101**********1234".

    The first 4 and last 4 characters are shown, every other one is a "*"; a string of 8
    characters or fewer is all stars (showing 4 + 4 of it would show all of it).
    """
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def holds_id_number(text: str) -> bool:
    """Whether free text holds something written like an ID number, however it is written.

    Spaced, hyphenated or in full-width digits: such text is refused where no number may be kept.
    """
    flat = re.sub(r"[\s\-_.·/]", "", unicodedata.normalize("NFKC", text)).upper()
    return _NUMBER_IN_TEXT.search(flat) is not None
