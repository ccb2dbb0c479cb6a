"""Packages: /api/packages (one ingested delivery), their summary and their assets."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._assets import asset_page_response, asset_query
from handlers._catalog import PACKAGE_ORDER, Package
from handlers._common import (
    Name,
    PackageStatus,
    ProjectType,
    Tags,
    bulk_delete,
    contains_pattern,
    delete_by_id,
    update_by_id,
)
from kernel.errors import NotFound
from kernel.http import json_response, parse_query, path_uuid, read_body


class PackageCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    subject_id: UUID
    name: Name
    source_description: str | None = ""
    disk_path: str | None = None
    tags: Tags = []
    metadata: dict[str, Any] = {}
    package_type: ProjectType = "atman"
    status: PackageStatus = "ingested"
    picked_up: bool = False


class PackageUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Partial update: fields left out stay; nullable ones may be set to null."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    source_description: str | msgspec.UnsetType | None = msgspec.UNSET
    status: PackageStatus | msgspec.UnsetType = msgspec.UNSET
    package_type: ProjectType | msgspec.UnsetType = msgspec.UNSET
    picked_up: bool | msgspec.UnsetType = msgspec.UNSET
    disk_path: str | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class PackageQuery(msgspec.Struct, kw_only=True):
    subject_id: UUID | None = None
    project_id: UUID | None = None
    package_type: ProjectType | None = None
    status: PackageStatus | None = None
    # Substring of the name, case- and accent-insensitive.
    search: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    offset: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class PackagePage(msgspec.Struct, kw_only=True):
    items: list[Package]
    total: int
    offset: int
    limit: int


class PoseBin(msgspec.Struct):
    y: int
    p: int
    count: int


class PackageSummary(msgspec.Struct, kw_only=True):
    package_id: UUID
    total_assets: int
    video_count: int
    image_count: int
    file_type_counts: dict[str, int]
    asset_type_counts: dict[str, int]
    aligned_count: int
    grid_count: int
    plate_count: int
    raw_count: int
    graded_count: int
    proxy_count: int
    metadata_count: int
    picked_up_count: int
    total_duration: float
    common_width: int | None
    common_height: int | None
    face_types: list[str]
    source_width: int | None
    source_height: int | None
    yaw_min: float | None
    yaw_max: float | None
    pitch_min: float | None
    pitch_max: float | None
    avg_sharpness: float | None
    cameras: list[str]
    codecs: list[str]
    source_video_path: str | None
    source_video_filename: str | None
    grid_asset_id: str | None
    # Aligned crops per 10x10 degree (yaw, pitch) bin; null when none has a pose.
    pose_data: list[PoseBin] | None


# Whitelisted filter fragments over packages k; values are always parameters.
PACKAGE_FILTERS = {
    "subject_id": "k.id IN (SELECT package_id FROM packages_subjects WHERE subject_id = {})",
    "project_id": (
        "k.id IN (SELECT ps.package_id FROM packages_subjects ps"
        " JOIN subjects s ON s.id = ps.subject_id WHERE s.project_id = {})"
    ),
    "package_type": "k.package_type = {}",
    "status": "k.status = {}",
    "search": "search_key(k.name) LIKE search_key({})",
}

LIST_PACKAGES = f"""
WITH matched AS (SELECT k.id, k.ingested_at FROM packages k WHERE {{where}}),
page AS (
    SELECT id FROM matched ORDER BY ingested_at DESC, id DESC
    LIMIT {{limit}}::bigint OFFSET {{offset}}::bigint
)
SELECT json_build_object(
    'items', coalesce((SELECT json_agg(p ORDER BY {PACKAGE_ORDER}) FROM package_details p
                       WHERE p.id IN (SELECT id FROM page)), '[]'),
    'total', (SELECT count(*) FROM matched),
    'offset', {{offset}}::bigint, 'limit', {{limit}}::bigint
)::text
"""

GET_PACKAGE = "SELECT row_to_json(p)::text FROM package_details p WHERE p.id = $1"

INSERT_PACKAGE = """
INSERT INTO packages (subject_id, name, source_description, disk_path, tags, metadata,
                      package_type, status, picked_up)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9)
RETURNING id
"""

UPDATE_PACKAGE = """
WITH patch AS (SELECT $2::text::jsonb AS j)
UPDATE packages p SET
    name = CASE WHEN j ? 'name' THEN j ->> 'name' ELSE p.name END,
    source_description = CASE WHEN j ? 'source_description' THEN j ->> 'source_description'
                              ELSE p.source_description END,
    status = CASE WHEN j ? 'status' THEN j ->> 'status' ELSE p.status END,
    package_type = CASE WHEN j ? 'package_type' THEN j ->> 'package_type'
                        ELSE p.package_type END,
    picked_up = CASE WHEN j ? 'picked_up' THEN (j ->> 'picked_up')::boolean ELSE p.picked_up END,
    disk_path = CASE WHEN j ? 'disk_path' THEN j ->> 'disk_path' ELSE p.disk_path END,
    tags = CASE WHEN j ? 'tags'
                THEN ARRAY(SELECT jsonb_array_elements_text(j -> 'tags')) ELSE p.tags END,
    metadata = CASE WHEN j ? 'metadata' THEN j -> 'metadata' ELSE p.metadata END
