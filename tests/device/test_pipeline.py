"""The scan pipeline on real codes, a real decoder and a real SQLite store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from device.clock import DeviceClock
from device.peripherals import PeripheralOptions, Peripherals
from device.pipeline import (
    PAPER_WAIT_SECONDS,
    REPEAT_REASON,
    SHOW_ID_REASON,
    DenyListState,
    Event,
    Pipeline,
    RepeatFilter,
    Temperature,
    VenueState,
)
from device.store import Store
from hardware.qr import QrDecoder
from hardware.thermometer.emulator import Emulator
from shared import healthcode
from shared.dcc.certificates import trust_list
from shared.dcc.schema import SchemaStore
from shared.dcc.specimen import SpecimenSigner, issue_dcc, specimen_payload
from shared.dcc.value_sets import TEST_DEVICES, ValueSet, packaged_value_sets
from shared.denylist import DenyList, HashKind, identity_hash
from shared.healthcode import CodeKind, Colour, HealthStatus, NucleicTest, TestResult
from shared.keys import SigningKey, TrustStore
from shared.messages import ThermometerReadings
from shared.policy import Outcome, VenueCategory
from shared.qrimage import qr_png
from shared.rules.defaults import default_ruleset
from shared.sealed import CardIdentity, DocumentType, SealingKey
from shared.verification import CardValidity, CredentialKind, IdentityStatus
from tests.shared.dcc.conftest import SCHEMA_DIR


class TrustedClock(DeviceClock):
    """The real clock, marked trusted as if the host's time had been seen."""

    def __init__(self, trusted: bool = True) -> None:
        super().__init__(ntp_flag=Path("/nonexistent/ntp-flag"))
        if trusted:
            now = self.now_ms()
            self.observe_host_time(now, now, now)


def green_code(key: SigningKey, person_ref: str = "p_green", test_hours: float = 10) -> str:
    now = datetime.now(UTC)
    test = NucleicTest(now - timedelta(hours=test_hours), TestResult.NEGATIVE)
    code = healthcode.new_code(
        person_ref=person_ref, kind=CodeKind.DYNAMIC, colour=Colour.GREEN, test=test, now=now
    )
    return healthcode.issue(code, key)


def frame_with(text: str) -> np.ndarray:
    code = cv2.imdecode(np.frombuffer(qr_png(text), np.uint8), cv2.IMREAD_GRAYSCALE)
    frame = np.full((720, 1280), 120, np.uint8)
    frame[100 : 100 + code.shape[0], 400 : 400 + code.shape[1]] = code
    return frame


@pytest.fixture
def told() -> list[Event]:
    return []


@pytest.fixture
def pipeline(tmp_path: Path, trust: TrustStore, told: list[Event]) -> Pipeline:
    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    return Pipeline(
        QrDecoder(), Store(tmp_path / "s.db"), TrustedClock(), venue, feedback=told.append
    )


def test_green_code_in_a_frame_passes_and_is_recorded(
    pipeline: Pipeline, health_key: SigningKey, told: list[Event], tmp_path: Path
) -> None:
    events = pipeline.process_image(frame_with(green_code(health_key)), "camera:0")
    assert [event.decision.outcome for event in events] == [Outcome.PASS]
    assert told == events
    stored = Store(tmp_path / "s.db").pending(10)
    assert [str(item.id) for item in stored] == [events[0].checkin_id]
    assert stored[0].person_ref == "p_green"
    assert stored[0].venue_id == "v_1"


def test_feedback_comes_after_the_checkin_is_on_disk(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey
) -> None:
    store = Store(tmp_path / "s.db")
    on_disk_when_told: list[int] = []

    def feedback(event: Event) -> None:
        on_disk_when_told.append(Store(tmp_path / "s.db").counts()[0])

    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    Pipeline(QrDecoder(), store, TrustedClock(), venue, feedback=feedback).process_text(
        green_code(health_key), "test"
    )
    assert on_disk_when_told == [1]


