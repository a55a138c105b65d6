"""`sentinel selftest`: a field technician's check of the whole kiosk: pass, warn, fail or absent.

It exercises each part the way the agent will use it: a frame from the camera, the decoder on
a code it generates, the ID-card module's SAM id, one thermometer reading, each GPIO output on
and off, one prompt rendered by espeak-ng. Then the kiosk around them: its enrollment, a signed
request to its host, the clock, free disk space for the store, and the screen the agent serves.
Parts not configured are "absent"; each failure says what to do about it. Exit 0 when nothing
failed, 1 when something did, 2 for a wrong option.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from device import kiosk_config, peripherals
from device.agent import DATABASE_FILE
from device.client import HostClient, HostError
from device.clock import MAX_TRUSTED_OFFSET_MS, DeviceClock
from device.identity import (
    KEY_FILE,
    Enrollment,
    NotEnrolledError,
    load_enrollment,
)
from device.peripherals import (
    THERMOMETER_COMPONENT,
    TRIGGER_COMPONENT,
    PeripheralOptions,
    Peripherals,
)
from device.report import save_selftest
from device.screen import server as screen
from device.screen.server import ScreenOptions
from device.store import Store, StoreError
from shared.messages import SelfTestSummary

CAMERA_SECONDS = 5.0  # a camera that gives no frame in this time fails
THERMOMETER_SECONDS = 3.0
SELFTEST_TEXT = "DS1:SELFTEST-1234567890"
HOST_SECONDS = 10.0  # a host that does not answer in this time fails
SCREEN_SECONDS = 3.0
TIMEDATECTL_SECONDS = 5.0
DISK_FAIL_BYTES = 200 * 1024 * 1024  # less free space than this for the store fails
DISK_WARN_BYTES = 1024 * 1024 * 1024  # less than this warns
AGENT_SERVICE = "sentinel-agent"
WIRING = "check its wiring and pin number, and that the service user is in the gpio group"
# What to do when an item fails, unless its check says something more precise.
REMEDIES = {
    "camera": "check the camera's cable and [camera] source (--source): `ls /dev/video*` for a "
    "USB camera, `rpicam-hello --list-cameras` for the Pi camera",
    "decoder": "reinstall the agent (pip install --force-reinstall digital-sentinel): its QR "
    "libraries (OpenCV, zxing-cpp) do not work",
    "card reader": "check the ID-card module's USB cable and [idcard] port (--sam): "
    "`ls /dev/serial/by-id/`; the service user needs the dialout group",
    THERMOMETER_COMPONENT: "check the thermometer's cable, [thermometer] port and protocol; "
    "the service user needs the dialout group",
    "green": WIRING,
    "red": WIRING,
    "buzzer": WIRING,
    "gate": WIRING,
    "lights and gate": WIRING,
    TRIGGER_COMPONENT: WIRING,
    "voice": "`apt install espeak-ng alsa-utils`, check the speaker and [voice] player "
    "(`aplay -l`); the service user needs the audio group",
}


@dataclass(frozen=True)
class Result:
    item: str
    result: str  # "pass", "warn", "fail" or "absent"
    detail: str
    remedy: str = ""  # what to do about a failure or a warning

    def as_json(self) -> dict[str, str]:
        return {
            "item": self.item,
            "result": self.result,
            "detail": self.detail,
            "remedy": self.remedy,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", help="the camera as `sentinel device run --source` takes it (else absent)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="the kiosk's state directory: its enrollment, host, clock and disk are checked "
        "(else absent)",
    )
    parser.add_argument(
        "--host", metavar="URL", help="the host the kiosk must be enrolled with (else: as enrolled)"
    )
    peripherals.add_arguments(parser)
    screen.add_arguments(parser, checked=True)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    kiosk_config.add_config_option(parser)  # the kiosk's file: its parts, state and host


def _bounded(what: Callable[[], str], seconds: float) -> str:
    """Run a check on a thread; a hang past `seconds` is a failure, not a stuck self-test."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(what())
        except Exception as error:
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def check(item: str, what: Callable[[], str], seconds: float = 10.0) -> Result:
    """Pass with what `what` reports, or fail with the error it raised."""
    try:
        return Result(item, "pass", _bounded(what, seconds))
    except Exception as error:
        return Result(item, "fail", f"{type(error).__name__}: {error}")


def _camera(source: str) -> str:
    from hardware.frames import open_source

    with open_source(source) as frames:
        for frame in frames.frames():
            height, width = frame.image.shape[:2]
            return f"frame {width}x{height} from {source}"
    raise RuntimeError(f"{source} gave no frame")


