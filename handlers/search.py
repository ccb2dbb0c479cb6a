"""GET /api/search?q=: projects, subjects, packages and assets whose name matches q.

Matching is a case- and accent-insensitive substring (trigram GIN indexes over search_key()),
ranked by trigram similarity, best first. Assets are ranked among their first
ASSET_CANDIDATES matches, so a two-letter query over a million filenames stays fast.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._catalog import AssetRef
from handlers._common import contains_pattern
from kernel.http import json_response, parse_query

MIN_QUERY_LENGTH = 2
ASSET_CANDIDATES = 1000


class SearchQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(max_length=200)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5


class ProjectHit(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    project_type: str


class SubjectHit(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    project_id: UUID
    project_name: str


class PackageHit(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    package_type: str
    subject_id: UUID
    subject_name: str
    project_id: UUID


class SearchResults(msgspec.Struct, kw_only=True):
    projects: list[ProjectHit]
    subjects: list[SubjectHit]
    packages: list[PackageHit]
    assets: list[AssetRef]


# $1 the query, $2 its LIKE pattern, $3 the limit per kind.
SEARCH = f"""
SELECT json_build_object(
  'projects', coalesce((
    SELECT json_agg(json_build_object('id', id, 'name', name, 'project_type', project_type)
                    ORDER BY rank DESC, name, id)
    FROM (SELECT p.*, similarity(search_key(p.name), search_key($1)) AS rank
          FROM projects p WHERE search_key(p.name) LIKE search_key($2)
          ORDER BY rank DESC, p.name, p.id LIMIT $3) x), '[]'),
  'subjects', coalesce((
    SELECT json_agg(json_build_object('id', id, 'name', name, 'project_id', project_id,
                                      'project_name', project_name)
                    ORDER BY rank DESC, name, id)
    FROM (SELECT s.id, s.name, s.project_id, p.name AS project_name,
                 similarity(search_key(s.name), search_key($1)) AS rank
          FROM subjects s JOIN projects p ON p.id = s.project_id
          WHERE search_key(s.name) LIKE search_key($2)
          ORDER BY rank DESC, s.name, s.id LIMIT $3) x), '[]'),
  'packages', coalesce((
    SELECT json_agg(json_build_object('id', id, 'name', name, 'package_type', package_type,
                                      'subject_id', subject_id, 'subject_name', subject_name,
                                      'project_id', project_id)
                    ORDER BY rank DESC, name, id)
    FROM (SELECT k.id, k.name, k.package_type, k.subject_id, s.name AS subject_name,
                 s.project_id, similarity(search_key(k.name), search_key($1)) AS rank
          FROM packages k JOIN subjects s ON s.id = k.subject_id
          WHERE search_key(k.name) LIKE search_key($2)
          ORDER BY rank DESC, k.name, k.id LIMIT $3) x), '[]'),
  'assets', coalesce((
    SELECT json_agg(json_build_object('id', id, 'filename', filename, 'file_type', file_type,
                                      'package_id', package_id)
                    ORDER BY rank DESC, filename, id)
    FROM (SELECT c.*, similarity(search_key(c.filename), search_key($1)) AS rank
          FROM (SELECT a.id, a.filename, a.file_type, a.package_id FROM assets a
                WHERE search_key(a.filename) LIKE search_key($2)
                LIMIT {ASSET_CANDIDATES}) c
          ORDER BY rank DESC, c.filename, c.id LIMIT $3) x), '[]')
)::text
"""

_results = msgspec.json.Decoder(SearchResults)
EMPTY = SearchResults(projects=[], subjects=[], packages=[], assets=[])


async def search(request: Request) -> Response:
    """Up to `limit` of each kind; a query shorter than two characters finds nothing."""
    query = parse_query(request, SearchQuery)
    text = query.q.strip()
    if len(text) < MIN_QUERY_LENGTH:
        return json_response(EMPTY)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(SEARCH, text, contains_pattern(text), query.limit)
    return json_response(_results.decode(raw))


routes = [Route("/api/search", search, methods=["GET"], name="search")]
