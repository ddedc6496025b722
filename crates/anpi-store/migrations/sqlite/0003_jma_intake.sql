-- JMA intake: telegrams received (any type, parsed or not), feed polling state, per-tenant
-- dispatch rules and the decisions taken for each telegram.

-- Every telegram received from the feed, the push endpoint or a replay. Public JMA data, not
-- tenant-owned. `dedupe_key` makes a repeated telegram a no-op.
CREATE TABLE telegrams (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dedupe_key TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL,                 -- feed, push, replay
  received_at BIGINT NOT NULL,
  type_code TEXT NOT NULL DEFAULT '',
  title TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',      -- normal, drill, test, other
  info_type TEXT NOT NULL DEFAULT '',   -- issue, correction, delay, cancellation
  event_id TEXT NOT NULL DEFAULT '',
  serial BIGINT,
  reported_at BIGINT,
  kind TEXT NOT NULL DEFAULT '',        -- earthquake, eew, tsunami, weather, …, other
  severity TEXT NOT NULL DEFAULT 'info',
  headline TEXT NOT NULL DEFAULT '',
  areas TEXT NOT NULL DEFAULT '[]',     -- JSON: [{code, name, severity}]
  error TEXT,                           -- why it was rejected, when it was
  processed_at BIGINT,                  -- when the rules were applied (NULL: still to do)
  xml TEXT NOT NULL
);
CREATE INDEX telegrams_event ON telegrams(kind, event_id);
CREATE INDEX telegrams_received ON telegrams(received_at);
CREATE INDEX telegrams_unprocessed ON telegrams(processed_at);

-- Conditional-GET state and health of each polled Atom feed.
CREATE TABLE feeds (
  url TEXT PRIMARY KEY,
  etag TEXT NOT NULL DEFAULT '',
  last_modified TEXT NOT NULL DEFAULT '',
  last_polled_at BIGINT,
  last_ok_at BIGINT,
  last_error TEXT NOT NULL DEFAULT '',
  failures BIGINT NOT NULL DEFAULT 0,
  next_poll_at BIGINT NOT NULL DEFAULT 0,
  entries_seen BIGINT NOT NULL DEFAULT 0
);
-- Telegram URLs already fetched, so each is fetched once.
CREATE TABLE feed_entries (
  url TEXT PRIMARY KEY,
  telegram_id BIGINT,
  fetched_at BIGINT NOT NULL
);

CREATE TABLE rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  enabled BIGINT NOT NULL DEFAULT 1,
  kind TEXT NOT NULL,
  threshold TEXT NOT NULL,
  areas TEXT NOT NULL DEFAULT '',       -- space-separated JIS codes; empty: wherever our people are
  basis TEXT NOT NULL DEFAULT 'both',   -- home, work, both
  survey TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  hold_secs BIGINT NOT NULL DEFAULT 0,
  suppress_min BIGINT NOT NULL DEFAULT 60,
  reminder_interval_min BIGINT NOT NULL DEFAULT 0,
  reminder_count BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX rules_tenant ON rules(tenant_id);

-- What each tenant rule decided about each relevant telegram, and why.
CREATE TABLE dispatches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  rule_id BIGINT NOT NULL REFERENCES rules(id) ON DELETE CASCADE,
  telegram_id BIGINT NOT NULL REFERENCES telegrams(id),
  kind TEXT NOT NULL,
  event_id TEXT NOT NULL,
  severity TEXT NOT NULL,
  status TEXT NOT NULL,                 -- held, sent, suppressed, drill, not_matched, no_people, cancelled, failed, notice
  reason TEXT NOT NULL DEFAULT '',
  areas TEXT NOT NULL DEFAULT '',       -- the people's area codes that matched
  due_at BIGINT NOT NULL,
  incident_id BIGINT,
  recipients BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE (rule_id, telegram_id)
);
CREATE INDEX dispatches_tenant ON dispatches(tenant_id, telegram_id);
CREATE INDEX dispatches_due ON dispatches(status, due_at);
CREATE INDEX dispatches_event ON dispatches(tenant_id, kind, event_id);

-- An incident started by a rule carries its dispatch, so a retried dispatch finds it.
ALTER TABLE incidents ADD COLUMN dispatch_id BIGINT;
CREATE UNIQUE INDEX incidents_dispatch ON incidents(dispatch_id);
