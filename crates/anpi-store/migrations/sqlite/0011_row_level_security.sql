-- Row-level security (PostgreSQL migration 0011) has no SQLite counterpart: on SQLite tenant
-- isolation rests on the store's TenantScope alone. This file keeps the numbering in step.
SELECT 1;
