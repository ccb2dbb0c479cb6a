"""The real `brahmahub serve` process: fresh start, restart, two at once, kill -9, Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from kernel.embedded_pg import EmbeddedPostgres
from kernel.migrate import ADVISORY_LOCK_KEY, SQL_DIR

BRAHMAHUB = str(Path(sys.executable).parent / "brahmahub")
MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql")
    for p in SQL_DIR.glob("*.sql")
    if not p.name.endswith(".rollback.sql")
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """One `brahmahub serve` child process in its own process group, output in a file."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"serve-{self.port}.log"
        clean_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [BRAHMAHUB, "serve", "--port", str(self.port)],
                cwd=tmp_path,
                env={**clean_env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_healthy(self, timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited early:\n{self.output}"
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not healthy after {timeout}s:\n{self.output}")

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it: a clean stop ends with the shell's 130 for SIGINT."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=30) == 130, self.output
        assert "Traceback" not in self.output

    def kill_group(self) -> None:
        """kill -9 of the whole process group, as systemd does after a failed stop."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def fresh_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """An empty database on the session server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn.replace("/postgres?", f"/{name}?")
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def applied_migrations(dsn: str) -> list[tuple[str, int]]:
    """(migration id, times applied) from yoyo's log."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' "
            "GROUP BY migration_id ORDER BY migration_id"
        ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def test_fresh_home_serves_with_embedded_database_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Serve(tmp_path, BRAHMAHUB_HOME=str(home))
    assert first.wait_healthy()["database"] == "ok"
    embedded = EmbeddedPostgres(home / "pg")
    assert embedded.is_running()
    assert f"database schema up to date ({len(MIGRATION_IDS)} migrations applied now)" in (
        first.output
    )
    first.interrupt()
    assert not embedded.is_running(), "Ctrl-C must stop the embedded database"

    second = Serve(tmp_path, BRAHMAHUB_HOME=str(home))
    assert second.wait_healthy()["status"] == "ok"
    assert "database schema up to date (0 migrations applied now)" in second.output
    second.interrupt()


def test_two_processes_starting_together_migrate_once_and_both_serve(
    tmp_path: Path, fresh_database: str
) -> None:
    servers = [Serve(tmp_path, DATABASE_URL=fresh_database) for _ in range(2)]
    try:
        for server in servers:
            assert server.wait_healthy()["database"] == "ok"
    finally:
        for server in servers:
            server.interrupt()
    assert applied_migrations(fresh_database) == [(m, 1) for m in MIGRATION_IDS]


def _advisory_lock_held(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s AND objid = %s",
            (ADVISORY_LOCK_KEY >> 32, ADVISORY_LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
    return bool(row and row[0])


def test_kill_9_while_migrating_does_not_block_the_next_start(
    tmp_path: Path, fresh_database: str
) -> None:
    victim = Serve(tmp_path, DATABASE_URL=fresh_database)
    deadline = time.monotonic() + 30
    while not _advisory_lock_held(fresh_database) and victim.process.poll() is None:
        assert time.monotonic() < deadline, victim.output
    victim.kill_group()

    survivor = Serve(tmp_path, DATABASE_URL=fresh_database)
    try:
        assert survivor.wait_healthy(timeout=30)["database"] == "ok"
    finally:
        survivor.interrupt()
    assert [m for m, _ in applied_migrations(fresh_database)] == MIGRATION_IDS


def test_kill_9_while_creating_the_embedded_cluster_then_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    victim = Serve(tmp_path, BRAHMAHUB_HOME=str(home))
    deadline = time.monotonic() + 30
    while not (home / "pg" / "data.init").exists():
        assert time.monotonic() < deadline and victim.process.poll() is None, victim.output
        time.sleep(0.005)
    victim.kill_group()

    survivor = Serve(tmp_path, BRAHMAHUB_HOME=str(home))
    try:
        assert survivor.wait_healthy()["database"] == "ok"
    finally:
        survivor.interrupt()
    assert not EmbeddedPostgres(home / "pg").is_running()


def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [BRAHMAHUB, "serve"],
        cwd=tmp_path,
        env={**os.environ, "PORT": "abc"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "brahmahub: PORT='abc' is not a whole number\n"


def test_unstartable_embedded_database_says_why_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Serve(tmp_path, BRAHMAHUB_HOME=str(tmp_path / "home"), EMBEDDED_PG_PORT=str(port))
        assert server.process.wait(timeout=60) == 3, server.output
    assert "Traceback" not in server.output
    assert "the embedded PostgreSQL in " in server.output
    assert "did not start" in server.output
    assert "could not bind IPv4 address" in server.output


@pytest.mark.parametrize("command", [[], ["serve"], ["migrate"], ["version"]])
def test_help(command: list[str]) -> None:
    result = subprocess.run(
        [BRAHMAHUB, *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: brahmahub")
