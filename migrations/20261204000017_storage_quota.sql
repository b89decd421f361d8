-- What each account stores, kept by a trigger on media_files, so that an upload's quota check
-- reads one row and never sums an account's files. Counts the originals' sizes of every media
-- row the account holds (a duplicate counts until it is deleted).
CREATE TABLE user_storage (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    used_bytes bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0)
);
COMMENT ON TABLE user_storage IS
    'Bytes of originals each account holds (sum of media_files.file_size), kept by a trigger.';

INSERT INTO user_storage (user_id, used_bytes)
SELECT user_id, sum(file_size) FROM media_files GROUP BY user_id;

-- SECURITY DEFINER: the API role inserts media rows but may not write the counter itself.
CREATE FUNCTION track_user_storage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE user_storage SET used_bytes = greatest(used_bytes - OLD.file_size, 0)
        WHERE user_id = OLD.user_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO user_storage AS s (user_id, used_bytes) VALUES (NEW.user_id, NEW.file_size)
        ON CONFLICT (user_id) DO UPDATE SET used_bytes = s.used_bytes + EXCLUDED.used_bytes;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER track_user_storage AFTER INSERT OR DELETE OR UPDATE OF file_size, user_id
    ON media_files FOR EACH ROW EXECUTE FUNCTION track_user_storage();

ALTER TABLE user_storage ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON user_storage TO timeline_api;
CREATE POLICY owner_only ON user_storage TO timeline_api USING (user_id = app_current_user_id());
