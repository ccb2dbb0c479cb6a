"""GET /api/openapi.json: OpenAPI 3.1 built from the msgspec types that validate requests.

Query parameters, bodies and responses are the very Structs the handlers decode and encode, so
the document cannot drift from the code; a test checks that every mounted route is described.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers import assets, packages, projects, search, stats, subjects
from handlers._assets import AssetPage, AssetQuery
from handlers._catalog import Package, PackageTypeQuery, Subject
from handlers._common import Deleted, IdList
from handlers.health import Health, app_version
from kernel.errors import ErrorBody
from kernel.http import raw_json_response


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    name: str
    summary: str
    response: Any = None  # None: 204 No Content
    status: int = 200
    query: Any = None
    body: Any = None
    errors: tuple[int, ...] = ()


_ID = (404, 422)
_WRITE = (409, 413, 422)
OPERATIONS: tuple[Op, ...] = (
    Op("get", "/api/health", "health", "Liveness and database check", Health, errors=(503,)),
    Op("get", "/api/openapi.json", "openapi", "This document", dict[str, Any]),
    # projects
    Op(
        "get",
        "/api/projects",
        "list_projects",
        "Projects with counts, newest first",
        list[projects.Project],
    ),
    Op(
        "post",
        "/api/projects",
        "create_project",
        "Create a project",
        projects.Project,
        201,
        body=projects.ProjectCreate,
        errors=_WRITE,
    ),
    Op(
        "post",
        "/api/projects/bulk-delete",
        "bulk_delete_projects",
        "Delete projects by id",
        Deleted,
        body=IdList,
        errors=(400, 413, 422),
    ),
    Op("get", "/api/projects/{id}", "get_project", "One project", projects.Project, errors=_ID),
    Op(
        "put",
        "/api/projects/{id}",
        "update_project",
        "Partial update",
        projects.Project,
        body=projects.ProjectUpdate,
        errors=(400, 404, *_WRITE),
    ),
    Op(
        "delete",
        "/api/projects/{id}",
        "delete_project",
        "Delete with its subjects, packages and assets (files stay)",
        errors=_ID,
    ),
    Op(
        "get",
        "/api/projects/{id}/subjects",
        "project_subjects",
        "The project's subjects",
        list[Subject],
        errors=_ID,
    ),
    Op(
        "get",
        "/api/projects/{id}/packages",
        "project_packages",
        "Packages linked to the project's subjects, newest first",
        list[Package],
        query=PackageTypeQuery,
        errors=_ID,
    ),
    # subjects
    Op(
        "get",
        "/api/subjects",
        "list_subjects",
        "Subjects by name",
        list[Subject],
        query=subjects.SubjectListQuery,
        errors=(422,),
    ),
    Op(
        "post",
        "/api/subjects",
        "create_subject",
        "Create a subject (name normalised)",
        Subject,
        201,
        body=subjects.SubjectCreate,
        errors=_WRITE,
    ),
    Op(
        "post",
        "/api/subjects/bulk-delete",
        "bulk_delete_subjects",
        "Delete subjects by id",
        Deleted,
        body=IdList,
        errors=(400, 413, 422),
    ),
    Op("get", "/api/subjects/{id}", "get_subject", "One subject", Subject, errors=_ID),
    Op(
        "put",
        "/api/subjects/{id}",
        "update_subject",
        "Partial update",
        Subject,
        body=subjects.SubjectUpdate,
        errors=(400, 404, *_WRITE),
    ),
    Op(
        "delete",
        "/api/subjects/{id}",
        "delete_subject",
        "Delete; shared packages pass to another linked subject",
        errors=_ID,
    ),
    Op(
        "get",
        "/api/subjects/{id}/packages",
        "subject_packages",
        "Packages linked to the subject, newest first",
        list[Package],
        query=PackageTypeQuery,
        errors=_ID,
    ),
    Op(
        "get",
        "/api/subjects/{id}/assets",
        "subject_assets",
        "The subject's assets, paginated",
        AssetPage,
        query=AssetQuery,
        errors=_ID,
    ),
    # packages
    Op(
        "get",
        "/api/packages",
        "list_packages",
        "Packages, newest first, paginated",
        packages.PackagePage,
        query=packages.PackageQuery,
        errors=(422,),
    ),
    Op(
        "post",
        "/api/packages",
        "create_package",
        "Create a package",
        Package,
        201,
        body=packages.PackageCreate,
        errors=_WRITE,
    ),
    Op(
        "post",
        "/api/packages/bulk-delete",
        "bulk_delete_packages",
        "Delete packages by id",
        Deleted,
        body=IdList,
        errors=(400, 413, 422),
    ),
    Op(
        "get",
        "/api/packages/{id}",
        "get_package",
        "One package with its linked subjects",
        Package,
        errors=_ID,
    ),
    Op(
        "put",
        "/api/packages/{id}",
        "update_package",
        "Partial update",
        Package,
        body=packages.PackageUpdate,
        errors=(400, 404, *_WRITE),
    ),
    Op(
        "delete",
        "/api/packages/{id}",
        "delete_package",
        "Delete with its assets (files stay)",
        errors=_ID,
    ),
    Op(
        "get",
        "/api/packages/{id}/summary",
        "package_summary",
        "Counts, pose and quality ranges, pose bins",
        packages.PackageSummary,
        errors=_ID,
    ),
    Op(
        "get",
        "/api/packages/{id}/assets",
        "package_assets",
        "The package's assets, paginated",
        AssetPage,
        query=AssetQuery,
        errors=_ID,
    ),
    # assets
    Op(
        "get",
        "/api/assets",
        "list_assets",
        "Assets with aggregates of the whole filtered set",
        AssetPage,
        query=AssetQuery,
        errors=(422,),
    ),
    Op(
        "get",
        "/api/assets/lookup-by-path",
        "lookup_asset",
        "The asset at this disk_path, or null",
        assets.AssetRef | None,
        query=assets.LookupQuery,
        errors=(422,),
    ),
    Op(
        "post",
        "/api/assets/bulk-update",
        "bulk_update_assets",
        "Update assets by ids or by the list's filter",
        assets.BulkUpdateResult,
        body=assets.BulkUpdate,
        errors=(400, 413, 422),
    ),
    Op("get", "/api/assets/{id}", "get_asset", "One asset", assets.Asset, errors=_ID),
    Op(
        "put",
        "/api/assets/{id}",
        "update_asset",
        "Partial update",
        assets.Asset,
        body=assets.AssetUpdate,
        errors=(400, 404, 413, 422),
    ),
    Op("delete", "/api/assets/{id}", "delete_asset", "Delete the row (the file stays)", errors=_ID),
    # search and stats
    Op(
        "get",
        "/api/search",
        "search",
        "Projects, subjects, packages and assets matching q",
        search.SearchResults,
        query=search.SearchQuery,
        errors=(422,),
    ),
    Op("get", "/api/stats/dashboard", "dashboard", "Catalog totals", stats.Dashboard),
)

_PATH_PARAM = re.compile(r"{(\w+)}")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent, never null: drop the null branch and the null default."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if "anyOf" in schema:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        schema = {**branches[0], **rest} if len(branches) == 1 else {**rest, "anyOf": branches}
    return schema


def _query_parameters(struct_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(struct_schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in struct_schema.get("properties", {}).items()
    ]


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Op, refs: dict[Any, dict[str, Any]], comps: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_parameters(comps[op.query.__name__])
    success: dict[str, Any] = (
        {"description": "No Content"}
        if op.response is None
        else {"description": "OK", "content": _json(refs[op.response])}
    )
    responses = {str(op.status if op.response is not None else 204): success}
    for status in sorted(set(op.errors)):
        responses[str(status)] = {"description": "Error", "content": _json(refs[ErrorBody])}
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _json(refs[op.body])}
    return out


@cache
def document() -> bytes:
    used = (t for op in OPERATIONS for t in (op.query, op.body, op.response) if t is not None)
    types = [*dict.fromkeys(used), ErrorBody]
    schemas, comps = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip(types, schemas, strict=True))
    # Health answers 503 with its own shape, not the error body.
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        operation = _operation(op, refs, comps)
        if op.name == "health":
            operation["responses"]["503"] = {
                "description": "Database unavailable",
                "content": _json(refs[Health]),
            }
        paths.setdefault(op.path, {})[op.method] = operation
    return msgspec.json.encode(
        {
            "openapi": "3.1.0",
            "info": {"title": "BrahmaHub API", "version": app_version()},
            "paths": paths,
            "components": {"schemas": comps},
        }
    )


async def openapi(request: Request) -> Response:
    return raw_json_response(document())


routes = [Route("/api/openapi.json", openapi, methods=["GET"], name="openapi")]