def test_same_code_again_makes_no_second_checkin(
    pipeline: Pipeline, health_key: SigningKey, tmp_path: Path
) -> None:
    text = green_code(health_key)
    first = pipeline.process_text(text, "a")
    again = pipeline.process_text(text, "b")
    assert first.decision.outcome is Outcome.PASS
    assert again.decision.outcome is Outcome.IGNORED
    assert again.decision.reasons == (REPEAT_REASON,)
    assert again.checkin_id is None
    assert Store(tmp_path / "s.db").counts() == (1, 0)


def test_a_fresh_code_of_the_same_person_is_a_repeat(
    pipeline: Pipeline, health_key: SigningKey
) -> None:
    pipeline.process_text(green_code(health_key), "a")
    assert pipeline.process_text(green_code(health_key), "b").decision.outcome is Outcome.IGNORED
    other = pipeline.process_text(green_code(health_key, person_ref="p_other"), "c")
    assert other.decision.outcome is Outcome.PASS


def test_plain_text_is_ignored_and_not_recorded(pipeline: Pipeline, tmp_path: Path) -> None:
    event = pipeline.process_text("just some text", "a")
    assert event.decision.outcome is Outcome.IGNORED
    assert Store(tmp_path / "s.db").counts() == (0, 0)


def test_denials_and_referrals_are_recorded_too(
    pipeline: Pipeline, health_key: SigningKey, tmp_path: Path
) -> None:
    stale = pipeline.process_text(green_code(health_key, "p_stale", test_hours=60), "a")
    foreign = pipeline.process_text(green_code(SigningKey.generate(), "p_foreign"), "b")
    assert stale.decision.outcome is Outcome.DENY
    assert foreign.decision.outcome is Outcome.REFER
    stored = {item.outcome: item for item in Store(tmp_path / "s.db").pending(10)}
    assert stored[Outcome.DENY].person_ref == "p_stale"
    assert stored[Outcome.REFER].person_ref is None  # an unverified subject is not kept


@pytest.fixture
def modbus_thermometer() -> Iterator[Emulator]:
    with Emulator("modbus", celsius=36.6) as emulator:
        yield emulator


def measured_pipeline(
    tmp_path: Path, trust: TrustStore, emulator: Emulator, offset: float
) -> tuple[Pipeline, Peripherals]:
    """A pipeline whose temperatures come from the emulated thermometer through Peripherals."""
    fitted = Peripherals(
        PeripheralOptions(
            thermometer_port=emulator.port,
            thermometer_protocol=emulator.protocol,
            thermometer_offset=offset,
        ),
        on_card=lambda identity, origin, validity: None,
    )
    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    pipeline = Pipeline(
        QrDecoder(),
        Store(tmp_path / "s.db"),
        TrustedClock(),
        venue,
        feedback=lambda event: None,
        temperature=fitted.temperature,
    )
    return pipeline, fitted


def test_a_fever_is_refused_and_its_raw_readings_are_kept_with_the_check_in(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey, modbus_thermometer: Emulator
) -> None:
    # 20.0 + 0.2 is implausible; 37.5 + 0.2 is at the threshold, so measured again: 37.9.
    modbus_thermometer.play([20.0, 37.5, 37.7])
    pipeline, fitted = measured_pipeline(tmp_path, trust, modbus_thermometer, offset=0.2)
    try:
        event = pipeline.process_text(green_code(health_key), "camera")
    finally:
        fitted.close()
    assert event.decision.outcome is Outcome.DENY
    assert event.temperature_c == 37.9
    assert any(reason.startswith("fever") for reason in event.decision.reasons)
    (stored,) = Store(tmp_path / "s.db").pending(10)
    assert stored.temperature_c == 37.9
    assert stored.thermometer == ThermometerReadings(
        outcome="fever", threshold=37.3, offset=0.2, raw=[37.5, 37.7], implausible_raw=[20.0]
    )


