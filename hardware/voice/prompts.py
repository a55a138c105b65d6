"""What the kiosk says for a decision: one short prompt per outcome and reason, per language.

How the Mandarin is written, found by rendering with espeak-ng 1.51 (Debian bookworm) and
reading its phonemes (`espeak-ng -q -x`) and the WAV's duration and RMS:

- The plain `cmn` voice reads Latin letters as English, and it turns Chinese characters into
  tone-numbered pinyin first: 绿码，请通行 is spoken as English letters and numbers ("lv four
  ma three ...": `-x` shows it switching to `(en)`); 2.47 s of audio where the Mandarin of
  the voice below takes 2.07 s (both at espeak-ng's default 175 words a minute).
- The `cmn-latn-pinyin` voice reads both characters and tone-numbered pinyin as Mandarin:
  绿码，请通行 and "lü4 ma3, qing3 tong1 xing2" give byte-identical WAVs. Characters go
  through its dictionary, though: a polyphone gets one reading whatever the word (请重新扫码
  comes out zhong4 xin1, not chong2 xin1), a decimal point is dropped (体温37.8度 is read
  三十七 八 度, no 点), and 不 keeps tone 4 before another (不是 as bu4 shi4).

So the Mandarin prompts are tone-numbered pinyin for the cmn-latn-pinyin voice, with the
characters beside them for people (screens, reviews, tests). Tone 5 is the neutral tone, ü is
written "ü" ("v" works too; "u:" does not). Third tones are written as in the dictionary,
since espeak-ng applies third-tone sandhi itself (ni3 hao3 is said ni2 hao3); the tone
changes of 一 and 不 are written as spoken (yi2 ci4, bu2 shi4), since it does not.

Choosing a prompt: the first reason whose code has a prompt meant for this outcome is spoken
(a prompt that says "do not enter" is never used for a referral to staff, whatever a venue's
policy makes of that reason), and failing that the outcome's generic prompt: a pass says
"green code, please enter" unless staff let the person through. An ignored scan says
nothing, except when it asks the person for something (show the ID card that goes with a
paper code). Prompts never say what the queue behind should not hear: a positive test or a
deny-list entry is a plain "check failed". The fever prompt speaks the temperature.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hardware.voice.language import VOICES, Language
from hardware.voice.numbers import decimal_words

# The values of shared.policy.Outcome (a StrEnum, so its members can be passed as they are).
PASS, DENY, REFER, IGNORED = "pass", "deny", "refer", "ignored"
OUTCOMES = (PASS, DENY, REFER, IGNORED)


@dataclass(frozen=True)
class Phrase:
    """One thing to say: Mandarin as pinyin (spoken) and characters (written), and English."""

    pinyin: str
    hanzi: str
    english: str


@dataclass(frozen=True)
class Prompt:
    """A phrase in one language, ready to render.

    key names the phrase (an outcome, a reason code, or code/shown) for logs: never the
    temperature or anything else about the person. text is what espeak-ng reads; written is
    how people read it.
    """

    key: str
    language: Language
    text: str
    written: str

    @property
    def voice(self) -> str:
        return VOICES[self.language]


_GENERIC = {
    PASS: Phrase("lü4 ma3, qing3 tong1 xing2", "绿码，请通行", "Green code, please enter."),
    DENY: Phrase(
        "he2 yan4 wei4 tong1 guo4, qing3 wu4 tong1 xing2",
        "核验未通过，请勿通行",
        "Check failed, please do not enter.",
    ),
    REFER: Phrase(
        "qing3 shao1 hou4, gong1 zuo4 ren2 yuan2 jiang1 wei4 nin2 he2 yan4",
        "请稍候，工作人员将为您核验",
        "Please wait, staff will check for you.",
    ),
}
_INVALID_CODE = Phrase(
    "wu2 xiao4 er4 wei2 ma3, qing3 wu4 tong1 xing2",
    "无效二维码，请勿通行",
    "Invalid code, please do not enter.",
)
_FEVER = Phrase(
    "ti3 wen1 {pinyin} du4, qing3 fu4 ce4",
    "体温{digits}度，请复测",
    "Temperature {english} degrees, please measure again.",
)
_ONLY_DENY = frozenset({DENY})
_ONLY_REFER = frozenset({REFER})

# A reason code (or code/shown, for a rule that shows a value) -> the outcomes its prompt
# suits, and the prompt.
_REASONS: dict[str, tuple[frozenset[str], Phrase]] = {
    # shared/rules/defaults.py
    "colour-not-accepted": (
        _ONLY_DENY,
        Phrase(
            "fei1 lü4 ma3, qing3 wu4 tong1 xing2",
            "非绿码，请勿通行",
            "Not a green code, please do not enter.",
        ),
    ),
    "colour-not-accepted/red": (
        _ONLY_DENY,
        Phrase(
            "hong2 ma3, qing3 wu4 tong1 xing2", "红码，请勿通行", "Red code, please do not enter."
        ),
    ),
    "colour-not-accepted/yellow": (
        _ONLY_DENY,
        Phrase(
            "huang2 ma3, qing3 wu4 tong1 xing2",
            "黄码，请勿通行",
            "Yellow code, please do not enter.",
        ),
    ),
    "paper-code-needs-id": (
        _ONLY_REFER,
        Phrase(
            "qing3 xiang4 gong1 zuo4 ren2 yuan2 chu1 shi4 shen1 fen4 zheng4",
            "请向工作人员出示身份证",
            "Please show your ID card to staff.",
        ),
    ),
    "paper-code-id-mismatch": (
        _ONLY_DENY,
        Phrase(
            "shen1 fen4 zheng4 yu3 ma3 bu4 fu2, qing3 wu4 tong1 xing2",
            "身份证与码不符，请勿通行",
            "The ID card does not match the code, please do not enter.",
        ),
    ),
    "deny-list-stale": (_ONLY_REFER, _GENERIC[REFER]),
    "paper-code-offline": (_ONLY_REFER, _GENERIC[REFER]),
    "no-test": (
        _ONLY_DENY,
        Phrase(
            "wu2 he2 suan1 jian3 ce4 ji4 lu4, qing3 wu4 tong1 xing2",
            "无核酸检测记录，请勿通行",
            "No test on record, please do not enter.",
        ),
    ),
    "test-positive": (_ONLY_DENY, _GENERIC[DENY]),
    "test-too-old": (
        _ONLY_DENY,
        Phrase(
            "he2 suan1 jian3 ce4 yi3 guo4 qi1, qing3 wu4 tong1 xing2",
            "核酸检测已过期，请勿通行",
            "Test too old, please do not enter.",
        ),
    ),
    "vaccination-incomplete": (
        _ONLY_DENY,
        Phrase(
            "yi4 miao2 jie1 zhong4 wei4 wan2 cheng2, qing3 wu4 tong1 xing2",
            "疫苗接种未完成，请勿通行",
            "Vaccination not complete, please do not enter.",
        ),
    ),
    "recovery-not-valid": (
        _ONLY_DENY,
        Phrase(
            "kang1 fu4 zheng4 ming2 yi3 shi1 xiao4, qing3 wu4 tong1 xing2",
            "康复证明已失效，请勿通行",
            "Recovery certificate not valid, please do not enter.",
        ),
    ),
    "deny-listed": (_ONLY_DENY, _GENERIC[DENY]),
    # Without a temperature to speak; with one, _FEVER.
    "fever": (
        frozenset({DENY, REFER}),
        Phrase(
            "ti3 wen1 yi4 chang2, qing3 fu4 ce4",
            "体温异常，请复测",
            "Temperature too high, please measure again.",
        ),
    ),
    "no-temperature": (
        _ONLY_REFER,
        Phrase("qing3 ce4 liang2 ti3 wen1", "请测量体温", "Please have your temperature taken."),
    ),
    "id-card-offline": (_ONLY_REFER, _GENERIC[REFER]),
    "id-card-unknown": (
        _ONLY_REFER,
        Phrase(
            "wei4 cha2 dao4 jian4 kang1 xin4 xi1, qing3 shao1 hou4",
            "未查到健康信息，请稍候",
            "No health record found, please wait for staff.",
        ),
    ),
    "id-card-not-valid": (
        _ONLY_REFER,
        Phrase(
            "shen1 fen4 zheng4 bu2 zai4 you3 xiao4 qi1 nei4, qing3 shao1 hou4",
            "身份证不在有效期内，请稍候",
            "This ID card is out of date, please wait for staff.",
        ),
    ),
    # shared/verification.py
    "expired": (
        _ONLY_DENY,
        Phrase(
            "er4 wei2 ma3 yi3 guo4 qi1, qing3 shua1 xin1 hou4 chong2 shi4",
            "二维码已过期，请刷新后重试",
            "Code expired, please refresh it and scan again.",
        ),
    ),
    "bad-signature": (_ONLY_DENY, _INVALID_CODE),
    "wrong-key-usage": (_ONLY_DENY, _INVALID_CODE),
    "unreadable": (
        _ONLY_REFER,
        Phrase(
            "wu2 fa3 shi2 bie2, qing3 shao1 hou4",
            "无法识别，请稍候",
            "Code not readable, please wait for staff.",
        ),
    ),
    # device/pipeline.py: the host revoked this kiosk; it decides nothing until re-enrolled.
    "out-of-service": (
        _ONLY_REFER,
        Phrase(
            "ben3 she4 bei4 zan4 ting2 fu2 wu4, qing3 lian2 xi4 gong1 zuo4 ren2 yuan2",
            "本设备暂停服务，请联系工作人员",
            "This kiosk is out of service, please ask staff.",
        ),
    ),
    # device/pipeline.py: a paper code waits for its holder's ID card.
    "paper-code-show-id": (
        frozenset({IGNORED}),
        Phrase("qing3 chu1 shi4 shen1 fen4 zheng4", "请出示身份证", "Please show your ID card."),
    ),
    # device/staff.py: staff settled a referral at the kiosk.
    "staff-let-through": (
        frozenset({PASS}),
        Phrase(
            "gong1 zuo4 ren2 yuan2 yi3 he2 yan4, qing3 tong1 xing2",
            "工作人员已核验，请通行",
            "Checked by staff, please enter.",
        ),
    ),
    "staff-refused": (
        _ONLY_DENY,
        Phrase(
            "jing1 gong1 zuo4 ren2 yuan2 he2 yan4, qing3 wu4 tong1 xing2",
            "经工作人员核验，请勿通行",
            "Checked by staff, please do not enter.",
        ),
    ),
}


def _prompt(key: str, phrase: Phrase, language: Language) -> Prompt:
    if language is Language.MANDARIN:
        return Prompt(key, language, phrase.pinyin, phrase.hanzi)
    return Prompt(key, language, phrase.english, phrase.english)


def _fever(temperature_c: float, language: Language) -> Prompt:
    try:
        words = decimal_words(temperature_c, language)
    except ValueError:  # no thermometer reads this: say the fever without the number
        return _prompt("fever", _REASONS["fever"][1], language)
    digits = f"{round(temperature_c * 10) / 10:.1f}"
    phrase = Phrase(
        _FEVER.pinyin.format(pinyin=words),
        _FEVER.hanzi.format(digits=digits),
        _FEVER.english.format(english=words),
    )
    prompt = _prompt("fever", phrase, language)
    if language is Language.ENGLISH:  # spoken in words, written in digits (as the Chinese is)
        return replace(prompt, written=_FEVER.english.format(english=digits))
    return prompt


def prompt_for(
    outcome: str, reasons: Sequence[str], temperature_c: float | None, language: Language
) -> Prompt | None:
    """What to say for a decision ("code: detail" reasons, in order), or None for nothing."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    outcome = str(outcome)  # an Outcome member is a str; its key in logs is its value
    for reason in reasons:
        code, _, detail = (part.strip() for part in reason.partition(":"))
        shown = detail.partition(";")[0].strip()
        for key in (f"{code}/{shown}", code):
            entry = _REASONS.get(key)
            if entry is not None and outcome in entry[0]:
                if code == "fever" and temperature_c is not None:
                    return _fever(temperature_c, language)
                return _prompt(key, entry[1], language)
    generic = _GENERIC.get(outcome)
    return None if generic is None else _prompt(outcome, generic, language)


def fixed_prompts(language: Language) -> list[Prompt]:
    """Every prompt that does not depend on a reading, once each: what to render at start."""
    prompts = [_prompt(outcome, phrase, language) for outcome, phrase in _GENERIC.items()]
    prompts += [_prompt(key, phrase, language) for key, (_, phrase) in _REASONS.items()]
    unique: dict[str, Prompt] = {}
    for prompt in prompts:
        unique.setdefault(prompt.text, prompt)
    return list(unique.values())
