-- apalis.get_jobs as timeline defined it before 2026-12-06 (commit 2cd95f0), installed as
-- public.get_jobs_before by scripts/bench-fetch.sh to compare a fetch before and after in one run.
CREATE OR REPLACE FUNCTION public.get_jobs_before(
    worker_id TEXT, v_job_type TEXT, v_job_count INTEGER DEFAULT 5)
RETURNS SETOF apalis.jobs LANGUAGE sql VOLATILE AS $$
    -- Ageing: a bulk task that has waited longer than `jobs.bulk_ageing_secs` goes
    -- ahead, up to half of a regular pool's batch, oldest first. Priorities are fixed
    -- at enqueue, so without this a steady stream of uploads would starve an old
    -- import's tail. Express pools never take bulk work.
    WITH aged AS (
        SELECT id FROM apalis.jobs
        WHERE right(v_job_type, 12) <> ':interactive'
          AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
          AND job_type = v_job_type
          AND priority < 1073741824
          AND run_at < now() - make_interval(secs => coalesce((
              SELECT CASE WHEN jsonb_typeof(config_value) = 'number'
                          THEN greatest(config_value::text::float8, 0) END
              FROM public.system_configuration
              WHERE config_key = 'jobs.bulk_ageing_secs'), 600))
        ORDER BY run_at ASC
        LIMIT greatest(v_job_count / 2, 1)
        FOR UPDATE SKIP LOCKED),
    rest AS (
        SELECT id FROM apalis.jobs
        WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
          AND run_at < now()
          AND job_type = CASE WHEN right(v_job_type, 12) = ':interactive'
                              THEN left(v_job_type, -12) ELSE v_job_type END
          AND priority >= CASE WHEN right(v_job_type, 12) = ':interactive'
                               THEN 1073741824 ELSE -2147483648 END
          -- Locked by this statement already, which SKIP LOCKED does not skip.
          AND id NOT IN (SELECT id FROM aged)
        ORDER BY priority DESC, run_at ASC
        LIMIT v_job_count - (SELECT count(*) FROM aged)
        FOR UPDATE SKIP LOCKED)
    -- `Running` at once: the fetch is the lock (the pools turn apalis's own lock
    -- off, a transaction per task saved; a pool that still sends it updates nothing).
    UPDATE apalis.jobs j SET status = 'Running', lock_by = worker_id, lock_at = now()
    FROM (SELECT id FROM aged UNION ALL SELECT id FROM rest) jobs WHERE j.id = jobs.id
    RETURNING j.*;
$$;
