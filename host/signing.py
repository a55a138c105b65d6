"""The host's keys: an ES256 signing key per purpose and the ID-number HMAC key, kept in storage."""

from __future__ import annotations

import secrets

from host.storage.base import Storage
from shared.keys import KeyPurpose, SigningKey
from shared.messages import PublishedKey, trust_store

ID_HMAC_KEY_BYTES = 32


def _signing_key(storage: Storage, purpose: KeyPurpose) -> SigningKey:
    pem = storage.ensure_secret(
        f"signing-key:{purpose.value}", lambda: SigningKey.generate().to_pem()
    )
    return SigningKey.from_pem(pem)


class HostKeys:
    """Made on first start and stored; later starts load the same keys."""

    def __init__(self, health: SigningKey, venue: SigningKey, id_hmac_key: bytes) -> None:
        self.health = health
        self.venue = venue
        self.id_hmac_key = id_hmac_key
        self.published = [
            PublishedKey.of(key, purpose)
            for purpose, key in ((KeyPurpose.HEALTH, health), (KeyPurpose.VENUE, venue))
        ]
        self.trust = trust_store(self.published)  # what a device trusts, built the same way

    @classmethod
    def load(cls, storage: Storage) -> HostKeys:
        return cls(
            health=_signing_key(storage, KeyPurpose.HEALTH),
            venue=_signing_key(storage, KeyPurpose.VENUE),
            id_hmac_key=storage.ensure_secret(
                "id-hmac-key", lambda: secrets.token_bytes(ID_HMAC_KEY_BYTES)
            ),
        )
