"""`sentinel host ...`: run the host service (one worker or several), and operators' commands."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from host.app import SERVE_ENVIRONMENT, Retention
from host.core.config import Settings, public_origin
from host.core.security import new_token
from host.flows import Alerting, SpikeRule
from host.keystore import KeyDirectory, open_for
from host.ratelimit import networks
from host.storage import Database
from host.storage.sqlite import sqlite_refuses_workers
from shared.private_files import private_directory

log = logging.getLogger("host")
ADMIN_TOKEN_FILE = "admin-token"
# `sentinel host NAME`: the module with its add_arguments(parser) and run(args), and its help.
COMMANDS = {
    "user": ("host.commands.users", "add, list and revoke host users (one role each)"),
    "audit": ("host.commands.audit", "check the audit log's hash chain"),
    "poster": ("host.commands.poster", "a venue's code poster to print, PDF or SVG (场所码)"),
    "trace": ("host.commands.trace", "a case's visits and contacts through the API (流调溯源)"),
    "screen": ("host.commands.screen", "screen a staff list through the API (复工复产比对)"),
    "keys": ("host.commands.keys", "list, rotate and retire the host's keys (its key directory)"),
}


def admin_token_file_for(database: Database, given: Path | None) -> Path:
    """Where the admin token is kept: as given, or beside a SQLite file."""
    if given is not None:
        return given
    if database.path is None:
        raise ValueError(
            "with a PostgreSQL database, name the admin token file: --admin-token-file FILE"
            " (made there on first start)"
        )
    return database.path.parent / ADMIN_TOKEN_FILE


def ensure_admin_token(path: Path) -> Path:
    """`path`, holding the admin token: read if it exists, else made there (mode 0600)."""
    if path.exists():
        log.info("admin token: read from %s", path)
        return path
    private_directory(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(new_token("admin") + "\n")
    log.info("admin token: generated and written to %s (mode 0600)", path)
    return path


@dataclass(frozen=True)
class TlsFiles:
    """The host's TLS certificate (PEM, with any intermediates after it) and its private key."""

    certificate: Path
    key: Path

    def check(self) -> None:
        """ValueError, saying which file and why, unless the two load and belong together."""
        for option, path in (("--tls-cert", self.certificate), ("--tls-key", self.key)):
            if not path.is_file():
                raise ValueError(f"{option} {path}: no such file")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.certificate, self.key
            )
        except (OSError, ssl.SSLError) as error:
            raise ValueError(
                f"--tls-cert {self.certificate} with --tls-key {self.key}: {error}"
            ) from None


