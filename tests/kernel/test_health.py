"""GET|HEAD /api/health: 200 with the database, 503 within about a second without it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from handlers.health import app_version
from kernel.app import create_app
from kernel.config import Settings
from kernel.embedded_pg import EmbeddedPostgres
from tests.conftest import app_client


async def test_health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "ok", "version": app_version(), "database": "ok"}


async def test_health_head_has_headers_and_no_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/health")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.content == b""


async def test_health_is_503_soon_after_the_database_stops(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", durable=False)
    settings = Settings(database_url=server.start(), home=tmp_path, proxy_dir=tmp_path)
    try:
        async with app_client(create_app(settings=settings)) as client:
            assert (await client.get("/api/health")).status_code == 200
            server.stop(mode="immediate", even_if_reused=True)
            started = time.monotonic()
            response = await client.get("/api/health")
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "status": "unavailable",
        "version": app_version(),
        "database": "unavailable",
    }
    assert elapsed < 1.5
