-- Classification labels (docs/security.md, "Labels"): per tenant, ordered by rank (higher is
-- more sensitive); export_min is the lowest role that may export data carrying the label
-- (admin | distributor | member). Incidents and rules may carry one; the tenant's
-- default_label_id marks exports that belong to no incident (directory, audit log) and those
-- of unlabelled incidents.
CREATE TABLE labels (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  name_en TEXT NOT NULL DEFAULT '',
  rank BIGINT NOT NULL DEFAULT 0,
  export_min TEXT NOT NULL DEFAULT 'admin',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, name)
);
ALTER TABLE incidents ADD COLUMN label_id BIGINT REFERENCES labels(id);
ALTER TABLE rules ADD COLUMN label_id BIGINT REFERENCES labels(id);
ALTER TABLE tenants ADD COLUMN default_label_id BIGINT REFERENCES labels(id);
CREATE INDEX incidents_label ON incidents(label_id);

-- Existing tenants get the starting labels, as new ones do (anpi-core label::STARTING).
INSERT INTO labels (tenant_id, name, name_en, rank, export_min, created_at, updated_at)
  SELECT id, '公開', 'Public', 0, 'member', created_at, created_at FROM tenants;
INSERT INTO labels (tenant_id, name, name_en, rank, export_min, created_at, updated_at)
  SELECT id, '社外秘', 'Confidential', 1, 'distributor', created_at, created_at FROM tenants;
INSERT INTO labels (tenant_id, name, name_en, rank, export_min, created_at, updated_at)
  SELECT id, '機密', 'Strictly confidential', 2, 'admin', created_at, created_at FROM tenants;
UPDATE tenants SET default_label_id = (SELECT l.id FROM labels l WHERE l.tenant_id = tenants.id AND l.name = '社外秘');
