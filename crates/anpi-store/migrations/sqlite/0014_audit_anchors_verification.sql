-- Checkpoints signed by a retention purge mark the chain's new start (its anchor): an anchor
-- without such a signature means entries were deleted by someone other than the purge.
ALTER TABLE audit_checkpoints ADD COLUMN anchor BIGINT NOT NULL DEFAULT 0;
-- The last verification of each chain (hourly from its last checkpoint, daily in full, and
-- `anpi audit verify`), shown on the log page instead of re-verifying on every load.
ALTER TABLE audit_heads ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_heads ADD COLUMN checked_full BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_heads ADD COLUMN problems TEXT NOT NULL DEFAULT '';
