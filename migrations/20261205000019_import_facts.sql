-- What an import's sidecar says about a media file (Google Takeout's JSON, Facebook's, iCloud's
-- CSV), recorded with the row when it is stored: the exif step merges it with the file's own
-- facts (docs/IMPORTS.md gives the rule) and keeps it for the record.
ALTER TABLE media_files ADD COLUMN import_facts jsonb
    CHECK (import_facts IS NULL OR jsonb_typeof(import_facts) = 'object');

-- taken_at from a sidecar's instant (its zone from the position, when there is one).
ALTER TABLE media_files DROP CONSTRAINT media_files_taken_at_source_check;
ALTER TABLE media_files ADD CONSTRAINT media_files_taken_at_source_check
    CHECK (taken_at_source IN ('exif_offset', 'gps_timezone', 'local_time', 'container_utc', 'sidecar'));
