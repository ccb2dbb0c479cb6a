"""Shared fixtures: one real embedded PostgreSQL per session, one rolled-back transaction per test.

Async tests run on anyio's asyncio backend and are marked automatically.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from kernel import db, migrate
from kernel.app import create_app
from kernel.config import Settings
from kernel.embedded_pg import EmbeddedPostgres


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark coroutine tests for anyio before they are parametrized (marking later is too late
    for tests that also carry @pytest.mark.parametrize)."""
    if inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """The session's PostgreSQL: the same embedded server the app uses, without fsync."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: EmbeddedPostgres) -> str:
    """DSN of the session database with every migration applied."""
    migrate.apply(pg_server.dsn)
    return pg_server.dsn


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    connection = await asyncpg.connect(pg_dsn)
    await db.init_connection(connection)
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


class OneConnection:
    """A pool of exactly one (real) connection, so the app works inside the test's transaction.

    Each acquisition is a savepoint, so a statement that fails (a 409, say) leaves the test's
    transaction usable, as a fresh pooled connection would be. Handlers' own transactions nest
    as savepoints too; concurrent requests wait their turn.
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lock, self._connection.transaction():
            yield self._connection


@pytest.fixture
def settings(tmp_path: Path, pg_dsn: str) -> Settings:
    media, proxies = tmp_path / "media", tmp_path / "proxies"
    media.mkdir()
    proxies.mkdir()
    return Settings(
        database_url=pg_dsn,
        home=tmp_path / "home",
        media_root_paths=(media,),
        proxy_dir=proxies,
    )


class _WithState:
    """Hand the lifespan's state to each request, as a server does (httpx does not)."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(self.state)}
        await self.app(scope, receive, send)


@asynccontextmanager
async def app_client(
    app: Any, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that talks to `app` in-process, with the app's lifespan run around it.

    A crash is re-raised into the test unless `raise_app_exceptions` is False, in which case
    the client sees the 500 response a server would send.
    """
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(
            app=_WithState(app, state), raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(settings: Settings, conn: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (its lifespan included) on the test's connection."""
    async with app_client(create_app(settings=settings, database=OneConnection(conn))) as c:
        yield c
