"""Where a provisioned kiosk keeps everything, and what it installs: one place for all of it."""

from __future__ import annotations

from pathlib import Path

PREFIX = Path("/opt/sentinel")
VENV = PREFIX / "venv"
SENTINEL = VENV / "bin" / "sentinel"
CONFIG = Path("/etc/sentinel/kiosk.toml")
STATE = Path("/var/lib/sentinel")
ENROLLMENT = STATE / "enrollment.json"  # device.identity's ENROLLMENT_FILE (it needs cryptography)
CACHE = Path("/var/cache/sentinel")
UNIT_DIR = Path("/etc/systemd/system")
AGENT_UNIT = "sentinel-agent.service"
SCREEN_UNIT = "sentinel-screen.service"
RULES = Path("/etc/udev/rules.d/99-sentinel.rules")
USER = "sentinel"
# video: cameras; dialout: the USB serial devices; gpio: lights, buzzer, gate, trigger;
# audio: the voice. gpio is not a group on plain Debian: provisioning makes it (see udev).
GROUPS = ("video", "dialout", "gpio", "audio")
LINK_NAMES = {"idcard": "sentinel-idcard", "thermometer": "sentinel-thermometer"}

# python3-venv: the kiosk's virtual environment; libzbar0: a QR decoder; pcscd: PC/SC card
# readers; espeak-ng and alsa-utils: the voice and its player; chromium and cage: the screen.
DEBIAN_PACKAGES = (
    "python3",
    "python3-venv",
    "libzbar0",
    "pcscd",
    "espeak-ng",
    "alsa-utils",
    "chromium",
    "cage",
)
# Where the repositories have them (Raspberry Pi OS): the Pi camera's library and the GPIO
# library gpiozero uses on a Pi, seen by the virtual environment through its system site.
OPTIONAL_PACKAGES = ("python3-picamera2", "python3-lgpio")
# From PyPI into the virtual environment beside the project: Debian 12's gpiozero is 1.6.
PIP_EXTRAS = ("gpiozero>=2.0",)
# What of a checkout is installed: the packages and what building them needs.
SOURCE_PARTS = ("pyproject.toml", "README.md", "shared", "hardware", "device", "host", "sentinel")
