-- system_configuration holds only settings the code reads (src/db/settings.rs,
-- src/db/maintenance.rs). Rows still at the first seed's values move to what the code does
-- now (videos and audio accepted, 10 GiB files); an operator's own values stay.
UPDATE system_configuration SET config_value = '10737418240',
       description = 'Largest accepted upload per file (10 GiB); TIMELINE_MAX_FILE_BYTES wins.'
 WHERE config_key = 'upload.max_file_bytes' AND config_value = '209715200';
UPDATE system_configuration SET config_value = '21474836480',
       description = 'Largest accepted upload request (20 GiB); TIMELINE_MAX_REQUEST_BYTES wins.'
 WHERE config_key = 'upload.max_request_bytes' AND config_value = '1073741824';
UPDATE system_configuration
   SET config_value = '["image/jpeg","image/png","image/webp","image/gif","image/tiff","image/heic","video/mp4","video/quicktime","video/x-m4v","video/3gpp","video/webm","video/x-matroska","video/x-msvideo","audio/mp4","audio/mpeg","audio/wav","audio/ogg","audio/flac"]',
       description = 'Types accepted, decided from the bytes (MIME types); TIMELINE_ALLOWED_TYPES wins.'
 WHERE config_key = 'upload.allowed_types'
   AND config_value = '["image/jpeg","image/png","image/webp","image/gif","image/tiff","image/heic","image/heif"]';
-- Not settings: the pipeline version is a property of the code (jobs::PIPELINE_VERSION), and
-- rendition sizes are part of the stored objects (changing them is a code change plus a
-- reprocess). A recorded value would only mislead.
DELETE FROM system_configuration WHERE config_key IN ('pipeline.version', 'thumbnails.sizes');
