"""The kiosk configuration file: every key checked, mistakes named by key and line, options win."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from device import kiosk_config
from device.kiosk_config import KEYS, ConfigError, key_lines, load
from sentinel.cli import build_parser, main

EXAMPLE = Path(__file__).resolve().parents[2] / kiosk_config.EXAMPLE


def sentinel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def shown(capsys: pytest.CaptureFixture[str], path: Path | None, *options: str) -> dict[str, dict]:
    """`sentinel device config show --json`, in this process: each setting by key."""
    config = [] if path is None else ["--config", str(path)]
    assert main(["device", "config", "show", "--json", *config, *options]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    return {setting["key"]: setting for setting in settings}


def test_the_example_is_complete_and_valid() -> None:
    config = load(EXAMPLE)
    text = EXAMPLE.read_text(encoding="utf-8")
    commented_out = {"host.ca_file", "camera.gain", "camera.fourcc"}  # shown as comments
    assert set(config.values) == {key.path for key in KEYS} - commented_out
    for name in commented_out:
        assert f"# {name.partition('.')[2]} = " in text
    # Each key's line is the line that assigns it.
    lines = text.splitlines()
    for name, line in config.lines.items():
        assert lines[line - 1].lstrip().startswith(f"{name.partition('.')[2]} ="), name


def test_key_lines_follow_tables_dotted_keys_and_skip_multiline_strings() -> None:
    text = (
        'top = 1\n'
        '[camera]\n'
        'note = """\n'
        'fps = 99\n'
        '"""\n'
        'fps = 15\n'
        '[ voice ]\n'
        '"player" = "aplay"\n'
        'screen.listen = "127.0.0.1:8080"\n'
    )  # fmt: skip
    tomllib.loads(text)  # the text is valid TOML
    assert key_lines(text) == {
        "top": 1,
        "camera": 2,
        "camera.note": 3,
        "camera.fps": 6,
        "voice": 7,
        "voice.player": 8,
        "voice.screen.listen": 9,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[camera]\nsource = "camera:0"\nfps = 0\n', "line 3: [camera] fps: 0 is not a number > 0"),
        ('[camera]\n\nfps = "fast"\n', "line 3: [camera] fps: 'fast' is not a number > 0"),
        ("[device]\nretention_days = true\n", "line 2: [device] retention_days: True is not"),
        ("[device]\nrepeat_window_seconds = -1\n", "line 2: [device] repeat_window_seconds"),
        ('[device]\nform = "pillar"\n', "line 2: [device] form: 'pillar' is not one of kiosk"),
        ('[device]\nstate = ""\n', "line 2: [device] state: '' is not a non-empty string"),
        ('[host]\nurl = "sentinel.example.org"\n', "line 2: [host] url: 'sentinel.example.org'"),
        ("[signals]\ngreen_pin = 40\n", "line 2: [signals] green_pin: 40 is not a GPIO number"),
        ('[signals]\nred_pin = "pin 3"\n', "line 2: [signals] red_pin: 'pin 3' is not a GPIO"),
        ('[thermometer]\nport = "/dev/x"\nprotocol = "modbus-rtu"\n', "line 3: [thermometer]"),
        ("[thermometer]\noffset_c = 12.5\n", "offset_c: 12.5 is not a number from -10 to 10"),
        ('[gate]\npin = 23\nactive_low = "yes"\n', "line 3: [gate] active_low: 'yes' is not"),
        ('[voice]\nlanguages = "zh,fr"\n', "line 2: [voice] languages: 'zh,fr' is not zh, en"),
        ('[screen]\nlisten = "8080"\n', "line 2: [screen] listen: '8080' is not HOST:PORT"),
        ('[camera]\nsource = "picamera"\nsize = "1280*720"\n', "line 3: [camera] size:"),
        ('[camera]\nsource = "camera:0"\nexposure = -5\n', "line 3: [camera] exposure: -5"),
        ('[camera]\nsource = "camera:0"\nfourcc = "MJPEG"\n', "line 3: [camera] fourcc"),
        ('[camera]\nsource = "clips/"\nsize = "640x480"\n', "size: only a camera takes it"),
        ('[camera]\nsize = "640x480"\n', "line 2: [camera] size: there is no [camera] source"),
        ('[camera]\nsource = "camera:0?fps=5"\nsize = "640x480"\n', "line 2: [camera] source"),
        ('[camera]\nsource = "camera:0"\nfsp = 15\n', "line 3: unknown key 'fsp' in [camera]"),
        ('[camra]\nsource = "camera:0"\n', "line 1: unknown table [camra]"),
        ('camera = "camera:0"\n', "line 1: camera is a table"),
        ('[screen]\nlisten = "0.0.0.0:8080"\n', "line 2: [screen] listen: 0.0.0.0 is not a loop"),
    ],
)
def test_a_mistake_names_its_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        kiosk_config.merge(_show_arguments(path))
    assert str(raised.value).startswith(f"{path} line ") or "cannot read" in str(raised.value)
    assert message in str(raised.value)


def _show_arguments(path: Path) -> argparse.Namespace:
    return build_parser().parse_args(["device", "config", "show", "--config", str(path)])


