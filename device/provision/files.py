"""The files provisioning writes, rendered as text: the kiosk's config and its systemd units.

Pure functions of the technician's answers and what the probe found, so a second run renders
the same bytes and can tell that nothing changed.
"""

from __future__ import annotations

import json
import string
import tomllib
from dataclasses import dataclass
from importlib import resources

from device.provision import layout


@dataclass(frozen=True)
class Answers:
    """What the technician chose (prompted, or by flags); None: not fitted / not given."""

    host: str
    token: str | None
    form: str
    name: str
    camera: str | None
    voice: str | None
    green_pin: str | None = None
    red_pin: str | None = None
    buzzer_pin: str | None = None
    gate_pin: str | None = None
    trigger_pin: str | None = None
    screen: str = "127.0.0.1:8080"


@dataclass(frozen=True)
class Fitted:
    """Serial devices the probe found: the thermometer's protocol, or None when not found."""

    idcard: bool = False
    thermometer_protocol: str | None = None


def _value(value: object) -> str:
    """A TOML value: strings quoted as JSON quotes them (valid TOML), numbers as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _pin(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def render_config(answers: Answers, fitted: Fitted) -> str:
    """/etc/sentinel/kiosk.toml in the layout of docs/kiosk.example.toml."""
    tables: list[tuple[str, dict[str, object]]] = [
        ("host", {"url": answers.host}),
        ("device", {"state": str(layout.STATE), "form": answers.form}),
    ]
    if answers.camera:
        tables.append(("camera", {"source": answers.camera}))
    if fitted.idcard:
        tables.append(("idcard", {"port": f"/dev/{layout.LINK_NAMES['idcard']}"}))
    if fitted.thermometer_protocol:
        port = f"/dev/{layout.LINK_NAMES['thermometer']}"
        tables.append(("thermometer", {"port": port, "protocol": fitted.thermometer_protocol}))
    signals = {
        f"{name}_pin": _pin(pin)
        for name, pin in (
            ("green", answers.green_pin),
            ("red", answers.red_pin),
            ("buzzer", answers.buzzer_pin),
            ("trigger", answers.trigger_pin),
        )
        if pin
    }
    if signals:
        tables.append(("signals", signals))
    if answers.gate_pin:
        tables.append(("gate", {"pin": _pin(answers.gate_pin)}))
    if answers.voice:
        tables.append(("voice", {"languages": answers.voice, "cache": str(layout.CACHE / "voice")}))
    tables.append(("screen", {"listen": answers.screen}))
    parts = [
        "# Written by scripts/provision from the technician's answers; see\n"
        "# docs/kiosk.example.toml for every key. Provisioning keeps this file as it is on later\n"
        "# runs unless told --reconfigure.\n"
    ]
    for name, keys in tables:
        body = "".join(f"{key} = {_value(value)}\n" for key, value in keys.items())
        parts.append(f"[{name}]\n{body}")
    text = "\n".join(parts)
    tomllib.loads(text)  # what we write must read back
    return text


def screen_url(listen: str) -> str:
    return f"http://{listen}/"


def render_unit(name: str, answers_screen: str) -> str:
    """A systemd unit from its template in this package."""
    template = resources.files("device.provision").joinpath("templates", name).read_text()
    return string.Template(template).substitute(
        config=layout.CONFIG,
        sentinel=layout.SENTINEL,
        user=layout.USER,
        groups=" ".join(layout.GROUPS),
        agent_unit=layout.AGENT_UNIT,
        state=layout.STATE,
        url=screen_url(answers_screen),
    )
