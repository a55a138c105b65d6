"""scripts/provision for real: in a Debian 12 root made with debootstrap, against a real host.

The root (minbase plus the Debian packages the script installs) is built once and cached under
/var/cache/sentinel-tests, keyed by what goes into it; each test runs on an overlay of it, so
the cache stays clean. The chroot shares this machine's network namespace, so the kiosk enrolls
with a host process on 127.0.0.1. There is no systemd in a chroot: the script must say so and
start nothing. Units are checked with `systemd-analyze verify --root`, udev rules with our
checker (Debian 12's udevadm has no `verify`). Needs root and debootstrap (scripts/_bootstrap
installs it when run as root); skipped otherwise. arm64 runs under qemu-user-static only when
SENTINEL_TEST_ARM64=1, as it takes several times longer than amd64.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from device import kiosk_config
from device.provision import layout
from device.provision.udev import check_rules
from sentinel.demo import Admin, HostProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/sentinel-tests")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
CHECKOUT = Path("/srv/digital-sentinel")  # where the checkout is seen inside the root
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info")
BUILD_SECONDS = 1800
PROVISION_SECONDS = 900
HOST_TRUST = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
TRUST = Path("/etc/ssl/certs/sentinel-tests-trust.pem")
PYPI_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "PIP_CERT": str(TRUST),
}
WHEELS = Path("/var/cache/sentinel-tests-wheels")  # the wheelhouse, as the root sees it
# The script's pip installs from the wheelhouse, which was filled from PyPI: fast and the same.
SELF_TEST_ROW = re.compile(r"(?P<item>\S.*?)\s{2,}(?P<result>pass|warn|fail|absent)\s")
ENV = {**PYPI_ENV, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}

if os.geteuid() != 0:
    pytest.skip("provisioning needs root (chroot, mounts)", allow_module_level=True)
if shutil.which("debootstrap") is None:
    pytest.skip(
        "debootstrap is not installed (scripts/_bootstrap installs it as root)",
        allow_module_level=True,
    )


def sh(*command: str | Path, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        check=True,
        timeout=timeout,
        **kwargs,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def mounted(root: Path, extra: list[tuple[Path, Path, bool]] = ()) -> Iterator[None]:
    """/proc, /sys, /dev and /dev/pts of this machine in the root, and `extra` bind mounts."""
    done: list[Path] = []
    try:
        for kind, target in (("proc", "proc"), ("sysfs", "sys")):
            sh("mount", "-t", kind, kind, root / target)
            done.append(root / target)
        for source, target, read_only in [
            (Path("/dev"), Path("dev"), False),
            (Path("/dev/pts"), Path("dev/pts"), False),
            *extra,
        ]:
            where = root / target
            where.mkdir(parents=True, exist_ok=True)
            sh("mount", "--bind", source, where)
            done.append(where)
            if read_only:
                sh("mount", "-o", "remount,bind,ro", where)
        yield
    finally:
        for where in reversed(done):
            subprocess.run(["umount", "-l", str(where)], check=False)


def remove_root(root: Path) -> None:
    """Delete a root, first unmounting anything a killed run left mounted inside it."""
    inside = [
        Path(line.split()[1])
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if Path(line.split()[1]).is_relative_to(root)
    ]
    for where in sorted(inside, key=lambda path: len(path.parts), reverse=True):
        subprocess.run(["umount", "-l", str(where)], check=False)
    shutil.rmtree(root)


def cache_key(arch: str) -> str:
    """What the cached root is made of: suite, architecture, mirror and the package lists."""
    inputs = [SUITE, arch, MIRROR, *layout.DEBIAN_PACKAGES, "|", *layout.OPTIONAL_PACKAGES]
    return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]


def cached_root(arch: str) -> Path:
    """A Debian 12 root with the script's Debian packages installed, built once per key."""
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"{SUITE}-{arch}-{cache_key(arch)}"
    with open(CACHE / f".lock-{arch}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
            return root
        for stale in CACHE.glob(f"{SUITE}-{arch}-*"):  # roots of other package lists
            remove_root(stale)  # and a root a killed run left half built
        building = root.with_name(root.name + ".building")
        started = time.monotonic()
        sh(
            "debootstrap",
            "--variant=minbase",
            f"--arch={arch}",
            SUITE,
            building,
            MIRROR,
            timeout=BUILD_SECONDS,
            stdout=subprocess.DEVNULL,
        )
        shutil.copy(Path("/etc/resolv.conf"), building / "etc/resolv.conf")
        packages = " ".join(layout.DEBIAN_PACKAGES)
        with mounted(building):
            sh(
                "chroot",
                building,
                "sh",
                "-c",
                f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                f"--no-install-recommends {packages} >/dev/null && apt-get clean",
                env=ENV,
                timeout=BUILD_SECONDS,
            )
        (building / ".complete").write_text(f"built in {time.monotonic() - started:.0f} s\n")
        building.rename(root)
        return root


@pytest.fixture
def kiosk_root(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A writable overlay of the cached root, with the checkout and a pip cache mounted."""
    arch = request.param
    lower = cached_root(arch)
    upper, work, merged = (tmp_path / name for name in ("upper", "work", "root"))
    for directory in (upper, work, merged):
        directory.mkdir()
    sh(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir={lower},upperdir={upper},workdir={work}",
        merged,
    )
    try:
        shutil.copy(Path("/etc/resolv.conf"), merged / "etc/resolv.conf")
        # This machine's trust (it may reach PyPI through a proxy with its own CA) for pip.
        (merged / TRUST.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy(HOST_TRUST, merged / TRUST.relative_to("/"))
        house = wheelhouse(arch)
        # A snapshot of the checkout: others may edit the working tree while this test runs.
        snapshot = tmp_path / "checkout"
        snapshot.mkdir()
        for part in (*layout.SOURCE_PARTS, "scripts"):
            if (REPO / part).is_dir():
                shutil.copytree(REPO / part, snapshot / part, ignore=IGNORED)
            else:
                shutil.copy2(REPO / part, snapshot / part)
        extra = [
            (snapshot, CHECKOUT.relative_to("/"), True),
            (house, WHEELS.relative_to("/"), False),
        ]
        with mounted(merged, extra):
            if not (house / ".complete").exists():
                fill_wheelhouse(merged, house)
            yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def wheelhouse(arch: str) -> Path:
    """The cached wheels of the project's requirements, keyed by them and the architecture."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    inputs = "\n".join([arch, *project["dependencies"], *layout.PIP_EXTRAS])
    house = CACHE / f"wheels-{arch}-{hashlib.sha256(inputs.encode()).hexdigest()[:16]}"
    for stale in CACHE.glob(f"wheels-{arch}-*"):
        if stale != house:
            shutil.rmtree(stale)
    house.mkdir(parents=True, exist_ok=True)
    return house


def fill_wheelhouse(root: Path, house: Path) -> None:
    """Wheels of every requirement, made in the root (its Python, its architecture) from PyPI."""
    for stale in house.iterdir():
        stale.unlink()
    sources = " ".join(layout.SOURCE_PARTS)
    extras = " ".join(f"'{extra}'" for extra in layout.PIP_EXTRAS)
    script = (
        f"set -e; rm -rf /tmp/wheels-src /tmp/wheels-venv; mkdir /tmp/wheels-src; "
        f"cd {CHECKOUT} && cp -r {sources} /tmp/wheels-src/; "
        f"python3 -m venv /tmp/wheels-venv; "
        f"/tmp/wheels-venv/bin/pip wheel -q -w {WHEELS} /tmp/wheels-src {extras}; "
        f"/tmp/wheels-venv/bin/pip download -q -d {WHEELS} 'setuptools>=77'; "
        f"rm -rf /tmp/wheels-src /tmp/wheels-venv {WHEELS}/digital_sentinel-*.whl"
    )
    sh("chroot", root, "sh", "-c", script, env=PYPI_ENV, timeout=BUILD_SECONDS)
    (house / ".complete").touch()


def provision(root: Path, *argv: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(
        ["chroot", str(root), str(CHECKOUT / "scripts/provision"), *argv],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=PROVISION_SECONDS,
        check=False,
    )
    print(f"provision {' '.join(argv[:1])}: {time.monotonic() - started:.1f} s")
    print(done.stdout, done.stderr)
    return done


def self_test(output: str) -> dict[str, str]:
    """The self-test's table in the script's output: each item's result."""
    rows = (SELF_TEST_ROW.match(line) for line in output.splitlines())
    return {row["item"]: row["result"] for row in rows if row}


def group_members(root: Path) -> dict[str, tuple[int, list[str]]]:
    groups = {}
    for line in (root / "etc/group").read_text().splitlines():
        name, _, gid, members = line.split(":")
        groups[name] = (int(gid), [m for m in members.split(",") if m])
    return groups


def architectures() -> list[object]:
    arm64_reason = None
    if NATIVE != "arm64":
        if os.environ.get("SENTINEL_TEST_ARM64") != "1":
            arm64_reason = "arm64 under qemu is slow: set SENTINEL_TEST_ARM64=1"
        elif not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
            arm64_reason = "no qemu-aarch64 binfmt handler (qemu-user-static, binfmt_misc)"
    return (
        [
            pytest.param(NATIVE, id=NATIVE),
            pytest.param(
                "arm64",
                id="arm64",
                marks=pytest.mark.skipif(arm64_reason is not None, reason=str(arm64_reason)),
            ),
        ]
        if NATIVE != "arm64"
        else [pytest.param(NATIVE, id=NATIVE)]
    )


@pytest.mark.timeout(BUILD_SECONDS + 3 * PROVISION_SECONDS)
@pytest.mark.parametrize("kiosk_root", architectures(), indirect=True)
def test_provision_in_a_debian_12_root(kiosk_root: Path, host: HostProcess, admin: Admin):
    root = kiosk_root
    venue = admin.venue("Riverside Mall", "1 River Road", "public_place")
    token = admin.enrollment_token(venue.id)
    argv = [
        "--non-interactive",
        "--host",
        host.url,
        "--token",
        token,
        "--form",
        "kiosk",
        "--name",
        "chroot-kiosk",
        "--camera",
        "none",
        "--voice",
        "zh,en",
    ]

    first = provision(root, *argv)
    assert "not started: no systemd" in first.stdout
    assert "skipped python3-picamera2: not in this system's repositories" in first.stdout
    assert "made the system group gpio" in first.stdout
    assert "enrolled as " in first.stdout
    # In a chroot the agent is not running, so its screen does not answer, and this machine has
    # no sound card: the self-test fails those two (rightly), and so the script exits 1.
    assert self_test(first.stdout) == {
        "camera": "absent",
        "decoder": "pass",
        "card reader": "absent",
        "thermometer": "absent",
        "lights and gate": "absent",
        "trigger": "absent",
        "voice": "fail",
        "enrollment": "pass",
        "host": "pass",
        "clock": "pass",
        "disk": "pass",
        "screen": "fail",
    }
    assert (first.returncode, first.stderr.splitlines()[-1]) == (
        1,
        "provision: the self-test failed (see above)",
    )

    # The units verify clean against the root (its binaries, its users).
    units = [
        root / layout.UNIT_DIR.relative_to("/") / unit
        for unit in (layout.AGENT_UNIT, layout.SCREEN_UNIT)
    ]
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert {layout.AGENT_UNIT, layout.SCREEN_UNIT} <= {p.name for p in wants.iterdir()}
    # The check can fail: a unit with an unknown key and a missing program does not verify.
    broken = units[0].with_name("broken.service")
    broken.write_text("[Service]\nExecStart=/opt/missing/bin/agent\nProtectSystem=sideways\n")
    refused = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "ignoring: sideways" in refused.stderr
    assert "/opt/missing/bin/agent is not executable" in refused.stderr
    broken.unlink()

    rules = (root / layout.RULES.relative_to("/")).read_text()
    assert check_rules(rules) == 1  # the gpio rule: this machine has no serial devices

    config = root / layout.CONFIG.relative_to("/")
    loaded = kiosk_config.load(config)
    assert loaded.values["host.url"] == host.url
    assert loaded.values["device.form"] == "kiosk"
    groups = group_members(root)
    assert (config.stat().st_mode & 0o777, config.stat().st_gid) == (0o640, groups["sentinel"][0])
    for group in layout.GROUPS:
        assert "sentinel" in groups[group][1], group

    enrollment = json.loads((root / "var/lib/sentinel/enrollment.json").read_text())
    assert enrollment["venue_id"] == venue.id
    state = root / "var/lib/sentinel"
    assert state.stat().st_mode & 0o777 == 0o700

    second = provision(root, *argv)
    assert second.returncode == 1, second.stderr
    assert self_test(second.stdout) == self_test(first.stdout)
    assert "nothing to change" in second.stdout
    assert "already enrolled: skip" in second.stdout

    removed = provision(root, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    for path in (*units, root / layout.RULES.relative_to("/"), config, root / "opt/sentinel"):
        assert not path.exists(), path
    assert "sentinel:" not in (root / "etc/passwd").read_text()
    assert (state / "enrollment.json").exists()  # kept without --purge
    purged = provision(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not state.exists()