def _decoder() -> str:
    import cv2

    from hardware.qr import LiveQrDecoder
    from shared.qrimage import qr_png

    code = cv2.imdecode(np.frombuffer(qr_png(SELFTEST_TEXT), np.uint8), cv2.IMREAD_GRAYSCALE)
    frame = np.full((720, 1280), 128, np.uint8)
    frame[200 : 200 + code.shape[0], 500 : 500 + code.shape[1]] = code
    start = time.perf_counter()
    texts = LiveQrDecoder().decode(frame)
    if texts != [SELFTEST_TEXT]:
        raise RuntimeError(f"read {texts!r} from a generated code")
    return f"read a generated code in {(time.perf_counter() - start) * 1000:.0f} ms"


def _card_reader(port: str) -> str:
    from hardware.idcard.samreader import SamReader

    with SamReader(port) as reader:
        sam = reader.sam_id()
        card = "a card on it" if reader.find_card() else "no card on it"
    return f"SAM {sam} answers at {port}, {card}"


def run_checks(source: str | None, options: PeripheralOptions) -> list[Result]:
    """Every item, in the order a technician would look at them."""
    results = [
        check("camera", lambda: _camera(source), CAMERA_SECONDS + 5)
        if source
        else Result("camera", "absent", "no --source"),
        check("decoder", _decoder),
        check("card reader", lambda: _card_reader(options.sam_port))
        if options.sam_port
        else Result("card reader", "absent", "no --sam"),
    ]
    fitted = Peripherals(
        options, on_card=lambda identity, origin, validity: None, on_trigger=lambda: None
    )
    try:
        results.append(_thermometer(fitted))
        results += _signals(fitted)
        results.append(_trigger(fitted))
        results.append(_voice(fitted))
    finally:
        fitted.close()
    return results


def _thermometer(fitted: Peripherals) -> Result:
    thermometer = fitted.thermometer
    if THERMOMETER_COMPONENT in fitted.failed:
        return Result(THERMOMETER_COMPONENT, "fail", fitted.failed[THERMOMETER_COMPONENT])
    if thermometer is None:
        return Result(THERMOMETER_COMPONENT, "absent", "no --thermometer")
    reading = thermometer.read(THERMOMETER_SECONDS, plausible_only=False)
    if reading is None:
        why = thermometer.status().last_error or "no reading"
        return Result(THERMOMETER_COMPONENT, "fail", why)
    plausible = "" if reading.plausible else " (outside the plausible range)"
    return Result(THERMOMETER_COMPONENT, "pass", f"{reading.celsius:.1f} °C{plausible}")


def _signals(fitted: Peripherals) -> list[Result]:
    if not fitted.options.signals.pins:
        return [Result("lights and gate", "absent", "no --green-pin, --red-pin, ... given")]
    if fitted.signals is None:
        return [Result("lights and gate", "fail", fitted.failed["signals"])]
    return [
        Result(name, "pass" if output.ok else "fail", output.detail)
        for name, output in fitted.signals.selftest().items()
    ]


def _trigger(fitted: Peripherals) -> Result:
    pin = fitted.options.trigger_pin
    if pin is None:
        return Result(TRIGGER_COMPONENT, "absent", "no --trigger-pin")
    if fitted.trigger is None:
        return Result(TRIGGER_COMPONENT, "fail", fitted.failed[TRIGGER_COMPONENT])
    health = fitted.trigger.health()
    if health.state != "ok":
        return Result(TRIGGER_COMPONENT, "fail", health.detail or health.state)
    return Result(TRIGGER_COMPONENT, "pass", f"button on pin {pin} set up, pulled up")


def _voice(fitted: Peripherals) -> Result:
    if not fitted.options.voice:
        return Result("voice", "absent", "no --voice")
    if fitted.speaker is None:
        return Result("voice", "fail", fitted.failed["voice"])
    ok, detail = fitted.speaker.selftest()
    return Result("voice", "pass" if ok else "fail", detail)


def with_remedy(result: Result) -> Result:
    """The result, with the usual remedy for its item when it failed and its check gave none."""
    if result.result != "fail" or result.remedy:
        return result
    return replace(result, remedy=REMEDIES.get(result.item, ""))


def kiosk_checks(
    state: Path | None, expected_host: str | None, screen_options: ScreenOptions | None
) -> list[Result]:
    """The kiosk around its parts: enrollment, host, clock, disk space and screen."""
    enrolled, enrollment = _enrollment(state, expected_host)
    offset_ms: int | None = None
    if state is None or enrollment is None:
        why = "no --state ([device] state)" if state is None else "not enrolled: no host to ask"
        host = Result("host", "absent", why)
    else:
        host, offset_ms = _host(state, enrollment)
    clock = _clock(_ntp_synchronised(), offset_ms)
    return [enrolled, host, clock, _disk(state), _screen(screen_options)]