FROM patch
WHERE p.id = $1
RETURNING p.id
"""

DELETE_PACKAGE = "DELETE FROM packages WHERE id = $1 RETURNING id"
BULK_DELETE_PACKAGES = (
    "WITH d AS (DELETE FROM packages WHERE id = ANY($1) RETURNING 1) SELECT count(*) FROM d"
)

# Live over the package's assets in one pass: `c` groups them by every column the summary
# lists (a few hundred rows for thousands of assets); everything else is computed from `c`.
# NULL when the package does not exist.
PACKAGE_SUMMARY = """
WITH c AS MATERIALIZED (
    SELECT width, height, face_type, camera, codec, file_type, asset_type, yaw_bin, pitch_bin,
           count(*) AS n,
           count(*) FILTER (WHERE picked_up) AS picked,
           sum(duration_seconds) FILTER (WHERE file_type = 'video') AS duration,
           max(source_width) AS source_width, max(source_height) AS source_height,
           min(yaw) AS yaw_min, max(yaw) AS yaw_max,
           min(pitch) AS pitch_min, max(pitch) AS pitch_max,
           sum(sharpness) AS sharpness_sum, count(sharpness) AS sharpness_n
    FROM assets WHERE package_id = $1
    GROUP BY width, height, face_type, camera, codec, file_type, asset_type, yaw_bin, pitch_bin
), s AS (
    SELECT coalesce(sum(n), 0) AS total,
           coalesce(sum(n) FILTER (WHERE file_type = 'video'), 0) AS video_count,
           coalesce(sum(n) FILTER (WHERE file_type = 'image'), 0) AS image_count,
           coalesce(sum(picked), 0) AS picked_up_count,
           coalesce(sum(duration), 0) AS total_duration,
           max(source_width) AS source_width, max(source_height) AS source_height,
           min(yaw_min) AS yaw_min, max(yaw_max) AS yaw_max,
           min(pitch_min) AS pitch_min, max(pitch_max) AS pitch_max,
           sum(sharpness_sum) / nullif(sum(sharpness_n), 0)::float8 AS avg_sharpness
    FROM c
), types AS (
    SELECT jsonb_object_agg(asset_type, n) AS counts
    FROM (SELECT asset_type, sum(n) AS n FROM c GROUP BY asset_type) t
)
SELECT json_build_object(
    'package_id', p.id,
    'total_assets', s.total, 'video_count', s.video_count, 'image_count', s.image_count,
    'file_type_counts', coalesce(
        (SELECT json_object_agg(file_type, n ORDER BY file_type)
         FROM (SELECT file_type, sum(n) AS n FROM c GROUP BY file_type) t), '{}'),
    'asset_type_counts', coalesce(
        (SELECT json_object_agg(asset_type, n ORDER BY asset_type)
         FROM (SELECT asset_type, sum(n) AS n FROM c GROUP BY asset_type) t), '{}'),
    'aligned_count', coalesce((types.counts ->> 'aligned')::int, 0),
    'grid_count', coalesce((types.counts ->> 'grid')::int, 0),
    'plate_count', coalesce((types.counts ->> 'plate')::int, 0),
    'raw_count', coalesce((types.counts ->> 'raw')::int, 0),
    'graded_count', coalesce((types.counts ->> 'graded')::int, 0),
    'proxy_count', coalesce((types.counts ->> 'proxy')::int, 0),
    'metadata_count', coalesce((types.counts ->> 'metadata')::int, 0),
    'picked_up_count', s.picked_up_count, 'total_duration', s.total_duration,
    -- The statistical mode; ties go to the smaller value.
    'common_width', (SELECT width FROM c WHERE width IS NOT NULL
                     GROUP BY width ORDER BY sum(n) DESC, width LIMIT 1),
    'common_height', (SELECT height FROM c WHERE height IS NOT NULL
                      GROUP BY height ORDER BY sum(n) DESC, height LIMIT 1),
    'face_types', ARRAY(SELECT DISTINCT face_type FROM c WHERE face_type IS NOT NULL
                        ORDER BY face_type),
    'source_width', s.source_width, 'source_height', s.source_height,
    'yaw_min', s.yaw_min, 'yaw_max', s.yaw_max, 'pitch_min', s.pitch_min,
    'pitch_max', s.pitch_max, 'avg_sharpness', s.avg_sharpness,
    'cameras', ARRAY(SELECT DISTINCT camera FROM c WHERE camera IS NOT NULL ORDER BY camera),
    'codecs', ARRAY(SELECT DISTINCT codec FROM c WHERE codec IS NOT NULL ORDER BY codec),
    'source_video_path', p.metadata ->> 'source_video_path',
    'source_video_filename', p.metadata ->> 'source_video_filename',
    'grid_asset_id', p.metadata ->> 'grid_asset_id',
    'pose_data', (SELECT json_agg(json_build_object('y', yaw_bin, 'p', pitch_bin, 'count', n)
                                  ORDER BY yaw_bin, pitch_bin)
                  FROM (SELECT yaw_bin, pitch_bin, sum(n) AS n FROM c
                        WHERE asset_type = 'aligned'
                          AND yaw_bin IS NOT NULL AND pitch_bin IS NOT NULL
                        GROUP BY yaw_bin, pitch_bin) b)
)::text
FROM packages p, s, types
WHERE p.id = $1
"""

_package = msgspec.json.Decoder(Package)
_page = msgspec.json.Decoder(PackagePage)
_summary = msgspec.json.Decoder(PackageSummary)


async def fetch_package(conn, package_id: UUID) -> Package:
    raw = await conn.fetchval(GET_PACKAGE, package_id)
    if raw is None:
        raise NotFound("Package not found", field="id")
    return _package.decode(raw)


def _list_sql(query: PackageQuery) -> tuple[str, list[Any]]:
    args: list[Any] = []
    clauses = []
    for name in ("subject_id", "project_id", "package_type", "status"):
        value = getattr(query, name)
        if value is not None:
            args.append(value)
            clauses.append(PACKAGE_FILTERS[name].format(f"${len(args)}"))
    if query.search:
        args.append(contains_pattern(query.search))
        clauses.append(PACKAGE_FILTERS["search"].format(f"${len(args)}"))
    args += [query.limit, query.offset]
    sql = LIST_PACKAGES.format(
        where=" AND ".join(clauses) or "true", limit=f"${len(args) - 1}", offset=f"${len(args)}"
    )
    return sql, args


async def list_packages(request: Request) -> Response:
    """A page of packages, newest first, each with its linked subjects."""
    query = parse_query(request, PackageQuery)
    sql, args = _list_sql(query)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(sql, *args)
    return json_response(_page.decode(raw))


async def get_package(request: Request) -> Response:
    package_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        return json_response(await fetch_package(conn, package_id))


async def create_package(request: Request) -> Response:
    """The primary subject is linked (packages_subjects) by a trigger, as for ingested ones."""
    body = await read_body(request, PackageCreate)
    async with request.state.pool.acquire() as conn, conn.transaction():
        new_id = await conn.fetchval(
            INSERT_PACKAGE,
            body.subject_id,
            body.name,
            body.source_description,
            body.disk_path,
            body.tags,
            msgspec.json.encode(body.metadata).decode(),
            body.package_type,
            body.status,
            body.picked_up,
        )
        return json_response(await fetch_package(conn, new_id), 201)


async def update_package(request: Request) -> Response:
    package_id = path_uuid(request)
    body = await read_body(request, PackageUpdate)
    return await update_by_id(request, package_id, body, UPDATE_PACKAGE, "Package", fetch_package)


async def delete_package(request: Request) -> Response:
    """Deletes the package and its asset rows; files on disk stay."""
    return await delete_by_id(request, DELETE_PACKAGE, "Package")


async def bulk_delete_packages(request: Request) -> Response:
    return await bulk_delete(request, BULK_DELETE_PACKAGES)


async def package_summary(request: Request) -> Response:
    """Counts, durations, cameras, codecs, face pose ranges and pose bins (empty package: 0s)."""
    package_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(PACKAGE_SUMMARY, package_id)
    if raw is None:
        raise NotFound("Package not found", field="id")
    return json_response(_summary.decode(raw))


async def package_assets(request: Request) -> Response:
    package_id = path_uuid(request)
    query = asset_query(request)
    query.package_id = package_id
    return await asset_page_response(request, query, parent=("packages", package_id))


routes = [
    Route("/api/packages", list_packages, methods=["GET"], name="list_packages"),
    Route("/api/packages", create_package, methods=["POST"], name="create_package"),
    Route(
        "/api/packages/bulk-delete",
        bulk_delete_packages,
        methods=["POST"],
        name="bulk_delete_packages",
    ),
    Route("/api/packages/{id}", get_package, methods=["GET"], name="get_package"),
    Route("/api/packages/{id}", update_package, methods=["PUT"], name="update_package"),
    Route("/api/packages/{id}", delete_package, methods=["DELETE"], name="delete_package"),
    Route("/api/packages/{id}/summary", package_summary, methods=["GET"], name="package_summary"),
    Route("/api/packages/{id}/assets", package_assets, methods=["GET"], name="package_assets"),
]
