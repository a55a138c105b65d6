"""Fixtures for the voice tests: the real espeak-ng, and stand-in players that are real scripts."""

import shutil
import stat
import time
from pathlib import Path

import pytest

WAIT = 15.0  # seconds any wait in these tests may take before it counts as a failure


def wait_until(condition, what):
    """Poll condition until it holds: bounded by WAIT, so a failure cannot hang the run."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="session")
def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    return found


class FakePlayer:
    """A player command that notes each file it is given, then 'plays' for `seconds`.

    It fails (exit 3, a message on stderr) while the file `broken` exists.
    """

    def __init__(self, folder: Path, seconds: float) -> None:
        self.log = folder / "played.txt"
        self.broken = folder / "broken"
        self.pids = folder / "pids.txt"
        script = write_script(
            folder / "player.sh",
            f'echo "$$" >> "{self.pids}"\n'
            f'if [ -e "{self.broken}" ]; then echo "audio open error: no device" >&2; exit 3; fi\n'
            f'echo "$@" >> "{self.log}"\n'
            f"exec sleep {seconds}\n",
        )
        self.command = [str(script)]

    def played(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake_player(tmp_path):
    def make(seconds: float = 0.0) -> FakePlayer:
        folder = tmp_path / f"player-{seconds}"
        folder.mkdir(exist_ok=True)
        return FakePlayer(folder, seconds)

    return make
