-- The catalog: projects > subjects > packages > assets.
--
-- Differences from the original schema (spec §3, §11) and why:
-- * enum-like columns keep CHECK constraints, and the API validates them first (no 500s);
-- * face pose and quality are typed columns generated from metadata->'face', so whatever
--   writes the metadata (ingest, backfill, a script) also keeps the indexed columns right,
--   and non-numeric values become NULL instead of breaking casts;
-- * counts and sizes are maintained by statement-level triggers (asset_rollups, packages
--   file_count/total_size_bytes), so lists and the dashboard never recount a million rows;
-- * every package is linked to its primary subject in packages_subjects by a trigger, so
--   packages created by any path are visible in project and subject listings;
-- * deleting a subject hands the packages it is primary of to another linked subject
--   instead of deleting other subjects' assets;
-- * search uses trigram indexes over an IMMUTABLE lower(unaccent()) key.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is STABLE (it reads a dictionary by name); pinning the dictionary makes it safe
-- to declare IMMUTABLE, which index expressions require.
CREATE FUNCTION search_key(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(public.unaccent('public.unaccent'::regdictionary, value));

-- A JSON number as float8, anything else (string, object, missing) as NULL.
CREATE FUNCTION jsonb_float(value jsonb) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(value) = 'number' THEN value::double precision END;

CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL UNIQUE,
    description text,
    project_type varchar(50) NOT NULL DEFAULT 'atman' CHECK (project_type IN ('atman', 'vfx')),
    client varchar(255),
    notes text,
    tags text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_created ON projects (created_at DESC, id);
CREATE INDEX projects_search ON projects USING gin (search_key(name) gin_trgm_ops);
CREATE TRIGGER projects_updated BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE subjects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    description text,
    thumbnail_url text,
    notes text,
    tags text[] NOT NULL DEFAULT '{}',
    dataset_dir text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);
CREATE INDEX subjects_name ON subjects (name, id);
CREATE INDEX subjects_search ON subjects USING gin (search_key(name) gin_trgm_ops);
CREATE TRIGGER subjects_updated BEFORE UPDATE ON subjects
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE packages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The primary subject; more subjects are linked through packages_subjects.
    subject_id uuid NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    source_description text,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    -- Maintained from assets by triggers; writes from outside are ignored.
    file_count integer NOT NULL DEFAULT 0,
    total_size_bytes bigint NOT NULL DEFAULT 0,
    status varchar(50) NOT NULL DEFAULT 'ingested'
        CHECK (status IN ('ingested', 'processing', 'ready', 'error')),
    disk_path text,
    tags text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    picked_up boolean NOT NULL DEFAULT false,
    package_type varchar(20) NOT NULL DEFAULT 'atman' CHECK (package_type IN ('atman', 'vfx')),
    UNIQUE (subject_id, name)
);
CREATE INDEX packages_ingested ON packages (ingested_at DESC, id DESC);
CREATE INDEX packages_search ON packages USING gin (search_key(name) gin_trgm_ops);

CREATE TABLE packages_subjects (
    package_id uuid NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    subject_id uuid NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, subject_id)
);
CREATE INDEX packages_subjects_subject ON packages_subjects (subject_id, package_id);

