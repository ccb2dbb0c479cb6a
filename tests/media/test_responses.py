"""/media over a real socket: byte-exact bodies and headers, and every body byte via sendfile."""

from __future__ import annotations

import os
import re
from email.utils import formatdate

import pytest

from tests.media.conftest import (
    NOT_FOUND_BODY,
    LiveServer,
    MiB,
    RawResponse,
    SendfileSpy,
    Tree,
    fetch,
)

CLIP = "clip.mp4"


def validators(tree: Tree, name: str) -> tuple[str, str]:
    st = os.stat(tree.path(name))
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"', formatdate(st.st_mtime, usegmt=True)


def expected_headers(
    tree: Tree,
    name: str,
    length: int,
    *,
    content_type: str = "video/mp4",
    cache: str = "private, max-age=3600",
    content_range: str | None = None,
) -> list[tuple[str, str]]:
    etag, last_modified = validators(tree, name)
    headers = [
        ("server", "uvicorn"),
        ("content-type", content_type),
        ("accept-ranges", "bytes"),
        ("x-content-type-options", "nosniff"),
        ("etag", etag),
        ("last-modified", last_modified),
        ("cache-control", cache),
    ]
    if content_range is not None:
        headers.append(("content-range", content_range))
    return [*headers, ("content-length", str(length)), ("connection", "close")]


def assert_zero_copy(
    spy: SendfileSpy, response: RawResponse, file_bytes: int | None = None
) -> None:
    """Every file byte of the body went through os.sendfile, none through Python buffers."""
    expected = len(response.body) if file_bytes is None else file_bytes
    assert spy.settled(expected) == expected
    assert spy.calls >= 1


