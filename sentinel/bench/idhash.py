"""`sentinel bench idhash`: how fast stored ID-number hashes give their numbers up, by what is held.

An ID number's space is small: given the region (6 digits) and the birth date (8), only the
3-digit sequence and the check character are unknown, 11,000 guesses (1,000 if the check is
right). So the protection is the HMAC key, not the hash's cost. The bench builds a real host
database as an older version left it (the key in `host_secrets`) and as this one does (the key
in the key directory), imports the demo's people, and plays an attacker holding:

- the older database: reads the key from it, then guesses (HMAC-SHA256, one core);
- this version's database alone: finds no key, so no guess can be tested: 0 guesses/s;
- the database and the key directory: the same HMAC rate as before.

It measures the rates, recovers the demo's numbers where it can, and sets beside them what a
slow hash (scrypt) on top would cost the attacker and the host (every import, screening row and
tracing query hashes a number).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from host.core.security import id_number_hmac
from host.signing import HostKeys
from host.storage import Database
from host.storage.base import PersonRecord
from sentinel.demo import DEMO_ID_NUMBERS
from shared.healthcode import Colour
from shared.idnumber import mask_id_number
from shared.keys import SigningKey
from shared.sealed import SealingKey

DEMO_NUMBERS = tuple(DEMO_ID_NUMBERS.values())  # the people `sentinel demo` imports
CHECK_CHARACTERS = "0123456789X"
SIGNING_KEYS = ("health", "venue", "policy")
RATE_SAMPLES = 200_000
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024}  # ~16 MiB, as for passwords
SCRYPT_SAMPLES = 20
# Guess counts of attacks, with the region and birth date known or not (check character unknown).
REGIONS = 3_500  # county-level codes in use, roughly
BIRTH_DAYS = 105 * 365  # people born 1920-2025
ATTACKS = (
    ("one person, region and birth date known", 1_000 * len(CHECK_CHARACTERS)),
    ("one region, one birth year", 365 * 1_000 * len(CHECK_CHARACTERS)),
    ("every number in use (right check only)", REGIONS * BIRTH_DAYS * 1_000),
)


@dataclass(frozen=True)
class Holding:
    """What the attacker holds, the guesses per second that gives, and what it recovered."""

    what: str
    rate: float  # guesses tested per second; 0: there is nothing to test a guess against
    found: int
    seconds: float | None  # to recover the demo's numbers; None: not found
    why: str


def guesses(number: str) -> Iterator[str]:
    """Every number with this one's region and birth date: sequence and check unknown."""
    for sequence in range(1_000):
        for check in CHECK_CHARACTERS:
            yield f"{number[:14]}{sequence:03d}{check}"


def hmac_rate(key: bytes, samples: int = RATE_SAMPLES) -> float:
    """HMAC-SHA256 guesses a second on one core, the attacker's fastest Python way."""
    numbers = [f"1101011990030{index % 100_000:05d}" for index in range(samples)]
    started = time.perf_counter()
    for number in numbers:
        hmac.digest(key, number.encode(), "sha256")
    return samples / (time.perf_counter() - started)


def scrypt_rate(samples: int = SCRYPT_SAMPLES) -> float:
    started = time.perf_counter()
    for index in range(samples):
        hashlib.scrypt(f"11010119900307{index:04d}".encode(), salt=b"host-wide", **SCRYPT)
    return samples / (time.perf_counter() - started)


def recover(hashes: set[bytes], key: bytes) -> tuple[int, float]:
    """How many of the demo's numbers a key recovers from the hashes, and in how long."""
    started = time.perf_counter()
    found = 0
    for number in DEMO_NUMBERS:  # the attacker knows each one's region and birth date
        for guess in guesses(number):
            if hmac.digest(key, guess.encode(), "sha256") in hashes:
                found += 1
                break
    return found, time.perf_counter() - started


