-- Undo 0001_catalog: drop the catalog and its helpers (extensions stay; other schemas may use them).
DROP VIEW IF EXISTS package_details, subject_details, project_details;
DROP TABLE IF EXISTS asset_rollups, assets, packages_subjects, packages, subjects, projects CASCADE;
DROP FUNCTION IF EXISTS rebuild_catalog_counters();
DROP FUNCTION IF EXISTS subjects_hand_over_packages();
DROP FUNCTION IF EXISTS packages_drop_rollups();
DROP FUNCTION IF EXISTS packages_link_new_primary();
DROP FUNCTION IF EXISTS packages_link_primary();
DROP FUNCTION IF EXISTS packages_guard_counters();
DROP FUNCTION IF EXISTS assets_rollup();
DROP FUNCTION IF EXISTS apply_asset_deltas(jsonb);
DROP FUNCTION IF EXISTS set_updated_at();
DROP FUNCTION IF EXISTS jsonb_float(jsonb);
DROP FUNCTION IF EXISTS search_key(text);
