-- Background-job tracking and system-wide configuration.

CREATE TABLE data_processing_jobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_type      text NOT NULL CHECK (job_type IN ('media_ingest', 'media_reprocess', 'import', 'export', 'account_deletion')),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    progress      smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    input_data    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input_data) = 'object'),
    output_data   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(output_data) = 'object'),
    error_message text,
    started_at    timestamptz,
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at),
    CHECK (status NOT IN ('completed', 'failed', 'cancelled') OR completed_at IS NOT NULL)
);
CREATE INDEX idx_processing_jobs_status ON data_processing_jobs (status);
CREATE INDEX idx_processing_jobs_user_created ON data_processing_jobs (user_id, created_at DESC);
-- Housekeeping prunes finished jobs by age.
CREATE INDEX idx_processing_jobs_finished ON data_processing_jobs (completed_at) WHERE completed_at IS NOT NULL;
SELECT manage_updated_at('data_processing_jobs');

CREATE TABLE system_configuration (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    config_key   text NOT NULL UNIQUE CHECK (config_key ~ '^[a-z0-9_]+(\.[a-z0-9_]+)*$'),
    config_value jsonb NOT NULL,
    description  text CHECK (length(description) <= 2000),
    is_sensitive boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT manage_updated_at('system_configuration');
