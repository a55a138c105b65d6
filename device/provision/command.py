"""`scripts/provision`: make a Debian 12 or Raspberry Pi OS machine a kiosk, or undo it.

Runs as root under the system's python3 with the standard library only (the project's
dependencies are not installed yet), from the checkout it installs. Each step compares what
is there with what it would make and changes only what differs, so a second run says
"nothing to change". The serial probe runs in the kiosk's virtual environment, once that
exists. Exit status: 0 all done and the self-test passed, 1 a step or the self-test failed,
2 a wrong option or answer.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from device.provision import layout
from device.provision.files import Answers, Fitted, render_config, render_unit
from device.provision.udev import SerialDevice, render_rules, rules_by_role

FORMS = ("kiosk", "gate", "handheld")
LANGUAGES = ("zh", "en")
CHECKOUT = Path(__file__).resolve().parents[2]
PI_MODEL = Path("/proc/device-tree/model")
SYSTEMD_RUNNING = Path("/run/systemd/system")  # as sd_booted(3) tells: systemd is PID 1


class ProvisionError(Exception):
    """A step that failed, in one line for the technician."""


class UsageError(Exception):
    """A wrong option or answer (exit 2)."""


class Report:
    """What this run changed and noted, printed as it goes."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def changed(self, what: str) -> None:
        print(f"provision: {what}", flush=True)
        self.changes.append(what)

    @staticmethod
    def note(what: str) -> None:
        print(f"provision: {what}", flush=True)


def run(command: Sequence[str | Path], *, capture: bool = False) -> str:
    """Run a command; its standard output when captured; ProvisionError if it fails."""
    try:
        done = subprocess.run(
            [str(part) for part in command],
            check=False,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as error:
        raise ProvisionError(f"{command[0]}: not found") from error
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        # pip and apt end with notes; their own error lines say what went wrong.
        errors = [line for line in lines if line.startswith(("ERROR:", "E:", "error:"))]
        raise ProvisionError(f"{' '.join(map(str, command[:4]))}: {(errors or lines)[-1]}")
    return done.stdout or ""


def systemd_running() -> bool:
    return SYSTEMD_RUNNING.is_dir()


def on_raspberry_pi() -> bool:
    return PI_MODEL.is_file() and "Raspberry Pi" in PI_MODEL.read_text(errors="replace")


# -- options and answers -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/provision",
        description="Set this machine up as a Digital Sentinel kiosk (run as root on Raspberry "
        "Pi OS Bookworm or Debian 12): Debian packages, the sentinel user, the project in "
        f"{layout.VENV}, {layout.CONFIG}, udev names for the ID-card module and the "
        "thermometer, the agent and screen units, enrollment, then the self-test. Asks for "
        "what is not given, each question with its default; run again to change nothing.",
    )
    parser.add_argument("--non-interactive", action="store_true", help="ask nothing")
    parser.add_argument("--host", help="the host's URL, e.g. https://sentinel.example.org")
    parser.add_argument("--token", help="the one-time enrollment token from the host's operator")
    parser.add_argument("--form", choices=FORMS, help="kiosk, gate or handheld (kiosk)")
    parser.add_argument("--name", help="the device's name on the host (this machine's name)")
    parser.add_argument(
        "--camera", help="camera source: picamera, camera:N, /dev/videoN, or none (by machine)"
    )
    parser.add_argument("--voice", help="languages spoken: zh, en, zh,en or none (zh,en)")
    for output in ("green", "red", "buzzer", "gate", "trigger"):
        parser.add_argument(f"--{output}-pin", metavar="GPIO", help=f"the {output} pin (none)")
    parser.add_argument(
        "--reconfigure", action="store_true", help=f"write {layout.CONFIG} anew if it exists"
    )
    parser.add_argument(
        "--uninstall",
        action="store_true",
        help="remove what provisioning added (units, udev rules, venv, user, config); "
        "the state directory stays unless --purge",
    )
    parser.add_argument("--purge", action="store_true", help="with --uninstall: the state too")
    return parser


