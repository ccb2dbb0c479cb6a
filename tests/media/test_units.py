"""The pieces without a socket: range parsing, confinement, the self-test, serve() wiring."""

from __future__ import annotations

import errno
import logging
import logging.config
import os
from pathlib import Path
from typing import Any

import pytest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route, Router

import kernel.server
from kernel.app import create_app
from kernel.config import Settings
from kernel.media import MediaEndpoint, MediaRoots, _inside, parse_range
from kernel.server import (
    StreamingHttpToolsProtocol,
    ZeroCopyHttpToolsProtocol,
    sendfile_self_test,
    server_config,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-", [(0, 1000)]),
        ("bytes=0-0", [(0, 1)]),
        ("bytes=100-199", [(100, 200)]),
        ("bytes=900-5000", [(900, 1000)]),
        ("bytes=-100", [(900, 1000)]),
        ("bytes=-5000", [(0, 1000)]),
        ("BYTES = 1-2", [(1, 3)]),
        ("bytes=0-9, 20-29", [(0, 10), (20, 30)]),
        ("bytes=20-29,0-9", [(20, 30), (0, 10)]),  # the client's order is kept
        ("bytes=0-9,5-19,100-", [(0, 20), (100, 1000)]),  # overlaps are merged
        ("bytes=0-9,,20-29", [(0, 10), (20, 30)]),  # empty list elements are allowed
        ("bytes=1000-", []),  # nothing satisfiable: 416
        ("bytes=-0", []),
        ("bytes=1000-,5-9", [(5, 10)]),  # unsatisfiable parts are dropped
        ("items=0-9", None),  # unknown unit: ignore the header
        ("bytes", None),
        ("bytes=", None),
        ("bytes=a-b", None),
        ("bytes=9-5", None),
        ("bytes=5", None),
        ("bytes=-", None),
        ("bytes=+1-2", None),
        ("bytes=\u0661-\u0662", None),  # Arabic-Indic digits: isdigit() but not ASCII
        ("bytes=0-" + "9" * 20, None),
        ("bytes=" + ",".join(["0-0"] * 101), None),  # too many ranges: not a player
    ],
)
def test_parse_range(header: str, expected: list[tuple[int, int]] | None) -> None:
    assert parse_range(header, 1000) == expected


def test_confinement_is_separator_aware(tmp_path: Path) -> None:
    data, private, proxies = tmp_path / "data", tmp_path / "data_private", tmp_path / "proxies"
    for directory in (data, private, proxies):
        directory.mkdir()
    (private / "x.mp4").write_bytes(b"private")
    (data / "x.mp4").symlink_to(private / "x.mp4")
    (proxies / "p.jpg").write_bytes(b"proxy")
    roots = MediaRoots((data, proxies), proxies)
    assert roots.open("x.mp4") is None
    media = roots.open("p.jpg")  # found in the second root
    assert media is not None
    with media.file:
        assert media.file.read() == b"proxy"
        assert media.cache_control == b"private, max-age=31536000, immutable"


def test_inside_is_separator_aware() -> None:
    assert _inside("/mnt/data/a.mp4", "/mnt/data")
    assert not _inside("/mnt/data_private/a.mp4", "/mnt/data")
    assert not _inside("/mnt/dat", "/mnt/data")
    assert _inside("/etc/passwd", "/")  # a root of / contains everything, as configured


def test_roots_are_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.mp4").write_bytes(b"a")
    (tmp_path / "alias").symlink_to(real)
    media = MediaRoots((tmp_path / "alias",), tmp_path / "proxies").open("a.mp4")
    assert media is not None
    media.file.close()


def test_self_test_passes_on_a_normal_filesystem(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(os.urandom(10000))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sendfile_self_test((tmp_path, empty, tmp_path / "not-there")) is True
    assert list(empty.iterdir()) == []  # the temporary probe file is gone


def test_self_test_fails_loudly_when_sendfile_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 100)

    def refuse(*args: Any) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")  # what FUSE mounts answer

    monkeypatch.setattr(os, "sendfile", refuse)
    assert sendfile_self_test((tmp_path,)) is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("zero-copy media serving is OFF" in message for message in errors)


@pytest.mark.parametrize(
    ("passed", "protocol"), [(True, ZeroCopyHttpToolsProtocol), (False, StreamingHttpToolsProtocol)]
)
def test_serve_runs_uvicorn_with_the_protocol_the_self_test_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passed: bool, protocol: type
) -> None:
    started: list[Any] = []

    class FakeServer:
        def __init__(self, config: Any) -> None:
            started.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(kernel.server, "sendfile_self_test", lambda roots: passed)
    # uvicorn.Config applies its log config; keep this process's logging as the tests set it.
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)
    monkeypatch.setattr(kernel.server.uvicorn, "Server", FakeServer)
    settings = Settings(home=tmp_path, media_root_paths=(tmp_path,), proxy_dir=tmp_path, port=8123)
    kernel.server.serve(settings)
    (config,) = started
    assert config.http is protocol
    assert config.loop == "asyncio"  # loop.sendfile is native only on the stdlib loop
    assert (config.host, config.port, config.lifespan) == ("127.0.0.1", 8123, "on")
    assert config.timeout_graceful_shutdown == kernel.server.GRACEFUL_SHUTDOWN_SECONDS
    assert config.access_log is False


def _wrappers(app: Any) -> list[Any]:
    """Every layer between the server and the router, outermost first."""
    layers = []
    while not isinstance(app, Router):
        layers.append(app)
        app = app.app
    return layers


@pytest.mark.parametrize("cors", [(), ("https://ui.example",)])
def test_nothing_that_breaks_zero_copy_wraps_media(tmp_path: Path, cors: tuple[str, ...]) -> None:
    """BaseHTTPMiddleware raises on zerocopysend and GZip silently drops it (media-perf §1.1)."""
    settings = Settings(home=tmp_path, proxy_dir=tmp_path, cors_origins=cors)
    app = create_app(settings=settings)
    for layer in _wrappers(app.build_middleware_stack()):
        assert not isinstance(layer, BaseHTTPMiddleware | GZipMiddleware), layer
    media = [r for r in app.routes if isinstance(r, Route) and r.name == "media"]
    assert len(media) == 1
    assert isinstance(media[0].app, MediaEndpoint)  # a bare ASGI app: no wrapper of its own
    assert media[0].methods == {"GET", "HEAD"}
    assert app.url_path_for("media", path="ab/c.mp4") == "/media/ab/c.mp4"


def test_server_config_defaults_to_the_real_app(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, proxy_dir=tmp_path)
    config = server_config(settings, configure_logging=False)
    assert type(config.app).__name__ == "Starlette"
    assert config.http is ZeroCopyHttpToolsProtocol
