-- Bounces (issue #10): the address of a person that a delivery status notification reported as
-- failed for good (sealed like the person's other contact data, bound to the row), its status
-- code and when. The claim leaves that address out; editing the person's addresses clears it.
ALTER TABLE people ADD COLUMN undeliverable_address TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN undeliverable_status TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN undeliverable_at INTEGER NOT NULL DEFAULT 0;
