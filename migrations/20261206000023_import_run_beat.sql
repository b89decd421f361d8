-- An API import's run beats on a column of its own. It beat on updated_at before, which the
-- set_updated_at trigger also moves whenever a file of the import is counted: a run given back
-- by the queue (its worker killed) while the dead run's files were finishing took the job for
-- alive, ended, and the import waited for the reconciler. Nullable, no default: instant to add.
ALTER TABLE data_processing_jobs ADD COLUMN run_beat_at timestamptz;
COMMENT ON COLUMN data_processing_jobs.run_beat_at IS
    'When the run of an API import last marked itself alive (claim and heartbeat only); null before its first run';
