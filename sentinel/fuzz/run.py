"""Fuzz targets under atheris (libFuzzer), each in a process forked from one instrumented import.

Usage: python -m sentinel.fuzz.run --seconds S --work DIR TARGET... where TARGET is a name of
`sentinel.fuzz.targets.TARGETS` or `module:function` (any bytes -> anything; every exception
a crash). Our packages are instrumented for coverage once, as they are imported here; each
target then runs in a child forked from this process (libFuzzer runs once per process), with
its corpus in DIR/corpus/TARGET, its log in DIR/TARGET.log and a crashing input written as
DIR/crashes/TARGET-*. One JSON line per target on stdout: its name, exit status and runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["shared", "hardware", "host", "device"]):
    from sentinel.fuzz.targets import TARGETS, Target, file_stem, seeds


def target_named(name: str) -> Target:
    """A target by name, or a test's own `module:function` (which may raise nothing)."""
    if name in TARGETS:
        return TARGETS[name]
    module, _, function = name.partition(":")
    if not function:
        raise SystemExit(f"no fuzz target {name!r}; targets: {', '.join(TARGETS)}")
    return Target(getattr(importlib.import_module(module), function), (), name)


def runs_done(log: str) -> int:
    """How many inputs libFuzzer ran, from its "Done N runs" line; 0 if it never got there."""
    for words in (line.split() for line in reversed(log.splitlines())):
        if len(words) > 2 and words[0] == "Done" and words[2] == "runs":
            return int(words[1])
    return 0


def _fuzz_in_child(name: str, target: Target, seconds: float, work: Path) -> None:
    """In the forked child: stderr to the target's log, then libFuzzer until its time is up."""
    corpus = work / "corpus" / file_stem(name)
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()) and name in TARGETS:
        for number, seed in enumerate(seeds(name)):
            (corpus / f"seed-{number}").write_bytes(seed)
    crashes = work / "crashes"
    crashes.mkdir(exist_ok=True)
    log = os.open(work / f"{file_stem(name)}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 2)
    os.dup2(log, 1)

    def one_input(data: bytes) -> None:
        with contextlib.suppress(*target.expected):
            target.parse(data)

    options = [
        f"-max_total_time={max(1, round(seconds))}",
        f"-artifact_prefix={crashes}/{file_stem(name)}-",
        "-max_len=4096",
        "-timeout=10",
        str(corpus),
    ]
    atheris.Setup([sys.argv[0], *options], one_input)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sentinel.fuzz.run")
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.targets:
        target = target_named(name)
        sys.stdout.flush()
        child = os.fork()
        if child == 0:
            # libFuzzer ends this process itself: with 0 when its time is up, or, on a crash,
            # from its exit handler once the input is written (a `finally` here would pre-empt
            # that). Coming back is a harness failure.
            _fuzz_in_child(name, target, args.seconds, args.work)
            os._exit(70)
        _, status = os.waitpid(child, 0)
        log = (args.work / f"{file_stem(name)}.log").read_text(errors="replace")
        line = {"target": name, "status": os.waitstatus_to_exitcode(status), "runs": runs_done(log)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
