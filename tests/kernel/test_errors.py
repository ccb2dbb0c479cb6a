"""Every error leaves as the one JSON shape: routing, API, database errors and crashes."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.requests import Request
from starlette.responses import Response

from kernel.app import create_app
from kernel.config import Settings
from kernel.errors import NotFound
from tests.conftest import OneConnection, app_client


async def test_unknown_route_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": "No route for GET /api/nothing-here",
        "code": "not_found",
        "field": None,
    }


async def test_wrong_method_is_405_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/health")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert response.json() == {
        "detail": "Method POST is not allowed on /api/health",
        "code": "method_not_allowed",
        "field": None,
    }


async def _raise_api_error(request: Request) -> Response:
    raise NotFound("Project not found", field="id")


async def _crash(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def _duplicate(request: Request) -> Response:
    async with request.state.pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE t_unique (name text UNIQUE)")
        await conn.execute("INSERT INTO t_unique VALUES ('a'), ('a')")
    return Response()


async def _bad_uuid(request: Request) -> Response:
    async with request.state.pool.acquire() as conn:
        await conn.execute("SELECT 'not-a-uuid'::uuid")
    return Response()


async def test_api_database_and_unexpected_errors_share_the_shape(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    app = create_app(settings=settings, database=OneConnection(conn))
    app.add_route("/t/api-error", _raise_api_error)
    app.add_route("/t/crash", _crash)
    app.add_route("/t/duplicate", _duplicate)
    app.add_route("/t/bad-uuid", _bad_uuid)
    async with app_client(app, raise_app_exceptions=False) as client:
        api_error = await client.get("/t/api-error")
        duplicate = await client.get("/t/duplicate")
        bad_uuid = await client.get("/t/bad-uuid")
        crash = await client.get("/t/crash")
    assert (api_error.status_code, api_error.json()) == (
        404,
        {"detail": "Project not found", "code": "not_found", "field": "id"},
    )
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"detail": "A record with this name already exists", "code": "conflict", "field": "name"},
    )
    assert bad_uuid.status_code == 422
    assert bad_uuid.json()["code"] == "validation_error"
    assert bad_uuid.json()["detail"].startswith("Rejected by the database: invalid input syntax")
    assert (crash.status_code, crash.json()) == (
        500,
        {"detail": "Internal server error", "code": "internal_error", "field": None},
    )
    assert "secret" not in crash.text
