# Chinese text is written with Chinese punctuation: the full-width comma is meant.

import re
import subprocess

import pytest

from device.pipeline import REPEAT_REASON, SHOW_ID_REASON
from device.staff import ACTION_REASONS
from hardware.voice.language import Language
from hardware.voice.prompts import OUTCOMES, fixed_prompts, prompt_for
from shared.messages import StaffAction
from shared.policy import Outcome, VenueCategory
from shared.rules.defaults import default_ruleset

LANGUAGES = list(Language)
DEFAULT_RULES_ALL = [rule for category in VenueCategory for rule in default_ruleset(category).rules]
DEFAULT_RULES = {rule.reason: rule for rule in DEFAULT_RULES_ALL}
# Reasons made outside the rule sets that have a prompt of their own, and their outcome.
OTHER_REASONS = {
    "expired": Outcome.DENY,
    "bad-signature": Outcome.DENY,
    "wrong-key-usage": Outcome.DENY,
    "unreadable": Outcome.REFER,
    SHOW_ID_REASON.partition(":")[0]: Outcome.IGNORED,
    ACTION_REASONS[StaffAction.LET_THROUGH]: Outcome.PASS,
    ACTION_REASONS[StaffAction.REFUSE]: Outcome.DENY,
}
DEFAULT_REASONS = sorted({(rule.reason, rule.on_fail.value) for rule in DEFAULT_RULES_ALL})
HAN = re.compile(r"[\u4e00-\u9fff]")


def failure(code):
    """A reason as shared.policy records it, from the default rule set where it is one."""
    rule = DEFAULT_RULES.get(code)
    return rule.failure({"payload": {"colour": "red"}}) if rule else f"{code}: some detail"


def every_mandarin_prompt():
    return [
        *fixed_prompts(Language.MANDARIN),
        prompt_for("deny", ["fever: x"], 37.8, Language.MANDARIN),
    ]


def test_the_outcomes_are_the_policy_outcomes():
    assert set(OUTCOMES) == {outcome.value for outcome in Outcome}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("code", "on_fail"), DEFAULT_REASONS)
def test_every_reason_of_the_default_rules_has_its_own_prompt(code, on_fail, language):
    prompt = prompt_for(Outcome(on_fail), [failure(code)], None, language)
    assert prompt is not None
    assert prompt.key.partition("/")[0] == code, f"{code} falls back to {prompt.key}"
    assert prompt.text.strip()
    assert prompt.language is language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("code", "outcome"), sorted(OTHER_REASONS.items()))
def test_verification_and_pipeline_reasons_have_prompts(code, outcome, language):
    prompt = prompt_for(outcome, [f"{code}: detail"], None, language)
    assert prompt is not None
    assert prompt.key == code


