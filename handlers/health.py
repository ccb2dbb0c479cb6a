"""GET|HEAD /api/health: what curl probes, Traefik and the SPA's version poll read."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import db


def app_version() -> str:
    try:
        return version("brahmahub")
    except PackageNotFoundError:
        return "0.0.0-dev"


class Health(msgspec.Struct):
    status: str
    version: str
    database: str


async def health(request: Request) -> Response:
    """200 when the database answers within a second, else 503; never cached."""
    ok = await db.ping(request.state.pool)
    body = Health(
        status="ok" if ok else "unavailable",
        version=app_version(),
        database="ok" if ok else "unavailable",
    )
    return Response(
        msgspec.json.encode(body),
        status_code=200 if ok else 503,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


routes = [Route("/api/health", health, methods=["GET", "HEAD"], name="health")]
