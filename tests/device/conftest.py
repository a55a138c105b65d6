"""Device test fixtures: an enrolled device's state directory, made once and copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sentinel.bench.pipeline import prepare


@pytest.fixture(scope="session")
def enrolled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state, _ = prepare(tmp_path_factory.mktemp("enrolled"), people=1, seed=1)
    return state


@pytest.fixture
def enrolled_state(enrolled_template: Path, tmp_path: Path) -> Path:
    """A device enrolled at venue v_bench ("Benchmark venue"), whose host is not there."""
    return Path(shutil.copytree(enrolled_template, tmp_path / "state"))
