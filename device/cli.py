"""`sentinel device ...`: enroll, run the agent, show its state and settings, manage staff PINs."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import signal
import ssl
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from device import kiosk_config, peripherals
from device.agent import DATABASE_FILE, Agent, RunOptions, json_lines
from device.client import HostError, enroll, tls_verification
from device.handheld import DEFAULT_SCAN_SECONDS
from device.identity import (
    Enrollment,
    NotEnrolledError,
    load_enrollment,
    load_or_create_key,
    save_enrollment,
    save_host_ca,
)
from device.kiosk_config import EXAMPLE, add_config_option
from device.pins import (
    LOCK_SECONDS,
    MAX_FAILURES,
    MAX_PIN_DIGITS,
    MIN_PIN_DIGITS,
    PinError,
    StaffPins,
)
from device.screen import server as screen
from device.screen.app import is_loopback
from device.store import Store, SyncError
from shared.messages import DeviceForm

DEFAULT_STATE = os.environ.get("SENTINEL_STATE", str(Path.home() / ".local/state/sentinel"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="device_command", required=True, metavar="COMMAND")

    enroll_parser = commands.add_parser(
        "enroll",
        help="enroll with a host using a one-time token",
        description="Make this device's key pair (kept in --state) and enroll it at a venue "
        "with a one-time token from the host's operator.",
    )
    enroll_parser.add_argument(
        "--host",
        help="host base URL, e.g. https://sentinel.example.org (else [host] url in --config)",
    )
    enroll_parser.add_argument("--token", required=True, help="one-time enrollment token")
    enroll_parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="the CA that signed the host's TLS certificate, kept and trusted alone from now on"
        " (default: the system's CAs)",
    )
    enroll_parser.add_argument(
        "--name", default=os.uname().nodename, help="device name shown on the host"
    )
    enroll_parser.add_argument(
        "--form",
        choices=[form.value for form in DeviceForm],
        default="kiosk",
        help="what the device is: a pillar kiosk, a gate, or a handheld an operator holds",
    )
    _add_state(enroll_parser)
    add_config_option(enroll_parser)

    run_parser = commands.add_parser(
        "run",
        help="scan codes from a camera or replayed images and decide",
        description="Run the agent: read frames, decode codes, verify them offline, decide by the "
        "venue's policy, record each check-in in SQLite and sync it to the host in the background.",
    )
    _add_settings(run_parser)
    run_parser.add_argument("--loop", action="store_true", help="replay the source forever")
    run_parser.add_argument(
        "--events",
        choices=["json"],
        help="print one JSON line per decision on stdout",
    )
    run_parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="when the source ends, wait for sync to drain, then exit",
    )
    run_parser.add_argument(
        "--drain-timeout",
        type=float,
        default=RunOptions.drain_timeout_seconds,
        metavar="SECONDS",
        help="with --exit-when-done: how long to wait for the host to take what is pending",
    )
    add_config_option(run_parser)

    status_parser = commands.add_parser(
        "status",
        help="show enrollment, unsynced check-ins, revocation and the last sync error",
    )
    _add_state(status_parser)
    status_parser.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(status_parser)

    config_parser = commands.add_parser(
        "config",
        help="the kiosk's configuration file (--config): show the settings in effect",
        description="Settings come from the options given, else the configuration file "
        f"(--config FILE; {EXAMPLE} is a complete example), else the defaults.",
    )
    config_commands = config_parser.add_subparsers(
        dest="config_command", required=True, metavar="COMMAND"
    )
    show_parser = config_commands.add_parser(
        "show",
        help="print every setting in effect and where it came from (file, option, default)",
        description="Print every setting `sentinel device run` would use with these options, "
        "and where each came from: the command line, the file (with its line) or the default.",
    )
    _add_settings(show_parser)
    show_parser.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(show_parser)

    staff_parser = commands.add_parser(
        "staff",
        help="staff PINs: who may settle referrals at this device's screen",
        description="Staff PINs of this device, kept only as scrypt hashes. A PIN settles a "
        "referral at the screen (let through or refuse, with a reason), recorded under the "
        f"staff id; {MAX_FAILURES} wrong PINs in a row refuse every PIN for "
        f"{LOCK_SECONDS / 60:g} minutes.",
    )
    staff_commands = staff_parser.add_subparsers(
        dest="staff_command", required=True, metavar="COMMAND"
    )
    add_staff = staff_commands.add_parser(
        "add",
        help="add a staff member's PIN",
        description=f"Add a PIN ({MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} digits) for staff ID: typed "
        "twice at a terminal, without echo; otherwise read as one line from standard input.",
    )
    add_staff.add_argument("staff_id", metavar="ID", help="their id, e.g. S01")
    remove_staff = staff_commands.add_parser("remove", help="remove a staff member's PIN")
    remove_staff.add_argument("staff_id", metavar="ID", help="their id, e.g. S01")
    list_staff = staff_commands.add_parser("list", help="list the staff ids that have a PIN")
    list_staff.add_argument("--json", action="store_true", help="one JSON array")
    for command in (add_staff, remove_staff, list_staff):
        _add_state(command)
        add_config_option(command)


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(DEFAULT_STATE),
        help="state directory: key, enrollment, check-ins (env SENTINEL_STATE; else [device] "
        "state in --config)",
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """The options of `device run` that the configuration file may set instead."""
    parser.add_argument(
        "--source",
        help=(
            "camera:N, /dev/videoN, picamera[:N] (options after '?', e.g. "
            "camera:0?size=1280x720&fourcc=MJPG), an image, a directory of images, or a video; "
            "needed unless --config gives [camera] source"
        ),
    )
    parser.add_argument(
        "--fps",
        type=float,
        help="the camera's frame rate, or the pace of replayed frames",
    )
    parser.add_argument(
        "--repeat-window",
        type=float,
        default=RunOptions.repeat_window_seconds,
        metavar="SECONDS",
        help="the same code again within this time makes no new check-in",
    )
    parser.add_argument(
        "--retention-days",
        type=float,
        default=RunOptions.retention_days,
        metavar="DAYS",
        help="keep check-ins the host acknowledged this long, then delete them",
    )
    parser.add_argument(
        "--form",
        choices=[form.value for form in DeviceForm],
        help="the device's form, if not as enrolled: a handheld scans only when triggered (its "
        "--trigger-pin or the screen's Scan button), checks vehicles and registers by hand",
    )
    parser.add_argument(
        "--scan-seconds",
        type=float,
        default=DEFAULT_SCAN_SECONDS,
        metavar="SECONDS",
        help="a handheld scans this long once triggered, or until a decision",
    )
    peripherals.add_arguments(parser)
    screen.add_arguments(parser)
    _add_state(parser)


def run(args: argparse.Namespace) -> int:
    command = f"sentinel device {args.device_command}"
    try:
        settings = kiosk_config.merge(args)
    except kiosk_config.ConfigError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 2
    try:
        if args.device_command == "enroll":
            return _enroll(args)
        if args.device_command == "run":
            return _run(args, settings)
        if args.device_command == "staff":
            return _staff(args)
        if args.device_command == "config":
            return _show_config(args, settings)
        return _status(args)
    except NotEnrolledError as error:
        print(f"sentinel device: {error}", file=sys.stderr)
        return 2


def _enroll(args: argparse.Namespace) -> int:
    def refuse(message: str) -> int:
        print(f"sentinel device enroll: {message}", file=sys.stderr)
        return 2

    if args.host is None:
        return refuse("give the host: --host URL, or [host] url in --config")
    if not re.match(r"https?://[^/\s]", args.host):
        return refuse(f"--host {args.host}: not an http:// or https:// URL")
    if not args.host.startswith("https://") and not is_loopback(urlsplit(args.host).hostname or ""):
        return refuse(
            f"--host {args.host}: a host on the network is reached over https only (bearer"
            " data and ID lookups cross it); plain http is for this machine (127.0.0.1)"
        )
    try:
        ca_pem = None if args.ca_file is None else args.ca_file.read_bytes()
        verify = tls_verification(args.ca_file)
    except (OSError, ssl.SSLError) as error:
        return refuse(f"--ca-file {args.ca_file}: {getattr(error, 'strerror', None) or error}")
    try:
        key = load_or_create_key(args.state)
    except OSError as error:
        return refuse(f"--state {args.state}: {error.strerror or error}")
    try:
        response = enroll(
            args.host, args.token, key, name=args.name, form=DeviceForm(args.form), verify=verify
        )
    except HostError as error:
        return refuse(str(error))
    except ValidationError as error:  # the request itself: a token or name out of bounds
        first = error.errors()[0]
        return refuse(f"--{first['loc'][0]}: {first['msg']}")
    if ca_pem is not None:
        save_host_ca(args.state, ca_pem)
    save_enrollment(
        args.state,
        Enrollment(response.device_id, response.config.venue.id, args.host, DeviceForm(args.form)),
    )
    Store(args.state / DATABASE_FILE).save_config(response.config)
    print(
        f"enrolled as {response.device_id} at venue {response.config.venue.id} "
        f"({response.config.venue.name})"
    )
    return 0


def _run(args: argparse.Namespace, settings: list[kiosk_config.Setting]) -> int:
    from hardware.frames import FrameSourceError, open_source
    from hardware.qr import LiveQrDecoder

    def refuse(message: str) -> int:
        print(f"sentinel device run: {message}", file=sys.stderr)
        return 2

    if args.source is None:
        return refuse("give the camera: --source, or [camera] source in --config")
    try:
        peripheral_options = peripherals.from_arguments(args)
        screen_options = screen.from_arguments(args)
        if args.scan_seconds <= 0:
            raise ValueError(f"--scan-seconds: {args.scan_seconds} is not a positive number")
    except ValueError as error:
        return refuse(str(error))
    options = RunOptions(
        exit_when_done=args.exit_when_done,
        drain_timeout_seconds=args.drain_timeout,
        repeat_window_seconds=args.repeat_window,
        peripherals=peripheral_options,
        retention_days=args.retention_days,
        screen=screen_options,
        form=None if args.form is None else DeviceForm(args.form),
        scan_seconds=args.scan_seconds,
    )
    host_url = _value(settings, "host.url")
    if host_url is not None:
        enrolled_with = load_enrollment(args.state).host_url.rstrip("/")
        if host_url != enrolled_with:
            return refuse(
                f"{args.config}: [host] url is {host_url}, but this kiosk enrolled with "
                f"{enrolled_with}: fix the file, or enroll again (sentinel device enroll --config)"
            )
    events = json_lines(sys.stdout) if args.events == "json" else None
    try:
        source = open_source(args.source, fps=args.fps, loop=args.loop)
    except (FrameSourceError, ValueError) as error:
        return refuse(f"--source {args.source}: {error}")
    agent = Agent(args.state, LiveQrDecoder(), options=options, events=events)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # systemd stops services with SIGTERM
    return agent.run(source)


def _value(settings: list[kiosk_config.Setting], key: str) -> object:
    return next((setting.value for setting in settings if setting.key == key), None)


def _show_config(args: argparse.Namespace, settings: list[kiosk_config.Setting]) -> int:
    config = None if args.config is None else str(args.config)
    if args.json:
        print(json.dumps({"config": config, "settings": [s.as_json() for s in settings]}))
        return 0
    print(f"configuration file: {config or 'none (--config FILE)'}")
    width = max(len(setting.key) for setting in settings)
    for setting in settings:
        value = "-" if setting.value is None else kiosk_config.format_value(setting.value)
        origin = (
            setting.origin if setting.line is None else f"{setting.origin}, line {setting.line}"
        )
        print(f"{setting.key:<{width}}  {value}  ({origin})")
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """Leave the scan loop as Ctrl-C does, so the agent stops its sync thread cleanly."""
    raise KeyboardInterrupt


def _status(args: argparse.Namespace) -> int:
    enrollment = load_enrollment(args.state)
    store = Store(args.state / DATABASE_FILE)
    recorded, acked = store.counts()
    decided, decisions_acked = store.staff_counts()
    sync_error = store.sync_error()
    state = {
        "device_id": enrollment.device_id,
        "venue_id": enrollment.venue_id,
        "form": enrollment.form.value,
        "host_url": enrollment.host_url,
        "recorded": recorded,
        "acknowledged": acked,
        "pending": recorded - acked,
        "staff_pending": decided - decisions_acked,  # staff decisions not yet synced
        "revoked": store.revocation(enrollment.device_id),  # why, if the host revoked it
        "sync_error": None if sync_error is None else asdict(sync_error),
    }
    if args.json:
        print(json.dumps(state))
        return 0
    shown = {**state, "sync_error": _describe_sync_error(sync_error)}
    if state["revoked"] is not None:
        shown["revoked"] = f"yes: {state['revoked']} (re-enroll with a new token to serve again)"
    width = max(map(len, shown))
    for name, value in shown.items():
        print(f"{name:>{width}}: {'no' if value is None else value}")
    return 0


def _describe_sync_error(sync_error: SyncError | None) -> str | None:
    """The last sync failure as a line: what, when, how many in a row, and if it passed."""
    if sync_error is None:
        return None
    text = (
        f"{sync_error.error} ({_utc(sync_error.at_ms)}, {sync_error.failures} failure(s) in a row"
    )
    if sync_error.resolved_at_ms is None:
        return f"{text}; not resolved)"
    return f"{text}; sync works again since {_utc(sync_error.resolved_at_ms)})"


def _utc(unix_ms: int) -> str:
    return f"{datetime.fromtimestamp(unix_ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _read_pin() -> str:
    """A PIN typed twice without echo at a terminal; else one line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    pin = getpass.getpass("PIN: ")
    if getpass.getpass("PIN again: ") != pin:
        raise PinError("the two PINs differ")
    return pin


def _staff(args: argparse.Namespace) -> int:
    load_enrollment(args.state)  # a device's staff: only an enrolled one has any
    pins = StaffPins(Store(args.state / DATABASE_FILE))
    if args.staff_command == "list":
        members = pins.members()
        if args.json:
            print(json.dumps([{"id": m.id, "added_at_ms": m.added_at_ms} for m in members]))
            return 0
        for member in members:
            added = datetime.fromtimestamp(member.added_at_ms / 1000, UTC)
            print(f"{member.id}\tadded {added:%Y-%m-%d %H:%M} UTC")
        return 0
    if args.staff_command == "remove":
        if not pins.remove(args.staff_id):
            print(f"sentinel device staff remove: no staff {args.staff_id}", file=sys.stderr)
            return 1
        print(f"staff {args.staff_id} removed")
        return 0
    try:
        pins.add(args.staff_id, _read_pin())
    except PinError as error:
        print(f"sentinel device staff add: {error}", file=sys.stderr)
        return 1
    print(f"staff {args.staff_id} added")
    return 0
