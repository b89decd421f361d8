-- Foundation: extensions, the API role, and the helpers every later migration uses.

-- cube + earthdistance ship with PostgreSQL's contrib (PostGIS is not available on our hosts):
-- ll_to_earth() gives a point that a GiST index can search by radius. btree_gist lets one GiST
-- index lead with user_id, so "my photos within 5 km" never scans other users' points.
CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- The HTTP API runs its statements under this role (SET LOCAL ROLE inside each transaction), so
-- row-level security applies to it. NOLOGIN: it is only ever assumed by the owning connection.
-- Roles are cluster-wide; parallel test databases may race to create it, hence the handler.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'timeline_api') THEN
        CREATE ROLE timeline_api NOLOGIN NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The acting user of the current transaction, set by the API with
-- set_config('app.user_id', <uuid>, true). NULL when unset (migrations, workers, psql).
CREATE FUNCTION app_current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.user_id', true), '')::uuid
$$;

-- updated_at is maintained by the database, not by each caller.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Adds the updated_at trigger to a table; used by every table that has the column.
CREATE FUNCTION manage_updated_at(_tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s
         FOR EACH ROW EXECUTE FUNCTION set_updated_at()', _tbl);
END
$$;

-- One definition of "valid email" shared by users and persons: one @, no spaces, a dot in the
-- domain, at most 254 characters (RFC 5321). Deeper checks belong to the Rust newtype.
CREATE DOMAIN email_address AS text
    CHECK (length(VALUE) <= 254 AND VALUE ~ '^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$');
