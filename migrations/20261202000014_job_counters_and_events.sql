-- Job progress in O(1) per finished file, and job events for live progress (SSE).
--
-- Before: every file reaching its end state recounted its whole job (a join over all its
-- files) while holding the job row's lock: O(job size) per file, O(n^2) per job. Now each
-- (job, file) link remembers the end state it was counted with (`counted_status`), and the
-- job carries the counters; a file's transition moves them by one, exactly once per link
-- (a file retried while its job still runs moves from one counter to the other).

ALTER TABLE data_processing_job_media
    ADD COLUMN counted_status text CHECK (counted_status IN ('completed', 'failed', 'duplicate'));

ALTER TABLE data_processing_jobs
    ADD COLUMN total_count     integer NOT NULL DEFAULT 0 CHECK (total_count >= 0),
    ADD COLUMN completed_count integer NOT NULL DEFAULT 0 CHECK (completed_count >= 0),
    ADD COLUMN failed_count    integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    ADD COLUMN duplicate_count integer NOT NULL DEFAULT 0 CHECK (duplicate_count >= 0),
    -- An import filled chunk by chunk is one job: open (not sealed) while files are still
    -- being added, so it cannot complete between two chunks. Left open by a crashed importer,
    -- the reconciler seals it once it has been idle for the grace period.
    ADD COLUMN sealed          boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT data_processing_jobs_counts_check
        CHECK (completed_count + failed_count + duplicate_count <= total_count);

-- Existing jobs: count once from what is recorded.
UPDATE data_processing_job_media jm SET counted_status = m.processing_status
FROM media_files m
WHERE m.id = jm.media_file_id AND m.processing_status IN ('completed', 'failed', 'duplicate');

UPDATE data_processing_jobs j SET
    total_count = c.total, completed_count = c.completed, failed_count = c.failed,
    duplicate_count = c.duplicate
FROM (SELECT job_id, count(*) AS total,
             count(*) FILTER (WHERE counted_status = 'completed') AS completed,
             count(*) FILTER (WHERE counted_status = 'failed') AS failed,
             count(*) FILTER (WHERE counted_status = 'duplicate') AS duplicate
      FROM data_processing_job_media GROUP BY job_id) c
WHERE c.job_id = j.id;

-- The failures of a job, in upload order, without scanning its other files.
CREATE INDEX idx_job_media_failed ON data_processing_job_media (job_id, position)
    WHERE counted_status = 'failed';

-- Live progress: every change of a job's status or counters is announced on one channel
-- (the web process holds one LISTEN and fans out to its SSE clients). Delivered at commit,
-- so a listener never sees progress that rolls back.
CREATE FUNCTION notify_job_progress() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status OR NEW.progress IS DISTINCT FROM OLD.progress
       OR NEW.completed_count <> OLD.completed_count OR NEW.failed_count <> OLD.failed_count
       OR NEW.duplicate_count <> OLD.duplicate_count OR NEW.total_count <> OLD.total_count THEN
        PERFORM pg_notify('timeline_job_events', json_build_object(
            'type', 'progress', 'job_id', NEW.id, 'status', NEW.status, 'progress', NEW.progress,
            'total', NEW.total_count, 'completed', NEW.completed_count,
            'failed', NEW.failed_count, 'duplicate', NEW.duplicate_count)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER data_processing_jobs_notify AFTER UPDATE ON data_processing_jobs
    FOR EACH ROW EXECUTE FUNCTION notify_job_progress();

-- Each file's end state, as its job counts it (before the job's own progress event, in the
-- same transaction: a listener sees the file, then the progress it made).
CREATE FUNCTION notify_job_file() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    f record;
BEGIN
    SELECT filename, error_message INTO f FROM media_files WHERE id = NEW.media_file_id;
    PERFORM pg_notify('timeline_job_events', json_build_object(
        'type', 'file', 'job_id', NEW.job_id, 'media_id', NEW.media_file_id,
        'status', NEW.counted_status, 'filename', left(f.filename, 255),
        'error', left(f.error_message, 1000))::text);
    RETURN NULL;
