"""`create_app`: the one factory that assembles BrahmaHub. Nothing happens at import time."""

from __future__ import annotations

import importlib
import pkgutil
from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

import handlers
from kernel import db, errors
from kernel.config import Settings
from kernel.lifespan import lifespan
from kernel.media import media_routes


def create_app(
    *, settings: Settings | None = None, database: db.Database | None = None
) -> Starlette:
    """Build the app; the lifespan starts the database when it starts serving.

    `database`: an already-open pool (or test double over one real connection) to use instead
    of starting and migrating one.
    """
    settings = settings or Settings.from_env()
    app = Starlette(
        # /media first: it is the hot path, and route matching is a linear scan.
        routes=[*media_routes(settings), *handler_routes()],
        middleware=_middleware(settings),
        exception_handlers={**errors.exception_handlers(), **db.exception_handlers()},
        lifespan=partial(lifespan, settings=settings, database=database),
    )
    app.state.settings = settings
    return app


def handler_routes() -> list[BaseRoute]:
    """Every handler module's `routes`, mounted the same way (modules named `_x` are helpers)."""
    routes: list[BaseRoute] = []
    for info in sorted(pkgutil.iter_modules(handlers.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{handlers.__name__}.{info.name}")
            routes.extend(module.routes)
    return routes


def _middleware(settings: Settings) -> list[Middleware]:
    # Pure ASGI middleware only: BaseHTTPMiddleware and GZip break zero-copy media responses.
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["*"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length", "ETag"],
        )
    ]
