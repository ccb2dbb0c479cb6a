"""Projects: /api/projects (a client engagement; the top of Project > Subject > Package > Asset)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._catalog import (
    PACKAGE_ORDER,
    Package,
    PackageTypeQuery,
    Subject,
    enrich_subjects,
)
from handlers._common import (
    Name,
    ProjectType,
    ShortText,
    Tags,
    bulk_delete,
    delete_by_id,
    update_by_id,
)
from handlers._media import media_urls
from kernel.errors import NotFound
from kernel.http import json_response, parse_query, path_uuid, read_body


class Project(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    description: str | None
    project_type: str
    client: str | None
    notes: str | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    subject_count: int
    package_count: int
    total_assets: int
    total_size_bytes: int


class ProjectCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    description: str | None = ""
    project_type: ProjectType = "atman"
    client: ShortText | None = None
    notes: str | None = None
    tags: Tags = []


class ProjectUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Partial update: fields left out stay; nullable ones may be set to null."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    project_type: ProjectType | msgspec.UnsetType = msgspec.UNSET
    client: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    notes: str | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET


LIST_PROJECTS = """
SELECT coalesce(json_agg(p ORDER BY p.created_at DESC, p.id DESC), '[]')::text
FROM project_details p
"""

GET_PROJECT = "SELECT row_to_json(p)::text FROM project_details p WHERE p.id = $1"

INSERT_PROJECT = """
INSERT INTO projects (name, description, project_type, client, notes, tags)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""

# $2 is the patch as JSON: a key that is present is applied, even with a null value.
UPDATE_PROJECT = """
WITH patch AS (SELECT $2::text::jsonb AS j)
UPDATE projects p SET
    name = CASE WHEN j ? 'name' THEN j ->> 'name' ELSE p.name END,
    description = CASE WHEN j ? 'description' THEN j ->> 'description' ELSE p.description END,
    project_type = CASE WHEN j ? 'project_type' THEN j ->> 'project_type' ELSE p.project_type END,
    client = CASE WHEN j ? 'client' THEN j ->> 'client' ELSE p.client END,
    notes = CASE WHEN j ? 'notes' THEN j ->> 'notes' ELSE p.notes END,
    tags = CASE WHEN j ? 'tags'
                THEN ARRAY(SELECT jsonb_array_elements_text(j -> 'tags')) ELSE p.tags END
FROM patch
WHERE p.id = $1
RETURNING p.id
"""

DELETE_PROJECT = "DELETE FROM projects WHERE id = $1 RETURNING id"
BULK_DELETE_PROJECTS = (
    "WITH d AS (DELETE FROM projects WHERE id = ANY($1) RETURNING 1) SELECT count(*) FROM d"
)

# NULL when the project does not exist, so one query answers both "404?" and "which rows?".
PROJECT_SUBJECTS = """
SELECT CASE WHEN EXISTS (SELECT 1 FROM projects WHERE id = $1) THEN
    coalesce((SELECT json_agg(s ORDER BY s.name, s.id)
              FROM subject_details s WHERE s.project_id = $1), '[]')::text
END
"""

PROJECT_PACKAGES = f"""
SELECT CASE WHEN EXISTS (SELECT 1 FROM projects WHERE id = $1) THEN
    coalesce((SELECT json_agg(p ORDER BY {PACKAGE_ORDER})
              FROM package_details p
              WHERE p.id IN (SELECT ps.package_id FROM packages_subjects ps
                             JOIN subjects s ON s.id = ps.subject_id WHERE s.project_id = $1)
                AND ($2::text IS NULL OR p.package_type = $2)), '[]')::text
END
"""

_projects = msgspec.json.Decoder(list[Project])
_project = msgspec.json.Decoder(Project)
_packages = msgspec.json.Decoder(list[Package])
_subjects = msgspec.json.Decoder(list[Subject])


async def fetch_project(conn, project_id: UUID) -> Project:
    raw = await conn.fetchval(GET_PROJECT, project_id)
    if raw is None:
        raise NotFound("Project not found", field="id")
    return _project.decode(raw)


async def list_projects(request: Request) -> Response:
    """Every project with its counts, newest first (projects are few; no pagination)."""
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(LIST_PROJECTS)
    return json_response(_projects.decode(raw))


async def get_project(request: Request) -> Response:
    project_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        return json_response(await fetch_project(conn, project_id))


async def create_project(request: Request) -> Response:
    body = await read_body(request, ProjectCreate)
    async with request.state.pool.acquire() as conn, conn.transaction():
        new_id = await conn.fetchval(
            INSERT_PROJECT,
            body.name,
            body.description,
            body.project_type,
            body.client,
            body.notes,
            body.tags,
        )
        return json_response(await fetch_project(conn, new_id), 201)


async def update_project(request: Request) -> Response:
    project_id = path_uuid(request)
    body = await read_body(request, ProjectUpdate)
    return await update_by_id(request, project_id, body, UPDATE_PROJECT, "Project", fetch_project)


async def delete_project(request: Request) -> Response:
    """Deletes the project's subjects, packages and assets in one transaction; files stay."""
    return await delete_by_id(request, DELETE_PROJECT, "Project")


async def bulk_delete_projects(request: Request) -> Response:
    return await bulk_delete(request, BULK_DELETE_PROJECTS)


async def project_subjects(request: Request) -> Response:
    project_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(PROJECT_SUBJECTS, project_id)
    if raw is None:
        raise NotFound("Project not found", field="id")
    return json_response(enrich_subjects(_subjects.decode(raw), media_urls(request)))


async def project_packages(request: Request) -> Response:
    """Packages linked to any subject of the project, each once, newest first."""
    project_id = path_uuid(request)
    query = parse_query(request, PackageTypeQuery)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(PROJECT_PACKAGES, project_id, query.package_type)
    if raw is None:
        raise NotFound("Project not found", field="id")
    return json_response(_packages.decode(raw))


routes = [
    Route("/api/projects", list_projects, methods=["GET"], name="list_projects"),
    Route("/api/projects", create_project, methods=["POST"], name="create_project"),
    Route(
        "/api/projects/bulk-delete",
        bulk_delete_projects,
        methods=["POST"],
        name="bulk_delete_projects",
    ),
    Route("/api/projects/{id}", get_project, methods=["GET"], name="get_project"),
    Route("/api/projects/{id}", update_project, methods=["PUT"], name="update_project"),
    Route("/api/projects/{id}", delete_project, methods=["DELETE"], name="delete_project"),
    Route(
        "/api/projects/{id}/subjects", project_subjects, methods=["GET"], name="project_subjects"
    ),
    Route(
        "/api/projects/{id}/packages", project_packages, methods=["GET"], name="project_packages"
    ),
]
