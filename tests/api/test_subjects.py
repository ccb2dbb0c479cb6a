"""Subjects: name normalisation, CRUD, counts, packages, assets, the delete hand-over."""

from __future__ import annotations

from uuid import uuid4

import pytest

from handlers.subjects import normalize_name
from tests.api.conftest import TS


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("jo_plaete", "Jo Plaete"),
        ("  o'neil  ", "O'Neil"),
        ("McDonald", "McDonald"),
        ("anne-marie  de_VRIES", "Anne-Marie De VRIES"),
        ("___", ""),
    ],
)
def test_normalize_name(raw, name):
    assert normalize_name(raw) == name


def subject_body(sid, pid, name, **kw):
    return {
        "id": str(sid),
        "project_id": str(pid),
        "name": name,
        "description": None,
        "thumbnail_url": None,
        "notes": None,
        "tags": [],
        "dataset_dir": None,
        "created_at": TS,
        "updated_at": TS,
        "package_count": 0,
        "total_assets": 0,
        "total_size_bytes": 0,
        **kw,
    }


async def test_create_normalises_and_enriches(client, catalog, settings):
    pid = await catalog.project()
    thumb = settings.media_root_paths[0] / "faces" / "jo #1.jpg"
    r = await client.post(
        "/api/subjects",
        json={"project_id": str(pid), "name": "jo_plaete", "thumbnail_url": str(thumb)},
    )
    assert r.status_code == 201
    body = r.json()
    assert body == subject_body(
        body["id"], pid, "Jo Plaete", description="", thumbnail_url="/media/faces/jo%20%231.jpg"
    )


async def test_duplicate_name_in_project_is_409(client, catalog):
    pid = await catalog.project()
    await catalog.subject(pid, "Jo Plaete")
    r = await client.post("/api/subjects", json={"project_id": str(pid), "name": "jo_plaete"})
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"


async def test_missing_project_is_422_naming_it(client):
    r = await client.post("/api/subjects", json={"project_id": str(uuid4()), "name": "x"})
    assert r.status_code == 422
    assert r.json()["field"] == "project_id"


async def test_list_filters_by_project_and_counts(client, catalog):
    p1, p2 = await catalog.project("P1"), await catalog.project("P2")
    a = await catalog.subject(p1, "A")
    b = await catalog.subject(p2, "B")
    pkg = await catalog.package(a, "pkg")
    await catalog.asset(pkg, "x.png", subject_id=a, file_size_bytes=7)
    await catalog.asset(pkg, "y.png", file_size_bytes=1)  # no subject: not counted for A
    r = await client.get(f"/api/subjects?project_id={p1}")
    assert r.json() == [
        subject_body(a, p1, "A", package_count=1, total_assets=1, total_size_bytes=7)
    ]
    names = [s["name"] for s in (await client.get("/api/subjects")).json()]
    assert names == ["A", "B"]
    assert (await client.get(f"/api/subjects/{b}")).json() == subject_body(b, p2, "B")


async def test_update_and_delete(client, catalog):
    pid = await catalog.project()
    sid = await catalog.subject(pid, "A", notes="n")
    r = await client.put(
        f"/api/subjects/{sid}",
        json={"name": "bo_derek", "notes": None, "dataset_dir": "/data/sets/bo"},
    )
    assert r.json() == subject_body(sid, pid, "Bo Derek", dataset_dir="/data/sets/bo")
    assert (await client.delete(f"/api/subjects/{sid}")).status_code == 204
    assert (await client.get(f"/api/subjects/{sid}")).status_code == 404
    r = await client.post("/api/subjects/bulk-delete", json={"ids": [str(uuid4())]})
    assert r.json() == {"deleted": 0}


async def test_deleting_primary_subject_keeps_shared_package(client, catalog, conn):
    pid = await catalog.project()
    a, b = await catalog.subject(pid, "A"), await catalog.subject(pid, "B")
    shared = await catalog.package(a, "shared")
    await catalog.link(shared, b)
    own = await catalog.package(a, "own")
    await catalog.asset(shared, "x.png", subject_id=a)
    await catalog.asset(shared, "y.png", subject_id=b)
    assert (await client.delete(f"/api/subjects/{a}")).status_code == 204
    rows = await conn.fetch("SELECT id, subject_id FROM packages")
    assert [(r["id"], r["subject_id"]) for r in rows] == [(shared, b)]
    assert own not in [r["id"] for r in rows]
    assert await conn.fetchval("SELECT count(*) FROM assets") == 2
    assert await catalog.rollups_match_assets()


async def test_subject_packages_and_assets(client, catalog):
    pid = await catalog.project()
    a, b = await catalog.subject(pid, "A"), await catalog.subject(pid, "B")
    pkg = await catalog.package(b, "pkg", package_type="vfx")
    await catalog.link(pkg, a)
    await catalog.asset(pkg, "mine.png", subject_id=a)
    await catalog.asset(pkg, "theirs.png", subject_id=b)
    packages = (await client.get(f"/api/subjects/{a}/packages")).json()
    assert [p["id"] for p in packages] == [str(pkg)]
    assert packages[0]["linked_subjects"] == [
        {"id": str(a), "name": "A"},
        {"id": str(b), "name": "B"},
    ]
    assert (await client.get(f"/api/subjects/{a}/packages?package_type=atman")).json() == []
    page = (await client.get(f"/api/subjects/{a}/assets")).json()
    assert [i["filename"] for i in page["items"]] == ["mine.png"]
    assert page["total"] == 1
    r = await client.get(f"/api/subjects/{uuid4()}/assets")
    assert r.json() == {"detail": "Subject not found", "code": "not_found", "field": "id"}
    assert (await client.get(f"/api/subjects/{uuid4()}/packages")).status_code == 404
