"""A real BrahmaHub server (create_app, our zero-copy protocol, asyncio loop) on a real socket.

The server runs in a thread of the test process, so a spy on `os.sendfile` sees exactly the
bytes the kernel copied from page cache to socket, and /proc/self/fd counts its descriptors.
Media is generated here (random bytes, a sparse file, a PyAV clip); nothing is committed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
import uvicorn
from av.video.frame import PictureType

from kernel.app import create_app
from kernel.config import Settings
from kernel.server import server_config

MiB = 1024 * 1024
BIG_SIZE = 256 * MiB  # sparse: big enough that a transfer is still running when it is cut
NOT_FOUND_BODY = b'{"detail":"Media file not found","code":"not_found","field":null}'


@dataclass
class Tree:
    """The generated media: roots, neighbours that must stay unreachable, and file bytes."""

    base: Path
    data: Path
    proxies: Path
    files: dict[str, bytes] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.proxies / name if name.startswith("ab/") else self.data / name


def _write(tree: Tree, name: str, content: bytes) -> None:
    path = tree.path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    tree.files[name] = content


def make_clip(path: Path) -> None:
    """2 s of 320x240 h264 with a keyframe every 10 frames and the moov atom up front."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=25, options={"g": "10"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.thread_type = "FRAME"
        source = "testsrc=size=320x240:rate=25:duration=2,noise=alls=30:allf=t"
        with av.open(source, format="lavfi") as src:
            for frame in src.decode(video=0):
                # lavfi frames say "I"; libx264 would obey and make every frame a keyframe.
                frame.pict_type = PictureType.NONE
                out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    base = tmp_path_factory.mktemp("mediatree")
    tree = Tree(base=base, data=base / "data", proxies=base / "proxies")
    for directory in ("data/sub", "data_private", "outside", "proxies/ab"):
        (base / directory).mkdir(parents=True)
    _write(tree, "clip.mp4", os.urandom(3 * MiB + 12345))
    _write(tree, "large.mp4", os.urandom(16 * MiB))  # more than a socket buffer holds
    _write(tree, "thumb.jpg", os.urandom(30 * 1024))
    _write(tree, "empty.bin", b"")
    _write(tree, "sub/inner.png", os.urandom(5000))
    _write(tree, "ab/c0ffee.jpg", os.urandom(20 * 1024))
    with open(tree.data / "big.mov", "wb") as big:
        big.truncate(BIG_SIZE)
    make_clip(tree.proxies / "ab" / "clip.mp4")
    tree.files["ab/clip.mp4"] = (tree.proxies / "ab" / "clip.mp4").read_bytes()
    (base / "outside" / "secret.mp4").write_bytes(b"outside secret")
    (base / "data_private" / "secret.mp4").write_bytes(b"sibling secret")
    (tree.data / "link_inside.mp4").symlink_to(tree.data / "clip.mp4")
    (tree.data / "escape.mp4").symlink_to(base / "outside" / "secret.mp4")
    (tree.data / "escape_dir").symlink_to(base / "outside")
    (tree.data / "peek.mp4").symlink_to(base / "data_private" / "secret.mp4")
    os.mkfifo(tree.data / "fifo.mp4")
    return tree


