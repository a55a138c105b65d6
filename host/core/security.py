"""Random identifiers, one-time tokens, constant-time comparison and the ID-number HMAC."""

import hashlib
import hmac
import secrets

from shared.idnumber import normalise_id_number
from shared.keys import b64url

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lowercase
TOKEN_BYTES = 32


def random_id(prefix: str, length: int) -> str:
    """A short URL-safe random id such as `v_k3j2...`; `length` base32 characters of entropy."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def new_token(kind: str) -> str:
    """A secret such as `enroll_Xy3...`: 32 random bytes, base64url, behind a kind prefix.

    The prefix says what a leaked token is, and keeps a token from starting with '-', which a
    command line would take for an option.
    """
    return f"{kind}_{b64url(secrets.token_bytes(TOKEN_BYTES))}"


def token_hash(token: str) -> bytes:
    """What the host stores of a token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).digest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def id_number_hmac(key: bytes, id_number: str) -> bytes:
    """What the host keeps of an ID number: a keyed hash of its normalised form."""
    return hmac.new(key, normalise_id_number(id_number).encode(), hashlib.sha256).digest()
