"""Staff decisions at the kiosk: only referrals, only with a PIN, once, in time; durable first."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from uuid import UUID

import pytest
from gpiozero.pins.mock import MockFactory

from device.agent import DATABASE_FILE, Agent, RunOptions
from device.clock import DeviceClock
from device.peripherals import PeripheralOptions
from device.pins import MAX_FAILURES, StaffPins
from device.pipeline import Event
from device.staff import OVERRIDE_SECONDS, StaffDesk, StaffRefusal
from device.store import Store
from hardware.gpio import SignalsConfig
from shared.messages import StaffAction, StaffReason
from shared.policy import Decision, Outcome
from shared.sealed import CardIdentity, DocumentType
from tests.device.test_store import checkin
from tests.hardware.gpio.conftest import FAST, levels, wait_until

PIN = "482916"
GATE = 23
UNKNOWN_HOLDER = CardIdentity.of(DocumentType.CN_ID, "CHN", "110101198501010017")
LET_THROUGH, REFUSE = StaffAction.LET_THROUGH, StaffAction.REFUSE
EMERGENCY = StaffReason.EMERGENCY
OFFLINE = Decision(Outcome.REFER, ("id-card-offline: cannot look the holder up",))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def told() -> list[Event]:
    return []


@pytest.fixture
def agent(enrolled_state: Path, factory: MockFactory, told: list[Event]) -> Iterator[Agent]:
    """An enrolled kiosk, offline, with a gate on a mock pin and one staff PIN (S01)."""
    signals = SignalsConfig(gate_pin=GATE, **FAST)
    options = RunOptions(peripherals=PeripheralOptions(signals=signals, pin_factory=factory))
    agent = Agent(enrolled_state, decoder=None, options=options, events=told.append)  # type: ignore[arg-type]
    StaffPins(agent.store).add("S01", PIN)
    yield agent
    agent.peripherals.close()
    agent.client.close()


def referral(agent: Agent) -> Event:
    """An ID card shown offline: the kiosk cannot look its holder up, so staff are asked."""
    event = agent.pipeline.present_id(UNKNOWN_HOLDER, "sam:test")
    assert event.decision.outcome is Outcome.REFER and event.checkin_id is not None
    return event


def stored_decision(agent: Agent, checkin_id: str) -> tuple | None:
    """(staff, action, reason, venue) of the decision on a check-in, read from the file."""
    with closing(sqlite3.connect(agent.store.path)) as db:
        return db.execute(
            "SELECT staff_id, action, reason, venue_id FROM staff_decisions WHERE checkin_id = ?",
            (checkin_id,),
        ).fetchone()


def gate_opened(factory: MockFactory) -> bool:
    """Whether the gate relay has been on (it is switched on the signals' own thread)."""
    return True in levels(factory.pin(GATE))


def gate_opens(factory: MockFactory) -> bool:
    return wait_until(lambda: gate_opened(factory))


def test_staff_let_a_referral_through_with_their_pin_and_the_gate_opens(
    agent: Agent, factory: MockFactory, told: list[Event]
) -> None:
    referred = referral(agent)
    assert not gate_opened(factory)
    settled = agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    assert settled.decision.outcome is Outcome.PASS
    assert settled.decision.reasons == ("staff-let-through: emergency",)
    assert (settled.checkin_id, settled.staff_id, settled.origin) == (
        referred.checkin_id,
        "S01",
        "staff:S01",
    )
    assert settled.holder == referred.holder  # masked, as the referral showed it
    assert told[-1] == settled
    assert gate_opens(factory)
    assert stored_decision(agent, referred.checkin_id) == (
        "S01",
        "let-through",
        "emergency",
        "v_bench",
    )
    assert agent.desk.open_referrals() == []


def test_a_refusal_keeps_the_gate_shut(agent: Agent, factory: MockFactory) -> None:
    referred = referral(agent)
    refused = agent.desk.decide(referred.checkin_id, REFUSE, StaffReason.IDENTITY_CHECKED, PIN)
    assert refused.decision.outcome is Outcome.DENY
    assert refused.decision.reasons == ("staff-refused: identity-checked",)
    assert not gate_opened(factory)


def test_a_wrong_pin_changes_nothing_and_enough_of_them_lock_the_right_one_out(
    agent: Agent, factory: MockFactory
) -> None:
    referred = referral(agent)
    for _ in range(MAX_FAILURES):
        with pytest.raises(StaffRefusal) as refused:
            agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, "000000")
    assert refused.value.code == "locked"
    with pytest.raises(StaffRefusal, match="try again later"):
        agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    assert not gate_opened(factory)
    assert stored_decision(agent, referred.checkin_id) is None
    assert [item.event for item in agent.desk.open_referrals()] == [referred]  # still waiting


