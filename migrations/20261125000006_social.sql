-- Social interactions on memories: comments, reactions and shares. The author of a comment or
-- reaction may be another user than the memory's owner (a memory shared with them).

CREATE TABLE shares (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    memory_id           uuid NOT NULL,
    -- The memory's owner, who shares it.
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    shared_with_user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    -- For a link share: SHA-256 of the link's secret, never the secret itself.
    link_token_hash     bytea UNIQUE CHECK (length(link_token_hash) = 32),
    permission          text NOT NULL DEFAULT 'view' CHECK (permission IN ('view', 'comment', 'react')),
    expires_at          timestamptz,
    revoked_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (memory_id, user_id) REFERENCES memories (id, user_id) ON DELETE CASCADE,
    CHECK ((shared_with_user_id IS NULL) <> (link_token_hash IS NULL)),
    CHECK (shared_with_user_id IS DISTINCT FROM user_id)
);
CREATE UNIQUE INDEX idx_shares_memory_recipient ON shares (memory_id, shared_with_user_id)
    WHERE shared_with_user_id IS NOT NULL;
CREATE INDEX idx_shares_recipient ON shares (shared_with_user_id) WHERE shared_with_user_id IS NOT NULL;
CREATE INDEX idx_shares_user_id ON shares (user_id);
SELECT manage_updated_at('shares');

CREATE TABLE comments (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    memory_id         uuid NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    -- The author.
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_comment_id uuid,
    body              text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 10000),
    is_edited         boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, memory_id),
    -- A reply belongs to the same memory as the comment it answers.
    FOREIGN KEY (parent_comment_id, memory_id) REFERENCES comments (id, memory_id) ON DELETE CASCADE
);
CREATE INDEX idx_comments_memory_created ON comments (memory_id, created_at);
CREATE INDEX idx_comments_user_id ON comments (user_id);
CREATE INDEX idx_comments_parent ON comments (parent_comment_id) WHERE parent_comment_id IS NOT NULL;
SELECT manage_updated_at('comments');

CREATE TABLE reactions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    memory_id     uuid NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reaction_type text NOT NULL CHECK (reaction_type IN ('like', 'love', 'laugh', 'wow', 'sad', 'care')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- One reaction per person per memory; changing it is an update.
    UNIQUE (memory_id, user_id)
);
CREATE INDEX idx_reactions_user_id ON reactions (user_id);
SELECT manage_updated_at('reactions');
