"""Every error as an `ErrorBody` JSON with a fitting status: API errors, HTTP and validation."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from host.api.hardening import security_headers
from shared.auth import HEADER_SERVER_TIME
from shared.messages import ErrorBody

MAX_LISTED_ERRORS = 5


class ApiError(Exception):
    """A refusal with its HTTP status, a short stable code (`device-revoked`) and a detail."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def describe(errors: Sequence[Any]) -> str:
    """Where and what, for the first few errors; never the offending values (they may be IDs)."""
    parts = [
        f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', 'invalid')}"
        for item in errors[:MAX_LISTED_ERRORS]
    ]
    if len(errors) > MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(item.get("type") == "json_invalid" for item in errors):
        return error_response(400, "bad-json", "the body is not valid JSON")
    return error_response(422, "invalid-request", describe(errors))


async def _internal_error(request: Request, _exc: Exception) -> JSONResponse:
    # Starlette's outermost middleware calls this (and logs the traceback), outside the
    # server-time and security-header middleware, so those headers are set here.
    now_ms = request.app.state.context.settings.now_ms()
    headers = {HEADER_SERVER_TIME: str(now_ms), **security_headers(request.url.scheme == "https")}
    return error_response(500, "internal-error", "the host failed; try again", headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