def test_only_an_open_referral_is_settled_and_only_once(agent: Agent) -> None:
    passed = agent.pipeline.process_text("not a credential", "camera")  # tells, records nothing
    assert passed.checkin_id is None
    referred = referral(agent)
    agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    with pytest.raises(StaffRefusal, match=r"no referral .* is open") as again:
        agent.desk.decide(referred.checkin_id, REFUSE, EMERGENCY, PIN)
    assert again.value.code == "not-open"
    assert stored_decision(agent, referred.checkin_id)[1] == "let-through"  # the first stands


def test_a_pass_is_never_open_to_staff(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    desk = StaffDesk(store, StaffPins(store), DeviceClock(), tell=lambda event: None)
    recorded = checkin(Outcome.PASS)
    store.record(recorded)
    with pytest.raises(StaffRefusal, match="no referral"):
        desk.decide(str(recorded.id), REFUSE, StaffReason.OTHER, PIN)


def test_a_referral_waits_for_staff_for_a_while_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    StaffPins(store).add("S01", PIN)
    now = [100.0]
    desk = StaffDesk(
        store, StaffPins(store), DeviceClock(), tell=lambda event: None, monotonic=lambda: now[0]
    )
    recorded = checkin(Outcome.REFER)
    store.record(recorded)
    desk.observe(Event("sam", recorded.kind, OFFLINE, str(recorded.id)))
    assert len(desk.open_referrals()) == 1
    now[0] += OVERRIDE_SECONDS + 1
    assert desk.open_referrals() == []
    with pytest.raises(StaffRefusal, match="older than 5 minutes"):
        desk.decide(str(recorded.id), LET_THROUGH, EMERGENCY, PIN)


def test_the_decision_is_on_disk_before_anyone_is_told(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    StaffPins(store).add("S01", PIN)
    on_disk_when_told: list[int] = []
    desk = StaffDesk(
        store,
        StaffPins(store),
        DeviceClock(),
        tell=lambda event: on_disk_when_told.append(Store(tmp_path / "s.db").staff_counts()[0]),
    )
    recorded = checkin(Outcome.REFER)
    store.record(recorded)
    desk.observe(Event("sam", recorded.kind, OFFLINE, str(recorded.id)))
    desk.decide(str(recorded.id), LET_THROUGH, EMERGENCY, PIN)
    assert on_disk_when_told == [1]


def test_a_decision_that_cannot_be_recorded_opens_nothing(
    agent: Agent, factory: MockFactory, told: list[Event]
) -> None:
    referred = referral(agent)
    agent.store._connect().execute("PRAGMA query_only = ON")  # as a read-only disk would
    with pytest.raises(StaffRefusal, match="not recorded, nothing done") as refused:
        agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    assert refused.value.code == "cannot-record"
    assert not gate_opened(factory)
    assert told[-1] == referred
    agent.store._connect().execute("PRAGMA query_only = OFF")
    agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)  # still open: try again
    assert gate_opens(factory)


def test_decisions_wait_to_be_sent_until_the_host_has_their_check_in(agent: Agent) -> None:
    referred = referral(agent)
    agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    assert agent.store.pending_staff_decisions(10) == []  # its check-in is not acknowledged
    agent.store.mark_acked([UUID(referred.checkin_id)])
    [decision] = agent.store.pending_staff_decisions(10)
    assert str(decision.checkin_id) == referred.checkin_id
    agent.store.mark_staff_decisions_acked([decision.id])
    assert agent.store.pending_staff_decisions(10) == []
    assert agent.store.staff_counts() == (1, 1)
    assert Store(agent.store.path).purge_acked(-1) == 1  # acknowledged ones go after retention
    assert agent.store.staff_counts() == (0, 0)


def test_nothing_of_the_card_is_kept_in_clear(agent: Agent, enrolled_state: Path) -> None:
    referred = referral(agent)
    agent.desk.decide(referred.checkin_id, LET_THROUGH, EMERGENCY, PIN)
    agent.store.close()
    on_disk = b"".join(path.read_bytes() for path in enrolled_state.glob(DATABASE_FILE + "*"))
    assert UNKNOWN_HOLDER.number.encode() not in on_disk
    assert PIN.encode() not in on_disk
