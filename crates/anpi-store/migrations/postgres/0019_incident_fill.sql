-- Issue #10: an incident for 100,000 people is written in chunks, the first one small, so the
-- first message goes out while the rest is still being written. `fill_ids` holds the chosen
-- people (a JSON array) until every one of them has a recipient row and a queued message;
-- `filled` counts how many have; `fill_lease_until` says until when the writer owns the rest.
-- A writer that died leaves an expired lease, and the outbox worker finishes the fill.
ALTER TABLE incidents ADD COLUMN fill_ids TEXT;
ALTER TABLE incidents ADD COLUMN filled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN fill_lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX incidents_filling ON incidents(id) WHERE fill_ids IS NOT NULL;

-- Per-row costs of that write (measured at 100,000 rows, docs/architecture.md): each foreign
-- key is a lookup per inserted row. A recipient now has one key, (tenant_id, incident_id),
-- which also proves the recipient belongs to its incident's tenant (two keys proved less).
-- The outbox loses its key to tenants: its rows are written only from recipients (or by the
-- store for a tenant it holds), and they are transient. `outbox_due` served the claim before
-- the partial index `outbox_pending` (0017); nothing reads it now.
ALTER TABLE incidents ADD CONSTRAINT incidents_tenant_id_id UNIQUE (tenant_id, id);
ALTER TABLE recipients DROP CONSTRAINT recipients_tenant_id_fkey;
ALTER TABLE recipients DROP CONSTRAINT recipients_incident_id_fkey;
ALTER TABLE recipients ADD CONSTRAINT recipients_incident FOREIGN KEY (tenant_id, incident_id) REFERENCES incidents(tenant_id, id);
ALTER TABLE outbox DROP CONSTRAINT outbox_tenant_id_fkey;
DROP INDEX outbox_due;
-- Redundant: the unique (incident_id, person_id) index serves every lookup by incident.
DROP INDEX recipients_incident;
