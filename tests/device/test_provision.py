"""Provisioning's logic without a system to change: the serial probe (emulators on ptys, a fake
sysfs tree), the udev rules and their checker, the config file and units it renders, its options.
"""

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from device import identity, kiosk_config
from device.provision import command, layout
from device.provision.files import Answers, Fitted, render_config, render_unit
from device.provision.probe import UsbIdentity, probe, serial_ttys, usb_identity
from device.provision.udev import (
    GPIO_RULE,
    SerialDevice,
    UdevRuleError,
    check_rules,
    device_rule,
    render_rules,
    rules_by_role,
)
from hardware.idcard.sam_emulator import SamEmulator
from hardware.thermometer.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]


def fake_usb_serial(sysfs: Path, tty: str, usb: UsbIdentity | None, acm: bool = False) -> None:
    """A tty in sysfs as the kernel lays one out: class/tty/NAME/device -> under the USB device."""
    usb_device = sysfs / "devices/pci0000:00/0000:00:14.0/usb1" / (usb.port_path if usb else "x")
    interface = usb_device / f"{usb.port_path if usb else 'x'}:1.0"
    # usb-serial adapters (ttyUSB) have a port directory under the interface; ACM ones do not.
    device = interface if acm else interface / tty
    device.mkdir(parents=True)
    if usb is not None:
        (usb_device / "idVendor").write_text(usb.vendor + "\n")
        (usb_device / "idProduct").write_text(usb.product + "\n")
        if usb.serial is not None:
            (usb_device / "serial").write_text(usb.serial + "\n")
    entry = sysfs / "class/tty" / tty
    entry.mkdir(parents=True)
    (entry / "device").symlink_to(os.path.relpath(device, entry))


CH340 = UsbIdentity("1a86", "7523", None, "1-1.2")
FTDI = UsbIdentity("0403", "6001", "A50285BI", "1-1.3")
ACM = UsbIdentity("2341", "0043", "7563331", "1-1.4")


def test_the_enrollment_file_is_where_the_device_keeps_it():
    assert layout.ENROLLMENT == layout.STATE / identity.ENROLLMENT_FILE


def test_usb_identity_is_read_from_sysfs_for_usb_serial_and_acm_ttys(tmp_path):
    fake_usb_serial(tmp_path, "ttyUSB0", CH340)
    fake_usb_serial(tmp_path, "ttyUSB1", FTDI)
    fake_usb_serial(tmp_path, "ttyACM0", ACM, acm=True)
    (tmp_path / "class/tty/ttyS0").mkdir()  # a built-in UART: not a candidate
    assert serial_ttys(tmp_path) == ["ttyACM0", "ttyUSB0", "ttyUSB1"]
    assert usb_identity(tmp_path, "ttyUSB0") == CH340
    assert usb_identity(tmp_path, "ttyUSB1") == FTDI
    assert usb_identity(tmp_path, "ttyACM0") == ACM


def test_a_tty_not_on_usb_has_no_usb_identity(tmp_path):
    fake_usb_serial(tmp_path, "ttyUSB0", None)
    assert usb_identity(tmp_path, "ttyUSB0") is None


