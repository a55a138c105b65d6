"""Which serial device is the ID-card module and which the thermometer: asked, not guessed.

Each /dev/ttyUSB* and /dev/ttyACM* is asked briefly in every protocol the project speaks: the
GA 467 module's SAM id first, then a Modbus reading, then listened to for a streaming or a
line thermometer. Its USB vendor, product, serial number and port come from sysfs, for udev
rules that give it a stable name. Runs in the kiosk's virtual environment (it needs pyserial):
`python -m device.provision.probe` prints what it found as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from hardware.idcard.samreader import ReaderError, SamReader
from hardware.thermometer.driver import Thermometer
from hardware.thermometer.protocol import PROTOCOL_NAMES

SERIAL_NAME = re.compile(r"tty(USB|ACM)\d+")
ANSWER_SECONDS = 0.5  # a module or a Modbus thermometer that says nothing in this time: not it
LISTEN_SECONDS = 1.5  # a thermometer that sends unasked sends more often than this
IDCARD = "idcard"
THERMOMETER = "thermometer"


@dataclass(frozen=True)
class UsbIdentity:
    """What udev can match a USB serial adapter by: ids, serial number, port on the hub tree."""

    vendor: str
    product: str
    serial: str | None
    port_path: str  # the USB device's kernel name, e.g. "1-1.2": which socket it is in


@dataclass(frozen=True)
class Found:
    """A serial device that answered: its role, its tty and, for a thermometer, the protocol."""

    role: str
    tty: str
    usb: UsbIdentity | None
    protocol: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    found: list[Found]
    silent: list[str]  # ttys that answered in no protocol (busy, another device, switched off)

    def as_json(self) -> str:
        return json.dumps({"found": [asdict(f) for f in self.found], "silent": self.silent})


def serial_ttys(sysfs: Path) -> list[str]:
    """The USB serial ttys the kernel knows (ttyUSB*, ttyACM*), in name order."""
    tty_class = sysfs / "class" / "tty"
    if not tty_class.is_dir():
        return []
    names = [entry.name for entry in tty_class.iterdir() if SERIAL_NAME.fullmatch(entry.name)]
    return sorted(names, key=lambda name: (name[:6], int(name[6:])))


def usb_identity(sysfs: Path, tty: str) -> UsbIdentity | None:
    """The USB device a tty belongs to, found by walking up its sysfs device path."""
    top = sysfs.resolve()
    directory = (sysfs / "class" / "tty" / tty / "device").resolve()
    while directory != top and top in directory.parents:
        if (directory / "idVendor").is_file():
            serial = directory / "serial"
            return UsbIdentity(
                vendor=(directory / "idVendor").read_text().strip(),
                product=(directory / "idProduct").read_text().strip(),
                serial=(serial.read_text().strip() or None) if serial.is_file() else None,
                port_path=directory.name,
            )
        directory = directory.parent
    return None


def is_idcard_module(port: str, seconds: float = ANSWER_SECONDS) -> bool:
    """Whether a GA 467 module answers its SAM id at `port`."""
    with SamReader(port, timeout=seconds) as reader:
        try:
            reader.sam_id()
        except ReaderError:
            return False
    return True


def thermometer_protocol(
    port: str, answer_seconds: float = ANSWER_SECONDS, listen_seconds: float = LISTEN_SECONDS
) -> str | None:
    """The protocol a thermometer at `port` speaks (asked in Modbus, then listened to), or None."""
    for protocol in PROTOCOL_NAMES:
        seconds = answer_seconds if protocol == "modbus" else listen_seconds
        with Thermometer(port, protocol, response_timeout=seconds) as thermometer:
            if thermometer.read(seconds, plausible_only=False) is not None:
                return protocol
    return None


def probe(sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> ProbeResult:
    """Ask every USB serial tty which device it is; at most a few seconds for each."""
    found: list[Found] = []
    silent: list[str] = []
    for tty in serial_ttys(sysfs):
        port = str(dev / tty)
        usb = usb_identity(sysfs, tty)
        if is_idcard_module(port):
            found.append(Found(IDCARD, tty, usb))
        elif (protocol := thermometer_protocol(port)) is not None:
            found.append(Found(THERMOMETER, tty, usb, protocol))
        else:
            silent.append(tty)
    return ProbeResult(found, silent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m device.provision.probe",
        description="Find the ID-card module and the thermometer among the USB serial ports; "
        "print what answered as JSON.",
    )
    parser.add_argument("--sysfs", type=Path, default=Path("/sys"))
    parser.add_argument("--dev", type=Path, default=Path("/dev"))
    args = parser.parse_args(argv)
    print(probe(args.sysfs, args.dev).as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
