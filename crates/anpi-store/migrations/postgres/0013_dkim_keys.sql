-- DKIM signing keys, per sending domain and selector (instance data: no tenant rows). The
-- private key is sealed with a key derived from the master key, which the database never holds.
CREATE TABLE dkim_keys (
  domain TEXT NOT NULL,
  selector TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  private_sealed TEXT NOT NULL,
  public_key TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (domain, selector)
);