def serve(
    database: Database,
    *,
    host: str,
    port: int,
    public_url: str,
    admin_token_file: Path | None,
    workers: int = 1,
    keys: Path | None = None,
    dcc_trust: Path | None = None,
    retention: Retention | None = None,
    alerting: Alerting | None = None,
    tls: TlsFiles | None = None,
    trusted_proxies: Sequence[str] = (),
    body_timeout_s: float = Settings.body_timeout_s,
) -> None:
    """Run the host until interrupted: `workers` processes that share only the database.

    With `tls`, it serves https itself; without, plain http, for a reverse proxy in front.
    """
    if tls is not None:
        tls.check()
    proxies = ",".join(trusted_proxies)
    try:
        networks(proxies)
    except ValueError as error:
        raise ValueError(f"--trusted-proxy: {error}") from None
    if body_timeout_s <= 0:
        raise ValueError("--body-timeout must be a positive number of seconds")
    try:
        public_origin(public_url)  # said before anything is made: database, keys, token
    except ValueError as error:
        raise ValueError(f"--public-url {public_url}: {error}") from None
    refusal = sqlite_refuses_workers(database.path, workers) if database.path else None
    if refusal:
        raise ValueError(refusal)
    token_file = admin_token_file_for(database, admin_token_file)
    # Open (and migrate) the database and its keys once here, so that one that cannot be served
    # is said before any worker starts, and before a token is made for it.
    storage = database.open()
    try:
        key_directory = keys or storage.default_key_directory
        ring = open_for(KeyDirectory(key_directory), storage, int(time.time() * 1000))
    finally:
        storage.close()
    log.info("keys: key ring %s in %s", ring.id, key_directory)
    ensure_admin_token(token_file)
    retention = retention or Retention()
    os.environ[SERVE_ENVIRONMENT] = json.dumps(
        {
            "database": database.url or str(database.path),
            "public_url": public_url,
            "admin_token_file": str(token_file),
            "keys": str(key_directory),
            "dcc_trust": None if dcc_trust is None else str(dcc_trust),
            "retention_days": retention.checkin_days,
            "alerting": (alerting or Alerting()).as_json(),
            "trusted_proxies": proxies,
            "body_timeout_s": body_timeout_s,
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
    )
    log.info(
        "database %s; %d worker(s); venue codes under %s", database.describe(), workers, public_url
    )
    # Whatever the server and its workers (which inherit it) make is their owner's alone; files
    # that hold secrets are made 0600 whatever the umask, this is for anything else.
    umask = os.umask(0o077)
    try:
        uvicorn.run(
            "host.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            ssl_certfile=None if tls is None else str(tls.certificate),
            ssl_keyfile=None if tls is None else str(tls.key),
        )
    finally:
        os.umask(umask)


def _tls_files(certificate: Path | None, key: Path | None) -> TlsFiles | None:
    if certificate is None and key is None:
        return None
    if certificate is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    return TlsFiles(certificate, key)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `host` subcommands (`serve` and `COMMANDS`) to the parser of `sentinel host`."""
    commands = parser.add_subparsers(dest="host_command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the host verification service")
    add_serve_arguments(serve_parser)
    for name, (module_name, help_line) in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(commands.add_parser(name, help=help_line, description=module.__doc__))


def add_serve_arguments(serve_parser: argparse.ArgumentParser) -> None:
    """The options of `sentinel host serve`."""
    serve_parser.add_argument(
        "--db",
        required=True,
        metavar="DATABASE",
        help="a SQLite file (or sqlite:///FILE), or postgresql://HOST[:PORT]/DATABASE",
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes; they keep nothing that must be consistent in memory (default 1)",
    )
    serve_parser.add_argument(
        "--public-url",
        required=True,
        help="https origin printed in venue codes, e.g. https://sentinel.example.org",
    )
    serve_parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file holding the admin token, made on first start (default with SQLite: "
        f"{ADMIN_TOKEN_FILE} next to the database; required with PostgreSQL)",
    )
    serve_parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS[/BITS]",
        help="a reverse proxy whose X-Forwarded-For names the client, for rate limits by"
        " address; repeat for each (default: none, the peer's address is the client's)",
    )
    serve_parser.add_argument(
        "--body-timeout",
        type=float,
        default=Settings.body_timeout_s,
        metavar="SECONDS",
        help="a request's body must arrive within this, else 408 and the connection closed"
        f" (default {Settings.body_timeout_s:g})",
    )
    serve_parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve https with this certificate (its chain after it); with --tls-key"
        " (default: plain http, for a reverse proxy that terminates TLS)",
    )
    serve_parser.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert"
    )
    serve_parser.add_argument(
        "--keys",
        type=Path,
        metavar="DIR",
        help="the key directory: private keys and the ID-number hash key, made on first start"
        " (default: host.db.keys beside a SQLite file; with PostgreSQL, under"
        " ~/.local/state/digital-sentinel/host-keys/, named by the database)",
    )
    serve_parser.add_argument(
        "--dcc-trust",
        type=Path,
        help="EU DCC signer certificates (a PEM/DER file or a directory) to publish to devices",
    )
    serve_parser.add_argument(
        "--retention-days",
        type=float,
        default=Retention.checkin_days,
        metavar="DAYS",
        help="delete check-ins scanned and received longer ago than this "
        f"(default {Retention.checkin_days:g}; checked every hour)",
    )
    rule = SpikeRule()
    alerts = serve_parser.add_argument_group(
        "spike alerts",
        "a venue's check-ins in a local hour, or its day so far, against the median of the same"
        f" on the {rule.baseline_days} days before: an alert when at least RATIO times that and"
        " at least the minimum count; one per venue and day",
    )
    alerts.add_argument(
        "--alert-webhook",
        metavar="URL",
        help="POST each alert here as JSON (retried with backoff until it answers 2xx)",
    )
    alerts.add_argument(
        "--alert-ratio",
        type=float,
        default=rule.ratio,
        metavar="RATIO",
        help=f"how many times its usual a count must be (default {rule.ratio:g})",
    )
    alerts.add_argument(
        "--alert-min-hour",
        type=int,
        default=rule.min_hour,
        metavar="N",
        help=f"check-ins an hour must reach (default {rule.min_hour})",
    )
    alerts.add_argument(
        "--alert-min-day",
        type=int,
        default=rule.min_day,
        metavar="N",
        help=f"check-ins a day so far must reach (default {rule.min_day})",
    )
    alerts.add_argument(
        "--alert-every",
        type=float,
        default=Alerting.detect_every_s,
        metavar="SECONDS",
        help=f"how often the detector runs (default {Alerting.detect_every_s:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Run the `host` subcommand parsed by a parser set up with `add_arguments`."""
    if args.host_command != "serve":
        return importlib.import_module(COMMANDS[args.host_command][0]).run(args)
    try:
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
        serve(
            Database.parse(args.db),
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            admin_token_file=args.admin_token_file,
            workers=args.workers,
            keys=args.keys,
            tls=_tls_files(args.tls_cert, args.tls_key),
            trusted_proxies=args.trusted_proxy,
            body_timeout_s=args.body_timeout,
            dcc_trust=args.dcc_trust,
            retention=Retention(checkin_days=args.retention_days),
            alerting=Alerting(
                rule=SpikeRule(
                    ratio=args.alert_ratio,
                    min_hour=args.alert_min_hour,
                    min_day=args.alert_min_day,
                ),
                webhook=args.alert_webhook,
                detect_every_s=args.alert_every,
            ),
        )
    except (ValueError, RuntimeError) as error:
        print(f"sentinel host serve: {error}", file=sys.stderr)
        return 2
    return 0
