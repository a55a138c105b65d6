"""The host over TLS (`--tls-cert/--tls-key`) and a kiosk that trusts only the CA it enrolled with.

The CA and the host's certificate are made here; an unrelated CA stands for an impostor's.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from device.client import HostClient, tls_verification
from device.clock import DeviceClock
from host.api.hardening import HSTS
from host.cli import TlsFiles
from sentinel.demo import Admin, HostProcess, free_port, sentinel_command
from shared.messages import API_PREFIX

pytestmark = pytest.mark.integration
COMMAND_SECONDS = 60


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    directory: Path, name: str
) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA: its certificate's file, the certificate and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path, certificate, key


def make_host_files(
    directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> TlsFiles:
    """A certificate for 127.0.0.1 signed by the CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("sentinel host"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "host-cert.pem", directory / "host-key.pem")
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(_pem(key))
    files.key.chmod(0o600)
    return files


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    return tmp_path / "city-ca.pem"


@pytest.fixture
def tls_host(tmp_path: Path, ca_file: Path) -> Iterator[HostProcess]:
    path, ca, ca_key = make_ca(tmp_path, "city-ca")
    assert path == ca_file
    (tmp_path / "host").mkdir()
    process = HostProcess(
        tmp_path / "host",
        free_port(),
        os.urandom(16).hex(),
        tls=make_host_files(tmp_path, ca, ca_key),
        ca_file=ca_file,
    )
    process.start()
    yield process
    process.stop()


def _token(host: HostProcess, ca_file: Path) -> str:
    admin = Admin(host.url, host.token_file.read_text(), tls_verification(ca_file))
    try:
        venue = admin.venue("Library", "1 Library Road", "public_place")
        return admin.enrollment_token(venue.id)
    finally:  # a TLS connection left open holds up the host's shutdown
        admin.http.close()


def _enroll(host_url: str, token: str, state: Path, *extra: str) -> subprocess.CompletedProcess:
    command = sentinel_command(
        "device", "enroll", "--host", host_url, "--token", token, "--state", str(state), *extra
    )
    return subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
    )


def test_a_kiosk_enrolled_with_the_ca_talks_to_the_host_over_tls(
    tls_host: HostProcess, ca_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "kiosk"
    enrolled = _enroll(tls_host.url, _token(tls_host, ca_file), state, "--ca-file", str(ca_file))
    assert enrolled.returncode == 0, enrolled.stderr
    assert (state / "host-ca.pem").read_bytes() == ca_file.read_bytes()
    assert (state / "host-ca.pem").stat().st_mode & 0o077 == 0
    client = HostClient.enrolled(state, DeviceClock())  # a signed request over TLS
    assert client.config().venue.name == "Library"
    client.close()
    health = httpx.get(f"{tls_host.url}{API_PREFIX}/health", verify=tls_verification(ca_file))
    assert health.headers["Strict-Transport-Security"] == HSTS


def test_a_host_whose_certificate_no_trusted_ca_signed_is_refused(
    tls_host: HostProcess, ca_file: Path, tmp_path: Path
) -> None:
    token = _token(tls_host, ca_file)
    # The system's CAs do not know the city's CA; an impostor's CA is not the city's.
    impostor, _certificate, _key = make_ca(tmp_path, "impostor-ca")
    for extra in ((), ("--ca-file", str(impostor))):
        refused = _enroll(tls_host.url, token, tmp_path / f"kiosk-{len(extra)}", *extra)
        assert refused.returncode == 2
        assert "certificate is not trusted here: enroll with --ca-file" in refused.stderr
        assert "Traceback" not in refused.stderr
    # The token was never spent on the impostor: the genuine host still takes it.
    genuine = _enroll(tls_host.url, token, tmp_path / "kiosk", "--ca-file", str(ca_file))
    assert genuine.returncode == 0, genuine.stderr


def test_plain_http_to_a_host_on_the_network_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    refused = _enroll("http://192.0.2.10:8000", "enroll_x" * 4, tmp_path / "kiosk")
    assert refused.returncode == 2
    assert "over https only" in refused.stderr
    assert not (tmp_path / "kiosk" / "enrollment.json").exists()


def test_serve_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    _path, ca, ca_key = make_ca(tmp_path, "city-ca")
    files = make_host_files(tmp_path, ca, ca_key)
    files.key.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    command = sentinel_command(
        "host",
        "serve",
        "--db",
        str(tmp_path / "host.db"),
        "--port",
        str(free_port()),
        "--public-url",
        "https://sentinel.example.org",
        "--tls-cert",
        str(files.certificate),
        "--tls-key",
        str(files.key),
    )
    served = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
    )
    assert served.returncode == 2
    assert "--tls-cert" in served.stderr and "Traceback" not in served.stderr
