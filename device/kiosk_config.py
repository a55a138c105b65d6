"""The kiosk's configuration file (kiosk.toml): read, checked key by key, merged with options.

One TOML table per part (docs/kiosk.example.toml is the complete, commented example). Each
key stands for one option of `sentinel device run`; an option given on the command line wins
over the file, the file over the option's default. Every key is checked (type, range, choice;
unknown tables and keys too) and a mistake is a ConfigError naming the key and its line.
tomllib gives no positions, so the lines are found in the text by `key_lines`.
"""

from __future__ import annotations

import argparse
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from device.peripherals import LANGUAGES
from device.screen.server import parse_address
from hardware.thermometer.driver import MAX_OFFSET
from hardware.thermometer.protocol import PROTOCOL_NAMES
from shared.messages import DeviceForm

EXAMPLE = "docs/kiosk.example.toml"
MAX_BCM_PIN = 27  # a Raspberry Pi's header carries GPIO 0-27
CAMERA_PREFIXES = ("camera:", "picamera")
_V4L2_DEVICE = re.compile(r"/dev/video\d+")
_TOML_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY_ASSIGNMENT = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class FromDefault:
    """An option's default, kept apart from a value given on the command line.

    The options a file may set have these as argparse defaults (see `mark_defaults`), so that
    after parsing, an option still holding one was not given; str() is the default's own text,
    which is what help shows.
    """

    value: object

    def __str__(self) -> str:
        return format_value(self.value)


def format_value(value: object) -> str:
    """A setting as a person reads it: 7 rather than 7.0, a path as its text."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(map(format_value, value))
    return str(value)


Check = Callable[[object, Path], object]  # (value in the file, the file's directory) -> value


@dataclass(frozen=True)
class Key:
    """One key of the file: its table and name, the option it stands for, and its check."""

    table: str
    name: str
    dest: str | None  # the option's argparse dest; None for keys only the file has
    check: Check
    option: str  # the command-line option, as a person types it ("" if none)

    @property
    def path(self) -> str:
        return f"{self.table}.{self.name}"


def _text(value: object, base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _path(value: object, base: Path) -> Path:
    """A path; relative ones are relative to the file's directory."""
    return base / Path(_text(value, base)).expanduser()


def _port(value: object, base: Path) -> str:
    return str(_path(value, base))