def test_a_silent_thermometer_is_no_reading_for_the_policy_and_the_record(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey, modbus_thermometer: Emulator
) -> None:
    modbus_thermometer.go_silent()
    pipeline, fitted = measured_pipeline(tmp_path, trust, modbus_thermometer, offset=0.0)
    try:
        event = pipeline.process_text(green_code(health_key), "camera")
    finally:
        fitted.close()
    assert event.decision.outcome is Outcome.PASS  # a public place does not require one
    assert event.temperature_c is None
    (stored,) = Store(tmp_path / "s.db").pending(10)
    assert stored.temperature_c is None
    assert stored.thermometer is not None
    assert (stored.thermometer.outcome, stored.thermometer.raw) == ("no-reading", [])


def test_a_code_that_is_not_a_person_is_not_measured(
    tmp_path: Path, trust: TrustStore, modbus_thermometer: Emulator
) -> None:
    pipeline, fitted = measured_pipeline(tmp_path, trust, modbus_thermometer, offset=0.0)
    try:
        pipeline.process_text("just some text", "camera")
    finally:
        fitted.close()
    assert modbus_thermometer.requests_seen == 0


def test_untrusted_clock_refers(tmp_path: Path, trust: TrustStore, health_key: SigningKey) -> None:
    venue = VenueState("v_1", default_ruleset(VenueCategory.RESIDENTIAL), trust)
    pipeline = Pipeline(
        QrDecoder(),
        Store(tmp_path / "s.db"),
        TrustedClock(trusted=False),
        venue,
        feedback=lambda event: None,
    )
    event = pipeline.process_text(green_code(health_key), "a")
    assert event.decision.outcome is Outcome.REFER
    assert Store(tmp_path / "s.db").pending(1)[0].clock_trusted is False


