"""Screening queries: staff lists checked against the register as jobs any worker can finish."""

from __future__ import annotations

from host.storage.sqlbase import Dialect, SqlBase


def schema(dialect: Dialect) -> list[str]:
    return []


class ScreeningQueries(SqlBase):
    """Screening jobs, their rows (keyed hashes, never numbers) and their results."""
