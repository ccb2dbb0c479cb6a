"""Packages: paginated list and filters, CRUD, link rows, counters, summary."""

from __future__ import annotations

from uuid import uuid4

from tests.api.conftest import TS


def package_body(pkg, sid, subject_name, pid, name, **kw):
    return {
        "id": str(pkg),
        "subject_id": str(sid),
        "subject_name": subject_name,
        "project_id": str(pid),
        "name": name,
        "source_description": None,
        "ingested_at": TS,
        "file_count": 0,
        "total_size_bytes": 0,
        "status": "ingested",
        "package_type": "atman",
        "picked_up": False,
        "disk_path": None,
        "tags": [],
        "metadata": {},
        "linked_subjects": [{"id": str(sid), "name": subject_name}],
        **kw,
    }


async def test_create_links_primary_subject(client, catalog, conn):
    pid = await catalog.project()
    sid = await catalog.subject(pid, "A")
    r = await client.post(
        "/api/packages",
        json={
            "subject_id": str(sid),
            "name": "delivery 1",
            "metadata": {"k": [1]},
            "package_type": "vfx",
            "tags": ["t"],
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body == package_body(
        body["id"],
        sid,
        "A",
        pid,
        "delivery 1",
        source_description="",
        metadata={"k": [1]},
        package_type="vfx",
        tags=["t"],
    )
    assert await conn.fetchval("SELECT count(*) FROM packages_subjects") == 1
    subjects = (await client.get(f"/api/projects/{pid}")).json()
    assert subjects["package_count"] == 1


async def test_counters_follow_assets_and_cannot_be_written(client, catalog):
    pid = await catalog.project()
    sid = await catalog.subject(pid, "A")
    pkg = await catalog.package(sid, "p", file_count=99)
    a = await catalog.asset(pkg, "a.png", file_size_bytes=100)
    await catalog.asset(pkg, "b.png", file_size_bytes=23)
    body = (await client.get(f"/api/packages/{pkg}")).json()
    assert (body["file_count"], body["total_size_bytes"]) == (2, 123)
    await client.delete(f"/api/assets/{a}")
    body = (await client.get(f"/api/packages/{pkg}")).json()
    assert (body["file_count"], body["total_size_bytes"]) == (1, 23)
    assert await catalog.rollups_match_assets()


async def test_list_filters_and_pagination(client, catalog, conn):
    p1, p2 = await catalog.project("P1"), await catalog.project("P2")
    a, b = await catalog.subject(p1, "A"), await catalog.subject(p2, "B")
    ids = []
    for i, (sid, kind, status, name) in enumerate(
        [
            (a, "atman", "ready", "Café delivery"),
            (a, "vfx", "ingested", "faces_01"),
            (b, "vfx", "error", "faces_02"),
        ]
    ):
        at = await conn.fetchval("SELECT now() - make_interval(hours => $1)", i)
        ids.append(
            await catalog.package(sid, name, package_type=kind, status=status, ingested_at=at)
        )

    async def names(query=""):
        r = await client.get(f"/api/packages{query}")
        assert r.status_code == 200
        return [p["name"] for p in r.json()["items"]], r.json()["total"]

    assert await names() == (["Café delivery", "faces_01", "faces_02"], 3)
    assert await names(f"?subject_id={a}") == (["Café delivery", "faces_01"], 2)
    assert await names(f"?project_id={p2}") == (["faces_02"], 1)
    assert await names("?package_type=vfx") == (["faces_01", "faces_02"], 2)
    assert await names("?status=error") == (["faces_02"], 1)
    assert await names("?search=CAFE") == (["Café delivery"], 1)
    assert await names("?search=s_0") == (["faces_01", "faces_02"], 2)
    assert await names("?search=%25") == ([], 0)  # % is literal, not a wildcard
    r = await client.get("/api/packages?limit=1&offset=1")
    assert r.json() == {
        "items": [package_body(ids[1], a, "A", p1, "faces_01", package_type="vfx")],
        "total": 3,
        "offset": 1,
        "limit": 1,
    }


async def test_update_delete_bulk(client, catalog, conn):
    pid = await catalog.project()
    sid = await catalog.subject(pid, "A")
    pkg = await catalog.package(sid, "p", disk_path="/d")
    r = await client.put(
        f"/api/packages/{pkg}",
        json={"status": "ready", "picked_up": True, "disk_path": None, "metadata": {"a": 1}},
    )
    assert r.json() == package_body(
        pkg, sid, "A", pid, "p", status="ready", picked_up=True, metadata={"a": 1}
    )
    r = await client.put(f"/api/packages/{pkg}", json={"status": "done"})
    assert (r.status_code, r.json()["field"]) == (422, "status")
    other = await catalog.package(sid, "q")
    await catalog.asset(other, "x.png")
    assert (await client.delete(f"/api/packages/{pkg}")).status_code == 204
    r = await client.post("/api/packages/bulk-delete", json={"ids": [str(other), str(pkg)]})
    assert r.json() == {"deleted": 1}
    assert await conn.fetchval("SELECT count(*) FROM assets") == 0
    assert await catalog.rollups_match_assets()


async def test_summary(client, catalog):
    pid = await catalog.project()
    sid = await catalog.subject(pid, "A")
    pkg = await catalog.package(
        sid, "p", metadata={"source_video_path": "/src/v.mov", "grid_asset_id": "g1"}
    )

    def face(yaw, pitch, sharp, kind="whole_face"):
        return {
            "face": {
                "yaw": yaw,
                "pitch": pitch,
                "sharpness": sharp,
                "face_type": kind,
                "source_width": 3840,
                "source_height": 2160,
            }
        }

    await catalog.asset(
        pkg, "f1.png", asset_type="aligned", width=512, height=512, metadata=face(-15.0, 2.0, 10.0)
    )
    await catalog.asset(
        pkg,
        "f2.png",
        asset_type="aligned",
        width=512,
        height=512,
        metadata=face(-12.0, 8.0, 20.0, "head"),
    )
    await catalog.asset(
        pkg,
        "f3.png",
        asset_type="aligned",
        width=256,
        height=256,
        metadata=face(25.0, -31.0, 30.0),
        picked_up=True,
    )
    await catalog.asset(pkg, "bad.png", asset_type="aligned", metadata={"face": {"yaw": "x"}})
    await catalog.asset(
        pkg,
        "clip.mov",
        file_type="video",
        asset_type="raw",
        duration_seconds=12.5,
        codec="prores",
        camera="ARRI",
    )
    r = await client.get(f"/api/packages/{pkg}/summary")
    assert r.status_code == 200
    assert r.json() == {
        "package_id": str(pkg),
        "total_assets": 5,
        "video_count": 1,
        "image_count": 4,
        "file_type_counts": {"image": 4, "video": 1},
        "asset_type_counts": {"aligned": 4, "raw": 1},
        "aligned_count": 4,
        "grid_count": 0,
        "plate_count": 0,
        "raw_count": 1,
        "graded_count": 0,
        "proxy_count": 0,
        "metadata_count": 0,
        "picked_up_count": 1,
        "total_duration": 12.5,
        "common_width": 512,
        "common_height": 512,
        "face_types": ["head", "whole_face"],
        "source_width": 3840,
        "source_height": 2160,
        "yaw_min": -15.0,
        "yaw_max": 25.0,
        "pitch_min": -31.0,
        "pitch_max": 8.0,
        "avg_sharpness": 20.0,
        "cameras": ["ARRI"],
        "codecs": ["prores"],
        "source_video_path": "/src/v.mov",
        "source_video_filename": None,
        "grid_asset_id": "g1",
        "pose_data": [{"y": -20, "p": 0, "count": 2}, {"y": 20, "p": -40, "count": 1}],
    }


async def test_summary_of_empty_package_is_zeros(client, catalog):
    pid = await catalog.project()
    pkg = await catalog.package(await catalog.subject(pid, "A"), "p")
    body = (await client.get(f"/api/packages/{pkg}/summary")).json()
    assert (body["total_assets"], body["pose_data"], body["face_types"]) == (0, None, [])
    r = await client.get(f"/api/packages/{uuid4()}/summary")
    assert r.json() == {"detail": "Package not found", "code": "not_found", "field": "id"}
    assert (await client.get(f"/api/packages/{uuid4()}/assets")).status_code == 404
