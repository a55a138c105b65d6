"""A kiosk set up from its configuration file against a real host: enroll, run, status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sentinel.demo import Admin, HostProcess, sentinel_command

ID_NUMBER = "110101199003077774"


def sentinel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sentinel_command(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def events(done: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def kiosk_file(directory: Path, host_url: str, source: str) -> Path:
    """A kiosk.toml whose paths are relative to its own directory, as provisioning writes it."""
    path = directory / "kiosk.toml"
    path.write_text(
        f'[host]\nurl = "{host_url}"\n\n'
        '[device]\nstate = "state"\nform = "kiosk"\nrepeat_window_seconds = 600\n\n'
        f'[camera]\nsource = "{source}"\n',
        encoding="utf-8",
    )
    return path


def test_enroll_and_run_from_the_file_with_options_overriding_it(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    etc = tmp_path / "etc"
    etc.mkdir()
    config = kiosk_file(etc, host.url, "frames-missing")
    enrolled = sentinel(
        "device", "enroll", "--config", str(config), "--token", admin.enrollment_token(venue.id)
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert (etc / "state" / "enrollment.json").exists()  # [device] state, relative to the file

    frames = etc / "frames"
    frames.mkdir()
    person = admin.person(ID_NUMBER, "green", test_hours_ago=10)
    (frames / "code.png").write_bytes(admin.code_png(person))

    # The file's source does not exist: the run says so, naming the resolved path.
    missing = sentinel("device", "run", "--config", str(config), "--exit-when-done")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"sentinel device run: --source {etc / 'frames-missing'}: "
        f"no such file or directory: {etc / 'frames-missing'}"
    )
    # --source on the command line overrides the file's.
    run = sentinel(
        "device", "run", "--config", str(config), "--source", str(frames),
        "--events", "json", "--exit-when-done", "--drain-timeout", "30",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [event["decision"] for event in events(run)] == ["pass"]

    # The file's source, once it names the frames, is used without --source.
    config.write_text(config.read_text().replace("frames-missing", "frames"))
    again = sentinel(
        "device", "run", "--config", str(config), "--events", "json",
        "--exit-when-done", "--drain-timeout", "30", "--repeat-window", "0",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert [event["decision"] for event in events(again)] == ["pass"]

    status = sentinel("device", "status", "--config", str(config), "--json")
    state = json.loads(status.stdout)
    assert (state["recorded"], state["pending"], state["revoked"]) == (2, 0, None)


def test_a_file_naming_another_host_is_refused(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    config = kiosk_file(tmp_path, host.url, "frames")
    (tmp_path / "frames").mkdir()
    assert (
        sentinel(
            "device", "enroll", "--config", str(config), "--token", admin.enrollment_token(venue.id)
        ).returncode
        == 0
    )
    config.write_text(config.read_text().replace(host.url, "https://elsewhere.example.org"))
    done = sentinel("device", "run", "--config", str(config), "--exit-when-done")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"sentinel device run: {config}: [host] url is https://elsewhere.example.org, but this "
        f"kiosk enrolled with {host.url}: fix the file, or enroll again "
        "(sentinel device enroll --config)"
    )


def test_status_shows_the_last_sync_error_until_sync_works_again(
    host: HostProcess, admin: Admin, tmp_path: Path
) -> None:
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    config = kiosk_file(tmp_path, host.url, "frames")
    frames = tmp_path / "frames"
    frames.mkdir()
    person = admin.person(ID_NUMBER, "green", test_hours_ago=10)
    (frames / "code.png").write_bytes(admin.code_png(person))
    assert (
        sentinel(
            "device", "enroll", "--config", str(config), "--token", admin.enrollment_token(venue.id)
        ).returncode
        == 0
    )

    host.stop()  # the network is down: the check-in stays pending, the error is kept
    offline = sentinel(
        "device", "run", "--config", str(config), "--exit-when-done", "--drain-timeout", "2"
    )
    assert offline.returncode == 3  # sync did not drain
    state = json.loads(sentinel("device", "status", "--config", str(config), "--json").stdout)
    assert state["pending"] == 1
    error = state["sync_error"]
    assert "ConnectError" in error["error"] and error["failures"] >= 1
    assert error["resolved_at_ms"] is None
    shown = sentinel("device", "status", "--config", str(config)).stdout
    assert "sync_error: GET /api/v1/device/config: ConnectError" in shown
    assert "not resolved)" in shown

    host.start()
    online = sentinel(
        "device", "run", "--config", str(config), "--exit-when-done", "--drain-timeout", "30"
    )
    assert online.returncode == 0, online.stderr
    state = json.loads(sentinel("device", "status", "--config", str(config), "--json").stdout)
    assert state["pending"] == 0
    assert state["sync_error"]["resolved_at_ms"] >= state["sync_error"]["at_ms"]
    assert "sync works again since" in sentinel("device", "status", "--config", str(config)).stdout
