-- Identity and access (issue #4): MFA, lockout, session details, tenant security policy.

-- TOTP: the shared secret (base32), the last accepted time step (each code is accepted once).
ALTER TABLE accounts ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
-- Consecutive failed sign-ins, and the lockout they caused (0: not locked).
ALTER TABLE accounts ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN last_failed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN locked BIGINT NOT NULL DEFAULT 0;

-- One-time recovery codes, stored hashed.
CREATE TABLE recovery_codes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  used_at BIGINT
);
CREATE INDEX recovery_codes_account ON recovery_codes(account_id);

-- Sessions: 'full', or half-way: 'mfa' (password accepted, second factor pending) or 'enrol'
-- (MFA required but not set up: only enrolment is allowed). Where and what from, for the list.
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'full';
ALTER TABLE sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';

-- Failed sign-ins per client address, for throttling.
CREATE TABLE login_throttle (
  key TEXT PRIMARY KEY,
  failures BIGINT NOT NULL DEFAULT 0,
  last_failed_at BIGINT NOT NULL DEFAULT 0
);

-- A tenant's security policy. No row: the defaults.
CREATE TABLE tenant_security (
  tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
  mfa_required TEXT NOT NULL DEFAULT 'none',        -- none, admins, distributors, everyone
  lockout_threshold BIGINT NOT NULL DEFAULT 100,
  idle_min BIGINT NOT NULL DEFAULT 30,
  absolute_min BIGINT NOT NULL DEFAULT 720,
  console_allowlist TEXT NOT NULL DEFAULT '',       -- CIDRs, space-separated; empty: anywhere
  admin_allowlist TEXT NOT NULL DEFAULT '',
  answer_allowlist TEXT NOT NULL DEFAULT ''
);