END $$;
CREATE TRIGGER data_processing_job_media_notify AFTER UPDATE OF counted_status ON data_processing_job_media
    FOR EACH ROW WHEN (NEW.counted_status IS DISTINCT FROM OLD.counted_status)
    EXECUTE FUNCTION notify_job_file();

-- Paused queues (the dashboard's pause/resume). While a queue is paused its waiting tasks sit
-- 100 years in the future (order kept), and a trigger on the queue table (installed after the
-- queue's own migrations, see db::migrate) sends new ones there too; resume brings them back.
CREATE TABLE queue_pauses (
    queue      text PRIMARY KEY CHECK (queue IN ('hash', 'exif', 'thumbnail', 'video')),
    paused_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
-- Operators' table: the API role has no policy (and no grant); the pause trigger runs as owner.
ALTER TABLE queue_pauses ENABLE ROW LEVEL SECURITY;

-- An operator dismissed this failure from the dashboard (the file stays failed for its owner).
ALTER TABLE media_files ADD COLUMN failure_dismissed_at timestamptz;
CREATE INDEX idx_media_files_failed_recent ON media_files (updated_at DESC)
    WHERE processing_status = 'failed' AND failure_dismissed_at IS NULL;

-- Version 0 marks step records made before versions were compared (and lets tests stand for
-- an older pipeline); `timeline reprocess --missing` redoes anything below the current one.
ALTER TABLE media_processing_steps DROP CONSTRAINT media_processing_steps_pipeline_version_check;
ALTER TABLE media_processing_steps ADD CONSTRAINT media_processing_steps_pipeline_version_check
    CHECK (pipeline_version >= 0);

-- A file deleted while its job runs (its owner's DELETE, cascading to the link) leaves the
-- job: the total and the counter it was counted in go down by one, and a sealed job whose
-- remaining files have all ended completes. Finished jobs keep their history.
-- SECURITY DEFINER: the API's role deletes the file (under row-level security) but the job's
-- counters are the platform's bookkeeping, not a column the API may write.
CREATE FUNCTION job_media_removed() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE data_processing_jobs j SET
        total_count = j.total_count - 1,
        completed_count = j.completed_count - (OLD.counted_status IS NOT DISTINCT FROM 'completed')::int,
        failed_count = j.failed_count - (OLD.counted_status IS NOT DISTINCT FROM 'failed')::int,
        duplicate_count = j.duplicate_count - (OLD.counted_status IS NOT DISTINCT FROM 'duplicate')::int,
        output_data = j.output_data || jsonb_build_object(
            'total', j.total_count - 1,
            'completed', j.completed_count - (OLD.counted_status IS NOT DISTINCT FROM 'completed')::int,
            'failed', j.failed_count - (OLD.counted_status IS NOT DISTINCT FROM 'failed')::int,
            'duplicate', j.duplicate_count - (OLD.counted_status IS NOT DISTINCT FROM 'duplicate')::int),
        status = CASE WHEN j.sealed AND j.completed_count + j.failed_count + j.duplicate_count
                           - (OLD.counted_status IS NOT NULL)::int >= j.total_count - 1
                      THEN 'completed' ELSE j.status END,
        progress = CASE WHEN j.sealed AND j.completed_count + j.failed_count + j.duplicate_count
                             - (OLD.counted_status IS NOT NULL)::int >= j.total_count - 1
                        THEN 100 ELSE j.progress END,
        started_at = coalesce(j.started_at, now()),
        completed_at = CASE WHEN j.sealed AND j.completed_count + j.failed_count + j.duplicate_count
                                 - (OLD.counted_status IS NOT NULL)::int >= j.total_count - 1
                            THEN now() ELSE j.completed_at END
    WHERE j.id = OLD.job_id AND j.status IN ('pending', 'running');
    RETURN NULL;
END $$;
CREATE TRIGGER data_processing_job_media_removed AFTER DELETE ON data_processing_job_media
    FOR EACH ROW EXECUTE FUNCTION job_media_removed();
