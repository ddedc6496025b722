-- A tenant is sealed once every contact value is row-bound ciphertext (enc2): from then on
-- plaintext and older formats are refused (a value planted in the database is never used).
-- Existing tenants are sealed by the start-up pass (`encrypt_existing`); new ones are born sealed.
ALTER TABLE tenants ADD COLUMN sealed BIGINT NOT NULL DEFAULT 0;
