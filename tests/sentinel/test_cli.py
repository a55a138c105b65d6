"""The `sentinel` command: every subcommand explains itself, and errors are clear."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.cli import build_parser, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_top_level_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in (
        "host serve",
        "device enroll",
        "device run",
        "device status",
        "demo",
        "decode",
        "bench",
        "thermometer read",
        "card read",
    ):
        assert f"sentinel {command}" in result.stdout


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        (["host", "serve"], ["--db", "postgresql://", "--workers", "--admin-token-file"]),
        (["device", "enroll"], ["--token", "one-time", "--form"]),
        (["device", "run"], ["--source", "camera:N", "--exit-when-done", "--repeat-window"]),
        (["device", "status"], ["--json"]),
        (["demo"], ["--json", "--workdir", "--db", "two enrolled kiosks"]),
        (["decode"], ["--json", "PATH"]),
        (["bench", "decode"], ["--seed", "--codes", "--empty", "--decoders", "--json"]),
        (["bench", "pipeline"], ["--people", "--json"]),
        (["bench", "host"], ["--checkins", "--http-checkins", "--seconds", "--backends", "--json"]),
        (["thermometer", "read"], ["--port", "--protocol", "--offset", "--json"]),
        (["card", "read"], ["--reader", "--mrz", "--reveal", "--json"]),
    ],
)
def test_each_subcommand_explains_its_options(
    command: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for mention in mentions:
        assert mention in text


def test_a_missing_subcommand_is_an_error() -> None:
    result = run("device")
    assert result.returncode == 2
    assert "required" in result.stderr


def test_running_an_unenrolled_device_says_what_to_do(tmp_path: Path) -> None:
    assert main(["device", "status", "--state", str(tmp_path)]) == 2


def test_enrolling_against_no_host_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["device", "enroll", "--host", "http://127.0.0.1:9", "--token", "x" * 32,
                   "--state", str(tmp_path)])  # fmt: skip
    assert status == 2
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["/no/such/frames", "camera:front"])
def test_a_bad_source_is_named(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["device", "run", "--state", str(tmp_path), "--source", source]) == 2
    assert f"--source {source}" in capsys.readouterr().err
