"""Hand-written SQL migrations in sql/, applied by yoyo under a PostgreSQL advisory lock.

yoyo's own lock is a row in a table: a process killed while holding it leaves the row behind
and every later start times out. An advisory lock belongs to a session, so PostgreSQL drops it
the moment the holder's connection dies. Two instances starting together take turns: the first
applies, the second then finds nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# Any constant unique to this application; "brahmahub" in ASCII, folded into a bigint.
ADVISORY_LOCK_KEY = 0x6272_6168_6D61


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    id: str
    applied: bool


def apply(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; return the ids applied (empty when up to date)."""
    with _locked_backend(dsn) as backend:
        pending = backend.to_apply(read_migrations(str(sql_dir)))
        if pending:
            log.info("applying migrations: %s", ", ".join(m.id for m in pending))
            backend.apply_migrations(pending)
        return [m.id for m in pending]


def rollback_latest(dsn: str, sql_dir: Path = SQL_DIR) -> str | None:
    """Roll back the most recently applied migration; return its id, or None if none is."""
    with _locked_backend(dsn) as backend:
        applied = backend.to_rollback(read_migrations(str(sql_dir)))
        if not applied:
            return None
        latest = applied[:1]
        log.info("rolling back migration %s", latest[0].id)
        backend.rollback_migrations(latest)
        return str(latest[0].id)


def status(dsn: str, sql_dir: Path = SQL_DIR) -> list[MigrationStatus]:
    """Every migration in sql/ in order, and whether it is applied."""
    with _locked_backend(dsn) as backend:
        migrations = read_migrations(str(sql_dir))
        applied = backend.get_applied_migration_hashes()
        return [MigrationStatus(m.id, m.hash in applied) for m in migrations]


@contextmanager
def _locked_backend(dsn: str) -> Iterator[Any]:
    """A yoyo backend, used while holding the advisory lock on a separate connection."""
    with psycopg.connect(dsn, autocommit=True) as guard:
        # Released by PostgreSQL when this connection closes, also when the process is killed.
        guard.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        backend = get_backend(_yoyo_url(dsn))
        try:
            yield backend
        finally:
            backend.connection.close()


def _yoyo_url(dsn: str) -> str:
    """yoyo picks its driver from the scheme; `+psycopg` selects psycopg 3."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return f"postgresql+psycopg://{rest}"
