"""The driver against each protocol's emulator through a real pty, as against /dev/ttyUSB0."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hardware.thermometer import line, modbus, stream
from hardware.thermometer.driver import Health, Thermometer

from .conftest import SILENCE, WAIT

PROTOCOLS = ("modbus", "stream", "line")
# Bytes a noisy line or a confused device might send: parts of every protocol's frames.
NOISE = {
    "modbus": b"\x00\xff\x01\x03\x02\x01\x83\xaa\x55\x06",
    "stream": b"\x00\xff\xaa\x55\x07\xaa\x55\x06\x24\x07\x00\xaa",
    # A line protocol can only resynchronise on a line end: noise there is a line of its own.
    "line": b"\x00\xfe\xff boot v1.2 \xaa\x55 T=\r\nT=\nT=nan\r\n",
}


def wait_until(condition, what):
    """Poll condition until it holds: bounded by WAIT, so a failure cannot hang the run."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reading(protocol, emulate, connect):
    thermometer = connect(emulate(protocol, celsius=36.6))
    reading = thermometer.read(WAIT)
    assert reading is not None
    assert (reading.celsius, reading.raw, reading.protocol, reading.plausible) == (
        36.6,
        36.6,
        protocol,
        True,
    )
    assert thermometer.status().health is Health.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_before_and_among_frames_is_skipped(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=36.6)
    emulator.set_noise(NOISE[protocol])
    thermometer = connect(emulator)
    previous = 36.6
    for celsius in (36.6, 36.8, 37.0):
        emulator.set_celsius(celsius)
        emulator.inject(NOISE[protocol])
        # A streaming device may have sent the previous value just before: read on until the
        # new one, and never anything else.
        deadline = time.monotonic() + WAIT
        while (reading := thermometer.read(WAIT)) is not None and reading.raw != celsius:
            assert reading.raw == previous
            assert time.monotonic() < deadline
        assert reading is not None
        previous = celsius


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_damaged_frames_are_refused_and_the_next_good_one_read(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=36.6)
    emulator.corrupt(2)
    thermometer = connect(emulator, response_timeout=0.05)
    reading = thermometer.read(WAIT)
    assert reading is not None
    assert reading.raw == 36.6
    assert thermometer.status().health is Health.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_silent_device_gives_no_reading_then_recovers(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=36.6)
    thermometer = connect(emulator)
    assert thermometer.read(WAIT) is not None
    emulator.go_silent()
    assert thermometer.read(SILENCE) is None
    status = thermometer.status()
    assert status.health is Health.FAILING
    assert status.is_open
    assert "no reading" in (status.last_error or "")
    assert thermometer.measure(SILENCE).outcome == "no-reading"
    emulator.speak()
    assert thermometer.read(WAIT) is not None
    assert thermometer.status().health is Health.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unplugged_mid_read_and_replugged(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=36.6)
    thermometer = connect(emulator)
    assert thermometer.read(WAIT) is not None
    emulator.go_silent()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(thermometer.read, 3 * WAIT)
        if protocol == "stream":
            emulator.inject(stream.build_frame(41.0)[:3])  # cut off by the unplug
        emulator.unplug()
        wait_until(lambda: thermometer.status().health is Health.ABSENT, "the port to go")
        assert "No such file" in (thermometer.status().last_error or "")
        assert not pending.done()
        emulator.set_celsius(37.1)
        emulator.speak()
        emulator.replug()
        reading = pending.result(timeout=3 * WAIT + 5)
    assert reading is not None
    assert reading.raw == 37.1
    assert thermometer.status().health is Health.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_calibration_offset_is_added_before_the_plausible_range(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=29.8)
    first = connect(emulator, offset=0.5)
    reading = first.read(WAIT)
    assert reading is not None
    assert (reading.raw, reading.celsius, reading.plausible) == (29.8, 30.3, True)
    first.close()  # let the next driver have the port
    thermometer = connect(emulator, offset=-0.4, plausible=(30.0, 45.0))
    assert thermometer.read(SILENCE) is None  # 29.4 °C after the offset: not a forehead
    assert thermometer.status().health is Health.OK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_implausible_readings_are_not_used(protocol, emulate, connect):
    emulator = emulate(protocol, celsius=25.0)  # the air, nobody in front of it
    thermometer = connect(emulator)
    assert thermometer.read(SILENCE) is None
    assert thermometer.status().health is Health.OK  # the device itself works
    reading = thermometer.read(WAIT, plausible_only=False)
    assert reading is not None
    assert (reading.celsius, reading.plausible) == (25.0, False)
    measurement = thermometer.measure(SILENCE)
    assert (measurement.celsius, measurement.outcome, measurement.readings) == (
        None,
        "no-reading",
        (),
    )
    assert all(reading.raw == 25.0 for reading in measurement.implausible)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("celsius", "offset", "outcome", "count"),
    [
        (36.6, 0.0, "normal", 1),
        (37.2, 0.0, "normal", 1),
        (37.3, 0.0, "fever", 2),
        (37.2, 0.1, "fever", 2),
        (38.2, 0.0, "fever", 2),
    ],
)
def test_a_reading_at_or_above_the_threshold_is_measured_again(
    protocol, celsius, offset, outcome, count, emulate, connect
):
    thermometer = connect(emulate(protocol, celsius=celsius), offset=offset)
    measurement = thermometer.measure(WAIT)
    assert measurement.outcome == outcome
    assert measurement.celsius == round(celsius + offset, 2)
    assert measurement.raw == (celsius,) * count
    assert measurement.threshold == 37.3


