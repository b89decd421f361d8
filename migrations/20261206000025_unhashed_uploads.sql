-- The files a user has recorded but whose hash step has not run yet, by the SHA-256 computed
-- as their bytes arrived: db::media::existing_hashes finds them too, so that an import run
-- again after its worker died (or `POST /v1/media/exists`) knows a file the dead run stored
-- before its hash step ran, instead of recording it a second time. Partial: only files in
-- flight are in it, so it stays small whatever the library's size.
CREATE INDEX idx_media_files_user_unhashed ON media_files (user_id, upload_sha256)
    WHERE file_hash IS NULL AND upload_sha256 IS NOT NULL;
