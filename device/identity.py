"""The device's own key pair and enrollment record, kept in its state directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.messages import DeviceForm
from shared.private_files import private_directory, write_private

KEY_FILE = "device-key.pem"
ENROLLMENT_FILE = "enrollment.json"
HOST_CA_FILE = "host-ca.pem"  # the CA the host's TLS certificate must chain to, if given


class NotEnrolledError(RuntimeError):
    """The state directory holds no enrollment: run `sentinel device enroll` first."""


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    venue_id: str
    host_url: str
    form: DeviceForm = DeviceForm.KIOSK  # as enrolled; `sentinel device run --form` overrides it


def load_or_create_key(state_dir: Path) -> Ed25519PrivateKey:
    """The device's private key; made here on first use, and never sent anywhere."""
    path = state_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    private_directory(state_dir)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)
    return key


def save_enrollment(state_dir: Path, enrollment: Enrollment) -> None:
    write_private(state_dir / ENROLLMENT_FILE, json.dumps(asdict(enrollment)).encode())


def load_enrollment(state_dir: Path) -> Enrollment:
    path = state_dir / ENROLLMENT_FILE
    if not path.exists():
        raise NotEnrolledError(f"{state_dir} holds no enrollment; run `sentinel device enroll`")
    stored = json.loads(path.read_text())
    form = DeviceForm(stored.pop("form", DeviceForm.KIOSK))  # enrolled before forms were kept
    return Enrollment(**stored, form=form)


def save_host_ca(state_dir: Path, pem: bytes) -> None:
    """Keep the CA the host's certificate must chain to: from now on, only it is trusted."""
    private_directory(state_dir)
    write_private(state_dir / HOST_CA_FILE, pem)


def host_ca(state_dir: Path) -> Path | None:
    """The CA file kept at enrollment, or None: the system's CAs vouch for the host."""
    path = state_dir / HOST_CA_FILE
    return path if path.exists() else None