# Modbus asks for each reading, so a device can be made to say one thing, then another, in an
# exact order: the re-measure rule's other branches are shown with it. The rule itself does
# not depend on the protocol.


def test_a_false_high_is_taken_back_by_the_second_reading(emulate, connect):
    emulator = emulate("modbus", celsius=36.6)
    emulator.play([38.0, 36.9])
    measurement = connect(emulator).measure(WAIT)
    assert (measurement.outcome, measurement.celsius, measurement.raw) == (
        "normal",
        36.9,
        (38.0, 36.9),
    )
    assert measurement.remeasured


def test_a_high_reading_with_no_second_one_stands(emulate, connect):
    emulator = emulate("modbus")
    emulator.play([38.0], then_silent=True)
    measurement = connect(emulator, response_timeout=0.1).measure(WAIT, remeasure_timeout=SILENCE)
    assert (measurement.outcome, measurement.celsius, measurement.raw) == (
        "unconfirmed",
        38.0,
        (38.0,),
    )


def test_implausible_readings_are_skipped_and_kept_for_the_record(emulate, connect):
    emulator = emulate("modbus")
    emulator.play([25.0, 37.5, 52.0, 37.6])
    measurement = connect(emulator).measure(WAIT)
    assert (measurement.outcome, measurement.celsius, measurement.raw) == (
        "fever",
        37.6,
        (37.5, 37.6),
    )
    assert [reading.raw for reading in measurement.implausible] == [25.0, 52.0]


def test_the_threshold_is_configurable(emulate, connect):
    emulator = emulate("modbus", celsius=38.0)
    measurement = connect(emulator, threshold=38.5).measure(WAIT)
    assert (measurement.outcome, measurement.raw) == ("normal", (38.0,))


def test_modbus_exception_for_an_unknown_register_is_reported(emulate, connect):
    emulator = emulate("modbus", register=0x0100)
    thermometer = connect(emulator, register=0x0101, response_timeout=0.05)
    assert thermometer.read(SILENCE) is None
    status = thermometer.status()
    assert status.health is Health.FAILING
    assert "exception 2 (illegal data address)" in (status.last_error or "")


def test_modbus_device_at_another_address_stays_silent(emulate, connect):
    emulator = emulate("modbus", address=7)
    thermometer = connect(emulator, address=8, response_timeout=0.05)
    assert thermometer.read(SILENCE) is None
    assert emulator.requests_seen > 0
    assert "no reply" in (thermometer.status().last_error or "")
    thermometer.close()
    assert connect(emulator, address=7).read(WAIT) is not None


