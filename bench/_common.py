"""Helpers shared by the benches: system packages, processes, /proc accounting, wrk, charts.

Everything here talks to 127.0.0.1 (or the one --url an operator gives) and is bounded in time.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GiB = 1024**3
MiB = 1024**2


# --- system packages ------------------------------------------------------------------------


def ensure_debs(binaries: dict[str, str]) -> None:
    """Install the Debian packages providing `binaries` ({binary: package}) when missing.

    A fresh machine has neither nginx nor wrk; installing them is the bench's job, not the
    user's. The bench never uses the system nginx service: it runs its own nginx with its own
    config on a free port.
    """
    missing = sorted({pkg for binary, pkg in binaries.items() if not find_binary(binary)})
    if not missing:
        return
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    still = [binary for binary in binaries if not find_binary(binary)]
    if still:
        raise SystemExit(f"could not install {', '.join(still)}")


def find_binary(name: str) -> str | None:
    # nginx lives in /usr/sbin, which is not on every user's PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A server child process in its own session (so we stop exactly it), output in a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, url: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited early; see {self.log}:\n{tail(self.log)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- /proc accounting -----------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (nginx: master + worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _read_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class CpuTimes:
    """The machine-wide `cpu` line of /proc/stat, for busy and steal fractions."""

    total: int
    idle: int
    steal: int

    @classmethod
    def now(cls) -> CpuTimes:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        return cls(total=sum(values[:8]), idle=values[3] + values[4], steal=values[7])

    def steal_percent_since(self, earlier: CpuTimes) -> float:
        elapsed = self.total - earlier.total
        return 100.0 * (self.steal - earlier.steal) / elapsed if elapsed else 0.0

    def busy_seconds_since(self, earlier: CpuTimes) -> float:
        """CPU-seconds the whole machine spent busy (all CPUs together)."""
        elapsed = self.total - earlier.total
        return (elapsed - (self.idle - earlier.idle)) / CLOCK_TICKS

    def capacity_seconds_since(self, earlier: CpuTimes) -> float:
        return (self.total - earlier.total) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    """CPU of reaped child processes (wrk, once it has exited), user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- wrk ------------------------------------------------------------------------------------

# Appended to every wrk script: one machine-readable line with what the run measured.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    bytes: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_us: int
    p99_us: int
    mean_us: float

    @property
    def seconds(self) -> float:
        return self.duration_us / 1e6

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MiB / self.seconds


def write_wrk_script(path: Path, body: str) -> Path:
    path.write_text(body + WRK_REPORT)
    return path


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    script: Path,
    threads: int = 2,
    headers: Sequence[str] = (),
) -> WrkResult:
    threads = min(threads, connections)
    argv = [
        find_binary("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
    ]
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=duration + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return WrkResult(**json.loads(line.removeprefix("WRKJSON ")))
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr or done.stdout}")


# --- output ---------------------------------------------------------------------------------


def write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str) + "\n")


def table(rows: list[list[str]], header: list[str]) -> str:
    """A markdown table (readable in a terminal, pasteable into an issue)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
