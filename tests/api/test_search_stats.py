"""Search (accent- and case-insensitive, ranked) and the dashboard (maintained totals)."""

from __future__ import annotations

from tests.api.conftest import TS


async def test_search_finds_every_kind_ranked(client, catalog):
    pid = await catalog.project("Renée Studio", project_type="vfx")
    sid = await catalog.subject(pid, "Renee Martin")
    other = await catalog.subject(pid, "Someone Else")
    pkg = await catalog.package(other, "renee_day_2")
    best = await catalog.package(other, "Renee")
    asset = await catalog.asset(pkg, "RENÉE_0001.png")
    r = await client.get("/api/search?q=renee")
    assert r.status_code == 200
    assert r.json() == {
        "projects": [{"id": str(pid), "name": "Renée Studio", "project_type": "vfx"}],
        "subjects": [
            {
                "id": str(sid),
                "name": "Renee Martin",
                "project_id": str(pid),
                "project_name": "Renée Studio",
            }
        ],
        # The exact name ranks first.
        "packages": [
            {
                "id": str(best),
                "name": "Renee",
                "package_type": "atman",
                "subject_id": str(other),
                "subject_name": "Someone Else",
                "project_id": str(pid),
            },
            {
                "id": str(pkg),
                "name": "renee_day_2",
                "package_type": "atman",
                "subject_id": str(other),
                "subject_name": "Someone Else",
                "project_id": str(pid),
            },
        ],
        "assets": [
            {
                "id": str(asset),
                "filename": "RENÉE_0001.png",
                "file_type": "image",
                "package_id": str(pkg),
            }
        ],
    }
    r = await client.get("/api/search?q=renee&limit=1")
    assert [p["name"] for p in r.json()["packages"]] == ["Renee"]


async def test_short_or_wildcard_queries_find_nothing(client, catalog):
    pid = await catalog.project("Alpha")
    await catalog.subject(pid, "A_b")
    empty: dict[str, list[object]] = {"projects": [], "subjects": [], "packages": [], "assets": []}
    assert (await client.get("/api/search?q=a")).json() == empty
    assert (await client.get("/api/search")).json() == empty
    assert (await client.get("/api/search?q=%25%25")).json() == empty  # "%" is literal


async def test_dashboard(client, catalog, conn):
    p1, p2 = await catalog.project("One"), await catalog.project("Two")
    a, b = await catalog.subject(p1, "A"), await catalog.subject(p1, "B")
    c = await catalog.subject(p2, "C")
    shared = await catalog.package(a, "shared", package_type="vfx")
    await catalog.link(shared, b)
    older = await catalog.package(
        c, "older", ingested_at=await conn.fetchval("SELECT now() - interval '1 day'")
    )
    await catalog.asset(shared, "f.png", file_size_bytes=100, review_status="approved")
    await catalog.asset(shared, "g.png", file_size_bytes=50)
    await catalog.asset(older, "v.mov", file_type="video", file_size_bytes=30)
    r = await client.get("/api/stats/dashboard")
    assert r.status_code == 200
    recent = r.json().pop("recent_packages")
    assert r.json() | {"recent_packages": None} == {
        "total_projects": 2,
        "total_subjects": 3,
        "total_packages": 2,
        "total_raw_packages": 1,
        "total_datasets": 1,
        "total_assets": 3,
        "total_size_bytes": 180,
        "assets_by_type": {"image": 2, "video": 1},
        "assets_by_review_status": {"approved": 1, "unreviewed": 2},
        "recent_packages": None,
        # The shared package counts once.
        "storage_by_project": [
            {"project_id": str(p1), "project_name": "One", "total_bytes": 150},
            {"project_id": str(p2), "project_name": "Two", "total_bytes": 30},
        ],
    }
    assert recent[0] == {
        "id": str(shared),
        "subject_id": str(a),
        "subject_name": "A",
        "project_id": str(p1),
        "name": "shared",
        "source_description": None,
        "ingested_at": TS,
        "file_count": 2,
        "total_size_bytes": 150,
        "status": "ingested",
        "package_type": "vfx",
        "picked_up": False,
        "disk_path": None,
        "tags": [],
        "metadata": {},
        "linked_subjects": [{"id": str(a), "name": "A"}, {"id": str(b), "name": "B"}],
        "subject_names": "A, B",
        "subject_ids": f"{a},{b}",
        "project_name": "One",
    }
    assert [p["name"] for p in recent] == ["shared", "older"]


async def test_dashboard_of_empty_catalog(client):
    body = (await client.get("/api/stats/dashboard")).json()
    assert body == {
        "total_projects": 0,
        "total_subjects": 0,
        "total_packages": 0,
        "total_raw_packages": 0,
        "total_datasets": 0,
        "total_assets": 0,
        "total_size_bytes": 0,
        "assets_by_type": {},
        "assets_by_review_status": {},
        "recent_packages": [],
        "storage_by_project": [],
    }
