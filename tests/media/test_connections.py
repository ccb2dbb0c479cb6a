"""Connection behaviour of the zero-copy protocol: aborts, stalls, keep-alive, pipelining."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

import kernel.server
from tests.media.conftest import (
    BIG_SIZE,
    LiveServer,
    MiB,
    SendfileSpy,
    Tree,
    connect,
    fetch,
    open_fds,
    problems,
    read_responses,
    request_bytes,
    slow_read,
    wait_for_fds,
)


def start_big_transfer(server: LiveServer, *, rcvbuf: int | None = None) -> socket.socket:
    """A client that asked for the 256 MiB file and has its first bytes: mid-transfer."""
    sock = connect(server, rcvbuf=rcvbuf)
    sock.sendall(request_bytes("GET", "/media/big.mov", {"Range": "bytes=0-"}))
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 206 ")
    received = len(first)
    while received < MiB:  # body bytes, not just the headers: the transfer is under way
        received += len(sock.recv(65536))
    return sock


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, like a player abandoning a request."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def warm_up(server: LiveServer) -> None:
    # Thread pools, the DB pool and lazy imports open fds once; count after they exist.
    reset(start_big_transfer(server))
    fetch(server, "/media/thumb.jpg")


def test_twenty_reset_clients_leak_nothing_and_log_nothing(
    server: LiveServer, server_log: pytest.LogCaptureFixture, sendfile_path: dict[str, int]
) -> None:
    assert_resets_are_quiet(server, server_log)
    assert_path_used(sendfile_path)


def test_twenty_reset_clients_on_the_streaming_fallback(
    streaming_server: LiveServer, server_log: pytest.LogCaptureFixture
) -> None:
    assert_resets_are_quiet(streaming_server, server_log)


def assert_path_used(used: dict[str, int]) -> None:
    expected = "thread" if "expect_thread" in used else "loop"
    other = "loop" if expected == "thread" else "thread"
    assert used[expected] > 0 and used[other] == 0, used


def assert_resets_are_quiet(live: LiveServer, server_log: pytest.LogCaptureFixture) -> None:
    warm_up(live)
    before = open_fds()
    server_log.clear()
    for _ in range(20):
        reset(start_big_transfer(live))
    assert wait_for_fds(before) <= before
    # The server still answers normally afterwards.
    assert fetch(live, "/media/thumb.jpg").status == 200
    assert problems(server_log) == []


def test_stalled_reader_does_not_slow_other_clients(server: LiveServer, tree: Tree) -> None:
    stalled = start_big_transfer(server, rcvbuf=4096)  # asks for 256 MiB, never reads again
    try:
        time.sleep(0.2)  # its socket buffers are full now; the server waits on writability
        latencies = []
        for _ in range(50):
            started = time.perf_counter()
            response = fetch(server, "/media/thumb.jpg")
            latencies.append(time.perf_counter() - started)
            assert response.body == tree.files["thumb.jpg"]
        assert max(latencies) < 0.5, latencies
    finally:
        reset(stalled)


def test_stall_timeout_closes_the_connection_quietly(
    server: LiveServer,
    server_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    sendfile_path: dict[str, int],
) -> None:
    warm_up(server)
    before = open_fds()
    monkeypatch.setattr(kernel.server, "SEND_STALL_TIMEOUT", 0.5)
    server_log.clear()
    sock = start_big_transfer(server, rcvbuf=4096)
    time.sleep(1.5)  # stop reading for longer than the stall timeout
    received = 0
    sock.settimeout(5)
    while chunk := sock.recv(1 << 20):  # then drain: the server must have closed the socket
        received += len(chunk)
    sock.close()
    assert received < BIG_SIZE
    assert wait_for_fds(before) <= before
    assert problems(server_log) == []
    stalls = [r.getMessage() for r in server_log.records if "stopped" in r.getMessage()]
    # The debug line (warm_up's reset may log its own line late, so look for this one).
    assert any("TimeoutError" in message for message in stalls), stalls
    assert_path_used(sendfile_path)


def test_slow_reader_gets_exact_bytes(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy, sendfile_path: dict[str, int]
) -> None:
    data = tree.files["large.mp4"]
    with connect(server, rcvbuf=16384) as sock:
        sock.sendall(request_bytes("GET", "/media/large.mp4", {"Connection": "close"}))
        raw = slow_read(sock, pause=0.0005)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and body == data
    assert sendfile_spy.settled(len(data)) == len(data)
    assert_path_used(sendfile_path)


def test_multipart_with_big_parts_to_a_slow_reader(server: LiveServer, tree: Tree) -> None:
    data = tree.files["large.mp4"]
    spans = [(0, 5 * MiB), (6 * MiB, 11 * MiB), (12 * MiB, 16 * MiB)]
    ranges = "bytes=" + ",".join(f"{start}-{end - 1}" for start, end in spans)
    with connect(server, rcvbuf=16384) as sock:
        sock.sendall(
            request_bytes("GET", "/media/large.mp4", {"Range": ranges, "Connection": "close"})
        )
        raw = slow_read(sock, pause=0.0005)
    head, body = raw.split(b"\r\n\r\n", 1)
    boundary = head.split(b"boundary=")[1].split(b"\r\n")[0].decode()
    expected = b"".join(
        (b"\r\n" if index else b"")
        + (
            f"--{boundary}\r\ncontent-type: video/mp4\r\n"
            f"content-range: bytes {start}-{end - 1}/{len(data)}\r\n\r\n"
        ).encode()
        + data[start:end]
        for index, (start, end) in enumerate(spans)
    )
    assert body == expected + f"\r\n--{boundary}--\r\n".encode()


async def test_sendfile_waits_for_bytes_the_transport_still_buffers(tmp_path: Path) -> None:
    """Headers written while the socket is full sit in the transport's buffer; the file's
    bytes must not overtake them."""
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    head, data = os.urandom(4 * MiB), os.urandom(3 * MiB)
    (tmp_path / "f.bin").write_bytes(data)
    received = bytearray()
    reader = threading.Thread(
        target=lambda: received.extend(read_exactly(peer, len(head) + len(data)))
    )
    reader.start()
    transport.write(head)  # more than a socket buffer: the rest waits in the transport
    assert transport.get_write_buffer_size() > 0
    with open(tmp_path / "f.bin", "rb") as file:
        sent = await kernel.server.sendfile_to(transport, file.fileno(), 0, len(data))
    await asyncio.to_thread(reader.join, 10)
    transport.close()
    peer.close()
    assert sent == len(data)
    assert bytes(received) == head + data


def read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size and (chunk := sock.recv(1 << 20)):
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_file_truncated_during_transfer_closes_the_connection(
    server: LiveServer, tree: Tree, server_log: pytest.LogCaptureFixture
) -> None:
    path = tree.data / "shrinking.mp4"
    path.write_bytes(bytes(64 * MiB))
    try:
        with connect(server, rcvbuf=16384) as sock:
            sock.sendall(request_bytes("GET", "/media/shrinking.mp4"))
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            os.truncate(path, MiB)  # framing promised 64 MiB; only a close can say it failed
            received = len(slow_read(sock, pause=0))
        assert received < 64 * MiB
        warnings = [r.getMessage() for r in server_log.records if r.levelname == "WARNING"]
        assert any("ended" in w and "early" in w for w in warnings), warnings
    finally:
        path.unlink()


def test_keep_alive_serves_mixed_requests_on_one_connection(server: LiveServer, tree: Tree) -> None:
    data, thumb = tree.files["clip.mp4"], tree.files["thumb.jpg"]
    requests = [
        ("GET", "/media/thumb.jpg", {}, 200, thumb),
        ("HEAD", "/media/clip.mp4", {}, 200, b""),
        (
            "GET",
            "/media/clip.mp4",
            {"Range": f"bytes={MiB}-{2 * MiB - 1}"},
            206,
            data[MiB : 2 * MiB],
        ),
        ("GET", "/media/clip.mp4", {"Range": "bytes=-10"}, 206, data[-10:]),
        ("GET", "/media/missing.mp4", {}, 404, None),
        ("GET", "/media/clip.mp4", {"Range": "bytes=99999999-"}, 416, None),
        ("GET", "/media/clip.mp4", {"Range": "bytes=0-0,5-5"}, 206, None),
        ("GET", "/media/clip.mp4", {}, 200, data),
        ("GET", "/media/thumb.jpg", {}, 200, thumb),
    ]
    with connect(server) as sock:
        for method, target, headers, status, body in requests:
            sock.sendall(request_bytes(method, target, headers))
            (response,), leftover = read_responses(sock, [method])
            assert response.status == status, target
            assert leftover == b""
            if body is not None:
                assert response.body == body


def test_pipelined_requests_come_back_in_order(
    server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    data, thumb = tree.files["clip.mp4"], tree.files["thumb.jpg"]
    burst = b"".join(
        [
            request_bytes("GET", "/media/clip.mp4", {"Range": f"bytes=0-{MiB - 1}"}),
            request_bytes("GET", "/media/thumb.jpg"),
            request_bytes("HEAD", "/media/big.mov"),
            request_bytes("GET", "/media/thumb.jpg", {"Connection": "close"}),
        ]
    )
    with connect(server) as sock:
        sock.sendall(burst)  # one write: the server must queue and answer them in order
        responses, leftover = read_responses(sock, ["GET", "GET", "HEAD", "GET"])
        assert sock.recv(1) == b""  # closed after the last one, nothing extra on the wire
    assert [r.status for r in responses] == [206, 200, 200, 200]
    assert [r.body for r in responses] == [data[:MiB], thumb, b"", thumb]
    assert responses[2].header("content-length") == str(BIG_SIZE)
    assert leftover == b""
    assert sendfile_spy.settled(MiB + 2 * len(thumb)) == MiB + 2 * len(thumb)


def test_many_parallel_clients_get_exact_bytes(server: LiveServer, tree: Tree) -> None:
    data = tree.files["clip.mp4"]
    errors: list[str] = []

    def client(index: int) -> None:
        start = index * 100_000
        response = fetch(server, "/media/clip.mp4", {"Range": f"bytes={start}-{start + MiB - 1}"})
        if response.body != data[start : start + MiB]:
            errors.append(f"client {index}: wrong bytes")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def test_streaming_fallback_is_correct_without_sendfile(
    streaming_server: LiveServer, tree: Tree, sendfile_spy: SendfileSpy
) -> None:
    """Extensions off (failed self-test, TLS, uvloop): same bytes on the wire, no sendfile."""
    data = tree.files["clip.mp4"]
    full = fetch(streaming_server, "/media/clip.mp4")
    ranged = fetch(streaming_server, "/media/clip.mp4", {"Range": f"bytes={MiB}-{2 * MiB}"})
    multi = fetch(streaming_server, "/media/clip.mp4", {"Range": "bytes=0-9,100-109"})
    assert (full.status, full.body) == (200, data)
    assert (ranged.status, ranged.body) == (206, data[MiB : 2 * MiB + 1])
    assert multi.status == 206 and multi.body.count(data[100:110]) == 1
    assert sendfile_spy.bytes == 0
    _, _, extensions = streaming_server.recorder.requests[-1]
    assert extensions == frozenset()
