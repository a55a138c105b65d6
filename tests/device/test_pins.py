"""Staff PINs: scrypt hashes only, a few tries then locked (across restarts), the staff command."""

from __future__ import annotations

import getpass
import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from device.agent import DATABASE_FILE
from device.pins import (
    LOCK_SECONDS,
    MAX_FAILURES,
    MAX_STAFF,
    PinError,
    PinRefused,
    StaffPins,
    hash_pin,
    pin_matches,
)
from device.store import Store
from sentinel.cli import main

PIN, OTHER_PIN = "482916", "705133"


class Clock:
    """Wall-clock seconds the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pins(tmp_path: Path, clock: Clock) -> StaffPins:
    pins = StaffPins(Store(tmp_path / "s.db"), clock=clock)
    pins.add("S01", PIN)
    return pins


def test_a_pin_is_kept_as_a_salted_scrypt_hash_and_never_in_clear(tmp_path: Path) -> None:
    first, second = hash_pin(PIN), hash_pin(PIN)
    assert first.startswith("scrypt$16384$8$1$") and first != second  # a fresh salt each time
    assert pin_matches(PIN, first) and pin_matches(PIN, second)
    assert not pin_matches(OTHER_PIN, first)
    store = Store(tmp_path / "s.db")
    StaffPins(store).add("S01", PIN)
    store.close()
    on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("s.db*"))
    assert b"S01" in on_disk and PIN.encode() not in on_disk


def test_the_pin_names_its_staff_member(pins: StaffPins) -> None:
    pins.add("S02", OTHER_PIN)
    assert pins.identify(PIN) == "S01"
    assert pins.identify(OTHER_PIN) == "S02"
    assert [member.id for member in pins.members()] == ["S01", "S02"]


@pytest.mark.parametrize(
    ("staff_id", "pin", "message"),
    [
        ("S01", OTHER_PIN, "S01 has a PIN already"),
        ("S02", PIN, "another staff member has this PIN"),
        ("S02", "1234", "6 to 12 digits"),
        ("S02", "12345a", "6 to 12 digits"),
        ("S 02", OTHER_PIN, "a staff id is 1-16 letters"),
    ],
)
def test_pins_that_cannot_be_used_are_refused_saying_why(
    pins: StaffPins, staff_id: str, pin: str, message: str
) -> None:
    with pytest.raises(PinError, match=message) as refused:
        pins.add(staff_id, pin)
    assert pin not in str(refused.value)


def test_a_device_holds_a_few_pins_at_most(pins: StaffPins) -> None:
    for number in range(2, MAX_STAFF + 1):
        pins.add(f"S{number:02d}", f"{number:02d}0000")
    with pytest.raises(PinError, match=f"at most {MAX_STAFF}"):
        pins.add("S99", "990000")


def test_wrong_pins_lock_every_pin_for_a_while_even_across_a_restart(
    pins: StaffPins, tmp_path: Path, clock: Clock
) -> None:
    for tries_left in range(MAX_FAILURES - 1, 0, -1):
        with pytest.raises(PinRefused, match=f"{tries_left} tries left"):
            pins.identify("000000")
    with pytest.raises(PinRefused, match="locked for 5 minutes") as locked:
        pins.identify("not a pin")  # anything wrong counts
    assert locked.value.locked_seconds == LOCK_SECONDS
    restarted = StaffPins(Store(tmp_path / "s.db"), clock=clock)
    with pytest.raises(PinRefused, match="try again later"):
        restarted.identify(PIN)  # the right PIN too, while locked
    clock.now += LOCK_SECONDS + 1
    assert restarted.identify(PIN) == "S01"
    with pytest.raises(PinRefused, match=f"{MAX_FAILURES - 1} tries left"):
        restarted.identify("000000")  # the count started again


def test_a_right_pin_clears_the_count(pins: StaffPins) -> None:
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(PinRefused):
            pins.identify("000000")
    assert pins.identify(PIN) == "S01"
    with pytest.raises(PinRefused, match=f"{MAX_FAILURES - 1} tries left"):
        pins.identify("000000")


def test_a_clock_set_back_does_not_lengthen_the_lock(pins: StaffPins, clock: Clock) -> None:
    for _ in range(MAX_FAILURES):
        with pytest.raises(PinRefused):
            pins.identify("000000")
    clock.now -= 30 * 24 * 3600  # the clock was a month ahead until the host corrected it
    with pytest.raises(PinRefused) as locked:
        pins.identify(PIN)
    assert locked.value.locked_seconds <= LOCK_SECONDS
    clock.now += LOCK_SECONDS + 1
    assert pins.identify(PIN) == "S01"


@pytest.fixture
def staff_command(
    enrolled_state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """`sentinel device staff ...` run here, with `stdin` as its standard input (no terminal)."""

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        status = main(["device", "staff", *args, "--state", str(enrolled_state)])
        return status, *capsys.readouterr()

    return run


def test_the_staff_command_adds_lists_and_removes_pins_read_from_stdin(
    staff_command: Callable[..., tuple[int, str, str]], enrolled_state: Path
) -> None:
    status, out, err = staff_command("add", "S01", stdin=PIN + "\n")
    assert (status, out.strip()) == (0, "staff S01 added")
    assert PIN not in out + err
    status, _, err = staff_command("add", "S02", stdin=PIN + "\n")
    assert status == 1 and "another staff member has this PIN" in err
    assert staff_command("list")[1].startswith("S01\tadded ")
    assert StaffPins(Store(enrolled_state / DATABASE_FILE)).identify(PIN) == "S01"
    assert staff_command("remove", "S01")[1].strip() == "staff S01 removed"
    status, _, err = staff_command("remove", "S01")
    assert (status, err.strip()) == (1, "sentinel device staff remove: no staff S01")
    assert staff_command("list", "--json")[1].strip() == "[]"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_at_a_terminal_the_pin_is_typed_twice_without_echo(
    enrolled_state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal())
    typed = iter([PIN, OTHER_PIN, PIN, PIN])
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(typed))
    add = ["device", "staff", "add", "S01", "--state", str(enrolled_state)]
    assert main(add) == 1
    assert "the two PINs differ" in capsys.readouterr().err
    assert main(add) == 0
    assert StaffPins(Store(enrolled_state / DATABASE_FILE)).identify(PIN) == "S01"
