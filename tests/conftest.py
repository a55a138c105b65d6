"""Fixtures for every test folder: host signing keys and the trust store a device would hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.keys import KeyPurpose, SigningKey, TrustedKey, TrustStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def health_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def venue_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def policy_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def trust(health_key: SigningKey, venue_key: SigningKey, policy_key: SigningKey) -> TrustStore:
    return TrustStore.of(
        [
            TrustedKey(health_key.kid, KeyPurpose.HEALTH, health_key.private_key.public_key()),
            TrustedKey(venue_key.kid, KeyPurpose.VENUE, venue_key.private_key.public_key()),
            TrustedKey(policy_key.kid, KeyPurpose.POLICY, policy_key.private_key.public_key()),
        ]
    )
