-- An account's upload sessions, by user: the quota check (db::uploads::admission) adds what
-- the account's uploads in flight declared and the import archives it keeps, and deleting a
-- user cascades to its sessions; neither should read every session of every user.
CREATE INDEX idx_upload_sessions_user ON upload_sessions (user_id);
