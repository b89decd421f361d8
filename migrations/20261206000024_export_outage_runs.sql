-- Runs of an export that stopped on an outage of the store or the database, rather than dying
-- or failing on the archive itself. They do not count toward the runs an export is given
-- (export::MAX_ATTEMPTS counts attempt - outage_runs): an outage longer than five of the
-- reconciler's stall periods no longer fails the user's export. A constant default: instant.
ALTER TABLE exports ADD COLUMN outage_runs integer NOT NULL DEFAULT 0
    CHECK (outage_runs >= 0);
COMMENT ON COLUMN exports.outage_runs IS
    'Runs that stopped on an outage of the store or the database (not counted against the export''s attempts)';
