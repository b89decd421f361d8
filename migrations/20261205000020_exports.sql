-- Exports (`POST /v1/exports`): one zip per export, written into the store by its job and
-- downloadable until it expires.
--
-- The row is the record of intent for its object: it names the key before any byte is written
-- and, on S3, the multipart upload in progress, so whatever a killed run leaves (parts, a local
-- staging file) is found from this row and cleaned, never from a listing of the store. `attempt`
-- fences runs: a run writes progress only while the attempt it claimed is still the row's.
CREATE TABLE exports (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The export's data_processing_jobs row (progress, `GET /v1/jobs/{id}`); no foreign key:
    -- the housekeeping of finished jobs must not take an archive's record with it.
    job_id        uuid NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'expired')),
    object_key    text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    multipart_id  text,
    attempt       integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    files_total   integer NOT NULL DEFAULT 0 CHECK (files_total >= 0),
    files_done    integer NOT NULL DEFAULT 0 CHECK (files_done >= 0),
    size          bigint CHECK (size >= 0),
    error_message text,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    CHECK (status <> 'completed' OR (size IS NOT NULL AND expires_at IS NOT NULL))
);
SELECT manage_updated_at('exports');

-- The reconciler's questions read only what is stuck or due: unfinished exports by their last
-- progress, completed ones by their expiry.
CREATE INDEX idx_exports_unfinished ON exports (updated_at) WHERE status IN ('pending', 'running');
CREATE INDEX idx_exports_expiry ON exports (expires_at) WHERE status = 'completed';
-- A user's exports, newest first (and the one unfinished export a new request joins).
CREATE INDEX idx_exports_user ON exports (user_id, created_at DESC);

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON exports TO timeline_api;
CREATE POLICY owner_only ON exports TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
