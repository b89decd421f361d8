-- The ingestion pipeline's bookkeeping: which media files a tracked job covers, and what each
-- processing step did to each media file, when, with which pipeline version. With these rows
-- "reprocess what is missing" is a query, not a guess.

-- The media files of a data_processing_jobs row (a retry makes a new job for the same file).
CREATE TABLE data_processing_job_media (
    job_id        uuid NOT NULL,
    media_file_id uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    PRIMARY KEY (job_id, media_file_id),
    FOREIGN KEY (job_id, user_id) REFERENCES data_processing_jobs (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (media_file_id, user_id) REFERENCES media_files (id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_job_media_media ON data_processing_job_media (media_file_id);

-- One row per (media file, step): upserted by the step, so a retried or redelivered step
-- overwrites its own record instead of adding one.
CREATE TABLE media_processing_steps (
    media_file_id    uuid NOT NULL,
    step             text NOT NULL CHECK (step IN ('hash', 'exif', 'thumbnail')),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status           text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    pipeline_version integer NOT NULL CHECK (pipeline_version > 0),
    attempts         integer NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    error_message    text,
    completed_at     timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_file_id, step),
    FOREIGN KEY (media_file_id, user_id) REFERENCES media_files (id, user_id) ON DELETE CASCADE,
    CHECK ((status = 'failed') = (error_message IS NOT NULL))
);
-- "Reprocess missing": steps older than the current pipeline version.
CREATE INDEX idx_processing_steps_version ON media_processing_steps (step, pipeline_version);
SELECT manage_updated_at('media_processing_steps');

ALTER TABLE data_processing_job_media ENABLE ROW LEVEL SECURITY;
ALTER TABLE media_processing_steps ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON data_processing_job_media, media_processing_steps TO timeline_api;
CREATE POLICY owner_only ON data_processing_job_media TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
CREATE POLICY owner_only ON media_processing_steps TO timeline_api
    USING (user_id = app_current_user_id()) WITH CHECK (user_id = app_current_user_id());
