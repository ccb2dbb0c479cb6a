"""The asset page shared by /api/assets, /api/packages/{id}/assets and /api/subjects/{id}/assets.

One SQL query per page returns the items, the total and the aggregates of the whole filtered
set. Items come through a "deferred join": the ids of the page are found first (an index-only
scan when the filter allows), then only those rows are read. Aggregates come from
asset_rollups (maintained by triggers) when every filter is one of its key columns, so an
unfiltered page over a million assets sums a few hundred rows; other filters (search, tags,
pose, sharpness) aggregate over the matching assets, which their indexes keep few.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from handlers._common import FileType, ReviewStatus, contains_pattern
from handlers._media import MediaUrls, media_urls
from kernel.errors import NotFound, ValidationFailed
from kernel.http import json_response, parse_query

Sort = Literal["filename", "created_at", "size", "duration", "sharpness"]
# sort key -> (column, nullable); only these names ever reach the SQL text.
SORT_COLUMNS: dict[str, tuple[str, bool]] = {
    "filename": ("filename", False),
    "created_at": ("created_at", False),
    "size": ("file_size_bytes", True),
    "duration": ("duration_seconds", True),
    "sharpness": ("sharpness", True),
}
MAX_OFFSET = 5_000_000
Angle = Annotated[float, msgspec.Meta(ge=-360, le=360)]


class Asset(msgspec.Struct, kw_only=True):
    id: UUID
    package_id: UUID
    subject_id: UUID | None
    filename: str
    file_type: str
    asset_type: str
    mime_type: str | None
    file_size_bytes: int | None
    disk_path: str
    proxy_path: str | None
    thumbnail_path: str | None
    proxy_url: str | None = None
    thumbnail_url: str | None = None
    width: int | None
    height: int | None
    duration_seconds: float | None
    codec: str | None
    camera: str | None
    review_status: str
    is_on_disk: bool
    picked_up: bool
    tags: list[str]
    notes: str | None
    metadata: dict[str, Any]
    yaw: float | None
    pitch: float | None
    sharpness: float | None
    created_at: datetime


class ReviewCounts(msgspec.Struct):
    unreviewed: int
    approved: int
    rejected: int
    flagged: int


class AssetPage(msgspec.Struct, kw_only=True):
    items: list[Asset]
    total: int
    offset: int
    limit: int
    video_count: int
    image_count: int
    total_size_bytes: int
    total_duration_seconds: float
    picked_up_count: int
    by_review_status: ReviewCounts
    # Pass back as `cursor` for the next page (keyset: fast at any depth); null on the last.
    next_cursor: str | None = None


class _FilterFields(msgspec.Struct, kw_only=True):
    package_id: UUID | None = None
    subject_id: UUID | None = None
    project_id: UUID | None = None
    # "aligned" is a shortcut for asset_type=aligned; asset_type wins when both are given.
    file_type: FileType | Literal["aligned"] | None = None
    asset_type: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    review_status: ReviewStatus | None = None
    picked_up: bool | None = None
    # Comma-separated; an asset must carry every one.
    tags: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    # Substring of the filename, case- and accent-insensitive.
    search: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    # Comma-separated "yaw:pitch" 10-degree bins, e.g. "-20:0,10:10".
    pose_bins: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    yaw_min: Angle | None = None
    yaw_max: Angle | None = None
    pitch_min: Angle | None = None
    pitch_max: Angle | None = None
    min_sharpness: float | None = None


class AssetFilter(_FilterFields, kw_only=True, forbid_unknown_fields=True):
    """The list's filters as a JSON object (bulk update "everything matching")."""


class AssetQuery(_FilterFields, kw_only=True):
    """Query string of every asset list."""

    sort: Sort = "filename"
    order: Literal["asc", "desc"] = "asc"
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 200
    cursor: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


# Fragments over columns that assets and asset_rollups share, so one WHERE serves both.
# {} are parameter numbers, filled in order; values are always parameters.
ROLLUP_FILTERS = {
    "package_id": "package_id = {}",
    "subject_id": "subject_id = {}",
    "project_id": (
        "package_id IN (SELECT ps.package_id FROM packages_subjects ps"
        " JOIN subjects s ON s.id = ps.subject_id WHERE s.project_id = {})"
    ),
    "asset_type": "asset_type = {}",
    "file_type": "file_type = {}",
    "review_status": "review_status = {}",
    "picked_up": "picked_up = {}",
}
# Fragments only assets has; any of them makes the aggregates scan the matching assets.
ASSET_FILTERS = {
    "tags": "tags @> {}::text[]",
    "search": "search_key(filename) LIKE search_key({})",
    "pose_bins": "(yaw_bin, pitch_bin) IN (SELECT * FROM unnest({}::int[], {}::int[]))",
    "yaw_min": "yaw >= {}",
    "yaw_max": "yaw <= {}",
    "pitch_min": "pitch >= {}",
    "pitch_max": "pitch <= {}",
    "min_sharpness": "sharpness >= {}",
}

