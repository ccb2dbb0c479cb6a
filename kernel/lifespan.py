"""Start-up and shutdown, in order: database -> migrations -> pool -> serve; reversed on exit.

The lifespan owns every resource and yields them as typed state, which Starlette copies into
each request (`request.state.pool`, `request.state.settings`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette

from kernel import db, migrate
from kernel.config import Settings
from kernel.embedded_pg import EmbeddedPostgres

log = logging.getLogger(__name__)

POOL_CLOSE_TIMEOUT_S = 10


class State(TypedDict):
    pool: db.Database
    settings: Settings


@asynccontextmanager
async def lifespan(
    app: Starlette, *, settings: Settings, database: db.Database | None = None
) -> AsyncIterator[State]:
    """`database` given (tests): use it as it is; otherwise start, migrate and pool our own."""
    async with AsyncExitStack() as stack:
        if database is None:
            dsn = settings.database_url or await _start_embedded(settings, stack)
            applied = await asyncio.to_thread(migrate.apply, dsn)
            log.info("database schema up to date (%d migrations applied now)", len(applied))
            pool = await db.create_pool(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
            stack.push_async_callback(_close_pool, pool)
            database = pool
        log.info("BrahmaHub ready")
        yield {"pool": database, "settings": settings}
        log.info("BrahmaHub shutting down")


async def _start_embedded(settings: Settings, stack: AsyncExitStack) -> str:
    server = EmbeddedPostgres(settings.home / "pg", port=settings.embedded_pg_port)
    dsn = await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    return dsn


async def _close_pool(pool: db.Database) -> None:
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)  # type: ignore[attr-defined]
    except TimeoutError:
        log.warning("database connections still busy after %ss; closing them", POOL_CLOSE_TIMEOUT_S)
        pool.terminate()  # type: ignore[attr-defined]