def stolen(database: Path) -> tuple[bytes | None, set[bytes]]:
    """What a copy of the database file gives: the hash key if it holds one, and the hashes."""
    with closing(sqlite3.connect(database)) as db:
        row = db.execute("SELECT value FROM host_secrets WHERE name = 'id-hmac-key'").fetchone()
        hashes = {bytes(value) for (value,) in db.execute("SELECT id_hmac FROM people")}
    return (None if row is None else bytes(row[0])), hashes


def older_database(path: Path) -> bytes:
    """A database as an older version left it: its keys in host_secrets, the demo's people."""
    storage = Database(path=path).open()
    key = hashlib.sha256(b"older host").digest()
    stored = {
        **{f"signing-key:{name}": SigningKey.generate().to_pem() for name in SIGNING_KEYS},
        "sealing-key": SealingKey.generate().to_bytes(),
        "id-hmac-key": key,
    }
    storage.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany("INSERT INTO host_secrets (name, value) VALUES (?, ?)", stored.items())
    storage = Database(path=path).open()
    try:
        storage.upsert_people(
            [
                PersonRecord(f"p_{index}", id_number_hmac(key, number), Colour.GREEN, None, 0)
                for index, number in enumerate(DEMO_NUMBERS)
            ]
        )
    finally:
        storage.close()
    return key


def attack(database: Path, what: str, key_directory: bool) -> Holding:
    """Play the attacker on a copy of the database, with or without the key directory."""
    key, hashes = stolen(database)
    if key is None and key_directory:
        storage = Database(path=database).open()
        try:
            key = HostKeys.load(storage).id_hmac_key
        finally:
            storage.close()
    if key is None:
        return Holding(what, 0.0, 0, None, "no key: HMAC-SHA256 under an unknown 256-bit key")
    found, seconds = recover(hashes, key)
    why = "key read from the database" if not key_directory else "key read from the key directory"
    return Holding(what, hmac_rate(key), found, seconds if found else None, why)


def measure() -> tuple[list[Holding], float]:
    """The three holdings, and scrypt's rate for comparison."""
    with tempfile.TemporaryDirectory(prefix="sentinel-idhash-") as workdir:
        path = Path(workdir) / "host.db"
        older_database(path)
        before = attack(path, "before: the database (key inside)", key_directory=False)
        storage = Database(path=path).open()
        try:
            HostKeys.load(storage)  # this version opens it: the key moves to host.db.keys
        finally:
            storage.close()
        alone = attack(path, "now: the database alone", key_directory=False)
        both = attack(path, "now: the database and the key directory", key_directory=True)
    return [before, alone, both], scrypt_rate()


def table(holdings: list[Holding], scrypt: float) -> list[str]:
    masked = ", ".join(mask_id_number(number) for number in DEMO_NUMBERS)
    lines = [
        f"The demo's people ({masked}), their hashes stolen:",
        "",
        f"{'attacker holds':<42} {'guesses/s':>12} {'found':>6} {'time':>9}  how",
    ]
    for held in holdings:
        time_cell = "-" if held.seconds is None else f"{held.seconds:.3f} s"
        lines.append(
            f"{held.what:<42} {held.rate:>12,.0f} {held.found:>4}/{len(DEMO_NUMBERS)}"
            f" {time_cell:>9}  {held.why}"
        )
    rate = max(held.rate for held in holdings)
    lines += [
        "",
        "Time to search, on one core, for whoever holds both (or the old database):",
        "",
        f"{'search':<42} {'guesses':>16} {'HMAC-SHA256':>14} {'scrypt on top':>16}",
    ]
    for name, count in ATTACKS:
        lines.append(
            f"{name:<42} {count:>16,} {duration(count / rate):>14} {duration(count / scrypt):>16}"
        )
    lines += [
        "",
        f"The host's own cost per number hashed: HMAC {1e6 / rate:.1f} µs, scrypt"
        f" {1e3 / scrypt:.0f} ms (n=2^14, r=8): a 10,000-row screening"
        f" {duration(10_000 / rate)} against {duration(10_000 / scrypt)}.",
    ]
    return lines


def duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86_400), ("days", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.3g} s"
