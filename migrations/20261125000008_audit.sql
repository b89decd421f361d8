-- Audit trail: every insert, update and delete on user data, written by triggers so that no code
-- path can forget it. Partitioned by month so retention is a cheap DROP of old partitions.

CREATE TABLE audit_logs (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    -- The acting user (app.user_id of the transaction); NULL for system actions (workers, admin).
    -- No foreign key: the trail must outlive the rows and users it describes (see DATA_PRIVACY.md).
    user_id       uuid,
    -- Whose data it is (the row's owner), so an erasure request can find every trace.
    owner_user_id uuid,
    action        text NOT NULL CHECK (action IN ('create', 'update', 'delete', 'login', 'access', 'export')),
    resource_type text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 100),
    resource_id   uuid,
    old_values    jsonb,
    new_values    jsonb,
    ip_address    inet,
    user_agent    text CHECK (length(user_agent) <= 1000),
    request_id    text CHECK (length(request_id) <= 200),
    "timestamp"   timestamptz NOT NULL DEFAULT now(),
    -- A partitioned table's keys must include the partition key.
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

CREATE INDEX idx_audit_logs_user_action ON audit_logs (user_id, action);
CREATE INDEX idx_audit_logs_timestamp ON audit_logs ("timestamp");
CREATE INDEX idx_audit_logs_owner ON audit_logs (owner_user_id, "timestamp");
CREATE INDEX idx_audit_logs_resource ON audit_logs (resource_type, resource_id);

-- Catches rows outside every monthly partition (a clock far off, a missed maintenance run),
-- so an insert never fails for want of a partition. It should stay empty; DATA_PRIVACY.md says
-- how to check.
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;

-- Creates the monthly partitions from `months_back` before to `months_ahead` after the current
-- month. Idempotent; `timeline maintenance` runs it, and so does this migration.
-- Month boundaries are UTC whatever the session's time zone.
CREATE FUNCTION ensure_audit_partitions(months_back int DEFAULT 1, months_ahead int DEFAULT 12)
RETURNS int LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    m date;
    made int := 0;
    part text;
BEGIN
    FOR i IN -months_back..months_ahead LOOP
        m := (date_trunc('month', now()) + make_interval(months => i))::date;
        part := format('audit_logs_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_logs FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + interval '1 month')::date);
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;

-- Drops monthly partitions whose whole month is older than `keep`. Returns how many went.
CREATE FUNCTION drop_audit_partitions_older_than(keep interval)
RETURNS int LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    r record;
    dropped int := 0;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_logs'::regclass AND c.relname ~ '^audit_logs_\d{4}_\d{2}$'
    LOOP
        IF (to_date(substr(r.relname, 12), 'YYYY_MM') + interval '1 month') <= now() - keep THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

SELECT ensure_audit_partitions(1, 12);

-- The generic row trigger. SECURITY DEFINER: the API role may not write audit_logs directly,
-- yet its changes must be audited. Secrets are never copied into the trail.
CREATE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    old_j jsonb;
    new_j jsonb;
    owner uuid;
    rid uuid;
    act text;
    hidden text[] := ARRAY['password_hash', 'token_hash', 'link_token_hash', 'updated_at'];
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'updated_at') = (to_jsonb(NEW) - 'updated_at') THEN
        RETURN NULL;  -- nothing but updated_at moved: nothing to tell
    END IF;
    IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD) - hidden; END IF;
    IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW) - hidden; END IF;
    IF TG_OP = 'UPDATE' AND old_j = new_j THEN
        -- Only a secret changed (a password or token rotation): record that it happened.
        new_j := jsonb_build_object('id', new_j -> 'id', 'user_id', new_j -> 'user_id', 'secret_changed', true);
        old_j := NULL;
    END IF;
    IF TG_TABLE_NAME = 'system_configuration' THEN
        -- Sensitive settings are audited by key, never by value.
        IF (old_j ->> 'is_sensitive')::boolean THEN old_j := old_j || '{"config_value": "[redacted]"}'; END IF;
        IF (new_j ->> 'is_sensitive')::boolean THEN new_j := new_j || '{"config_value": "[redacted]"}'; END IF;
    END IF;
    act := CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END;
    rid := (coalesce(new_j, old_j) ->> 'id')::uuid;
    owner := CASE TG_TABLE_NAME
        WHEN 'users' THEN rid
        WHEN 'persons' THEN (coalesce(new_j, old_j) ->> 'created_by_user_id')::uuid
        ELSE (coalesce(new_j, old_j) ->> 'user_id')::uuid
    END;
    INSERT INTO audit_logs (user_id, owner_user_id, action, resource_type, resource_id,
                            old_values, new_values, ip_address, user_agent, request_id)
    VALUES (app_current_user_id(), owner, act, TG_TABLE_NAME, rid, old_j, new_j,
            nullif(current_setting('app.client_ip', true), '')::inet,
            nullif(current_setting('app.user_agent', true), ''),
            nullif(current_setting('app.request_id', true), ''));
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'users', 'user_settings', 'api_tokens', 'locations', 'location_history', 'media_files',
        'memories', 'memory_media_files', 'collections', 'collection_memories', 'persons',
        'user_persons', 'memory_persons', 'shares', 'comments', 'reactions', 'system_configuration'
    ] LOOP
        EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION audit_row_change()', t);
    END LOOP;
END
$$;

-- Right to erasure: strip the recorded values of one owner's rows, keeping who/what/when.
CREATE FUNCTION anonymize_audit_for_user(target uuid) RETURNS bigint
LANGUAGE sql AS $$
    WITH upd AS (
        UPDATE audit_logs
        SET old_values = NULL, new_values = NULL, ip_address = NULL, user_agent = NULL
        WHERE owner_user_id = target OR user_id = target
        RETURNING 1
    )
    SELECT count(*) FROM upd
$$;
