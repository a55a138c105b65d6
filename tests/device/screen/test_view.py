"""The screen's texts: the voice prompts' words in both languages, masked holder, test, reading."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from device.pipeline import REPEAT_REASON, SHOW_ID_REASON, Event
from device.screen.view import ScreenStatus, decision_view
from shared.healthcode import NucleicTest, TestResult
from shared.policy import Decision, Outcome
from shared.verification import CredentialKind

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
STATUS = ScreenStatus("Library", "Asia/Shanghai", True, True, False, NOW)
SAMPLED = datetime(2022, 5, 1, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai, 10.5 hours before NOW


def event(outcome: Outcome, *reasons: str, **details: object) -> Event:
    return Event("sam", CredentialKind.ID_CARD, Decision(outcome, reasons), "c_1", **details)


def test_a_pass_with_its_masked_holder_test_and_temperature() -> None:
    test = NucleicTest(SAMPLED, TestResult.NEGATIVE)
    view = decision_view(
        event(Outcome.PASS, holder="1101**********1234", temperature_c=36.44, test=test), STATUS
    )
    assert view == {
        "outcome": "pass",
        "headline": {"zh": "通过", "en": "Pass"},
        "reason": {"zh": "绿码，请通行", "en": "Green code, please enter."},
        "holder": "1101**********1234",
        "test": {
            "zh": "05-01 09:30 采样 · 阴性 · 10 小时前",
            "en": "sampled 05-01 09:30 · negative · 10 h ago",
        },
        "temperature": "36.4 °C",
        "staff": None,
        "checkin_id": None,  # a referral's only, for staff to settle it
    }


def test_without_a_time_zone_the_sample_time_is_the_kiosks_local_time() -> None:
    view = decision_view(
        event(Outcome.PASS, test=NucleicTest(SAMPLED, TestResult.NEGATIVE)),
        replace(STATUS, timezone=None),
    )
    assert view is not None
    local = SAMPLED.astimezone()
    assert view["test"]["zh"].startswith(f"{local:%m-%d %H:%M} 采样")  # type: ignore[index]


def test_a_reason_is_told_as_the_voice_tells_it_and_a_fever_with_its_reading() -> None:
    denied = decision_view(event(Outcome.DENY, "colour-not-accepted: red"), STATUS)
    assert denied is not None
    assert denied["reason"] == {"zh": "红码，请勿通行", "en": "Red code, please do not enter."}
    fever = decision_view(event(Outcome.DENY, "fever: 38.2", temperature_c=38.2), STATUS)
    assert fever is not None
    assert fever["reason"] == {
        "zh": "体温38.2度，请复测",
        "en": "Temperature 38.2 degrees, please measure again.",
    }
    assert fever["temperature"] == "38.2 °C"
    referred = decision_view(event(Outcome.REFER, "cannot-record: disk full"), STATUS)
    assert referred is not None
    assert referred["reason"]["en"] == "Please wait, staff will check for you."  # type: ignore[index]


def test_only_a_masked_number_is_ever_shown() -> None:
    view = decision_view(event(Outcome.PASS, holder="11010519491231002X"), STATUS)
    assert view is not None
    assert view["holder"] == "1101**********002X"


def test_a_positive_test_is_not_shown_to_the_queue() -> None:
    test = NucleicTest(SAMPLED, TestResult.POSITIVE)
    view = decision_view(event(Outcome.DENY, "test-positive: positive", test=test), STATUS)
    assert view is not None
    assert view["test"] is None
    assert view["reason"]["en"] == "Check failed, please do not enter."  # type: ignore[index]
    assert "positive" not in str(view) and "阳性" not in str(view)


@pytest.mark.parametrize(
    "reasons", [(REPEAT_REASON,), ("not-a-credential: ordinary text",), ("venue-code: v_1",)]
)
def test_a_scan_that_tells_the_person_nothing_is_not_shown(reasons: tuple[str, ...]) -> None:
    assert decision_view(event(Outcome.IGNORED, *reasons), STATUS) is None


def test_a_paper_code_asks_for_the_id_card() -> None:
    view = decision_view(event(Outcome.IGNORED, SHOW_ID_REASON), STATUS)
    assert view is not None
    assert (view["outcome"], view["reason"]) == (
        "ignored",
        {"zh": "请出示身份证", "en": "Please show your ID card."},
    )


def test_a_status_compares_without_its_time() -> None:
    assert replace(STATUS, now=datetime.now(UTC)) == STATUS
    assert replace(STATUS, online=False) != STATUS
    assert STATUS.as_json()["now_ms"] == int(NOW.timestamp() * 1000)