CREATE TABLE assets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    package_id uuid NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    subject_id uuid REFERENCES subjects (id) ON DELETE SET NULL,
    -- Path relative to the package's source folder.
    filename varchar(500) NOT NULL,
    file_type varchar(50) NOT NULL CHECK (file_type IN ('video', 'image', 'audio', 'other')),
    asset_type varchar(50) NOT NULL DEFAULT 'raw',
    mime_type varchar(100),
    file_size_bytes bigint,
    disk_path text NOT NULL,
    proxy_path text,
    thumbnail_path text,
    width integer,
    height integer,
    duration_seconds double precision,
    codec varchar(100),
    camera varchar(255),
    review_status varchar(20) NOT NULL DEFAULT 'unreviewed'
        CHECK (review_status IN ('unreviewed', 'approved', 'rejected', 'flagged')),
    is_on_disk boolean NOT NULL DEFAULT true,
    picked_up boolean NOT NULL DEFAULT false,
    tags text[] NOT NULL DEFAULT '{}',
    notes text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Face pose and quality of aligned crops, typed for filters, sorts and summaries.
    yaw double precision GENERATED ALWAYS AS (jsonb_float(metadata -> 'face' -> 'yaw')) STORED,
    pitch double precision GENERATED ALWAYS AS (jsonb_float(metadata -> 'face' -> 'pitch')) STORED,
    sharpness double precision
        GENERATED ALWAYS AS (jsonb_float(metadata -> 'face' -> 'sharpness')) STORED,
    face_type text GENERATED ALWAYS AS (metadata -> 'face' ->> 'face_type') STORED,
    source_width integer
        GENERATED ALWAYS AS (jsonb_float(metadata -> 'face' -> 'source_width')::integer) STORED,
    source_height integer
        GENERATED ALWAYS AS (jsonb_float(metadata -> 'face' -> 'source_height')::integer) STORED,
    -- The 10x10 degree pose bin ("-20:0" is yaw in [-20,-10), pitch in [0,10)).
    yaw_bin integer
        GENERATED ALWAYS AS (floor(jsonb_float(metadata -> 'face' -> 'yaw') / 10) * 10) STORED,
    pitch_bin integer
        GENERATED ALWAYS AS (floor(jsonb_float(metadata -> 'face' -> 'pitch') / 10) * 10) STORED,
    -- INCLUDE (id): package pages find their ids with an index-only scan.
    UNIQUE (package_id, filename) INCLUDE (id)
);
-- One index per list ORDER BY (id is the tiebreaker that makes pages stable), globally and
-- inside a package; the UNIQUE (package_id, filename) index serves package pages by filename.
CREATE INDEX assets_filename ON assets (filename, id);
CREATE INDEX assets_created ON assets (created_at, id);
CREATE INDEX assets_size ON assets (file_size_bytes, id);
CREATE INDEX assets_duration ON assets (duration_seconds, id);
CREATE INDEX assets_sharpness ON assets (sharpness, id);
CREATE INDEX assets_subject ON assets (subject_id, filename, id);
CREATE INDEX assets_pose ON assets (package_id, yaw_bin, pitch_bin);
CREATE INDEX assets_disk_path ON assets (disk_path);
CREATE INDEX assets_tags ON assets USING gin (tags);
CREATE INDEX assets_search ON assets USING gin (search_key(filename) gin_trgm_ops);

-- Counts, sizes and durations of assets per combination of the list's indexed filters. A page's
-- aggregates over "everything matching" sum a few hundred of these rows instead of scanning up
-- to a million assets. No foreign keys: rows of deleted packages are removed by a trigger, and
-- cascades may run in any order.
CREATE TABLE asset_rollups (
    package_id uuid NOT NULL,
    subject_id uuid,
    file_type varchar(50) NOT NULL,
    asset_type varchar(50) NOT NULL,
    review_status varchar(20) NOT NULL,
    picked_up boolean NOT NULL,
    n bigint NOT NULL,
    size_bytes numeric NOT NULL,
    duration_seconds double precision NOT NULL,
    CONSTRAINT asset_rollups_key UNIQUE NULLS NOT DISTINCT
        (package_id, subject_id, file_type, asset_type, review_status, picked_up)
);
CREATE INDEX asset_rollups_subject ON asset_rollups (subject_id);

