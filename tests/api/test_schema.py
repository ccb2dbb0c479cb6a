"""The migration: rollback and re-apply, and the counters the triggers maintain."""

from __future__ import annotations

from uuid import uuid4

import psycopg

from kernel import migrate


def test_rollback_then_apply_again(pg_dsn):
    name = f"mig_{uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = pg_dsn.replace("@/postgres?", f"@/{name}?")
    try:
        assert migrate.apply(dsn) == ["0001_catalog"]
        assert migrate.rollback_latest(dsn) == "0001_catalog"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT to_regclass('assets')").fetchone() == (None,)
        assert migrate.apply(dsn) == ["0001_catalog"]
        assert migrate.apply(dsn) == []
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_counters_survive_every_kind_of_change(catalog, conn):
    pid = await catalog.project()
    a, b = await catalog.subject(pid, "A"), await catalog.subject(pid, "B")
    pkg = await catalog.package(a, "p")
    await catalog.link(pkg, b)
    await conn.execute(
        """INSERT INTO assets (package_id, subject_id, filename, file_type, disk_path,
                               file_size_bytes, duration_seconds)
           SELECT $1::uuid, CASE WHEN g % 2 = 0 THEN $2::uuid ELSE $3::uuid END, 'f' || g,
                  CASE WHEN g % 3 = 0 THEN 'video' ELSE 'image' END, '/d/f' || g, g, g * 0.5
           FROM generate_series(1, 60) g""",
        pkg,
        a,
        b,
    )
    assert await catalog.rollups_match_assets()
    await conn.execute("UPDATE assets SET review_status = 'approved' WHERE filename LIKE 'f1%'")
    await conn.execute("UPDATE assets SET file_size_bytes = file_size_bytes * 2, tags = '{x}'")
    await conn.execute(
        "UPDATE assets SET package_id = $1 WHERE filename = 'f7'", await catalog.package(b, "q")
    )
    await conn.execute("DELETE FROM assets WHERE filename LIKE 'f2%'")
    assert await catalog.rollups_match_assets()
    await conn.execute("DELETE FROM subjects WHERE id = $1", a)  # assets' subject_id -> NULL
    assert await catalog.rollups_match_assets()
    # A client cannot write the counters; rebuild_catalog_counters() recomputes everything.
    await conn.execute("UPDATE packages SET file_count = 999, total_size_bytes = 1")
    assert await catalog.rollups_match_assets()
    await conn.execute("DELETE FROM asset_rollups")
    await conn.execute("SELECT rebuild_catalog_counters()")
    assert await catalog.rollups_match_assets()
    await conn.execute("DELETE FROM projects")
    assert await conn.fetchval("SELECT count(*) FROM asset_rollups") == 0


async def test_face_columns_are_typed_from_metadata(catalog, conn):
    pkg = await catalog.package(await catalog.subject(await catalog.project(), "A"), "p")
    await catalog.asset(
        pkg,
        "a.png",
        metadata={
            "face": {
                "yaw": -0.5,
                "pitch": 19.9,
                "sharpness": 3,
                "face_type": "head",
                "source_width": 1920.0,
                "source_height": "tall",
            }
        },
    )
    row = await conn.fetchrow(
        "SELECT yaw, pitch, sharpness, yaw_bin, pitch_bin, face_type, source_width,"
        " source_height FROM assets"
    )
    assert dict(row) == {
        "yaw": -0.5,
        "pitch": 19.9,
        "sharpness": 3.0,
        "yaw_bin": -10,
        "pitch_bin": 10,
        "face_type": "head",
        "source_width": 1920,
        "source_height": None,
    }
