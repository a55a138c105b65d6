"""The host's keys as a running host uses them, read from its key directory when it starts.

One current signing key per purpose; the public keys devices trust (replaced ones too, for
their overlap); the sealing keys (devices seal to the newest, the host opens with any it
holds); the ID-number HMAC key; and the EU DCC signers it publishes. A rotation reaches a
running host when it is restarted: keys are read once, at start.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from host.keystore import HostKeyPurpose, KeyDirectory, KeyRing, open_for
from host.storage.base import Storage
from shared.dcc.certificates import SignerCertificate, load_certificates
from shared.dcc.value_sets import ValueSets, default_value_sets, packaged_value_sets
from shared.keys import KeyPurpose, SigningKey
from shared.messages import PublishedKey, trust_store
from shared.sealed import CardIdentity, SealError, SealingKey

PUBLISHED_PURPOSES = (KeyPurpose.HEALTH, KeyPurpose.VENUE, KeyPurpose.POLICY)


class SealingKeys(SealingKey):
    """The newest sealing key, which devices seal to, that opens what older ones sealed too."""

    def __init__(self, newest: SealingKey, older: Sequence[SealingKey] = ()) -> None:
        super().__init__(X25519PrivateKey.from_private_bytes(newest.to_bytes()))
        self.older = list(older)

    def open(self, sealed: str) -> CardIdentity:
        """The identity, opened by whichever held key it was sealed to; SealError if none."""
        try:
            return super().open(sealed)
        except SealError as newest_refused:
            for key in self.older:
                try:
                    return key.open(sealed)
                except SealError:
                    continue
            raise newest_refused from None


class HostKeys:
    """What the host signs, opens and hashes with, and the public keys it publishes."""

    def __init__(
        self,
        *,
        health: SigningKey,
        venue: SigningKey,
        policy: SigningKey,
        sealing: SealingKey,
        id_hmac_key: bytes,
        published: Sequence[PublishedKey] | None = None,
        dcc_signers: Sequence[SignerCertificate] = (),
        dcc_value_sets: ValueSets | None = None,
    ) -> None:
        self.health = health
        self.venue = venue
        self.policy = policy  # signs venue rule sets and deny lists
        self.sealing = sealing  # opens the ID-card identities devices seal to it
        self.id_hmac_key = id_hmac_key
        # The current keys, and replaced ones still trusted (old venue posters keep working).
        self.published = (
            list(published)
            if published is not None
            else [
                PublishedKey.of(key, purpose)
                for purpose, key in zip(PUBLISHED_PURPOSES, (health, venue, policy), strict=True)
            ]
        )
        self.dcc_signers = list(dcc_signers)  # published to devices as they are
        self.trust = trust_store(self.published)  # what a device trusts, built the same way
        for signer in self.dcc_signers:
            self.trust.add(signer.trusted_key())
        # Published to devices with the signers; a device keeps a newer set of its own.
        self.dcc_value_sets = (
            dcc_value_sets if dcc_value_sets is not None else packaged_value_sets()
        )

    @classmethod
    def load(
        cls,
        storage: Storage,
        dcc_trust: Path | None = None,
        key_directory: Path | None = None,
        now_ms: int | None = None,
    ) -> HostKeys:
        """The keys in `key_directory` (by default the storage's); KeyDirectoryError if none.

        Made on a new database's first start; moved out of an older version's database.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        directory = KeyDirectory(key_directory or storage.default_key_directory)
        ring = open_for(directory, storage, now_ms)
        return cls.of_ring(directory, ring, now_ms, dcc_trust)

    @classmethod
    def of_ring(
        cls, directory: KeyDirectory, ring: KeyRing, now_ms: int, dcc_trust: Path | None = None
    ) -> HostKeys:
        """The keys of a ring read at `now_ms`: what is trusted then is published and held."""
        held = [record for record in ring.keys if record.trusted(now_ms)]
        newest_sealing = ring.current(HostKeyPurpose.SEALING)
        older_sealing = [
            directory.sealing_key(record)
            for record in reversed(held)
            if record.purpose is HostKeyPurpose.SEALING and record is not newest_sealing
        ]
        return cls(
            health=directory.signing_key(ring.current(HostKeyPurpose.HEALTH)),
            venue=directory.signing_key(ring.current(HostKeyPurpose.VENUE)),
            policy=directory.signing_key(ring.current(HostKeyPurpose.POLICY)),
            sealing=SealingKeys(directory.sealing_key(newest_sealing), older_sealing),
            id_hmac_key=directory.id_hmac_key(),
            published=[
                PublishedKey(
                    kid=record.kid,
                    purpose=KeyPurpose(record.purpose.value),
                    public_key=record.public_key,
                )
                for record in held
                if record.purpose is not HostKeyPurpose.SEALING
            ],
            dcc_signers=load_certificates(dcc_trust) if dcc_trust is not None else (),
            dcc_value_sets=default_value_sets(),
        )