def _read_config() -> dict[str, dict[str, object]]:
    if not layout.CONFIG.is_file():
        return {}
    try:
        return tomllib.loads(layout.CONFIG.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProvisionError(f"{layout.CONFIG}: not readable TOML: {error}") from error


def _defaults(config: dict[str, dict[str, object]]) -> dict[str, str | None]:
    """Each answer's default: from a config that exists, else for this machine."""

    def key(table: str, name: str) -> str | None:
        value = config.get(table, {}).get(name)
        return None if value is None else str(value)

    camera_default = "picamera" if on_raspberry_pi() else "camera:0"
    return {
        "host": key("host", "url"),
        "form": key("device", "form") or "kiosk",
        "name": socket.gethostname(),
        "camera": key("camera", "source") or ("none" if config else camera_default),
        "voice": key("voice", "languages") or ("none" if config else "zh,en"),
        "green_pin": key("signals", "green_pin"),
        "red_pin": key("signals", "red_pin"),
        "buzzer_pin": key("signals", "buzzer_pin"),
        "trigger_pin": key("signals", "trigger_pin"),
        "gate_pin": key("gate", "pin"),
        "screen": key("screen", "listen") or "127.0.0.1:8080",
    }


def _check_host(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise UsageError(f"host {value!r}: not an http:// or https:// URL")
    return value.rstrip("/")


def _check_voice(value: str) -> str | None:
    if value == "none":
        return None
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or any(part not in LANGUAGES for part in parts):
        raise UsageError(f"voice {value!r}: zh, en, zh,en or none")
    return ",".join(parts)


def _check_pin(value: str | None) -> str | None:
    if not value or value == "none":
        return None
    if value.isdigit() and int(value) > 27:
        raise UsageError(f"GPIO {value}: BCM pins are 0-27")
    if not re.fullmatch(r"\d+|(GPIO|BOARD)\d+", value):
        raise UsageError(f"GPIO {value!r}: a BCM number (0-27), GPIOn or BOARDn")
    return value


def gather_answers(
    args: argparse.Namespace, enrolled: bool, ask: Callable[[str], str] = input
) -> Answers:
    """The answers from the options, asking for the rest unless --non-interactive."""
    defaults = _defaults(_read_config())

    def answer(name: str, question: str, given: str | None) -> str | None:
        if given is not None:
            return given
        default = defaults.get(name)
        if args.non_interactive:
            return default
        shown = f" [{default}]" if default else ""
        typed = ask(f"{question}{shown}: ").strip()
        return typed or default

    host = answer("host", "Host URL", args.host)
    if not host:
        raise UsageError("--host: the host's URL is needed")
    token = None
    if not enrolled:
        token = args.token if args.token or args.non_interactive else ask("Enrollment token: ")
        if not token:
            raise UsageError("--token: an enrollment token is needed (this kiosk is not enrolled)")
    form = answer("form", f"Form ({', '.join(FORMS)})", args.form) or "kiosk"
    if form not in FORMS:
        raise UsageError(f"form {form!r}: one of {', '.join(FORMS)}")
    camera = answer("camera", "Camera (picamera, camera:N, /dev/videoN, none)", args.camera)
    pins = {
        output: _check_pin(
            answer(f"{output}_pin", f"{output} GPIO pin", getattr(args, f"{output}_pin"))
        )
        for output in ("green", "red", "buzzer")
    }
    gate_given, trigger_given = args.gate_pin, args.trigger_pin
    return Answers(
        host=_check_host(host),
        token=token,
        form=form,
        name=answer("name", "Device name", args.name) or socket.gethostname(),
        camera=None if camera in (None, "none") else camera,
        voice=_check_voice(answer("voice", "Voice (zh, en, zh,en, none)", args.voice) or "none"),
        green_pin=pins["green"],
        red_pin=pins["red"],
        buzzer_pin=pins["buzzer"],
        gate_pin=_check_pin(
            answer("gate_pin", "Gate relay GPIO pin", gate_given) if form == "gate" else gate_given
        ),
        trigger_pin=_check_pin(
            answer("trigger_pin", "Scan button GPIO pin", trigger_given)
            if form == "handheld"
            else trigger_given
        ),
        screen=str(defaults["screen"]),
    )


# -- files -------------------------------------------------------------------------------------


def write_file(path: Path, text: str, mode: int, owner: str = "root", group: str = "root") -> bool:
    """Write `text` to `path`, with that mode and owner, unless it is so; whether it was not."""
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    if path.is_file() and not path.is_symlink():
        status = path.stat()
        same = (status.st_mode & 0o7777, status.st_uid, status.st_gid) == (mode, uid, gid)
        if same and path.read_bytes() == text.encode():
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_text(text)
    os.chown(scratch, uid, gid)
    scratch.chmod(mode)
    scratch.replace(path)
    return True


def make_directory(path: Path, mode: int, owner: str) -> bool:
    """Make a directory with that mode and owner unless it is so already; whether it was not."""
    entry = pwd.getpwnam(owner)
    if path.is_dir():
        status = path.stat()
        if (status.st_mode & 0o7777, status.st_uid) == (mode, entry.pw_uid):
            return False
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)
    return True


# -- the steps ---------------------------------------------------------------------------------


def package_installed(package: str) -> bool:
    try:
        status = run(["dpkg-query", "-W", "-f=${Status}", package], capture=True)
    except ProvisionError:
        return False
    return status.endswith("ok installed")


def package_available(package: str) -> bool:
    """Whether the repositories this system knows offer the package."""
    policy = run(["apt-cache", "policy", package], capture=True)
    candidate = re.search(r"Candidate:\s*(\S+)", policy)
    return candidate is not None and candidate.group(1) != "(none)"


def install_packages(report: Report) -> None:
    missing = [package for package in layout.DEBIAN_PACKAGES if not package_installed(package)]
    optional = [package for package in layout.OPTIONAL_PACKAGES if not package_installed(package)]
    if missing:
        report.note(f"Debian packages to install: {' '.join(missing)}")
        run(["apt-get", "update", "-qq"])
    wanted = missing + [package for package in optional if package_available(package)]
    for package in optional:
        if package not in wanted:
            report.note(f"skipped {package}: not in this system's repositories (Raspberry Pi OS)")
    if wanted:
        os.environ["DEBIAN_FRONTEND"] = "noninteractive"
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted])
        report.changed(f"installed Debian packages: {' '.join(wanted)}")


