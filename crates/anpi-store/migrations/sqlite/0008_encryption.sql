-- Encryption at rest (docs/security.md). Per-tenant data keys, each wrapped (XChaCha20-Poly1305)
-- by a master key that is never stored here: `master_id` names the master key that wrapped it.
-- Contact fields (people.emails, people.phone, csv_imports.content) hold `enc1:KEY_ID:BASE64`.
CREATE TABLE tenant_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  master_id TEXT NOT NULL,
  wrapped TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'active',   -- active | retired
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys(tenant_id) WHERE state = 'active';

-- Keyed hashes (HMAC-SHA256 under a key derived from a tenant data key) of each normalised
-- email of a person, for lookups by email without plaintext.
CREATE TABLE person_email_hashes (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  key_id BIGINT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX person_email_hashes_lookup ON person_email_hashes(tenant_id, hash);
CREATE INDEX person_email_hashes_person ON person_email_hashes(person_id);
