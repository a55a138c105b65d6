"""The progress line: nothing written unless standard error is a terminal; on a pty, updates."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from sentinel.progress import CLEAR_TO_END, Progress


def read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def test_nothing_is_written_when_not_a_terminal(tmp_path: Path) -> None:
    written = io.StringIO()
    with Progress(written) as progress:
        assert not progress.shown
        progress.update("stored 1,000,000 check-ins")
        progress.update("host-kill 2 of 3", part="host-kill")
    assert written.getvalue() == ""
    with (tmp_path / "log").open("w") as log:
        Progress(log).update("stored")
    assert (tmp_path / "log").read_text() == ""


def test_on_a_pty_each_update_rewrites_the_line() -> None:
    controller, terminal = os.openpty()
    try:
        with os.fdopen(terminal, "w", closefd=False) as stream:
            progress = Progress(stream)
            assert progress.shown
            progress.update("device-kill 1 of 6", part="device-kill")
            progress.update("host-kill 1 of 3", part="host-kill")
            progress.update("device-kill 2 of 6", part="device-kill")
            progress.done("host-kill")
            progress.clear()
        written = read_all(controller).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    lines = written.split("\r")[1:]
    assert lines == [
        f"device-kill 1 of 6{CLEAR_TO_END}",
        f"device-kill 1 of 6 · host-kill 1 of 3{CLEAR_TO_END}",
        f"device-kill 2 of 6 · host-kill 1 of 3{CLEAR_TO_END}",
        f"device-kill 2 of 6{CLEAR_TO_END}",
        CLEAR_TO_END,
    ]


def test_a_command_s_stderr_gets_the_line_only_on_a_terminal() -> None:
    """The default line follows sys.stderr: a pipe gets nothing, a pty the update."""
    script = "from sentinel.progress import progress; progress.update('working'); progress.clear()"
    piped = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    assert piped.stderr == b""
    controller, terminal = os.openpty()
    try:
        subprocess.run([sys.executable, "-c", script], stderr=terminal, timeout=60, check=True)
        written = read_all(controller)
    finally:
        os.close(controller)
        os.close(terminal)
    assert written == f"\rworking{CLEAR_TO_END}\r{CLEAR_TO_END}".encode()
