"""The `sentinel host` command line: its arguments and where the admin token comes from."""

import argparse
import stat
from pathlib import Path

import pytest

from host.cli import add_arguments, admin_token_for


def test_serve_arguments():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["serve", "--db", "/srv/host.db", "--public-url", "https://s.example.org", "--port", "9000"]
    )
    assert args.host_command == "serve"
    assert args.db == Path("/srv/host.db")
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    assert args.admin_token_file is None
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--db", "/srv/host.db"])


def test_the_admin_token_is_made_once_next_to_the_database(tmp_path: Path):
    db = tmp_path / "state" / "host.db"
    token = admin_token_for(db, None)
    path = tmp_path / "state" / "admin-token"
    assert path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_token_for(db, None) == token


def test_an_admin_token_file_is_read(tmp_path: Path):
    given = tmp_path / "token"
    given.write_text("  operator-chosen-token-0123456789\n")
    assert admin_token_for(tmp_path / "host.db", given) == "operator-chosen-token-0123456789"
    assert not (tmp_path / "admin-token").exists()
    with pytest.raises(FileNotFoundError):
        admin_token_for(tmp_path / "host.db", tmp_path / "missing")
