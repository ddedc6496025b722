-- One hash chain per tenant and log kind ('audit': changes and security events, 'signin':
-- sign-in history, 'usage': who viewed what), so each kind keeps its own retention and a
-- purge of one never breaks another. Existing entries stay in the 'audit' chain.
-- SQLite cannot change a key in place: the two tables are copied.
CREATE TABLE audit_log_new (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'audit',
  seq BIGINT NOT NULL,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL,
  ip TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '',
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  UNIQUE (tenant_id, kind, seq)
);
INSERT INTO audit_log_new (id, tenant_id, kind, seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash)
  SELECT id, tenant_id, 'audit', seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(tenant_id, at);
CREATE INDEX audit_log_kind_at ON audit_log(tenant_id, kind, at);
CREATE TABLE audit_heads_new (
  tenant_id BIGINT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'audit',
  seq BIGINT NOT NULL DEFAULT 0,
  hash TEXT NOT NULL DEFAULT '',
  anchor_seq BIGINT NOT NULL DEFAULT 0,
  anchor_hash TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, kind)
);
INSERT INTO audit_heads_new (tenant_id, kind, seq, hash, anchor_seq, anchor_hash)
  SELECT tenant_id, 'audit', seq, hash, anchor_seq, anchor_hash FROM audit_heads;
DROP TABLE audit_heads;
ALTER TABLE audit_heads_new RENAME TO audit_heads;
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
