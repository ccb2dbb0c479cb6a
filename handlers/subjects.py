"""Subjects: /api/subjects (a person in a project), their packages and their assets."""

from __future__ import annotations

from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._assets import AssetQuery, asset_page_response
from handlers._catalog import PACKAGE_ORDER, Package, PackageTypeQuery, Subject, enrich_subjects
from handlers._common import Name, Tags, bulk_delete, delete_by_id, update_by_id
from handlers._media import media_urls
from kernel.errors import NotFound, ValidationFailed
from kernel.http import json_response, parse_query, path_uuid, read_body


def normalize_name(name: str) -> str:
    """`jo_plaete` -> `Jo Plaete`, `o'neil` -> `O'Neil`, but `McDonald` stays `McDonald`.

    Only all-lowercase words are title-cased: a capital the user typed is deliberate.
    """
    words = name.replace("_", " ").split()
    return " ".join(word.title() if word.islower() else word for word in words)


class SubjectCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    project_id: UUID
    name: Name
    description: str | None = ""
    thumbnail_url: str | None = None
    notes: str | None = None
    tags: Tags = []
    dataset_dir: str | None = None


class SubjectUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Partial update: fields left out stay; nullable ones may be set to null."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    thumbnail_url: str | msgspec.UnsetType | None = msgspec.UNSET
    notes: str | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    dataset_dir: str | msgspec.UnsetType | None = msgspec.UNSET


class SubjectListQuery(msgspec.Struct, kw_only=True):
    project_id: UUID | None = None


LIST_SUBJECTS = """
SELECT coalesce(json_agg(s ORDER BY s.name, s.id), '[]')::text
FROM subject_details s
WHERE $1::uuid IS NULL OR s.project_id = $1
"""

GET_SUBJECT = "SELECT row_to_json(s)::text FROM subject_details s WHERE s.id = $1"

INSERT_SUBJECT = """
INSERT INTO subjects (project_id, name, description, thumbnail_url, notes, tags, dataset_dir)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

UPDATE_SUBJECT = """
WITH patch AS (SELECT $2::text::jsonb AS j)
UPDATE subjects s SET
    name = CASE WHEN j ? 'name' THEN j ->> 'name' ELSE s.name END,
    description = CASE WHEN j ? 'description' THEN j ->> 'description' ELSE s.description END,
    thumbnail_url = CASE WHEN j ? 'thumbnail_url' THEN j ->> 'thumbnail_url'
                         ELSE s.thumbnail_url END,
    notes = CASE WHEN j ? 'notes' THEN j ->> 'notes' ELSE s.notes END,
    tags = CASE WHEN j ? 'tags'
                THEN ARRAY(SELECT jsonb_array_elements_text(j -> 'tags')) ELSE s.tags END,
    dataset_dir = CASE WHEN j ? 'dataset_dir' THEN j ->> 'dataset_dir' ELSE s.dataset_dir END
FROM patch
WHERE s.id = $1
RETURNING s.id
"""

DELETE_SUBJECT = "DELETE FROM subjects WHERE id = $1 RETURNING id"
BULK_DELETE_SUBJECTS = (
    "WITH d AS (DELETE FROM subjects WHERE id = ANY($1) RETURNING 1) SELECT count(*) FROM d"
)

SUBJECT_PACKAGES = f"""
SELECT CASE WHEN EXISTS (SELECT 1 FROM subjects WHERE id = $1) THEN
    coalesce((SELECT json_agg(p ORDER BY {PACKAGE_ORDER})
              FROM package_details p
              WHERE p.id IN (SELECT package_id FROM packages_subjects WHERE subject_id = $1)
                AND ($2::text IS NULL OR p.package_type = $2)), '[]')::text
END
"""

_subject = msgspec.json.Decoder(Subject)
_subjects = msgspec.json.Decoder(list[Subject])
_packages = msgspec.json.Decoder(list[Package])


async def fetch_subject(conn, subject_id: UUID, request: Request) -> Subject:
    raw = await conn.fetchval(GET_SUBJECT, subject_id)
    if raw is None:
        raise NotFound("Subject not found", field="id")
    return enrich_subjects([_subject.decode(raw)], media_urls(request))[0]


async def list_subjects(request: Request) -> Response:
    query = parse_query(request, SubjectListQuery)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(LIST_SUBJECTS, query.project_id)
    return json_response(enrich_subjects(_subjects.decode(raw), media_urls(request)))


async def get_subject(request: Request) -> Response:
    subject_id = path_uuid(request)
    async with request.state.pool.acquire() as conn:
        return json_response(await fetch_subject(conn, subject_id, request))


async def create_subject(request: Request) -> Response:
    body = await read_body(request, SubjectCreate)
    name = _checked_name(body.name)
    async with request.state.pool.acquire() as conn, conn.transaction():
        new_id = await conn.fetchval(
            INSERT_SUBJECT,
            body.project_id,
            name,
            body.description,
            body.thumbnail_url,
            body.notes,
            body.tags,
            body.dataset_dir,
        )
        return json_response(await fetch_subject(conn, new_id, request), 201)


async def update_subject(request: Request) -> Response:
    subject_id = path_uuid(request)
    body = await read_body(request, SubjectUpdate)
    if isinstance(body.name, str):
        body.name = _checked_name(body.name)
    return await update_by_id(
        request,
        subject_id,
        body,
        UPDATE_SUBJECT,
        "Subject",
        lambda conn, row_id: fetch_subject(conn, row_id, request),
    )


async def delete_subject(request: Request) -> Response:
    """Packages shared with other subjects are handed over to one of them, not deleted."""
    return await delete_by_id(request, DELETE_SUBJECT, "Subject")


async def bulk_delete_subjects(request: Request) -> Response:
    return await bulk_delete(request, BULK_DELETE_SUBJECTS)


async def subject_packages(request: Request) -> Response:
    """Every package the subject is linked to (primary or not), newest first."""
    subject_id = path_uuid(request)
    query = parse_query(request, PackageTypeQuery)
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(SUBJECT_PACKAGES, subject_id, query.package_type)
    if raw is None:
        raise NotFound("Subject not found", field="id")
    return json_response(_packages.decode(raw))


async def subject_assets(request: Request) -> Response:
    """Assets of this subject across all its packages (assets.subject_id)."""
    subject_id = path_uuid(request)
    query = parse_query(request, AssetQuery)
    query.subject_id = subject_id
    return await asset_page_response(request, query, parent=("subjects", subject_id))


def _checked_name(raw: str) -> str:
    name = normalize_name(raw)
    if not name:
        raise ValidationFailed("name must not be blank", field="name")
    return name


routes = [
    Route("/api/subjects", list_subjects, methods=["GET"], name="list_subjects"),
    Route("/api/subjects", create_subject, methods=["POST"], name="create_subject"),
    Route(
        "/api/subjects/bulk-delete",
        bulk_delete_subjects,
        methods=["POST"],
        name="bulk_delete_subjects",
    ),
    Route("/api/subjects/{id}", get_subject, methods=["GET"], name="get_subject"),
    Route("/api/subjects/{id}", update_subject, methods=["PUT"], name="update_subject"),
    Route("/api/subjects/{id}", delete_subject, methods=["DELETE"], name="delete_subject"),
    Route(
        "/api/subjects/{id}/packages", subject_packages, methods=["GET"], name="subject_packages"
    ),
    Route("/api/subjects/{id}/assets", subject_assets, methods=["GET"], name="subject_assets"),
]
