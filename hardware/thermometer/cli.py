"""`sentinel thermometer read`: one reading from a serial thermometer, for technicians and scripts.

Prints the reading as a line, or with --json as {"celsius": ..., "raw": ..., "plausible": ...}.
A reading outside the plausible range (a wall, the air) is printed too, marked as not
plausible: it shows the thermometer works. Exit status: 0 a reading; 1 no reading within the
timeout (silent device, garbage, refusals); 2 a bad option; 3 the port cannot be opened (no
such port, busy, not permitted). Also runs as `python -m hardware.thermometer.cli read ...`.
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from hardware.thermometer.driver import (
    DEFAULT_BAUD,
    DEFAULT_PLAUSIBLE,
    Health,
    Thermometer,
)
from hardware.thermometer.protocol import PROTOCOL_NAMES

EXIT_READING = 0
EXIT_NO_READING = 1
EXIT_USAGE = 2  # as argparse's own usage errors
EXIT_NO_PORT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the thermometer subcommands (read) to the parser of `sentinel thermometer`."""
    commands = parser.add_subparsers(dest="thermometer_command", required=True, metavar="COMMAND")
    read = commands.add_parser(
        "read",
        help="take one reading from a serial thermometer",
        description="Open a serial thermometer, take one reading and print it.",
    )
    read.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    read.add_argument(
        "--protocol", required=True, choices=PROTOCOL_NAMES, help="what the thermometer speaks"
    )
    read.add_argument("--json", action="store_true", help="print one JSON object")
    read.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="default %(default)s")
    read.add_argument(
        "--parity", choices=("N", "E", "O"), default="N", help="default N (Modbus: often E)"
    )
    read.add_argument("--address", type=int, default=1, help="Modbus device address (1..247)")
    read.add_argument("--register", type=int, default=0, help="Modbus holding register")
    read.add_argument(
        "--offset", type=float, default=0.0, help="calibration offset added, °C (default 0)"
    )
    read.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait (default %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    """Run `thermometer read`; returns the exit status."""
    driver_log = logging.getLogger("hardware.thermometer")
    level = driver_log.level
    if not getattr(args, "verbose", False):
        # The driver logs each change of health for a kiosk's log; here the one message on
        # standard error says it all.
        driver_log.setLevel(logging.ERROR)
    try:
        return _read(args)
    finally:
        driver_log.setLevel(level)


def _read(args: argparse.Namespace) -> int:
    try:
        thermometer = Thermometer(
            args.port,
            args.protocol,
            baud=args.baud,
            parity=args.parity,
            address=args.address,
            register=args.register,
            offset=args.offset,
        )
    except ValueError as error:
        return _fail(args, EXIT_USAGE, str(error))
    with thermometer:
        if not thermometer.open():
            status = thermometer.status()
            return _fail(args, EXIT_NO_PORT, status.last_error or f"cannot open {args.port}")
        reading = thermometer.read(args.timeout, plausible_only=False)
        if reading is None:
            status = thermometer.status()
            code = EXIT_NO_PORT if status.health is Health.ABSENT else EXIT_NO_READING
            why = f": {status.last_error}" if status.last_error else ""
            return _fail(args, code, f"no reading from {args.port} within {args.timeout} s{why}")
    if args.json:
        print(json.dumps(reading.as_dict()), flush=True)
    else:
        low, high = DEFAULT_PLAUSIBLE
        note = "" if reading.plausible else f" (outside {low}-{high} °C: not a forehead)"
        print(f"{reading.celsius:.2f} °C (device said {reading.raw}){note}", flush=True)
    return EXIT_READING


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    print(f"sentinel thermometer: {message}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"celsius": None, "raw": None, "error": message}), flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hardware.thermometer.cli", description="Serial thermometer commands."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
