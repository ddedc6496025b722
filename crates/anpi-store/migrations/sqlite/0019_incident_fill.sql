-- Issue #10: an incident for 100,000 people is written in chunks, the first one small, so the
-- first message goes out while the rest is still being written. `fill_ids` holds the chosen
-- people (a JSON array) until every one of them has a recipient row and a queued message;
-- `filled` counts how many have; `fill_lease_until` says until when the writer owns the rest.
-- A writer that died leaves an expired lease, and the outbox worker finishes the fill.
-- (The PostgreSQL migration also trims per-row foreign keys; SQLite's are cheap here.)
ALTER TABLE incidents ADD COLUMN fill_ids TEXT;
ALTER TABLE incidents ADD COLUMN filled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN fill_lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX incidents_filling ON incidents(id) WHERE fill_ids IS NOT NULL;
DROP INDEX outbox_due;
-- Redundant: the unique (incident_id, person_id) index serves every lookup by incident.
DROP INDEX recipients_incident;