def test_the_venues_dcc_value_sets_decide_which_codes_are_known(tmp_path: Path) -> None:
    """An EU DCC rapid test from a device the packaged value sets lack is referred; with the
    newer set the host sent (in the venue state), the next scan passes."""
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"the DCC schemas are not at {SCHEMA_DIR}")
    signer = SpecimenSigner.generate()
    now = datetime.now(UTC)
    sampled = (now - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    payload = specimen_payload("t")
    payload["t"][0] |= {"tt": "LP217198-3", "ma": "9999", "sc": sampled}
    trust = trust_list([signer.certificate])
    rules = default_ruleset(VenueCategory.PUBLIC_PLACE)
    pipeline = Pipeline(
        QrDecoder(),
        Store(tmp_path / "s.db"),
        TrustedClock(),
        VenueState("v_1", rules, trust),
        feedback=lambda event: None,
        dcc_schemas=SchemaStore.from_directory(SCHEMA_DIR),
    )
    first = pipeline.process_text(issue_dcc(payload, signer, issued_at=now), "a")
    assert first.decision.outcome is Outcome.REFER
    assert first.decision.reasons[0].startswith("unknown-code: $.t[0].ma")
    held = packaged_value_sets().sets[TEST_DEVICES]
    newer = ValueSet(TEST_DEVICES, held.date + timedelta(days=1), held.codes | {"9999"})
    pipeline.update_venue(
        VenueState("v_1", rules, trust, None, packaged_value_sets().updated([newer]))
    )
    again = pipeline.process_text(issue_dcc(payload, signer, issued_at=now), "b")
    assert again.decision.outcome is Outcome.PASS


def test_before_any_configuration_nothing_passes(tmp_path: Path, health_key: SigningKey) -> None:
    pipeline = Pipeline(
        QrDecoder(),
        Store(tmp_path / "s.db"),
        TrustedClock(),
        VenueState("v_1", None),
        feedback=lambda event: None,
    )
    assert pipeline.process_text(green_code(health_key), "a").decision.outcome is Outcome.REFER


def test_new_venue_configuration_applies_to_the_next_scan(
    pipeline: Pipeline, trust: TrustStore, health_key: SigningKey
) -> None:
    stale = green_code(health_key, "p_stale", test_hours=60)
    assert pipeline.process_text(stale, "a").decision.outcome is Outcome.DENY
    pipeline.update_venue(VenueState("v_1", default_ruleset(VenueCategory.RESIDENTIAL), trust))
    other = green_code(health_key, "p_stale2", test_hours=60)
    assert pipeline.process_text(other, "b").decision.outcome is Outcome.PASS


def test_repeat_filter_forgets_a_code_once_it_is_out_of_sight_for_the_window() -> None:
    now = [0.0]
    repeats = RepeatFilter(10, clock=lambda: now[0])
    assert not repeats.seen_recently("a")
    now[0] = 9.9
    assert repeats.seen_recently("a")
    assert not repeats.seen_recently("b")
    now[0] = 19.0  # "a" held up since 0 but last seen at 9.9: still the same check-in
    assert repeats.seen_recently("a")
    now[0] = 29.5  # not seen for more than 10 s
    assert not repeats.seen_recently("a")
    assert not repeats.seen_recently("b")


def test_clock_trust_and_offset(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    clock = DeviceClock(ntp_flag=flag)
    assert not clock.trusted
    flag.touch()
    assert clock.trusted
    skewed = DeviceClock(ntp_flag=tmp_path / "absent")
    local = skewed.now_ms()
    skewed.observe_host_time(local + 3_600_000, local, local)
    assert skewed.trusted
    assert abs(skewed.now_ms() - (local + 3_600_000)) < 1000
    small = DeviceClock(ntp_flag=tmp_path / "absent")
    local = small.now_ms()
    small.observe_host_time(local + 500, local, local)
    assert abs(small.now_ms() - local) < 400  # small differences are left to NTP


def test_pipeline_is_safe_across_threads(
    pipeline: Pipeline, health_key: SigningKey, tmp_path: Path
) -> None:
    texts = [green_code(health_key, f"p_{index}") for index in range(40)]
    workers = [
        threading.Thread(target=lambda part=part: [pipeline.process_text(t, "x") for t in part])
        for part in (texts[:20], texts[20:])
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert Store(tmp_path / "s.db").counts() == (40, 0)


def test_repeated_host_observations_converge_rather_than_flip(tmp_path: Path) -> None:
    clock = DeviceClock(ntp_flag=tmp_path / "absent")
    true_ms = clock.now_ms()
    clock.observe_host_time(true_ms - 3_600_000, true_ms, true_ms)  # an hour slow
    for _ in range(3):  # then the host keeps saying the true time
        reading = clock.now_ms()
        clock.observe_host_time(clock.now_ms() - reading + true_ms, reading, reading)
    assert abs(clock.now_ms() - true_ms) < 1000


# ---- paper codes and ID cards -------------------------------------------------------------

HOLDER_ID = "110101199003071233"
HOLDER_CARD = CardIdentity.of(DocumentType.CN_ID, "CHN", HOLDER_ID)
STRANGER_CARD = CardIdentity.of(DocumentType.CN_ID, "CHN", "110101199003079999")


def paper_code(key: SigningKey, person_ref: str = "p_paper") -> str:
    now = datetime.now(UTC)
    code = healthcode.new_code(
        person_ref=person_ref,
        kind=CodeKind.PAPER,
        colour=Colour.GREEN,
        test=NucleicTest(now - timedelta(hours=10), TestResult.NEGATIVE),
        now=now,
        id_number=HOLDER_ID,
    )
    return healthcode.issue(code, key)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> FakeMonotonic:
    return FakeMonotonic()


def reader_kiosk(
    tmp_path: Path,
    trust: TrustStore,
    told: list[Event],
    *,
    sealing_key: bytes | None = None,
    deny_list: DenyList | None = None,
    **options: Any,
) -> Pipeline:
    """A kiosk with an ID-card reader and a deny list fresh from the host.

    sealing_key: the host's key ID cards are sealed to; `options` go to the Pipeline.
    """
    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust, sealing_key)
    fresh_list = DenyListState(lookup=deny_list, age_minutes=10)
    return Pipeline(
        QrDecoder(),
        Store(tmp_path / "s.db"),
        TrustedClock(),
        venue,
        feedback=told.append,
        deny_list=lambda: fresh_list,
        id_reader=True,
        **options,
    )


@pytest.fixture
def kiosk_with_reader(
    tmp_path: Path, trust: TrustStore, told: list[Event], ticks: FakeMonotonic
) -> Pipeline:
    return reader_kiosk(tmp_path, trust, told, monotonic=ticks)


def test_a_paper_code_waits_for_its_holders_id_card(
    kiosk_with_reader: Pipeline, health_key: SigningKey, told: list[Event], tmp_path: Path
) -> None:
    waiting = kiosk_with_reader.process_text(paper_code(health_key), "camera")
    assert waiting.decision.reasons == (SHOW_ID_REASON,)
    assert Store(tmp_path / "s.db").counts() == (0, 0)  # nothing decided yet
    done = kiosk_with_reader.present_id(HOLDER_CARD, "sam")
    assert done.decision.outcome is Outcome.PASS
    assert done.origin == "camera+sam"
    assert done.holder == "1101**********1233"
    stored = Store(tmp_path / "s.db").pending(10)
    assert [item.person_ref for item in stored] == ["p_paper"]
    for written in tmp_path.iterdir():  # the database and its WAL: no ID number anywhere
        assert HOLDER_ID.encode() not in written.read_bytes()


def test_the_temperature_taken_with_a_paper_code_is_the_one_recorded_with_its_id_card(
    tmp_path: Path,
    trust: TrustStore,
    health_key: SigningKey,
    told: list[Event],
    ticks: FakeMonotonic,
) -> None:
    readings = ThermometerReadings(outcome="normal", threshold=37.3, offset=0.0, raw=[36.4])
    taken: list[Temperature] = []

    def thermometer() -> Temperature:  # stands in for Peripherals.temperature
        taken.append(Temperature(36.4, readings))
        return taken[-1]

    kiosk = reader_kiosk(tmp_path, trust, told, monotonic=ticks, temperature=thermometer)
    kiosk.process_text(paper_code(health_key), "camera")
    done = kiosk.present_id(HOLDER_CARD, "sam")
    assert (done.decision.outcome, done.temperature_c, len(taken)) == (Outcome.PASS, 36.4, 1)
    [stored] = Store(tmp_path / "s.db").pending(10)
    assert (stored.temperature_c, stored.thermometer) == (36.4, readings)


def test_an_id_card_read_first_is_checked_against_the_paper_code_that_follows(
    kiosk_with_reader: Pipeline, health_key: SigningKey
) -> None:
    alone = kiosk_with_reader.present_id(STRANGER_CARD, "sam")
    assert alone.kind is CredentialKind.ID_CARD  # decided alone as well: offline, staff decide
    assert alone.decision.reasons[0].startswith("id-card-offline")
    event = kiosk_with_reader.process_text(paper_code(health_key), "camera")
    assert event.decision.outcome is Outcome.DENY
    assert "paper-code-id-mismatch" in event.decision.reasons[0]


def test_an_id_card_vouches_for_one_paper_code_only(
    kiosk_with_reader: Pipeline, health_key: SigningKey
) -> None:
    kiosk_with_reader.present_id(HOLDER_CARD, "sam")
    first = kiosk_with_reader.process_text(paper_code(health_key, "p_first"), "camera")
    second = kiosk_with_reader.process_text(paper_code(health_key, "p_second"), "camera")
    assert first.decision.outcome is Outcome.PASS
    assert second.decision.reasons == (SHOW_ID_REASON,)


def test_a_paper_code_whose_card_never_comes_goes_to_staff(
    kiosk_with_reader: Pipeline, health_key: SigningKey, ticks: FakeMonotonic, tmp_path: Path
) -> None:
    kiosk_with_reader.process_text(paper_code(health_key), "camera")
    assert kiosk_with_reader.expire_waiting() == []
    ticks.now += PAPER_WAIT_SECONDS + 1
    [expired] = kiosk_with_reader.expire_waiting()
    assert expired.decision.outcome is Outcome.REFER
    assert expired.decision.reasons[0].startswith("paper-code-needs-id")
    assert Store(tmp_path / "s.db").counts() == (1, 0)
    # A card arriving after that is decided alone, not applied to the old code.
    late = kiosk_with_reader.present_id(HOLDER_CARD, "sam")
    assert (late.kind, late.origin) == (CredentialKind.ID_CARD, "sam")


def test_without_a_reader_a_paper_code_goes_straight_to_staff(
    pipeline: Pipeline, health_key: SigningKey
) -> None:
    event = pipeline.process_text(paper_code(health_key), "camera")
    assert event.decision.outcome is Outcome.REFER
    assert event.checkin_id is not None


# ---- an ID card shown alone ---------------------------------------------------------------


@pytest.fixture(scope="module")
def host_sealing_key() -> SealingKey:
    return SealingKey.generate()


def card_kiosk(
    tmp_path: Path,
    trust: TrustStore,
    told: list[Event],
    sealing: SealingKey,
    answers: dict[str, IdentityStatus],
    deny_list: DenyList | None = None,
) -> Pipeline:
    """A kiosk whose host answers from `answers` (by ID number); an empty dict: offline."""

    def lookup(sealed: str) -> IdentityStatus | None:
        return answers.get(sealing.open(sealed).number)  # the host opens what the kiosk sealed

    return reader_kiosk(
        tmp_path,
        trust,
        told,
        sealing_key=sealing.public_raw,
        deny_list=deny_list,
        identity_lookup=lookup,
    )


GREEN = HealthStatus(
    Colour.GREEN, NucleicTest(datetime.now(UTC) - timedelta(hours=5), TestResult.NEGATIVE)
)


def test_an_id_card_alone_is_decided_by_the_holders_status_online(
    tmp_path: Path, trust: TrustStore, told: list[Event], host_sealing_key: SealingKey
) -> None:
    answers = {HOLDER_ID: IdentityStatus("p_card", GREEN)}
    kiosk = card_kiosk(tmp_path, trust, told, host_sealing_key, answers)
    event = kiosk.present_id(HOLDER_CARD, "sam:/dev/ttyUSB0")
    assert (event.kind, event.decision.outcome) == (CredentialKind.ID_CARD, Outcome.PASS)
    assert event.holder == "1101**********1233"
    [stored] = Store(tmp_path / "s.db").pending(10)
    assert (stored.person_ref, stored.sealed_identity) == ("p_card", None)
    again = kiosk.present_id(HOLDER_CARD, "sam:/dev/ttyUSB0")  # the card left on the reader
    assert again.decision.outcome is Outcome.IGNORED
    assert Store(tmp_path / "s.db").counts() == (1, 0)


def test_a_red_holder_is_denied_and_an_unknown_one_referred(
    tmp_path: Path, trust: TrustStore, told: list[Event], host_sealing_key: SealingKey
) -> None:
    answers = {
        HOLDER_ID: IdentityStatus("p_card", HealthStatus(Colour.RED, None)),
        STRANGER_CARD.number: IdentityStatus("u_0123", None),
    }
    kiosk = card_kiosk(tmp_path, trust, told, host_sealing_key, answers)
    red = kiosk.present_id(HOLDER_CARD, "sam")
    unknown = kiosk.present_id(STRANGER_CARD, "sam")
    assert red.decision.outcome is Outcome.DENY
    assert red.decision.reasons[0].startswith("colour-not-accepted: red")
    assert unknown.decision.outcome is Outcome.REFER
    assert unknown.decision.reasons[0].startswith("id-card-unknown")


def test_a_card_out_of_date_is_referred_even_for_a_green_holder(
    tmp_path: Path, trust: TrustStore, told: list[Event], host_sealing_key: SealingKey
) -> None:
    answers = {HOLDER_ID: IdentityStatus("p_card", GREEN)}
    kiosk = card_kiosk(tmp_path, trust, told, host_sealing_key, answers)
    event = kiosk.present_id(HOLDER_CARD, "sam", CardValidity.EXPIRED)
    assert event.decision.outcome is Outcome.REFER
    assert event.decision.reasons == (
        "id-card-not-valid: expired; the ID card must be within its validity dates [ID-VALID]",
    )
    [stored] = Store(tmp_path / "s.db").pending(10)
    assert (stored.outcome, stored.person_ref) == (Outcome.REFER, "p_card")


def test_offline_the_identity_is_sealed_for_the_host_and_staff_decide(
    tmp_path: Path, trust: TrustStore, told: list[Event], host_sealing_key: SealingKey
) -> None:
    kiosk = card_kiosk(tmp_path, trust, told, host_sealing_key, answers={})
    event = kiosk.present_id(HOLDER_CARD, "sam")
    assert event.decision.outcome is Outcome.REFER
    assert event.decision.reasons[0].startswith("id-card-offline")
    [stored] = Store(tmp_path / "s.db").pending(10)
    assert stored.person_ref is None
    assert host_sealing_key.open(stored.sealed_identity) == HOLDER_CARD
    for written in tmp_path.iterdir():  # the database and its WAL: the number only sealed
        assert HOLDER_ID.encode() not in written.read_bytes()


def test_offline_a_card_on_the_deny_list_is_refused(
    tmp_path: Path, trust: TrustStore, told: list[Event], host_sealing_key: SealingKey
) -> None:
    listed = DenyList.of(1, datetime.now(UTC), [(HashKind.IDENTITY, identity_hash(HOLDER_CARD))])
    kiosk = card_kiosk(tmp_path, trust, told, host_sealing_key, {}, deny_list=listed)
    assert kiosk.present_id(HOLDER_CARD, "sam").decision.outcome is Outcome.DENY
    assert kiosk.present_id(STRANGER_CARD, "sam").decision.outcome is Outcome.REFER


def test_a_full_disk_refers_the_person_and_lets_nobody_through_unrecorded(
    tmp_path: Path, trust: TrustStore, health_key: SigningKey, told: list[Event]
) -> None:
    store = Store(tmp_path / "s.db")
    venue = VenueState("v_1", default_ruleset(VenueCategory.PUBLIC_PLACE), trust)
    kiosk = Pipeline(QrDecoder(), store, TrustedClock(), venue, feedback=told.append)
    connection = store._connect()  # the pipeline's own connection, on this thread
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL, as from the disk
    events = [kiosk.process_text(green_code(health_key, f"p_{n}"), "camera") for n in range(60)]
    refused = [event for event in events if event.checkin_id is None]
    assert refused, "the database never filled up"
    for event in refused:
        assert event.decision.outcome is Outcome.REFER  # never a pass that was not recorded
        assert event.decision.reasons[0].startswith("cannot-record: ")
    recorded = {str(item.id) for item in store.pending(1000)}
    assert recorded == {event.checkin_id for event in events if event.checkin_id is not None}
    assert told == events  # everyone was told something


def test_out_of_service_every_check_is_referred_and_names_no_one(
    pipeline: Pipeline, health_key: SigningKey, tmp_path: Path
) -> None:
    assert pipeline.process_text(green_code(health_key), "a").decision.outcome is Outcome.PASS
    pipeline.stop_service("host answered 403 device-revoked")
    event = pipeline.process_text(green_code(health_key, person_ref="p_next"), "b")
    assert event.decision.outcome is Outcome.REFER
    assert event.decision.reasons == ("out-of-service: host answered 403 device-revoked",)
    assert pipeline.process_text("hello", "c").decision.outcome is Outcome.IGNORED
    stored = Store(tmp_path / "s.db").pending(10)
    assert [checkin.person_ref for checkin in stored] == ["p_green", None]
