"""Media URLs for stored filesystem paths: "/media/" + the percent-encoded path under a root.

The first media root that contains the path wins (the media server tries roots in the same
order). Containment is separator-aware on normalised absolute paths, so /mnt/data_private is
not inside /mnt/data; paths outside every root, and relative paths, have no URL.
Plain string operations: this runs three times per asset on every page.
"""

from __future__ import annotations

import posixpath
from pathlib import PurePath
from urllib.parse import quote

from starlette.requests import Request


class MediaUrls:
    """Builds URLs against one tuple of roots (the app's settings)."""

    def __init__(self, roots: tuple[PurePath, ...] | tuple[str, ...]) -> None:
        # "/mnt/data" -> "/mnt/data/", so a prefix test is a separator-aware containment test.
        self.prefixes = tuple(posixpath.normpath(str(root)).rstrip("/") + "/" for root in roots)

    def __call__(self, path: str | None) -> str | None:
        if not path or not path.startswith("/") or "\x00" in path:
            return None
        # normpath, not resolve(): no filesystem access, and ".." cannot climb out of a root.
        target = posixpath.normpath(path)
        if target.startswith("//"):  # POSIX keeps a leading "//"; it names the same root
            target = "/" + target.lstrip("/")
        for prefix in self.prefixes:
            if target.startswith(prefix) and len(target) > len(prefix):
                return "/media/" + quote(target[len(prefix) :])
        return None


def media_urls(request: Request) -> MediaUrls:
    return MediaUrls(tuple(request.app.state.settings.media_roots))