class Recorder:
    """Pure-ASGI wrapper that notes each request's path, Range header and advertised extensions."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str | None, frozenset[str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            range_ = headers[b"range"].decode() if b"range" in headers else None
            extensions = frozenset(scope.get("extensions", {}))
            self.requests.append((scope["path"], range_, extensions))
        await self.app(scope, receive, send)


class LiveServer:
    """uvicorn.Server with our Config, on a socket bound before start (no port race)."""

    def __init__(self, config: uvicorn.Config, recorder: Recorder) -> None:
        self.server = uvicorn.Server(config)
        self.recorder = recorder
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def _live_server(tree: Tree, pg_dsn: str, *, zero_copy: bool) -> LiveServer:
    settings = Settings(
        database_url=pg_dsn,
        home=tree.base / "home",
        media_root_paths=(tree.data,),
        proxy_dir=tree.proxies,
    )
    recorder = Recorder(create_app(settings=settings))
    config = server_config(settings, recorder, zero_copy=zero_copy, configure_logging=False)
    return LiveServer(config, recorder)


@pytest.fixture(scope="session")
def server(tree: Tree, pg_dsn: str) -> Iterator[LiveServer]:
    """The production configuration: zero-copy protocol, asyncio loop, the real app."""
    with _live_server(tree, pg_dsn, zero_copy=True) as live:
        yield live


@pytest.fixture(scope="session")
def streaming_server(tree: Tree, pg_dsn: str) -> Iterator[LiveServer]:
    """The fallback: extensions not advertised (as after a failed sendfile self-test)."""
    with _live_server(tree, pg_dsn, zero_copy=False) as live:
        yield live


class SendfileSpy:
    """Counts the bytes os.sendfile reports as sent, process-wide (the server is a thread)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.calls = 0
        self._real = os.sendfile

    def __call__(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = self._real(out_fd, in_fd, offset, count)
        self.bytes += sent
        self.calls += 1
        return sent

    def settled(self, expected: int, timeout: float = 2.0) -> int:
        """The count once it reaches `expected` (or the timeout passes).

        The client can finish reading while the server thread is still inside os.sendfile
        (it releases the GIL), before the count is updated, so give it a moment.
        """
        deadline = time.monotonic() + timeout
        while self.bytes < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.bytes


@pytest.fixture
def sendfile_spy(monkeypatch: pytest.MonkeyPatch) -> SendfileSpy:
    spy = SendfileSpy()
    monkeypatch.setattr(os, "sendfile", spy)
    return spy


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG that also sees uvicorn's loggers when a dictConfig stopped propagation."""
    attached = [
        logger
        for logger in (logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error"))
        if not logger.propagate
    ]
    for logger in attached:
        logger.addHandler(caplog.handler)
    with caplog.at_level(logging.DEBUG):
        yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines at WARNING or above: what an operator would see as noise or errors."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_for_fds(at_most: int, timeout: float = 5.0) -> int:
    """Closing is asynchronous (connection_lost runs on the server's loop): poll a little."""
    deadline = time.monotonic() + timeout
    count = open_fds()
    while count > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
        count = open_fds()
    return count


# --- a raw HTTP/1.1 client: byte-exact, no URL normalisation, pipelining ------------------


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return values[0] if values else None

    def headers_without_date(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k != "date"]


def request_bytes(method: str, target: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_responses(sock: socket.socket, methods: list[str]) -> tuple[list[RawResponse], bytes]:
    """Parse one response per method from the socket; returns them and any bytes left over."""
    buffer = b""
    responses = []
    for method in methods:
        while b"\r\n\r\n" not in buffer:
            buffer += _recv(sock)
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        pairs = [line.split(": ", 1) for line in header_lines]
        response = RawResponse(
            int(status_line.split(" ")[1]), [(k.lower(), v) for k, v in pairs], b""
        )
        length = int(response.header("content-length") or 0)
        if method == "HEAD" or response.status == 304:
            length = 0
        while len(buffer) < length:
            buffer += _recv(sock)
        response.body, buffer = buffer[:length], buffer[length:]
        responses.append(response)
    return responses, buffer


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(1 << 20)
    if not chunk:
        raise ConnectionError("server closed the connection mid-response")
    return chunk


def connect(server: LiveServer, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    return sock


def fetch(
    server: LiveServer, target: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> RawResponse:
    """One request on a fresh connection."""
    with connect(server) as sock:
        sock.sendall(request_bytes(method, target, {**(headers or {}), "Connection": "close"}))
        (response,), _ = read_responses(sock, [method])
    return response


@pytest.fixture(params=["thread", "loop"])
def sendfile_path(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> dict[str, int]:
    """Run the test once per way a big body leaves: a sendfile thread, or the event loop
    (what happens when every sendfile thread is busy). Counts which one actually ran."""
    import kernel.server

    used = {"thread": 0, "loop": 0}
    real_thread, real_loop = kernel.server._blocking_sendfile, kernel.server._drive_from_loop

    def thread(*args: Any) -> int:
        used["thread"] += 1
        return real_thread(*args)

    async def loop(*args: Any) -> int:
        used["loop"] += 1
        return await real_loop(*args)

    monkeypatch.setattr(kernel.server, "_blocking_sendfile", thread)
    monkeypatch.setattr(kernel.server, "_drive_from_loop", loop)
    if request.param == "thread":
        monkeypatch.setattr(kernel.server, "THREAD_MIN_BYTES", 1)
    else:
        monkeypatch.setattr(kernel.server, "SENDFILE_THREADS", 0)
    used["expect_" + request.param] = 1
    return used


def slow_read(sock: socket.socket, pause: float = 0.002) -> bytes:
    """Read to EOF in small bites, so the server meets a full socket again and again."""
    chunks = []
    while chunk := sock.recv(64 * 1024):
        chunks.append(chunk)
        time.sleep(pause)
    return b"".join(chunks)