def _enrollment(state: Path | None, expected_host: str | None) -> tuple[Result, Enrollment | None]:
    """Whether the kiosk is enrolled, with which host and at which venue; its enrollment if so."""
    item = "enrollment"
    if state is None:
        return Result(item, "absent", "no --state ([device] state)"), None
    enroll = (
        "get a one-time token from the host's operator, then "
        f"`sentinel device enroll --state {state} --host URL --token TOKEN`"
    )
    try:
        enrollment = load_enrollment(state)
    except NotEnrolledError:
        return Result(item, "fail", f"not enrolled: {state} holds no enrollment", enroll), None
    except (OSError, ValueError, TypeError) as error:
        why = f"cannot read the enrollment in {state}: {error}"
        return Result(item, "fail", why, f"check who owns {state}, or enroll again"), None
    if expected_host is not None and enrollment.host_url.rstrip("/") != expected_host.rstrip("/"):
        why = f"enrolled with {enrollment.host_url}, but the configuration names {expected_host}"
        remedy = f"correct [host] url, or enroll again with {expected_host}"
        return Result(item, "fail", why, remedy), None
    if not (state / KEY_FILE).exists():
        return Result(item, "fail", f"the device key {state / KEY_FILE} is missing", enroll), None
    try:
        store = Store(state / DATABASE_FILE)
        revoked = store.revocation(enrollment.device_id)
        config = store.load_config()
    except StoreError as error:
        return Result(item, "fail", f"its store cannot be read: {error}", f"check {state}"), None
    if revoked is not None:
        return Result(item, "fail", f"the host revoked this device: {revoked}", enroll), None
    venue = enrollment.venue_id + (f" ({config.venue.name})" if config else "")
    detail = (
        f"{enrollment.form.value} {enrollment.device_id} at venue {venue}, "
        f"host {enrollment.host_url}"
    )
    return Result(item, "pass", detail), enrollment


def _host(state: Path, enrollment: Enrollment) -> tuple[Result, int | None]:
    """A signed request for the configuration; and our clock's offset from the host's, in ms."""
    clock = DeviceClock()
    client = HostClient.enrolled(state, clock)
    try:
        started = time.perf_counter()
        config = client.config()
        elapsed_ms = (time.perf_counter() - started) * 1000
    except HostError as error:
        detail, remedy = _host_error_in_words(error, enrollment.host_url)
        return Result("host", "fail", detail, remedy), None
    finally:
        client.close()
    offset_ms = clock.now_ms() - time.time_ns() // 1_000_000  # 0 unless over the tolerance
    detail = (
        f"{enrollment.host_url} answered a signed request in {elapsed_ms:.0f} ms: "
        f"venue {config.venue.name}, rule set v{config.rules.version}, {len(config.keys)} keys"
    )
    return Result("host", "pass", detail), offset_ms


def _host_error_in_words(error: HostError, url: str) -> tuple[str, str]:
    """What went wrong reaching the host, as a technician reads it, and what to do."""
    network = (
        f"check the network (cable or Wi-Fi, DNS, a proxy or firewall), and that the host is "
        f"up: `curl {url.rstrip('/')}/api/v1/health`"
    )
    enroll_again = "ask the host's operator for a one-time token and enroll again"
    cause = error.__context__  # the HTTP library's error, behind the client's own
    if isinstance(cause, httpx.ConnectError) and "Name or service not known" in str(cause):
        return f"cannot resolve the host's name in {url}", network
    if isinstance(cause, httpx.TimeoutException):
        return f"{url} did not answer in time ({type(cause).__name__})", network
    if isinstance(cause, httpx.ConnectError):
        return f"nothing answers at {url}: the host is down, or unreachable from here", network
    if isinstance(cause, httpx.HTTPError):
        return f"cannot talk to {url}: {cause}", network
    if error.code == "unknown-device":
        return "the host does not know this device (enrolled elsewhere, or reset)", enroll_again
    if error.code == "device-revoked":
        return "the host has revoked this device", enroll_again
    if error.status in {401, 403}:
        return (
            f"the host refused the signed request: {error}",
            "check the clock (below), then enroll again if it persists",
        )
    if error.status is not None and error.status >= 500:
        return f"the host failed: {error}", "tell the host's operator; the kiosk retries by itself"
    return f"the host answered unexpectedly: {error}", "tell the host's operator"


def _ntp_synchronised() -> bool | None:
    """Whether NTP has set the clock, as timedatectl says; None where it cannot say."""
    try:
        shown = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized"],
            capture_output=True,
            text=True,
            timeout=TIMEDATECTL_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = shown.stdout.strip().partition("=")[2]
    if shown.returncode != 0 or value not in {"yes", "no"}:
        return None
    return value == "yes"


