-- Tamper-evident audit log: one hash chain per tenant (tenant_id 0: operators and the system).
-- Each entry's hash covers its fields and the previous entry's hash; the head records the
-- last entry, so removing entries at the end is detected too. A retention purge deletes old
-- entries and keeps the last deleted one as the anchor the chain starts from.
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,          -- account:ID, operator:ID, system, anonymous
  action TEXT NOT NULL,         -- e.g. sign_in, sign_in_failed, mfa_enabled, incident_started
  target TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL,        -- ok, denied, failed
  ip TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '',
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_log_at ON audit_log(tenant_id, at);
CREATE TABLE audit_heads (
  tenant_id BIGINT PRIMARY KEY,
  seq BIGINT NOT NULL DEFAULT 0,
  hash TEXT NOT NULL DEFAULT '',
  anchor_seq BIGINT NOT NULL DEFAULT 0,
  anchor_hash TEXT NOT NULL DEFAULT ''
);
ALTER TABLE tenant_security ADD COLUMN audit_retention_days BIGINT NOT NULL DEFAULT 365;
