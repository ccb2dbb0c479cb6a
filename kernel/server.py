"""uvicorn with a zero-copy HTTP protocol: media bytes go page cache -> socket via sendfile.

uvicorn 0.55 implements neither ASGI `http.response.pathsend` nor `http.response.zerocopysend`,
so every file byte would otherwise pass through Python (64 KiB thread reads + transport.write,
~10x nginx's CPU per GiB). `ZeroCopyHttpToolsProtocol` subclasses uvicorn's httptools protocol
and implements both with os.sendfile on the stdlib asyncio selector loop (see `sendfile_to`:
small bodies in one call, big ones in a sendfile thread). The extensions are advertised only
when they are safe: selector loop (uvloop transports are different), plain TCP (Traefik
terminates TLS), and a start-up self-test proved sendfile works from the media roots.
Otherwise nothing is advertised and the app streams the file itself: slower, still correct.

This leans on uvicorn internals (`_start_asgi_task`, RequestResponseCycle fields); uvicorn is
pinned to 0.55.* and tests/media exercises all of it over real sockets, so an upgrade that
changes them fails CI rather than production. See shared/research/media-perf.md §4.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import tempfile
from asyncio import constants as asyncio_constants
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_threads
from pathlib import Path
from typing import IO, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, is_ssl

from kernel.config import Settings
from kernel.logs import logging_config

log = logging.getLogger(__name__)

PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"

# A client that accepts no byte for this long is cut off, like nginx's send_timeout; paused
# players reconnect with a Range request.
SEND_STALL_TIMEOUT = 60.0
# What remains of a body after the first non-blocking os.sendfile: from this size on it goes
# to a sendfile thread instead of costing ~1 event-loop wakeup per 1.5 MiB.
THREAD_MIN_BYTES = 2 * 1024 * 1024
SENDFILE_THREADS = 32
# Read size for the rare copy path (a chunked response that still sends a file).
COPY_CHUNK = 1024 * 1024
# Long downloads must not hold a restart hostage; players reconnect with a Range request.
GRACEFUL_SHUTDOWN_SECONDS = 10
SELF_TEST_BYTES = 4096
# How many directory entries the self-test looks at to find a sample file in a root.
SELF_TEST_SCAN_LIMIT = 500


def sendfile_capable(loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport) -> bool:
    """True for a plain socket transport on the stdlib selector loop: what `sendfile_to` needs
    (no TLS, whose bytes must be encrypted in user space; not uvloop, whose transports differ)."""
    native = (
        getattr(transport, "_sendfile_compatible", None)
        is asyncio_constants._SendfileMode.TRY_NATIVE
    )
    return native and isinstance(loop, asyncio.SelectorEventLoop) and not is_ssl(transport)  # type: ignore[arg-type]


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request/response cycle plus the pathsend and zerocopysend messages."""

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == ZEROCOPYSEND:
            await self._send_file(
                message["file"],
                message.get("offset"),
                message.get("count"),
                more_body=message.get("more_body", False),
            )
        elif kind == PATHSEND:
            await self._send_path(message["path"])
        else:
            await super().send(message)

    async def _send_path(self, path: str) -> None:
        # Nothing to open for HEAD or a gone client; _send_file checks the message order.
        if self.scope["method"] == "HEAD" or self.disconnected:
            await self._send_file(None, 0, 0, more_body=False)
            return
        # The server owns this file (pathsend); open() sets O_CLOEXEC. Opening a local file
        # is a few microseconds: not worth a thread hop on the hot path.
        with open(path, "rb", buffering=0) as file:  # noqa: ASYNC230
            await self._send_file(file, 0, self.expected_content_length, more_body=False)

    async def _send_file(
        self, file: IO[bytes] | None, offset: int | None, count: int | None, *, more_body: bool
    ) -> None:
        if not self.response_started or self.response_complete:
            raise RuntimeError(
                "Unexpected ASGI file message before the response start or after its end."
            )
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0  # headers only, exactly like uvicorn's own send()
        elif file is not None:
            offset, count = _span(file, offset, count)
            if self.chunked_encoding:
                await self._copy_chunked(file, offset, count)
            elif not await self._sendfile(file, offset, count):
                return  # the client went away; the connection is already closed
        if not more_body:
            self._complete()

    async def _sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        """Send `count` bytes at `offset`; False (connection closed, quietly) if the client left."""
        if count > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        try:
            sent = await sendfile_to(self.transport, file.fileno(), offset, count)
        except OSError as exc:
            # A reset, a closed socket or a stall (TimeoutError is an OSError). For video this
            # is routine: players drop `bytes=0-` transfers once buffered, or when seeking.
            log.debug("sendfile to %s stopped: %r", get_client_addr(self.scope), exc)
            self._abort()
            return False
        if sent < count:
            # The file shrank after the headers went out; the framing cannot be repaired.
            log.warning("file ended %d bytes early; closing the connection", count - sent)
            self._abort()
            return False
        self.expected_content_length -= count
        return True

    async def _copy_chunked(self, file: IO[bytes], offset: int, count: int) -> None:
        """A file inside a chunked response: no Content-Length to sendfile against, so copy."""
        fd = file.fileno()
        end = offset + count
        while offset < end and not self.disconnected:
            data = await asyncio.to_thread(os.pread, fd, min(COPY_CHUNK, end - offset), offset)
            if not data:
                break
            offset += len(data)
            await super().send({"type": "http.response.body", "body": data, "more_body": True})

    def _complete(self) -> None:
        # Same bookkeeping as the end of uvicorn's send(): keep-alive, pipelining, timers.
        if self.chunked_encoding and self.scope["method"] != "HEAD":
            self.transport.write(b"0\r\n\r\n")
        elif self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()

    def _abort(self) -> None:
        # `disconnected` first: uvicorn runs connection_lost only after the app returns, and
        # without it run_asgi logs "returned without completing response" for every abort.
        self.disconnected = True
        self.message_event.set()
        self.transport.close()


