-- Production defaults: system-wide settings. Existing values (an operator's changes) are kept.
INSERT INTO system_configuration (config_key, config_value, description, is_sensitive) VALUES
    ('upload.max_file_bytes', '10737418240', 'Largest accepted upload per file (10 GiB); TIMELINE_MAX_FILE_BYTES wins.', false),
    ('upload.max_request_bytes', '21474836480', 'Largest accepted upload request (20 GiB); TIMELINE_MAX_REQUEST_BYTES wins.', false),
    ('upload.allowed_types', '["image/jpeg","image/png","image/webp","image/gif","image/tiff","image/heic","video/mp4","video/quicktime","video/x-m4v","video/3gpp","video/webm","video/x-matroska","video/x-msvideo","audio/mp4","audio/mpeg","audio/wav","audio/ogg","audio/flac"]',
        'Types accepted, decided from the bytes (MIME types); TIMELINE_ALLOWED_TYPES wins.', false),
    ('media.max_pixels', '100000000', 'Largest decoded image (pixels) before a file is refused as a bomb; TIMELINE_MAX_PIXELS wins.', false),
    ('jobs.max_attempts', '5', 'Attempts per processing step before a media file is marked failed; TIMELINE_MAX_ATTEMPTS wins.', false),
    ('jobs.retention_days', '30', 'Finished data_processing_jobs and queue rows older than this are pruned.', false),
    ('audit.retention_months', '13', 'Monthly audit_logs partitions older than this are dropped.', false),
    ('geocoding.max_distance_km', '50', 'Farther than this from any known place, reverse geocoding gives no city; TIMELINE_GEOCODE_MAX_DISTANCE_KM wins.', false)
ON CONFLICT (config_key) DO NOTHING;