def test_the_probe_tells_the_idcard_module_and_thermometers_apart_by_asking(tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    with (
        SamEmulator() as sam,
        Emulator("modbus") as modbus,
        Emulator("line", period=0.2) as line,
        Emulator("stream", period=0.2) as stream,
    ):
        silent_master, silent_slave = os.openpty()  # a device that never answers
        ports = {
            "ttyUSB0": (sam.port, CH340),
            "ttyUSB1": (modbus.port, FTDI),
            "ttyUSB2": (os.ttyname(silent_slave), UsbIdentity("10c4", "ea60", None, "1-1.5")),
            "ttyACM0": (line.port, ACM),
            "ttyUSB3": (stream.port, UsbIdentity("067b", "2303", None, "1-1.6")),
        }
        for tty, (port, usb) in ports.items():
            fake_usb_serial(sysfs, tty, usb, acm=tty.startswith("ttyACM"))
            (dev / tty).symlink_to(port)
        try:
            result = probe(sysfs, dev)
        finally:
            os.close(silent_master)
            os.close(silent_slave)
    found = {item.tty: (item.role, item.protocol, item.usb) for item in result.found}
    assert found == {
        "ttyUSB0": ("idcard", None, CH340),
        "ttyUSB1": ("thermometer", "modbus", FTDI),
        "ttyACM0": ("thermometer", "line", ACM),
        "ttyUSB3": ("thermometer", "stream", ports["ttyUSB3"][1]),
    }
    assert result.silent == ["ttyUSB2"]


def device(role: str, usb: UsbIdentity) -> SerialDevice:
    return SerialDevice(role, usb.vendor, usb.product, usb.serial, usb.port_path)


def test_a_rule_matches_the_serial_number_when_there_is_one_else_the_ids_or_the_socket():
    with_serial = device("idcard", FTDI)
    assert device_rule(with_serial, []) == (
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", '
        'ATTRS{serial}=="A50285BI", SYMLINK+="sentinel-idcard"'
    )
    alone = device("thermometer", CH340)
    assert device_rule(alone, [with_serial]) == (
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", '
        'SYMLINK+="sentinel-thermometer"'
    )
    # Two adapters of one make without serial numbers: only the USB socket tells them apart.
    twin = SerialDevice("idcard", "1a86", "7523", None, "1-1.4")
    assert 'KERNELS=="1-1.2"' in device_rule(alone, [twin])
    assert 'KERNELS=="1-1.4"' in device_rule(twin, [alone])
    # The same serial number on both (cheap clones): the socket too.
    clone = SerialDevice("thermometer", "0403", "6001", "A50285BI", "1-1.7")
    assert 'KERNELS=="1-1.3"' in device_rule(with_serial, [clone])
    assert "ATTRS{serial}" not in device_rule(with_serial, [clone])


def test_rules_pass_the_checker_and_keep_a_device_not_found_this_time():
    devices = [device("idcard", FTDI), device("thermometer", CH340)]
    text = render_rules(devices, {}, gpio_rule=True)
    assert check_rules(text) == 3
    assert GPIO_RULE in text
    earlier = rules_by_role(text)
    assert set(earlier) == {"idcard", "thermometer"}
    later = render_rules([device("thermometer", CH340)], {"idcard": earlier["idcard"]}, False)
    assert check_rules(later) == 2
    assert rules_by_role(later) == earlier
    assert GPIO_RULE not in later


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('SUBSYSTEM=="tty", FOO=="1"', "unknown key FOO"),
        ('SUBSYSTEM="tty"', "SUBSYSTEM does not take ="),
        ('SYMLINK+="a", MODE=="0660"', "MODE does not take =="),
        ("SUBSYSTEM==tty", "cannot read"),
        ('SUBSYSTEM=="tty" SYMLINK+="x"', "cannot read"),
        ('SUBSYSTEM=="tty",', "a comma ends the rule"),
        ('ATTRS=="1"', "ATTRS needs {attribute}"),
        ('KERNEL{x}=="1"', "KERNEL takes no {attribute}"),
        ('SUBSYSTEM=="tty", MODE="rw"', "not an octal mode"),
        ('SUBSYSTEM=="tty", \\', "ends inside a continued line"),
    ],
)
def test_the_checker_refuses_what_udev_would_not_take(line, why):
    with pytest.raises(UdevRuleError, match=why):
        check_rules(f"# a comment\n\n{line}\n" if not line.endswith("\\") else line)


def test_the_checker_takes_continued_lines_and_every_operator():
    text = (
        'ACTION=="add", SUBSYSTEM=="tty", \\\n  ENV{ID_X}!="1", ATTR{power/control}="on", '
        'RUN+="/bin/true", GROUP:="dialout", TAG-="uaccess", OPTIONS+="link_priority=10"\n'
        'LABEL="end"\n'
    )
    assert check_rules(text) == 2


ANSWERS = Answers(
    host="https://sentinel.example.org",
    token="t",
    form="gate",
    name="gate-1",
    camera="picamera",
    voice="zh,en",
    green_pin="17",
    red_pin="GPIO27",
    gate_pin="23",
)


