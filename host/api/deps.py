"""Request dependencies: the host context, admin authentication and signed device requests."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from host.api.errors import ApiError
from host.core.cache import TimedCache
from host.core.config import Settings
from host.core.security import same_secret, token_hash
from host.core.times import from_ms
from host.denylist import DenyListPublisher
from host.ratelimit import Limits, RateLimiter
from host.signing import HostKeys
from host.storage.base import DeviceRecord, VenueRecord
from host.storage.sql import SqlStorage
from host.storage.users import AuditDraft, Role, UserRecord
from shared.auth import AuthError, SignedRequest, load_device_public_key
from shared.dcc.schema import SchemaStore
from shared.verification import CheckContext

VENUE_PAGE_SECONDS = 5.0  # a renamed or removed venue shows as it was for this long at most
VENUE_PAGES = 10_000


@dataclass
class HostContext:
    """What every request needs: settings, storage and keys; one per app."""

    settings: Settings
    storage: SqlStorage
    keys: HostKeys
    dcc_schemas: SchemaStore | None = None  # without them the host refers EU DCCs too
    limits: Limits = field(init=False)
    limiter: RateLimiter = field(init=False)
    denylist: DenyListPublisher = field(init=False)
    # The venue page by URL as phones without a session open it: (status, HTML), a few seconds
    # old at most. Never a signed-in citizen's page: those are their own.
    venue_pages: TimedCache[str, tuple[int, str]] = field(init=False)
    # Requests signed before this process started are refused: a nonce the storage lost with
    # the power (it need not wait for the disk) can then never be replayed.
    started_ms: int = field(init=False)
    _next_purge_ms: int = field(default=0, init=False)
    _purge_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.denylist = DenyListPublisher(self.storage, self.keys.policy)
        self.limits = Limits(trusted_proxies=self.settings.trusted_proxies)
        self.limiter = RateLimiter(self.storage, self.limits)
        self.started_ms = self.settings.now_ms()
        self.venue_pages = TimedCache(VENUE_PAGE_SECONDS, VENUE_PAGES, self.settings.clock)

    def check_context(self, now_ms: int, temperature_c: float | None = None) -> CheckContext:
        """What the host knows at a check it decides itself: its own clock and deny list."""
        return CheckContext(
            now=from_ms(now_ms),
            clock_trusted=True,
            temperature_c=temperature_c,
            deny_list=self.denylist.current(now_ms),
            deny_list_age_minutes=0,  # the host's own list is current by definition
            dcc_schemas=self.dcc_schemas,
            dcc_value_sets=self.keys.dcc_value_sets,
        )

    def purge_nonces_now_and_then(self, now_ms: int) -> None:
        """Forget nonces too old to replay: a request is refused beyond the skew either way."""
        with self._purge_lock:
            if now_ms < self._next_purge_ms:
                return
            self._next_purge_ms = now_ms + int(self.settings.nonce_purge_interval_s * 1000)
        self.storage.purge_nonces(now_ms - 2 * self.settings.max_skew_ms)


async def get_context(request: Request) -> HostContext:
    return request.app.state.context


Context = Annotated[HostContext, Depends(get_context)]


def require_venue(context: HostContext, venue_id: str) -> VenueRecord:
    venue = context.storage.get_venue(venue_id)
    if venue is None:
        raise ApiError(404, "unknown-venue", f"no venue {venue_id}")
    return venue


_bearer = HTTPBearer(auto_error=False)
ADMIN_TOKEN_USER = "admin-token"  # who the host's own admin token is, in the audit log


@dataclass(frozen=True)
class Principal:
    """Who sent a request (a user, or the admin token) and what their role lets them reach."""

    user_id: str
    name: str
    role: Role
    venues: frozenset[str] = frozenset()  # a venue manager's venues
    org: str | None = None  # a screener's organisation

    @classmethod
    def of(cls, user: UserRecord) -> Principal:
        return cls(user.id, user.name, user.role, frozenset(user.venues), user.org)

    def sees_venue(self, venue_id: str) -> bool:
        """Whether this principal may see the venue's counts, devices and codes."""
        if self.role is Role.VENUE_MANAGER:
            return venue_id in self.venues
        return self.role in (Role.ADMIN, Role.EPIDEMIOLOGIST)

    def audit(self, action: str, purpose: str, **subject: str) -> AuditDraft:
        """The audit record of a read of personal data by this principal, yet to be counted."""
        return AuditDraft(self.user_id, self.name, self.role, action, purpose, subject)


def principal_of_token(context: HostContext, token: str) -> Principal | None:
    """The admin token (compared in constant time) or an unrevoked user's token, by its hash."""
    if same_secret(token, context.settings.admin_token):
        return Principal(ADMIN_TOKEN_USER, "admin", Role.ADMIN)
    user = context.storage.user_by_token(token_hash(token))
    if user is None or user.revoked:
        return None
    return Principal.of(user)


def client_address(context: HostContext, request: Request) -> str:
    """The address a request is from, as `Limits.client_address` decides (proxies trusted)."""
    peer = request.client.host if request.client is not None else None
    return context.limits.client_address(peer, request.headers.getlist("x-forwarded-for"))


def principal_of_guess(context: HostContext, token: str, address: str) -> Principal | None:
    """`principal_of_token`, refused (429) once `address` has sent too many wrong tokens.

    Refused before the token is checked, right or wrong, so that guessing cannot go on at
    full speed; a wrong token is counted against the address.
    """
    limit = context.limits.failed_tokens
    now_ms = context.settings.now_ms()
    context.limiter.refuse_if_reached(limit, address, now_ms, "wrong tokens from this address")
    found = principal_of_token(context, token)
    if found is None:
        context.limiter.count(limit, address, now_ms)
    return found