def _span(file: IO[bytes], offset: int | None, count: int | None) -> tuple[int, int]:
    """(offset, count) of a zerocopysend message; the defaults mean "from here" and "to EOF"."""
    fd = file.fileno()
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    if count is None:
        count = max(0, os.fstat(fd).st_size - offset)
    return offset, count


async def sendfile_to(transport: asyncio.Transport, file_fd: int, offset: int, count: int) -> int:
    """os.sendfile `count` bytes of `file_fd` into the transport's socket; the bytes sent.

    Fewer than `count` only when the file ended early. Raises OSError when the client is gone
    and TimeoutError (an OSError) after SEND_STALL_TIMEOUT seconds without progress.

    Why not `loop.sendfile()`: it re-registers the writer and allocates a handle on every
    writability event (~600 per GiB on loopback); on this 2-vCPU VM that Python work cost as
    much CPU per GiB as the copy itself, twice nginx. Instead:
    - one non-blocking os.sendfile right away: thumbnails and most ranges leave in that call;
    - a big remainder goes to a sendfile thread that makes one blocking call, so Python
      costs nothing per GiB;
    - when all those threads are busy, the loop drives it: a writer callback that stays
      registered for the whole body.
    Internals used (also used by loop.sendfile itself, gated by `sendfile_capable()`): the
    selector transport's `_make_empty_waiter` and the loop's `_add_writer`/`_remove_writer`.
    """
    if transport.is_closing():
        raise ConnectionResetError("the transport is closing")
    if transport.get_write_buffer_size():
        await _flushed(transport)  # our status line and headers must leave first
    sock = transport.get_extra_info("socket")
    loop = asyncio.get_running_loop()
    job = _Transfer(loop, sock.fileno(), file_fd, offset, count)
    job.step()
    if job.finished:
        return job.result()
    # The client's next (pipelined) request waits; uvicorn does the same while it writes. It
    # also keeps the loop away from the socket while a thread owns it.
    reading = transport.is_reading()
    transport.pause_reading()
    try:
        if job.left >= THREAD_MIN_BYTES and _threads.has_room(sock):
            return job.sent + await _threads.send(sock, file_fd, job.offset, job.left)
        return await _drive_from_loop(loop, job)
    finally:
        if reading and not transport.is_closing():
            transport.resume_reading()


