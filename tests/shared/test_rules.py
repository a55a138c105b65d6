"""Venue rule sets: every default rule with a case it passes and one it fails, and `decide`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.envelope import CredentialError
from shared.keys import SigningKey, TrustStore
from shared.policy import (
    Facts,
    OnFail,
    Outcome,
    Rule,
    RuleSet,
    VenueCategory,
    decide,
    open_ruleset,
    sign_ruleset,
)
from shared.rules.certlogic import evaluate, is_truthy
from shared.rules.defaults import CATEGORY_RULES, default_ruleset
from shared.signed import sign_document

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat()


def health(**payload: Any) -> Facts:
    """A green phone code with a negative test sampled 10 h ago, changed by `payload`."""
    base = {
        "kind": "dynamic",
        "colour": "green",
        "test": {"sampledAt": ago(10), "result": "negative"},
        "issuedAt": ago(0.01),
        "expiresAt": ago(-0.05),
    }
    body = {key: value for key, value in (base | payload).items() if value is not None}
    return Facts(kind="health", payload=body, now=NOW, clock_trusted=True)


def paper(**changes: Any) -> Facts:
    return replace(health(kind="paper"), **changes)


def id_card(status: str = "online", **payload: Any) -> Facts:
    """An ID card shown alone; online, the host knew a green holder with a test 10 h ago."""
    if status == "none":
        return Facts(
            kind="idcard",
            payload={"kind": "idcard", "known": False, "validity": "valid"},
            now=NOW,
            clock_trusted=True,
            status_source="none",
        )
    base = {
        "kind": "idcard",
        "known": True,
        "validity": "valid",
        "colour": "green",
        "test": {"sampledAt": ago(10), "result": "negative"},
    }
    body = {key: value for key, value in (base | payload).items() if value is not None}
    return Facts(kind="idcard", payload=body, now=NOW, clock_trusted=True, status_source="online")


def dcc(**groups: Any) -> Facts:
    """An EU DCC payload with the given groups (t, v or r), as the verifier hands it over."""
    payload = {"ver": "1.3.0", "nam": {"fnt": "MUSTER"}, "dob": "1990-01-01", **groups}
    return Facts(kind="dcc", payload=payload, now=NOW, clock_trusted=True)


def dcc_test(hours: float = 10, result: str = "260415000") -> Facts:
    return dcc(t=[{"tt": "LP6464-4", "sc": ago(hours), "tr": result}])


def dcc_vaccination(dose: int = 2, series: int = 2) -> Facts:
    return dcc(v=[{"dn": dose, "sd": series, "dt": "2026-01-01"}])


def dcc_recovery(valid_from_days: int = -30, valid_until_days: int = 100) -> Facts:
    def day(offset: int) -> str:
        return (NOW + timedelta(days=offset)).date().isoformat()

    return dcc(r=[{"df": day(valid_from_days), "du": day(valid_until_days)}])


def with_context(facts: Facts, **changes: Any) -> Facts:
    return replace(facts, **changes)


# Each rule id: facts it is satisfied by, and facts it fails on. A rule added to a default set
# without a line here fails `test_every_default_rule_has_cases`.
RULE_CASES: dict[str, tuple[Callable[[], Facts], Callable[[], Facts]]] = {
    "HC-COLOUR": (health, lambda: health(colour="yellow")),
    "HC-PAPER-ID": (lambda: paper(id_check="matched"), paper),
    "HC-PAPER-ID-MATCH": (lambda: paper(id_check="matched"), lambda: paper(id_check="mismatch")),
    "HC-PAPER-DENY-LIST": (
        lambda: paper(deny_list_age_minutes=30),
        lambda: paper(deny_list_age_minutes=25 * 60),
    ),
    "HC-PAPER-OFFLINE": (lambda: paper(status_source="online"), paper),
    "HC-TEST-PRESENT": (health, lambda: health(test=None)),
    "HC-TEST-NEGATIVE": (
        health,
        lambda: health(test={"sampledAt": ago(10), "result": "positive"}),
    ),
    "HC-TEST-AGE": (
        lambda: health(test={"sampledAt": ago(47.9), "result": "negative"}),
        lambda: health(test={"sampledAt": ago(48.1), "result": "negative"}),
    ),
    "ID-ONLINE": (id_card, lambda: id_card("none")),
    "ID-KNOWN": (id_card, lambda: id_card(known=False, colour=None, test=None)),
    "ID-VALID": (id_card, lambda: id_card(validity="expired")),
    "DCC-TEST-NEGATIVE": (dcc_test, lambda: dcc_test(result="260373001")),
    "DCC-TEST-AGE": (lambda: dcc_test(hours=47), lambda: dcc_test(hours=80)),
    "DCC-TEST-REQUIRED": (dcc_test, dcc_vaccination),
    "DCC-VACCINATION-COMPLETE": (dcc_vaccination, lambda: dcc_vaccination(dose=1)),
    "DCC-RECOVERY-VALID": (dcc_recovery, lambda: dcc_recovery(valid_until_days=-2)),
    "DENY-LIST": (health, lambda: with_context(health(), deny_listed="person")),
    "FEVER": (
        lambda: with_context(health(), temperature_c=37.2),
        lambda: with_context(health(), temperature_c=37.3),
    ),
    "TEMPERATURE-TAKEN": (lambda: with_context(health(), temperature_c=36.6), health),
}


def default_rules() -> list[tuple[VenueCategory, Rule]]:
    return [
        (category, rule) for category in VenueCategory for rule in default_ruleset(category).rules
    ]


def satisfied(rule: Rule, facts: Facts) -> bool:
    return is_truthy(evaluate(rule.logic, facts.data()))


def test_every_default_rule_has_cases() -> None:
    assert {rule.id for _, rule in default_rules()} == set(RULE_CASES)


@pytest.mark.parametrize(
    ("category", "rule"), default_rules(), ids=lambda item: getattr(item, "id", str(item))
)
def test_each_default_rule_passes_and_fails_on_its_cases(
    category: VenueCategory, rule: Rule
) -> None:
    passing, failing = RULE_CASES[rule.id]
    assert satisfied(rule, passing())
    assert not satisfied(rule, failing())


def test_every_category_has_a_default_rule_set_for_every_credential_kind() -> None:
    assert set(CATEGORY_RULES) == set(VenueCategory)
    for category in VenueCategory:
        ruleset = default_ruleset(category)
        assert ruleset.category is category
        assert ruleset.accepts == {"health", "dcc", "idcard"}


@pytest.mark.parametrize(
    ("category", "facts", "expected"),
    [
        (VenueCategory.PUBLIC_PLACE, health(), Outcome.PASS),
        (
            VenueCategory.PUBLIC_PLACE,
            health(test={"sampledAt": ago(60), "result": "negative"}),
            Outcome.DENY,
        ),
        (
            VenueCategory.RESIDENTIAL,
            health(test={"sampledAt": ago(60), "result": "negative"}),
            Outcome.PASS,
        ),
        (VenueCategory.RESIDENTIAL, health(test=None), Outcome.PASS),
        (VenueCategory.RESIDENTIAL, health(colour="red"), Outcome.DENY),
        (VenueCategory.MEDICAL, health(), Outcome.REFER),  # no temperature taken
        (VenueCategory.MEDICAL, with_context(health(), temperature_c=36.5), Outcome.PASS),
        (VenueCategory.OFFICE, dcc_test(), Outcome.PASS),
        (VenueCategory.OFFICE, dcc_vaccination(), Outcome.DENY),  # a test is needed here
        (VenueCategory.RESIDENTIAL, dcc_vaccination(), Outcome.PASS),
        (VenueCategory.RESIDENTIAL, dcc_recovery(valid_until_days=-2), Outcome.DENY),
        (
            VenueCategory.PUBLIC_TRANSPORT,
            paper(id_check="matched", deny_list_age_minutes=5),
            Outcome.PASS,
        ),
        (
            VenueCategory.CONSTRUCTION_SITE,
            with_context(paper(id_check="matched", deny_list_age_minutes=5), temperature_c=36.5),
            Outcome.REFER,
        ),
        (
            VenueCategory.CONSTRUCTION_SITE,
            with_context(paper(id_check="matched", status_source="online"), temperature_c=36.5),
            Outcome.PASS,
        ),
        (
            VenueCategory.PUBLIC_PLACE,
            paper(id_check="mismatch", deny_list_age_minutes=5),
            Outcome.DENY,
        ),
        (VenueCategory.PUBLIC_PLACE, id_card(), Outcome.PASS),
        (VenueCategory.PUBLIC_PLACE, id_card(colour="red"), Outcome.DENY),
        (
            VenueCategory.PUBLIC_PLACE,
            id_card(test={"sampledAt": ago(60), "result": "negative"}),
            Outcome.DENY,
        ),
        (VenueCategory.RESIDENTIAL, id_card(test=None), Outcome.PASS),
        (VenueCategory.PUBLIC_PLACE, id_card("none"), Outcome.REFER),  # offline: staff decide
        (
            VenueCategory.PUBLIC_PLACE,
            with_context(id_card("none"), deny_listed="identity"),
            Outcome.DENY,
        ),
        (VenueCategory.PUBLIC_PLACE, id_card(known=False, colour=None, test=None), Outcome.REFER),
        (VenueCategory.MEDICAL, id_card(), Outcome.REFER),  # no temperature taken
    ],
)
def test_default_rule_sets_decide_like_the_2022_rules(
    category: VenueCategory, facts: Facts, expected: Outcome
) -> None:
    assert decide(default_ruleset(category), facts).outcome is expected


def test_no_rule_set_or_an_unknown_kind_is_referred() -> None:
    assert decide(None, health()).reasons == ("no-policy: venue rules not loaded",)
    health_only = RuleSet(
        version=1,
        category=VenueCategory.OFFICE,
        rules=tuple(
            rule
            for rule in default_ruleset(VenueCategory.OFFICE).rules
            if rule.kinds == ("health",)
        ),
    )
    decision = decide(health_only, dcc_test())
    assert decision.outcome is Outcome.REFER
    assert decision.reasons[0].startswith("kind-not-accepted")


def test_an_untrusted_clock_never_passes_but_still_denies() -> None:
    ruleset = default_ruleset(VenueCategory.PUBLIC_PLACE)
    stale = health(test={"sampledAt": ago(60), "result": "negative"})
    unsure = decide(ruleset, with_context(stale, clock_trusted=False))
    assert unsure.outcome is Outcome.REFER  # the test-age rule needs the time: not evaluated
    assert unsure.reasons == ("clock-untrusted: cannot check expiry or test age",)
    red = decide(ruleset, with_context(health(colour="red"), clock_trusted=False))
    assert red.outcome is Outcome.DENY


def test_every_failed_rule_is_reported_with_its_id() -> None:
    facts = with_context(
        health(colour="red", test={"sampledAt": ago(72), "result": "negative"}), temperature_c=38.0
    )
    decision = decide(default_ruleset(VenueCategory.PUBLIC_PLACE), facts)
    assert decision.outcome is Outcome.DENY
    assert [reason.split(":")[0] for reason in decision.reasons] == [
        "colour-not-accepted",
        "test-too-old",
        "fever",
    ]
    assert decision.reasons[0].endswith("[HC-COLOUR]")


def test_a_rule_that_cannot_be_evaluated_refers() -> None:
    broken = Rule(
        id="NEEDS-INTEGER",
        description="compares a text with an integer",
        kinds=("health",),
        on_fail=OnFail.DENY,
        reason="broken",
        logic={"<": [{"var": "payload.colour"}, 3]},
    )
    ruleset = RuleSet(version=1, category=VenueCategory.OFFICE, rules=(broken,))
    assert decide(ruleset, health()).reasons == ("rule-error: could not evaluate [NEEDS-INTEGER]",)
    assert decide(ruleset, health()).outcome is Outcome.REFER


def test_rules_reading_the_clock_are_found_from_their_logic() -> None:
    by_id = {rule.id: rule for rule in default_ruleset(VenueCategory.PUBLIC_PLACE).rules}
    assert by_id["HC-TEST-AGE"].reads_clock
    assert not by_id["HC-COLOUR"].reads_clock


def test_invalid_logic_or_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="CertLogic"):
        Rule(
            id="BAD",
            description="uses an operator CertLogic does not have",
            kinds=("health",),
            on_fail=OnFail.DENY,
            reason="bad",
            logic={"or": [True, False]},
        )
    rule = default_ruleset(VenueCategory.OFFICE).rules[0]
    with pytest.raises(ValueError, match="unique"):
        RuleSet(version=1, category=VenueCategory.OFFICE, rules=(rule, rule))


class TestSignedRuleSets:
    def test_round_trip(self, policy_key: SigningKey, trust: TrustStore) -> None:
        ruleset = default_ruleset(VenueCategory.MEDICAL, version=3)
        assert open_ruleset(sign_ruleset(ruleset, policy_key), trust) == ruleset

    def test_a_changed_byte_is_refused(self, policy_key: SigningKey, trust: TrustStore) -> None:
        signed = bytearray(sign_ruleset(default_ruleset(VenueCategory.OFFICE), policy_key))
        signed[len(signed) // 2] ^= 0x01
        with pytest.raises(CredentialError):
            open_ruleset(bytes(signed), trust)

    def test_other_keys_are_refused(self, health_key: SigningKey, trust: TrustStore) -> None:
        # The health key is trusted, but only for health codes, never for rules.
        with pytest.raises(CredentialError, match="no policy key"):
            open_ruleset(sign_ruleset(default_ruleset(VenueCategory.OFFICE), health_key), trust)
        with pytest.raises(CredentialError, match="no policy key"):
            open_ruleset(
                sign_ruleset(default_ruleset(VenueCategory.OFFICE), SigningKey.generate()), trust
            )

    def test_another_document_type_is_refused(
        self, policy_key: SigningKey, trust: TrustStore
    ) -> None:
        body = default_ruleset(VenueCategory.OFFICE).model_dump(mode="json")
        with pytest.raises(CredentialError, match="not a signed ruleset"):
            open_ruleset(sign_document("denylist", body, policy_key), trust)

    def test_a_signed_but_malformed_rule_set_is_refused(
        self, policy_key: SigningKey, trust: TrustStore
    ) -> None:
        with pytest.raises(CredentialError, match="not a valid rule set"):
            open_ruleset(sign_document("ruleset", {"version": 0}, policy_key), trust)


def test_a_failure_can_name_the_value_it_failed_on() -> None:
    decision = decide(default_ruleset(VenueCategory.RESIDENTIAL), health(colour="yellow"))
    assert decision.reasons == (
        "colour-not-accepted: yellow; the health status must be green [HC-COLOUR]",
    )