def test_the_config_written_loads_with_the_kiosks_own_loader(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text(render_config(ANSWERS, Fitted(idcard=True, thermometer_protocol="modbus")))
    loaded = kiosk_config.load(path)
    assert loaded.values["host.url"] == "https://sentinel.example.org"
    assert loaded.values["device.form"] == "gate"
    assert loaded.values["idcard.port"] == "/dev/sentinel-idcard"
    assert loaded.values["thermometer.protocol"] == "modbus"
    assert loaded.values["signals.green_pin"] == 17
    assert loaded.values["signals.red_pin"] == "GPIO27"
    assert loaded.values["gate.pin"] == 23
    assert loaded.values["voice.languages"] == "zh,en"
    assert loaded.values["screen.listen"] == "127.0.0.1:8080"


def test_parts_not_fitted_are_tables_left_out(tmp_path):
    bare = Answers("http://127.0.0.1:8000", None, "kiosk", "k", None, None)
    path = tmp_path / "kiosk.toml"
    path.write_text(render_config(bare, Fitted()))
    values = kiosk_config.load(path).values
    assert not any(
        key.split(".")[0] in {"camera", "idcard", "thermometer", "voice", "signals", "gate"}
        for key in values
    )


def test_units_are_rendered_with_every_placeholder_filled():
    agent = render_unit(layout.AGENT_UNIT, "127.0.0.1:8080")
    screen = render_unit(layout.SCREEN_UNIT, "127.0.0.1:9090")
    assert "$" not in agent + screen
    assert f"ExecStart={layout.SENTINEL} device run --config {layout.CONFIG}" in agent
    for setting in (
        "Type=notify",
        "Restart=always",
        "User=sentinel",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=sentinel",
        "WatchdogSec=",
    ):
        assert setting in agent
    assert "http://127.0.0.1:9090/" in screen
    assert "After=sentinel-agent.service" in screen
    assert "TTYPath=/dev/tty1" in screen


def options(*argv: str) -> argparse.Namespace:
    return command.build_parser().parse_args(list(argv))


def test_non_interactive_without_a_host_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(layout, "CONFIG", tmp_path / "absent.toml")
    with pytest.raises(command.UsageError, match="--host"):
        command.gather_answers(options("--non-interactive", "--token", "t"), enrolled=False)
    with pytest.raises(command.UsageError, match="--token"):
        command.gather_answers(options("--non-interactive", "--host", "http://h"), enrolled=False)
    with pytest.raises(command.UsageError, match="not an http"):
        command.gather_answers(
            options("--non-interactive", "--host", "h", "--token", "t"), enrolled=False
        )


def test_questions_show_their_defaults_and_an_empty_answer_takes_it(monkeypatch, tmp_path):
    monkeypatch.setattr(layout, "CONFIG", tmp_path / "absent.toml")
    asked: list[str] = []
    replies = {"Host URL": "http://10.0.0.5:8000", "Enrollment token": "tok", "Form": "handheld"}

    def ask(question: str) -> str:
        asked.append(question)
        return next((reply for start, reply in replies.items() if question.startswith(start)), "")

    answers = command.gather_answers(options(), enrolled=False, ask=ask)
    assert answers.host == "http://10.0.0.5:8000"
    assert answers.token == "tok"
    assert answers.form == "handheld"
    assert answers.voice == "zh,en"
    assert "Voice (zh, en, zh,en, none) [zh,en]: " in asked
    assert any(question.startswith("Scan button GPIO pin") for question in asked)


def test_a_config_that_exists_gives_the_defaults(monkeypatch, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text(render_config(ANSWERS, Fitted()))
    monkeypatch.setattr(layout, "CONFIG", config)
    answers = command.gather_answers(options("--non-interactive"), enrolled=True)
    assert (answers.host, answers.form, answers.camera, answers.gate_pin) == (
        ANSWERS.host,
        "gate",
        "picamera",
        "23",
    )
    assert answers.token is None


@pytest.mark.parametrize(
    "argv",
    [["--form", "tower"], ["--purge"], ["--bogus"]],
)
def test_bad_arguments_exit_2_with_one_line(argv):
    done = subprocess.run(
        [str(REPO / "scripts/provision"), *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("scripts/provision: error:")


def test_help_names_the_non_interactive_options():
    done = subprocess.run(
        [str(REPO / "scripts/provision"), "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--non-interactive", "--host", "--token", "--form", "--uninstall", "--purge"):
        assert option in done.stdout


def test_a_bad_pin_answer_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(layout, "CONFIG", tmp_path / "absent.toml")
    argv = ["--non-interactive", "--host", "http://h", "--token", "t", "--green-pin", "40"]
    with pytest.raises(command.UsageError, match="GPIO 40: BCM pins are 0-27"):
        command.gather_answers(options(*argv), enrolled=False)
