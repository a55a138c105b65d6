"""Machine readable zones (ICAO 9303 Parts 3-6): TD1, TD2, TD3 parsing, check digits, MRZ info.

parse_mrz(text) reads a whole MRZ (two lines of 44, two of 36 or three of 30 characters) and
checks every check digit: document number, birth date, expiry date, optional data (TD3) and
the composite one. A document number longer than 9 characters (TD1 and TD2) overflows into
the optional data as Part 5 says: the check-digit position holds "<", and the rest of the
number follows at the start of the optional data, then its check digit, then "<".

MrzInformation is what Basic Access Control needs (document number, birth date, expiry
date): from a parsed MRZ, or typed by an operator as "DOCNO,YYMMDD,YYMMDD". build_td1/td2/td3
write an MRZ from fields (used by the virtual card and the tests).

Everything that is not a valid MRZ raises MrzError (a ValueError), whose messages never carry
the document number or a name. Reprs mask the document number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

MrzFormat = Literal["TD1", "TD2", "TD3"]

_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
_WEIGHTS = (7, 3, 1)
_LINE_LENGTHS: dict[tuple[int, ...], MrzFormat] = {
    (30, 30, 30): "TD1",
    (36, 36): "TD2",
    (44, 44): "TD3",
}
_SINGLE_LINE: dict[int, tuple[int, ...]] = {90: (30, 30, 30), 72: (36, 36), 88: (44, 44)}
_SEXES = frozenset("MFX<")
# The longest document number TD1 can carry: 9 characters, then 15 of optional data holding
# the rest, its check digit and at least the closing "<"... less the check digit itself.
MAX_DOCUMENT_NUMBER = 22


class MrzError(ValueError):
    """Not a valid MRZ or MRZ information; the message says which field, never its content."""


def _value(char: str) -> int:
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == "<":
        return 0
    raise MrzError("a character that an MRZ cannot hold")


def check_digit(text: str) -> str:
    """The 7-3-1 check digit (Doc 9303 Part 3, 4.9) of MRZ characters: "L898902C<" -> "3"."""
    total = sum(_value(char) * _WEIGHTS[i % 3] for i, char in enumerate(text))
    return str(total % 10)


def mask_document_number(number: str) -> str:
    """The number for a screen or a repr: "L898902C3" -> "L8*****C3"; 6 or fewer: all stars."""
    number = number.replace("<", "")
    if len(number) <= 6:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 4) + number[-2:]


def _mask_name(name: str) -> str:
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split(" "))


def _check(text: str, digit: str, what: str, *, filler_allowed: bool = False) -> None:
    if filler_allowed and digit == "<" and set(text) <= {"<"}:
        return
    if not digit.isdigit():
        raise MrzError(f"the {what} check digit is not a digit")
    if check_digit(text) != digit:
        raise MrzError(f"the {what} check digit is wrong")


def _check_date(text: str, what: str) -> None:
    # A date is YYMMDD; Part 3 lets an unknown month or day be filled with "<".
    if len(text) != 6 or not re.fullmatch(r"[0-9]{2}([0-9]{2}|<<)([0-9]{2}|<<)", text):
        raise MrzError(f"the {what} is not a YYMMDD date")
    month, day = text[2:4], text[4:6]
    if month != "<<" and not 1 <= int(month) <= 12:
        raise MrzError(f"the {what} has no such month")
    if day != "<<" and not 1 <= int(day) <= 31:
        raise MrzError(f"the {what} has no such day")


def _names(field_text: str) -> tuple[str, str]:
    primary, _, secondary = field_text.partition("<<")
    return (
        primary.replace("<", " ").strip(),
        re.sub(" +", " ", secondary.replace("<", " ")).strip(),
    )


def _split_lines(text: str) -> list[str]:
    if not isinstance(text, str):
        raise MrzError("an MRZ is text")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) in _SINGLE_LINE:
        single = lines[0]
        lines, start = [], 0
        for length in _SINGLE_LINE[len(single)]:
            lines.append(single[start : start + length])
            start += length
    # Lower case is taken as upper case (typed or OCR'd), but only in ASCII: "ß".upper() is "SS".
    return [line.upper() if line.isascii() else line for line in lines]


def _document_number(number_field: str, digit: str, optional: str) -> tuple[str, str, str]:
    """(document number, its check digit, optional data left) with the TD1/TD2 overflow."""
    if digit != "<":
        return number_field.rstrip("<"), digit, optional
    # Overflow (Part 5, note j): the number goes on in the optional data, then its check
    # digit, then "<".
    overflow, filler, rest = optional.partition("<")
    if len(overflow) < 2 or not filler:
        raise MrzError("the document number check digit is missing")
    if "<" in number_field:
        raise MrzError("an overflowing document number has fillers in its first 9 characters")
    return number_field + overflow[:-1], overflow[-1], rest


@dataclass(frozen=True)
class MrzInformation:
    """What Basic Access Control derives its keys from: document number, birth and expiry.

    Dates are YYMMDD as in the MRZ. `key_input()` is the MRZ_information of Doc 9303 Part 11
    (9.7.1.1 / Appendix D.2): each field followed by its check digit, a number shorter than 9
    padded with "<" to 9, a longer one whole.
    """

    document_number: str = field(repr=False)
    birth_date: str = field(repr=False)
    expiry_date: str = field(repr=False)

    def __post_init__(self) -> None:
        number = self.document_number
        if not 1 <= len(number.rstrip("<")) <= MAX_DOCUMENT_NUMBER:
            raise MrzError(f"a document number has 1 to {MAX_DOCUMENT_NUMBER} characters")
        if not set(number) <= _ALPHABET:
            raise MrzError("a document number holds only A-Z, 0-9 and <")
        _check_date(self.birth_date, "birth date")
        _check_date(self.expiry_date, "expiry date")

    def __repr__(self) -> str:
        return f"MrzInformation(document_number={mask_document_number(self.document_number)!r})"

    @classmethod
    def parse(cls, text: str) -> MrzInformation:
        """From operator entry "DOCNO,BIRTH,EXPIRY" (dates YYMMDD or YYYY-MM-DD) or a whole MRZ."""
        if not isinstance(text, str):
            raise MrzError("MRZ information is text")
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 3:
            return parse_mrz(text).information
        number, birth, expiry = parts
        return cls(number.upper().replace(" ", ""), _yymmdd(birth), _yymmdd(expiry))

    def key_input(self) -> str:
        """The MRZ_information string hashed into Kseed: "L898902C<369080619406236"."""
        number = self.document_number.rstrip("<")
        number = number.ljust(9, "<")
        return (
            number
            + check_digit(number)
            + self.birth_date
            + check_digit(self.birth_date)
            + self.expiry_date
            + check_digit(self.expiry_date)
        )


def _yymmdd(text: str) -> str:
    match = re.fullmatch(r"(?:[0-9]{2})?([0-9]{2})-?([0-9]{2})-?([0-9]{2})", text)
    if match is None:
        raise MrzError("a date is YYMMDD or YYYY-MM-DD")
    return "".join(match.groups())


@dataclass(frozen=True)
class Mrz:
    """A parsed MRZ; every check digit was right. Dates are YYMMDD as printed.

    `optional_data` is TD3's personal number, TD2's optional data or TD1's optional data 1
    (less an overflowing document number); `optional_data_2` is TD1's second one.
    """

    format: MrzFormat
    document_code: str
    issuing_state: str
    document_number: str = field(repr=False)
    primary_identifier: str = field(repr=False)
    secondary_identifier: str = field(repr=False)
    nationality: str
    birth_date: str = field(repr=False)
    sex: str
    expiry_date: str
    optional_data: str = field(repr=False)
    optional_data_2: str = field(repr=False, default="")
    lines: tuple[str, ...] = field(repr=False, default=())

    def __repr__(self) -> str:
        return (
            f"Mrz(format={self.format!r}, document_code={self.document_code!r}, "
            f"issuing_state={self.issuing_state!r}, "
            f"document_number={mask_document_number(self.document_number)!r}, "
            f"nationality={self.nationality!r}, expiry_date={self.expiry_date!r})"
        )

    @property
    def information(self) -> MrzInformation:
        """The MRZ information for Basic Access Control."""
        return MrzInformation(self.document_number, self.birth_date, self.expiry_date)

    @property
    def birth(self) -> date | None:
        """The birth date, a century chosen so it is not in the future; None when unknown."""
        return _as_date(self.birth_date, past=True)

    @property
    def expiry(self) -> date | None:
        """The expiry date (20YY, or 19YY for a year more than 50 years ahead); None if unknown."""
        return _as_date(self.expiry_date, past=False)

    @property
    def text(self) -> str:
        """The MRZ lines, joined by newlines."""
        return "\n".join(self.lines)

    def masked(self) -> dict[str, str]:
        """The fields for a screen: number masked, names as initials, birth year only."""
        return {
            "format": self.format,
            "document_code": self.document_code,
            "issuing_state": self.issuing_state,
            "document_number": mask_document_number(self.document_number),
            "surname": _mask_name(self.primary_identifier),
            "given_names": _mask_name(self.secondary_identifier),
            "nationality": self.nationality,
            "birth_date": self.birth_date[:2] + "****",
            "sex": self.sex,
            "expiry_date": self.expiry_date,
        }

    def revealed(self) -> dict[str, str]:
        """Every field in clear (for sealing, or --reveal)."""
        fields = self.masked()
        fields.update(
            document_number=self.document_number,
            surname=self.primary_identifier,
            given_names=self.secondary_identifier,
            birth_date=self.birth_date,
            optional_data=self.optional_data,
        )
        if self.format == "TD1":
            fields["optional_data_2"] = self.optional_data_2
        return fields


def _as_date(text: str, *, past: bool) -> date | None:
    if not text.isdigit():
        return None
    yy, month, day = int(text[:2]), int(text[2:4]), int(text[4:6])
    today = date.today()
    if past:
        year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    else:
        year = 2000 + yy if 2000 + yy <= today.year + 50 else 1900 + yy
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_mrz(text: str) -> Mrz:
    """Parse and check a TD1, TD2 or TD3 MRZ; raises MrzError, and only that."""
    lines = _split_lines(text)
    shape = tuple(len(line) for line in lines)
    fmt = _LINE_LENGTHS.get(shape)
    if fmt is None:
        raise MrzError(
            "an MRZ has 3 lines of 30 (TD1), 2 of 36 (TD2) or 2 of 44 characters (TD3), "
            f"not {len(lines)} line(s) of {'/'.join(str(n) for n in shape) or 0}"
        )
    for line in lines:
        if not set(line) <= _ALPHABET:
            raise MrzError("an MRZ holds only A-Z, 0-9 and <")
    if fmt == "TD1":
        return _parse_td1(lines)
    return _parse_two_lines(lines, fmt)


def _common(doc_code: str, sex: str, birth: str, expiry: str) -> None:
    if doc_code[0] == "<":
        raise MrzError("the document code is missing")
    if sex not in _SEXES:
        raise MrzError("the sex is not M, F, X or <")
    _check_date(birth, "birth date")
    _check_date(expiry, "expiry date")


def _parse_td1(lines: list[str]) -> Mrz:
    one, two, three = lines
    doc_code, state = one[0:2], one[2:5]
    number, number_digit, optional = _document_number(one[5:14], one[14], one[15:30])
    birth, sex, expiry, nationality = two[0:6], two[7], two[8:14], two[15:18]
    _common(doc_code, sex, birth, expiry)
    _check(number, number_digit, "document number")
    _check(birth, two[6], "birth date")
    _check(expiry, two[14], "expiry date")
    _check(one[5:30] + two[0:7] + two[8:15] + two[18:29], two[29], "composite")
    primary, secondary = _names(three)
    return Mrz(
        format="TD1",
        document_code=doc_code.rstrip("<"),
        issuing_state=state.rstrip("<"),
        document_number=number,
        primary_identifier=primary,
        secondary_identifier=secondary,
        nationality=nationality.rstrip("<"),
        birth_date=birth,
        sex=sex,
        expiry_date=expiry,
        optional_data=optional.strip("<"),
        optional_data_2=two[18:29].strip("<"),
        lines=tuple(lines),
    )


def _parse_two_lines(lines: list[str], fmt: MrzFormat) -> Mrz:
    one, two = lines
    doc_code, state = one[0:2], one[2:5]
    birth, sex, expiry, nationality = two[13:19], two[20], two[21:27], two[10:13]
    _common(doc_code, sex, birth, expiry)
    if fmt == "TD3":
        number, number_digit, optional = two[0:9].rstrip("<"), two[9], two[28:42]
        _check(optional, two[42], "optional data", filler_allowed=True)
        composite_end = 43
    else:
        number, number_digit, optional = _document_number(two[0:9], two[9], two[28:35])
        composite_end = 35
    _check(number, number_digit, "document number")
    _check(birth, two[19], "birth date")
    _check(expiry, two[27], "expiry date")
    _check(two[0:10] + two[13:20] + two[21:composite_end], two[composite_end], "composite")
    primary, secondary = _names(one[5:])
    return Mrz(
        format=fmt,
        document_code=doc_code.rstrip("<"),
        issuing_state=state.rstrip("<"),
        document_number=number,
        primary_identifier=primary,
        secondary_identifier=secondary,
        nationality=nationality.rstrip("<"),
        birth_date=birth,
        sex=sex,
        expiry_date=expiry,
        optional_data=optional.strip("<"),
        lines=tuple(lines),
    )


# --- writing an MRZ ------------------------------------------------------------------------


def _field(text: str, width: int, what: str) -> str:
    text = text.upper().replace(" ", "<")
    if not set(text) <= _ALPHABET:
        raise MrzError(f"the {what} holds a character an MRZ cannot")
    if len(text) > width:
        raise MrzError(f"the {what} is longer than {width} characters")
    return text.ljust(width, "<")


def _name_field(primary: str, secondary: str, width: int) -> str:
    name = primary.strip().replace(" ", "<")
    if secondary.strip():
        name += "<<" + secondary.strip().replace(" ", "<")
    return _field(name[:width], width, "name")


def _number_and_overflow(number: str, optional: str, width: int) -> tuple[str, str]:
    """(number field with its check digit, optional data) for TD1/TD2, overflowing if long."""
    number = number.upper()
    if len(number) <= 9:
        padded = _field(number, 9, "document number")
        return padded + check_digit(padded), _field(optional, width, "optional data")
    overflow = number[9:] + check_digit(number) + "<"
    return number[:9] + "<", _field(overflow + optional, width, "optional data")


@dataclass(frozen=True)
class MrzFields:
    """The fields to write an MRZ from; dates YYMMDD."""

    document_number: str
    birth_date: str
    expiry_date: str
    primary_identifier: str
    secondary_identifier: str = ""
    issuing_state: str = "UTO"
    nationality: str = "UTO"
    sex: str = "<"
    document_code: str = "P"
    optional_data: str = ""
    optional_data_2: str = ""

    def __repr__(self) -> str:
        return f"MrzFields(document_number={mask_document_number(self.document_number)!r})"


def build_td3(fields: MrzFields) -> str:
    """A TD3 (passport) MRZ, two lines of 44 joined by a newline."""
    f = fields
    one = _field(f.document_code, 2, "document code") + _field(f.issuing_state, 3, "state")
    one += _name_field(f.primary_identifier, f.secondary_identifier, 39)
    if len(f.document_number) > 9:
        raise MrzError("a TD3 document number has at most 9 characters")
    number = _field(f.document_number, 9, "document number")
    optional = _field(f.optional_data, 14, "optional data")
    optional_digit = "<" if set(optional) == {"<"} else check_digit(optional)
    two = number + check_digit(number) + _field(f.nationality, 3, "nationality")
    two += f.birth_date + check_digit(f.birth_date) + _field(f.sex, 1, "sex")
    two += f.expiry_date + check_digit(f.expiry_date) + optional + optional_digit
    two += check_digit(two[0:10] + two[13:20] + two[21:43])
    return one + "\n" + two


def build_td2(fields: MrzFields) -> str:
    """A TD2 MRZ, two lines of 36 joined by a newline."""
    f = fields
    one = _field(f.document_code, 2, "document code") + _field(f.issuing_state, 3, "state")
    one += _name_field(f.primary_identifier, f.secondary_identifier, 31)
    number, optional = _number_and_overflow(f.document_number, f.optional_data, 7)
    two = number + _field(f.nationality, 3, "nationality")
    two += f.birth_date + check_digit(f.birth_date) + _field(f.sex, 1, "sex")
    two += f.expiry_date + check_digit(f.expiry_date) + optional
    two += check_digit(two[0:10] + two[13:20] + two[21:35])
    return one + "\n" + two


def build_td1(fields: MrzFields) -> str:
    """A TD1 (ID card) MRZ, three lines of 30 joined by newlines."""
    f = fields
    number, optional = _number_and_overflow(f.document_number, f.optional_data, 15)
    one = _field(f.document_code, 2, "document code") + _field(f.issuing_state, 3, "state")
    one += number + optional
    two = f.birth_date + check_digit(f.birth_date) + _field(f.sex, 1, "sex")
    two += f.expiry_date + check_digit(f.expiry_date) + _field(f.nationality, 3, "nationality")
    two += _field(f.optional_data_2, 11, "optional data 2")
    two += check_digit(one[5:30] + two[0:7] + two[8:15] + two[18:29])
    three = _name_field(f.primary_identifier, f.secondary_identifier, 30)
    return "\n".join((one, two, three))
