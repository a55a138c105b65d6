"""`sentinel host screen` against a real host process: upload, progress, summary, result CSV."""

from __future__ import annotations

import csv
import io
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from sentinel.demo import Admin, HostProcess, sentinel_command
from shared.idnumber import id_check_character

pytestmark = pytest.mark.integration
PURPOSE = "reopening notice 2022-118"
RUN_SECONDS = 120.0


def id_number(serial: int) -> str:
    first17 = f"3301061985{serial:07d}"
    return first17 + id_check_character(first17)


def screener_token(admin: Admin) -> str:
    made = admin.http.post(
        "/admin/users", json={"name": "hr-acme", "role": "screener", "org": "Acme Logistics"}
    )
    assert made.status_code == 201, made.text
    return made.json()["token"]


def screen_command(host: HostProcess, staff: Path, *options: str) -> list[str]:
    return sentinel_command(
        "host", "screen", str(staff), "--max-test-age", "48h", "--purpose", PURPOSE,
        "--host", host.url, *options,
    )  # fmt: skip


@pytest.fixture
def staff(admin: Admin, tmp_path: Path) -> Path:
    """Four staff: one fine, one yellow, one tested too long ago, one unknown; and a typo."""
    admin.person(id_number(1), "green", 10)
    admin.person(id_number(2), "yellow", 10)
    admin.person(id_number(3), "green", 99.5)
    path = tmp_path / "staff.csv"
    rows = [
        "工号,姓名,身份证号",
        f"E1,张伟明,{id_number(1)}",
        f"E2,李小红,{id_number(2)}",
        f"E3,王芳,{id_number(3)}",
        f"E4,赵强,{id_number(4)}",
        f"E5,孙丽,{id_number(5)[:-1]}",
    ]
    path.write_text("\ufeff" + "\r\n".join(rows) + "\r\n", encoding="utf-8")
    return path


def test_a_staff_list_is_screened_and_its_results_written_with_names(
    host: HostProcess, admin: Admin, staff: Path, tmp_path: Path
):
    out = tmp_path / "result.csv"
    env = os.environ | {"SENTINEL_TOKEN": screener_token(admin)}
    finished = subprocess.run(
        screen_command(host, staff, "--out", str(out)),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "\r" not in finished.stdout and "[#" not in finished.stdout, "no bar off a terminal"
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("screening scr_") and "5 rows, tests within 48 h" in lines[0]
    assert [line.split() for line in lines[1:7]] == [
        ["flag", "rows", "share"],
        ["ok", "1", "20.0%"],
        ["no-recent-test", "1", "20.0%"],
        ["not-green", "1", "20.0%"],
        ["not-registered", "1", "20.0%"],
        ["invalid-id-number", "1", "20.0%"],
    ]
    assert list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig")))) == [
        ["row", "name", "staff_id", "flag", "hours_since_test"],
        ["1", "张伟明", "E1", "ok", ""],
        ["2", "李小红", "E2", "not-green", ""],
        ["3", "王芳", "E3", "no-recent-test", "100"],
        ["4", "赵强", "E4", "not-registered", ""],
        ["5", "孙丽", "E5", "invalid-id-number", ""],
    ]
    assert id_number(1) not in out.read_text(encoding="utf-8-sig")
    downloads = admin.http.get("/admin/audit", params={"action": "screening-download"}).json()
    assert [(record["purpose"], record["records"]) for record in downloads] == [(PURPOSE, 5)]


def read_terminal(master: int, process: subprocess.Popen[bytes]) -> bytes:
    """All a process wrote to the terminal at `master` until it exited, within RUN_SECONDS."""
    output = bytearray()
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=RUN_SECONDS)
    return bytes(output)


def test_on_a_terminal_progress_is_drawn_as_a_bar(
    host: HostProcess, admin: Admin, staff: Path
):
    env = os.environ | {"SENTINEL_TOKEN": screener_token(admin)}
    master, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            screen_command(host, staff), stdout=terminal, stderr=subprocess.PIPE, env=env
        )
        os.close(terminal)
        output = read_terminal(master, process).decode()
    finally:
        os.close(master)
    assert process.returncode == 0
    assert "\r[##############################] 100%  5 / 5 rows" in output
    assert "invalid-id-number" in output


def test_a_refused_list_or_test_age_is_said_plainly(
    host: HostProcess, admin: Admin, tmp_path: Path
):
    env = os.environ | {"SENTINEL_TOKEN": screener_token(admin)}
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{id_number(1)},张伟明\n", encoding="utf-8")
    refused = subprocess.run(
        screen_command(host, bad), env=env, capture_output=True, text=True,
        timeout=RUN_SECONDS, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "bad-staff-list: the first row holds an ID number, not column names" in refused.stderr
    assert id_number(1) not in refused.stderr
    command = screen_command(host, bad)
    command[command.index("48h")] = "2w"
    age = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS, check=False
    )
    assert age.returncode == 2
    assert "a test age is hours or days, e.g. 48h or 2d" in age.stderr
    no_token = subprocess.run(
        screen_command(host, bad), env=os.environ | {"SENTINEL_TOKEN": ""},
        capture_output=True, text=True, timeout=RUN_SECONDS, check=False,
    )  # fmt: skip
    assert no_token.returncode == 2
    assert "give --token or set SENTINEL_TOKEN" in no_token.stderr
