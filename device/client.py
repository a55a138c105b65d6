"""The device's HTTP client to the host: every request signed, the host's clock observed."""

from __future__ import annotations

import gzip
import ssl
from pathlib import Path
from typing import TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from device.clock import DeviceClock
from device.identity import host_ca, load_enrollment, load_or_create_key
from shared.auth import HEADER_SERVER_TIME, public_key_bytes, sign_request
from shared.denylist import MEDIA_TYPE
from shared.keys import b64url
from shared.messages import (
    API_PREFIX,
    CheckInAck,
    CheckInBatch,
    DenyListUnchanged,
    DeviceConfig,
    DeviceForm,
    DeviceReport,
    EnrollRequest,
    EnrollResponse,
    StaffDecisionBatch,
    StatusRequest,
    StatusResponse,
)

Reply = TypeVar("Reply", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
GZIP_LEVEL = 6  # a 1000 check-in batch: about 1 ms here, a fraction of the bytes


class HostError(Exception):
    """The host could not be reached or refused; `retryable` says whether trying later helps."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


Verification = ssl.SSLContext | bool
UNTRUSTED_HINT = (
    " (the host's TLS certificate is not trusted here: enroll with --ca-file CA.pem, the CA"
    " that signed it)"
)


def tls_verification(ca_file: Path | None) -> Verification:
    """How the host's certificate is checked: against `ca_file` alone, else the system's CAs."""
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))


def _unreachable(what: str, error: httpx.HTTPError) -> HostError:
    """A request that got no answer, said plainly; a certificate refused says what to do."""
    hint = UNTRUSTED_HINT if "CERTIFICATE_VERIFY_FAILED" in str(error) else ""
    return HostError(f"{what}: {type(error).__name__}: {error}{hint}")


def _error_from(response: httpx.Response) -> HostError:
    code = None
    try:
        body = response.json()
        code = body.get("error") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else response.text
    except ValueError:
        detail = response.text[:200]
    return HostError(
        f"host answered {response.status_code} {code or ''}: {detail}".strip(),
        status=response.status_code,
        code=code,
    )


def _parse(model: type[Reply], response: httpx.Response) -> Reply:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        raise HostError(f"host sent a malformed {model.__name__}: {error}") from None


def enroll(
    host_url: str,
    token: str,
    key: Ed25519PrivateKey,
    *,
    name: str,
    form: DeviceForm,
    verify: Verification = True,
) -> EnrollResponse:
    """Enroll with a one-time token, registering this device's public key.

    `verify`: how the host's TLS certificate is checked (`tls_verification`).
    """
    request = EnrollRequest(
        token=token, public_key=b64url(public_key_bytes(key.public_key())), name=name, form=form
    )
    with httpx.Client(base_url=host_url, timeout=DEFAULT_TIMEOUT, verify=verify) as http:
        try:
            response = http.post(
                f"{API_PREFIX}/devices/enroll",
                content=request.model_dump_json().encode(),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as error:
            raise _unreachable(f"cannot reach {host_url}", error) from None
    if response.status_code != 201:
        raise _error_from(response)
    return _parse(EnrollResponse, response)


class HostClient:
    """Signed requests from one enrolled device; thread-safe (httpx.Client is)."""

    def __init__(
        self,
        host_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        clock: DeviceClock,
        verify: Verification = True,
    ) -> None:
        self._http = httpx.Client(base_url=host_url, timeout=DEFAULT_TIMEOUT, verify=verify)
        self._device_id = device_id
        self._key = key
        self._clock = clock

    @classmethod
    def enrolled(cls, state_dir: Path, clock: DeviceClock) -> HostClient:
        """The client of the device enrolled in `state_dir`: its host, key and trusted CA."""
        enrollment = load_enrollment(state_dir)
        return cls(
            enrollment.host_url,
            enrollment.device_id,
            load_or_create_key(state_dir),
            clock,
            tls_verification(host_ca(state_dir)),
        )

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        body: bytes,
        timeout: float | None = None,
        encoding: str | None = None,
    ) -> httpx.Response:
        """One signed request; the signature covers the body as sent (compressed, if it is)."""
        target = API_PREFIX + path
        sent_ms = self._clock.now_ms()
        headers = sign_request(
            self._key, self._device_id, method=method, target=target, body=body, time_ms=sent_ms
        )
        headers["Content-Type"] = "application/json"
        if encoding is not None:
            headers["Content-Encoding"] = encoding
        try:
            response = self._http.request(
                method,
                target,
                content=body,
                headers=headers,
                timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            )
        except httpx.HTTPError as error:
            raise _unreachable(f"{method} {target}", error) from None
        server_time = response.headers.get(HEADER_SERVER_TIME, "")
        if server_time.isdigit():
            self._clock.observe_host_time(int(server_time), sent_ms, self._clock.now_ms())
        return response

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes,
        timeout: float | None = None,
        encoding: str | None = None,
    ) -> httpx.Response:
        """A signed request and its successful response; any other answer raises HostError."""
        response = self._send(method, path, body, timeout, encoding)
        if response.status_code == 401 and _error_from(response).code == "clock-skew":
            # The host's time has just been observed; sign again with the corrected clock.
            response = self._send(method, path, body, timeout, encoding)
        if not response.is_success:
            raise _error_from(response)
        return response

    def _call(
        self,
        method: str,
        path: str,
        body: bytes,
        reply: type[Reply],
        *,
        timeout: float | None = None,
    ) -> Reply:
        return _parse(reply, self._exchange(method, path, body, timeout))

    def config(self) -> DeviceConfig:
        return self._call("GET", "/device/config", b"", DeviceConfig)

    def send_checkins(self, batch: CheckInBatch) -> CheckInAck:
        """Send a batch gzipped; the host stores it idempotently, so re-sending is always safe."""
        body = gzip.compress(batch.model_dump_json().encode(), compresslevel=GZIP_LEVEL, mtime=0)
        response = self._exchange("POST", "/device/checkins", body, encoding="gzip")
        return _parse(CheckInAck, response)

    def send_staff_decisions(self, batch: StaffDecisionBatch) -> CheckInAck:
        """Send staff decisions; stored idempotently by id, so re-sending is always safe."""
        body = batch.model_dump_json().encode()
        return self._call("POST", "/device/staff-decisions", body, CheckInAck)

    def status(self, asked: StatusRequest, *, timeout: float | None = None) -> StatusResponse:
        """The host's current status behind a person reference or a sealed ID card identity."""
        body = asked.model_dump_json(exclude_none=True).encode()
        return self._call("POST", "/device/status", body, StatusResponse, timeout=timeout)

    def denylist(self, have: int | None) -> bytes | DenyListUnchanged:
        """The signed deny list if the host's is newer than version `have` (None: none held)."""
        path = "/device/denylist" if have is None else f"/device/denylist?have={have}"
        response = self._exchange("GET", path, b"")
        if response.headers.get("content-type", "").partition(";")[0].strip() == MEDIA_TYPE:
            return response.content
        return _parse(DenyListUnchanged, response)

    def send_report(self, report: DeviceReport) -> None:
        self._exchange("POST", "/device/report", report.model_dump_json().encode())