def _number(minimum: float, *, above: bool, maximum: float | None = None) -> Check:
    """A number (integer or float, not a boolean) above or at least minimum, at most maximum."""
    bound = f"> {minimum:g}" if above else f">= {minimum:g}"
    if maximum is not None:
        bound = f"from {minimum:g} to {maximum:g}"

    def check(value: object, base: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number {bound}")
        low_ok = value > minimum if above else value >= minimum
        if not low_ok or (maximum is not None and value > maximum):
            raise ValueError(f"{value:g} is not a number {bound}")
        return float(value)

    return check


def _choice(choices: Iterable[str]) -> Check:
    names = tuple(choices)

    def check(value: object, base: Path) -> str:
        if value not in names:
            raise ValueError(f"{value!r} is not one of {', '.join(names)}")
        return str(value)

    return check


def _flag(value: object, base: Path) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _gpio(value: object, base: Path) -> int | str:
    """A BCM number 0-27, or a name gpiozero takes ("GPIO17", "BOARD11")."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a GPIO number (0-{MAX_BCM_PIN}) or name")
    if isinstance(value, int) and not 0 <= value <= MAX_BCM_PIN:
        raise ValueError(f"{value} is not a GPIO number (0-{MAX_BCM_PIN})")
    if isinstance(value, str) and not re.fullmatch(r"(GPIO|BCM|BOARD|WPI)\d+|J8:\d+", value):
        raise ValueError(f"{value!r} is not a GPIO number or name such as GPIO17 or BOARD11")
    return value


def _languages(value: object, base: Path) -> str:
    """Languages as --voice takes them: "zh", "en", "zh,en", or a list of them."""
    parts = value if isinstance(value, list) else str(_text(value, base)).split(",")
    names = [str(part).strip() for part in parts]
    unknown = [name for name in names if name not in LANGUAGES]
    if not names or unknown:
        raise ValueError(f"{value!r} is not zh, en or zh,en")
    return ",".join(names)


def _url(value: object, base: Path) -> str:
    text = _text(value, base)
    if not re.match(r"https?://[^/\s]+", text):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _listen(value: object, base: Path) -> str:
    text = _text(value, base)
    parse_address(text, allow_remote=True)  # the form here; loopback once allow_remote is known
    return text


def _size(value: object, base: Path) -> str:
    text = _text(value, base)
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", text):
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    return text


def _automatic_or(number: Check) -> Check:
    def check(value: object, base: Path) -> str:
        if value == "auto":
            return "auto"
        try:
            return format_value(number(value, base))
        except ValueError as error:
            raise ValueError(f'{error}, or "auto"') from None

    return check


def _integer_above_zero(value: object, base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{value!r} is not a whole number > 0")
    return value


def _fourcc(value: object, base: Path) -> str:
    text = _text(value, base)
    if not (len(text) == 4 and text.isascii() and text.isprintable()):
        raise ValueError(f"{text!r} is not four characters, e.g. MJPG")
    return text


def _source(value: object, base: Path) -> str:
    """A camera as named, or paths (comma-separated) made relative to the file's directory."""
    text = _text(value, base)
    if is_camera(text):
        return text
    return ",".join(str(_path(part.strip(), base)) for part in text.split(",") if part.strip())


def is_camera(source: str) -> bool:
    """Whether a --source names a live camera (as opposed to files to replay)."""
    name = source.partition("?")[0]
    return name.startswith(CAMERA_PREFIXES) or bool(_V4L2_DEVICE.fullmatch(name))


# Camera options that go after '?' in --source, as hardware.frames.open_source reads them.
CAMERA_OPTIONS = {
    "size": _size,
    "decode_size": _size,
    "exposure": _automatic_or(_integer_above_zero),
    "gain": _number(0, above=True),
    "focus": _automatic_or(_number(0, above=False)),
    "fourcc": _fourcc,
}

KEYS = (
    Key("host", "url", "host", _url, "--host"),
    Key("host", "ca_file", "ca_file", _path, "--ca-file"),
    Key("device", "state", "state", _path, "--state"),
    Key("device", "form", "form", _choice(form.value for form in DeviceForm), "--form"),
    Key("device", "retention_days", "retention_days", _number(0, above=True), "--retention-days"),
    Key(
        "device",
        "repeat_window_seconds",
        "repeat_window",
        _number(0, above=False),
        "--repeat-window",
    ),
    Key("device", "scan_seconds", "scan_seconds", _number(0, above=True), "--scan-seconds"),
    Key("camera", "source", "source", _source, "--source"),
    Key("camera", "fps", "fps", _number(0, above=True), "--fps"),
    *(Key("camera", name, None, check, "") for name, check in CAMERA_OPTIONS.items()),
    Key("idcard", "port", "sam", _port, "--sam"),
    Key("thermometer", "port", "thermometer", _port, "--thermometer"),
    Key(
        "thermometer",
        "protocol",
        "thermometer_protocol",
        _choice(PROTOCOL_NAMES),
        "--thermometer-protocol",
    ),
    Key(
        "thermometer",
        "offset_c",
        "thermometer_offset",
        _number(-MAX_OFFSET, above=False, maximum=MAX_OFFSET),
        "--thermometer-offset",
    ),
    Key("signals", "green_pin", "green_pin", _gpio, "--green-pin"),
    Key("signals", "red_pin", "red_pin", _gpio, "--red-pin"),
    Key("signals", "buzzer_pin", "buzzer_pin", _gpio, "--buzzer-pin"),
    Key("signals", "trigger_pin", "trigger_pin", _gpio, "--trigger-pin"),
    Key("gate", "pin", "gate_pin", _gpio, "--gate-pin"),
    Key("gate", "active_low", "gate_active_low", _flag, "--gate-active-low"),
    Key("gate", "open_seconds", "gate_open", _number(0, above=True), "--gate-open"),
    Key("voice", "languages", "voice", _languages, "--voice"),
    Key("voice", "cache", "voice_cache", _path, "--voice-cache"),
    Key("voice", "player", "voice_player", _text, "--voice-player"),
    Key("screen", "listen", "screen", _listen, "--screen"),
    Key("screen", "hold_seconds", "screen_hold", _number(0, above=True), "--screen-hold"),
    Key("screen", "allow_remote", "screen_allow_remote", _flag, "--screen-allow-remote"),
)
TABLES = tuple(dict.fromkeys(key.table for key in KEYS))
# The options a file may set, by dest: marked with FromDefault so a given one is told apart.
CONFIG_DESTS = tuple(key.dest for key in KEYS if key.dest is not None)


@dataclass(frozen=True)
class KioskConfig:
    """A checked file: each key's value (as its option takes it) and its line in the file."""

    path: Path
    values: dict[str, object]  # by Key.path, e.g. "camera.fps"
    lines: dict[str, int]

    def camera_source(self) -> str | None:
        """[camera] source with the camera options after '?', as --source takes it."""
        source = self.values.get("camera.source")
        if source is None:
            return None
        options = [
            f"{name}={self.values[f'camera.{name}']}"
            for name in CAMERA_OPTIONS
            if f"camera.{name}" in self.values
        ]
        if not options:
            return str(source)
        return f"{source}{'&' if '?' in str(source) else '?'}{'&'.join(options)}"


@dataclass(frozen=True)
class Setting:
    """One effective setting and where it came from: "file", "command line" or "default"."""

    key: str
    option: str
    value: object
    origin: str
    line: int | None = None

    def as_json(self) -> dict[str, object]:
        value = self.value
        shown = (
            value if isinstance(value, int | float | bool | str) or value is None else str(value)
        )
        return {
            "key": self.key,
            "option": self.option,
            "value": shown,
            "from": self.origin,
            "line": self.line,
        }


def key_lines(text: str) -> dict[str, int]:
    """The line (from 1) of each key the text assigns, as "table.key" (or "key" at the top).

    Tables ([name]) and dotted keys (a.b = ...) are followed; lines inside multi-line strings
    are skipped. Inline tables are not looked into: their keys have their parent's line.
    """
    lines: dict[str, int] = {}
    table: list[str] = []
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_multiline:
            in_multiline = quotes % 2 == 0
            continue
        header = _TABLE_HEADER.match(line)
        if header and not line.lstrip().startswith("[["):
            table = _split_key(header[1])
            lines.setdefault(".".join(table), number)
        else:
            assignment = _KEY_ASSIGNMENT.match(line)
            if assignment:
                lines.setdefault(".".join([*table, *_split_key(assignment[1])]), number)
        in_multiline = quotes % 2 == 1
    return lines


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
    return [next(part for part in groups if part) if any(groups) else "" for groups in parts]


def load(path: Path) -> KioskConfig:
    """The file at `path`, every key checked; ConfigError names the first mistake and its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = _TOML_ERROR_LINE.search(str(error))
        reason = _TOML_ERROR_LINE.sub("", str(error)).strip()
        where = f" line {found[1]}" if found else ""
        raise ConfigError(f"{path}{where}: not valid TOML: {reason}") from None
    lines = key_lines(text)
    base = path.resolve().parent
    known = {key.path: key for key in KEYS}

    def fail(name: str, message: str) -> ConfigError:
        line = lines.get(name) or lines.get(name.partition(".")[0])
        where = f" line {line}" if line else ""
        return ConfigError(f"{path}{where}: {message}")

    values: dict[str, object] = {}
    for table, contents in document.items():
        if table not in TABLES:
            raise fail(table, f"unknown table [{table}]{_suggest(table, TABLES)}")
        if not isinstance(contents, dict):
            raise fail(table, f"{table} is a table ([{table}] with its keys), not a value")
        for name, value in contents.items():
            key = known.get(f"{table}.{name}")
            if key is None:
                names = [key.name for key in KEYS if key.table == table]
                raise fail(
                    f"{table}.{name}", f"unknown key {name!r} in [{table}]{_suggest(name, names)}"
                )
            try:
                values[key.path] = key.check(value, base)
            except ValueError as error:
                raise fail(key.path, f"[{table}] {name}: {error}") from None
    config = KioskConfig(path, values, {name: lines[name] for name in values if name in lines})
    _check_camera_options(config, fail)
    return config


def _suggest(name: str, known: Iterable[str]) -> str:
    choices = list(known)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (known: {', '.join(choices)}){hint}"


def _check_camera_options(config: KioskConfig, fail: Callable[[str, str], ConfigError]) -> None:
    """Camera options need a camera: a replayed file takes none of them."""
    given = [name for name in CAMERA_OPTIONS if f"camera.{name}" in config.values]
    if not given:
        return
    source = config.values.get("camera.source")
    if source is None:
        raise fail(f"camera.{given[0]}", f"[camera] {given[0]}: there is no [camera] source")
    if not is_camera(str(source)):
        raise fail(f"camera.{given[0]}", f"[camera] {given[0]}: only a camera takes it, not files")
    if "?" in str(source):
        raise fail(
            "camera.source",
            f"[camera] source: give the camera's options either after '?' or as keys "
            f"({', '.join(given)}), not both",
        )


def mark_defaults(parser: argparse.ArgumentParser) -> None:
    """Wrap the defaults of the options a file may set, so that `merge` sees which were given."""
    present = {action.dest for action in parser._actions}
    for dest in CONFIG_DESTS:
        if dest in present:
            parser.set_defaults(**{dest: FromDefault(parser.get_default(dest))})


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config FILE, and the defaults of the options it may set marked (`mark_defaults`)."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"the kiosk's configuration file, e.g. /etc/sentinel/kiosk.toml ({EXAMPLE}); "
        "options given here override it",
    )
    mark_defaults(parser)


def merge(args: argparse.Namespace) -> list[Setting]:
    """Fill args from --config where no option was given, else from the defaults.

    Returns every setting with its origin: the options args has, and the file's other keys
    ([host] url for a command without --host, the camera's options). ConfigError (a
    ValueError) names a mistake in the file.
    """
    config = load(args.config) if getattr(args, "config", None) else None
    values = config.values if config else {}
    lines = config.lines if config else {}
    settings: list[Setting] = []
    for key in KEYS:
        if key.dest is None or key.dest not in vars(args):
            if key.path in values:
                origin = "file"
                if key.table == "camera" and _origin(settings, "camera.source") == "command line":
                    origin = "file, unused: --source given"
                settings.append(
                    Setting(key.path, key.option, values[key.path], origin, lines.get(key.path))
                )
            continue
        given = getattr(args, key.dest)
        if not isinstance(given, FromDefault):
            settings.append(Setting(key.path, key.option, given, "command line"))
            continue
        if config is not None and key.path in values:
            value = config.camera_source() if key.path == "camera.source" else values[key.path]
            settings.append(Setting(key.path, key.option, value, "file", lines.get(key.path)))
        else:
            value = given.value
            settings.append(Setting(key.path, key.option, value, "default"))
        setattr(args, key.dest, value)
    if config is not None:
        _check_screen_address(args, config, settings)
    return settings


def _origin(settings: list[Setting], key: str) -> str | None:
    return next((setting.origin for setting in settings if setting.key == key), None)


def _check_screen_address(
    args: argparse.Namespace, config: KioskConfig, settings: list[Setting]
) -> None:
    """[screen] listen on a remote address needs allow_remote, in the file or as an option."""
    if _origin(settings, "screen.listen") != "file" or getattr(args, "screen_allow_remote", True):
        return
    try:
        parse_address(str(args.screen), allow_remote=False)
    except ValueError as error:
        line = config.lines.get("screen.listen")
        raise ConfigError(
            f"{config.path} line {line}: [screen] listen: {error}".replace(
                "--screen-allow-remote is given", "[screen] allow_remote = true"
            )
        ) from None
