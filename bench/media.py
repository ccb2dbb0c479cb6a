"""Media server vs nginx: the guard that keeps /media zero-copy and close to nginx.

    python -m bench.media                  # full run (~5 min): gates, table, JSON + PNG
    python -m bench.media --quick          # smoke run (~1 min), same gates, noisier numbers
    python -m bench.media --url https://brahmahub.example --range-path /media/x/proxy.mp4 \\
        --thumb-path /media/x/t1.jpg -H "Cookie: session=..."   # client side only, live host

Local mode generates its data (a 1 GiB file, a 64 MiB file, 1,000 30 KiB thumbnails) and
starts, all on 127.0.0.1: nginx (Debian nginx-light, 1 worker, sendfile on), our server (the
real `brahmahub serve`: create_app + the zero-copy protocol; embedded PostgreSQL unless
DATABASE_URL is set) and stock Starlette FileResponse on uvicorn as the floor. Each point runs
wrk against the three servers interleaved, after a warm-up, for --reps repetitions; server
CPU comes from /proc/PID/stat and a run with more than 2 % steal is repeated. nginx and wrk
are installed with apt-get when missing. Exit status 1 when a gate fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import (
    CpuTimes,
    GiB,
    MiB,
    Service,
    WrkResult,
    children_cpu_seconds,
    cpu_seconds,
    ensure_debs,
    find_binary,
    free_port,
    process_tree,
    run_wrk,
    table,
    write_json,
    write_wrk_script,
)

STEAL_LIMIT_PERCENT = 2.0
MAX_ATTEMPTS = 3  # a run with too much steal is repeated at most this often
THUMBS = 1000
THUMB_SIZE = 30 * 1024
THUMB_DIR = "proxies/thumbs"  # under PROXY_DIR, like real thumbnails
READY_PATH = f"/media/{THUMB_DIR}/t0000.jpg"
SERVERS = ("nginx", "ours", "stock")


@dataclass(frozen=True)
class Point:
    name: str
    what: str
    connections: int
    script: str  # "full", "range" or "thumbs"


POINTS = (
    Point("full64_c8", "GET 64 MiB file", 8, "full"),
    Point("range1m_c8", "random 1 MiB ranges of 1 GiB", 8, "range"),
    Point("range1m_c64", "random 1 MiB ranges of 1 GiB", 64, "range"),
    Point("thumb30k_c64", "random 30 KiB thumbnails", 64, "thumbs"),
)


@dataclass(frozen=True)
class Gate:
    name: str
    point: str
    metric: str  # a key of the per-server summary
    versus: str  # the server in the denominator
    op: str  # ">=" or "<="
    threshold: float


GATES = (
    Gate("64 MiB c=8 throughput / nginx", "full64_c8", "mib_per_s", "nginx", ">=", 0.85),
    Gate("64 MiB c=8 CPU-s per GiB / nginx", "full64_c8", "cpu_s_per_gib", "nginx", "<=", 1.3),
    Gate("1 MiB ranges c=8 req/s / nginx", "range1m_c8", "requests_per_s", "nginx", ">=", 0.5),
    Gate("1 MiB ranges c=8 p99 / nginx", "range1m_c8", "p99_ms", "nginx", "<=", 2.5),
    Gate("1 MiB ranges c=64 req/s / nginx", "range1m_c64", "requests_per_s", "nginx", ">=", 0.5),
    Gate("1 MiB ranges c=64 p99 / nginx", "range1m_c64", "p99_ms", "nginx", "<=", 2.5),
    Gate("30 KiB thumbs c=64 req/s / stock", "thumb30k_c64", "requests_per_s", "stock", ">=", 2.5),
)


@dataclass
class Run:
    server: str
    point: str
    rep: int
    attempts: int
    steal_percent: float
    server_cpu_s: float
    wrk: WrkResult
    others_percent: float = 0.0  # machine CPU used by neither the server nor wrk

    @property
    def gib(self) -> float:
        return self.wrk.bytes / GiB

    def line(self) -> str:
        w = self.wrk
        if self.server == "live":  # client side only: nothing known about the server machine
            return (
                f"{self.point:<13} rep {self.rep}: {w.requests_per_s:9.0f} req/s "
                f"{w.mib_per_s:8.0f} MiB/s  p99 {w.p99_us / 1000:7.1f} ms  errors {_errors(w)}"
            )
        cpu = f"{self.server_cpu_s / self.gib:.2f} s/GiB" if self.server_cpu_s else "-"
        return (
            f"{self.point:<13} {self.server:<6} rep {self.rep}: {w.requests_per_s:9.0f} req/s "
            f"{w.mib_per_s:8.0f} MiB/s  p99 {w.p99_us / 1000:7.1f} ms  cpu {cpu}  "
            f"steal {self.steal_percent:.1f} %  others {self.others_percent:.0f} %  "
            f"errors {_errors(w)}"
        )


def _errors(w: WrkResult) -> int:
    return w.connect_errors + w.read_errors + w.write_errors + w.status_errors + w.timeouts


# --- data and wrk scripts -----------------------------------------------------------------


def make_data(data: Path) -> None:
    """Generate the files once (kept between runs) and pull them into the page cache."""
    block = b""
    for name, size in (("mid64m.bin", 64 * MiB), ("big1g.bin", GiB)):
        path = data / name
        if not path.exists() or path.stat().st_size != size:
            block = block or os.urandom(64 * MiB)
            data.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                for _ in range(size // len(block)):  # random, repeated: sendfile cannot tell
                    out.write(block)
    thumbs = data / THUMB_DIR
    thumbs.mkdir(parents=True, exist_ok=True)
    for index in range(THUMBS):
        path = thumbs / f"t{index:04d}.jpg"
        if not path.exists() or path.stat().st_size != THUMB_SIZE:
            path.write_bytes(os.urandom(THUMB_SIZE))
    for path in [data / "mid64m.bin", data / "big1g.bin", *thumbs.iterdir()]:
        with open(path, "rb") as file:
            while file.read(8 * MiB):
                pass


_SEED = """
init = function(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
end
"""


def write_scripts(
    folder: Path, *, full: str, big: str, big_size: int, thumbs: Sequence[str]
) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = ", ".join(f'"{t}"' for t in thumbs)
    scripts = {
        "full": f'request = function() return wrk.format("GET", "{full}") end\n',
        "range": _SEED
        + f"""
local path, size, span = "{big}", {big_size}, 1048576
local slots = math.max(1, math.floor(size / span))
request = function()
  local start = math.random(0, slots - 1) * span
  local headers = {{}}
  for k, v in pairs(wrk.headers) do headers[k] = v end  -- keep -H headers (auth)
  headers["Range"] = "bytes=" .. start .. "-" .. (start + span - 1)
  return wrk.format("GET", path, headers)
end
""",
        "thumbs": _SEED
        + f"""
local paths = {{{names}}}
request = function() return wrk.format("GET", paths[math.random(1, #paths)]) end
""",
    }
    return {name: write_wrk_script(folder / f"{name}.lua", body) for name, body in scripts.items()}


# --- the three servers --------------------------------------------------------------------


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    types {{ image/jpeg jpg; }}
    client_body_temp_path {work}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        location /media/ {{ alias {data}/; }}
    }}
}}
"""


def start_nginx(work: Path, data: Path, port: int) -> Service:
    conf = work / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # the workers must read the data
    conf.write_text(NGINX_CONF.format(work=work, data=data, port=port, user=user))
    nginx = find_binary("nginx") or "nginx"
    return Service("nginx", [nginx, "-c", str(conf), "-p", str(work)], work / "nginx.log")


def start_ours(work: Path, data: Path, port: int) -> Service:
    """The product itself: `brahmahub serve` with its defaults (embedded DB if no DATABASE_URL)."""
    env = {
        "MEDIA_ROOT_PATHS": str(data),
        "PROXY_DIR": str(data / "proxies"),
        "BRAHMAHUB_HOME": str(work / "home"),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "kernel.cli", "serve", "--port", str(port)]
    return Service("ours", argv, work / "ours.log", env=env, cwd=work)


def start_stock(work: Path, data: Path, port: int) -> Service:
    argv = [sys.executable, "-m", "bench.media", "--serve-stock", str(data), "--port", str(port)]
    return Service("stock", argv, work / "stock.log", cwd=work)


def serve_stock(data: Path, port: int) -> None:
    """Stock Starlette FileResponse on stock uvicorn (httptools, default loop): the floor."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def media(request: Request) -> FileResponse:
        return FileResponse(data / request.path_params["path"])

    app = Starlette(routes=[Route("/media/{path:path}", media)])
    uvicorn.run(
        app, host="127.0.0.1", port=port, http="httptools", log_level="warning", access_log=False
    )


# --- measuring ----------------------------------------------------------------------------


def measure(
    name: str,
    pids: list[int],
    url: str,
    point: Point,
    scripts: dict[str, Path],
    duration: float,
    rep: int,
) -> Run:
    """One wrk run; repeated while the machine's steal is above the limit."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        cpu_before, wrk_before = cpu_seconds(pids), children_cpu_seconds()
        machine_before = CpuTimes.now()
        result = run_wrk(
            url, connections=point.connections, duration=duration, script=scripts[point.script]
        )
        machine = CpuTimes.now()
        server_cpu = cpu_seconds(pids) - cpu_before
        # What neither the server nor wrk used: other people's work on this shared machine.
        others = machine.busy_seconds_since(machine_before) - server_cpu
        others -= children_cpu_seconds() - wrk_before
        others_percent = 100 * max(0.0, others) / machine.capacity_seconds_since(machine_before)
        steal = machine.steal_percent_since(machine_before)
        run = Run(name, point.name, rep, attempt, steal, server_cpu, result, others_percent)
        if steal <= STEAL_LIMIT_PERCENT:
            break
        print(f"  steal {steal:.1f} % > {STEAL_LIMIT_PERCENT} %: repeating this run", flush=True)
    return run


def summarise(runs: list[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """Per point and server: means over the repetitions (CPU per GiB over their sums)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for point in {r.point for r in runs}:
        for server in {r.server for r in runs if r.point == point}:
            mine = [r for r in runs if r.point == point and r.server == server]
            gib = sum(r.gib for r in mine)
            out.setdefault(point, {})[server] = {
                "requests_per_s": statistics.mean(r.wrk.requests_per_s for r in mine),
                "mib_per_s": statistics.mean(r.wrk.mib_per_s for r in mine),
                "p99_ms": statistics.mean(r.wrk.p99_us / 1000 for r in mine),
                "cpu_s_per_gib": sum(r.server_cpu_s for r in mine) / gib if gib else 0.0,
                "max_steal_percent": max(r.steal_percent for r in mine),
                "max_others_percent": max(r.others_percent for r in mine),
                "errors": sum(_errors(r.wrk) for r in mine),
            }
    return out


def judge(summary: dict[str, dict[str, dict[str, float]]], log_errors: int) -> list[dict[str, Any]]:
    results = []
    for gate in GATES:
        ours = summary[gate.point]["ours"][gate.metric]
        base = summary[gate.point][gate.versus][gate.metric]
        ratio = ours / base if base else float("inf")
        passed = ratio >= gate.threshold if gate.op == ">=" else ratio <= gate.threshold
        results.append({**asdict(gate), "ratio": ratio, "passed": passed})
    clean = {"name": "our server logged no errors", "value": log_errors, "passed": log_errors == 0}
    results.append(
        {
            **clean,
            "point": "-",
            "metric": "log",
            "versus": "-",
            "op": "==",
            "threshold": 0,
            "ratio": log_errors,
        }
    )
    return results


def log_errors(path: Path) -> int:
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback"))


# --- local mode ---------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    ensure_debs({"nginx": "nginx-light", "wrk": "wrk"})
    work = args.work.resolve()
    data = work / "data"
    print(f"data in {data} (generated once, then reused)", flush=True)
    make_data(data)
    thumbs = [f"/media/{THUMB_DIR}/t{i:04d}.jpg" for i in range(THUMBS)]
    scripts = write_scripts(
        work / "wrk", full="/media/mid64m.bin", big="/media/big1g.bin", big_size=GiB, thumbs=thumbs
    )
    starters = {"nginx": start_nginx, "ours": start_ours, "stock": start_stock}
    services: dict[str, Service] = {}
    urls: dict[str, str] = {}
    try:
        for name in SERVERS:
            port = free_port()
            services[name] = starters[name](work, data, port)
            urls[name] = f"http://127.0.0.1:{port}"
            services[name].wait_ready(urls[name] + READY_PATH)
        runs = interleave(services, urls, scripts, args)
    finally:
        for service in services.values():
            service.stop()
    summary = summarise(runs)
    gates = judge(summary, log_errors(work / "ours.log"))
    print_report(summary, gates)
    report = {
        "mode": "local",
        "machine": machine(),
        "settings": {"duration_s": args.duration, "reps": args.reps, "warmup_s": args.warmup},
        "runs": [{**asdict(r), "gib": r.gib} for r in runs],
        "summary": summary,
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(args.out / f"media-{stamp}.json", report)
    chart(gates, args.out / f"media-{stamp}.png")
    print(f"\nwrote {args.out / f'media-{stamp}.json'} and .png", flush=True)
    return 0 if report["passed"] else 1


def interleave(
    services: dict[str, Service],
    urls: dict[str, str],
    scripts: dict[str, Path],
    args: argparse.Namespace,
) -> list[Run]:
    """Per point: warm every server, then rep 1 over all servers, rep 2 over all servers..."""
    pids = {name: process_tree(service.pid) for name, service in services.items()}
    total = len(POINTS) * len(SERVERS) * args.reps
    runs: list[Run] = []
    for point in POINTS:
        for name in SERVERS:
            run_wrk(
                urls[name],
                connections=point.connections,
                duration=args.warmup,
                script=scripts[point.script],
            )
        for rep in range(1, args.reps + 1):
            for name in SERVERS:
                run = measure(name, pids[name], urls[name], point, scripts, args.duration, rep)
                runs.append(run)
                print(f"[{len(runs):2d}/{total}] {run.line()}", flush=True)
    return runs


def print_report(
    summary: dict[str, dict[str, dict[str, float]]], gates: list[dict[str, Any]]
) -> None:
    rows = []
    for point in POINTS:
        nginx = summary[point.name]["nginx"]
        for name in SERVERS:
            s = summary[point.name][name]
            rows.append(
                [
                    point.name,
                    name,
                    f"{s['requests_per_s']:.0f}",
                    f"{s['mib_per_s']:.0f}",
                    f"{s['requests_per_s'] / nginx['requests_per_s']:.2f}",
                    f"{s['p99_ms']:.1f}",
                    f"{s['cpu_s_per_gib']:.2f}",
                    f"{s['max_steal_percent']:.1f}",
                    f"{s['max_others_percent']:.0f}",
                ]
            )
    header = ["point", "server", "req/s", "MiB/s", "/nginx", "p99 ms", "CPU-s/GiB", "steal %"]
    header.append("others %")
    print("\n" + table(rows, header))
    gate_rows = [
        [
            g["name"],
            f"{g['ratio']:.2f}",
            f"{g['op']} {g['threshold']}",
            "PASS" if g["passed"] else "FAIL",
        ]
        for g in gates
    ]
    print("\n" + table(gate_rows, ["gate", "measured", "needs", "result"]))


def machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "-"
        return (
            (done.stdout + done.stderr).strip().splitlines()[0]
            if (done.stdout + done.stderr)
            else "-"
        )

    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": version([find_binary("nginx") or "nginx", "-v"]),
        "wrk": version([find_binary("wrk") or "wrk", "-v"]),
    }


def chart(gates: list[dict[str, Any]], path: Path) -> None:
    """One bar per ratio gate against its threshold line: green passes, red fails."""
    from PIL import Image, ImageDraw, ImageFont

    bars = [g for g in gates if g["metric"] != "log"]
    width, row, left, top = 1000, 46, 400, 50
    scale = (width - left - 40) / max(
        3.0, *(g["ratio"] for g in bars), *(g["threshold"] for g in bars)
    )
    image = Image.new("RGB", (width, top + row * len(bars) + 30), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    draw.text((10, 12), "BrahmaHub /media: ours / reference (line = gate)", fill="black", font=font)
    for index, gate in enumerate(bars):
        y = top + index * row
        colour = (46, 160, 67) if gate["passed"] else (207, 34, 46)
        label = f"{gate['name']} ({gate['op']} {gate['threshold']})"
        draw.text((10, y + 8), label, fill="black", font=font)
        draw.rectangle([left, y + 6, left + gate["ratio"] * scale, y + 30], fill=colour)
        draw.text(
            (left + gate["ratio"] * scale + 6, y + 8),
            f"{gate['ratio']:.2f}",
            fill="black",
            font=font,
        )
        x = left + gate["threshold"] * scale
        draw.line([x, y + 2, x, y + 34], fill="black", width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# --- live mode ----------------------------------------------------------------------------


def run_live(args: argparse.Namespace) -> int:
    """Client side only, against a deployment; absolute numbers, no nginx, no gates."""
    ensure_debs({"wrk": "wrk"})
    base = args.url.rstrip("/")
    headers = {
        name.strip(): value.strip() for name, value in (h.split(":", 1) for h in args.header)
    }
    big_size = 0
    if args.range_path:
        response = httpx.head(
            base + args.range_path, headers=headers, timeout=10, follow_redirects=True
        )
        response.raise_for_status()
        big_size = int(response.headers["content-length"])
    scripts = write_scripts(
        args.work / "wrk-live",
        full=args.full_path or "/",
        big=args.range_path or "/",
        big_size=big_size,
        thumbs=args.thumb_path or ["/"],
    )
    wanted = {"full": args.full_path, "range": args.range_path, "thumbs": args.thumb_path}
    points = [p for p in POINTS if wanted[p.script]]
    if not points:
        raise SystemExit("--url needs at least one of --full-path, --range-path, --thumb-path")
    runs = []
    for point in points:
        for rep in range(1, args.reps + 1):
            result = run_wrk(
                base,
                connections=point.connections,
                duration=args.duration,
                script=scripts[point.script],
                headers=args.header,
            )
            runs.append(Run("live", point.name, rep, 1, 0.0, 0.0, result))
            print(f"[{len(runs):2d}/{len(points) * args.reps}] {runs[-1].line()}", flush=True)
    summary = summarise(runs)
    rows = [
        [
            p,
            f"{s['live']['requests_per_s']:.0f}",
            f"{s['live']['mib_per_s']:.0f}",
            f"{s['live']['p99_ms']:.1f}",
            str(int(s["live"]["errors"])),
        ]
        for p, s in sorted(summary.items())
    ]
    print("\n" + table(rows, ["point", "req/s", "MiB/s", "p99 ms", "errors"]))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(
        args.out / f"media-live-{stamp}.json",
        {"mode": "live", "url": base, "runs": [asdict(r) for r in runs], "summary": summary},
    )
    return 0


# --- command line -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.media",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run: 2 s runs, 1 rep")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 8)")
    parser.add_argument("--reps", type=int, help="repetitions per point and server (default 2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up per point and server (default 2)"
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench"), help="where JSON and PNG go")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/brahmahub-bench-media"),
        help="data, configs and logs (about 1.1 GiB, reused)",
    )
    parser.add_argument("--url", help="run the client side only against this deployment")
    parser.add_argument("--full-path", help="--url: a large file to GET whole")
    parser.add_argument("--range-path", help="--url: a large file to read in random 1 MiB ranges")
    parser.add_argument("--thumb-path", action="append", help="--url: a thumbnail (repeatable)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], help="--url: extra request header"
    )
    parser.add_argument("--serve-stock", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = {"duration": 2.0, "reps": 1, "warmup": 1.0}
    full = {"duration": 8.0, "reps": 2, "warmup": 2.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_stock is not None:
        serve_stock(args.serve_stock, args.port)
        return 0
    return run_live(args) if args.url else run_local(args)


if __name__ == "__main__":
    sys.exit(main())
