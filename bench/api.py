"""API at scale: seed a million assets, serve them with the real server, measure p50/p99.

    python -m bench.api                 # 1,000,000 assets, 200 packages, 50 subjects
    python -m bench.api --quick         # 50,000 assets: a smoke run in seconds
    DATABASE_URL=... python -m bench.api   # use that database (seeded only if it has no assets)

Without DATABASE_URL a throw-away embedded PostgreSQL is started in a temporary folder. The
catalog is seeded in SQL with generate_series, ANALYZEd, then `brahmahub serve` is started on a
free 127.0.0.1 port and each case is requested sequentially (latency, not throughput) over HTTP.
The EXPLAIN plans of the handlers' own SQL are checked for the indexes they are meant to use.
Prints a table and writes JSON (default var/bench/api.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench._common import free_port
from handlers import packages, search, stats
from handlers._assets import AssetQuery, page_sql
from kernel import migrate
from kernel.embedded_pg import EmbeddedPostgres

P99_GOAL_MS = 50.0
DASHBOARD_GOAL_MS = 30.0
SUBJECTS = 50
PACKAGES = 200
PROJECTS = 5
# Filename fragments matching a few hundred assets each (a page's aggregates scan them all).
PAGE_SEARCH_TERMS = ["00042", "01234", "77777", "face_0099", "20000", "31415"]
# The global search box also gets broad terms (matching 25,000+ assets) and names.
SEARCH_TERMS = [*PAGE_SEARCH_TERMS, "shot_12", "subject 1", "pkg_01"]

# {projects}, {subjects}, {packages}: the bench's own integer constants.
SEED_CATALOG = """
INSERT INTO projects (name, project_type, client)
SELECT format('Project %s', p), CASE WHEN p % 2 = 0 THEN 'vfx' ELSE 'atman' END, 'Bench'
FROM generate_series(1, {projects}) p;

INSERT INTO subjects (project_id, name)
SELECT (SELECT id FROM projects ORDER BY name OFFSET (s % {projects}) LIMIT 1),
       format('Subject %s', s)
FROM generate_series(1, {subjects}) s;

INSERT INTO packages (subject_id, name, package_type, status, ingested_at, disk_path)
SELECT (SELECT id FROM subjects ORDER BY name OFFSET (k % {subjects}) LIMIT 1),
       format('pkg_%s', lpad(k::text, 4, '0')),
       CASE WHEN k % 3 = 0 THEN 'atman' ELSE 'vfx' END, 'ready',
       now() - make_interval(hours => k), format('/mnt/media/deliveries/pkg_%s', k)
FROM generate_series(1, {packages}) k;
"""

# One row per asset; numbers are derived from g so the data is the same on every run.
SEED_ASSETS = """
WITH pk AS (
    SELECT id, subject_id, disk_path, row_number() OVER (ORDER BY name) - 1 AS k FROM packages
), g AS (
    -- A package's assets are contiguous, as an ingest writes them.
    SELECT g::bigint AS g, floor(g / ceil($1::numeric / $2::int))::int AS k
    FROM generate_series($3::int, $4::int - 1) g
)
INSERT INTO assets (package_id, subject_id, filename, file_type, asset_type, mime_type,
                    file_size_bytes, disk_path, proxy_path, thumbnail_path, width, height,
                    duration_seconds, codec, camera, review_status, picked_up, tags, metadata,
                    created_at)