@pytest.mark.parametrize(
    ("language", "text", "written"),
    [
        (Language.MANDARIN, "lü4 ma3, qing3 tong1 xing2", "绿码，请通行"),
        (Language.ENGLISH, "Green code, please enter.", "Green code, please enter."),
    ],
)
def test_a_pass(language, text, written):
    prompt = prompt_for(Outcome.PASS, ["ok"], 36.5, language)
    assert (prompt.key, prompt.text, prompt.written) == ("pass", text, written)
    assert prompt.voice == {"cmn": "cmn-latn-pinyin", "en": "en-us"}[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_reasons_fall_back_to_the_outcome(language):
    for outcome in (Outcome.DENY, Outcome.REFER):
        reasons = ["something-new: added after this table", "clock-untrusted: cannot check"]
        assert prompt_for(outcome, reasons, None, language).key == outcome.value
        assert prompt_for(outcome, [], None, language).key == outcome.value


@pytest.mark.parametrize("language", LANGUAGES)
def test_ignored_says_nothing_unless_it_asks_for_something(language):
    assert prompt_for(Outcome.IGNORED, [REPEAT_REASON], None, language) is None
    assert prompt_for(Outcome.IGNORED, ["not-a-credential: ordinary text"], None, language) is None
    assert prompt_for(Outcome.IGNORED, [], None, language) is None
    asks = prompt_for(Outcome.IGNORED, [SHOW_ID_REASON], None, language)
    assert asks.written in {"请出示身份证", "Please show your ID card."}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_prompt_is_only_used_for_the_outcome_it_suits(language):
    # "do not enter" is never said when staff are asked to decide, whatever the policy did.
    assert prompt_for(Outcome.REFER, [failure("test-too-old")], None, language).key == "refer"
    # A denial is spoken before the referrals that came with it, whatever their order.
    reasons = [failure("paper-code-needs-id"), failure("no-test")]
    assert prompt_for(Outcome.DENY, reasons, None, language).key == "no-test"


@pytest.mark.parametrize(
    ("shown", "key", "english"),
    [
        ("red", "colour-not-accepted/red", "Red code, please do not enter."),
        ("yellow", "colour-not-accepted/yellow", "Yellow code, please do not enter."),
        ("blue", "colour-not-accepted", "Not a green code, please do not enter."),
    ],
)
def test_the_colour_shown_is_said(shown, key, english):
    reason = DEFAULT_RULES["colour-not-accepted"].failure({"payload": {"colour": shown}})
    prompt = prompt_for(Outcome.DENY, [reason], None, Language.ENGLISH)
    assert (prompt.key, prompt.text) == (key, english)
    assert prompt_for(Outcome.DENY, [reason], None, Language.MANDARIN).key == key


def test_fever_speaks_the_temperature():
    reasons = [failure("fever")]
    mandarin = prompt_for(Outcome.DENY, reasons, 37.8, Language.MANDARIN)
    assert mandarin.text == "ti3 wen1 san1 shi2 qi1 dian3 ba1 du4, qing3 fu4 ce4"
    assert mandarin.written == "体温37.8度，请复测"
    english = prompt_for(Outcome.DENY, reasons, 38.04, Language.ENGLISH)
    assert english.text == "Temperature thirty-eight point zero degrees, please measure again."
    assert english.written == "Temperature 38.0 degrees, please measure again."  # the screen's
    assert english.key == mandarin.key == "fever"  # logs never carry the temperature
    # No reading, or one no thermometer makes: the fever without a number.
    assert prompt_for(Outcome.DENY, reasons, None, Language.MANDARIN).text == (
        "ti3 wen1 yi4 chang2, qing3 fu4 ce4"
    )
    assert prompt_for(Outcome.DENY, reasons, 1234.5, Language.ENGLISH).text == (
        "Temperature too high, please measure again."
    )


def test_the_queue_does_not_hear_private_results():
    for code in ("test-positive", "deny-listed"):
        prompt = prompt_for(Outcome.DENY, [failure(code)], None, Language.ENGLISH)
        assert prompt.text == "Check failed, please do not enter."


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome"):
        prompt_for("maybe", [], None, Language.ENGLISH)


def test_fixed_prompts_are_each_said_once():
    for language in LANGUAGES:
        texts = [prompt.text for prompt in fixed_prompts(language)]
        assert len(texts) == len(set(texts)) > 10


@pytest.mark.parametrize("prompt", fixed_prompts(Language.MANDARIN), ids=lambda p: p.key)
def test_mandarin_pinyin_matches_its_characters(prompt):
    syllables = prompt.text.replace(",", " ").split()
    assert all(re.fullmatch(r"[a-zü]+[1-5]", syllable) for syllable in syllables), prompt.text
    assert len(syllables) == len(HAN.findall(prompt.written)), prompt.written


def test_english_prompts_spell_their_numbers():
    for prompt in fixed_prompts(Language.ENGLISH):
        assert prompt.text.isascii()
        assert not re.search(r"\d", prompt.text)


def phonemes(espeak, voice, text):
    done = subprocess.run(
        [espeak, "-v", voice, "-q", "-x", text],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("prompt", every_mandarin_prompt(), ids=lambda prompt: prompt.key)
def test_espeak_reads_each_mandarin_prompt_as_mandarin(espeak, prompt):
    said = phonemes(espeak, prompt.voice, prompt.text)
    assert "(en)" not in said  # no switch to English: every syllable was read as pinyin
    # One tone contour per syllable: a misspelt syllable is read as letters, with none or more.
    assert len(re.findall(r"\d+", said)) == len(prompt.text.replace(",", " ").split()), said


def test_the_plain_cmn_voice_would_spell_the_pinyin_in_english(espeak):
    assert "(en)" in phonemes(espeak, "cmn", "lü4 ma3, qing3 tong1 xing2")
    assert "(en)" in phonemes(espeak, "cmn", "绿码，请通行")
