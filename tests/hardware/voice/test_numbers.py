import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.voice.language import Language
from hardware.voice.numbers import decimal_words, integer_words

MANDARIN, ENGLISH = Language.MANDARIN, Language.ENGLISH

# Independent readers of the words, to check the writers against.
PINYIN_DIGITS = {
    "yi1": 1, "yi4": 1, "er4": 2, "liang3": 2, "san1": 3, "si4": 4,
    "wu3": 5, "liu4": 6, "qi1": 7, "ba1": 8, "jiu3": 9,
}  # fmt: skip
ENGLISH_ONES = {
    word: value
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
ENGLISH_TENS = {
    word: 10 * value
    for value, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2
    )
}


def read_mandarin(words):
    total, digit = 0, None
    for word in words.split():
        if word == "bai3":
            total, digit = total + 100 * digit, None
        elif word == "shi2":
            total, digit = total + 10 * (1 if digit is None else digit), None
        elif word == "ling2":
            assert digit is None
        else:
            assert digit is None, f"two digits in a row in {words!r}"
            digit = PINYIN_DIGITS[word]
    return total + (digit or 0)


def read_english(words):
    total = 0
    for word in words.replace("-", " ").split():
        if word == "hundred":
            total *= 100
        else:
            total += ENGLISH_TENS.get(word, ENGLISH_ONES.get(word))
    return total


@pytest.mark.parametrize(
    ("number", "mandarin", "english"),
    [
        (0, "ling2", "zero"),
        (7, "qi1", "seven"),
        (10, "shi2", "ten"),
        (12, "shi2 er4", "twelve"),
        (20, "er4 shi2", "twenty"),
        (37, "san1 shi2 qi1", "thirty-seven"),
        (100, "yi4 bai3", "one hundred"),
        (105, "yi4 bai3 ling2 wu3", "one hundred five"),
        (110, "yi4 bai3 yi1 shi2", "one hundred ten"),
        (200, "liang3 bai3", "two hundred"),
        (999, "jiu3 bai3 jiu3 shi2 jiu3", "nine hundred ninety-nine"),
    ],
)
def test_integers(number, mandarin, english):
    assert integer_words(number, MANDARIN) == mandarin
    assert integer_words(number, ENGLISH) == english


def test_every_integer_reads_back():
    for number in range(1000):
        mandarin, english = integer_words(number, MANDARIN), integer_words(number, ENGLISH)
        assert read_mandarin(mandarin) == number, mandarin
        assert read_english(english) == number, english
        assert all(re.fullmatch(r"[a-zü]+[1-5]", word) for word in mandarin.split()), mandarin
        assert re.fullmatch(r"[a-z]+(-[a-z]+)?( [a-z]+(-[a-z]+)?)*", english), english
        # 零 only stands for zero itself or a gap after hundreds; 两 and yi4 only before 百.
        assert "ling2" not in mandarin.split()[1:] or re.search(r"bai3 ling2 \S+$", mandarin)
        assert re.sub(r"(liang3|yi4) bai3", "", mandarin).count("liang3") == 0
        assert "yi4" not in re.sub(r"yi4 bai3", "", mandarin)


@pytest.mark.parametrize(("value", "mandarin", "english"), [
    (37.8, "san1 shi2 qi1 dian3 ba1", "thirty-seven point eight"),
    (36.0, "san1 shi2 liu4 dian3 ling2", "thirty-six point zero"),
    (0.5, "ling2 dian3 wu3", "zero point five"),
    (38.04, "san1 shi2 ba1 dian3 ling2", "thirty-eight point zero"),
])  # fmt: skip
def test_decimals(value, mandarin, english):
    assert decimal_words(value, MANDARIN) == mandarin
    assert decimal_words(value, ENGLISH) == english


@given(st.floats(min_value=0, max_value=999.94, allow_nan=False))
def test_decimals_read_back_as_the_rules_round(value):
    tenths = round(value * 10)  # as shared.policy.Facts turns a temperature into tenths
    whole, _, tenth = decimal_words(value, MANDARIN).partition(" dian3 ")
    assert 10 * read_mandarin(whole) + read_mandarin(tenth) == tenths
    whole, _, tenth = decimal_words(value, ENGLISH).partition(" point ")
    assert 10 * read_english(whole) + read_english(tenth) == tenths


@given(st.sampled_from(list(Language)), st.integers().filter(lambda n: not 0 <= n <= 999))
def test_integers_outside_the_range_are_refused(language, number):
    with pytest.raises(ValueError, match="outside"):
        integer_words(number, language)


@pytest.mark.parametrize("value", [-0.1, 999.95, 1000.0, 1e9])
def test_decimals_outside_the_range_are_refused(value):
    with pytest.raises(ValueError, match="outside"):
        decimal_words(value, ENGLISH)
