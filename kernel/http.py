"""Generic request/response helpers: msgspec JSON out, validated msgspec Structs in.

Every way a request can be malformed ends as an `ApiError` that names the field, so handlers
only see typed, validated values: bodies over `MAX_BODY_BYTES` -> 413, JSON that does not parse
or does not fit the type -> 422, a malformed id in the path -> 422.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import PayloadTooLarge, ValidationFailed

T = TypeVar("T")

MAX_BODY_BYTES = 1024 * 1024
JSON = "application/json"

# msgspec puts the location last: "Expected `int`, got `str` - at `$.limit`".
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
# ...and names a missing or unknown key in the message: "Object missing required field `x`".
_KEY = re.compile(r"(?:missing required|contains unknown) field `(?P<key>[^`]+)`")


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`content` (Structs, dicts, lists, UUIDs, datetimes...) encoded by msgspec."""
    return Response(msgspec.json.encode(content), status_code, headers, media_type=JSON)


def raw_json_response(body: bytes | str, status_code: int = 200) -> Response:
    """JSON that is already encoded, e.g. built by PostgreSQL."""
    return Response(body, status_code, media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> ValidationFailed:
    """A msgspec error as a 422 naming the field (`ids[2]`, `updates.review_status`)."""
    match = _AT.match(str(exc))
    message, path = (match["message"], match["path"]) if match else (str(exc), None)
    key = _KEY.search(message)
    if key:
        path = f"{path}.{key['key']}" if path else key["key"]
    return ValidationFailed(f"{path}: {message}" if path else message, field=path or None)


async def read_body(request: Request, body_type: type[T]) -> T:
    """The JSON body decoded into `body_type`; 413 past MAX_BODY_BYTES, 422 when it does not fit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Request body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    # Counted while streaming: a chunked body has no Content-Length to check up front.
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ValidationFailed("A JSON body is required")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"The body is not valid JSON: {exc}") from None


def parse_query(request: Request, query_type: type[T]) -> T:
    """The query string converted into `query_type` ("7" -> 7, "true" -> True, enums checked).

    Unknown parameters are ignored; a parameter given twice keeps its last value.
    """
    values: dict[str, Any] = dict(request.query_params)
    try:
        return msgspec.convert(values, query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def path_uuid(request: Request, name: str = "id") -> UUID:
    """A UUID path parameter; a malformed one is a 422 naming it (never a 500 from the DB)."""
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except (ValueError, TypeError):
        raise ValidationFailed(f"{name}: {raw!r} is not a valid UUID", field=name) from None