SELECT pk.id, pk.subject_id, f.filename,
       CASE WHEN g % 5 = 0 THEN 'video' ELSE 'image' END,
       CASE WHEN g % 5 = 0 THEN 'raw' ELSE 'aligned' END,
       CASE WHEN g % 5 = 0 THEN 'video/quicktime' ELSE 'image/png' END,
       100000 + (g * 7919) % 5000000,
       pk.disk_path || '/' || f.filename,
       CASE WHEN g % 5 = 0 THEN '/var/proxies/' || f.filename || '.mp4' END,
       '/var/proxies/' || f.filename || '.jpg',
       CASE WHEN g % 5 = 0 THEN 1920 ELSE 512 END,
       CASE WHEN g % 5 = 0 THEN 1080 ELSE 512 END,
       CASE WHEN g % 5 = 0 THEN 1 + (g % 600) / 10.0 END,
       CASE WHEN g % 5 = 0 THEN 'prores' ELSE 'PNG' END,
       CASE WHEN g % 5 = 0 THEN 'ARRI ALEXA' END,
       (ARRAY['unreviewed', 'approved', 'rejected', 'flagged'])[1 + (g / 7) % 4],
       g % 11 = 0,
       ARRAY['bench', CASE WHEN g % 5 = 0 THEN 'raw' ELSE 'aligned' END],
       CASE WHEN g % 5 = 0 THEN jsonb_build_object('fps', 24)
            ELSE jsonb_build_object('face', jsonb_build_object(
                'yaw', ((g * 37) % 180) - 90, 'pitch', ((g * 53) % 90) - 45,
                'sharpness', ((g * 13) % 1000) / 10.0, 'face_type', 'whole_face',
                'source_width', 3840, 'source_height', 2160)) END,
       now() - make_interval(secs => g)
FROM g
JOIN pk ON pk.k = g.k
CROSS JOIN LATERAL (
    SELECT format('%s_%s.%s', (ARRAY['face', 'shot', 'take', 'grid'])[1 + g % 4],
                  lpad(g::text, 7, '0'), CASE WHEN g % 5 = 0 THEN 'mov' ELSE 'png' END)
           AS filename
) f
"""


@dataclass
class Case:
    name: str
    urls: Callable[[int], str]
    goal_ms: float | None = P99_GOAL_MS  # None: measured for information, no goal
    after: Callable[[dict[str, Any]], None] | None = None  # sees each response body
    times_ms: list[float] = field(default_factory=list)


# --- database ------------------------------------------------------------------------------


@contextmanager
def database() -> Iterator[str]:
    """DATABASE_URL if set, else a throw-away embedded PostgreSQL in a temporary folder."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="bh-bench-", dir="/tmp") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", durable=False)
        dsn = server.start()
        try:
            yield dsn
        finally:
            server.stop()


async def seed(dsn: str, assets: int) -> bool:
    """Seed the catalog unless the database has assets already; True when it seeded.

    A bulk load: indexes dropped, per-row FK checks and triggers off (replica role), rows
    written by two connections at once, then counters and indexes rebuilt (two at once).
    """
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM assets)"):
            print("database has assets already: benchmarking them as they are")
            return False
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                SEED_CATALOG.format(projects=PROJECTS, subjects=SUBJECTS, packages=PACKAGES)
            )
            indexes = await _drop_asset_indexes(conn)
        half = assets // 2
        await asyncio.gather(_insert(dsn, assets, 0, half), _insert(dsn, assets, half, assets))
        await conn.execute("SELECT rebuild_catalog_counters()")
        inserted = time.perf_counter()
        # The trigram GIN index takes longest: it gets a connection to itself.
        gin = [d for d in indexes if "USING gin" in d and "search_key" in d]
        rest = [d for d in indexes if d not in gin]
        await asyncio.gather(_run_all(dsn, gin), _run_all(dsn, rest))
        indexed = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) assets")
        await conn.execute("ANALYZE")
        print(
            f"seeded {assets:,} assets in {indexed - started:.1f} s "
            f"(rows {inserted - started:.1f} s, indexes {indexed - inserted:.1f} s), "
            f"vacuum+analyze {time.perf_counter() - indexed:.1f} s"
        )
        return True
    finally:
        await conn.close()


