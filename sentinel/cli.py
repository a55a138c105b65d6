"""The `sentinel` command: the host, device, peripheral and benchmark commands under one name."""

from __future__ import annotations

import argparse
import importlib
import logging
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from shared import LOG_FORMAT

DISTRIBUTION = "digital-sentinel"
CHECKOUT = Path(__file__).resolve().parents[1]  # the source tree, when run from a checkout
GIT_SECONDS = 2.0

DESCRIPTION = """\
Digital Sentinel: venue-entrance check-in.

  sentinel host serve          the verification service: venues, people, codes, devices
  sentinel device enroll       enroll this kiosk with a host using a one-time token
  sentinel device run          scan codes, decide by the venue's policy, record, sync
  sentinel device status       show this kiosk's enrollment, unsynced check-ins, sync errors
  sentinel device config show  the settings in effect: options, --config file, defaults
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


class ShowDefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option's text with its default, unless it has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        from device.kiosk_config import FromDefault, format_value  # only when help is shown

        text = action.help or ""
        default = action.default
        if isinstance(default, FromDefault):
            default = default.value
        nothing = default is None or default is False or default is argparse.SUPPRESS
        empty = isinstance(default, str | list | tuple) and not default
        if nothing or empty or not action.option_strings or "default" in text:
            return text
        shown = format_value(default).replace("%", "%%")
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """The `sentinel` parser; its subcommands' parsers are of this class too, defaults shown."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", ShowDefaultsFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class RawDescriptionFormatter(argparse.RawDescriptionHelpFormatter, ShowDefaultsFormatter):
    """The top level's description, a table of commands, kept as written."""


def version() -> str:
    """The installed distribution's version, and the git commit when run from a checkout."""
    try:
        text = f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        text = f"{DISTRIBUTION} (not installed)"
    if not (CHECKOUT / ".git").exists():
        return text
    try:
        described = subprocess.run(
            ["git", "-C", str(CHECKOUT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=GIT_SECONDS,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} (git {described})"


class VersionAction(argparse.Action):
    """--version: print `version()` and exit; git is asked only when this is given."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)  # type: ignore[arg-type]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version())
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, every other command's options are left out.

    Their modules are not imported then, which is most of a command's start-up time.
    """
    parser = Parser(
        prog="sentinel",
        description=DESCRIPTION,
        formatter_class=RawDescriptionFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument(
        "--version",
        action=VersionAction,
        help="print the version (and the git commit in a checkout), then exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_line) in COMMANDS.items():
        if only is not None and name != only:
            commands.add_parser(name, help=help_line)
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(commands.add_parser(name, help=help_line, description=module.__doc__))
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names (its first word that is not an option), if it names one."""
    words = [word for word in argv if not word.startswith("-")]
    return words[0] if words and words[0] in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_command(argv) or "")  # no command: only their names
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    return importlib.import_module(COMMANDS[args.command][0]).run(args)