def test_an_unknown_key_suggests_the_one_meant(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'fps'\?"):
        load(write(tmp_path, '[camera]\nsource = "camera:0"\nfsp = 15\n'))


@pytest.mark.parametrize("command", [["device", "run"], ["selftest"], ["device", "config", "show"]])
def test_the_commands_refuse_a_bad_file_with_one_line_and_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    path = write(tmp_path, "[device]\nretention_days = 7\n\n[gate]\nopen_seconds = 0\n")
    done = sentinel(*command, "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sentinel {' '.join(command[:2] if command[0] == 'device' else command)}: "
        f"{path} line 5: [gate] open_seconds: 0 is not a number > 0"
    ]


def test_a_toml_syntax_error_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[device]\nform = "kiosk"\n\n[camera\nsource = "camera:0"\n')
    done = sentinel("device", "run", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sentinel device run: {path} line 4: not valid TOML: "
        "Expected ']' at the end of a table declaration"
    ]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    done = sentinel("selftest", "--config", str(tmp_path / "nope.toml"))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"sentinel selftest: {tmp_path / 'nope.toml'}: cannot read: No such file or directory",
    )


def test_options_override_the_file_which_overrides_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[device]\nretention_days = 14\n\n[gate]\npin = 23\nopen_seconds = 2\n")
    from_file = shown(capsys, path)
    assert from_file["device.retention_days"] == {
        "key": "device.retention_days", "option": "--retention-days", "value": 14.0,
        "from": "file", "line": 2,
    }  # fmt: skip
    assert (from_file["gate.pin"]["value"], from_file["gate.pin"]["line"]) == (23, 5)
    assert from_file["device.scan_seconds"]["from"] == "default"
    overridden = shown(capsys, path, "--retention-days", "7", "--gate-pin", "24")
    # 7 is also the default: given on the command line, it still wins over the file.
    assert overridden["device.retention_days"]["value"] == 7.0
    assert overridden["device.retention_days"]["from"] == "command line"
    assert (overridden["gate.pin"]["value"], overridden["gate.pin"]["from"]) == (
        "24",
        "command line",
    )
    assert overridden["gate.open_seconds"]["from"] == "file"


def test_a_flag_on_the_command_line_overrides_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[screen]\nlisten = "0.0.0.0:8080"\n')
    assert main(["device", "config", "show", "--config", str(path)]) == 2
    allowed = shown(capsys, path, "--screen-allow-remote")
    assert allowed["screen.allow_remote"]["from"] == "command line"
    assert allowed["screen.listen"]["value"] == "0.0.0.0:8080"


def test_relative_paths_are_relative_to_the_files_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "kiosk.toml"
    path.write_text(
        '[device]\nstate = "state"\n[camera]\nsource = "frames/a.png, b.png"\n'
        '[idcard]\nport = "../dev/sam"\n[voice]\nlanguages = ["en"]\ncache = "voice"\n'
        '[thermometer]\nport = "/dev/ttyUSB0"\n'
    )  # fmt: skip
    settings = shown(capsys, path)  # run from another directory: the file's own counts
    etc = path.parent.resolve()
    assert settings["device.state"]["value"] == str(etc / "state")
    assert settings["camera.source"]["value"] == f"{etc / 'frames/a.png'},{etc / 'b.png'}"
    assert settings["idcard.port"]["value"] == str(etc / "../dev/sam")
    assert settings["voice.cache"]["value"] == str(etc / "voice")
    assert settings["voice.languages"]["value"] == "en"
    assert settings["thermometer.port"]["value"] == "/dev/ttyUSB0"


def test_camera_options_become_the_sources_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        '[camera]\nsource = "camera:0"\nfps = 30\nsize = "1280x720"\nfourcc = "MJPG"\n'
        'exposure = 8000\nfocus = "auto"\n',
    )
    settings = shown(capsys, path)
    assert settings["camera.source"]["value"] == (
        "camera:0?size=1280x720&exposure=8000&focus=auto&fourcc=MJPG"
    )
    assert settings["camera.fps"]["value"] == 30.0
    replaced = shown(capsys, path, "--source", "/dev/video2")
    assert replaced["camera.source"]["value"] == "/dev/video2"
    assert replaced["camera.size"]["from"] == "file, unused: --source given"


def test_config_show_without_a_file_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "config", "show", "--state", "/srv/kiosk"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "configuration file: none (--config FILE)"
    assert any(
        line.split() == ["device.state", "/srv/kiosk", "(command", "line)"] for line in lines
    )
    assert any(line.split() == ["device.retention_days", "7", "(default)"] for line in lines)


def test_selftest_takes_its_parts_from_the_file(tmp_path: Path) -> None:
    from hardware.thermometer.emulator import Emulator

    with Emulator("stream", celsius=36.6) as emulator:
        path = write(
            tmp_path,
            f'[thermometer]\nport = "{emulator.port}"\nprotocol = "stream"\noffset_c = 0.5\n',
        )
        from_file = sentinel("selftest", "--json", "--config", str(path))
        overridden = sentinel(
            "selftest", "--json", "--config", str(path), "--thermometer-offset", "-0.5"
        )
    items = {item["item"]: item for item in json.loads(from_file.stdout)["items"]}
    assert (items["thermometer"]["result"], items["thermometer"]["detail"]) == ("pass", "37.1 °C")
    items = {item["item"]: item for item in json.loads(overridden.stdout)["items"]}
    assert items["thermometer"]["detail"] == "36.1 °C"
