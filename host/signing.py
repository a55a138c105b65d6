"""The host's keys: one signing key per purpose, the sealing key, the ID HMAC key, DCC signers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from host.storage.base import Storage
from shared.dcc.certificates import SignerCertificate, load_certificates
from shared.dcc.value_sets import ValueSets, default_value_sets, packaged_value_sets
from shared.keys import KeyPurpose, SigningKey
from shared.messages import PublishedKey, trust_store
from shared.sealed import SealingKey

ID_HMAC_KEY_BYTES = 32


def _signing_key(storage: Storage, purpose: KeyPurpose) -> SigningKey:
    pem = storage.ensure_secret(
        f"signing-key:{purpose.value}", lambda: SigningKey.generate().to_pem()
    )
    return SigningKey.from_pem(pem)


class HostKeys:
    """Made on first start and stored; later starts load the same keys."""

    def __init__(
        self,
        *,
        health: SigningKey,
        venue: SigningKey,
        policy: SigningKey,
        sealing: SealingKey,
        id_hmac_key: bytes,
        dcc_signers: Sequence[SignerCertificate] = (),
        dcc_value_sets: ValueSets | None = None,
    ) -> None:
        self.health = health
        self.venue = venue
        self.policy = policy  # signs venue rule sets and deny lists
        self.sealing = sealing  # opens the ID-card identities devices seal to it
        self.id_hmac_key = id_hmac_key
        self.published = [
            PublishedKey.of(key, purpose)
            for purpose, key in (
                (KeyPurpose.HEALTH, health),
                (KeyPurpose.VENUE, venue),
                (KeyPurpose.POLICY, policy),
            )
        ]
        self.dcc_signers = list(dcc_signers)  # published to devices as they are
        self.trust = trust_store(self.published)  # what a device trusts, built the same way
        for signer in self.dcc_signers:
            self.trust.add(signer.trusted_key())
        # Published to devices with the signers; a device keeps a newer set of its own.
        self.dcc_value_sets = (
            dcc_value_sets if dcc_value_sets is not None else packaged_value_sets()
        )

    @classmethod
    def load(cls, storage: Storage, dcc_trust: Path | None = None) -> HostKeys:
        return cls(
            health=_signing_key(storage, KeyPurpose.HEALTH),
            venue=_signing_key(storage, KeyPurpose.VENUE),
            policy=_signing_key(storage, KeyPurpose.POLICY),
            sealing=SealingKey.from_bytes(
                storage.ensure_secret("sealing-key", lambda: SealingKey.generate().to_bytes())
            ),
            id_hmac_key=storage.ensure_secret(
                "id-hmac-key", lambda: secrets.token_bytes(ID_HMAC_KEY_BYTES)
            ),
            dcc_signers=load_certificates(dcc_trust) if dcc_trust is not None else (),
            dcc_value_sets=default_value_sets(),
        )
