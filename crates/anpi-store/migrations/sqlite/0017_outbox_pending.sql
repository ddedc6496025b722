-- The claim walks pending rows in id order: a partial index holds only those, so a claim
-- reads a batch, not every row still waiting (issue #10).
CREATE INDEX outbox_pending ON outbox(id) WHERE status = 'pending';
