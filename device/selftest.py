"""`sentinel selftest`: a field technician's check of every fitted part: pass, fail or absent.

It exercises each part the way the agent will use it: a frame from the camera, the decoder on
a code it generates, the ID-card module's SAM id, one thermometer reading, each GPIO output on
and off, one prompt rendered by espeak-ng. Parts not configured are "absent". Exit 0 when
nothing failed, 1 when something did, 2 for a wrong option.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from device import peripherals
from device.peripherals import (
    THERMOMETER_COMPONENT,
    TRIGGER_COMPONENT,
    PeripheralOptions,
    Peripherals,
)

CAMERA_SECONDS = 5.0  # a camera that gives no frame in this time fails
THERMOMETER_SECONDS = 3.0
SELFTEST_TEXT = "DS1:SELFTEST-1234567890"


@dataclass(frozen=True)
class Result:
    item: str
    result: str  # "pass", "fail" or "absent"
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"item": self.item, "result": self.result, "detail": self.detail}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", help="the camera as `sentinel device run --source` takes it (else absent)"
    )
    peripherals.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


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


def run(args: argparse.Namespace) -> int:
    try:
        options = peripherals.from_arguments(args)
    except ValueError as error:
        print(f"sentinel selftest: {error}", file=sys.stderr)
        return 2
    results = run_checks(args.source, options)
    failed = any(result.result == "fail" for result in results)
    if args.json:
        print(json.dumps({"ok": not failed, "items": [r.as_json() for r in results]}))
    else:
        width = max(len(result.item) for result in results)
        for result in results:
            print(f"{result.item:<{width}}  {result.result:<6}  {result.detail}", flush=True)
    return 1 if failed else 0