def test_modbus_reply_from_the_wrong_address_is_not_a_reading(emulate, connect):
    emulator = emulate("modbus")
    emulator.reply_as(9)
    thermometer = connect(emulator, response_timeout=0.05)
    assert thermometer.read(SILENCE) is None
    assert "reply from device 9" in (thermometer.status().last_error or "")
    emulator.reply_as(None)
    assert thermometer.read(WAIT) is not None


def test_modbus_through_an_adapter_that_echoes(emulate, connect):
    reading = connect(emulate("modbus", celsius=35.5, echo=True)).read(WAIT)
    assert reading is not None
    assert reading.raw == 35.5


def test_modbus_negative_temperatures_are_signed(emulate, connect):
    reading = connect(emulate("modbus", celsius=-12.5)).read(WAIT, plausible_only=False)
    assert reading is not None
    assert reading.raw == -12.5


def test_line_forms_a_bridge_may_print(emulate, connect):
    emulator = emulate("line", celsius=36.71, line_key="", line_decimals=2, line_unit="°C")
    reading = connect(emulator).read(WAIT)
    assert reading is not None
    assert reading.raw == 36.71


def test_a_line_bridge_whose_sensor_failed_gives_no_reading(emulate, connect):
    emulator = emulate("line", celsius=float("nan"))
    thermometer = connect(emulator)
    assert thermometer.read(SILENCE) is None
    assert "nan" in (thermometer.status().last_error or "")


def test_a_port_that_does_not_exist_is_absent(tmp_path):
    thermometer = Thermometer(str(tmp_path / "ttyUSB9"), "stream", reopen_backoff=(0.02, 0.1))
    assert not thermometer.open()
    assert thermometer.read(SILENCE) is None
    status = thermometer.status()
    assert (status.health, status.is_open) == (Health.ABSENT, False)
    thermometer.close()


def test_a_port_another_program_holds_is_failing(emulate, connect):
    emulator = emulate("stream")
    first = connect(emulator)
    assert first.open()
    second = connect(emulator)
    assert not second.open()
    status = second.status()
    assert status.health is Health.FAILING
    assert "in use by another program" in (status.last_error or "")


def test_a_device_gone_for_good_never_raises(emulate, connect):
    emulator = emulate("modbus")
    thermometer = connect(emulator)
    assert thermometer.read(WAIT) is not None
    emulator.close()
    assert thermometer.read(SILENCE) is None
    assert thermometer.measure(SILENCE).outcome == "no-reading"
    assert thermometer.status().health is Health.ABSENT


@pytest.mark.parametrize(
    ("protocol", "options", "why"),
    [
        ("ftdi", {}, "unknown thermometer protocol"),
        ("modbus", {"address": 0}, "address must be 1..247"),
        ("modbus", {"address": 248}, "address must be 1..247"),
        ("stream", {"plausible": (45.0, 30.0)}, "is empty"),
        ("stream", {"parity": "X"}, "parity must be"),
        ("stream", {"threshold": 46.0}, "outside the plausible range"),
        ("stream", {"offset": -12.0}, "beyond ±10"),
        ("stream", {"offset": float("nan")}, "beyond ±10"),
    ],
)
def test_configuration_mistakes_are_refused_at_once(protocol, options, why):
    with pytest.raises(ValueError, match=why):
        Thermometer("/dev/ttyUSB0", protocol, **options)


def test_each_protocol_module_builds_what_its_decoder_reads():
    """The shared definitions: the emulator's builders and the driver's decoders agree."""
    assert stream.StreamDecoder().feed(stream.build_frame(36.6)) == [36.6]
    assert line.LineDecoder().feed(b"\n" + line.format_line(36.6)) == [36.6]
    reply = modbus.build_read_reply(1, [modbus.celsius_to_word(36.6)])
    assert modbus.ModbusDecoder(1, 0).feed(reply) == [36.6]
