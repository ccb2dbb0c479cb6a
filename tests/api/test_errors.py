"""Every error path of the catalog API answers with the one error shape and names the field."""

from __future__ import annotations

from uuid import uuid4

import pytest

from kernel.http import MAX_BODY_BYTES

BAD_GETS = [
    ("/api/projects/not-a-uuid", "id"),
    ("/api/subjects?project_id=nope", "project_id"),
    ("/api/packages?limit=201", "limit"),
    ("/api/packages?offset=-1", "offset"),
    ("/api/packages?status=done", "status"),
    ("/api/assets?limit=0", "limit"),
    ("/api/assets?limit=abc", "limit"),
    ("/api/assets?sort=colour", "sort"),
    ("/api/assets?order=sideways", "order"),
    ("/api/assets?file_type=movie", "file_type"),
    ("/api/assets?review_status=meh", "review_status"),
    ("/api/assets?picked_up=maybe", "picked_up"),
    ("/api/assets?pose_bins=a:b", "pose_bins"),
    ("/api/assets?cursor=!!!", "cursor"),
    ("/api/assets?yaw_min=999", "yaw_min"),
    ("/api/search?limit=51", "limit"),
    ("/api/packages/123/summary", "id"),
]


@pytest.mark.parametrize(("url", "field"), BAD_GETS)
async def test_bad_query_is_422_naming_the_field(client, url, field):
    r = await client.get(url)
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"detail", "code", "field"}
    assert (body["code"], body["field"]) == ("validation_error", field)
    assert field in body["detail"]


BAD_BODIES = [
    ("/api/projects", {}, "name"),
    ("/api/projects", {"name": ""}, "name"),
    ("/api/projects", {"name": "x", "project_type": "film"}, "project_type"),
    ("/api/projects", {"name": "x", "extra": 1}, "extra"),
    ("/api/projects", {"name": "x", "tags": "a"}, "tags"),
    ("/api/subjects", {"name": "x"}, "project_id"),
    ("/api/subjects", {"name": "___", "project_id": str(uuid4())}, "name"),
    ("/api/packages", {"subject_id": "nope", "name": "x"}, "subject_id"),
    ("/api/packages", {"subject_id": str(uuid4()), "name": "x", "status": "x"}, "status"),
    ("/api/projects/bulk-delete", {"ids": ["x"]}, "ids[0]"),
    ("/api/assets/bulk-update", {"asset_ids": [str(uuid4())]}, "updates"),
]


@pytest.mark.parametrize(("url", "body", "field"), BAD_BODIES)
async def test_bad_body_is_422_naming_the_field(client, url, body, field):
    r = await client.post(url, json=body)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("validation_error", field)


async def test_body_that_is_not_json_is_422(client):
    r = await client.post(
        "/api/projects", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "validation_error", None)
    r = await client.post("/api/projects")
    assert r.json() == {
        "detail": "A JSON body is required",
        "code": "validation_error",
        "field": None,
    }


async def test_body_over_a_mebibyte_is_413(client):
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = await client.post("/api/projects", content=big)
    assert r.status_code == 413
    assert r.json() == {
        "detail": f"Request body is larger than {MAX_BODY_BYTES} bytes",
        "code": "payload_too_large",
        "field": None,
    }

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"x" * 65536

    r = await client.post("/api/projects", content=chunks())
    assert r.status_code == 413


async def test_missing_parent_references_are_422(client):
    r = await client.post("/api/packages", json={"subject_id": str(uuid4()), "name": "p"})
    assert r.status_code == 422
    assert r.json()["field"] == "subject_id"


async def test_duplicates_are_409(client, catalog):
    pid = await catalog.project("Taken")
    sid = await catalog.subject(pid, "S")
    await catalog.package(sid, "p")
    other = await catalog.project("Other")
    for method, url, body in [
        ("POST", "/api/projects", {"name": "Taken"}),
        ("PUT", f"/api/projects/{other}", {"name": "Taken"}),
        ("POST", "/api/packages", {"subject_id": str(sid), "name": "p"}),
    ]:
        r = await client.request(method, url, json=body)
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "conflict"
    # The transaction is still usable after the errors (handlers use savepoints).
    assert (await client.get("/api/projects")).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/{id}",
        "/api/subjects/{id}",
        "/api/packages/{id}",
        "/api/assets/{id}",
        "/api/projects/{id}/subjects",
        "/api/projects/{id}/packages",
        "/api/subjects/{id}/packages",
        "/api/subjects/{id}/assets",
        "/api/packages/{id}/summary",
        "/api/packages/{id}/assets",
    ],
)
async def test_unknown_ids_are_404(client, url):
    r = await client.get(url.format(id=uuid4()))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert r.json()["field"] == "id"
    assert r.json()["detail"].endswith("not found")


@pytest.mark.parametrize("url", ["/api/projects", "/api/subjects", "/api/packages", "/api/assets"])
async def test_deletes_and_updates_of_unknown_ids_are_404(client, url):
    assert (await client.delete(f"{url}/{uuid4()}")).status_code == 404
    body = {"notes": "x"} if url != "/api/packages" else {"name": "x"}
    assert (await client.put(f"{url}/{uuid4()}", json=body)).status_code == 404
