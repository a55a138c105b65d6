"""Numbers as words for the voice: integers 0-999 and one decimal, in Mandarin and English.

Mandarin comes out as tone-numbered pinyin (what the cmn-latn-pinyin voice reads, see
hardware.voice.prompts): 37.8 is "san1 shi2 qi1 dian3 ba1" (三十七点八). Tens from 10 to 19
drop the leading one (十二, not 一十二), 一 before 百 takes its sandhi tone (yi4 bai3), 200
is 两百, and a gap in the tens is read as 零 (105: 一百零五). Third-tone sandhi (liang3 bai3
-> liang2 bai3) is left to espeak-ng, which applies it to pinyin input itself.

English is American, for the en-us voice: 105 is "one hundred five", 37.8 "thirty-seven
point eight". The decimal is always spoken, so 37.0 is "thirty-seven point zero", as a
thermometer shows it.
"""

from hardware.voice.language import Language

LARGEST = 999

_PINYIN_DIGITS = ("ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1", "ba1", "jiu3")
# The digit before 百: 一 changes tone before a third tone, and two hundred is 两百.
_PINYIN_HUNDREDS = ("", "yi4", "liang3", *_PINYIN_DIGITS[3:])

_ENGLISH_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_ENGLISH_TENS = (
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)  # fmt: skip


def _mandarin_below_hundred(number: int, *, in_hundreds: bool) -> list[str]:
    tens, units = divmod(number, 10)
    if tens == 0:
        return [_PINYIN_DIGITS[units]]
    # 十二 on its own, but 一百一十二 after hundreds.
    words = [] if tens == 1 and not in_hundreds else [_PINYIN_DIGITS[tens]]
    words.append("shi2")
    if units:
        words.append(_PINYIN_DIGITS[units])
    return words


def _mandarin_integer(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    if not hundreds:
        return " ".join(_mandarin_below_hundred(rest, in_hundreds=False))
    words = [_PINYIN_HUNDREDS[hundreds], "bai3"]
    if 0 < rest < 10:
        words += ["ling2", _PINYIN_DIGITS[rest]]
    elif rest:
        words += _mandarin_below_hundred(rest, in_hundreds=True)
    return " ".join(words)


def _english_below_hundred(number: int) -> str:
    if number < 20:
        return _ENGLISH_ONES[number]
    tens, units = divmod(number, 10)
    return _ENGLISH_TENS[tens] + (f"-{_ENGLISH_ONES[units]}" if units else "")


def _english_integer(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    if not hundreds:
        return _english_below_hundred(rest)
    words = f"{_ENGLISH_ONES[hundreds]} hundred"
    return f"{words} {_english_below_hundred(rest)}" if rest else words


def integer_words(number: int, language: Language) -> str:
    """An integer from 0 to 999 as words; ValueError outside that range."""
    if not 0 <= number <= LARGEST:
        raise ValueError(f"{number} is outside 0-{LARGEST}")
    if language is Language.MANDARIN:
        return _mandarin_integer(number)
    return _english_integer(number)


def decimal_words(value: float, language: Language) -> str:
    """A number rounded to one decimal (as the rules round a temperature) as words."""
    tenths = round(value * 10)
    if not 0 <= tenths <= LARGEST * 10 + 9:
        raise ValueError(f"{value} is outside 0-{LARGEST}.9")
    whole, tenth = divmod(tenths, 10)
    if language is Language.MANDARIN:
        return f"{_mandarin_integer(whole)} dian3 {_PINYIN_DIGITS[tenth]}"
    return f"{_english_integer(whole)} point {_ENGLISH_ONES[tenth]}"
