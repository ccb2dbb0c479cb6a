"""A player-like client: FFmpeg (PyAV) opens a proxy over HTTP and seeks into the middle."""

from __future__ import annotations

import av

from tests.media.conftest import LiveServer, SendfileSpy, Tree


def test_pyav_seeks_into_a_proxy_over_http(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    path = "/media/ab/clip.mp4"
    before = len(server.recorder.requests)
    options = {"rw_timeout": "10000000", "timeout": "10000000"}  # microseconds; never hang CI
    with av.open(server.url + path, options=options) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        # Near the end first, then back to the middle: a backward seek cannot be served from
        # what FFmpeg already buffered, so it must come back to the server as a Range request.
        container.seek(int(1.7 / stream.time_base), stream=stream)
        next(container.decode(stream))
        container.seek(int(1.0 / stream.time_base), stream=stream)  # the middle of 2 s
        frame = next(container.decode(stream))
    assert (frame.width, frame.height) == (320, 240)
    assert frame.time is not None and 0.5 <= frame.time <= 1.0  # the keyframe at or before 1 s
    ranges = [range_ for seen, range_, _ in server.recorder.requests[before:] if seen == path]
    # FFmpeg opens with `bytes=0-` and seeks by re-requesting from an offset, like browsers do.
    assert ranges[0] == "bytes=0-"
    assert len(ranges) >= 2 and all(r is not None for r in ranges), ranges
    offset = int(str(ranges[-1]).removeprefix("bytes=").removesuffix("-"))
    size = len(tree.files["ab/clip.mp4"])
    assert size * 0.2 < offset < size * 0.8, (ranges, size)  # the seek to the middle
    assert sendfile_spy.settled(1) > 0
