"""GET|HEAD /media/{path}: files from the media roots, confined, with ranges, 304 and caching.

Video players seek with Range requests and the SPA shows thousands of thumbnails, so this is
the hot path. The endpoint is a plain ASGI callable (no Request object, one header pass), opens
the file once and describes it from fstat of that same fd (stat once, and no path race between
what we describe and what we send). Bodies leave as `http.response.zerocopysend` when the
server advertises it (kernel/server.py: sendfile, zero body bytes through Python); otherwise
they are streamed in 1 MiB blocks read in a thread, which is slower but identical on the wire.

Starlette's FileResponse is not used: it streams every range through Python, answers an
unknown range unit with 400 (RFC 9110 says ignore it) and never answers 304.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from io import FileIO
from itertools import pairwise
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kernel.config import Settings
from kernel.errors import error_response

ZEROCOPYSEND = "http.response.zerocopysend"

# Proxies and thumbnails have content-addressed names, so a URL never changes meaning.
CACHE_IMMUTABLE = b"private, max-age=31536000, immutable"
CACHE_ORIGINAL = b"private, max-age=3600"
# More ranges than this is not a player; ignore the header (Starlette's limit; CVE-2025-62727).
MAX_RANGES = 100
# A longer number is not a real offset and int() of huge strings is slow; ignore the header.
MAX_DIGITS = 19
STREAM_CHUNK = 1024 * 1024
OCTET_STREAM = b"application/octet-stream"
# O_NONBLOCK: opening a FIFO someone left in a root must not block the event loop.
# O_NOFOLLOW: the path is already resolved, so a symlink here means it was swapped meanwhile.
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK

# Only types a browser will not execute; anything else is served as octet-stream, and
# `nosniff` stops the browser from guessing (an .html or .svg on the NAS must not become XSS).
MEDIA_TYPES: dict[str, bytes] = {
    # video
    ".mp4": b"video/mp4",
    ".m4v": b"video/mp4",
    ".mov": b"video/quicktime",
    ".webm": b"video/webm",
    ".mkv": b"video/x-matroska",
    ".avi": b"video/x-msvideo",
    ".mxf": b"application/mxf",
    ".ts": b"video/mp2t",
    ".mpg": b"video/mpeg",
    ".mpeg": b"video/mpeg",
    ".ogv": b"video/ogg",
    # audio
    ".m4a": b"audio/mp4",
    ".wav": b"audio/wav",
    ".mp3": b"audio/mpeg",
    ".aac": b"audio/aac",
    ".flac": b"audio/flac",
    ".ogg": b"audio/ogg",
    ".opus": b"audio/ogg",
    ".aif": b"audio/aiff",
    ".aiff": b"audio/aiff",
    # images
    ".jpg": b"image/jpeg",
    ".jpeg": b"image/jpeg",
    ".png": b"image/png",
    ".webp": b"image/webp",
    ".gif": b"image/gif",
    ".avif": b"image/avif",
    ".bmp": b"image/bmp",
    ".tif": b"image/tiff",
    ".tiff": b"image/tiff",
    ".exr": b"image/x-exr",
    ".dpx": b"image/x-dpx",
    ".hdr": b"image/vnd.radiance",
    ".heic": b"image/heic",
    # sidecars
    ".json": b"application/json",
    ".txt": b"text/plain; charset=utf-8",
    ".csv": b"text/csv; charset=utf-8",
    ".vtt": b"text/vtt; charset=utf-8",
    ".srt": b"application/x-subrip",
}

# A body is a list of segments: framing bytes, or an (offset, count) span of the file.
Segment = bytes | tuple[int, int]


def media_routes(settings: Settings) -> list[BaseRoute]:
    """The /media route, mounted by create_app. Keep it outside BaseHTTPMiddleware and GZip."""
    endpoint = MediaEndpoint(MediaRoots(settings.media_roots, settings.proxy_dir))
    return [Route("/media/{path:path}", endpoint, methods=["GET", "HEAD"], name="media")]


@dataclass(frozen=True, slots=True)
class MediaFile:
    file: FileIO
    st: os.stat_result
    content_type: bytes
    cache_control: bytes


class MediaRoots:
    """Turns a client path into an open regular file inside one of the roots, or None."""

    def __init__(self, roots: Sequence[Path], proxy_dir: Path) -> None:
        self.roots = tuple(os.path.realpath(root) for root in roots)
        self.proxy_dir = os.path.realpath(proxy_dir)

    def open(self, path: str) -> MediaFile | None:
        if not _plausible(path):
            return None
        for root in self.roots:
            # realpath follows every symlink, so the check below sees where the bytes really are.
            real = os.path.realpath(os.path.join(root, path))
            if _inside(real, root):
                media = self._open_regular(real)
                if media is not None:
                    return media
        return None

    def _open_regular(self, real: str) -> MediaFile | None:
        try:
            fd = os.open(real, OPEN_FLAGS)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        immutable = _inside(real, self.proxy_dir)
        return MediaFile(
            file=FileIO(fd, "rb", closefd=True),
            st=st,
            content_type=MEDIA_TYPES.get(os.path.splitext(real)[1].lower(), OCTET_STREAM),
            cache_control=CACHE_IMMUTABLE if immutable else CACHE_ORIGINAL,
        )


def _plausible(path: str) -> bool:
    """Refuse what no valid media path contains: NUL, absolute paths, `..`, a trailing slash."""
    if not path or "\x00" in path or path.startswith("/") or path.endswith("/"):
        return False
    return ".." not in path.split("/")


def _inside(real: str, root: str) -> bool:
    """Separator-aware containment (what Path.is_relative_to checks, on strings for speed):
    /mnt/data_private is not inside /mnt/data."""
    return real == root or real.startswith(root if root.endswith(os.sep) else root + os.sep)


class MediaEndpoint:
    """ASGI app for one request to /media/{path}."""

    def __init__(self, roots: MediaRoots) -> None:
        self.roots = roots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        media = self.roots.open(scope["path_params"].get("path", ""))
        if media is None:
            # One answer for missing, refused and escaping paths: no hint which it was.
            await error_response(404, "Media file not found")(scope, receive, send)
            return
        with media.file:
            await _respond(media, _conditional_headers(scope), scope, receive, send)


def _conditional_headers(scope: Scope) -> dict[bytes, str]:
    wanted = (b"range", b"if-range", b"if-none-match", b"if-modified-since")
    return {name: value.decode("latin-1") for name, value in scope["headers"] if name in wanted}


async def _respond(
    media: MediaFile, request: dict[bytes, str], scope: Scope, receive: Receive, send: Send
) -> None:
    st = media.st
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    last_modified = formatdate(st.st_mtime, usegmt=True)
    validators = [
        (b"etag", etag.encode()),
        (b"last-modified", last_modified.encode()),
        (b"cache-control", media.cache_control),
    ]
    if _not_modified(request, etag, st.st_mtime):
        await _start(send, 304, validators)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    headers = [
        (b"content-type", media.content_type),
        (b"accept-ranges", b"bytes"),
        (b"x-content-type-options", b"nosniff"),
        *validators,
    ]
    ranges = None
    if b"range" in request and _if_range_holds(request.get(b"if-range"), etag, last_modified):
        ranges = parse_range(request[b"range"], st.st_size)
    if ranges == []:
        await _unsatisfiable(st.st_size, scope, receive, send)
        return
    status, segments = _plan(ranges, st.st_size, media.content_type, headers)
    await _start(send, status, headers)
    await _send_body(scope, receive, send, media.file, segments)


def _plan(
    ranges: list[tuple[int, int]] | None,
    size: int,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]],
) -> tuple[int, list[Segment]]:
    """Status and body segments; adds the length and range headers to `headers`."""
    if ranges is None:
        segments: list[Segment] = [(0, size)] if size else []
        status = 200
    elif len(ranges) == 1:
        start, end = ranges[0]
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, end - 1, size)))
        segments, status = [(start, end - start)], 206
    else:
        boundary, segments = _multipart(ranges, size, content_type)
        headers[0] = (b"content-type", b"multipart/byteranges; boundary=" + boundary)
        status = 206
    length = sum(len(s) if isinstance(s, bytes) else s[1] for s in segments)
    headers.append((b"content-length", b"%d" % length))
    return status, segments


def _multipart(
    ranges: list[tuple[int, int]], size: int, content_type: bytes
) -> tuple[bytes, list[Segment]]:
    boundary = secrets.token_hex(12).encode()
    segments: list[Segment] = []
    for index, (start, end) in enumerate(ranges):
        head = b"--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n" % (
            boundary,
            content_type,
            start,
            end - 1,
            size,
        )
        segments += [(b"\r\n" if index else b"") + head, (start, end - start)]
    segments.append(b"\r\n--%s--\r\n" % boundary)
    return boundary, segments


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _unsatisfiable(size: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(
        416, "Range not satisfiable", headers={"content-range": f"bytes */{size}"}
    )
    await response(scope, receive, send)


# --- validators and ranges (RFC 9110 §13, §14) ---------------------------------------------


def _not_modified(request: dict[bytes, str], etag: str, mtime: float) -> bool:
    """If-None-Match (weak comparison) wins; If-Modified-Since counts only without it."""
    if_none_match = request.get(b"if-none-match")
    if if_none_match is not None:
        tags = (tag.strip() for tag in if_none_match.split(","))
        return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
    since = request.get(b"if-modified-since")
    if since is None:
        return False
    parsed = parsedate_tz(since)
    return parsed is not None and int(mtime) <= mktime_tz(parsed)


def _if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """If-Range needs a strong, exact match; otherwise the client gets the whole file."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    return not if_range.startswith("W/") and if_range in (etag, last_modified)


