"""The default rule sets of 2022 for each venue category, written as CertLogic rules."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from shared.policy import OnFail, Rule, RuleSet, VenueCategory

NOT_DETECTED = "260415000"  # SNOMED CT: the DCC value of a negative test result
DENY_LIST_MAX_AGE_MINUTES = 24 * 60


@dataclass(frozen=True)
class CategoryRules:
    """What differs between categories; everything else is the same rule for everyone."""

    test_hours: int | None  # a negative test sampled within this many hours, or no test needed
    temperature_required: bool  # no reading means staff decide
    paper_offline_refer: bool  # offline, staff confirm every paper code


CATEGORY_RULES = {
    VenueCategory.PUBLIC_PLACE: CategoryRules(48, False, False),
    VenueCategory.RESIDENTIAL: CategoryRules(None, False, False),
    VenueCategory.MEDICAL: CategoryRules(48, True, True),
    VenueCategory.PUBLIC_TRANSPORT: CategoryRules(48, False, False),
    VenueCategory.CONSTRUCTION_SITE: CategoryRules(48, True, True),
    VenueCategory.OFFICE: CategoryRules(48, False, False),
}


def var(path: str) -> dict[str, Any]:
    return {"var": path}


def when(guard: Any, then: Any) -> dict[str, Any]:
    """`then` must hold when `guard` does; otherwise the rule is satisfied."""
    return {"if": [guard, then, True]}


def equals(left: Any, right: Any) -> dict[str, Any]:
    return {"===": [left, right]}


def moment(path: str, hours: int = 0) -> dict[str, Any]:
    return {"plusTime": [var(path), hours, "hour"]}


NOW = moment("external.validationClock")
IS_PAPER = equals(var("payload.kind"), "paper")
IS_PAPER_OFFLINE = {
    "if": [IS_PAPER, {"!": [equals(var("external.statusSource"), "online")]}, False]
}


# A health code always carries a status; an ID card does only when the host knew its holder.
HAS_STATUS = var("payload.colour")
STATUS_KINDS = ("health", "idcard")
ALL_KINDS = ("health", "dcc", "idcard")


def _id_card_rules() -> list[Rule]:
    return [
        Rule(
            id="ID-ONLINE",
            description="an ID card shown alone needs the host's current status of its holder",
            kinds=("idcard",),
            on_fail=OnFail.REFER,
            reason="id-card-offline",
            logic=equals(var("external.statusSource"), "online"),
        ),
        Rule(
            id="ID-KNOWN",
            description="the ID card's holder must be in the health register",
            kinds=("idcard",),
            on_fail=OnFail.REFER,
            reason="id-card-unknown",
            logic=when(equals(var("external.statusSource"), "online"), var("payload.known")),
        ),
        Rule(
            id="ID-VALID",
            description="the ID card must be within its validity dates",
            kinds=("idcard",),
            on_fail=OnFail.REFER,
            reason="id-card-not-valid",
            logic=equals(var("payload.validity"), "valid"),
            shows="payload.validity",
        ),
    ]


def _health_rules(spec: CategoryRules) -> list[Rule]:
    rules = [
        Rule(
            id="HC-COLOUR",
            description="the health status must be green",
            kinds=STATUS_KINDS,
            on_fail=OnFail.DENY,
            reason="colour-not-accepted",
            logic=when(HAS_STATUS, {"in": [var("payload.colour"), ["green"]]}),
            shows="payload.colour",
        ),
        Rule(
            id="HC-PAPER-ID",
            description="a paper code must be shown with its holder's ID card",
            kinds=("health",),
            on_fail=OnFail.REFER,
            reason="paper-code-needs-id",
            logic=when(IS_PAPER, {"!": [equals(var("external.idCheck"), "none")]}),
        ),
        Rule(
            id="HC-PAPER-ID-MATCH",
            description="the ID card must belong to the paper code's holder",
            kinds=("health",),
            on_fail=OnFail.DENY,
            reason="paper-code-id-mismatch",
            logic=when(IS_PAPER, {"!": [equals(var("external.idCheck"), "mismatch")]}),
        ),
        Rule(
            id="HC-PAPER-DENY-LIST",
            description="offline, a paper code needs a deny list refreshed within 24 h",
            kinds=("health",),
            on_fail=OnFail.REFER,
            reason="deny-list-stale",
            logic=when(
                IS_PAPER_OFFLINE,
                {
                    "if": [
                        var("external.denyListAgeMinutes"),  # null (no list) and 0 are falsy
                        {"<=": [var("external.denyListAgeMinutes"), DENY_LIST_MAX_AGE_MINUTES]},
                        equals(var("external.denyListAgeMinutes"), 0),
                    ]
                },
            ),
        ),
    ]
    if spec.paper_offline_refer:
        rules.append(
            Rule(
                id="HC-PAPER-OFFLINE",
                description="staff must confirm a paper code when the host cannot be asked",
                kinds=("health",),
                on_fail=OnFail.REFER,
                reason="paper-code-offline",
                logic={"!": [IS_PAPER_OFFLINE]},
            )
        )
    if spec.test_hours is not None:
        rules += [
            Rule(
                id="HC-TEST-PRESENT",
                description="a nucleic-acid test must be on record",
                kinds=STATUS_KINDS,
                on_fail=OnFail.DENY,
                reason="no-test",
                logic=when(HAS_STATUS, {"if": [var("payload.test"), True, False]}),
            ),
            Rule(
                id="HC-TEST-NEGATIVE",
                description="the latest nucleic-acid test must be negative",
                kinds=STATUS_KINDS,
                on_fail=OnFail.DENY,
                reason="test-positive",
                logic=when(var("payload.test"), equals(var("payload.test.result"), "negative")),
            ),
            Rule(
                id="HC-TEST-AGE",
                description=f"the test must be sampled within {spec.test_hours} h",
                kinds=STATUS_KINDS,
                on_fail=OnFail.DENY,
                reason="test-too-old",
                logic=when(
                    var("payload.test"),
                    {"not-before": [moment("payload.test.sampledAt", spec.test_hours), NOW]},
                ),
            ),
        ]
    return rules


def _dcc_rules(spec: CategoryRules) -> list[Rule]:
    test = var("payload.t.0")
    vaccination = var("payload.v.0")
    recovery = var("payload.r.0")
    test_hours = spec.test_hours or 72  # a test shown where none is needed is still checked
    rules = [
        Rule(
            id="DCC-TEST-NEGATIVE",
            description="a test certificate must show a negative result",
            kinds=("dcc",),
            on_fail=OnFail.DENY,
            reason="test-positive",
            logic=when(test, equals(var("payload.t.0.tr"), NOT_DETECTED)),
        ),
        Rule(
            id="DCC-TEST-AGE",
            description=f"a test certificate's sample must be from within {test_hours} h",
            kinds=("dcc",),
            on_fail=OnFail.DENY,
            reason="test-too-old",
            logic=when(test, {"not-before": [moment("payload.t.0.sc", test_hours), NOW]}),
        ),
    ]
    if spec.test_hours is not None:
        rules.append(
            Rule(
                id="DCC-TEST-REQUIRED",
                description="a certificate of a negative test is needed here",
                kinds=("dcc",),
                on_fail=OnFail.DENY,
                reason="no-test",
                logic={"if": [test, True, False]},
            )
        )
    else:
        rules += [
            Rule(
                id="DCC-VACCINATION-COMPLETE",
                description="a vaccination certificate must show the series complete",
                kinds=("dcc",),
                on_fail=OnFail.DENY,
                reason="vaccination-incomplete",
                logic=when(vaccination, {">=": [var("payload.v.0.dn"), var("payload.v.0.sd")]}),
            ),
            Rule(
                id="DCC-RECOVERY-VALID",
                description="a recovery certificate must be within its validity",
                kinds=("dcc",),
                on_fail=OnFail.DENY,
                reason="recovery-not-valid",
                logic=when(
                    recovery,
                    {
                        "not-after": [
                            {"plusTime": [var("payload.r.0.df"), 0, "day"]},
                            NOW,
                            {"plusTime": [var("payload.r.0.du"), 1, "day"]},
                        ]
                    },
                ),
            ),
        ]
    return rules


def _common_rules(spec: CategoryRules) -> list[Rule]:
    rules = [
        Rule(
            id="DENY-LIST",
            description="the person or certificate must not be on the deny list",
            kinds=ALL_KINDS,
            on_fail=OnFail.DENY,
            reason="deny-listed",
            logic={"!": [var("external.denyListed")]},
        ),
        Rule(
            id="FEVER",
            description="the temperature must be below 37.3 °C",
            kinds=ALL_KINDS,
            on_fail=OnFail.DENY,
            reason="fever",
            logic=when(
                var("external.temperatureTenths"), {"<": [var("external.temperatureTenths"), 373]}
            ),
        ),
    ]
    if spec.temperature_required:
        rules.append(
            Rule(
                id="TEMPERATURE-TAKEN",
                description="a temperature must be taken",
                kinds=ALL_KINDS,
                on_fail=OnFail.REFER,
                reason="no-temperature",
                logic={"if": [var("external.temperatureTenths"), True, False]},
            )
        )
    return rules


@functools.cache
def default_ruleset(category: VenueCategory, version: int = 1) -> RuleSet:
    """The rule set a venue of this category gets until the host is given another.

    Made once per category: a rule set is frozen, and building one validates every rule's
    CertLogic, which would otherwise be paid on every decision.
    """
    spec = CATEGORY_RULES[category]
    return RuleSet(
        version=version,
        category=category,
        rules=tuple(
            _health_rules(spec) + _id_card_rules() + _dcc_rules(spec) + _common_rules(spec)
        ),
    )
