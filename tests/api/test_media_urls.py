"""Media URLs: first containing root wins, separator-aware, percent-encoded, never outside."""

from __future__ import annotations

import pytest

from handlers._media import MediaUrls

URLS = MediaUrls(("/mnt/data", "/var/proxies/", "/mnt"))


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/mnt/data/a/b.png", "/media/a/b.png"),
        ("/mnt/data/a b#1?%.png", "/media/a%20b%231%3F%25.png"),
        ("/mnt/data/ünïcode.png", "/media/%C3%BCn%C3%AFcode.png"),
        ("/var/proxies/p/clip.mp4", "/media/p/clip.mp4"),
        # Not inside /mnt/data (shared prefix only): falls through to the later /mnt root.
        ("/mnt/data_private/x.png", "/media/data_private/x.png"),
        ("/mnt/data/../secret.txt", "/media/secret.txt"),  # normalised: it is under /mnt
        ("//mnt/data/x.png", "/media/x.png"),
        ("/mnt/data", "/media/data"),  # a root itself is a folder of the next root
        ("/etc/passwd", None),
        ("/mntx/file", None),
        ("relative/path.png", None),
        ("", None),
        (None, None),
        ("/mnt/data/nul\x00.png", None),
    ],
)
def test_media_url(path, url):
    assert URLS(path) == url


def test_no_roots_no_urls():
    assert MediaUrls(())("/mnt/data/a.png") is None
