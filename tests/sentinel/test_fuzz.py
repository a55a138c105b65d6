"""Every parser of outside bytes under coverage-guided fuzzing (atheris), briefly: no crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.fuzz.command import fuzz
from sentinel.fuzz.targets import TARGETS, seeds

SECONDS = 1.0  # per target here; `sentinel fuzz --seconds N` runs longer


def test_every_target_runs_without_a_crash(tmp_path: Path) -> None:
    outcomes = fuzz(list(TARGETS), SECONDS, tmp_path)
    assert [outcome.target for outcome in outcomes] == list(TARGETS)
    for outcome in outcomes:
        assert not outcome.crashed, outcome.log.read_text()[-3000:]
        assert outcome.runs > 100, outcome.log.read_text()[-3000:]
    assert not list((tmp_path / "crashes").iterdir())


def test_a_planted_bug_is_reported_with_the_input_that_crashed(tmp_path: Path) -> None:
    planted = "tests.sentinel.fuzz_planted:breaks_on_a_bell"
    (outcome,) = fuzz([planted], 30, tmp_path)
    assert outcome.crashed
    assert "IndexError" in outcome.log.read_text()
    (crash,) = (tmp_path / "crashes").iterdir()
    assert b"\x07" in crash.read_bytes()


@pytest.mark.parametrize("name", [name for name in TARGETS if list(seeds(name))])
def test_seeds_are_valid_inputs(name: str) -> None:
    """A seed starts the fuzzer on a deep path: it parses without any refusal."""
    for seed in seeds(name):
        TARGETS[name].parse(seed)


def test_the_command_lists_targets_and_refuses_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["fuzz", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in TARGETS)
    assert main(["fuzz", "no-such-parser"]) == 2
    assert "no target no-such-parser" in capsys.readouterr().err
