-- The operators' dashboard signs in to a server-side session, never to a cookie holding an API
-- token. The cookie carries a random id; only its SHA-256 is stored, so a copy of this table
-- signs no one in. A session ends at its deadline (12 hours after sign-in) or at sign-out,
-- whichever comes first; the reconciler deletes ended ones.
CREATE TABLE admin_sessions (
    id_hash    bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX idx_admin_sessions_user_id ON admin_sessions (user_id);
CREATE INDEX idx_admin_sessions_expires_at ON admin_sessions (expires_at);

COMMENT ON TABLE admin_sessions IS
    'Dashboard sign-ins: SHA-256 of the cookie''s random id, owner, deadline, sign-out time.';
-- No grant to timeline_api, and row-level security with no policy for it: only the dashboard
-- (the owning role, exempt) reads or writes sessions.
ALTER TABLE admin_sessions ENABLE ROW LEVEL SECURITY;
