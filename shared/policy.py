"""Venue policies as signed CertLogic rule sets, and the decision function device and host share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.envelope import CredentialError, Stage
from shared.keys import SigningKey, TrustStore
from shared.rules.certlogic import (
    CertLogicError,
    evaluate,
    evaluate_validated,
    format_date_time,
    is_truthy,
    validate,
)
from shared.signed import open_document, sign_document

RULESET_DOCUMENT = "ruleset"
CLOCK_VARIABLE = "external.validationClock"
MAX_SHOWN_LENGTH = 32

CredentialKindName = Literal["health", "dcc", "idcard"]
IdCheck = Literal["matched", "mismatch", "none"]
StatusSource = Literal["code", "online", "none"]  # "none": an ID card the host was not asked


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


class OnFail(StrEnum):
    """What a rule that is not satisfied does to the decision."""

    DENY = "deny"
    REFER = "refer"


def _variables(expression: Any) -> Iterator[str]:
    """Every `var` path an expression reads."""
    if isinstance(expression, dict):
        for operator, operands in expression.items():
            if operator == "var" and isinstance(operands, str):
                yield operands
            else:
                yield from _variables(operands)
    elif isinstance(expression, list):
        for item in expression:
            yield from _variables(item)


class Rule(BaseModel):
    """One CertLogic rule: satisfied when its logic is truthy on the check's data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]{1,39}$")
    description: str = Field(min_length=1, max_length=120)
    kinds: tuple[CredentialKindName, ...] = Field(min_length=1)
    on_fail: OnFail
    reason: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    logic: Any
    # A `var` path whose value the failure names (the code's colour, say); never personal data.
    shows: str | None = Field(default=None, pattern=r"^(payload|external)(\.[A-Za-z0-9_]+)+$")

    @field_validator("logic")
    @classmethod
    def _valid_certlogic(cls, logic: Any) -> Any:
        issues = validate(logic)
        if issues:
            problems = "; ".join(f"{issue.message} at '{issue.path}'" for issue in issues[:3])
            raise ValueError(f"not valid CertLogic: {problems}")
        return logic

    @cached_property
    def reads_clock(self) -> bool:
        """Whether the rule depends on the time of the check (then an unsure clock refers)."""
        return any(path.startswith(CLOCK_VARIABLE) for path in _variables(self.logic))

    def failure(self, data: Any) -> str:
        """The reason recorded when the rule is not satisfied."""
        if self.shows is None:
            return f"{self.reason}: {self.description} [{self.id}]"
        shown = str(evaluate({"var": self.shows}, data))[:MAX_SHOWN_LENGTH]
        return f"{self.reason}: {shown}; {self.description} [{self.id}]"


class RuleSet(BaseModel):
    """A venue's entry rules: versioned data the host signs and pushes, never code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    category: VenueCategory
    rules: tuple[Rule, ...] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [rule.id for rule in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique within a rule set")
        return self

    @property
    def accepts(self) -> frozenset[str]:
        """The credential kinds this venue has rules for; any other kind is referred."""
        return frozenset(kind for rule in self.rules for kind in rule.kinds)


def sign_ruleset(ruleset: RuleSet, key: SigningKey) -> bytes:
    """The host signs a rule set with its policy key before devices may use it."""
    return sign_document(RULESET_DOCUMENT, ruleset.model_dump(mode="json"), key)


def open_ruleset(data: bytes, trust: TrustStore) -> RuleSet:
    """Check a signed rule set against the trusted policy keys; CredentialError if not good."""
    body = open_document(data, RULESET_DOCUMENT, trust)
    try:
        return RuleSet.model_validate(body)
    except ValidationError as error:
        raise CredentialError(
            Stage.SCHEMA, f"not a valid rule set ({error.error_count()} errors)"
        ) from None


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


@dataclass(frozen=True)
class Facts:
    """Everything a decision may look at: the verified claims and the moment of the check."""

    kind: CredentialKindName
    payload: dict[str, Any]  # the credential's claims as JSON values
    now: datetime
    clock_trusted: bool
    temperature_c: float | None = None
    deny_listed: str | None = None  # which deny-list hash matched, if any
    deny_list_age_minutes: int | None = None  # None: no deny list on this device
    id_check: IdCheck = "none"  # paper codes: the holder's ID checked against the code
    status_source: StatusSource = "code"  # "online": the host's current status was used

    def data(self) -> dict[str, Any]:
        """The CertLogic data context: {"payload": claims, "external": the check's context}."""
        temperature = None if self.temperature_c is None else round(self.temperature_c * 10)
        return {
            "payload": self.payload,
            "external": {
                "kind": self.kind,
                "validationClock": format_date_time(self.now),
                "clockTrusted": self.clock_trusted,
                "temperatureTenths": temperature,
                "denyListed": self.deny_listed,
                "denyListAgeMinutes": self.deny_list_age_minutes,
                "idCheck": self.id_check,
                "statusSource": self.status_source,
            },
        }


def decide(ruleset: RuleSet | None, facts: Facts) -> Decision:
    """Apply a rule set; no rule set, a kind it has no rules for, or an unsure clock never pass."""
    if ruleset is None:
        return Decision(Outcome.REFER, ("no-policy: venue rules not loaded",))
    if facts.kind not in ruleset.accepts:
        return Decision(
            Outcome.REFER, (f"kind-not-accepted: no rules for {facts.kind} credentials here",)
        )
    denials: list[str] = []
    referrals: list[str] = []
    if not facts.clock_trusted:
        referrals.append("clock-untrusted: cannot check expiry or test age")
    data = facts.data()
    for rule in ruleset.rules:
        if facts.kind not in rule.kinds or (rule.reads_clock and not facts.clock_trusted):
            continue
        try:
            satisfied = is_truthy(evaluate_validated(rule.logic, data))  # checked at Rule()
        except CertLogicError:
            referrals.append(f"rule-error: could not evaluate [{rule.id}]")
            continue
        if not satisfied:
            (denials if rule.on_fail is OnFail.DENY else referrals).append(rule.failure(data))
    return Decision.of(denials, referrals)