ROLLUP_AGGREGATES = """
SELECT coalesce(sum(n), 0) AS total,
       coalesce(sum(n) FILTER (WHERE file_type = 'video'), 0) AS video_count,
       coalesce(sum(n) FILTER (WHERE file_type = 'image'), 0) AS image_count,
       coalesce(sum(size_bytes), 0) AS total_size_bytes,
       coalesce(sum(duration_seconds) FILTER (WHERE file_type = 'video'), 0)
           AS total_duration_seconds,
       coalesce(sum(n) FILTER (WHERE picked_up), 0) AS picked_up_count,
       coalesce(sum(n) FILTER (WHERE review_status = 'unreviewed'), 0) AS unreviewed,
       coalesce(sum(n) FILTER (WHERE review_status = 'approved'), 0) AS approved,
       coalesce(sum(n) FILTER (WHERE review_status = 'rejected'), 0) AS rejected,
       coalesce(sum(n) FILTER (WHERE review_status = 'flagged'), 0) AS flagged
FROM asset_rollups WHERE {where}
"""

# Filters only assets can answer: the matching rows are read once (a bitmap scan on their
# index) into `matched`, and both the page and the aggregates come from there.
SCAN_MATCHED = """
matched AS MATERIALIZED (
    SELECT id, filename, created_at, file_size_bytes, duration_seconds, sharpness,
           file_type, picked_up, review_status
    FROM assets WHERE {where}
),"""

SCAN_AGGREGATES = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE file_type = 'video') AS video_count,
       count(*) FILTER (WHERE file_type = 'image') AS image_count,
       coalesce(sum(file_size_bytes), 0) AS total_size_bytes,
       coalesce(sum(duration_seconds) FILTER (WHERE file_type = 'video'), 0)
           AS total_duration_seconds,
       count(*) FILTER (WHERE picked_up) AS picked_up_count,
       count(*) FILTER (WHERE review_status = 'unreviewed') AS unreviewed,
       count(*) FILTER (WHERE review_status = 'approved') AS approved,
       count(*) FILTER (WHERE review_status = 'rejected') AS rejected,
       count(*) FILTER (WHERE review_status = 'flagged') AS flagged
FROM matched
"""

# {source} is `assets` (rollup path, ordered index scans stop after the page) or `matched`.
# {keys} is one of the KEYS_* below.
ASSET_PAGE = """
WITH {matched}
agg AS ({aggregates}),
keys AS ({keys}),
page AS (
    -- = ANY(ARRAY(...)): primary-key lookups whatever the planner guesses about keys' size.
    SELECT a.* FROM assets a WHERE a.id = ANY (ARRAY(SELECT id FROM keys))
)
SELECT json_build_object(
    'items', coalesce((SELECT json_agg(page ORDER BY {order}) FROM page), '[]'),
    'total', agg.total, 'offset', {offset}::bigint, 'limit', {limit}::bigint,
    'video_count', agg.video_count, 'image_count', agg.image_count,
    'total_size_bytes', agg.total_size_bytes,
    'total_duration_seconds', agg.total_duration_seconds,
    'picked_up_count', agg.picked_up_count,
    'by_review_status', json_build_object(
        'unreviewed', agg.unreviewed, 'approved', agg.approved,
        'rejected', agg.rejected, 'flagged', agg.flagged)
)::text
FROM agg
WHERE {parent_exists}
"""

KEYS_FORWARD = """
SELECT id FROM {source} WHERE {page_where} ORDER BY {order}
LIMIT {limit}::bigint OFFSET {offset}::bigint
"""

# An offset past the middle of the (exactly known) total is walked from the other end: the
# last page of a million costs what the first does. Only one branch runs (one-time filters).
KEYS_NEAREST_END = """
(SELECT id FROM {source}
 WHERE {page_where} AND {offset}::bigint * 2 <= (SELECT total FROM agg)
 ORDER BY {order} LIMIT {limit}::bigint OFFSET {offset}::bigint)
