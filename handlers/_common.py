"""Types and helpers shared by the catalog handlers (ids, deletes, LIKE patterns)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import BadRequest, NotFound
from kernel.http import json_response, no_content, path_uuid, read_body

ProjectType = Literal["atman", "vfx"]
PackageStatus = Literal["ingested", "processing", "ready", "error"]
FileType = Literal["video", "image", "audio", "other"]
ReviewStatus = Literal["unreviewed", "approved", "rejected", "flagged"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
ShortText = Annotated[str, msgspec.Meta(max_length=255)]
Tags = list[Annotated[str, msgspec.Meta(max_length=255)]]
MAX_BULK_IDS = 10_000


class IdList(msgspec.Struct, forbid_unknown_fields=True):
    """Body of every bulk-delete: `{"ids": [...]}`."""

    ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_BULK_IDS)]


class Deleted(msgspec.Struct):
    deleted: int


class LinkedSubject(msgspec.Struct):
    id: UUID
    name: str


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere; the user's `%`, `_` and `\\` match literally.

    The SQL side applies search_key() (lower + unaccent) to it, which leaves these untouched.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def unique_ids(ids: list[UUID]) -> list[UUID]:
    return list(dict.fromkeys(ids))


async def update_by_id(
    request: Request,
    row_id: UUID,
    body: msgspec.Struct,
    sql: str,
    what: str,
    fetch: Callable[[Any, UUID], Awaitable[Any]],
) -> Response:
    """Apply a partial-update Struct with `sql` (($1 id, $2 patch JSON) RETURNING id), then
    answer with `fetch(conn, id)`; 400 when nothing was sent, 404 for an unknown id."""
    patch = msgspec.json.encode(body).decode()  # UNSET fields are left out by msgspec
    if patch == "{}":
        raise BadRequest("No fields to update")
    async with request.state.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(sql, row_id, patch) is None:
            raise NotFound(f"{what} not found", field="id")
        return json_response(await fetch(conn, row_id))


async def delete_by_id(request: Request, sql: str, what: str) -> Response:
    """Run `sql` (a DELETE ... WHERE id = $1 RETURNING id) for the path's id: 204, or 404."""
    row_id = path_uuid(request)
    async with request.state.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(sql, row_id) is None:
            raise NotFound(f"{what} not found", field="id")
    return no_content()


async def bulk_delete(request: Request, sql: str) -> Response:
    """Run `sql` (returning the count deleted) for the body's `{"ids": [...]}`; unknown ids skip."""
    body = await read_body(request, IdList)
    if not body.ids:
        raise BadRequest("No IDs provided", field="ids")
    async with request.state.pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(sql, unique_ids(body.ids))
    return json_response(Deleted(deleted=deleted))