def set_up_user(report: Report) -> None:
    for group in layout.GROUPS:
        try:
            grp.getgrnam(group)
        except KeyError:
            run(["groupadd", "--system", group])
            report.changed(f"made the system group {group} (this system had none)")
    try:
        pwd.getpwnam(layout.USER)
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                layout.STATE,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--groups",
                ",".join(layout.GROUPS),
                layout.USER,
            ]
        )
        report.changed(f"made the user {layout.USER} in {', '.join(layout.GROUPS)}")
        return
    missing = [g for g in layout.GROUPS if layout.USER not in grp.getgrnam(g).gr_mem]
    if missing:
        run(["usermod", "--append", "--groups", ",".join(missing), layout.USER])
        report.changed(f"added {layout.USER} to {', '.join(missing)}")


def source_digest(checkout: Path) -> str:
    """A hash of what of the checkout gets installed, and of the extra requirements."""
    digest = hashlib.sha256("\n".join(layout.PIP_EXTRAS).encode())
    for part in layout.SOURCE_PARTS:
        top = checkout / part
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(checkout)).encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()


def install_project(report: Report, checkout: Path) -> None:
    python = layout.VENV / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", "--system-site-packages", layout.VENV])
        report.changed(f"made the virtual environment {layout.VENV}")
    stamp = layout.VENV / ".sentinel-source"
    digest = source_digest(checkout)
    if stamp.is_file() and stamp.read_text() == digest:
        return
    with tempfile.TemporaryDirectory(prefix="sentinel-source-") as scratch:
        source = Path(scratch) / "digital-sentinel"
        source.mkdir()
        for part in layout.SOURCE_PARTS:
            if (checkout / part).is_dir():
                shutil.copytree(
                    checkout / part,
                    source / part,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                )
            else:
                shutil.copy2(checkout / part, source / part)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run([*pip, source, *layout.PIP_EXTRAS])
    stamp.write_text(digest)
    report.changed(f"installed the project from {checkout} into {layout.VENV}")


