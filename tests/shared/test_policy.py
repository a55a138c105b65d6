"""The decision function and its default policies, and `assess` from scanned text to decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import healthcode
from shared.healthcode import CodeKind, Colour, NucleicTest, TestResult
from shared.keys import SigningKey, TrustStore
from shared.policy import (
    Outcome,
    PaperCodeRule,
    Policy,
    VenueCategory,
    decide,
    default_policy,
)
from shared.verification import CredentialKind, assess

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PUBLIC = default_policy(VenueCategory.PUBLIC_PLACE)
RESIDENTIAL = default_policy(VenueCategory.RESIDENTIAL)


def code(
    colour: Colour = Colour.GREEN,
    test_hours: float | None = 10,
    result: TestResult = TestResult.NEGATIVE,
    kind: CodeKind = CodeKind.DYNAMIC,
) -> healthcode.HealthCode:
    test = None if test_hours is None else NucleicTest(NOW - timedelta(hours=test_hours), result)
    return healthcode.new_code(
        person_ref="p_x",
        kind=kind,
        colour=colour,
        test=test,
        now=NOW,
        id_number="110101199003071234" if kind is CodeKind.PAPER else None,
    )


def outcome(policy: Policy, item: healthcode.HealthCode, **kwargs: object) -> tuple[Outcome, str]:
    decision = decide(item, policy, now=NOW, clock_trusted=kwargs.pop("trusted", True), **kwargs)
    return decision.outcome, " ".join(decision.reasons)


def test_every_category_has_a_default_policy() -> None:
    for category in VenueCategory:
        policy = default_policy(category)
        assert policy.category is category
        assert policy.accept_colours == (Colour.GREEN,)
        assert policy.fever_celsius == 37.3


def test_public_place_wants_a_test_within_48_hours() -> None:
    assert outcome(PUBLIC, code(test_hours=10))[0] is Outcome.PASS
    assert outcome(PUBLIC, code(test_hours=47.9))[0] is Outcome.PASS
    result, reasons = outcome(PUBLIC, code(test_hours=60))
    assert result is Outcome.DENY
    assert "test-too-old" in reasons
    assert "60 h" in reasons


def test_residential_compound_wants_a_green_code_only() -> None:
    assert outcome(RESIDENTIAL, code(test_hours=60))[0] is Outcome.PASS
    assert outcome(RESIDENTIAL, code(test_hours=None))[0] is Outcome.PASS
    assert outcome(RESIDENTIAL, code(Colour.YELLOW))[0] is Outcome.DENY


@pytest.mark.parametrize("colour", [Colour.YELLOW, Colour.RED])
def test_colours_other_than_green_are_denied(colour: Colour) -> None:
    result, reasons = outcome(PUBLIC, code(colour))
    assert result is Outcome.DENY
    assert f"{colour.value} code" in reasons


def test_positive_or_missing_test_is_denied_where_tests_count() -> None:
    assert "test-positive" in outcome(PUBLIC, code(result=TestResult.POSITIVE))[1]
    assert "no-test" in outcome(PUBLIC, code(test_hours=None))[1]


@pytest.mark.parametrize(
    ("celsius", "expected"),
    [(36.6, Outcome.PASS), (37.2, Outcome.PASS), (37.3, Outcome.DENY), (38.5, Outcome.DENY)],
)
def test_fever_threshold_is_inclusive(celsius: float, expected: Outcome) -> None:
    result, reasons = outcome(PUBLIC, code(), temperature_c=celsius)
    assert result is expected
    if expected is Outcome.DENY:
        assert f"{celsius:.1f} °C" in reasons


def test_missing_temperature_is_referred_only_where_required() -> None:
    strict = PUBLIC.model_copy(update={"require_temperature": True})
    assert outcome(PUBLIC, code())[0] is Outcome.PASS
    assert outcome(strict, code()) == (
        Outcome.REFER,
        "no-temperature: the temperature could not be taken",
    )


def test_untrusted_clock_never_passes() -> None:
    result, reasons = outcome(RESIDENTIAL, code(), trusted=False)
    assert result is Outcome.REFER
    assert "clock-untrusted" in reasons
    assert outcome(PUBLIC, code(Colour.RED), trusted=False)[0] is Outcome.DENY


def test_paper_codes_go_to_staff_or_are_refused() -> None:
    paper = code(kind=CodeKind.PAPER)
    assert outcome(PUBLIC, paper) == (Outcome.REFER, "paper-code: staff check the holder's ID card")
    refuse = PUBLIC.model_copy(update={"paper_code": PaperCodeRule.DENY})
    assert outcome(refuse, paper)[0] is Outcome.DENY


def test_all_failed_rules_are_reported() -> None:
    _, reasons = outcome(PUBLIC, code(Colour.RED, test_hours=72), temperature_c=38.0)
    assert "colour-not-accepted" in reasons
    assert "test-too-old" in reasons
    assert "fever" in reasons


def test_policy_is_data_that_round_trips_as_json() -> None:
    assert Policy.model_validate_json(PUBLIC.model_dump_json()) == PUBLIC
    with pytest.raises(ValueError, match="extra"):
        Policy.model_validate({**PUBLIC.model_dump(), "surprise": 1})


class TestAssess:
    def scan(
        self, text: str, trust: TrustStore, **kwargs: object
    ) -> tuple[CredentialKind, Outcome, str]:
        options = {"policy": PUBLIC, "now": NOW, "clock_trusted": True, **kwargs}
        result = assess(text, trust=trust, **options)
        return result.kind, result.decision.outcome, " ".join(result.decision.reasons)

    def test_green_code_passes(self, health_key: SigningKey, trust: TrustStore) -> None:
        text = healthcode.issue(code(), health_key)
        assert self.scan(text, trust)[:2] == (CredentialKind.HEALTH, Outcome.PASS)

    def test_expired_code_is_denied(self, health_key: SigningKey, trust: TrustStore) -> None:
        text = healthcode.issue(code(), health_key)
        _, result, reasons = self.scan(text, trust, now=NOW + timedelta(hours=1))
        assert result is Outcome.DENY
        assert reasons.startswith("expired")

    def test_foreign_signer_is_referred(self, trust: TrustStore) -> None:
        text = healthcode.issue(code(), SigningKey.generate())
        _, result, reasons = self.scan(text, trust)
        assert result is Outcome.REFER
        assert reasons.startswith("untrusted-signer")

    def test_damaged_code_is_referred(self, health_key: SigningKey, trust: TrustStore) -> None:
        text = healthcode.issue(code(), health_key)[:-10]
        _, result, reasons = self.scan(text, trust)
        assert result is Outcome.REFER
        assert reasons.startswith("unreadable")

    def test_no_policy_means_refer(self, health_key: SigningKey, trust: TrustStore) -> None:
        text = healthcode.issue(code(), health_key)
        assert self.scan(text, trust, policy=None)[1] is Outcome.REFER

    def test_plain_text_is_ignored(self, trust: TrustStore) -> None:
        assert self.scan("hello", trust)[:2] == (CredentialKind.UNKNOWN, Outcome.IGNORED)

    def test_venue_code_is_recognised_and_ignored(
        self, venue_key: SigningKey, trust: TrustStore
    ) -> None:
        from shared import venuecode

        url = venuecode.issue_url(venuecode.VenueCode("v_1"), "https://h.example", venue_key)
        assert self.scan(url, trust)[:2] == (CredentialKind.VENUE, Outcome.IGNORED)

    def test_eu_dcc_is_referred_until_supported(self, trust: TrustStore) -> None:
        assert self.scan("HC1:NCF", trust)[:2] == (CredentialKind.DCC, Outcome.REFER)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(max_size=200).map(lambda tail: healthcode.PREFIX + tail),
        st.text(max_size=200).map(lambda tail: "https://h.example/v/" + tail),
    )
)
def test_assess_decides_on_any_text_without_raising(trust: TrustStore, text: str) -> None:
    result = assess(text, trust=trust, policy=PUBLIC, now=NOW, clock_trusted=True)
    assert result.decision.outcome is not Outcome.PASS
    assert result.decision.reasons
