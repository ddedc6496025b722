-- One hash chain per tenant and log kind ('audit': changes and security events, 'signin':
-- sign-in history, 'usage': who viewed what), so each kind keeps its own retention and a
-- purge of one never breaks another. Existing entries stay in the 'audit' chain.
ALTER TABLE audit_log ADD COLUMN kind TEXT NOT NULL DEFAULT 'audit';
ALTER TABLE audit_log DROP CONSTRAINT audit_log_tenant_id_seq_key;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_chain_seq UNIQUE (tenant_id, kind, seq);
CREATE INDEX audit_log_kind_at ON audit_log(tenant_id, kind, at);
ALTER TABLE audit_heads ADD COLUMN kind TEXT NOT NULL DEFAULT 'audit';
ALTER TABLE audit_heads DROP CONSTRAINT audit_heads_pkey;
ALTER TABLE audit_heads ADD PRIMARY KEY (tenant_id, kind);
ALTER TABLE tenant_security ADD COLUMN signin_retention_days BIGINT NOT NULL DEFAULT 365;
ALTER TABLE tenant_security ADD COLUMN usage_retention_days BIGINT NOT NULL DEFAULT 365;
-- Signed checkpoints: a chain's head (seq, hash) signed with a key derived from the master
-- key, which the database never holds. Rewriting a whole chain consistently is detected.
CREATE TABLE audit_checkpoints (
  tenant_id BIGINT NOT NULL,
  kind TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL,
  at BIGINT NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY (tenant_id, kind, seq)
);
-- The second wall (0011) for the new table too.
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON audit_checkpoints USING (anpi_tenant_visible(tenant_id)) WITH CHECK (anpi_tenant_visible(tenant_id));
