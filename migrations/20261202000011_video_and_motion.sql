-- Videos, audio, Live Photos and Motion Photos.
--
-- `kind` is derived from the stored MIME type (decided from the file's bytes at upload), so it
-- can never disagree with it. A motion clip (the MOV of an Apple Live Photo, or the MP4 embedded
-- in a Google/Samsung Motion Photo) points at its still with `motion_of`; the timeline lists the
-- still only, and the still's detail names its clip.

ALTER TABLE media_files
    ADD COLUMN kind text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN mime_type LIKE 'video/%' THEN 'video'
             WHEN mime_type LIKE 'audio/%' THEN 'audio'
             ELSE 'image' END) STORED,
    -- Apple's ContentIdentifier: the still's MakerNote MediaGroupUUID, the clip's QuickTime key.
    ADD COLUMN content_identifier text CHECK (length(content_identifier) BETWEEN 1 AND 200),
    ADD COLUMN motion_of uuid,
    ADD COLUMN motion_source text CHECK (motion_source IN ('live_photo', 'embedded')),
    ADD CONSTRAINT media_files_motion_pair CHECK ((motion_of IS NULL) = (motion_source IS NULL)),
    ADD CONSTRAINT media_files_motion_not_self CHECK (motion_of IS DISTINCT FROM id),
    -- The clip goes with its still: a user deletes "the photo", not half of it.
    ADD CONSTRAINT media_files_motion_of_fkey FOREIGN KEY (motion_of, user_id)
        REFERENCES media_files (id, user_id) ON DELETE CASCADE;

-- One motion clip per still; also makes the embedded-clip insert idempotent.
CREATE UNIQUE INDEX idx_media_files_motion_of ON media_files (motion_of) WHERE motion_of IS NOT NULL;
-- Pairing a Live Photo's two halves, uploaded in any order.
CREATE INDEX idx_media_files_user_content_id ON media_files (user_id, content_identifier)
    WHERE content_identifier IS NOT NULL;

-- A video's container date is an exact UTC instant whose local offset may be unknown.
ALTER TABLE media_files DROP CONSTRAINT media_files_taken_at_source_check;
ALTER TABLE media_files ADD CONSTRAINT media_files_taken_at_source_check
    CHECK (taken_at_source IN ('exif_offset', 'gps_timezone', 'local_time', 'container_utc'));

-- The `video` step (ffprobe + poster frame, or audio probe + waveform) on its own queue.
ALTER TABLE media_processing_steps DROP CONSTRAINT media_processing_steps_step_check;
ALTER TABLE media_processing_steps ADD CONSTRAINT media_processing_steps_step_check
    CHECK (step IN ('hash', 'exif', 'thumbnail', 'video'));