async def _drive_from_loop(loop: asyncio.AbstractEventLoop, job: _Transfer) -> int:
    loop._add_writer(job.sock_fd, job.step)  # type: ignore[attr-defined]
    job.watchdog = loop.call_later(SEND_STALL_TIMEOUT, job.check_stall)
    try:
        return await job.wait()
    finally:
        loop._remove_writer(job.sock_fd)  # type: ignore[attr-defined]
        job.watchdog.cancel()


class _SendfileThreads:
    """Threads that each run one blocking os.sendfile for a big body: the kernel does the
    waiting, so Python costs nothing per GiB (the event loop needs ~1 wakeup per 1.5 MiB).

    For the call the socket is in blocking mode; the loop keeps away from it meanwhile
    (reading paused, nothing buffered). A blocking call has no usable timeout (SO_SNDTIMEO
    is not honoured by every splice path), so a watchdog on the loop reads the bytes the
    client acknowledged (TCP_INFO) and shuts the socket down when they stop moving. At most
    SENDFILE_THREADS at once: a thread is held for the whole transfer, even by a slow client.
    """

    def __init__(self) -> None:
        self.busy = 0
        self._pool: ThreadPoolExecutor | None = None

    def has_room(self, sock: Any) -> bool:
        return self.busy < SENDFILE_THREADS and sock.family in (socket.AF_INET, socket.AF_INET6)

    async def send(self, sock: Any, file_fd: int, offset: int, count: int) -> int:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SENDFILE_THREADS, thread_name_prefix="sendfile")
        loop = asyncio.get_running_loop()
        watchdog = _AckWatchdog(loop, sock)
        os.set_blocking(sock.fileno(), True)
        work = self._pool.submit(_blocking_sendfile, sock.fileno(), file_fd, offset, count)
        self.busy += 1
        try:
            return await asyncio.wrap_future(work)
        except OSError:
            if watchdog.fired:
                raise TimeoutError("no byte acknowledged within the stall timeout") from None
            raise
        except asyncio.CancelledError:
            # Server shutdown. The thread must be out before uvicorn closes the socket, or
            # it could write into a new connection that reuses the fd number.
            sock.shutdown(socket.SHUT_RDWR)
            wait_threads([work], timeout=5)
            raise
        finally:
            self.busy -= 1
            watchdog.cancel()
            with contextlib.suppress(OSError):  # closed already if the client reset it
                os.set_blocking(sock.fileno(), False)


def _blocking_sendfile(sock_fd: int, file_fd: int, offset: int, count: int) -> int:
    """In a sendfile thread: normally one call moves the whole body."""
    sent = 0
    while sent < count:
        chunk = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        if chunk == 0:
            break  # end of file: it shrank
        sent += chunk
    return sent


# struct tcp_info (linux/tcp.h, append-only ABI): u64 tcpi_bytes_acked at byte 120.
_TCP_INFO_BYTES_ACKED = 120


