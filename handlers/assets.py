"""Assets: /api/assets (one media file each): pages with aggregates, updates, bulk updates."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._assets import (
    Asset,
    AssetFilter,
    asset_page_response,
    asset_query,
    enrich,
    filter_where,
)
from handlers._catalog import AssetRef
from handlers._common import MAX_BULK_IDS, ReviewStatus, Tags, delete_by_id, unique_ids
from handlers._media import media_urls
from kernel.errors import BadRequest, NotFound, ValidationFailed
from kernel.http import json_response, parse_query, path_uuid, read_body


class AssetUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Partial update: fields left out stay; `notes` may be set to null."""

    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    review_status: ReviewStatus | msgspec.UnsetType = msgspec.UNSET
    picked_up: bool | msgspec.UnsetType = msgspec.UNSET
    is_on_disk: bool | msgspec.UnsetType = msgspec.UNSET
    notes: str | msgspec.UnsetType | None = msgspec.UNSET


class BulkUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Update the assets listed in `asset_ids`, or every asset matching `filter` (one of them)."""

    updates: AssetUpdate
    asset_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_BULK_IDS)] | None = None
    filter: AssetFilter | None = None


class BulkUpdateResult(msgspec.Struct, kw_only=True):
    updated: int
    # The updated assets when updated by ids; empty for a filter (it may match millions).
    items: list[Asset]


class LookupQuery(msgspec.Struct, kw_only=True):
    disk_path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


GET_ASSET = "SELECT row_to_json(a)::text FROM assets a WHERE a.id = $1"

LOOKUP_BY_PATH = """
SELECT json_build_object('id', id, 'package_id', package_id, 'filename', filename,
                         'file_type', file_type)::text
FROM assets WHERE disk_path = $1
ORDER BY created_at, id
LIMIT 1
"""

DELETE_ASSET = "DELETE FROM assets WHERE id = $1 RETURNING id"

# {p} is the patch parameter, {where} a filter_where(); present keys are applied.
UPDATE_ASSETS = """
WITH patch AS (SELECT {p}::text::jsonb AS j),
updated AS (
    UPDATE assets a SET
        tags = CASE WHEN j ? 'tags'
                    THEN ARRAY(SELECT jsonb_array_elements_text(j -> 'tags')) ELSE a.tags END,
        review_status = CASE WHEN j ? 'review_status' THEN j ->> 'review_status'
                             ELSE a.review_status END,
        picked_up = CASE WHEN j ? 'picked_up' THEN (j ->> 'picked_up')::boolean
                         ELSE a.picked_up END,
        is_on_disk = CASE WHEN j ? 'is_on_disk' THEN (j ->> 'is_on_disk')::boolean
                          ELSE a.is_on_disk END,
        notes = CASE WHEN j ? 'notes' THEN j ->> 'notes' ELSE a.notes END
    FROM patch
    WHERE {where}
    RETURNING a.*
)
SELECT json_build_object(
    'updated', (SELECT count(*) FROM updated),
    'items', CASE WHEN {with_items} THEN
        coalesce((SELECT json_agg(u ORDER BY u.filename, u.id) FROM updated u), '[]')
        ELSE '[]' END
)::text
"""

_asset = msgspec.json.Decoder(Asset)
_ref = msgspec.json.Decoder(AssetRef)
_bulk = msgspec.json.Decoder(BulkUpdateResult)


def _patch(updates: AssetUpdate) -> str:
    patch = msgspec.json.encode(updates).decode()  # UNSET fields are left out
    if patch == "{}":
        raise BadRequest("No fields to update", field="updates")
    return patch


async def list_assets(request: Request) -> Response:
    return await asset_page_response(request, asset_query(request))


async def get_asset(request: Request) -> Response:
    asset_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(GET_ASSET, asset_id)
    if raw is None:
        raise NotFound("Asset not found", field="id")
    return json_response(enrich([_asset.decode(raw)], media_urls(request))[0])


async def lookup_by_path(request: Request) -> Response:
    """The asset stored at exactly this disk_path, or null (200) when there is none."""
    query = parse_query(request, LookupQuery)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(LOOKUP_BY_PATH, query.disk_path)
    return json_response(None if raw is None else _ref.decode(raw))


async def update_asset(request: Request) -> Response:
    asset_id = path_uuid(request)
    body = await read_body(request, AssetUpdate)
    sql, args = _update_sql(_patch(body), "id = {}", asset_id, with_items=True)
    async with request.state.pool.acquire() as conn, conn.transaction():
        result = _bulk.decode(await conn.fetchval(sql, *args))
    if not result.items:
        raise NotFound("Asset not found", field="id")
    return json_response(enrich(result.items, media_urls(request))[0])


async def bulk_update_assets(request: Request) -> Response:
    """By ids (returns the updated assets) or by the list's filter ("approve all matching")."""
    body = await read_body(request, BulkUpdate)
    patch = _patch(body.updates)
    if body.asset_ids is not None and body.filter is not None:
        raise ValidationFailed("Give asset_ids or filter, not both", field="filter")
    if body.filter is not None:
        args: list[object] = [patch]
        where = filter_where(body.filter, args)
        sql = UPDATE_ASSETS.format(p="$1", where=where.sql(), with_items="false")
    elif body.asset_ids:
        sql, args = _update_sql(patch, "id = ANY({})", unique_ids(body.asset_ids), with_items=True)
    else:
        raise BadRequest("No asset IDs provided", field="asset_ids")
    async with request.state.pool.acquire() as conn, conn.transaction():
        result = _bulk.decode(await conn.fetchval(sql, *args))
    enrich(result.items, media_urls(request))
    return json_response(result)


async def delete_asset(request: Request) -> Response:
    """Removes the row (package counters follow by trigger); the file on disk stays."""
    return await delete_by_id(request, DELETE_ASSET, "Asset")


def _update_sql(
    patch: str, fragment: str, value: object, *, with_items: bool
) -> tuple[str, list[object]]:
    sql = UPDATE_ASSETS.format(
        p="$1", where=fragment.format("$2"), with_items="true" if with_items else "false"
    )
    return sql, [patch, value]


routes = [
    Route("/api/assets", list_assets, methods=["GET"], name="list_assets"),
    Route("/api/assets/lookup-by-path", lookup_by_path, methods=["GET"], name="lookup_asset"),
    Route(
        "/api/assets/bulk-update", bulk_update_assets, methods=["POST"], name="bulk_update_assets"
    ),
    Route("/api/assets/{id}", get_asset, methods=["GET"], name="get_asset"),
    Route("/api/assets/{id}", update_asset, methods=["PUT"], name="update_asset"),
    Route("/api/assets/{id}", delete_asset, methods=["DELETE"], name="delete_asset"),
]