-- Add signed per-key deltas (a JSON array of rollup rows) to asset_rollups and packages. Only
-- keys of packages that still exist are inserted: a cascade may delete the package first.
CREATE FUNCTION apply_asset_deltas(deltas jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF deltas IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO asset_rollups AS r
        (package_id, subject_id, file_type, asset_type, review_status, picked_up,
         n, size_bytes, duration_seconds)
    SELECT d.package_id, d.subject_id, d.file_type, d.asset_type, d.review_status, d.picked_up,
           d.n, d.size_bytes, d.duration_seconds
    FROM jsonb_to_recordset(deltas) AS d (
        package_id uuid, subject_id uuid, file_type varchar, asset_type varchar,
        review_status varchar, picked_up boolean, n bigint, size_bytes numeric,
        duration_seconds double precision)
    JOIN packages p ON p.id = d.package_id
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT asset_rollups_key DO UPDATE
        SET n = r.n + excluded.n,
            size_bytes = r.size_bytes + excluded.size_bytes,
            duration_seconds = r.duration_seconds + excluded.duration_seconds;
    DELETE FROM asset_rollups r
    WHERE r.n <= 0
      AND r.package_id IN (SELECT (e ->> 'package_id')::uuid FROM jsonb_array_elements(deltas) e);
    UPDATE packages p
    SET file_count = p.file_count + s.n, total_size_bytes = p.total_size_bytes + s.size_bytes
    FROM (SELECT (e ->> 'package_id')::uuid AS package_id, sum((e ->> 'n')::bigint) AS n,
                 sum((e ->> 'size_bytes')::numeric) AS size_bytes
          FROM jsonb_array_elements(deltas) e GROUP BY 1 ORDER BY 1) s
    WHERE p.id = s.package_id AND (s.n <> 0 OR s.size_bytes <> 0);
END
$$;

CREATE FUNCTION assets_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- old_rows / new_rows exist only for the events that have them.
    IF TG_OP = 'INSERT' THEN
        PERFORM apply_asset_deltas((
            SELECT jsonb_agg(d) FROM (
                SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                       count(*) AS n, coalesce(sum(file_size_bytes), 0) AS size_bytes,
                       coalesce(sum(duration_seconds), 0) AS duration_seconds
                FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6) d));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM apply_asset_deltas((
            SELECT jsonb_agg(d) FROM (
                SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                       -count(*) AS n, -coalesce(sum(file_size_bytes), 0) AS size_bytes,
                       -coalesce(sum(duration_seconds), 0) AS duration_seconds
                FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6) d));
    ELSE
        PERFORM apply_asset_deltas((
            SELECT jsonb_agg(d) FROM (
                SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
                       sum(n) AS n, sum(size_bytes) AS size_bytes,
                       sum(duration_seconds) AS duration_seconds
                FROM (
                    SELECT package_id, subject_id, file_type, asset_type, review_status,
                           picked_up, 1 AS n, coalesce(file_size_bytes, 0) AS size_bytes,
                           coalesce(duration_seconds, 0) AS duration_seconds
                    FROM new_rows
                    UNION ALL
                    SELECT package_id, subject_id, file_type, asset_type, review_status,
                           picked_up, -1, -coalesce(file_size_bytes, 0),
                           -coalesce(duration_seconds, 0)
                    FROM old_rows
                ) moved
                GROUP BY 1, 2, 3, 4, 5, 6
                HAVING sum(n) <> 0 OR sum(size_bytes) <> 0 OR sum(duration_seconds) <> 0) d));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER assets_rollup_insert AFTER INSERT ON assets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION assets_rollup();
CREATE TRIGGER assets_rollup_update AFTER UPDATE ON assets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION assets_rollup();
CREATE TRIGGER assets_rollup_delete AFTER DELETE ON assets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION assets_rollup();

-- Recompute every maintained counter from the assets themselves: for bulk loads that run
-- with triggers disabled (session_replication_role = replica), and for repairs.
CREATE FUNCTION rebuild_catalog_counters() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM asset_rollups;
    INSERT INTO asset_rollups
        (package_id, subject_id, file_type, asset_type, review_status, picked_up,
         n, size_bytes, duration_seconds)
    SELECT package_id, subject_id, file_type, asset_type, review_status, picked_up,
           count(*), coalesce(sum(file_size_bytes), 0), coalesce(sum(duration_seconds), 0)
    FROM assets GROUP BY 1, 2, 3, 4, 5, 6;
    -- Direct writes to the counters are only let through from inside a trigger.
    ALTER TABLE packages DISABLE TRIGGER packages_guard_counters;
    UPDATE packages p
    SET file_count = coalesce(s.n, 0), total_size_bytes = coalesce(s.size_bytes, 0)
    FROM packages q
    LEFT JOIN (SELECT package_id, sum(n) AS n, sum(size_bytes) AS size_bytes
               FROM asset_rollups GROUP BY package_id) s ON s.package_id = q.id
    WHERE p.id = q.id;
    ALTER TABLE packages ENABLE TRIGGER packages_guard_counters;
    INSERT INTO packages_subjects (package_id, subject_id)
    SELECT id, subject_id FROM packages ON CONFLICT DO NOTHING;
END
$$;

-- file_count and total_size_bytes belong to the triggers above (trigger depth > 1); a client
-- INSERT or UPDATE cannot set them to something the assets do not say.
CREATE FUNCTION packages_guard_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        IF TG_OP = 'INSERT' THEN
            NEW.file_count := 0;
            NEW.total_size_bytes := 0;
        ELSE
            NEW.file_count := OLD.file_count;
            NEW.total_size_bytes := OLD.total_size_bytes;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER packages_guard_counters BEFORE INSERT OR UPDATE ON packages
    FOR EACH ROW EXECUTE FUNCTION packages_guard_counters();

-- The primary subject is always one of the linked subjects.
CREATE FUNCTION packages_link_primary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO packages_subjects (package_id, subject_id)
    SELECT id, subject_id FROM new_rows ORDER BY 1
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE FUNCTION packages_link_new_primary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO packages_subjects (package_id, subject_id)
    VALUES (NEW.id, NEW.subject_id)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER packages_link_primary_insert AFTER INSERT ON packages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION packages_link_primary();
-- Column lists and transition tables do not mix, hence a row trigger for the rare update.
CREATE TRIGGER packages_link_primary_update AFTER UPDATE OF subject_id ON packages
    FOR EACH ROW WHEN (OLD.subject_id IS DISTINCT FROM NEW.subject_id)
    EXECUTE FUNCTION packages_link_new_primary();

CREATE FUNCTION packages_drop_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM asset_rollups r USING old_rows o WHERE r.package_id = o.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER packages_drop_rollups AFTER DELETE ON packages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION packages_drop_rollups();

-- Deleting a subject must not delete packages that other subjects share: hand each such
-- package to its first other linked subject (by name) that still exists. Packages with no
-- other subject cascade away with it, as before.
CREATE FUNCTION subjects_hand_over_packages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE packages p
    SET subject_id = (
        SELECT s.id FROM packages_subjects ps JOIN subjects s ON s.id = ps.subject_id
        WHERE ps.package_id = p.id AND s.id <> OLD.id
        ORDER BY s.name, s.id LIMIT 1
    )
    WHERE p.subject_id = OLD.id
      AND EXISTS (
        SELECT 1 FROM packages_subjects ps JOIN subjects s ON s.id = ps.subject_id
        WHERE ps.package_id = p.id AND s.id <> OLD.id
      );
    RETURN OLD;
END
$$;
CREATE TRIGGER subjects_hand_over_packages BEFORE DELETE ON subjects
    FOR EACH ROW EXECUTE FUNCTION subjects_hand_over_packages();

-- Row shapes the API returns, with their maintained counts (small tables or asset_rollups only).
CREATE VIEW project_details AS
SELECT p.*,
       (SELECT count(*) FROM subjects s WHERE s.project_id = p.id) AS subject_count,
       c.package_count, c.total_assets, c.total_size_bytes
FROM projects p
CROSS JOIN LATERAL (
    SELECT count(*) AS package_count,
           coalesce(sum(k.file_count), 0) AS total_assets,
           coalesce(sum(k.total_size_bytes), 0) AS total_size_bytes
    FROM packages k
    WHERE k.id IN (SELECT ps.package_id FROM packages_subjects ps
                   JOIN subjects s ON s.id = ps.subject_id WHERE s.project_id = p.id)
) c;

CREATE VIEW subject_details AS
SELECT s.*,
       (SELECT count(*) FROM packages_subjects ps WHERE ps.subject_id = s.id) AS package_count,
       coalesce(r.n, 0) AS total_assets,
       coalesce(r.size_bytes, 0) AS total_size_bytes
FROM subjects s
LEFT JOIN LATERAL (
    SELECT sum(n) AS n, sum(size_bytes) AS size_bytes FROM asset_rollups WHERE subject_id = s.id
) r ON true;

CREATE VIEW package_details AS
SELECT p.*, s.name AS subject_name, s.project_id,
       coalesce(l.linked, '[]') AS linked_subjects
FROM packages p
JOIN subjects s ON s.id = p.subject_id
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object('id', x.id, 'name', x.name) ORDER BY x.name, x.id) AS linked
    FROM packages_subjects ps JOIN subjects x ON x.id = ps.subject_id
    WHERE ps.package_id = p.id
) l ON true;