class _AckWatchdog:
    """Shuts the socket down when the client has acknowledged nothing for the stall timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any) -> None:
        self.loop, self.sock = loop, sock
        self.fired = False
        self.acked = self._bytes_acked()
        self.since = loop.time()
        self.timer = loop.call_later(self._period(), self.check)

    def check(self) -> None:
        acked = self._bytes_acked()
        if acked != self.acked:
            self.acked, self.since = acked, self.loop.time()
        elif self.loop.time() - self.since >= SEND_STALL_TIMEOUT:
            self.fired = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # the blocked sendfile returns EPIPE
            return
        self.timer = self.loop.call_later(self._period(), self.check)

    def cancel(self) -> None:
        self.timer.cancel()

    def _bytes_acked(self) -> int:
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 128)
        except OSError:
            return -1
        return int.from_bytes(info[_TCP_INFO_BYTES_ACKED : _TCP_INFO_BYTES_ACKED + 8], "little")

    @staticmethod
    def _period() -> float:
        return SEND_STALL_TIMEOUT / 4


_threads = _SendfileThreads()


async def _flushed(transport: asyncio.Transport) -> None:
    """Wait until the transport's buffer is empty (it filled while the socket was full)."""
    waiter = transport._make_empty_waiter()  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(SEND_STALL_TIMEOUT):
            await waiter
    finally:
        transport._reset_empty_waiter()  # type: ignore[attr-defined]