UNION ALL
(SELECT id FROM {source}
 WHERE {page_where} AND {offset}::bigint * 2 > (SELECT total FROM agg)
 ORDER BY {reverse}
 LIMIT greatest(least({limit}::bigint, (SELECT total FROM agg) - {offset}::bigint), 0)
 OFFSET greatest((SELECT total FROM agg) - {offset}::bigint - {limit}::bigint, 0))
"""

# Parent tables a scoped page may check (whitelist).
PARENTS = {
    "packages": "EXISTS (SELECT 1 FROM packages WHERE id = {})",
    "subjects": "EXISTS (SELECT 1 FROM subjects WHERE id = {})",
}

_page = msgspec.json.Decoder(AssetPage)


class SqlWhere:
    """AND-ed fragments from the whitelists above, with their values as $n parameters."""

    def __init__(self, args: list[Any] | None = None) -> None:
        self.args: list[Any] = args if args is not None else []
        self.clauses: list[str] = []
        self.rollup_only = True

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, fragment: str, *values: Any, rollup: bool = True) -> None:
        self.clauses.append(fragment.format(*(self.param(v) for v in values)))
        self.rollup_only = self.rollup_only and rollup

    def sql(self, *extra: str) -> str:
        return " AND ".join([*self.clauses, *extra]) or "true"


def filter_where(f: _FilterFields, args: list[Any] | None = None) -> SqlWhere:
    """The WHERE for a filter; `rollup_only` says whether asset_rollups can answer aggregates."""
    where = SqlWhere(args)
    for name in ("package_id", "subject_id", "project_id", "review_status", "picked_up"):
        value = getattr(f, name)
        if value is not None:
            where.add(ROLLUP_FILTERS[name], value)
    if f.asset_type is not None:
        where.add(ROLLUP_FILTERS["asset_type"], f.asset_type)
    elif f.file_type == "aligned":
        where.add(ROLLUP_FILTERS["asset_type"], "aligned")
    elif f.file_type is not None:
        where.add(ROLLUP_FILTERS["file_type"], f.file_type)
    if f.tags is not None:
        tags = [t.strip() for t in f.tags.split(",") if t.strip()]
        if tags:
            where.add(ASSET_FILTERS["tags"], tags, rollup=False)
    if f.search:
        where.add(ASSET_FILTERS["search"], contains_pattern(f.search), rollup=False)
    if f.pose_bins is not None:
        yaws, pitches = parse_pose_bins(f.pose_bins)
        if yaws:
            where.add(ASSET_FILTERS["pose_bins"], yaws, pitches, rollup=False)
    for name in ("yaw_min", "yaw_max", "pitch_min", "pitch_max", "min_sharpness"):
        value = getattr(f, name)
        if value is not None:
            where.add(ASSET_FILTERS[name], value, rollup=False)
    return where


def parse_pose_bins(raw: str) -> tuple[list[int], list[int]]:
    """ "-20:0,10:10" -> ([-20, 10], [0, 10]); entries without a colon are skipped."""
    yaws, pitches = [], []
    for entry in raw.split(","):
        yaw, sep, pitch = entry.strip().partition(":")
        if not sep:
            continue
        try:
            yaws.append(int(yaw))
            pitches.append(int(pitch))
        except ValueError:
            raise ValidationFailed(
                f"pose_bins: {entry.strip()!r} is not a 'yaw:pitch' pair of integers",
                field="pose_bins",
            ) from None
    return yaws, pitches


def order_sql(query: AssetQuery, *, reverse: bool = False) -> str:
    """ORDER BY for the page; reversed, it is the exact mirror (NULLS LAST asc, FIRST desc)."""
    column, _ = SORT_COLUMNS[query.sort]
    direction = "DESC" if (query.order == "desc") != reverse else "ASC"
    return f"{column} {direction}, id {direction}"


# --- keyset cursor -------------------------------------------------------------------------


def encode_cursor(query: AssetQuery, last: Asset) -> str:
    column, _ = SORT_COLUMNS[query.sort]
    payload = [query.sort, query.order, getattr(last, column), last.id]
    return base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode().rstrip("=")


_CURSOR_VALUE: dict[str, Any] = {
    "filename": str,
    "created_at": datetime,
    "size": int | None,
    "duration": float | None,
    "sharpness": float | None,
}


def decode_cursor(query: AssetQuery) -> tuple[Any, UUID]:
    """(sort value, id) of the row the cursor points after; 422 if it is not ours or stale."""
    assert query.cursor is not None
    try:
        raw = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4))
        sort, order, value, last_id = msgspec.json.decode(raw, type=tuple[str, str, Any, UUID])
        if (sort, order) != (query.sort, query.order):
            raise ValidationFailed("cursor: it was made for another sort or order", field="cursor")
        return msgspec.convert(value, _CURSOR_VALUE[sort]), last_id
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise ValidationFailed("cursor: not a cursor this API returned", field="cursor") from None


def add_cursor(where: SqlWhere, query: AssetQuery) -> list[str]:
    """The keyset condition "after the cursor row" in the page's order (NULLs sort last asc)."""
    value, last_id = decode_cursor(query)
    column, nullable = SORT_COLUMNS[query.sort]
    after = ">" if query.order == "asc" else "<"
    if not nullable:
        return [f"({column}, id) {after} ({where.param(value)}, {where.param(last_id)})"]
    id_param = where.param(last_id)
    if value is None:  # inside the NULL block: asc ends there, desc continues to values
        tail = "" if query.order == "asc" else f" OR {column} IS NOT NULL"
        return [f"(({column} IS NULL AND id {after} {id_param}){tail})"]
    v = where.param(value)
    nulls = f" OR {column} IS NULL" if query.order == "asc" else ""
    return [f"({column} {after} {v} OR ({column} = {v} AND id {after} {id_param}){nulls})"]


