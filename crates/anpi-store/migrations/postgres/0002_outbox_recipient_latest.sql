-- The dashboard reads each recipient's latest message: index (recipient_id, id) so that
-- lookup stays an index probe even before the planner has statistics on a fresh bulk insert.
CREATE INDEX outbox_recipient_latest ON outbox(recipient_id, id);
DROP INDEX outbox_recipient;
