"""The kiosk's udev rules: stable names for its serial devices, GPIO for its group; a checker.

A rule names a device by what udev can see of it: USB vendor and product id, with the serial
number when the adapter has one, or else the USB socket it is plugged into (two adapters of one
make without serial numbers look alike otherwise). check_rules() is a syntax checker for rules
files, for udev versions without `udevadm verify` (before systemd 254, as in Debian 12).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from device.provision.layout import LINK_NAMES

GPIO_RULE = 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"'
HEADER = (
    "# Written by scripts/provision: stable names for the kiosk's serial devices, found by\n"
    "# asking each USB serial port which protocol it answers. Run it again to redo them.\n"
)


@dataclass(frozen=True)
class SerialDevice:
    """A device to name: its role (a key of LINK_NAMES) and its USB identity."""

    role: str
    vendor: str
    product: str
    serial: str | None
    port_path: str


def device_rule(device: SerialDevice, others: Iterable[SerialDevice]) -> str:
    """The rule that gives `device` its /dev/sentinel-... link, told apart from `others`."""
    keys = [
        'SUBSYSTEM=="tty"',
        f'ATTRS{{idVendor}}=="{device.vendor}"',
        f'ATTRS{{idProduct}}=="{device.product}"',
    ]
    same_make = [o for o in others if (o.vendor, o.product) == (device.vendor, device.product)]
    if device.serial is not None and all(o.serial != device.serial for o in same_make):
        keys.append(f'ATTRS{{serial}}=="{device.serial}"')
    elif same_make:
        keys.append(f'KERNELS=="{device.port_path}"')  # the USB socket: keep it plugged there
    keys.append(f'SYMLINK+="{LINK_NAMES[device.role]}"')
    return ", ".join(keys)


def render_rules(devices: list[SerialDevice], kept: dict[str, str], gpio_rule: bool) -> str:
    """The rules file: a rule for each device found, and those `kept` from before.

    `kept` holds earlier rules (by role) of roles not found this time; the GPIO rule is added
    when no other rules file gives gpiochips a group.
    """
    lines = [HEADER]
    for device in devices:
        others = [other for other in devices if other is not device]
        lines.append(f"# {device.role}\n{device_rule(device, others)}\n")
    for role, rule in sorted(kept.items()):
        lines.append(f"# {role} (not found on this run; kept)\n{rule}\n")
    if gpio_rule:
        lines.append(f"# GPIO character devices for the gpio group\n{GPIO_RULE}\n")
    return "\n".join(lines)


def rules_by_role(text: str) -> dict[str, str]:
    """The device rules of an earlier rules file of ours, by role."""
    roles = {f'SYMLINK+="{link}"': role for role, link in LINK_NAMES.items()}
    found: dict[str, str] = {}
    for line in text.splitlines():
        for marker, role in roles.items():
            if marker in line and not line.lstrip().startswith("#"):
                found[role] = line.strip()
    return found


# -- the checker ---------------------------------------------------------------------------

MATCH_OPERATORS = ("==", "!=")
ASSIGN_OPERATORS = ("=", "+=", "-=", ":=")
# Key: (takes an {attribute}, the operators it allows).
_MATCH_ONLY = MATCH_OPERATORS
_ANY = MATCH_OPERATORS + ASSIGN_OPERATORS
KEYS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "ACTION": (False, _MATCH_ONLY),
    "DEVPATH": (False, _MATCH_ONLY),
    "KERNEL": (False, _MATCH_ONLY),
    "KERNELS": (False, _MATCH_ONLY),
    "SUBSYSTEM": (False, _MATCH_ONLY),
    "SUBSYSTEMS": (False, _MATCH_ONLY),
    "DRIVER": (False, _MATCH_ONLY),
    "DRIVERS": (False, _MATCH_ONLY),
    "ATTRS": (True, _MATCH_ONLY),
    "TAGS": (False, _MATCH_ONLY),
    "TEST": (True, _MATCH_ONLY),
    "PROGRAM": (False, _MATCH_ONLY),
    "RESULT": (False, _MATCH_ONLY),
    "CONST": (True, _MATCH_ONLY),
    "ATTR": (True, _ANY),
    "SYSCTL": (True, _ANY),
    "ENV": (True, _ANY),
    "TAG": (False, _ANY),
    "NAME": (False, _ANY),
    "SYMLINK": (False, _ANY),
    "OWNER": (False, ("=", ":=")),
    "GROUP": (False, ("=", ":=")),
    "MODE": (False, ("=", ":=")),
    "SECLABEL": (True, ("=", "+=", ":=")),
    "RUN": (True, ("=", "+=", ":=")),
    "IMPORT": (True, _MATCH_ONLY),
    "OPTIONS": (False, ("=", "+=")),
    "LABEL": (False, ("=",)),
    "GOTO": (False, ("=",)),
}
_ITEM = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^{}"]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?P<end>,|$)'
)


class UdevRuleError(ValueError):
    """A line of a rules file that udev would not take, with its line number."""


def check_rules(text: str) -> int:
    """Check a rules file's syntax; the number of rules in it. UdevRuleError for a bad line."""
    count = 0
    logical = ""
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not logical:
            start = number
        if line.endswith("\\"):
            logical += line[:-1]
            continue
        logical += line
        content, logical = logical.strip(), ""
        if not content or content.startswith("#"):
            continue
        _check_rule(content, start)
        count += 1
    if logical.strip():
        raise UdevRuleError(f"line {start}: the file ends inside a continued line")
    return count


def _check_rule(rule: str, line: int) -> None:
    position = 0
    while position < len(rule):
        item = _ITEM.match(rule, position)
        if item is None:
            raise UdevRuleError(f"line {line}: cannot read {rule[position:][:40]!r}")
        key, attr, operator = item["key"], item["attr"], item["op"]
        if key not in KEYS:
            raise UdevRuleError(f"line {line}: unknown key {key}")
        takes_attr, operators = KEYS[key]
        if takes_attr != (attr is not None) and key not in ("IMPORT", "RUN"):
            wanted = "needs" if takes_attr else "takes no"
            raise UdevRuleError(f"line {line}: {key} {wanted} {{attribute}}")
        if operator not in operators:
            raise UdevRuleError(f"line {line}: {key} does not take {operator}")
        if key == "MODE" and not re.fullmatch(r"0?[0-7]{3}", item["value"]):
            raise UdevRuleError(f"line {line}: MODE {item['value']!r} is not an octal mode")
        position = item.end()
        if item["end"] == "," and position >= len(rule):
            raise UdevRuleError(f"line {line}: a comma ends the rule")
