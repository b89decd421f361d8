-- Bytes in flight are recorded before they are written: the reconciler decides from these rows,
-- never from an object's age or a listing of the store.
--
-- An upload session is one request (or one resumable upload) storing originals. It is committed
-- before the first byte is stored, and its owner touches `last_progress_at` while it works.
-- The transaction that records the media rows ends the session; a session that stops making
-- progress is aborted by the reconciler, and what it stored is deleted.
CREATE TABLE upload_sessions (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'form': POST /v1/media; 'ingest': timeline ingest; 'tus': a resumable upload.
    protocol         text NOT NULL CHECK (protocol IN ('form', 'ingest', 'tus')),
    state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completed')),
    bytes_received   bigint NOT NULL DEFAULT 0 CHECK (bytes_received >= 0),
    upload_length    bigint CHECK (upload_length >= 0),
    last_progress_at timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Resumable uploads (tus): the media file the upload becomes and the client's name for
    -- it; the first bytes (to decide the type before storing the rest) and the type decided;
    -- the SHA-256 state over every byte received, so a resume never re-reads what is stored;
    -- where the bytes are: an S3 multipart upload's parts plus a tail object holding what is
    -- not a whole part yet, or a staging object of a `file://` store.
    media_file_id    uuid,
    filename         text,
    head             bytea,
    mime_type        text,
    hash_state       bytea,
    part_size        bigint CHECK (part_size > 0),
    multipart_id     text,
    parts            jsonb NOT NULL DEFAULT '[]',
    tail_key         text,
    -- One request at a time appends: a lease its holder renews while it streams.
    lease_owner      uuid,
    lease_until      timestamptz,
    -- Once completed: the job that processes what it became.
    job_id           uuid,
    CHECK (upload_length IS NULL OR bytes_received <= upload_length)
);

-- The reconciler's question, "which open sessions have stalled or expired", reads only them.
CREATE INDEX idx_upload_sessions_open_progress ON upload_sessions (last_progress_at)
    WHERE state = 'open';
CREATE INDEX idx_upload_sessions_open_expiry ON upload_sessions (expires_at)
    WHERE state = 'open';
-- Completed resumable uploads stay readable (`GET /v1/uploads/{id}`) until they expire.
CREATE INDEX idx_upload_sessions_completed_expiry ON upload_sessions (expires_at)
    WHERE state = 'completed';

-- Every object that may exist in the store without a committed media row naming it: written
-- (committed) before the object is. Whose it is decides when it may be cleaned:
--   session_id: an upload's original, cleaned when its session is aborted;
--   step:       a rendition or clip a worker step is storing, cleaned once its task can no
--               longer run;
--   neither:    to delete now (a deleted media file's objects, an aborted session's).
-- Cleaning deletes the object only when no media row names its key, then the row.
CREATE TABLE pending_objects (
    object_key    text PRIMARY KEY,
    user_id       uuid NOT NULL,
    -- The file whose upload or step writes the object (a Motion Photo's clip is written by
    -- its still's exif step); the row that may name the key is the one in the key itself.
    media_file_id uuid NOT NULL,
    session_id    uuid REFERENCES upload_sessions (id) ON DELETE SET NULL,
    step          text CHECK (step IN ('thumbnail', 'video', 'exif')),
    -- The queue task (apalis.jobs.id) running that step: its objects are cleaned once it can
    -- no longer run (one primary-key lookup, never a scan of the queue).
    task_id       text,
    -- An S3 multipart upload in progress for the key: aborted when the object is cleaned.
    multipart_id  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (session_id IS NULL OR step IS NULL)
);

CREATE INDEX idx_pending_objects_session ON pending_objects (session_id)
    WHERE session_id IS NOT NULL;
CREATE INDEX idx_pending_objects_step ON pending_objects (media_file_id)
    WHERE step IS NOT NULL;
CREATE INDEX idx_pending_objects_unowned ON pending_objects (created_at)
    WHERE session_id IS NULL AND step IS NULL;

-- Only the owner's rows through the API (its upload transaction ends its own session).
ALTER TABLE upload_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_objects ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON upload_sessions, pending_objects TO timeline_api;
CREATE POLICY owner_only ON upload_sessions TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
CREATE POLICY owner_only ON pending_objects TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());

-- The operator's full audit of the store (`timeline maintenance --audit-store`) pages through
-- it and can resume: the last key it finished is kept here.
CREATE TABLE store_audit (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    after_key     text,
    objects_seen  bigint NOT NULL DEFAULT 0,
    deleted       bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Operators' bookkeeping: no policy, so the API's role sees none of it.
ALTER TABLE store_audit ENABLE ROW LEVEL SECURITY;

-- The SHA-256 of an original as the upload received it (the API, tus and `timeline ingest`
-- hash the bytes as they stream through): the hash step takes it instead of reading the
-- original back from the store, a whole second read of a large video on a slow link.
ALTER TABLE media_files
    ADD COLUMN upload_sha256 text CHECK (upload_sha256 ~ '^[0-9a-f]{64}$');
