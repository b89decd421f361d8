-- Production defaults: system-wide settings. Existing values (an operator's changes) are kept.
INSERT INTO system_configuration (config_key, config_value, description, is_sensitive) VALUES
    ('upload.max_file_bytes', '209715200', 'Largest accepted upload per file (200 MiB).', false),
    ('upload.max_request_bytes', '1073741824', 'Largest accepted upload request (1 GiB).', false),
    ('upload.allowed_types', '["image/jpeg","image/png","image/webp","image/gif","image/tiff","image/heic","image/heif"]',
        'Image types accepted, decided from the bytes.', false),
    ('pipeline.version', '1', 'Version of the processing pipeline; a bump makes "reprocess missing" redo older steps.', false),
    ('thumbnails.sizes', '{"thumb": 250, "preview": 1440}', 'Shorter edge in pixels of each thumbnail.', false),
    ('media.max_pixels', '100000000', 'Largest decoded image (pixels) before a file is refused as a bomb.', false),
    ('jobs.max_attempts', '5', 'Attempts per processing step before a media file is marked failed.', false),
    ('jobs.retention_days', '30', 'Finished data_processing_jobs and queue rows older than this are pruned.', false),
    ('audit.retention_months', '13', 'Monthly audit_logs partitions older than this are dropped.', false),
    ('geocoding.max_distance_km', '50', 'Farther than this from any known place, reverse geocoding gives no city.', false)
ON CONFLICT (config_key) DO NOTHING;
