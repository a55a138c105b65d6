"""The SQL primitives every query module builds on: connections, transactions, the dialect."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any


class Dialect(StrEnum):
    """The SQL a backend speaks, where the two differ (types, triggers, locks)."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


BLOB_TYPE = {Dialect.SQLITE: "BLOB", Dialect.POSTGRESQL: "BYTEA"}
LOOKUP_CHUNK = 500  # values per IN (...) list: well under SQLite's limit on bound parameters


class TokenProblem(StrEnum):
    """Why a one-time token (an enrollment token, a sign-in link) cannot be used."""

    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


class TokenRefused(Exception):
    """A one-time token that cannot be used; `problem` says why."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def in_dialect(statements: Sequence[str], dialect: Dialect) -> list[str]:
    """DDL written with `{blob}` for binary columns, in the backend's own words."""
    return [statement.format(blob=BLOB_TYPE[dialect]) for statement in statements]


class SqlBase(ABC):
    """A DB-API connection source; a backend supplies connections, transactions and its dialect.

    Queries are written with `?` placeholders; `_sql` turns them into the backend's own. Each
    group of queries (users and audit, tracing, flows, screening) is a subclass of this in its
    own module, and `SqlStorage` combines them.
    """

    dialect: Dialect

    @abstractmethod
    def _connection(self) -> AbstractContextManager[Any]:
        """A connection of the backend's, outside any transaction (each statement commits)."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """A connection in a write transaction, committed on leaving, rolled back on error."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Any]:
        """A connection in a read-only transaction: every query sees the same snapshot."""

    @abstractmethod
    def _lock(self, conn: Any, purpose: str) -> None:
        """Serialise writers of `purpose` until the transaction ends (SQLite's is already)."""

    def _sql(self, sql: str) -> str:
        return sql

    def _claim_token(
        self, conn: Any, table: str, subject: str, token_hash: bytes, now_ms: int
    ) -> Any:
        """Use up a one-time token of `table` in the caller's transaction; give its `subject`.

        `table` has token_hash, `subject`, expires_at and used_at; `TokenRefused` says why a
        token cannot be used.

        The claim is the guard: of two transactions that both read the token unused, the
        second's update waits for the first, then finds it used and changes nothing.
        """
        row = self._run(
            conn,
            f"SELECT {subject}, expires_at, used_at FROM {table} WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            raise TokenRefused(TokenProblem.UNKNOWN)
        claimed_subject, expires_at, used_at = row
        if used_at is not None:
            raise TokenRefused(TokenProblem.USED)
        if expires_at <= now_ms:
            raise TokenRefused(TokenProblem.EXPIRED)
        claimed = self._run(
            conn,
            f"UPDATE {table} SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
            (now_ms, token_hash),
        ).rowcount
        if claimed != 1:
            raise TokenRefused(TokenProblem.USED)
        return claimed_subject

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run `sql` once per row; how many rows the runs changed in all."""
        return conn.executemany(self._sql(sql), rows).rowcount

    def _run(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), params)

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._connection() as conn:
            return self._run(conn, sql, params).fetchone()

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._connection() as conn:
            return self._run(conn, sql, params).fetchall()