def probe_serial(report: Report) -> list[dict[str, object]]:
    """What the probe found on the USB serial ports; it notes silent ports."""
    python = layout.VENV / "bin" / "python"
    result = json.loads(run([python, "-m", "device.provision.probe"], capture=True))
    for item in result["found"]:
        protocol = f" ({item['protocol']})" if item["protocol"] else ""
        report.note(f"found the {item['role']}{protocol} at /dev/{item['tty']}")
    for tty in result["silent"]:
        report.note(
            f"/dev/{tty} answered in no protocol the kiosk speaks (busy, or another device)"
        )
    if not result["found"] and not result["silent"]:
        report.note("no USB serial devices: no ID-card module, no thermometer")
    return list(result["found"])


def write_config(
    report: Report, answers: Answers, found: list[dict[str, object]], again: bool
) -> None:
    if layout.CONFIG.exists() and not again:
        report.note(f"kept {layout.CONFIG} as it is (--reconfigure to write it anew)")
        return
    thermometer = [item["protocol"] for item in found if item["role"] == "thermometer"]
    fitted = Fitted(
        idcard=any(item["role"] == "idcard" for item in found),
        thermometer_protocol=str(thermometer[0]) if thermometer else None,
    )
    if write_file(layout.CONFIG, render_config(answers, fitted), 0o640, group=layout.USER):
        report.changed(f"wrote {layout.CONFIG}")


def other_rules_give_gpio_a_group() -> bool:
    """Whether a rules file not ours (Raspberry Pi OS's, for one) already sets up gpiochips."""
    for directory in (
        Path("/etc/udev/rules.d"),
        Path("/usr/lib/udev/rules.d"),
        Path("/lib/udev/rules.d"),
    ):
        for rules in directory.glob("*.rules") if directory.is_dir() else ():
            if rules.name != layout.RULES.name and "gpiochip" in rules.read_text(errors="replace"):
                return True
    return False


def write_udev_rules(report: Report, found: list[dict[str, object]]) -> None:
    devices = []
    for item in found:
        usb = item["usb"]
        if not isinstance(usb, dict):
            report.note(f"/dev/{item['tty']} is not on USB: no stable name for it")
            continue
        devices.append(SerialDevice(str(item["role"]), **usb))
    earlier = rules_by_role(layout.RULES.read_text()) if layout.RULES.is_file() else {}
    kept = {role: rule for role, rule in earlier.items() if role not in {d.role for d in devices}}
    text = render_rules(devices, kept, gpio_rule=not other_rules_give_gpio_a_group())
    if write_file(layout.RULES, text, 0o644):
        report.changed(f"wrote {layout.RULES}")
        if systemd_running() and shutil.which("udevadm"):
            run(["udevadm", "control", "--reload"])
            run(
                [
                    "udevadm",
                    "trigger",
                    "--action=add",
                    "--subsystem-match=tty",
                    "--subsystem-match=gpio",
                ]
            )


def write_units(report: Report, answers: Answers) -> list[str]:
    """Write and enable the units; the names of those that changed."""
    changed = []
    for unit in (layout.AGENT_UNIT, layout.SCREEN_UNIT):
        path = layout.UNIT_DIR / unit
        if write_file(path, render_unit(unit, answers.screen), 0o644):
            report.changed(f"wrote {path}")
            changed.append(unit)
        wants = layout.UNIT_DIR / "multi-user.target.wants" / unit
        if not wants.is_symlink():
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(path)
            report.changed(f"enabled {unit}")
    return changed


