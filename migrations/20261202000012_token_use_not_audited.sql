-- A token's `last_used_at` moves on its own (at most every few minutes per token): not a change
-- anyone made, so not an audit event. Creation, revocation, expiry changes and deletion stay
-- audited.
DROP TRIGGER audit ON api_tokens;
CREATE TRIGGER audit AFTER INSERT OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION audit_row_change();
CREATE TRIGGER audit_update AFTER UPDATE ON api_tokens
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'last_used_at' - 'updated_at') IS DISTINCT FROM
          (to_jsonb(NEW) - 'last_used_at' - 'updated_at'))
    EXECUTE FUNCTION audit_row_change();
