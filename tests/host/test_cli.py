"""The `sentinel host` command line: its arguments, the database it opens, the admin token."""

import argparse
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from host.cli import add_arguments, admin_token_file_for, ensure_admin_token, run
from host.storage import Database
from host.storage.sqlite import SqliteStorage
from sentinel.demo import free_port


def test_serve_arguments():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["serve", "--db", "/srv/host.db", "--public-url", "https://s.example.org", "--port", "9000"]
    )
    assert args.host_command == "serve"
    assert Database.parse(args.db) == Database(path=Path("/srv/host.db"))
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 9000, 1)
    assert args.admin_token_file is None
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--db", "/srv/host.db"])


def test_the_admin_token_is_made_once_next_to_a_sqlite_database(tmp_path: Path):
    db = Database(path=tmp_path / "state" / "host.db")
    path = ensure_admin_token(admin_token_file_for(db, None))
    assert path == tmp_path / "state" / "admin-token"
    token = path.read_text().strip()
    assert token.startswith("admin_") and len(token) > 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_admin_token(admin_token_file_for(db, None)) == path
    assert path.read_text().strip() == token


def test_an_admin_token_file_is_read_or_made_where_named(tmp_path: Path):
    given = tmp_path / "token"
    given.write_text("  operator-chosen-token-0123456789\n")
    assert ensure_admin_token(admin_token_file_for(Database(path=tmp_path / "host.db"), given)) == (
        given
    )
    assert given.read_text() == "  operator-chosen-token-0123456789\n"
    assert not (tmp_path / "admin-token").exists()
    postgres = Database(url="postgresql://127.0.0.1/test")
    made = ensure_admin_token(admin_token_file_for(postgres, tmp_path / "new"))
    assert stat.S_IMODE(made.stat().st_mode) == 0o600


def test_postgresql_needs_a_named_token_file(capsys: pytest.CaptureFixture[str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    nowhere = f"postgresql://127.0.0.1:{free_port()}/test"  # said before the database is opened
    args = parser.parse_args(["serve", "--db", nowhere, "--public-url", "https://s.example.org"])
    assert run(args) == 2
    assert "--admin-token-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--db", "mysql://127.0.0.1/x"], "unknown database URL scheme 'mysql'"),
        (["--db", "host.db", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_serve_options_are_clear_errors(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["serve", *options, "--public-url", "https://s.example.org"])
    assert run(args) == 2
    assert message in capsys.readouterr().err
    assert not Path("mysql:").exists()


def test_a_database_that_cannot_be_served_is_said_before_any_worker_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    newer = tmp_path / "newer.db"
    SqliteStorage(newer).close()
    with closing(sqlite3.connect(newer)) as db, db:
        db.execute("UPDATE schema_version SET version = 99")
    closed_port = free_port()  # nothing listens there
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for database, message in (
        (str(newer), "schema version 99"),
        (f"postgresql://127.0.0.1:{closed_port}/test", "cannot connect to PostgreSQL"),
    ):
        args = parser.parse_args(
            ["serve", "--db", database, "--workers", "2", "--public-url", "https://s.example.org",
             "--admin-token-file", str(tmp_path / "token")]
        )  # fmt: skip
        assert run(args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "token").exists()