def unit_active(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def start_units(report: Report, changed: list[str]) -> None:
    if not systemd_running():
        report.note("not started: no systemd (a chroot or container); they start at boot")
        return
    if changed:
        run(["systemctl", "daemon-reload"])
    for unit in (layout.AGENT_UNIT, layout.SCREEN_UNIT):
        if unit in changed or not unit_active(unit):
            run(["systemctl", "restart", unit])
            report.changed(f"started {unit}")


def enroll(report: Report, answers: Answers) -> None:
    if layout.ENROLLMENT.exists():
        report.note("already enrolled: skip")
        return
    make_directory(layout.STATE, 0o700, layout.USER)
    assert answers.token is not None  # gather_answers insists on one when not enrolled
    output = run(
        [
            "runuser",
            "-u",
            layout.USER,
            "--",
            layout.SENTINEL,
            "device",
            "enroll",
            "--state",
            layout.STATE,
            "--host",
            answers.host,
            "--token",
            answers.token,
            "--name",
            answers.name,
            "--form",
            answers.form,
        ],
        capture=True,
    )
    report.changed(output.strip())


def selftest() -> int:
    """The self-test's table, printed; its exit status."""
    print("provision: self-test", flush=True)
    command = ["runuser", "-u", layout.USER, "--", str(layout.SENTINEL), "selftest"]
    return subprocess.run([*command, "--config", str(layout.CONFIG)], check=False).returncode


def provision(args: argparse.Namespace, ask: Callable[[str], str] = input) -> int:
    if not (CHECKOUT / "pyproject.toml").is_file():
        raise ProvisionError(f"{CHECKOUT} is not a checkout of the project")
    answers = gather_answers(args, layout.ENROLLMENT.exists(), ask)
    report = Report()
    install_packages(report)
    set_up_user(report)
    install_project(report, CHECKOUT)
    make_directory(layout.CACHE, 0o755, layout.USER)
    agent_was_running = systemd_running() and unit_active(layout.AGENT_UNIT)
    if agent_was_running:  # it holds the serial ports the probe opens
        run(["systemctl", "stop", layout.AGENT_UNIT])
    found = probe_serial(report)
    write_config(report, answers, found, args.reconfigure)
    write_udev_rules(report, found)
    changed_units = write_units(report, answers)
    enroll(report, answers)
    if agent_was_running:
        run(["systemctl", "start", layout.AGENT_UNIT])  # as it was: not a change
    # The agent serves the screen the self-test looks at, so it starts first (Type=notify:
    # `systemctl start` returns once it is ready).
    start_units(report, changed_units)
    status = selftest()
    if not report.changes:
        print("provision: nothing to change", flush=True)
    if status != 0:
        print("provision: the self-test failed (see above)", file=sys.stderr)
        return 1
    return 0


def uninstall(purge: bool) -> int:
    report = Report()
    units = (layout.AGENT_UNIT, layout.SCREEN_UNIT)
    if systemd_running():
        subprocess.run(["systemctl", "disable", "--now", *units], check=False)
    paths = [layout.UNIT_DIR / "multi-user.target.wants" / unit for unit in units]
    paths += [layout.UNIT_DIR / unit for unit in units] + [layout.RULES, layout.CONFIG]
    for path in paths:
        if path.is_symlink() or path.exists():
            path.unlink()
            report.changed(f"removed {path}")
    if layout.CONFIG.parent.is_dir() and not any(layout.CONFIG.parent.iterdir()):
        layout.CONFIG.parent.rmdir()
    removed_trees = [layout.PREFIX] + ([layout.STATE, layout.CACHE] if purge else [layout.CACHE])
    for tree in removed_trees:
        if tree.exists():
            shutil.rmtree(tree)
            report.changed(f"removed {tree}")
    try:
        pwd.getpwnam(layout.USER)
    except KeyError:
        pass
    else:
        run(["userdel", layout.USER])
        report.changed(f"removed the user {layout.USER}")
    if report.changes and systemd_running():
        run(["systemctl", "daemon-reload"])
    if layout.STATE.exists():
        report.note(f"kept {layout.STATE} (the device key and check-ins; --purge removes it)")
    if not report.changes:
        print("provision: nothing to remove", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.purge and not args.uninstall:
        parser.error("--purge goes with --uninstall")
    if os.geteuid() != 0:
        print("provision: run as root (sudo scripts/provision)", file=sys.stderr)
        return 1
    try:
        return uninstall(args.purge) if args.uninstall else provision(args)
    except UsageError as error:
        print(f"provision: {error}", file=sys.stderr)
        return 2
    except (ProvisionError, OSError) as error:
        print(f"provision: failed: {error}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\nprovision: stopped", file=sys.stderr)
        return 1
