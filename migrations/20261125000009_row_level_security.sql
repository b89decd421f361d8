-- Row-level security. The API assumes role timeline_api in every transaction and sets
-- app.user_id; the policies below then show it only that user's rows, so a query that forgets
-- its WHERE clause still cannot leak. The owning role (migrations, workers, operators) is not
-- subject to RLS (no FORCE), as the workers process every user's media.

GRANT USAGE ON SCHEMA public TO timeline_api;

DO $$
DECLARE
    t text;
BEGIN
    -- Tables owned through a plain user_id column.
    FOREACH t IN ARRAY ARRAY[
        'user_settings', 'api_tokens', 'locations', 'location_history', 'media_files', 'memories',
        'memory_media_files', 'collections', 'collection_memories', 'user_persons',
        'memory_persons', 'data_processing_jobs', 'shares'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO timeline_api', t);
        EXECUTE format(
            'CREATE POLICY owner_only ON %I TO timeline_api
             USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id())', t);
    END LOOP;
END
$$;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
-- Users may edit their profile, not their role, verification or activation (operators do that).
GRANT SELECT, DELETE ON users TO timeline_api;
GRANT UPDATE (email, password_hash, first_name, last_name, date_of_birth, profile_picture_url, bio,
              timezone, language, privacy_settings, notification_settings) ON users TO timeline_api;
CREATE POLICY self_only ON users TO timeline_api
    USING (id = app_current_user_id()) WITH CHECK (id = app_current_user_id());

ALTER TABLE persons ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON persons TO timeline_api;
CREATE POLICY creator_only ON persons TO timeline_api
    USING (created_by_user_id = app_current_user_id())
    WITH CHECK (created_by_user_id = app_current_user_id());

-- Comments and reactions: the author sees and changes their own; the memory's owner sees all on
-- their memories (the subquery on memories is itself filtered to the owner's rows).
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE reactions ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON comments, reactions TO timeline_api;
CREATE POLICY author_or_memory_owner ON comments FOR SELECT TO timeline_api
    USING (user_id = app_current_user_id()
           OR EXISTS (SELECT 1 FROM memories m WHERE m.id = memory_id));
CREATE POLICY author_writes ON comments FOR ALL TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
CREATE POLICY author_or_memory_owner ON reactions FOR SELECT TO timeline_api
    USING (user_id = app_current_user_id()
           OR EXISTS (SELECT 1 FROM memories m WHERE m.id = memory_id));
CREATE POLICY author_writes ON reactions FOR ALL TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());

-- Audit rows: a user may read the trail of their own data, never write it (the trigger does).
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON audit_logs TO timeline_api;
CREATE POLICY own_trail ON audit_logs FOR SELECT TO timeline_api
    USING (owner_user_id = app_current_user_id());

-- System configuration: readable by the API unless sensitive; written only by operators.
ALTER TABLE system_configuration ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON system_configuration TO timeline_api;
CREATE POLICY public_settings ON system_configuration FOR SELECT TO timeline_api
    USING (NOT is_sensitive);

GRANT EXECUTE ON FUNCTION app_current_user_id() TO timeline_api;
