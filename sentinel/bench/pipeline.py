"""`sentinel bench pipeline`: a kiosk clip replayed through the agent, offline: time per frame, RSS.

The clip (hardware.scenes.presentation_clip) shows people holding up phones with real signed
health codes between empty frames. An enrolled-looking device state is made with the venue's
rule set and the health key cached, and a host address where nothing listens, so the kiosk runs
offline as after a network cut. Two runs, each in a fresh process:

- timing: the agent's own objects (decoder, verifier, rules, SQLite store) take every frame of
  the clip as the scan loop does; the time from frame to decision committed is taken per frame;
- memory: `sentinel device run` itself replays the clip; its peak RSS is read when it exits.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from shared import healthcode
from shared.healthcode import CodeKind, Colour, NucleicTest, TestResult
from shared.keys import KeyPurpose, SigningKey
from shared.messages import DeviceConfig, PublishedKey, SignedRules, Venue
from shared.policy import VenueCategory
from shared.rules.defaults import default_ruleset

CLIP_FPS = 15
# Where the benchmark's device thinks its host is: a port on this machine where nothing listens.
OFFLINE_HOST = "http://127.0.0.1:9"
WORKER_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class PipelineResult:
    """Per-frame times (ms) through the pipeline, the decisions made, and the agent's peak RSS."""

    frame_ms: list[float]
    outcomes: dict[str, int]
    worker_rss_mb: float
    agent_rss_mb: float
    agent_exit: int
    frame_size: tuple[int, int]

    def table(self) -> list[str]:
        frames = np.array(self.frame_ms)
        width, height = self.frame_size
        return [
            "| frames | size | p50 ms | p95 ms | max ms | decisions "
            "| peak RSS: `sentinel device run` / timing process |",
            "|---|---|---|---|---|---|---|",
            f"| {len(frames)} | {width}x{height} | {np.percentile(frames, 50):.2f} | "
            f"{np.percentile(frames, 95):.2f} | {frames.max():.2f} | "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.outcomes.items()))} | "
            f"{self.agent_rss_mb:.0f} MB / {self.worker_rss_mb:.0f} MB |",
        ]

    def as_json(self) -> dict[str, object]:
        frames = np.array(self.frame_ms)
        return {
            "frames": len(frames),
            "p50_ms": round(float(np.percentile(frames, 50)), 3),
            "p95_ms": round(float(np.percentile(frames, 95)), 3),
            "max_ms": round(float(frames.max()), 3),
            "mean_ms": round(statistics.fmean(frames), 3),
            "outcomes": self.outcomes,
            "timing_process_rss_mb": round(self.worker_rss_mb, 1),
            "agent_rss_mb": round(self.agent_rss_mb, 1),
            "agent_exit": self.agent_exit,
        }


def prepare(workdir: Path, people: int, seed: int) -> tuple[Path, Path]:
    """A device state directory, offline, and a clip of people showing green codes."""
    from device.agent import DATABASE_FILE
    from device.identity import Enrollment, save_enrollment
    from device.store import Store
    from hardware import scenes

    key = SigningKey.generate()
    policy_key = SigningKey.generate()
    now = datetime.now(UTC)
    category = VenueCategory.PUBLIC_PLACE
    venue = Venue(
        id="v_bench",
        name="Benchmark venue",
        address="127.0.0.1",
        category=category,
        code_url="https://sentinel.example.org/v/v_bench",
    )
    config = DeviceConfig(
        device_id="d_bench",
        venue=venue,
        rules=SignedRules.of(default_ruleset(category), policy_key),
        keys=[
            PublishedKey.of(key, KeyPurpose.HEALTH),
            PublishedKey.of(policy_key, KeyPurpose.POLICY),
        ],
        server_time=now,
    )
    state = workdir / "state"
    state.mkdir(parents=True)
    save_enrollment(state, Enrollment("d_bench", venue.id, OFFLINE_HOST))
    Store(state / DATABASE_FILE).save_config(config)
    test = NucleicTest(now - timedelta(hours=10), TestResult.NEGATIVE)
    texts = [
        healthcode.issue(
            healthcode.new_code(
                person_ref=f"p_bench_{number}",
                kind=CodeKind.DYNAMIC,  # valid 3 minutes: the clip is replayed unpaced, in seconds
                colour=Colour.GREEN,
                test=test,
                now=now,
            ),
            key,
        )
        for number in range(people)
    ]
    clip = scenes.write_clip(
        scenes.presentation_clip(texts, seed, fps=CLIP_FPS), workdir / "clip.avi", CLIP_FPS
    )
    return state, clip


def measure(people: int = 10, seed: int = 7) -> PipelineResult:
    """Prepare, then run the timing worker and the real agent, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as temporary:
        workdir = Path(temporary)
        state, clip = prepare(workdir, people, seed)
        agent_state = workdir / "agent-state"
        shutil.copytree(state, agent_state)
        worker = _run_python(["-m", "sentinel.bench.pipeline", str(state), str(clip)])
        timing = json.loads(worker.stdout)
        agent = _run_python(
            [
                "-m", "sentinel", "device", "run",
                "--state", str(agent_state),
                "--source", str(clip),
                "--exit-when-done",
                "--drain-timeout", "0",
            ]
        )  # fmt: skip
    return PipelineResult(
        frame_ms=timing["frame_ms"],
        outcomes=timing["outcomes"],
        worker_rss_mb=worker.rss_mb,
        agent_rss_mb=agent.rss_mb,
        agent_exit=agent.returncode,
        frame_size=tuple(timing["frame_size"]),
    )


@dataclass(frozen=True)
class _Finished:
    returncode: int
    stdout: str
    rss_mb: float


def _run_python(arguments: list[str]) -> _Finished:
    """Run this Python on arguments, bounded in time, watching its peak resident memory.

    The peak is the kernel's VmHWM of the process, read from /proc while it runs: unlike
    ru_maxrss it does not count the memory of this process, which the child was forked from.
    """
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([sys.executable, *arguments], stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, _peak_resident_kib(process.pid))
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"{arguments[:4]} did not finish in {WORKER_TIMEOUT_SECONDS} s")
            time.sleep(0.02)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read().decode(), stderr.read().decode()
    if process.returncode not in (0, 3):  # 3: the agent exited with check-ins not yet synced
        raise RuntimeError(f"{arguments[:4]} failed ({process.returncode}): {errors[-2000:]}")
    return _Finished(process.returncode, output, peak_kib / 1024)


def _peak_resident_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # gone already
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _time_frames(state: Path, clip: Path) -> dict[str, object]:
    """The timing worker: each frame of the clip through the agent's pipeline, as its loop does."""
    from device.agent import Agent, RunOptions
    from device.pipeline import Event
    from hardware.frames import ReplaySource
    from hardware.qr import LiveQrDecoder

    outcomes: Counter[str] = Counter()

    def count(event: Event) -> None:
        outcomes[event.decision.outcome.value] += 1

    agent = Agent(state, LiveQrDecoder(), options=RunOptions(), events=count)
    frame_ms = []
    size = (0, 0)
    for frame in ReplaySource(clip).frames():
        started = time.perf_counter()
        agent.pipeline.process_image(frame.image, frame.origin)
        frame_ms.append((time.perf_counter() - started) * 1000)
        size = (frame.image.shape[1], frame.image.shape[0])
    return {"frame_ms": frame_ms, "outcomes": dict(outcomes), "frame_size": size}


if __name__ == "__main__":
    print(json.dumps(_time_frames(Path(sys.argv[1]), Path(sys.argv[2]))))