def requires(*roles: Role) -> Any:
    """A dependency giving the request's `Principal`, checking its role: the one place that does.

    401 without a valid token (the admin token or an unrevoked user's), 403 for a role not in
    `roles`, 429 after too many wrong tokens from the client's address.
    """
    allowed = ", ".join(role.value for role in roles)

    async def principal(
        request: Request,
        context: Context,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        found = None
        if credentials is not None:
            found = await run_in_threadpool(
                principal_of_guess,
                context,
                credentials.credentials,
                client_address(context, request),
            )
        if found is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if found.role not in roles:
            raise ApiError(403, "forbidden", f"{request.url.path} is for: {allowed}")
        return found

    return Depends(principal)


def require_venue_for(context: HostContext, principal: Principal, venue_id: str) -> VenueRecord:
    """The venue, if this principal may see it; an unseen venue answers as an unknown one."""
    if not principal.sees_venue(venue_id):
        raise ApiError(404, "unknown-venue", f"no venue {venue_id}")
    return require_venue(context, venue_id)


AdminPrincipal = Annotated[Principal, requires(Role.ADMIN)]


async def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The raw body, refused (413, naming `what`) as soon as it is declared or read too long."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, "too-large", f"{what} is at most {limit:,} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_body(request: Request, context: Context) -> bytes:
    """The raw body, which the signature covers; refused (413) beyond the configured size."""
    return await read_limited(request, context.settings.max_device_body_bytes, "a device request")


def check_encoding(request: Request) -> str:
    """The body's Content-Encoding if the host can decode it: identity or gzip; else 415."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in ("identity", "gzip"):
        raise ApiError(415, "unsupported-encoding", "a device request body is gzip or plain")
    return encoding


def gunzip(body: bytes, limit: int) -> bytes:
    """One gzip member, refused (413) if it inflates to more than `limit` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        decoded = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ApiError(400, "bad-encoding", f"the body is not gzip: {error}") from None
    if len(decoded) > limit:
        raise ApiError(413, "too-large", f"a device request body inflates to at most {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ApiError(400, "bad-encoding", "the body is not exactly one whole gzip member")
    return decoded


@dataclass(frozen=True)
class DeviceCall:
    """A device request as it arrived, not yet authenticated: `in_device_thread` does that."""

    method: str
    target: str  # path and query, as signed
    headers: Headers
    body: bytes  # as sent, which the signature covers
    encoding: str  # identity or gzip


async def device_call(request: Request, body: Annotated[bytes, Depends(read_body)]) -> DeviceCall:
    """The request's signed parts; nothing here blocks, so it stays on the event loop."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return DeviceCall(request.method, target, request.headers, body, check_encoding(request))


@dataclass(frozen=True)
class DeviceRequest:
    """An authenticated device request: who sent it, its body (decoded), and when it arrived."""

    device: DeviceRecord
    body: bytes
    now_ms: int


def authenticate(context: HostContext, call: DeviceCall) -> DeviceRequest:
    """Check the signature, the clock skew and the nonce of a device request, then decode it.

    The signature covers the body as sent, so a compressed body is inflated only once it is
    known to come from an enrolled device. A gzip body (1f 8b ...) is never valid JSON, so the
    unsigned Content-Encoding header cannot make one signed body mean two things.
    """
    now_ms = context.settings.now_ms()
    try:
        signed = SignedRequest.from_headers(call.headers)
    except AuthError as error:
        raise ApiError(401, "bad-request-auth", str(error)) from None
    device = context.storage.get_device(signed.device_id)
    if device is None:
        raise ApiError(401, "unknown-device", "this device is not enrolled")
    if device.revoked:
        raise ApiError(403, "device-revoked", "this device has been revoked")
    try:
        signed.check(
            load_device_public_key(device.public_key),
            call.method,
            call.target,
            call.body,
            now_ms,
            max_skew_ms=context.settings.max_skew_ms,
        )
    except AuthError as error:
        message = str(error)
        code = "clock-skew" if message.split(":", 1)[0] == "clock-skew" else "bad-signature"
        raise ApiError(401, code, message) from None
    if signed.time_ms < context.started_ms:
        # As a skew: the device has just learnt the host's time and signs the request again.
        raise ApiError(
            401, "clock-skew", "the request was signed before this host started: sign it again"
        )
    if not context.storage.accept_nonce(device.id, signed.nonce, now_ms):
        raise ApiError(401, "replay", "this request was already received")
    context.purge_nonces_now_and_then(now_ms)
    body = call.body
    if call.encoding == "gzip":
        body = gunzip(body, context.settings.max_device_body_bytes)
    return DeviceRequest(device, body, now_ms)


Answer = TypeVar("Answer")


async def in_device_thread(
    context: HostContext, call: DeviceCall, work: Callable[[DeviceRequest], Answer]
) -> Answer:
    """Authenticate the call, then do `work` with it, in one worker thread.

    Both block on the storage. One thread hand-off per request instead of one for each sync
    dependency, endpoint and response model: each costs about 0.5 ms of CPU here, as much as
    the rest of a request. An endpoint gets a `DeviceRequest` from nowhere else, so none
    can skip the check.
    """
    return await run_in_threadpool(lambda: work(authenticate(context, call)))


SignedCall = Annotated[DeviceCall, Depends(device_call)]
