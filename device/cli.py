"""`sentinel device ...`: enroll this device with a host, run the agent, show its state, staff."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from device import peripherals
from device.agent import DATABASE_FILE, Agent, RunOptions, json_lines
from device.client import HostError, enroll
from device.handheld import DEFAULT_SCAN_SECONDS
from device.identity import (
    Enrollment,
    NotEnrolledError,
    load_enrollment,
    load_or_create_key,
    save_enrollment,
)
from device.pins import (
    LOCK_SECONDS,
    MAX_FAILURES,
    MAX_PIN_DIGITS,
    MIN_PIN_DIGITS,
    PinError,
    StaffPins,
)
from device.screen import server as screen
from device.store import Store
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
        "--host", required=True, help="host base URL, e.g. http://127.0.0.1:8000"
    )
    enroll_parser.add_argument("--token", required=True, help="one-time enrollment token")
    enroll_parser.add_argument(
        "--name", default=os.uname().nodename, help="device name shown on the host"
    )
    enroll_parser.add_argument(
        "--form", choices=[form.value for form in DeviceForm], default="kiosk"
    )
    enroll_parser.add_argument(
        "--state",
        type=Path,
        default=Path(DEFAULT_STATE),
        help="state directory (env SENTINEL_STATE)",
    )

    run_parser = commands.add_parser(
        "run",
        help="scan codes from a camera or replayed images and decide",
        description="Run the agent: read frames, decode codes, verify them offline, decide by the "
        "venue's policy, record each check-in in SQLite and sync it to the host in the background.",
    )
    run_parser.add_argument(
        "--source",
        required=True,
        help=(
            "camera:N, /dev/videoN, picamera[:N] (options after '?', e.g. "
            "camera:0?size=1280x720&fourcc=MJPG), an image, a directory of images, or a video"
        ),
    )
    run_parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="the camera's frame rate, or the pace of replayed frames",
    )
    run_parser.add_argument("--loop", action="store_true", help="replay the source forever")
    run_parser.add_argument(
        "--events",
        choices=["json"],
        default=None,
        help="print one JSON line per decision on stdout",
    )
    run_parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="when the source ends, wait for sync to drain, then exit",
    )
    run_parser.add_argument(
        "--drain-timeout", type=float, default=RunOptions.drain_timeout_seconds, metavar="SECONDS"
    )
    run_parser.add_argument(
        "--repeat-window",
        type=float,
        default=RunOptions.repeat_window_seconds,
        metavar="SECONDS",
        help="the same code again within this time makes no new check-in",
    )
    run_parser.add_argument(
        "--retention-days",
        type=float,
        default=RunOptions.retention_days,
        metavar="DAYS",
        help="keep check-ins the host acknowledged this long, then delete them (7)",
    )
    run_parser.add_argument(
        "--form",
        choices=[form.value for form in DeviceForm],
        default=None,
        help="the device's form, if not as enrolled: a handheld scans only when triggered (its "
        "--trigger-pin or the screen's Scan button), checks vehicles and registers by hand",
    )
    run_parser.add_argument(
        "--scan-seconds",
        type=float,
        default=DEFAULT_SCAN_SECONDS,
        metavar="SECONDS",
        help=f"a handheld scans this long once triggered, or until a decision "
        f"({DEFAULT_SCAN_SECONDS:g})",
    )
    peripherals.add_arguments(run_parser)
    screen.add_arguments(run_parser)
    run_parser.add_argument("--state", type=Path, default=Path(DEFAULT_STATE))

    status_parser = commands.add_parser("status", help="show enrollment and unsynced check-ins")
    status_parser.add_argument("--state", type=Path, default=Path(DEFAULT_STATE))
    status_parser.add_argument("--json", action="store_true")

    staff_parser = commands.add_parser(
        "staff",
        help="staff PINs: who may settle referrals at this device's screen",
        description="Staff PINs of this device, kept only as scrypt hashes. A PIN settles a "
        "referral at the screen (let through or refuse, with a reason), recorded under the "
        f"staff id; {MAX_FAILURES} wrong PINs in a row refuse every PIN for "
        f"{LOCK_SECONDS / 60:g} minutes.",
    )
    staff_commands = staff_parser.add_subparsers(dest="staff_command", required=True)
    add_staff = staff_commands.add_parser(
        "add",
        help="add a staff member's PIN",
        description=f"Add a PIN ({MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} digits) for staff ID: typed "
        "twice at a terminal, without echo; otherwise read as one line from standard input.",
    )
    add_staff.add_argument("staff_id", metavar="ID", help="their id, e.g. S01")
    remove_staff = staff_commands.add_parser("remove", help="remove a staff member's PIN")
    remove_staff.add_argument("staff_id", metavar="ID")
    list_staff = staff_commands.add_parser("list", help="list the staff ids that have a PIN")
    list_staff.add_argument("--json", action="store_true")
    for command in (add_staff, remove_staff, list_staff):
        command.add_argument("--state", type=Path, default=Path(DEFAULT_STATE))


def run(args: argparse.Namespace) -> int:
    try:
        if args.device_command == "enroll":
            return _enroll(args)
        if args.device_command == "run":
            return _run(args)
        if args.device_command == "staff":
            return _staff(args)
        return _status(args)
    except NotEnrolledError as error:
        print(f"sentinel device: {error}", file=sys.stderr)
        return 2


def _enroll(args: argparse.Namespace) -> int:
    key = load_or_create_key(args.state)
    try:
        response = enroll(args.host, args.token, key, name=args.name, form=DeviceForm(args.form))
    except HostError as error:
        print(f"sentinel device enroll: {error}", file=sys.stderr)
        return 1
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


def _run(args: argparse.Namespace) -> int:
    from hardware.frames import FrameSourceError, open_source
    from hardware.qr import LiveQrDecoder

    try:
        peripheral_options = peripherals.from_arguments(args)
        screen_options = screen.from_arguments(args)
        if args.scan_seconds <= 0:
            raise ValueError(f"--scan-seconds: {args.scan_seconds} is not a positive number")
    except ValueError as error:
        print(f"sentinel device run: {error}", file=sys.stderr)
        return 2
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
    events = json_lines(sys.stdout) if args.events == "json" else None
    try:
        source = open_source(args.source, fps=args.fps, loop=args.loop)
    except (FrameSourceError, ValueError) as error:
        print(f"sentinel device run: --source {args.source}: {error}", file=sys.stderr)
        return 2
    agent = Agent(args.state, LiveQrDecoder(), options=options, events=events)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # systemd stops services with SIGTERM
    return agent.run(source)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """Leave the scan loop as Ctrl-C does, so the agent stops its sync thread cleanly."""
    raise KeyboardInterrupt


def _status(args: argparse.Namespace) -> int:
    enrollment = load_enrollment(args.state)
    store = Store(args.state / DATABASE_FILE)
    recorded, acked = store.counts()
    decided, decisions_acked = store.staff_counts()
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
    }
    if args.json:
        print(json.dumps(state))
    else:
        for name, value in state.items():
            print(f"{name:>13}: {'no' if value is None else value}")
    return 0


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
