-- anpi schema, SQLite flavour. Times are UTC unix milliseconds (BIGINT).
CREATE TABLE instance_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);

CREATE TABLE operators (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE tenants (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  time_zone TEXT NOT NULL DEFAULT 'Asia/Tokyo',
  created_at BIGINT NOT NULL
);

CREATE TABLE departments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  parent_id BIGINT REFERENCES departments(id),
  name TEXT NOT NULL,
  UNIQUE (tenant_id, parent_id, name)
);
CREATE TABLE positions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE sites (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  area_code TEXT NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE contact_groups (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  UNIQUE (tenant_id, name)
);

CREATE TABLE people (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  employee_no TEXT NOT NULL,
  name TEXT NOT NULL,
  furigana TEXT NOT NULL DEFAULT '',
  emails TEXT NOT NULL DEFAULT '',
  phone TEXT NOT NULL DEFAULT '',
  home_area TEXT NOT NULL DEFAULT '',
  department_id BIGINT REFERENCES departments(id),
  position_id BIGINT REFERENCES positions(id),
  site_id BIGINT REFERENCES sites(id),
  language TEXT NOT NULL DEFAULT 'ja',
  disabled BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, employee_no)
);
CREATE TABLE group_members (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  group_id BIGINT NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
  person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  PRIMARY KEY (group_id, person_id)
);

CREATE TABLE accounts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  email TEXT NOT NULL,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL DEFAULT '',
  disabled BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  UNIQUE (tenant_id, email)
);

CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY,
  principal TEXT NOT NULL,              -- 'account' or 'operator'
  principal_id BIGINT NOT NULL,
  tenant_id BIGINT,
  csrf TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL
);

CREATE TABLE password_resets (
  token_hash TEXT PRIMARY KEY,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  expires_at BIGINT NOT NULL,
  used BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE csv_imports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  account_id BIGINT NOT NULL,
  content TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  survey TEXT NOT NULL,
  target TEXT NOT NULL,
  drill BIGINT NOT NULL DEFAULT 0,
  started_by BIGINT,
  started_at BIGINT NOT NULL,
  closed_at BIGINT,
  reminder_interval_min BIGINT NOT NULL DEFAULT 0,
  reminder_count BIGINT NOT NULL DEFAULT 0,
  reminders_sent BIGINT NOT NULL DEFAULT 0,
  resends BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX incidents_tenant ON incidents(tenant_id, started_at);

CREATE TABLE recipients (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  incident_id BIGINT NOT NULL REFERENCES incidents(id),
  person_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  department_id BIGINT,
  site_id BIGINT,
  language TEXT NOT NULL,
  answers TEXT,
  answered_at BIGINT,
  UNIQUE (incident_id, person_id)
);
CREATE INDEX recipients_incident ON recipients(tenant_id, incident_id);

CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  idempotency_key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  incident_id BIGINT,
  recipient_id BIGINT,
  to_addrs TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',  -- pending, sent, failed
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  lease_until BIGINT NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox(recipient_id);