def test_full_get(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    response = fetch(server, f"/media/{CLIP}")
    data = tree.files[CLIP]
    assert response.status == 200
    assert response.headers_without_date() == expected_headers(tree, CLIP, len(data))
    assert response.body == data
    assert_zero_copy(sendfile_spy, response)


def test_head_sends_headers_only(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    response = fetch(server, f"/media/{CLIP}", method="HEAD")
    assert response.status == 200
    assert response.headers_without_date() == expected_headers(tree, CLIP, len(tree.files[CLIP]))
    assert response.body == b""
    assert sendfile_spy.bytes == 0


def test_open_ended_range_from_zero(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    data = tree.files[CLIP]
    response = fetch(server, f"/media/{CLIP}", {"Range": "bytes=0-"})
    assert response.status == 206
    content_range = f"bytes 0-{len(data) - 1}/{len(data)}"
    expected = expected_headers(tree, CLIP, len(data), content_range=content_range)
    assert response.headers_without_date() == expected
    assert response.body == data
    assert_zero_copy(sendfile_spy, response)


def test_mid_file_one_mib_range(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    data = tree.files[CLIP]
    start, end = MiB + 7, 2 * MiB + 6
    response = fetch(server, f"/media/{CLIP}", {"Range": f"bytes={start}-{end}"})
    assert response.status == 206
    content_range = f"bytes {start}-{end}/{len(data)}"
    assert response.headers_without_date() == expected_headers(
        tree, CLIP, MiB, content_range=content_range
    )
    assert response.body == data[start : end + 1]
    assert_zero_copy(sendfile_spy, response)


def test_suffix_range(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    data = tree.files[CLIP]
    response = fetch(server, f"/media/{CLIP}", {"Range": "bytes=-1000"})
    assert response.status == 206
    assert (
        response.header("content-range") == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    )
    assert response.body == data[-1000:]
    assert_zero_copy(sendfile_spy, response)


def test_end_beyond_the_file_is_clamped(server: LiveServer, tree: Tree) -> None:
    data = tree.files[CLIP]
    response = fetch(server, f"/media/{CLIP}", {"Range": f"bytes={len(data) - 10}-{len(data) * 2}"})
    assert response.status == 206
    assert response.body == data[-10:]


def test_two_ranges_are_multipart(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    data = tree.files[CLIP]
    response = fetch(server, f"/media/{CLIP}", {"Range": "bytes=0-99, 2000000-2000999"})
    assert response.status == 206
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9a-f]{24})", response.header("content-type") or ""
    )
    assert match, response.header("content-type")
    boundary = match.group(1).encode()
    size = len(data)
    expected_body = (
        b"--%s\r\ncontent-type: video/mp4\r\ncontent-range: bytes 0-99/%d\r\n\r\n"
        % (boundary, size)
        + data[0:100]
        + b"\r\n--%s\r\ncontent-type: video/mp4\r\ncontent-range: bytes 2000000-2000999/%d\r\n\r\n"
        % (boundary, size)
        + data[2000000:2001000]
        + b"\r\n--%s--\r\n" % boundary
    )
    assert response.body == expected_body
    assert response.header("content-length") == str(len(expected_body))
    assert response.header("content-range") is None
    # The parts' data went through sendfile; only the part headers were written by Python.
    assert_zero_copy(sendfile_spy, response, file_bytes=1100)


def test_overlapping_ranges_are_merged(server: LiveServer, tree: Tree) -> None:
    data = tree.files[CLIP]
    response = fetch(server, f"/media/{CLIP}", {"Range": "bytes=500-999,0-99,50-599"})
    assert response.status == 206
    assert response.header("content-range") == f"bytes 0-999/{len(data)}"
    assert response.body == data[:1000]


def test_if_range_match_gives_the_range(server: LiveServer, tree: Tree) -> None:
    etag, last_modified = validators(tree, CLIP)
    for validator in (etag, last_modified):
        response = fetch(server, f"/media/{CLIP}", {"Range": "bytes=10-19", "If-Range": validator})
        assert response.status == 206
        assert response.body == tree.files[CLIP][10:20]


@pytest.mark.parametrize("validator", ['"stale-etag"', "W/{etag}", "Thu, 01 Jan 1970 00:00:00 GMT"])
def test_if_range_mismatch_gives_the_whole_file(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy, validator: str
) -> None:
    etag, _ = validators(tree, CLIP)
    headers = {"Range": "bytes=10-19", "If-Range": validator.format(etag=etag)}
    response = fetch(server, f"/media/{CLIP}", headers)
    assert response.status == 200
    assert response.headers_without_date() == expected_headers(tree, CLIP, len(tree.files[CLIP]))
    assert response.body == tree.files[CLIP]
    assert_zero_copy(sendfile_spy, response)


def test_not_modified(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    etag, last_modified = validators(tree, CLIP)
    expected = [
        ("server", "uvicorn"),
        ("etag", etag),
        ("last-modified", last_modified),
        ("cache-control", "private, max-age=3600"),
        ("connection", "close"),
    ]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": last_modified},
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT", "Range": "bytes=0-1"},
    ):
        response = fetch(server, f"/media/{CLIP}", headers)
        assert (response.status, response.headers_without_date(), response.body) == (
            304,
            expected,
            b"",
        )
    assert sendfile_spy.bytes == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"If-None-Match": '"other"'},
        {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
        {"If-Modified-Since": "not a date"},
        # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3).
        {"If-None-Match": '"other"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ],
)
def test_modified_gives_the_file(server: LiveServer, tree: Tree, headers: dict[str, str]) -> None:
    response = fetch(server, f"/media/{CLIP}", headers)
    assert response.status == 200
    assert response.body == tree.files[CLIP]


@pytest.mark.parametrize("range_", ["bytes=3158073-", "bytes=999999999-1999999999", "bytes=-0"])
def test_unsatisfiable_range(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy, range_: str
) -> None:
    size = len(tree.files[CLIP])
    assert size == 3158073
    response = fetch(server, f"/media/{CLIP}", {"Range": range_})
    body = b'{"detail":"Range not satisfiable","code":"range_not_satisfiable","field":null}'
    assert response.status == 416
    assert response.header("content-range") == f"bytes */{size}"
    assert response.header("content-type") == "application/json"
    assert response.body == body
    assert sendfile_spy.bytes == 0


@pytest.mark.parametrize(
    "range_",
    [
        "items=0-10",
        "bytes=abc",
        "bytes=10-5",
        "bytes=",
        "bytes=1-2-3",
        "bytes=0-99999999999999999999",
    ],
)
def test_unknown_unit_or_malformed_range_is_ignored(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy, range_: str
) -> None:
    response = fetch(server, f"/media/{CLIP}", {"Range": range_})
    assert response.status == 200
    assert response.body == tree.files[CLIP]
    assert_zero_copy(sendfile_spy, response)


def test_empty_file(server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy) -> None:
    response = fetch(server, "/media/empty.bin")
    assert response.status == 200
    expected = expected_headers(tree, "empty.bin", 0, content_type="application/octet-stream")
    assert response.headers_without_date() == expected
    assert response.body == b""
    assert fetch(server, "/media/empty.bin", {"Range": "bytes=0-"}).status == 416
    assert sendfile_spy.bytes == 0


def test_proxies_and_thumbnails_are_immutable(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    name = "ab/c0ffee.jpg"
    response = fetch(server, f"/media/{name}")
    expected = expected_headers(
        tree,
        name,
        len(tree.files[name]),
        content_type="image/jpeg",
        cache="private, max-age=31536000, immutable",
    )
    assert response.status == 200
    assert response.headers_without_date() == expected
    assert response.body == tree.files[name]
    assert_zero_copy(sendfile_spy, response)


def test_symlink_inside_the_root_is_served(server: LiveServer, tree: Tree) -> None:
    response = fetch(server, "/media/link_inside.mp4")
    assert (response.status, response.body) == (200, tree.files[CLIP])


def test_nested_path(server: LiveServer, tree: Tree) -> None:
    response = fetch(server, "/media/sub/inner.png")
    assert response.status == 200
    assert response.header("content-type") == "image/png"
    assert response.body == tree.files["sub/inner.png"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.mp4", "video/mp4"),
        ("a.MOV", "video/quicktime"),
        ("a.webm", "video/webm"),
        ("a.mkv", "video/x-matroska"),
        ("a.m4a", "audio/mp4"),
        ("a.wav", "audio/wav"),
        ("a.mp3", "audio/mpeg"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.exr", "image/x-exr"),
        ("a.tif", "image/tiff"),
        ("a.webp", "image/webp"),
        ("a.json", "application/json"),
        ("a.vtt", "text/vtt; charset=utf-8"),
        # Anything a browser could execute is downgraded: no stored XSS from a file on the NAS.
        ("a.html", "application/octet-stream"),
        ("a.svg", "application/octet-stream"),
        ("a.js", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ],
)
def test_content_types(server: LiveServer, tree: Tree, name: str, content_type: str) -> None:
    path = tree.data / "types" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"x")
    response = fetch(server, f"/media/types/{name}", method="HEAD")
    assert response.status == 200
    assert response.header("content-type") == content_type
    assert response.header("x-content-type-options") == "nosniff"


@pytest.mark.parametrize(
    "target",
    [
        "/media/../outside/secret.mp4",
        "/media/sub/../../outside/secret.mp4",
        "/media/%2e%2e/outside/secret.mp4",
        "/media/%2E%2E%2Foutside%2Fsecret.mp4",
        "/media/sub/..%2f..%2foutside%2fsecret.mp4",
        "/media/..%5c..%5coutside%5csecret.mp4",
        "/media//etc/passwd",
        "/media/%2fetc%2fpasswd",
        f"/media/{CLIP}%00.jpg",
        "/media/%00",
        "/media/escape.mp4",  # symlink to a file outside the root
        "/media/escape_dir/secret.mp4",  # symlinked directory outside the root
        "/media/peek.mp4",  # into data_private, a sibling that shares the root's prefix
        "/media/../data_private/secret.mp4",
        "/media/sub",  # a directory
        "/media/sub/",
        f"/media/{CLIP}/",
        "/media/fifo.mp4",  # a FIFO must neither be served nor block the loop
        "/media/missing.mp4",
        "/media/",
    ],
)
def test_refused_paths_are_plain_404(
    server: LiveServer, sendfile_spy: SendfileSpy, target: str
) -> None:
    response = fetch(server, target)
    assert response.status == 404
    assert response.header("content-type") == "application/json"
    assert response.body == NOT_FOUND_BODY  # the same answer for every kind: no hint
    assert sendfile_spy.bytes == 0


def test_other_methods_are_405(server: LiveServer) -> None:
    response = fetch(server, f"/media/{CLIP}", method="DELETE")
    assert response.status == 405


def test_scope_advertises_both_extensions(server: LiveServer) -> None:
    """Fails if the production config drifts to uvloop or TLS: zero-copy would silently stop."""
    fetch(server, "/media/thumb.jpg")
    _, _, extensions = server.recorder.requests[-1]
    assert extensions == {"http.response.pathsend", "http.response.zerocopysend"}
