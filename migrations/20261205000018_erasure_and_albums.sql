-- Right to erasure, and album membership of media files.

-- An account being erased: set when the erasure is asked for (its job is the user's
-- `account_deletion` row in data_processing_jobs). From then on the account takes no new
-- uploads; the row itself goes last, with everything that cascades from it.
ALTER TABLE users ADD COLUMN erasure_requested_at timestamptz;

-- The reconciler's question, "which erasures are unfinished", reads only them.
CREATE INDEX idx_processing_jobs_open_erasures ON data_processing_jobs (updated_at)
    WHERE job_type = 'account_deletion' AND status IN ('pending', 'running');

-- A media file in a collection (an album). The data model links collections to memories; an
-- imported album is a set of photos, most with no memory of their own, so they are linked
-- directly. A photo in several albums is stored once and linked to each.
CREATE TABLE collection_media_files (
    collection_id uuid NOT NULL,
    media_file_id uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, media_file_id),
    FOREIGN KEY (collection_id, user_id) REFERENCES collections (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (media_file_id, user_id) REFERENCES media_files (id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_collection_media_files_media ON collection_media_files (media_file_id);
-- A collection's page of media in order.
CREATE INDEX idx_collection_media_files_order ON collection_media_files (collection_id, position, media_file_id);

ALTER TABLE collection_media_files ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON collection_media_files TO timeline_api;
CREATE POLICY owner_only ON collection_media_files TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON collection_media_files
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();
