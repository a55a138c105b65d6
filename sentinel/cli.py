"""The `sentinel` command: host, device and demo subcommands under one entry point."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

DESCRIPTION = """\
Digital Sentinel: venue-entrance check-in.

  sentinel host serve          the verification service: venues, people, codes, devices
  sentinel device enroll       enroll this kiosk with a host using a one-time token
  sentinel device run          scan codes, decide by the venue's policy, record, sync
  sentinel device status       show this kiosk's enrollment and unsynced check-ins
  sentinel demo                a whole check-in cycle on this machine, host and kiosk as processes
  sentinel card read           read an ID card or passport (PC/SC, eMRTD), masked
  sentinel thermometer read    one reading from a serial thermometer (modbus, stream or line)
  sentinel decode              the QR codes in image and video files, read as the kiosk reads them
  sentinel bench               benchmarks: decode (QR decoders), pipeline (frame to decision)
"""


def build_parser() -> argparse.ArgumentParser:
    from device import cli as device_cli
    from hardware.smartcard import cli as card_cli
    from hardware.thermometer import cli as thermometer_cli
    from host import cli as host_cli
    from sentinel import bench, decode, demo

    parser = argparse.ArgumentParser(
        prog="sentinel",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    host_cli.add_arguments(
        commands.add_parser("host", help="the verification service", description="Host commands.")
    )
    device_cli.add_arguments(
        commands.add_parser("device", help="the kiosk agent", description="Device commands.")
    )
    demo.add_arguments(
        commands.add_parser(
            "demo",
            help="run the end-to-end demo",
            description=demo.__doc__,
        )
    )
    card_cli.add_arguments(
        commands.add_parser("card", help="card readers and ID cards", description=card_cli.__doc__)
    )
    thermometer_cli.add_arguments(
        commands.add_parser(
            "thermometer",
            help="serial thermometer tools",
            description=thermometer_cli.__doc__,
        )
    )
    decode.add_arguments(
        commands.add_parser("decode", help="decode QR codes in files", description=decode.__doc__)
    )
    bench.add_arguments(
        commands.add_parser("bench", help="run a benchmark", description=bench.__doc__)
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    if args.command == "host":
        from host import cli as host_cli

        return host_cli.run(args)
    if args.command == "device":
        from device import cli as device_cli

        return device_cli.run(args)
    if args.command == "card":
        from hardware.smartcard import cli as card_cli

        return card_cli.run(args)
    if args.command == "thermometer":
        from hardware.thermometer import cli as thermometer_cli

        return thermometer_cli.run(args)
    if args.command == "decode":
        from sentinel import decode

        return decode.run(args)
    if args.command == "bench":
        from sentinel import bench

        return bench.run(args)
    from sentinel import demo

    return demo.run(args)
