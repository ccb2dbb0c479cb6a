"""GET /api/stats/dashboard: catalog totals, recent packages and storage per project.

Asset totals come from asset_rollups (kept by triggers), so the dashboard costs the same
with a million assets as with ten.
"""

from __future__ import annotations

from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers._catalog import Package
from kernel.http import json_response


class RecentPackage(Package, kw_only=True):
    # Linked subjects, sorted by name: names joined by ", ", ids by ",".
    subject_names: str
    subject_ids: str
    project_name: str


class ProjectStorage(msgspec.Struct, kw_only=True):
    project_id: UUID
    project_name: str
    total_bytes: int


class Dashboard(msgspec.Struct, kw_only=True):
    total_projects: int
    total_subjects: int
    total_packages: int
    total_raw_packages: int
    total_datasets: int
    total_assets: int
    total_size_bytes: int
    assets_by_type: dict[str, int]
    assets_by_review_status: dict[str, int]
    recent_packages: list[RecentPackage]
    # Each package counted once, under its primary subject's project.
    storage_by_project: list[ProjectStorage]


RECENT_PACKAGES = 20

DASHBOARD = f"""
WITH r AS MATERIALIZED (
    -- asset_rollups read once, already reduced to the two dimensions shown.
    SELECT file_type, review_status, sum(n) AS n, sum(size_bytes) AS size_bytes
    FROM asset_rollups GROUP BY file_type, review_status
)
SELECT json_build_object(
  'total_projects', (SELECT count(*) FROM projects),
  'total_subjects', (SELECT count(*) FROM subjects),
  'total_packages', (SELECT count(*) FROM packages),
  'total_raw_packages', (SELECT count(*) FROM packages WHERE package_type = 'atman'),
  'total_datasets', (SELECT count(*) FROM packages WHERE package_type = 'vfx'),
  'total_assets', (SELECT coalesce(sum(n), 0) FROM r),
  'total_size_bytes', (SELECT coalesce(sum(size_bytes), 0) FROM r),
  'assets_by_type', (
    SELECT coalesce(json_object_agg(file_type, n ORDER BY file_type), '{{}}')
    FROM (SELECT file_type, sum(n) AS n FROM r GROUP BY file_type) t),
  'assets_by_review_status', (
    SELECT coalesce(json_object_agg(review_status, n ORDER BY review_status), '{{}}')
    FROM (SELECT review_status, sum(n) AS n FROM r GROUP BY review_status) t),
  'recent_packages', (
    SELECT coalesce(json_agg(r ORDER BY r.ingested_at DESC, r.id DESC), '[]')
    FROM (
      SELECT p.*, pr.name AS project_name,
             (SELECT string_agg(x.name, ', ' ORDER BY x.name, x.id)
              FROM packages_subjects ps JOIN subjects x ON x.id = ps.subject_id
              WHERE ps.package_id = p.id) AS subject_names,
             (SELECT string_agg(x.id::text, ',' ORDER BY x.name, x.id)
              FROM packages_subjects ps JOIN subjects x ON x.id = ps.subject_id
              WHERE ps.package_id = p.id) AS subject_ids
      FROM (SELECT * FROM package_details ORDER BY ingested_at DESC, id DESC
            LIMIT {RECENT_PACKAGES}) p
      JOIN projects pr ON pr.id = p.project_id
    ) r),
  'storage_by_project', (
    SELECT coalesce(json_agg(json_build_object('project_id', pr.id, 'project_name', pr.name,
                                               'total_bytes', t.total_bytes)
                             ORDER BY t.total_bytes DESC, pr.name, pr.id), '[]')
    FROM (SELECT s.project_id, sum(k.total_size_bytes) AS total_bytes
          FROM packages k JOIN subjects s ON s.id = k.subject_id
          GROUP BY s.project_id) t
    JOIN projects pr ON pr.id = t.project_id)
)::text
"""

_dashboard = msgspec.json.Decoder(Dashboard)


async def dashboard(request: Request) -> Response:
    async with request.state.pool.acquire() as conn:
        raw = await conn.fetchval(DASHBOARD)
    return json_response(_dashboard.decode(raw))


routes = [Route("/api/stats/dashboard", dashboard, methods=["GET"], name="dashboard")]
