"""The latest test reaches the decision's event: from the code's claims, or the host's answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device.pipeline import Event, Pipeline, VenueState
from device.store import Store
from hardware.qr import QrDecoder
from shared.healthcode import Colour, HealthStatus, NucleicTest, TestResult
from shared.keys import SigningKey, TrustStore
from shared.policy import Outcome, VenueCategory
from shared.rules.defaults import default_ruleset
from shared.sealed import SealingKey
from shared.verification import IdentityStatus
from tests.device.test_pipeline import (
    HOLDER_CARD,
    HOLDER_ID,
    TrustedClock,
    card_kiosk,
    green_code,
    paper_code,
    reader_kiosk,
)

SAMPLED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
HOSTS_TEST = NucleicTest(SAMPLED, TestResult.NEGATIVE)


@pytest.fixture
def told() -> list[Event]:
    return []


def test_a_health_codes_own_test_is_on_its_event(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey, told: list[Event]
) -> None:
    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    pipeline = Pipeline(
        QrDecoder(), Store(tmp_path / "s.db"), TrustedClock(), venue, feedback=told.append
    )
    event = pipeline.process_text(green_code(health_key, test_hours=10), "camera")
    assert event.decision.outcome is Outcome.PASS
    assert event.test is not None and event.test.result is TestResult.NEGATIVE
    hours = (datetime.now(UTC) - event.test.sampled_at).total_seconds() / 3600
    assert 9.9 < hours < 10.1
    assert event.as_dict()["test"] == {
        "sampled_at": event.test.sampled_at.isoformat(),
        "result": "negative",
    }


def test_the_hosts_answer_about_a_paper_codes_holder_wins_over_the_codes_test(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey, told: list[Event]
) -> None:
    def lookup(person_ref: str) -> HealthStatus:
        return HealthStatus(Colour.GREEN, HOSTS_TEST)

    kiosk = reader_kiosk(tmp_path, trust, told, status_lookup=lookup)
    kiosk.process_text(paper_code(health_key), "camera")  # its own test: 10 hours ago
    event = kiosk.present_id(HOLDER_CARD, "sam")
    assert (event.decision.outcome, event.test) == (Outcome.PASS, HOSTS_TEST)


def test_an_id_cards_event_has_the_holders_test_online_and_none_offline(
    tmp_path: Path, trust: TrustStore, told: list[Event]
) -> None:
    sealing = SealingKey.generate()
    for side in ("online", "offline"):
        (tmp_path / side).mkdir()
    answers = {HOLDER_ID: IdentityStatus("p_card", HealthStatus(Colour.GREEN, HOSTS_TEST))}
    online = card_kiosk(tmp_path / "online", trust, told, sealing, answers)
    assert online.present_id(HOLDER_CARD, "sam").test == HOSTS_TEST
    offline = card_kiosk(tmp_path / "offline", trust, told, sealing, {})
    event = offline.present_id(HOLDER_CARD, "sam")
    assert (event.decision.outcome, event.test) == (Outcome.REFER, None)
    assert event.as_dict()["test"] is None
