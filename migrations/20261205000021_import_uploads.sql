-- `POST /v1/imports` reads archives uploaded through tus (`Upload-Metadata: purpose import`).
-- Such an upload does not become a media file: its zip is kept at a key of its own, owned by its
-- completed upload session until that expires, and the reconciler then deletes it like any
-- object nobody names.
ALTER TABLE upload_sessions
    ADD COLUMN purpose text NOT NULL DEFAULT 'media' CHECK (purpose IN ('media', 'archive'));
