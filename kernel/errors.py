"""One exception tree and one JSON error body for every error the API returns.

Body: `{"detail": "<human message>", "code": "<machine code>", "field": "<field or null>"}`.
Handlers raise `ApiError` subclasses; Starlette's own HTTP errors (404 route, 405 method) and
anything unexpected are turned into the same shape here, so clients parse one thing.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with an HTTP status that the client should see as it is."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class ErrorBody(msgspec.Struct):
    """The one error shape of every 4xx/5xx (also what the OpenAPI document describes)."""

    detail: str
    code: str
    field: str | None


def error_body(
    status: int, detail: str, *, code: str | None = None, field: str | None = None
) -> bytes:
    return msgspec.json.encode(ErrorBody(detail, code or _CODES.get(status, "error"), field))


def error_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(status, detail, code=code, field=field),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, code=exc.code, field=exc.field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, detail, headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error")


def exception_handlers() -> dict[Any, Any]:
    """The handlers `create_app` installs: every error leaves as the one JSON shape."""
    return {ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected}
