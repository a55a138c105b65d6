"""Dashboard sessions: a signed-in user's cookie, kept as its hash, honoured by every worker."""

from __future__ import annotations

from dataclasses import dataclass

from host.storage.sqlbase import Dialect, SqlBase, in_dialect

TABLES = (
    # One row per signed-in browser, named by the hash of its cookie. user_id is a user's id,
    # or the admin token's name in the audit log for a session the admin token started.
    """CREATE TABLE dashboard_sessions (
        token_hash {blob} PRIMARY KEY,
        user_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        seen_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL)""",
    "CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at)",
)


def schema(dialect: Dialect) -> list[str]:
    """The table of dashboard sessions."""
    return in_dialect(TABLES, dialect)


@dataclass(frozen=True)
class DashboardSession:
    """A live session: whose it is and until when it lasts."""

    user_id: str
    created_at_ms: int
    expires_at_ms: int


class SessionQueries(SqlBase):
    """Start, find (sliding its idle expiry forward) and end dashboard sessions."""

    def start_dashboard_session(
        self, token_hash: bytes, user_id: str, now_ms: int, expires_at_ms: int
    ) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO dashboard_sessions"
                " (token_hash, user_id, created_at, seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (token_hash, user_id, now_ms, now_ms, expires_at_ms),
            )

    def dashboard_session(
        self, token_hash: bytes, now_ms: int, idle_ms: int
    ) -> DashboardSession | None:
        """The session while it lasts and was used within `idle_ms`; its use is recorded.

        The idle clock is written at most once a minute per session, so reading pages does not
        turn into a write per request.
        """
        row = self._fetchone(
            "SELECT user_id, created_at, seen_at, expires_at FROM dashboard_sessions"
            " WHERE token_hash = ? AND expires_at > ? AND seen_at > ?",
            (token_hash, now_ms, now_ms - idle_ms),
        )
        if row is None:
            return None
        user_id, created_at, seen_at, expires_at = row
        if now_ms - seen_at >= 60_000:
            with self._write() as conn:
                self._run(
                    conn,
                    "UPDATE dashboard_sessions SET seen_at = ? WHERE token_hash = ?",
                    (now_ms, token_hash),
                )
        return DashboardSession(user_id, created_at, expires_at)

    def end_dashboard_session(self, token_hash: bytes) -> None:
        with self._write() as conn:
            self._run(conn, "DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))

    def end_dashboard_sessions_of(self, user_id: str) -> int:
        """End every session of a user (revoked, say); how many there were."""
        with self._write() as conn:
            return self._run(
                conn, "DELETE FROM dashboard_sessions WHERE user_id = ?", (user_id,)
            ).rowcount

    def purge_dashboard_sessions(self, now_ms: int, idle_before_ms: int) -> int:
        """Delete sessions that ended, or lay idle since before `idle_before_ms`."""
        with self._write() as conn:
            return self._run(
                conn,
                "DELETE FROM dashboard_sessions WHERE expires_at <= ? OR seen_at <= ?",
                (now_ms, idle_before_ms),
            ).rowcount