async def _insert(dsn: str, assets: int, low: int, high: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(SEED_ASSETS, assets, PACKAGES, low, high)
    finally:
        await conn.close()


async def _run_all(dsn: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _drop_asset_indexes(conn: asyncpg.Connection) -> list[str]:
    """Every index of assets (constraints too), as the statements that rebuild them.

    A sorted build after the load is far cheaper than a million random b-tree inserts.
    """
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, c.conname,
                  pg_get_indexdef(i.indexrelid) AS def,
                  pg_get_constraintdef(c.oid) AS condef
           FROM pg_index i
           LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
           WHERE i.indrelid = 'assets'::regclass"""
    )
    rebuild = []
    for row in rows:
        if row["conname"]:
            await conn.execute(f"ALTER TABLE assets DROP CONSTRAINT {row['conname']}")
            rebuild.append(f"ALTER TABLE assets ADD CONSTRAINT {row['conname']} {row['condef']}")
        else:
            await conn.execute(f"DROP INDEX {row['name']}")
            rebuild.append(row["def"])
    return rebuild


async def sample_ids(dsn: str) -> dict[str, list[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM packages WHERE file_count > 0)"):
            raise SystemExit("bench.api: the database has no package with assets to measure")
        return {
            "packages": [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM packages WHERE file_count > 0 ORDER BY name LIMIT 50"
                )
            ],
            "vfx_packages": [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM packages WHERE package_type = 'vfx' AND file_count > 0 "
                    "ORDER BY name LIMIT 50"
                )
            ],
            "total": [await conn.fetchval("SELECT count(*) FROM assets")],
        }
    finally:
        await conn.close()


# --- EXPLAIN checks ------------------------------------------------------------------------


def _indexes_in(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        if plan.get("Node Type") == "Seq Scan":
            found.add(f"seqscan:{plan.get('Relation Name')}")
        for value in plan.values():
            found |= _indexes_in(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _indexes_in(item)
    return found


async def check_plans(dsn: str, ids: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """EXPLAIN the handlers' own SQL; each case names the index it must use."""
    pkg = (ids["vfx_packages"] or ids["packages"])[0]
    deep = min(4_999 * 200, max(ids["total"][0] - 200, 0))  # page 5,000 of 200
    cases: list[tuple[str, str, list[Any], str | None, str | None]] = []

    def page(name: str, must: str, q: AssetQuery, parent: Any = None) -> None:
        sql, args = page_sql(q, parent)
        cases.append((name, sql, args, must, "seqscan:assets"))

    page("asset page, no filter", "assets_filename", AssetQuery())
    page(
        "asset page, package filter",
        "assets_package_id_filename_id_key",
        AssetQuery(package_id=pkg),
        ("packages", pkg),
    )
    page(
        "asset page, pose bins",
        "assets_pose",
        AssetQuery(package_id=pkg, pose_bins="-20:0,-10:0,0:0,10:0"),
        ("packages", pkg),
    )
    page("asset page, search term", "assets_search", AssetQuery(search="00042"))
    page("asset page 5,000 by offset", "assets_filename", AssetQuery(offset=deep))
    cases.append(("search", search.SEARCH, ["00042", "%00042%", 5], "assets_search", None))
    cases.append(("dashboard", stats.DASHBOARD, [], None, "assets"))
    cases.append(
        (
            "package summary",
            packages.PACKAGE_SUMMARY,
            [pkg],
            "assets_package_id_filename_id_key|assets_pose",
            "seqscan:assets",
        )
    )
    conn = await asyncpg.connect(dsn)
    results = []
    try:
        for name, sql, args, must, must_not in cases:
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
            used = _indexes_in(plan)
            ok = must is None or any(m in used for m in must.split("|"))
            if must_not == "assets":  # the dashboard must not touch assets at all
                ok = ok and not any("assets" in u and "rollups" not in u for u in used)
            elif must_not:
                ok = ok and must_not not in used
            results.append({"case": name, "expects": must, "uses": sorted(used), "ok": ok})
    finally:
        await conn.close()
    return results


# --- server and measurement ----------------------------------------------------------------


@contextmanager
def server(dsn: str, home: Path) -> Iterator[str]:
    """The real `brahmahub serve` on a free 127.0.0.1 port, stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "BRAHMAHUB_HOME": str(home),
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not become healthy within 60 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def make_cases(client: httpx.Client, ids: dict[str, list[Any]]) -> list[Case]:
    pkgs = ids["packages"]
    vfx = ids["vfx_packages"] or pkgs
    total = ids["total"][0]
    page_5000 = min(4_999 * 200, max(total - 200, 0))  # page 5,000 of the SPA's 200
    cursor_state: dict[str, str | None] = {"next": None}

    def cursor_walk(i: int) -> str:
        # Each request continues from the previous page's next_cursor (restarting at the end).
        nxt = cursor_state["next"]
        return f"/api/assets?limit=200&cursor={nxt}" if nxt else "/api/assets?limit=200"

    def pick(items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    cases = [
        Case("assets page, no filter", lambda i: "/api/assets"),
        Case("assets page, package filter", lambda i: f"/api/assets?package_id={pick(pkgs, i)}"),
        Case(
            "assets page, pose bins",
            lambda i: f"/api/packages/{pick(vfx, i)}/assets?pose_bins=-20:0,-10:0,0:0,10:0",
        ),
        Case(
            "assets page, search term", lambda i: f"/api/assets?search={pick(PAGE_SEARCH_TERMS, i)}"
        ),
        Case("assets page 5,000 by offset", lambda i: f"/api/assets?offset={page_5000}"),
        # The worst offsets: a quarter and half way in (walked from the nearer end).
        Case(
            "  offset total/4, limit 50 (info)",
            lambda i: f"/api/assets?limit=50&offset={total // 4}",
            goal_ms=None,
        ),
        Case(
            "  offset total/2, limit 50 (info)",
            lambda i: f"/api/assets?limit=50&offset={total // 2}",
            goal_ms=None,
        ),
        Case(
            "assets cursor walk",
            cursor_walk,
            after=lambda body: cursor_state.update(next=body.get("next_cursor")),
        ),
        Case("search", lambda i: f"/api/search?q={pick(SEARCH_TERMS, i)}"),
        Case("dashboard", lambda i: "/api/stats/dashboard", goal_ms=DASHBOARD_GOAL_MS),
        Case("package summary", lambda i: f"/api/packages/{pick(vfx, i)}/summary"),
    ]
    return cases


def measure(base: str, ids: dict[str, list[Any]], requests: int, warmup: int) -> list[Case]:
    with httpx.Client(base_url=base, timeout=30) as client:
        cases = make_cases(client, ids)
        for case in cases:
            after = case.after
            for i in range(warmup + requests):
                started = time.perf_counter()
                response = client.get(case.urls(i))
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{case.name}: {response.status_code} {response.text}")
                if after:
                    after(response.json())
                if i >= warmup:
                    case.times_ms.append(elapsed)
    return cases


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(cases: list[Case], plans: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> bool:
    rows = []
    print(f"\n{'case':34} {'p50 ms':>8} {'p99 ms':>8} {'goal':>6}  result")
    for case in cases:
        p50, p99 = statistics.median(case.times_ms), percentile(case.times_ms, 0.99)
        ok = case.goal_ms is None or p99 < case.goal_ms
        verdict = "info" if case.goal_ms is None else "ok" if ok else "SLOW"
        goal = "-" if case.goal_ms is None else f"{case.goal_ms:.0f}"
        rows.append(
            {
                "case": case.name,
                "requests": len(case.times_ms),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "goal_p99_ms": case.goal_ms,
                "ok": ok,
            }
        )
        print(f"{case.name:34} {p50:8.2f} {p99:8.2f} {goal:>6}  {verdict}")
    print("\nEXPLAIN plans checked:")
    for plan in plans:
        print(
            f"  {'ok ' if plan['ok'] else 'BAD'} {plan['case']:30} expects {plan['expects']}; "
            f"uses {', '.join(plan['uses'])}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**meta, "cases": rows, "plans": plans}, indent=2, default=str))
    print(f"\nwrote {out}")
    return all(r["ok"] for r in rows) and all(p["ok"] for p in plans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50,000 assets, fewer requests")
    parser.add_argument("--assets", type=int, help="assets to seed (default 1,000,000)")
    parser.add_argument("--requests", type=int, help="measured requests per case (default 300)")
    parser.add_argument("--out", type=Path, default=Path("var/bench/api.json"))
    args = parser.parse_args(argv)
    assets = args.assets or (50_000 if args.quick else 1_000_000)
    requests = args.requests or (60 if args.quick else 300)
    with database() as dsn, tempfile.TemporaryDirectory(prefix="bh-bench-home-") as home:
        migrate.apply(dsn)
        asyncio.run(seed(dsn, assets))
        ids = asyncio.run(sample_ids(dsn))
        plans = asyncio.run(check_plans(dsn, ids))
        with server(dsn, Path(home)) as base:
            cases = measure(base, ids, requests, warmup=max(10, requests // 10))
    meta = {
        "assets": ids["total"][0],
        "packages": PACKAGES,
        "subjects": SUBJECTS,
        "requests_per_case": requests,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    ok = report(cases, plans, meta, args.out)
    print("all goals met" if ok else "some goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
