"""The host's key directory: private keys and the ID-number hash key, apart from the database.

The directory (0700) holds one 0600 file per private key, the ID-number HMAC key, and
`keys.json`, the manifest: the key ring's id and every key the ring has had, with its public
half and its state. A key is current (it signs, or devices seal to it), trusted (replaced but
still published for an overlap, or held to open what devices sealed to it), expired (its overlap
is over) or retired (`sentinel host keys retire`: its private half deleted). A replaced signing
key's private half is deleted at once: only its public half is still needed, to publish it.

The database records only the key ring's id, so that a host started on it without its key
directory refuses rather than making new keys; the keys older versions kept in the database
are moved here when it is opened, then deleted from it.

Every change is written file by file, each atomically, the manifest last; processes take turns
on a lock file, and an interrupted change is finished (or its strays removed) at the next open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from host.core.times import DAY_MS
from host.storage.base import Storage
from shared.keys import SigningKey, b64url
from shared.private_files import private_directory, sync_directory, write_private
from shared.sealed import SealingKey

log = logging.getLogger(__name__)

MANIFEST = "keys.json"
LOCK_FILE = ".lock"
ID_HMAC_FILE = "id-number-hmac.key"
ID_HMAC_KEY_BYTES = 32
MANIFEST_FORMAT = 1


class HostKeyPurpose(StrEnum):
    """What a host key is for: signing health codes, venue codes or policies; or sealing."""

    HEALTH = "health"
    VENUE = "venue"
    POLICY = "policy"
    SEALING = "sealing"


# Days a replaced key stays trusted. Health codes and rule sets live minutes to days; venue
# posters hang for as long as they hang, and devices offline for weeks still seal to the key
# they last had: those stay until retired (None).
DEFAULT_OVERLAP_DAYS: dict[HostKeyPurpose, float | None] = {
    HostKeyPurpose.HEALTH: 30.0,
    HostKeyPurpose.POLICY: 30.0,
    HostKeyPurpose.VENUE: None,
    HostKeyPurpose.SEALING: None,
}
# Where older versions kept the keys in the database (table host_secrets), by name.
LEGACY_KEY_NAMES = {
    "signing-key:health": HostKeyPurpose.HEALTH,
    "signing-key:venue": HostKeyPurpose.VENUE,
    "signing-key:policy": HostKeyPurpose.POLICY,
    "sealing-key": HostKeyPurpose.SEALING,
}
LEGACY_ID_HMAC_NAME = "id-hmac-key"


KEY_FILE_PREFIXES = frozenset(purpose.value for purpose in HostKeyPurpose)


class KeyDirectoryError(RuntimeError):
    """A key directory that cannot serve as it is; the message says what to do."""


class KeyState(StrEnum):
    CURRENT = "current"  # signs; devices seal to it
    TRUSTED = "trusted"  # replaced, still published (or held to open sealed identities)
    EXPIRED = "expired"  # replaced, its overlap over: published no more
    RETIRED = "retired"  # gone: its private half deleted


@dataclass(frozen=True)
class KeyRecord:
    """One key of the ring as the manifest keeps it; the private half is in `file`, if kept."""

    purpose: HostKeyPurpose
    kid: str  # base64url, as devices see it
    public_key: str  # base64url: SubjectPublicKeyInfo DER, or the raw X25519 key for sealing
    made_at_ms: int
    file: str | None  # the private key's file in the directory; None once it is not needed
    replaced_at_ms: int | None = None
    trusted_until_ms: int | None = None  # once replaced; None: until retired
    retired_at_ms: int | None = None

    def state(self, now_ms: int) -> KeyState:
        if self.retired_at_ms is not None:
            return KeyState.RETIRED
        if self.replaced_at_ms is None:
            return KeyState.CURRENT
        if self.trusted_until_ms is not None and now_ms >= self.trusted_until_ms:
            return KeyState.EXPIRED
        return KeyState.TRUSTED

    def trusted(self, now_ms: int) -> bool:
        return self.state(now_ms) in (KeyState.CURRENT, KeyState.TRUSTED)


@dataclass(frozen=True)
class KeyRing:
    """The manifest: the ring's id (which the database records) and its keys, oldest first."""

    id: str
    keys: tuple[KeyRecord, ...]

    def current(self, purpose: HostKeyPurpose) -> KeyRecord:
        for record in reversed(self.keys):
            if record.purpose is purpose and record.replaced_at_ms is None:
                return record
        raise KeyDirectoryError(f"the key ring holds no current {purpose} key")

    def find(self, kid: str) -> KeyRecord:
        for record in self.keys:
            if record.kid == kid:
                return record
        raise KeyDirectoryError(f"no key {kid} in the key ring (`sentinel host keys list`)")

    def with_record(self, old: KeyRecord, new: KeyRecord) -> KeyRing:
        return replace(self, keys=tuple(new if record is old else record for record in self.keys))

    def to_json(self) -> bytes:
        keys = [asdict(record) for record in self.keys]
        document = {"format": MANIFEST_FORMAT, "key_ring": self.id, "keys": keys}
        return json.dumps(document, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> KeyRing:
        try:
            document = json.loads(data)
            if document["format"] != MANIFEST_FORMAT:
                raise ValueError(f"format {document['format']}, not {MANIFEST_FORMAT}")
            keys = tuple(
                KeyRecord(**(stored | {"purpose": HostKeyPurpose(stored["purpose"])}))
                for stored in document["keys"]
            )
            return cls(str(document["key_ring"]), keys)
        except (ValueError, KeyError, TypeError) as error:
            raise KeyDirectoryError(
                f"{where} is not a key manifest this host reads: {error}"
            ) from None


def new_ring_id() -> str:
    return secrets.token_hex(8)


def new_key(purpose: HostKeyPurpose, now_ms: int) -> tuple[KeyRecord, bytes]:
    """A fresh key: its record (file named by its id) and the private key's bytes to write."""
    if purpose is HostKeyPurpose.SEALING:
        sealing = SealingKey.generate()
        return _sealing_record(sealing, now_ms), sealing.to_bytes()
    signing = SigningKey.generate()
    return _signing_record(purpose, signing, now_ms), signing.to_pem()


def _signing_record(purpose: HostKeyPurpose, key: SigningKey, now_ms: int) -> KeyRecord:
    kid = b64url(key.kid)
    return KeyRecord(purpose, kid, b64url(key.public_der), now_ms, f"{purpose}-{key.kid.hex()}.pem")


def _sealing_record(key: SealingKey, now_ms: int) -> KeyRecord:
    purpose = HostKeyPurpose.SEALING
    return KeyRecord(
        purpose, b64url(key.kid), b64url(key.public_raw), now_ms, f"{purpose}-{key.kid.hex()}.key"
    )


class KeyDirectory:
    """A key directory on disk: reads keys, writes them 0600, takes turns on a lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock (made 0700 if missing): one process changes it at a time."""
        private_directory(self.path)
        self._refuse_if_open(self.path)
        descriptor = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def read(self) -> KeyRing | None:
        """The manifest; None where there is none (no directory, or an empty one)."""
        if not self.manifest.exists():
            return None
        return KeyRing.from_json(self.read_private(MANIFEST), self.manifest)

    def require(self) -> KeyRing:
        ring = self.read()
        if ring is None:
            raise KeyDirectoryError(
                f"{self.path} holds no key ring: give the key directory the host serves with"
                " (--keys DIR; by default host.db.keys beside a SQLite file)"
            )
        return ring

    def read_private(self, name: str) -> bytes:
        """A file of the directory, refused if others may read it or the directory."""
        path = self.path / name
        self._refuse_if_open(self.path)
        self._refuse_if_open(path)
        return path.read_bytes()

    def write_private(self, name: str, data: bytes) -> None:
        write_private(self.path / name, data)

    def save(self, ring: KeyRing) -> None:
        self.write_private(MANIFEST, ring.to_json())

    def remove(self, names: Iterable[str]) -> None:
        removed = False
        for name in names:
            try:
                (self.path / name).unlink()
                removed = True
            except FileNotFoundError:
                continue
        if removed:
            sync_directory(self.path)

    def id_hmac_key(self) -> bytes:
        key = self.read_private(ID_HMAC_FILE)
        if len(key) != ID_HMAC_KEY_BYTES:
            raise KeyDirectoryError(f"{self.path / ID_HMAC_FILE} is not a key of 32 bytes")
        return key

    def signing_key(self, record: KeyRecord) -> SigningKey:
        return SigningKey.from_pem(self.read_private(self.file_of(record)))

    def sealing_key(self, record: KeyRecord) -> SealingKey:
        return SealingKey.from_bytes(self.read_private(self.file_of(record)))

    @staticmethod
    def file_of(record: KeyRecord) -> str:
        """The file of a key's private half; KeyDirectoryError once it is not kept."""
        if record.file is None:
            raise KeyDirectoryError(f"the private half of key {record.kid} is no longer kept")
        return record.file

    @staticmethod
    def _refuse_if_open(path: Path) -> None:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyDirectoryError(
                f"{path} is open to other users (mode {mode:o}): chmod go-rwx {path}"
            )


def open_for(directory: KeyDirectory, storage: Storage, now_ms: int) -> KeyRing:
    """The key ring to serve `storage` with, refused if this directory cannot serve it.

    Moved out of an older version's database; made for a new database; refused for a database
    served before with keys that are not in this directory.
    """
    if not directory.manifest.exists():
        _refuse_if_keys_are_missing(directory, storage)  # before making the directory
    with directory.locked():
        ring = directory.read()
        legacy = storage.legacy_secrets()
        if legacy:
            ring_id = storage.bound_key_ring() or new_ring_id()  # bound, if interrupted before
            ring = _moved_out(directory, ring, legacy, now_ms, ring_id)
        if ring is None:
            _refuse_if_keys_are_missing(directory, storage)
            ring = _made(directory, now_ms)
            log.info("key ring %s: new keys made in %s", ring.id, directory.path)
        bound = storage.bound_key_ring() or storage.bind_key_ring(ring.id)
        if bound != ring.id:
            raise KeyDirectoryError(
                f"{directory.path} holds key ring {ring.id}, but this database was served with"
                f" key ring {bound}: give the key directory that belongs to it (--keys DIR)"
            )
        if legacy:
            storage.forget_legacy_secrets(legacy)
            log.info("%d keys moved out of the database into %s", len(legacy), directory.path)
        _remove_strays(directory, ring)
    return ring


def _refuse_if_keys_are_missing(directory: KeyDirectory, storage: Storage) -> None:
    """Refuse a database served before (or holding an older version's keys) with no key ring."""
    bound = storage.bound_key_ring()
    if bound is not None and not storage.legacy_secrets():
        raise KeyDirectoryError(
            f"{directory.path} holds no keys, and this database was served with key ring"
            f" {bound}: give its key directory (--keys DIR), or restore it from a backup."
            " No new keys are made for a database that had some: codes, posters and"
            " ID-number hashes made with them would all stop working"
        )


def _made(directory: KeyDirectory, now_ms: int) -> KeyRing:
    """A new ring: a key for each purpose and an ID-number hash key, files first, manifest last."""
    records = []
    for purpose in HostKeyPurpose:
        record, private = new_key(purpose, now_ms)
        directory.write_private(directory.file_of(record), private)
        records.append(record)
    directory.write_private(ID_HMAC_FILE, secrets.token_bytes(ID_HMAC_KEY_BYTES))
    ring = KeyRing(new_ring_id(), tuple(records))
    directory.save(ring)
    return ring


def _moved_out(
    directory: KeyDirectory,
    ring: KeyRing | None,
    legacy: dict[str, bytes],
    now_ms: int,
    ring_id: str,
) -> KeyRing:
    """The ring holding the keys an older version kept in the database, written here if new.

    Run again after an interruption, it finds them written already; a ring holding other keys
    belongs to another database, and is refused.
    """
    moved = {
        purpose: _legacy_record(purpose, legacy[name], now_ms)
        for name, purpose in LEGACY_KEY_NAMES.items()
        if name in legacy
    }
    id_hmac_key = legacy.get(LEGACY_ID_HMAC_NAME)
    if ring is not None:
        held = {record.kid for record in ring.keys if record.file is not None}
        same_hmac = id_hmac_key is None or directory.id_hmac_key() == id_hmac_key
        if not same_hmac or any(record.kid not in held for record in moved.values()):
            raise KeyDirectoryError(
                f"the database holds keys (from an older version) that {directory.path} does"
                " not: that directory is another database's; give this one's, or a new path"
            )
        return ring
    records = []
    for purpose in HostKeyPurpose:
        record, private = (
            (moved[purpose], _legacy_private(purpose, legacy))
            if purpose in moved
            else new_key(purpose, now_ms)
        )
        directory.write_private(directory.file_of(record), private)
        records.append(record)
    directory.write_private(ID_HMAC_FILE, id_hmac_key or secrets.token_bytes(ID_HMAC_KEY_BYTES))
    made = KeyRing(ring_id, tuple(records))
    directory.save(made)
    return made


def _legacy_private(purpose: HostKeyPurpose, legacy: dict[str, bytes]) -> bytes:
    name = next(name for name, named in LEGACY_KEY_NAMES.items() if named is purpose)
    return legacy[name]


def _legacy_record(purpose: HostKeyPurpose, private: bytes, now_ms: int) -> KeyRecord:
    if purpose is HostKeyPurpose.SEALING:
        return _sealing_record(SealingKey.from_bytes(private), now_ms)
    return _signing_record(purpose, SigningKey.from_pem(private), now_ms)


def _remove_strays(directory: KeyDirectory, ring: KeyRing) -> None:
    """Delete key files no record names: left by a change interrupted before its manifest."""
    named = {record.file for record in ring.keys}
    strays = [
        path.name
        for path in directory.path.iterdir()
        if path.name not in named
        and (path.name.endswith(".partial") or path.name.split("-")[0] in KEY_FILE_PREFIXES)
    ]
    if strays:
        log.info("key directory %s: removing %s", directory.path, ", ".join(sorted(strays)))
        directory.remove(strays)


def rotate(
    directory: KeyDirectory,
    purposes: Iterable[HostKeyPurpose],
    now_ms: int,
    overlap_days: float | None = None,
) -> list[KeyRecord]:
    """Make a new current key for each purpose; the keys they replace stay trusted a while.

    For `overlap_days`, or the purpose's default. A replaced signing key's private half goes.
    """
    with directory.locked():
        ring = directory.require()
        made, unneeded = [], []
        for purpose in purposes:
            old = ring.current(purpose)
            record, private = new_key(purpose, now_ms)
            directory.write_private(directory.file_of(record), private)
            days = overlap_days if overlap_days is not None else DEFAULT_OVERLAP_DAYS[purpose]
            keeps_private = purpose is HostKeyPurpose.SEALING  # opens what was sealed to it
            replaced = replace(
                old,
                replaced_at_ms=now_ms,
                trusted_until_ms=None if days is None else now_ms + int(days * DAY_MS),
                file=old.file if keeps_private else None,
            )
            if not keeps_private and old.file is not None:
                unneeded.append(old.file)
            ring = ring.with_record(old, replaced)
            ring = replace(ring, keys=(*ring.keys, record))
            made.append(record)
        directory.save(ring)
        directory.remove(unneeded)
    return made


def retire(directory: KeyDirectory, kid: str, now_ms: int) -> KeyRecord:
    """Stop trusting a replaced key at once, and delete its private half if it is still kept."""
    with directory.locked():
        ring = directory.require()
        record = ring.find(kid)
        state = record.state(now_ms)
        if state is KeyState.CURRENT:
            raise KeyDirectoryError(
                f"key {kid} is the current {record.purpose} key: rotate it first"
                f" (sentinel host keys rotate --purpose {record.purpose})"
            )
        if state is KeyState.RETIRED:
            raise KeyDirectoryError(f"key {kid} is retired already")
        retired = replace(record, retired_at_ms=now_ms, file=None)
        directory.save(ring.with_record(record, retired))
        if record.file is not None:
            directory.remove([record.file])
    return retired
