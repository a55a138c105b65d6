"""Venue policies as data and the one decision function that device and host both run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.healthcode import CodeKind, Colour, HealthCode, TestResult


class Outcome(StrEnum):
    """Three-valued result, plus `ignored` for what is not a personal credential at all."""

    PASS = "pass"
    DENY = "deny"
    REFER = "refer"
    IGNORED = "ignored"


class VenueCategory(StrEnum):
    PUBLIC_PLACE = "public_place"
    RESIDENTIAL = "residential"
    MEDICAL = "medical"
    PUBLIC_TRANSPORT = "public_transport"
    CONSTRUCTION_SITE = "construction_site"
    OFFICE = "office"


class PaperCodeRule(StrEnum):
    REFER = "refer"  # staff compare the paper code with the holder's ID card
    DENY = "deny"


class Policy(BaseModel):
    """A venue's entry rules; versioned data pushed by the host, never code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    category: VenueCategory
    accept_colours: tuple[Colour, ...] = (Colour.GREEN,)
    max_test_age_hours: float | None = Field(default=None, gt=0)
    fever_celsius: float = Field(default=37.3, gt=30, lt=45)
    require_temperature: bool = False
    paper_code: PaperCodeRule = PaperCodeRule.REFER


def default_policy(category: VenueCategory) -> Policy:
    """The 2022 rules: public places want a negative test within 48 h, residences a green code."""
    test_hours = {
        VenueCategory.PUBLIC_PLACE: 48.0,
        VenueCategory.MEDICAL: 48.0,
        VenueCategory.PUBLIC_TRANSPORT: 48.0,
        VenueCategory.CONSTRUCTION_SITE: 48.0,
        VenueCategory.OFFICE: 48.0,
        VenueCategory.RESIDENTIAL: None,
    }[category]
    return Policy(version=1, category=category, max_test_age_hours=test_hours)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, denials: list[str], referrals: list[str]) -> Decision:
        """Deny if any rule denies, else refer if any rule cannot be settled, else pass."""
        if denials:
            return cls(Outcome.DENY, tuple(denials + referrals))
        if referrals:
            return cls(Outcome.REFER, tuple(referrals))
        return cls(Outcome.PASS, ("ok",))


def decide(
    code: HealthCode,
    policy: Policy,
    *,
    now: datetime,
    clock_trusted: bool,
    temperature_c: float | None = None,
) -> Decision:
    """Apply a policy to a verified health code; every failed rule adds its reason."""
    denials: list[str] = []
    referrals: list[str] = []
    if not clock_trusted:
        referrals.append("clock-untrusted: cannot check expiry or test age")
    if code.colour not in policy.accept_colours:
        denials.append(f"colour-not-accepted: {code.colour.value} code")
    if policy.max_test_age_hours is not None:
        if code.test is None:
            denials.append("no-test: no nucleic-acid test on record")
        elif code.test.result is TestResult.POSITIVE:
            denials.append("test-positive: latest nucleic-acid test is positive")
        elif clock_trusted:
            age_hours = (now - code.test.sampled_at).total_seconds() / 3600
            if age_hours > policy.max_test_age_hours:
                denials.append(
                    f"test-too-old: sampled {age_hours:.0f} h ago, "
                    f"limit {policy.max_test_age_hours:g} h"
                )
    if temperature_c is not None and temperature_c >= policy.fever_celsius:
        denials.append(f"fever: {temperature_c:.1f} °C, limit {policy.fever_celsius:.1f} °C")
    elif temperature_c is None and policy.require_temperature:
        referrals.append("no-temperature: the temperature could not be taken")
    if code.kind is CodeKind.PAPER:
        if policy.paper_code is PaperCodeRule.DENY:
            denials.append("paper-code: not accepted at this venue")
        else:
            referrals.append("paper-code: staff check the holder's ID card")
    return Decision.of(denials, referrals)
