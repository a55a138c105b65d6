"""`assess`: from scanned text to a decision, with paper codes, ID cards and the deny list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import healthcode, venuecode
from shared.dcc.certificates import trust_list
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import EPOCH, SpecimenSigner, issue_dcc, specimen_payload
from shared.dcc.value_sets import TEST_DEVICES, ValueSet, packaged_value_sets
from shared.denylist import DenyList, HashKind, certificate_hashes, person_hash
from shared.healthcode import CodeKind, Colour, HealthStatus, NucleicTest, TestResult
from shared.keys import SigningKey, TrustStore
from shared.policy import Outcome, VenueCategory
from shared.rules.defaults import default_ruleset
from shared.verification import Assessment, CheckContext, CredentialKind, assess
from tests.conftest import SHARED_DATA

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PUBLIC = default_ruleset(VenueCategory.PUBLIC_PLACE)
MEDICAL = default_ruleset(VenueCategory.MEDICAL)
HOLDER_ID = "110101199003071233"


def code(
    colour: Colour = Colour.GREEN,
    test_hours: float | None = 10,
    kind: CodeKind = CodeKind.DYNAMIC,
    person_ref: str = "p_x",
) -> healthcode.HealthCode:
    test = (
        None
        if test_hours is None
        else NucleicTest(NOW - timedelta(hours=test_hours), TestResult.NEGATIVE)
    )
    return healthcode.new_code(
        person_ref=person_ref,
        kind=kind,
        colour=colour,
        test=test,
        now=NOW,
        id_number=HOLDER_ID if kind is CodeKind.PAPER else None,
    )


def listing(*person_refs: str, certificates: tuple[dict, ...] = ()) -> DenyList:
    """A deny list of these people (and certificates' digests), as the host would publish it."""
    digests = [(HashKind.PERSON, person_hash(ref)) for ref in person_refs]
    digests += [item for digest in certificates for item in digest.items()]
    return DenyList.of(7, NOW - timedelta(hours=1), digests)


def scan(text: str, trust: TrustStore, rules=PUBLIC, **context: object) -> Assessment:
    options = {"now": NOW, "clock_trusted": True, **context}
    return assess(text, trust=trust, rules=rules, context=CheckContext(**options))


def reasons(assessment: Assessment) -> str:
    return " ".join(assessment.decision.reasons)


class TestPhoneCodes:
    def test_green_code_passes(self, health_key: SigningKey, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), health_key), trust)
        assert (result.kind, result.decision.outcome) == (CredentialKind.HEALTH, Outcome.PASS)
        assert result.verified_subject == "p_x"

    def test_expired_code_is_denied(self, health_key: SigningKey, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), health_key), trust, now=NOW + timedelta(hours=1))
        assert result.decision.outcome is Outcome.DENY
        assert reasons(result).startswith("expired")

    def test_foreign_signer_is_referred(self, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), SigningKey.generate()), trust)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("untrusted-signer")

    def test_damaged_code_is_referred(self, health_key: SigningKey, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), health_key)[:-10], trust)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("unreadable")

    def test_no_rule_set_means_refer(self, health_key: SigningKey, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), health_key), trust, rules=None)
        assert result.decision.outcome is Outcome.REFER

    def test_a_deny_listed_person_is_denied(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        text = healthcode.issue(code(), health_key)
        listed = scan(text, trust, deny_list=listing("p_x"), deny_list_age_minutes=3)
        assert listed.decision.outcome is Outcome.DENY
        assert reasons(listed).startswith("deny-listed")
        other = scan(text, trust, deny_list=listing("p_other"), deny_list_age_minutes=3)
        assert other.decision.outcome is Outcome.PASS

    def test_fever_is_denied(self, health_key: SigningKey, trust: TrustStore) -> None:
        result = scan(healthcode.issue(code(), health_key), trust, temperature_c=37.8)
        assert result.decision.outcome is Outcome.DENY
        assert reasons(result).startswith("fever")


class TestPaperCodes:
    def paper(self, health_key: SigningKey, **changes: object) -> str:
        return healthcode.issue(code(kind=CodeKind.PAPER, **changes), health_key)

    def test_without_an_id_card_staff_decide(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        result = scan(self.paper(health_key), trust, deny_list_age_minutes=5)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("paper-code-needs-id")

    def test_the_holders_id_card_passes_offline_with_a_fresh_deny_list(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        fresh = scan(
            self.paper(health_key),
            trust,
            id_number=HOLDER_ID,
            deny_list=listing(),
            deny_list_age_minutes=30,
        )
        assert fresh.decision.outcome is Outcome.PASS
        stale = scan(self.paper(health_key), trust, id_number=HOLDER_ID, deny_list_age_minutes=None)
        assert stale.decision.outcome is Outcome.REFER
        assert reasons(stale).startswith("deny-list-stale")

    def test_someone_elses_id_card_is_denied(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        result = scan(
            self.paper(health_key), trust, id_number="110101199003079999", deny_list_age_minutes=5
        )
        assert result.decision.outcome is Outcome.DENY
        assert "paper-code-id-mismatch" in reasons(result)

    def test_online_the_current_status_decides(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        asked: list[str] = []

        def now_red(person_ref: str) -> HealthStatus:
            asked.append(person_ref)
            return HealthStatus(Colour.RED, None)

        # The paper code says green; since it was printed, the person's status turned red.
        result = scan(self.paper(health_key), trust, id_number=HOLDER_ID, status_lookup=now_red)
        assert result.decision.outcome is Outcome.DENY
        assert reasons(result).startswith("colour-not-accepted")
        assert asked == ["p_x"]

    def test_a_mismatched_id_is_not_looked_up(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        asked: list[str] = []
        scan(
            self.paper(health_key),
            trust,
            id_number="110101199003079999",
            status_lookup=asked.append,
        )
        assert asked == []

    def test_where_the_policy_says_so_staff_confirm_offline(
        self, health_key: SigningKey, trust: TrustStore
    ) -> None:
        offline = scan(
            self.paper(health_key),
            trust,
            rules=MEDICAL,
            id_number=HOLDER_ID,
            temperature_c=36.5,
            deny_list_age_minutes=5,
        )
        assert offline.decision.outcome is Outcome.REFER
        assert reasons(offline).startswith("paper-code-offline")
        green = HealthStatus(
            Colour.GREEN, NucleicTest(NOW - timedelta(hours=5), TestResult.NEGATIVE)
        )
        online = scan(
            self.paper(health_key),
            trust,
            rules=MEDICAL,
            id_number=HOLDER_ID,
            temperature_c=36.5,
            status_lookup=lambda ref: green,
        )
        assert online.decision.outcome is Outcome.PASS


@pytest.fixture(scope="module")
def signer() -> SpecimenSigner:
    return SpecimenSigner.generate()


@pytest.fixture(scope="module")
def schemas() -> SchemaStore:
    directory = SHARED_DATA / "dcc" / "eu-dcc-schema"
    if not directory.is_dir():
        pytest.skip(f"the EU DCC schemas are not at {directory}")
    return SchemaStore.from_directory(directory)


class TestEuDcc:
    """EU DCCs through the same rules; the specimen signer's clock is 2021."""

    def check(
        self, text: str, signer: SpecimenSigner, schemas: SchemaStore | None, **context: object
    ) -> Assessment:
        options = {
            "now": EPOCH + timedelta(hours=2),
            "clock_trusted": True,
            "dcc_schemas": schemas,
            **context,
        }
        trust = trust_list([signer.certificate])
        return assess(
            text,
            trust=trust,
            rules=default_ruleset(VenueCategory.OFFICE),
            context=CheckContext(**options),
        )

    def test_a_recent_negative_test_passes(
        self, signer: SpecimenSigner, schemas: SchemaStore
    ) -> None:
        result = self.check(issue_dcc(specimen_payload("t"), signer), signer, schemas)
        assert (result.kind, result.decision.outcome) == (CredentialKind.DCC, Outcome.PASS)
        assert result.dcc is not None
        assert result.dcc.certificate_type == "t"

    def test_a_vaccination_is_not_enough_where_a_test_is_needed(
        self, signer: SpecimenSigner, schemas: SchemaStore
    ) -> None:
        result = self.check(issue_dcc(specimen_payload("v"), signer), signer, schemas)
        assert result.decision.outcome is Outcome.DENY
        assert reasons(result).startswith("no-test")

    def test_a_revoked_certificate_is_denied(
        self, signer: SpecimenSigner, schemas: SchemaStore
    ) -> None:
        text = issue_dcc(specimen_payload("t"), signer)
        verified = self.check(text, signer, schemas).dcc
        assert verified is not None
        revoked = certificate_hashes(
            verified.uvci, verified.country or "", verified.signature, ecdsa=True
        )
        only_uci = {HashKind.UCI: revoked[HashKind.UCI]}
        result = self.check(text, signer, schemas, deny_list=listing(certificates=(only_uci,)))
        assert result.decision.outcome is Outcome.DENY
        assert reasons(result).startswith("deny-listed")

    def test_an_unknown_signer_is_referred(
        self, signer: SpecimenSigner, schemas: SchemaStore
    ) -> None:
        stranger = SpecimenSigner.generate()
        result = self.check(issue_dcc(specimen_payload("t"), stranger), signer, schemas)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("untrusted-signer")

    def test_an_unknown_code_is_referred_until_the_value_sets_know_it(
        self, signer: SpecimenSigner, schemas: SchemaStore
    ) -> None:
        """A rapid test from a device the value sets lack: forged, or newer than the sets."""
        payload = specimen_payload("t")
        payload["t"][0] |= {"tt": "LP217198-3", "ma": "9999"}
        text = issue_dcc(payload, signer)
        result = self.check(text, signer, schemas)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("unknown-code: $.t[0].ma is not a code")
        held = packaged_value_sets().sets[TEST_DEVICES]
        newer = ValueSet(TEST_DEVICES, held.date + timedelta(days=1), held.codes | {"9999"})
        value_sets = packaged_value_sets().updated([newer])
        result = self.check(text, signer, schemas, dcc_value_sets=value_sets)
        assert result.decision.outcome is Outcome.PASS

    def test_without_schemas_staff_decide(self, signer: SpecimenSigner) -> None:
        result = self.check(issue_dcc(specimen_payload("t"), signer), signer, None)
        assert result.decision.outcome is Outcome.REFER
        assert reasons(result).startswith("schema-unchecked")


class TestOtherTexts:
    def test_plain_text_is_ignored(self, trust: TrustStore) -> None:
        result = scan("hello", trust)
        assert (result.kind, result.decision.outcome) == (CredentialKind.UNKNOWN, Outcome.IGNORED)

    def test_venue_code_is_recognised_and_ignored(
        self, venue_key: SigningKey, trust: TrustStore
    ) -> None:
        url = venuecode.issue_url(venuecode.VenueCode("v_1"), "https://h.example", venue_key)
        result = scan(url, trust)
        assert (result.kind, result.decision.outcome) == (CredentialKind.VENUE, Outcome.IGNORED)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(max_size=200).map(lambda tail: healthcode.PREFIX + tail),
        st.text(max_size=200).map(lambda tail: "HC1:" + tail),
        st.text(max_size=200).map(lambda tail: "https://h.example/v/" + tail),
    )
)
def test_assess_decides_on_any_text_without_raising(trust: TrustStore, text: str) -> None:
    result = scan(text, trust)
    assert result.decision.outcome is not Outcome.PASS
    assert result.decision.reasons
