"""Projects: CRUD, counts, nested lists, cascading delete."""

from __future__ import annotations

from uuid import uuid4

from tests.api.conftest import TS


def project_body(pid, name, **kw):
    return {
        "id": str(pid),
        "name": name,
        "description": None,
        "project_type": "atman",
        "client": None,
        "notes": None,
        "tags": [],
        "created_at": TS,
        "updated_at": TS,
        "subject_count": 0,
        "package_count": 0,
        "total_assets": 0,
        "total_size_bytes": 0,
        **kw,
    }


async def test_create_then_get(client):
    r = await client.post("/api/projects", json={"name": "Atlas", "tags": ["x"], "client": "ACME"})
    assert r.status_code == 201
    body = r.json()
    assert body == project_body(body["id"], "Atlas", description="", tags=["x"], client="ACME")
    r = await client.get(f"/api/projects/{body['id']}")
    assert r.status_code == 200
    assert r.json() == body


async def test_list_newest_first_with_counts(client, catalog, conn):
    old = await catalog.project(
        "Old", created_at=await conn.fetchval("SELECT now() - interval '1 day'")
    )
    new = await catalog.project("New", project_type="vfx")
    s1 = await catalog.subject(new, "A")
    s2 = await catalog.subject(new, "B")
    p1 = await catalog.package(s1, "p1")
    await catalog.link(p1, s2)  # shared package: counted once
    await catalog.asset(p1, "a.png", file_size_bytes=10)
    await catalog.asset(p1, "b.png", file_size_bytes=5)
    r = await client.get("/api/projects")
    assert r.status_code == 200
    assert r.json() == [
        project_body(
            new,
            "New",
            project_type="vfx",
            subject_count=2,
            package_count=1,
            total_assets=2,
            total_size_bytes=15,
        ),
        project_body(old, "Old"),
    ]


async def test_update_is_partial_and_can_null(client, catalog):
    pid = await catalog.project("P", client="C", notes="n", tags=["a"])
    r = await client.put(f"/api/projects/{pid}", json={"notes": None, "project_type": "vfx"})
    assert r.status_code == 200
    assert r.json() == project_body(pid, "P", client="C", tags=["a"], project_type="vfx")


async def test_update_without_fields_is_400(client, catalog):
    pid = await catalog.project("P")
    r = await client.put(f"/api/projects/{pid}", json={})
    assert r.status_code == 400
    assert r.json() == {"detail": "No fields to update", "code": "bad_request", "field": None}


async def test_delete_cascades_in_one_go(client, catalog, conn):
    pid = await catalog.project("P")
    sid = await catalog.subject(pid, "S")
    pkg = await catalog.package(sid, "p")
    await catalog.asset(pkg, "a.png")
    r = await client.delete(f"/api/projects/{pid}")
    assert (r.status_code, r.content) == (204, b"")
    assert await conn.fetchval("SELECT count(*) FROM assets") == 0
    assert await conn.fetchval("SELECT count(*) FROM asset_rollups") == 0
    assert (await client.delete(f"/api/projects/{pid}")).status_code == 404


async def test_bulk_delete_counts_only_existing(client, catalog):
    a, b = await catalog.project("A"), await catalog.project("B")
    r = await client.post("/api/projects/bulk-delete", json={"ids": [str(a), str(b), str(uuid4())]})
    assert (r.status_code, r.json()) == (200, {"deleted": 2})
    r = await client.post("/api/projects/bulk-delete", json={"ids": []})
    assert r.json() == {"detail": "No IDs provided", "code": "bad_request", "field": "ids"}


async def test_project_subjects_and_packages(client, catalog, conn):
    pid = await catalog.project("P")
    zed = await catalog.subject(pid, "Zed", thumbnail_url="/nowhere/t.jpg")
    amy = await catalog.subject(pid, "Amy")
    older = await catalog.package(
        zed, "older", ingested_at=await conn.fetchval("SELECT now() - interval '1 hour'")
    )
    newer = await catalog.package(amy, "newer", package_type="vfx")
    subjects = (await client.get(f"/api/projects/{pid}/subjects")).json()
    assert [s["name"] for s in subjects] == ["Amy", "Zed"]
    assert subjects[1]["thumbnail_url"] == "/nowhere/t.jpg"  # no media root holds it
    packages = (await client.get(f"/api/projects/{pid}/packages")).json()
    assert [(p["id"], p["subject_name"]) for p in packages] == [
        (str(newer), "Amy"),
        (str(older), "Zed"),
    ]
    vfx = (await client.get(f"/api/projects/{pid}/packages?package_type=vfx")).json()
    assert [p["id"] for p in vfx] == [str(newer)]


async def test_unknown_project_subresources_are_404(client):
    for path in ("", "/subjects", "/packages"):
        r = await client.get(f"/api/projects/{uuid4()}{path}")
        assert r.status_code == 404
        assert r.json() == {"detail": "Project not found", "code": "not_found", "field": "id"}
