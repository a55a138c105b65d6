"""The handheld: scanning on a trigger only, vehicles and their occupants, registration by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from device.agent import Agent, RunOptions
from device.handheld import MANUAL_ORIGIN, Handheld, ScanTrigger, plate_binding
from device.peripherals import PeripheralOptions
from device.pins import StaffPins
from device.pipeline import Event, Pipeline, VenueState
from device.store import Store
from hardware.frames import open_source
from hardware.qr import QrDecoder
from shared.keys import SigningKey, TrustStore
from shared.messages import DeviceForm, StaffAction, StaffReason
from shared.policy import Outcome, VenueCategory
from shared.rules.defaults import default_ruleset
from shared.sealed import CardIdentity, DocumentType, SealingKey
from shared.venuecode import Binding, BindingKind, VenueCode, issue_url
from tests.device.test_pipeline import TrustedClock
from tests.hardware.gpio.conftest import wait_until

HOLDERS = [
    CardIdentity.of(DocumentType.CN_ID, "CHN", number)
    for number in ("110101198501010017", "110101199003071233")
]
TYPED = "110101198501010017"
TRIGGER = 5


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def handheld_agent(enrolled_state: Path, factory: MockFactory) -> Iterator[Agent]:
    """An enrolled device run as a handheld, offline, with a scan button on a mock pin."""
    peripherals = PeripheralOptions(trigger_pin=TRIGGER, pin_factory=factory)
    options = RunOptions(form=DeviceForm.HANDHELD, peripherals=peripherals, scan_seconds=60)
    agent = Agent(enrolled_state, QrDecoder(), options=options)
    yield agent
    agent.peripherals.close()
    agent.client.close()


def test_a_trigger_scans_for_a_while_or_until_disarmed() -> None:
    now = [10.0]
    trigger = ScanTrigger(5, monotonic=lambda: now[0])
    assert not trigger.armed()
    trigger.arm()
    now[0] += 4.9
    assert trigger.armed()
    now[0] += 0.2
    assert not trigger.armed()
    trigger.arm()
    trigger.disarm()
    assert not trigger.armed()
    with pytest.raises(ValueError, match="positive number of seconds"):
        ScanTrigger(0)


def test_a_handheld_reads_no_frame_until_triggered_then_stops_at_the_decision(
    enrolled_state: Path, enrolled_template: Path
) -> None:
    clip = str(enrolled_template.parent / "clip.avi")  # a person showing a code
    options = RunOptions(form=DeviceForm.HANDHELD, scan_seconds=60)
    untouched = Agent(enrolled_state, QrDecoder(), options=options)
    assert untouched.run(open_source(clip)) == 0
    assert untouched.store.counts() == (0, 0)  # the camera was on, nothing was read
    triggered = Agent(enrolled_state, QrDecoder(), options=options)
    assert triggered.handheld is not None
    triggered.handheld.scan()
    assert triggered.run(open_source(clip)) == 0
    assert triggered.store.counts()[0] == 1
    assert not triggered.handheld.trigger.armed()  # the decision ended the scan


def test_the_scan_button_on_its_gpio_pin_triggers_a_scan(
    handheld_agent: Agent, factory: MockFactory
) -> None:
    assert handheld_agent.handheld is not None
    assert handheld_agent.reporter.components["trigger"]().state.value == "ok"
    assert not handheld_agent.handheld.trigger.armed()
    factory.pin(TRIGGER).drive_low()  # pressed: the button connects the pin to ground
    assert wait_until(handheld_agent.handheld.trigger.armed)


def test_a_kiosk_leaves_the_trigger_unused(
    enrolled_state: Path, factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    peripherals = PeripheralOptions(trigger_pin=TRIGGER, pin_factory=factory)
    agent = Agent(enrolled_state, QrDecoder(), options=RunOptions(peripherals=peripherals))
    assert agent.handheld is None and agent.peripherals.trigger is None
    assert "--trigger-pin left unused" in caplog.text
    agent.client.close()


def test_a_vehicle_groups_its_occupants_under_its_plate(handheld_agent: Agent) -> None:
    handheld = handheld_agent.handheld
    assert handheld is not None
    group = handheld.start_vehicle(" 京a 12345 ")
    assert group.binding == "plate:京A12345"
    first, second = (handheld_agent.pipeline.present_id(holder, "sam") for holder in HOLDERS)
    vehicle = handheld.vehicle()
    assert vehicle is not None and vehicle.group == group
    assert [event.checkin_id for event in vehicle.occupants] == [
        first.checkin_id,
        second.checkin_id,
    ]
    stored = handheld_agent.store.pending(10)
    assert [(item.binding, item.group_id) for item in stored] == [
        ("plate:京A12345", group.id),
        ("plate:京A12345", group.id),
    ]
    assert first.binding == "plate:京A12345" and first.group_id == str(group.id)

    # Staff let the first occupant through: the list shows their decision in its place.
    StaffPins(handheld_agent.store).add("S01", "482916")
    handheld_agent.desk.decide(
        first.checkin_id, StaffAction.LET_THROUGH, StaffReason.IDENTITY_CHECKED, "482916"
    )
    vehicle = handheld.vehicle()
    assert vehicle is not None
    assert [event.decision.outcome for event in vehicle.occupants] == [Outcome.PASS, Outcome.REFER]
    assert vehicle.occupants[0].staff_id == "S01"

    handheld.end_vehicle()
    assert handheld.vehicle() is None
    later = handheld_agent.pipeline.process_text("not a credential", "camera")
    assert later.binding is None
    handheld.start_vehicle("沪B·C9988")
    third = handheld_agent.pipeline.present_id(HOLDERS[0], "sam")  # the same person, next car
    assert third.decision.outcome is Outcome.IGNORED  # seen moments ago: no second check-in


@pytest.mark.parametrize("plate", ["", "A:1", "X" * 33])
def test_a_plate_that_cannot_bind_a_check_in_is_refused(plate: str) -> None:
    with pytest.raises(ValueError, match="plate: binding value must be 1-32 characters"):
        plate_binding(plate)


def venue_pipeline(
    tmp_path: Path, trust: TrustStore, told: list[Event], sealing: SealingKey | None = None
) -> Pipeline:
    venue = VenueState(
        "v_1",
        default_ruleset(VenueCategory.PUBLIC_PLACE),
        trust,
        None if sealing is None else sealing.public_raw,
    )
    return Pipeline(
        QrDecoder(), Store(tmp_path / "s.db"), TrustedClock(), venue, feedback=told.append
    )


def test_a_plate_bound_venue_code_opens_its_vehicle(
    tmp_path: Path, trust: TrustStore, venue_key: SigningKey
) -> None:
    told: list[Event] = []
    pipeline = venue_pipeline(tmp_path, trust, told)
    handheld = Handheld(pipeline, ScanTrigger(10))
    handheld.scan()
    elsewhere = issue_url(
        VenueCode("v_other", Binding(BindingKind.PLATE, "京A00001")), "https://x.example", venue_key
    )
    handheld.observe(pipeline.process_text(elsewhere, "camera"))
    assert handheld.vehicle() is None  # another venue's code names no vehicle here
    assert handheld.trigger.armed()
    ours = issue_url(
        VenueCode("v_1", Binding(BindingKind.PLATE, "京A12345")), "https://x.example", venue_key
    )
    handheld.observe(pipeline.process_text(ours, "camera"))
    vehicle = handheld.vehicle()
    assert vehicle is not None and vehicle.group.binding == "plate:京A12345"
    assert not handheld.trigger.armed()  # the code ended the scan


def test_registration_by_hand_is_a_card_read_whose_number_is_kept_only_sealed(
    tmp_path: Path, trust: TrustStore
) -> None:
    told: list[Event] = []
    sealing = SealingKey.generate()
    pipeline = venue_pipeline(tmp_path, trust, told, sealing)
    handheld = Handheld(pipeline, ScanTrigger(10))
    event = handheld.register(" " + TYPED[:6] + " " + TYPED[6:] + " ")
    assert event.origin == MANUAL_ORIGIN
    assert event.holder == "1101**********0017"
    assert event.decision.outcome is Outcome.REFER  # offline: no one to ask, staff decide
    [stored] = Store(tmp_path / "s.db").pending(10)
    assert str(stored.id) == event.checkin_id
    assert stored.sealed_identity is not None
    assert sealing.open(stored.sealed_identity).number == TYPED
    on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("s.db*"))
    assert TYPED.encode() not in on_disk


@pytest.mark.parametrize("typed", ["110101198501010018", "11010119850101001", "abc"])
def test_a_number_that_fails_the_check_is_refused_without_quoting_it(
    tmp_path: Path, trust: TrustStore, typed: str
) -> None:
    handheld = Handheld(venue_pipeline(tmp_path, trust, []), ScanTrigger(10))
    with pytest.raises(ValueError, match="MOD 11-2") as refused:
        handheld.register(typed)
    assert typed not in str(refused.value)
    assert Store(tmp_path / "s.db").counts() == (0, 0)
