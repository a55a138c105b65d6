"""`sentinel fuzz`: coverage-guided fuzzing (atheris) of every parser of outside bytes.

Each target runs for --seconds, its corpus started from valid inputs and kept in --work
between runs; a crash leaves the input that caused it in WORK/crashes and makes the command
exit 1. The test suite runs every target briefly; run longer here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sentinel.fuzz.targets import TARGETS, file_stem

START_SECONDS = 120  # importing and instrumenting our packages, once, on a loaded machine


@dataclass(frozen=True)
class Outcome:
    """How one target's run ended: libFuzzer's exit status (0: no crash) and inputs run."""

    target: str
    status: int
    runs: int
    log: Path

    @property
    def crashed(self) -> bool:
        return self.status != 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help="targets to run (default: all; see --list)"
    )
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long each target runs (default: 60)"
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="directory of corpora, logs and crashing inputs, kept between runs"
        " (default: a temporary one, removed unless something crashed)",
    )


def fuzz(targets: list[str], seconds: float, work: Path) -> list[Outcome]:
    """Run each target for `seconds`, one after another, in processes of their own."""
    command = [sys.executable, "-m", "sentinel.fuzz.run", "--seconds", str(seconds)]
    command += ["--work", str(work), *targets]
    budget = START_SECONDS + len(targets) * (seconds + 30)
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget, check=False)
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(outcomes) != len(targets):
        raise RuntimeError(f"the fuzz runner stopped early: {done.stderr[-2000:]}")
    return [
        Outcome(name, item["status"], item["runs"], work / f"{file_stem(name)}.log")
        for item in outcomes
        for name in [item["target"]]
    ]


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:20} {target.about}")
        return 0
    unknown = [name for name in args.targets if name not in TARGETS]
    if unknown:
        print(f"sentinel fuzz: no target {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="sentinel-fuzz-"))
    outcomes = fuzz(args.targets or list(TARGETS), args.seconds, work)
    print(f"{'target':20} {'runs':>12}  result")
    for outcome in outcomes:
        verdict = f"CRASH: see {outcome.log} and {work}/crashes" if outcome.crashed else "ok"
        print(f"{outcome.target:20} {outcome.runs:>12,}  {verdict}")
    if any(outcome.crashed for outcome in outcomes):
        return 1
    if args.work is None:
        shutil.rmtree(work)
    return 0
