"""What a technician meets at the command line: --version, help everywhere, one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import cv2
import pytest

from device.agent import DATABASE_FILE
from device.identity import Enrollment, save_enrollment
from device.kiosk_config import FromDefault, format_value
from device.store import Store
from sentinel.cli import CHECKOUT, DISTRIBUTION, build_parser
from shared.messages import DeviceForm
from tests.sentinel.test_decode import frame_with, write_video

TOKEN = "x" * 32


def sentinel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_version_names_the_distribution_and_the_commit() -> None:
    done = sentinel("--version")
    assert done.returncode == 0
    expected = f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    if (CHECKOUT / ".git").exists():
        assert re.fullmatch(
            rf"{re.escape(expected)} \(git [0-9a-f]{{7,}}(-dirty)?\)\n", done.stdout
        )
    else:
        assert done.stdout == f"{expected}\n"


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("sentinel",)
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree, with its command line."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


def test_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    without_help: list[str] = []
    default_not_shown: list[str] = []
    commands = list(parsers(build_parser()))
    assert len(commands) > 30  # the walk reached the nested commands
    for command, parser in commands:
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            name = "/".join(action.option_strings) or action.dest
            if not action.help:
                without_help.append(f"{command} {name}")
                continue
            default = action.default
            if isinstance(default, FromDefault):
                default = default.value
            nothing = default is None or default is False or default is argparse.SUPPRESS
            empty = isinstance(default, str | list | tuple) and not default
            if not action.option_strings or nothing or empty:
                continue
            if "default" not in action.help and f"(default: {format_value(default)})" not in text:
                default_not_shown.append(f"{command} {name}")
    assert without_help == []
    assert default_not_shown == []


def test_help_shows_a_default_given_as_a_number() -> None:
    run = dict(parsers(build_parser()))["sentinel device run"]
    text = " ".join(run.format_help().split())
    assert "delete them (default: 7)" in text  # 7.0 as a person writes it
    assert "[--config FILE]" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["device", "enroll", "--host", "http://127.0.0.1:9", "--token", "short"],
            "sentinel device enroll: --token: String should have at least 16 characters",
        ),
        (
            ["device", "enroll", "--host", "http://127.0.0.1:9", "--token", TOKEN],
            "sentinel device enroll: cannot reach http://127.0.0.1:9: ",
        ),
        (
            ["device", "enroll", "--host", "127.0.0.1:8000", "--token", TOKEN],
            "sentinel device enroll: --host 127.0.0.1:8000: not an http:// or https:// URL",
        ),
        (
            ["device", "enroll", "--token", TOKEN],
            "sentinel device enroll: give the host: --host URL, or [host] url in --config",
        ),
        (
            [
                "host",
                "trace",
                "--host",
                "http://127.0.0.1:9",
                "--token",
                TOKEN,
                "--person",
                "p",
                "--since",
                "2026-12-01",
                "--purpose",
                "case",
            ],
            "sentinel host trace: cannot reach http://127.0.0.1:9: ",
        ),
        (
            [
                "host",
                "trace",
                "--host",
                "host:8000",
                "--token",
                TOKEN,
                "--person",
                "p",
                "--since",
                "2026-12-01",
                "--purpose",
                "case",
            ],
            "sentinel host trace: --host host:8000: not an http:// or https:// URL",
        ),
        (
            ["device", "run", "--source", "/no/such/frames"],
            "sentinel device run: --source /no/such/frames: no such file or directory",
        ),
    ],
)
def test_a_technicians_mistake_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    state = ["--state", str(tmp_path / "state")] if args[0] == "device" else []
    done = sentinel(*args, *state)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(message)


def test_an_unwritable_state_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = sentinel(
        "device", "enroll", "--host", "http://127.0.0.1:9", "--token", TOKEN,
        "--state", str(blocker / "state"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sentinel device enroll: --state {blocker / 'state'}: Not a directory"
    ]


def test_an_http_public_url_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    done = sentinel(
        "host", "serve", "--db", str(tmp_path / "host.db"), "--port", "9",
        "--public-url", "http://sentinel.example.org",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "sentinel host serve: --public-url http://sentinel.example.org: public_url must be an "
        "https URL: phones only open https venue codes"
    ]
    assert list(tmp_path.iterdir()) == []  # no database, keys or admin token


def test_a_mistyped_database_path_makes_no_database(tmp_path: Path) -> None:
    typo = tmp_path / "hots.db"
    done = sentinel("host", "user", "list", "--db", str(typo))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"sentinel host user: --db {typo}: no host database there "
        "(`sentinel host serve --db FILE` makes one)"
    ]
    assert not typo.exists()


@pytest.mark.parametrize(
    "name", ["a#1.png", "what?size=1x1.png", "with space.png", "x,y.png", "camera:0.png"]
)
def test_decode_reports_a_file_under_its_own_name(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentinel.cli import main

    image = tmp_path / name
    assert cv2.imwrite(str(image), frame_with("DS1:NAMED"))
    assert main(["decode", "--json", str(image)]) == 0
    [result] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (result["path"], result["texts"]) == (str(image), ["DS1:NAMED"])


def test_decode_reports_a_video_and_a_directory_with_hashes_in_their_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentinel.cli import main

    folder = tmp_path / "day #2"
    folder.mkdir()
    video = write_video(folder / "clip#7.avi", [frame_with(None)] * 2 + [frame_with("DS1:V")] * 3)
    assert cv2.imwrite(str(folder / "b?.png"), frame_with("DS1:B"))
    assert main(["decode", "--json", str(folder)]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["path"], r["texts"], r.get("frames", 1)) for r in results] == [
        (str(folder / "b?.png"), ["DS1:B"], 1),
        (str(video), ["DS1:V"], 5),
    ]


def test_status_shows_revocation_and_the_last_sync_error(tmp_path: Path) -> None:
    save_enrollment(
        tmp_path, Enrollment("d_kiosk1", "v_mall", "http://127.0.0.1:9", DeviceForm.KIOSK)
    )
    store = Store(tmp_path / DATABASE_FILE)
    fresh = sentinel("device", "status", "--state", str(tmp_path), "--json")
    assert json.loads(fresh.stdout)["revoked"] is None
    assert json.loads(fresh.stdout)["sync_error"] is None
    store.record_sync_error("POST /api/v1/device/checkins: HTTP 503", 4)
    store.mark_revoked("d_kiosk1", "kiosk stolen")
    state = json.loads(sentinel("device", "status", "--state", str(tmp_path), "--json").stdout)
    assert state["revoked"] == "kiosk stolen"
    assert state["sync_error"]["error"] == "POST /api/v1/device/checkins: HTTP 503"
    assert (state["sync_error"]["failures"], state["sync_error"]["resolved_at_ms"]) == (4, None)
    lines = sentinel("device", "status", "--state", str(tmp_path)).stdout.splitlines()
    by_name = dict(line.strip().split(": ", 1) for line in lines)
    assert by_name["revoked"] == "yes: kiosk stolen (re-enroll with a new token to serve again)"
    assert by_name["sync_error"].startswith("POST /api/v1/device/checkins: HTTP 503 (")
    assert by_name["sync_error"].endswith("4 failure(s) in a row; not resolved)")
    store.resolve_sync_error()
    resolved = store.sync_error()
    assert resolved is not None and resolved.resolved_at_ms is not None
