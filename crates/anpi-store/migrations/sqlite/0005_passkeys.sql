-- WebAuthn passkeys as a second factor (issue #4).

-- A registered credential: its id (base64url, unique across the instance, as the spec asks),
-- its public key (SEC1 uncompressed P-256 point: ES256 only) and the last signature counter.
CREATE TABLE passkeys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  credential_id TEXT NOT NULL UNIQUE,
  public_key BLOB NOT NULL,
  sign_count BIGINT NOT NULL DEFAULT 0,
  name TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_account ON passkeys(tenant_id, account_id);

-- Outstanding challenges (base64url of 32 random bytes): single use, short-lived.
CREATE TABLE webauthn_challenges (
  challenge TEXT PRIMARY KEY,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  purpose TEXT NOT NULL,                            -- register, login
  expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges(expires_at);
