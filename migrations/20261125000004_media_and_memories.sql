-- Media files, memories, collections and the joins between them.
-- Join rows carry user_id and composite foreign keys to (id, user_id): the database itself
-- refuses to put one user's photo into another user's memory or album.

CREATE TABLE media_files (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The client's name, for display only; it never becomes a storage path.
    filename          text NOT NULL CHECK (length(filename) BETWEEN 1 AND 1024),
    -- Object-store key chosen by the system.
    file_path         text NOT NULL CHECK (length(file_path) BETWEEN 1 AND 1024),
    file_size         bigint NOT NULL CHECK (file_size >= 0),
    mime_type         text NOT NULL CHECK (mime_type ~ '^[a-z]+/[a-z0-9.+-]+$'),
    -- As displayed, i.e. after EXIF orientation.
    width             integer CHECK (width > 0),
    height            integer CHECK (height > 0),
    duration          double precision CHECK (duration >= 0),
    file_hash         text CHECK (file_hash ~ '^[0-9a-f]{64}$'),
    thumbnail_path    text CHECK (length(thumbnail_path) <= 1024),
    preview_path      text CHECK (length(preview_path) <= 1024),
    processing_status text NOT NULL DEFAULT 'pending'
                      CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed', 'duplicate')),
    error_message     text,
    duplicate_of      uuid,
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    location_id       uuid,
    -- The instant the photo was taken. When only a wall-clock time is known (no offset, no GPS)
    -- it is stored as that wall clock read as UTC and taken_at_offset_minutes stays NULL.
    taken_at          timestamptz,
    taken_at_offset_minutes smallint CHECK (taken_at_offset_minutes BETWEEN -1080 AND 1080),
    taken_at_source   text CHECK (taken_at_source IN ('exif_offset', 'gps_timezone', 'local_time')),
    orientation       smallint CHECK (orientation BETWEEN 1 AND 8),
    camera_make       text CHECK (length(camera_make) <= 200),
    camera_model      text CHECK (length(camera_model) <= 200),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Timeline order: when the photo was taken, else when it arrived.
    timeline_at       timestamptz GENERATED ALWAYS AS (coalesce(taken_at, created_at)) STORED,
    UNIQUE (id, user_id),
    CHECK ((processing_status = 'duplicate') = (duplicate_of IS NOT NULL)),
    CHECK (duplicate_of IS DISTINCT FROM id),
    -- A duplicate has no bytes of its own (its copy is removed), so it goes with its original.
    FOREIGN KEY (duplicate_of, user_id) REFERENCES media_files (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (location_id, user_id) REFERENCES locations (id, user_id) ON DELETE SET NULL (location_id)
);
-- Deduplication per user: one original per (user, bytes). Duplicates keep the hash for the
-- record but are outside the index, so the hash worker's insert race is settled by the index.
CREATE UNIQUE INDEX idx_media_files_user_hash ON media_files (user_id, file_hash)
    WHERE duplicate_of IS NULL;
CREATE INDEX idx_media_files_user_id ON media_files (user_id);
CREATE INDEX idx_media_files_hash ON media_files (file_hash);
CREATE INDEX idx_media_files_taken_at ON media_files (taken_at);
CREATE INDEX idx_media_files_processing ON media_files (processing_status);
CREATE INDEX idx_media_files_user_type_status ON media_files (user_id, mime_type, processing_status);
-- GET /v1/media: newest first with a (timeline_at, id) keyset cursor.
CREATE INDEX idx_media_files_user_timeline ON media_files (user_id, timeline_at DESC, id DESC);
-- GET /v1/media?status=failed and the reprocess scan only touch rows that are not done.
CREATE INDEX idx_media_files_user_unfinished ON media_files (user_id, processing_status, timeline_at DESC)
    WHERE processing_status <> 'completed';
CREATE INDEX idx_media_files_location ON media_files (location_id) WHERE location_id IS NOT NULL;
CREATE INDEX idx_media_files_duplicate_of ON media_files (duplicate_of) WHERE duplicate_of IS NOT NULL;
SELECT manage_updated_at('media_files');

CREATE TABLE memories (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description       text CHECK (length(description) <= 50000),
    -- When it happened. A small allowance covers client clock skew; anything later is refused.
    memory_date       timestamptz NOT NULL CHECK (memory_date <= now() + interval '5 minutes'),
    created_date      timestamptz NOT NULL DEFAULT now(),
    memory_type       text NOT NULL DEFAULT 'photo'
                      CHECK (memory_type IN ('photo', 'video', 'text', 'audio', 'event', 'checkin', 'link', 'milestone')),
    source_platform   text NOT NULL DEFAULT 'timeline'
                      CHECK (source_platform IN ('timeline', 'upload', 'facebook', 'instagram', 'google_photos', 'twitter', 'apple_photos', 'other')),
    source_id         text CHECK (length(source_id) <= 500),
    location_id       uuid,
    visibility        text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'friends', 'public')),
    is_favorite       boolean NOT NULL DEFAULT false,
    tags              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    processing_status text NOT NULL DEFAULT 'completed'
                      CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (location_id, user_id) REFERENCES locations (id, user_id) ON DELETE SET NULL (location_id)
);
CREATE INDEX idx_memories_user_id ON memories (user_id);
CREATE INDEX idx_memories_user_date ON memories (user_id, memory_date);
CREATE INDEX idx_memories_location ON memories (location_id);
CREATE INDEX idx_memories_visibility ON memories (visibility);
CREATE INDEX idx_memories_tags ON memories USING gin (tags);
CREATE INDEX idx_memories_user_date_visibility ON memories (user_id, memory_date, visibility);
-- Re-importing an archive must not duplicate memories.
CREATE UNIQUE INDEX idx_memories_source ON memories (user_id, source_platform, source_id)
    WHERE source_id IS NOT NULL;
SELECT manage_updated_at('memories');

CREATE TABLE memory_media_files (
    memory_id     uuid NOT NULL,
    media_file_id uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (memory_id, media_file_id),
    FOREIGN KEY (memory_id, user_id) REFERENCES memories (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (media_file_id, user_id) REFERENCES media_files (id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_memory_media_files_media ON memory_media_files (media_file_id);

CREATE TABLE collections (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description    text CHECK (length(description) <= 5000),
    cover_image_id uuid,
    visibility     text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'friends', 'public')),
    sort_order     text NOT NULL DEFAULT 'date_desc'
                   CHECK (sort_order IN ('date_desc', 'date_asc', 'title', 'manual')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id),
    FOREIGN KEY (cover_image_id, user_id) REFERENCES media_files (id, user_id) ON DELETE SET NULL (cover_image_id)
);
CREATE INDEX idx_collections_user_id ON collections (user_id);
CREATE INDEX idx_collections_cover ON collections (cover_image_id) WHERE cover_image_id IS NOT NULL;
SELECT manage_updated_at('collections');

CREATE TABLE collection_memories (
    collection_id uuid NOT NULL,
    memory_id     uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, memory_id),
    FOREIGN KEY (collection_id, user_id) REFERENCES collections (id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (memory_id, user_id) REFERENCES memories (id, user_id) ON DELETE CASCADE
);
CREATE INDEX idx_collection_memories_memory ON collection_memories (memory_id);
