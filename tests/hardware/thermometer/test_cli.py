"""`thermometer read` end to end against the emulators, and the emulator run as a process."""

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hardware.thermometer import cli
from hardware.thermometer.driver import Thermometer

from .conftest import SILENCE, WAIT

REPO_ROOT = Path(__file__).resolve().parents[3]


def run(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(["read", *argv]))


@pytest.mark.parametrize("protocol", ["modbus", "stream", "line"])
def test_read_prints_json(protocol, emulate, capsys):
    emulator = emulate(protocol, celsius=36.4, address=3, register=0x0010)
    status = run(
        "--port", emulator.port, "--protocol", protocol, "--json", "--timeout", str(WAIT),
        "--address", "3", "--register", "16", "--offset", "0.3",
    )  # fmt: skip
    assert status == cli.EXIT_READING
    assert json.loads(capsys.readouterr().out) == {"celsius": 36.7, "raw": 36.4, "plausible": True}


def test_read_prints_a_line_and_marks_an_implausible_reading(emulate, capsys):
    emulator = emulate("stream", celsius=24.5)
    assert run("--port", emulator.port, "--protocol", "stream", "--timeout", str(WAIT)) == 0
    out = capsys.readouterr().out
    assert out.startswith("24.50 °C (device said 24.5)")
    assert "not a forehead" in out


def test_no_such_port(tmp_path, capsys):
    port = str(tmp_path / "ttyUSB7")
    assert run("--port", port, "--protocol", "line", "--json") == cli.EXIT_NO_PORT
    captured = capsys.readouterr()
    assert "No such file or directory" in captured.err
    assert json.loads(captured.out)["celsius"] is None


def test_a_silent_device(emulate, capsys):
    emulator = emulate("modbus")
    emulator.go_silent()
    status = run("--port", emulator.port, "--protocol", "modbus", "--timeout", str(SILENCE))
    assert status == cli.EXIT_NO_READING
    assert "no reading from" in capsys.readouterr().err


def test_a_bad_option(emulate, capsys):
    emulator = emulate("modbus")
    assert run("--port", emulator.port, "--protocol", "modbus", "--address", "0") == 2
    assert "address" in capsys.readouterr().err


def test_read_as_a_process(emulate):
    emulator = emulate("stream", celsius=38.2)
    done = subprocess.run(
        [sys.executable, "-m", "hardware.thermometer.cli", "read", "--port", emulator.port,
         "--protocol", "stream", "--json", "--timeout", str(WAIT)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=WAIT + 20, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"celsius": 38.2, "raw": 38.2, "plausible": True}


def read_line(process: subprocess.Popen) -> str:
    """One line from the process's output, waiting at most WAIT seconds for it."""
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    assert ready, "the emulator printed nothing"
    return process.stdout.readline().strip()


def test_the_emulator_as_a_process_obeys_commands():
    """As the demo runs it: print the port, then change temperature, unplug, replug."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hardware.thermometer.emulator", "--protocol", "stream",
         "--celsius", "38.2", "--period", "0.02"],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip
    try:
        port = read_line(process)
        assert os.path.islink(port)
        with Thermometer(port, "stream", reopen_backoff=(0.02, 0.2)) as thermometer:
            assert thermometer.measure(WAIT).outcome == "fever"
            for command, reply in [("celsius 36.5", "ok celsius 36.5"), ("celsius x", "error")]:
                process.stdin.write(command + "\n")
                process.stdin.flush()
                assert read_line(process).startswith(reply)
            deadline = time.monotonic() + WAIT
            while (reading := thermometer.read(WAIT)) is not None and reading.raw != 36.5:
                assert time.monotonic() < deadline
            assert reading is not None
            process.stdin.write("unplug\n")
            process.stdin.flush()
            assert read_line(process) == "ok unplug"
            assert thermometer.read(SILENCE) is None
            process.stdin.write("replug\n")
            process.stdin.flush()
            assert read_line(process) == "ok replug"
            assert thermometer.measure(WAIT).celsius == 36.5
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(timeout=WAIT) == 0
        assert not os.path.lexists(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        process.stdin.close()
        process.stdout.close()


def test_the_emulator_process_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "hardware.thermometer.emulator", "--protocol", "modbus"],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = read_line(process)
        with Thermometer(port, "modbus") as thermometer:
            reading = thermometer.read(WAIT)
        assert reading is not None
        assert reading.raw == 36.6
        process.terminate()
        assert process.wait(timeout=WAIT) == 0
        assert not os.path.lexists(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        process.stdout.close()
