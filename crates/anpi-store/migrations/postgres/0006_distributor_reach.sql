-- A distributor's reach: the departments (with sub-departments) and groups whose people they
-- may see and message. Space-separated ids; both empty: the whole organisation.
ALTER TABLE accounts ADD COLUMN reach_departments TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN reach_groups TEXT NOT NULL DEFAULT '';