class _Transfer:
    """One body on its way: os.sendfile on each writability event until done or failed."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock_fd: int, file_fd: int, offset: int, count: int
    ) -> None:
        self.loop = loop
        self.sock_fd, self.file_fd = sock_fd, file_fd
        self.offset, self.left, self.sent = offset, count, 0
        self.finished = False
        self.error: OSError | None = None
        self.future: asyncio.Future[None] | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.last_progress = loop.time()

    def step(self) -> None:
        if self.finished:
            return  # a writability event that raced with the end of the transfer
        try:
            sent = os.sendfile(self.sock_fd, self.file_fd, self.offset, self.left)
        except (BlockingIOError, InterruptedError):
            return  # socket full: wait for the next writability event
        except OSError as exc:
            self._finish(exc)
            return
        self.offset += sent
        self.sent += sent
        self.left -= sent
        self.last_progress = self.loop.time()
        if sent == 0 or self.left == 0:  # 0 means end of file: the file shrank
            self._finish(None)

    def check_stall(self) -> None:
        """Timer callback: fail after SEND_STALL_TIMEOUT without a byte accepted (nginx's
        send_timeout), otherwise look again when that much time has passed since progress."""
        idle = self.loop.time() - self.last_progress
        if idle >= SEND_STALL_TIMEOUT:
            self._finish(TimeoutError(f"no progress for {idle:.0f} s"))
        else:
            self.watchdog = self.loop.call_later(SEND_STALL_TIMEOUT - idle, self.check_stall)

    async def wait(self) -> int:
        self.future = self.loop.create_future()
        if not self.finished:
            await self.future
        return self.result()

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        return self.sent

    def _finish(self, error: OSError | None) -> None:
        if self.finished:
            return
        self.finished, self.error = True, error
        if self.future is not None and not self.future.done():
            self.future.set_result(None)


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """httptools protocol that advertises and implements pathsend and zerocopysend."""

    # serve() uses StreamingHttpToolsProtocol instead when the sendfile self-test fails.
    zero_copy = True
    _advertise = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Decided once per connection: the loop and the transport kind cannot change.
        self._advertise = self.zero_copy and sendfile_capable(self.loop, transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._advertise:
            self.scope["extensions"] = {PATHSEND: {}, ZEROCOPYSEND: {}}

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn builds the cycle inline in on_headers_complete; this hook is the one place
        # every cycle (first or pipelined) passes through, so upgrade it here. ZeroCopyCycle
        # adds methods only, no state, which makes the class swap safe.
        if self._advertise:
            cycle.__class__ = ZeroCopyCycle
        super()._start_asgi_task(cycle, app)


class StreamingHttpToolsProtocol(ZeroCopyHttpToolsProtocol):
    """The same protocol with the extensions off (sendfile failed its self-test): apps stream."""

    zero_copy = False


# --- start-up self-test -------------------------------------------------------------------


def sendfile_self_test(roots: tuple[Path, ...]) -> bool:
    """Prove os.sendfile works from every media root into a socket.

    Some filesystems (FUSE, some network mounts) refuse sendfile with EINVAL, and asyncio
    reports that exactly like a client that hung up, so a failure at request time would look
    like silent, endless aborts. Testing once at start-up turns it into one loud log line and
    a correct (streaming) fallback.
    """
    ok = True
    for root in roots:
        if not root.is_dir():
            log.warning("media root %s does not exist (yet); nothing to test there", root)
            continue
        try:
            if not _self_test_root(root):
                log.error("sendfile self-test in %s returned other bytes than the file holds", root)
                ok = False
        except OSError as exc:
            log.error("sendfile self-test failed in %s: %s", root, exc)
            ok = False
    if not ok:
        log.error("zero-copy media serving is OFF: sendfile does not work from the media roots")
    return ok


def _self_test_root(root: Path) -> bool:
    sample = _sample_file(root)
    if sample is not None:
        with open(sample, "rb", buffering=0) as file:
            return _sendfile_roundtrip(file)
    try:
        # An empty root: a temporary file tells us about the filesystem just as well.
        with tempfile.TemporaryFile(dir=root) as tmp:
            tmp.write(os.urandom(SELF_TEST_BYTES))
            tmp.flush()
            return _sendfile_roundtrip(tmp)
    except PermissionError:
        log.warning("media root %s is empty and read-only; sendfile not tested there", root)
        return True


def _sample_file(root: Path) -> Path | None:
    """A non-empty regular file under root, looking at a bounded number of entries."""
    for seen, entry in enumerate(_walk(root)):
        if seen >= SELF_TEST_SCAN_LIMIT:
            return None
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_size > 0:
                return Path(entry.path)
        except OSError:
            continue
    return None


def _walk(root: Path) -> Iterator[os.DirEntry[str]]:
    pending = [root]
    while pending:
        try:
            with os.scandir(pending.pop(0)) as entries:
                for entry in entries:
                    yield entry
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError:
            continue


def _sendfile_roundtrip(file: IO[bytes]) -> bool:
    fd = file.fileno()
    st = os.fstat(fd)
    size = min(SELF_TEST_BYTES, st.st_size)
    if not stat.S_ISREG(st.st_mode) or size == 0:
        return True
    expected = os.pread(fd, size, 0)
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(5)
        right.settimeout(5)
        sent = 0
        while sent < size:
            sent += os.sendfile(left.fileno(), fd, sent, size - sent)
        received = b""
        while len(received) < size:
            received += right.recv(size - len(received))
    return received == expected


# --- running it ---------------------------------------------------------------------------


def server_config(
    settings: Settings, app: Any = None, *, zero_copy: bool = True, configure_logging: bool = True
) -> uvicorn.Config:
    """The uvicorn Config `serve()` runs; tests start the very same one on a test socket.

    `configure_logging=False` leaves logging alone (uvicorn.Config applies it on creation),
    so pytest's caplog still sees uvicorn's records.
    """
    if app is None:
        from kernel.app import create_app  # not at import time: the app pulls in every handler

        app = create_app(settings=settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=ZeroCopyHttpToolsProtocol if zero_copy else StreamingHttpToolsProtocol,
        loop="asyncio",  # loop.sendfile is native only on the stdlib selector loop
        lifespan="on",
        log_config=logging_config(settings.log_level) if configure_logging else None,
        # Traefik writes the access log; per-request logging here costs ~10 % on thumbnails.
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def serve(settings: Settings) -> None:
    """Run BrahmaHub's HTTP server until SIGINT/SIGTERM (blocking). `brahmahub serve` has set
    up logging already; uvicorn applies the same config again when its Config is built."""
    # Ours to write into (proxies, thumbnails); made now so the self-test covers it too.
    settings.proxy_dir.mkdir(parents=True, exist_ok=True)
    zero_copy = sendfile_self_test(settings.media_roots)
    if zero_copy:
        log.info("zero-copy media serving on (sendfile self-test passed)")
    uvicorn.Server(server_config(settings, zero_copy=zero_copy)).run()