def parse_range(value: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges as (start, end exclusive), clamped to `size`.

    None means "ignore the header and send 200" (another unit, or a malformed value: RFC 9110
    §14.2 lets a server ignore Range); [] means nothing is satisfiable (416).
    """
    unit, equals, spec = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts or len(parts) > MAX_RANGES:
        return None
    ranges = []
    for part in parts:
        span = _parse_spec(part, size)
        if span is None:
            return None
        if span[0] < span[1]:
            ranges.append(span)
    return _coalesce(ranges)


def _parse_spec(part: str, size: int) -> tuple[int, int] | None:
    """One range-spec; an unsatisfiable one comes back empty (start == end)."""
    first, dash, last = (piece.strip() for piece in part.partition("-"))
    if not dash:
        return None
    if not first:  # suffix: the last N bytes
        if not _digits(last):
            return None
        return max(0, size - int(last)), size
    if not _digits(first) or (last and not _digits(last)):
        return None
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # last < first makes the whole header invalid
    return (start, min(end, size)) if start < size else (size, size)


def _digits(text: str) -> bool:
    return 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Keep the client's order (RFC 9110 §14.6) unless ranges overlap; then sort and merge."""
    ordered = sorted(ranges)
    if all(a[1] <= b[0] for a, b in pairwise(ordered)):
        return ranges
    merged = ordered[:1]
    for start, end in ordered[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# --- sending ------------------------------------------------------------------------------


async def _send_body(
    scope: Scope, receive: Receive, send: Send, file: FileIO, segments: list[Segment]
) -> None:
    if scope["method"] == "HEAD" or not segments:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif ZEROCOPYSEND in scope.get("extensions", {}):
        await _send_zero_copy(send, file, segments)
    else:
        await _send_streaming(receive, send, file, segments)


async def _send_zero_copy(send: Send, file: FileIO, segments: list[Segment]) -> None:
    """File spans go as zerocopysend (the server sendfiles them); only framing is bytes."""
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        more = index < last
        if isinstance(segment, bytes):
            await send({"type": "http.response.body", "body": segment, "more_body": more})
        else:
            offset, count = segment
            await send(
                {
                    "type": ZEROCOPYSEND,
                    "file": file,
                    "offset": offset,
                    "count": count,
                    "more_body": more,
                }
            )


async def _send_streaming(
    receive: Receive, send: Send, file: FileIO, segments: list[Segment]
) -> None:
    """Fallback without zero-copy; stops when the client disconnects, since send() won't say."""
    async with anyio.create_task_group() as group:

        async def stream() -> None:
            for segment in segments:
                if isinstance(segment, bytes):
                    await send({"type": "http.response.body", "body": segment, "more_body": True})
                else:
                    await _stream_span(send, file, *segment)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()

        group.start_soon(stream)
        while (await receive())["type"] != "http.disconnect":
            pass
        group.cancel_scope.cancel()


async def _stream_span(send: Send, file: FileIO, offset: int, count: int) -> None:
    fd = file.fileno()
    end = offset + count
    while offset < end:
        data = await anyio.to_thread.run_sync(os.pread, fd, min(STREAM_CHUNK, end - offset), offset)
        if not data:
            raise RuntimeError("media file shrank while it was being sent")
        offset += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": True})
