"""Assets: the page (filters, sorts, offset and cursor, aggregates), updates, lookups, URLs."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.api.conftest import TS

EMPTY_COUNTS = {"unreviewed": 0, "approved": 0, "rejected": 0, "flagged": 0}


@pytest.fixture
async def world(catalog, settings):
    """Two projects; a VFX package of face crops and an ATMAN package of clips."""
    media, proxies = settings.media_root_paths[0], settings.proxy_dir
    p1, p2 = await catalog.project("P1"), await catalog.project("P2")
    amy, bob = await catalog.subject(p1, "Amy"), await catalog.subject(p2, "Bob")
    faces = await catalog.package(amy, "faces", package_type="vfx")
    clips = await catalog.package(bob, "clips")

    def face(yaw, pitch, sharpness):
        return {"face": {"yaw": yaw, "pitch": pitch, "sharpness": sharpness}}

    ids = {
        "f1": await catalog.asset(
            faces,
            "a/f1.png",
            subject_id=amy,
            asset_type="aligned",
            file_size_bytes=100,
            metadata=face(-15.0, 5.0, 40.0),
            tags=["Amy", "aligned"],
            disk_path=f"{media}/faces/a/f1 #1.png",
            thumbnail_path=f"{proxies}/faces/f1.jpg",
        ),
        "f2": await catalog.asset(
            faces,
            "a/f2.png",
            subject_id=amy,
            asset_type="aligned",
            file_size_bytes=200,
            metadata=face(12.0, -3.0, 80.0),
            tags=["Amy", "aligned", "best"],
            review_status="approved",
            picked_up=True,
        ),
        "g1": await catalog.asset(
            faces,
            "grid.png",
            subject_id=amy,
            asset_type="grid",
            file_size_bytes=50,
            disk_path="/elsewhere/grid.png",
        ),
        "c1": await catalog.asset(
            clips,
            "day1/clip_b.mov",
            subject_id=bob,
            file_type="video",
            asset_type="raw",
            file_size_bytes=1000,
            duration_seconds=10.5,
            review_status="flagged",
            proxy_path=f"{proxies}/clips/clip_b.mp4",
        ),
        "c2": await catalog.asset(
            clips,
            "day1/clip_a.mov",
            subject_id=bob,
            file_type="video",
            asset_type="graded",
            file_size_bytes=3000,
            duration_seconds=2.0,
            review_status="rejected",
        ),
    }
    return {"faces": faces, "clips": clips, "amy": amy, "bob": bob, "p1": p1, "p2": p2, **ids}


async def names(client, query="", path="/api/assets"):
    r = await client.get(f"{path}{query}")
    assert r.status_code == 200, r.text
    return [i["filename"] for i in r.json()["items"]]


async def test_whole_page_body(client, world, settings):
    r = await client.get(f"/api/assets?package_id={world['faces']}&limit=1")
    assert r.status_code == 200
    assert r.json() == {
        "items": [
            {
                "id": str(world["f1"]),
                "package_id": str(world["faces"]),
                "subject_id": str(world["amy"]),
                "filename": "a/f1.png",
                "file_type": "image",
                "asset_type": "aligned",
                "mime_type": None,
                "file_size_bytes": 100,
                "disk_path": f"{settings.media_root_paths[0]}/faces/a/f1 #1.png",
                "proxy_path": None,
                "thumbnail_path": f"{settings.proxy_dir}/faces/f1.jpg",
                # An image without a proxy plays its original; "#" and " " are percent-encoded.
                "proxy_url": "/media/faces/a/f1%20%231.png",
                "thumbnail_url": "/media/faces/f1.jpg",
                "width": None,
                "height": None,
                "duration_seconds": None,
                "codec": None,
                "camera": None,
                "review_status": "unreviewed",
                "is_on_disk": True,
                "picked_up": False,
                "tags": ["Amy", "aligned"],
                "notes": None,
                "metadata": {"face": {"yaw": -15.0, "pitch": 5.0, "sharpness": 40.0}},
                "yaw": -15.0,
                "pitch": 5.0,
                "sharpness": 40.0,
                "created_at": TS,
            }
        ],
        "total": 3,
        "offset": 0,
        "limit": 1,
        "video_count": 0,
        "image_count": 3,
        "total_size_bytes": 350,
        "total_duration_seconds": 0.0,
        "picked_up_count": 1,
        "by_review_status": {**EMPTY_COUNTS, "unreviewed": 2, "approved": 1},
        "next_cursor": r.json()["next_cursor"],
    }
    assert isinstance(r.json()["next_cursor"], str)


async def test_outside_roots_have_no_url(client, world):
    items = {i["filename"]: i for i in (await client.get("/api/assets")).json()["items"]}
    assert items["grid.png"]["proxy_url"] is None
    assert items["day1/clip_b.mov"]["proxy_url"] == "/media/clips/clip_b.mp4"


async def test_aggregates_cover_the_whole_set_even_on_an_empty_page(client, world):
    body = (await client.get("/api/assets?offset=100")).json()
    assert body["items"] == []
    assert {
        k: body[k]
        for k in (
            "total",
            "video_count",
            "image_count",
            "total_size_bytes",
            "total_duration_seconds",
            "picked_up_count",
        )
    } == {
        "total": 5,
        "video_count": 2,
        "image_count": 3,
        "total_size_bytes": 4350,
        "total_duration_seconds": 12.5,
        "picked_up_count": 1,
    }
    assert body["by_review_status"] == {"unreviewed": 2, "approved": 1, "rejected": 1, "flagged": 1}
    assert body["next_cursor"] is None


async def test_scan_aggregates_equal_rollup_aggregates(client, world):
    # search="" adds nothing; a search matching everything forces the scan path.
    keys = (
        "total",
        "video_count",
        "image_count",
        "total_size_bytes",
        "total_duration_seconds",
        "picked_up_count",
        "by_review_status",
    )
    rollup = (await client.get("/api/assets?limit=1")).json()
    scan = (await client.get("/api/assets?limit=1&search=.")).json()
    assert {k: rollup[k] for k in keys} == {k: scan[k] for k in keys}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["a/f1.png", "a/f2.png", "day1/clip_a.mov", "day1/clip_b.mov", "grid.png"]),
        ("?file_type=video", ["day1/clip_a.mov", "day1/clip_b.mov"]),
        ("?file_type=aligned", ["a/f1.png", "a/f2.png"]),
        ("?file_type=video&asset_type=grid", ["grid.png"]),  # asset_type wins
        ("?asset_type=raw", ["day1/clip_b.mov"]),
        ("?review_status=flagged", ["day1/clip_b.mov"]),
        ("?picked_up=true", ["a/f2.png"]),
        ("?picked_up=false&file_type=image", ["a/f1.png", "grid.png"]),
        ("?tags=aligned", ["a/f1.png", "a/f2.png"]),
        ("?tags=aligned,best", ["a/f2.png"]),
        ("?search=CLIP_", ["day1/clip_a.mov", "day1/clip_b.mov"]),
        ("?search=%25", []),
        ("?pose_bins=-20:0", ["a/f1.png"]),
        ("?pose_bins=-20:0,10:-10,junk", ["a/f1.png", "a/f2.png"]),
        ("?yaw_min=0", ["a/f2.png"]),
        ("?yaw_max=0", ["a/f1.png"]),
        ("?pitch_min=0", ["a/f1.png"]),
        ("?pitch_max=0", ["a/f2.png"]),
        ("?min_sharpness=50", ["a/f2.png"]),
    ],
)
async def test_filters(client, world, query, expected):
    assert await names(client, query) == expected


async def test_id_filters(client, world):
    assert await names(client, f"?package_id={world['clips']}") == [
        "day1/clip_a.mov",
        "day1/clip_b.mov",
    ]
    assert await names(client, f"?subject_id={world['amy']}") == [
        "a/f1.png",
        "a/f2.png",
        "grid.png",
    ]
    assert await names(client, f"?project_id={world['p2']}") == [
        "day1/clip_a.mov",
        "day1/clip_b.mov",
    ]
    assert (
        await names(client, f"?subject_id={world['bob']}", f"/api/packages/{world['faces']}/assets")
        == []
    )
    assert await names(client, "?pose_bins=10:-10", f"/api/packages/{world['faces']}/assets") == [
        "a/f2.png"
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?sort=size", ["grid.png", "a/f1.png", "a/f2.png", "day1/clip_b.mov", "day1/clip_a.mov"]),
        (
            "?sort=size&order=desc",
            ["day1/clip_a.mov", "day1/clip_b.mov", "a/f2.png", "a/f1.png", "grid.png"],
        ),
        ("?sort=duration", ["day1/clip_a.mov", "day1/clip_b.mov"]),
        ("?sort=sharpness&order=desc", ["a/f2.png", "a/f1.png"]),
        (
            "?sort=filename&order=desc",
            ["grid.png", "day1/clip_b.mov", "day1/clip_a.mov", "a/f2.png", "a/f1.png"],
        ),
    ],
)
async def test_sorts(client, world, query, expected):
    # NULLs sort last ascending and first descending; compare the non-null part.
    got = await names(client, query)
    assert [n for n in got if n in expected] == expected


@pytest.mark.parametrize("sort", ["filename", "created_at", "size", "duration", "sharpness"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_cursor_walk_equals_offset_pages(client, world, catalog, sort, order):
    # Equal sort values and NULLs: the id tiebreaker must keep pages disjoint and complete.
    for i in range(4):
        await catalog.asset(
            world["clips"],
            f"same_{i}.mov",
            file_type="video",
            file_size_bytes=1000,
            duration_seconds=2.0,
        )
    everything = await names(client, f"?sort={sort}&order={order}&limit=500")
    walked, cursor = [], None
    while True:
        query = f"?sort={sort}&order={order}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(f"/api/assets{query}")).json()
        walked += [i["filename"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert walked == everything
    assert len(everything) == 9


async def test_cursor_must_match_sort(client, world):
    cursor = (await client.get("/api/assets?limit=1")).json()["next_cursor"]
    r = await client.get(f"/api/assets?limit=1&sort=size&cursor={cursor}")
    assert r.json() == {
        "detail": "cursor: it was made for another sort or order",
        "code": "validation_error",
        "field": "cursor",
    }
    r = await client.get(f"/api/assets?limit=1&offset=1&cursor={cursor}")
    assert (r.status_code, r.json()["field"]) == (422, "offset")


async def test_get_update_delete(client, world, catalog):
    r = await client.put(
        f"/api/assets/{world['g1']}",
        json={"review_status": "approved", "tags": ["x"], "notes": "ok", "is_on_disk": False},
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["review_status"], body["tags"], body["notes"], body["is_on_disk"]) == (
        "approved",
        ["x"],
        "ok",
        False,
    )
    assert (await client.get(f"/api/assets/{world['g1']}")).json() == body
    r = await client.put(f"/api/assets/{world['g1']}", json={"notes": None})
    assert r.json()["notes"] is None
    assert (await client.delete(f"/api/assets/{world['g1']}")).status_code == 204
    assert (await client.get(f"/api/assets/{world['g1']}")).status_code == 404
    assert (await client.put(f"/api/assets/{uuid4()}", json={"notes": "x"})).status_code == 404
    assert await catalog.rollups_match_assets()


async def test_bulk_update_by_ids(client, world, catalog):
    r = await client.post(
        "/api/assets/bulk-update",
        json={
            "asset_ids": [str(world["c1"]), str(world["c2"]), str(uuid4())],
            "updates": {"picked_up": True},
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["updated"] == 2
    assert [(i["filename"], i["picked_up"]) for i in body["items"]] == [
        ("day1/clip_a.mov", True),
        ("day1/clip_b.mov", True),
    ]
    assert body["items"][1]["proxy_url"] == "/media/clips/clip_b.mp4"
    assert await catalog.rollups_match_assets()


async def test_bulk_update_by_filter(client, world, catalog):
    r = await client.post(
        "/api/assets/bulk-update",
        json={
            "filter": {"package_id": str(world["faces"]), "file_type": "aligned"},
            "updates": {"review_status": "approved"},
        },
    )
    assert r.json() == {"updated": 2, "items": []}
    page = (await client.get("/api/assets?review_status=approved")).json()
    assert [i["filename"] for i in page["items"]] == ["a/f1.png", "a/f2.png"]
    assert page["by_review_status"]["approved"] == 2
    assert await catalog.rollups_match_assets()


async def test_bulk_update_errors(client, world):
    async def post(body):
        r = await client.post("/api/assets/bulk-update", json=body)
        return r.status_code, r.json()

    assert await post({"asset_ids": [str(world["c1"])], "updates": {}}) == (
        400,
        {"detail": "No fields to update", "code": "bad_request", "field": "updates"},
    )
    assert await post({"updates": {"picked_up": True}}) == (
        400,
        {"detail": "No asset IDs provided", "code": "bad_request", "field": "asset_ids"},
    )
    assert (await post({"asset_ids": [], "filter": {}, "updates": {"picked_up": True}}))[0] == 422
    status, body = await post({"filter": {"nope": 1}, "updates": {"picked_up": True}})
    assert (status, body["field"]) == (422, "filter.nope")
    status, body = await post(
        {"asset_ids": [str(world["c1"])], "updates": {"review_status": "great"}}
    )
    assert (status, body["field"]) == (422, "updates.review_status")


async def test_lookup_by_path(client, world, settings):
    path = f"{settings.media_root_paths[0]}/faces/a/f1 #1.png"
    r = await client.get("/api/assets/lookup-by-path", params={"disk_path": path})
    assert r.json() == {
        "id": str(world["f1"]),
        "package_id": str(world["faces"]),
        "filename": "a/f1.png",
        "file_type": "image",
    }
    r = await client.get("/api/assets/lookup-by-path", params={"disk_path": "/no/such"})
    assert (r.status_code, r.json()) == (200, None)
    r = await client.get("/api/assets/lookup-by-path")
    assert (r.status_code, r.json()["field"]) == (422, "disk_path")


@pytest.mark.parametrize(
    "query", ["sort=filename", "sort=size&order=desc", "search=.png", "sort=sharpness"]
)
async def test_every_offset_page_is_the_matching_slice(client, world, catalog, query):
    # Offsets past the middle are walked from the end; the result must not tell.
    for i in range(5):
        await catalog.asset(world["faces"], f"z{i}.png", file_size_bytes=100)
    everything = await names(client, f"?{query}&limit=500")
    for limit in (1, 2, 3):
        for offset in range(len(everything) + 2):
            got = await names(client, f"?{query}&limit={limit}&offset={offset}")
            assert got == everything[offset : offset + limit], (limit, offset)