def _clock(ntp: bool | None, host_offset_ms: int | None) -> Result:
    """The clock: NTP synchronised, else compared with the host's time."""
    item = "clock"
    turn_on_ntp = (
        "turn NTP on (`timedatectl set-ntp true`) and let the kiosk reach an NTP server "
        "(UDP 123); until then the agent corrects by the host's time once it reaches it"
    )
    if ntp:
        return Result(item, "pass", "NTP synchronised (timedatectl)")
    said = "NTP not synchronised" if ntp is False else "no word from timedatectl"
    if host_offset_ms is None:
        if ntp is False:
            return Result(item, "fail", f"{said}, and no host to compare with", turn_on_ntp)
        return Result(item, "absent", f"{said}, and no host to compare with")
    if abs(host_offset_ms) > MAX_TRUSTED_OFFSET_MS:
        return Result(
            item, "fail", f"{said}; {_seconds(host_offset_ms)} off the host's clock", turn_on_ntp
        )
    within = f"within {MAX_TRUSTED_OFFSET_MS / 1000:g} s of the host's clock"
    if ntp is False:
        return Result(item, "warn", f"{within}, but {said}", turn_on_ntp)
    return Result(item, "pass", f"{within} ({said})")


def _seconds(milliseconds: int) -> str:
    seconds = abs(milliseconds) / 1000
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _disk(
    state: Path | None, fail_below: int = DISK_FAIL_BYTES, warn_below: int = DISK_WARN_BYTES
) -> Result:
    """Free space where the store lives: it must hold every check-in the host has not taken."""
    item = "disk"
    if state is None:
        return Result(item, "absent", "no --state ([device] state)")
    directory = state
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # not made yet: the file system it will be made on
    free = shutil.disk_usage(directory).free
    detail = f"{_size(free)} free for the store at {directory}"
    remedy = (
        "free space (`journalctl --vacuum-size=100M`, old files), a shorter [device] "
        "retention_days, or a larger SD card"
    )
    if free < fail_below:
        return Result(item, "fail", f"{detail}: under {_size(fail_below)}", remedy)
    if free < warn_below:
        return Result(item, "warn", f"{detail}: under {_size(warn_below)}", remedy)
    return Result(item, "pass", detail)


def _size(size: int) -> str:
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GB"
    return f"{size / 1024**2:.0f} MB"


def _screen(options: ScreenOptions | None) -> Result:
    """The screen the agent serves: its page's state answers at the configured address."""
    item = "screen"
    if options is None:
        return Result(item, "absent", "no --screen ([screen] listen)")
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{host}:{options.port}/state.json"
    remedy = (
        f"the agent serves the screen: is it running? `systemctl status {AGENT_SERVICE}`, "
        f"`journalctl -u {AGENT_SERVICE}`"
    )
    try:
        response = httpx.get(url, timeout=SCREEN_SECONDS)
    except httpx.HTTPError as error:
        return Result(item, "fail", f"nothing answers at {url}: {type(error).__name__}", remedy)
    if not response.is_success:
        return Result(item, "fail", f"{url} answered {response.status_code}", remedy)
    return Result(item, "pass", f"the agent's screen answers at {url}")


def run(args: argparse.Namespace) -> int:
    try:
        kiosk_config.merge(args)  # ConfigError, a ValueError, names the file's line and key
        options = peripherals.from_arguments(args)
        screen_options = screen.from_arguments(args)
    except ValueError as error:
        print(f"sentinel selftest: {error}", file=sys.stderr)
        return 2
    results = run_checks(args.source, options)
    results += kiosk_checks(args.state, args.host, screen_options)
    results = [with_remedy(result) for result in results]
    failed = any(result.result == "fail" for result in results)
    if args.state is not None and args.state.is_dir():
        keep_summary(args.state, results)
    if args.json:
        print(json.dumps({"ok": not failed, "items": [r.as_json() for r in results]}))
    else:
        print_table(results)
    return 1 if failed else 0


def keep_summary(state: Path, results: list[Result]) -> None:
    """Leave the summary in the state directory: the agent's next report takes it to the host."""
    summary = SelfTestSummary(
        ran_at=datetime.now(UTC),
        failed=[result.item for result in results if result.result == "fail"],
        warned=[result.item for result in results if result.result == "warn"],
        passed=sum(result.result == "pass" for result in results),
    )
    try:
        save_selftest(state, summary)
    except OSError as error:
        print(f"sentinel selftest: the summary is not kept in {state}: {error}", file=sys.stderr)


def print_table(results: list[Result]) -> None:
    """One line per item; under a failure or a warning, what to do about it."""
    width = max(len(result.item) for result in results)
    for result in results:
        print(f"{result.item:<{width}}  {result.result:<6}  {result.detail}", flush=True)
        if result.remedy and result.result in {"fail", "warn"}:
            print(f"{'':<{width}}  {'':<6}  → {result.remedy}", flush=True)
