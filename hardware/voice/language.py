"""The languages the kiosk speaks and the espeak-ng voice for each."""

from enum import StrEnum


class Language(StrEnum):
    MANDARIN = "cmn"
    ENGLISH = "en"


# The plain "cmn" voice reads Latin letters as English, so pinyin (and the pinyin it makes of
# Chinese characters) comes out spelled: "lv four ma three". See hardware.voice.prompts.
VOICES = {Language.MANDARIN: "cmn-latn-pinyin", Language.ENGLISH: "en-us"}
