"""The `sentinel` command: the host, device, peripheral and benchmark commands under one name."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from host.app import LOG_FORMAT

DESCRIPTION = """\
Digital Sentinel: venue-entrance check-in.

  sentinel host serve          the verification service: venues, people, codes, devices
  sentinel device enroll       enroll this kiosk with a host using a one-time token
  sentinel device run          scan codes, decide by the venue's policy, record, sync
  sentinel device status       show this kiosk's enrollment and unsynced check-ins
  sentinel device staff        staff PINs (add, list, remove) for settling referrals on screen
  sentinel demo                a whole check-in cycle on this machine, host and kiosk as processes
  sentinel selftest            check every fitted part: camera, decoder, card reader, ...
  sentinel card read           read an ID card or passport (PC/SC, eMRTD, GA 467), masked
  sentinel thermometer read    one reading from a serial thermometer (modbus, stream or line)
  sentinel decode              the QR codes in image and video files, read as the kiosk reads them
  sentinel verify              verify one credential (EU DCC HC1:, health code DS1:, venue URL)
  sentinel conformance dcc     our EU DCC verification against the dgc-testdata expected results
  sentinel bench               benchmarks: decode, pipeline, verify, card, sync
  sentinel chaos               faults injected between real processes: nothing lost or doubled
  sentinel fuzz                coverage-guided fuzzing (atheris) of every parser of outside bytes
"""


# Each command: the module with its add_arguments(parser) and run(args), and its help line.
COMMANDS = {
    "host": ("host.cli", "the verification service"),
    "device": ("device.cli", "the kiosk agent"),
    "demo": ("sentinel.demo", "run the end-to-end demo"),
    "selftest": ("device.selftest", "check every fitted peripheral: pass, fail or absent"),
    "card": ("hardware.smartcard.cli", "card readers and ID cards"),
    "thermometer": ("hardware.thermometer.cli", "serial thermometer tools"),
    "decode": ("sentinel.decode", "decode QR codes in files"),
    "verify": ("sentinel.verify", "verify a credential: EU DCC, health code or venue code"),
    "conformance": ("sentinel.conformance", "check verification against reference test data"),
    "bench": ("sentinel.bench", "run a benchmark"),
    "chaos": ("sentinel.chaos.harness", "the fault-injection suite (scripts/chaos)"),
    "fuzz": ("sentinel.fuzz.command", "coverage-guided fuzzing of every parser of outside bytes"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_line) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(commands.add_parser(name, help=help_line, description=module.__doc__))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    return importlib.import_module(COMMANDS[args.command][0]).run(args)
