"""Factories for catalog rows, written straight to the test's transaction (rolled back after)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest


class AnyTimestamp:
    """Equal to any ISO-8601 timestamp string (whole-body asserts with server-made times)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            datetime.fromisoformat(other.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True

    def __repr__(self) -> str:
        return "<any timestamp>"


TS = AnyTimestamp()


@dataclass
class Catalog:
    """Creates rows with sensible defaults; every keyword overrides a column."""

    conn: asyncpg.Connection

    async def _insert(self, table: str, values: dict[str, Any]) -> UUID:
        columns = list(values)
        params = ", ".join(
            f"${i}::text::jsonb" if c == "metadata" else f"${i}" for i, c in enumerate(columns, 1)
        )
        args = [json.dumps(v) if c == "metadata" else v for c, v in values.items()]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({params}) RETURNING id"
        return await self.conn.fetchval(sql, *args)

    async def project(self, name: str = "Project", **kw: Any) -> UUID:
        return await self._insert("projects", {"name": name, **kw})

    async def subject(self, project_id: UUID, name: str = "Subject", **kw: Any) -> UUID:
        return await self._insert("subjects", {"project_id": project_id, "name": name, **kw})

    async def package(self, subject_id: UUID, name: str = "pkg", **kw: Any) -> UUID:
        return await self._insert("packages", {"subject_id": subject_id, "name": name, **kw})

    async def link(self, package_id: UUID, subject_id: UUID) -> None:
        await self.conn.execute(
            "INSERT INTO packages_subjects (package_id, subject_id) VALUES ($1, $2)",
            package_id,
            subject_id,
        )

    async def asset(self, package_id: UUID, filename: str, **kw: Any) -> UUID:
        values = {
            "package_id": package_id,
            "filename": filename,
            "file_type": "image",
            "disk_path": f"/nowhere/{filename}",
            **kw,
        }
        return await self._insert("assets", values)

    async def rollups_match_assets(self) -> bool:
        """The maintained counters equal a recount (the triggers' invariant)."""
        return bool(
            await self.conn.fetchval(
                """
            SELECT NOT EXISTS (
                (SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                        n, size_bytes, duration_seconds FROM asset_rollups
                 EXCEPT
                 SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                        count(*), coalesce(sum(file_size_bytes), 0),
                        coalesce(sum(duration_seconds), 0)
                 FROM assets GROUP BY 1, 2, 3, 4, 5, 6)
                UNION ALL
                (SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                        count(*), coalesce(sum(file_size_bytes), 0),
                        coalesce(sum(duration_seconds), 0)
                 FROM assets GROUP BY 1, 2, 3, 4, 5, 6
                 EXCEPT
                 SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                        n, size_bytes, duration_seconds FROM asset_rollups)
            ) AND NOT EXISTS (
                SELECT 1 FROM packages p
                WHERE p.file_count <> (SELECT count(*) FROM assets a WHERE a.package_id = p.id)
                   OR p.total_size_bytes <> (SELECT coalesce(sum(file_size_bytes), 0)
                                             FROM assets a WHERE a.package_id = p.id)
            )
            """
            )
        )


@pytest.fixture
def catalog(conn: asyncpg.Connection) -> Catalog:
    return Catalog(conn)