# --- the page ------------------------------------------------------------------------------


def page_sql(query: AssetQuery, parent: tuple[str, UUID] | None) -> tuple[str, list[Any]]:
    if query.cursor is not None and query.offset:
        raise ValidationFailed("offset: use either offset or cursor, not both", field="offset")
    where = filter_where(query)
    cursor = add_cursor(where, query) if query.cursor is not None else []
    if where.rollup_only:
        matched, source = "", "assets"
        aggregates = ROLLUP_AGGREGATES.format(where=where.sql())
        page_where = where.sql(*cursor)
    else:
        matched, source = SCAN_MATCHED.format(where=where.sql()), "matched"
        aggregates = SCAN_AGGREGATES
        page_where = " AND ".join(cursor) or "true"
    limit, offset = where.param(query.limit), where.param(query.offset)
    exists = PARENTS[parent[0]].format(where.param(parent[1])) if parent else "true"
    # With a cursor the total is not the size of what is left, so no walking from the end.
    order = order_sql(query)
    keys = (KEYS_FORWARD if cursor else KEYS_NEAREST_END).format(
        source=source,
        page_where=page_where,
        order=order,
        reverse=order_sql(query, reverse=True),
        limit=limit,
        offset=offset,
    )
    sql = ASSET_PAGE.format(
        matched=matched,
        aggregates=aggregates,
        keys=keys,
        order=order,
        limit=limit,
        offset=offset,
        parent_exists=exists,
    )
    return sql, where.args


def enrich(assets: list[Asset], urls: MediaUrls) -> list[Asset]:
    """proxy_url / thumbnail_url from the media roots; an image is its own proxy if it has none."""
    for asset in assets:
        asset.proxy_url = urls(asset.proxy_path)
        asset.thumbnail_url = urls(asset.thumbnail_path)
        if asset.proxy_url is None and asset.file_type == "image":
            asset.proxy_url = urls(asset.disk_path)
    return assets


async def fetch_page(
    conn, query: AssetQuery, urls: MediaUrls, parent: tuple[str, UUID] | None = None
) -> AssetPage | None:
    sql, args = page_sql(query, parent)
    raw = await conn.fetchval(sql, *args)
    if raw is None:
        return None
    page = _page.decode(raw)
    enrich(page.items, urls)
    if len(page.items) == query.limit:
        page.next_cursor = encode_cursor(query, page.items[-1])
    return page


async def asset_page_response(
    request: Request, query: AssetQuery, parent: tuple[str, UUID] | None = None
) -> Response:
    async with request.state.pool.acquire() as conn:
        page = await fetch_page(conn, query, media_urls(request), parent)
    if page is None:
        assert parent is not None
        raise NotFound(f"{parent[0][:-1].capitalize()} not found", field="id")
    return json_response(page)


def asset_query(request: Request) -> AssetQuery:
    return parse_query(request, AssetQuery)
