"""The asyncpg pool, its JSON codecs, and the one boundary where database errors become API errors.

Handlers let asyncpg exceptions propagate; `exception_handlers()` turns the ones a client can
cause (duplicates, bad references, values the schema rejects) into 409/422 with the one error
shape, and a database that does not answer into 503. Anything else stays a logged 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import error_response

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 1.0


class Database(Protocol):
    """What handlers need from a pool: `async with db.acquire() as conn`."""

    def acquire(self) -> Any: ...


async def create_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=60
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """json/jsonb in and out as Python values, encoded by msgspec."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
        )


async def ping(db: Database) -> bool:
    """True when the database answers a trivial query within HEALTH_TIMEOUT_S."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            async with db.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


_KEY_COLUMNS = re.compile(r"Key \(([^)]+)\)")


def _field_of(exc: asyncpg.PostgresError) -> str | None:
    """The column a constraint error is about, from `Key (name)=(...)` or the column name."""
    detail = getattr(exc, "detail", None) or ""
    match = _KEY_COLUMNS.search(detail)
    if match:
        return match.group(1).split(",")[-1].strip()
    return getattr(exc, "column_name", None)


async def _unique(request: Request, exc: Exception) -> Response:
    field = _field_of(exc)
    what = f"a record with this {field}" if field else "a record like this"
    return error_response(409, f"{what.capitalize()} already exists", code="conflict", field=field)


async def _foreign_key(request: Request, exc: Exception) -> Response:
    field = _field_of(exc)
    return error_response(
        422,
        f"{field or 'a reference'} points to a record that does not exist",
        code="missing_reference",
        field=field,
    )


async def _rejected_value(request: Request, exc: Exception) -> Response:
    message = getattr(exc, "message", None) or str(exc)
    return error_response(422, f"Rejected by the database: {message}", field=_field_of(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "The database is not available; try again shortly")


def exception_handlers() -> dict[Any, Any]:
    """asyncpg errors a client can cause -> 409/422; a database that is down -> 503."""
    return {
        asyncpg.UniqueViolationError: _unique,
        asyncpg.ForeignKeyViolationError: _foreign_key,
        asyncpg.CheckViolationError: _rejected_value,
        asyncpg.NotNullViolationError: _rejected_value,
        asyncpg.DataError: _rejected_value,  # bad text for a type, out-of-range numbers, ...
        asyncpg.CannotConnectNowError: _unavailable,
        asyncpg.ConnectionDoesNotExistError: _unavailable,
        ConnectionError: _unavailable,
    }
