-- Row-level security: the second wall of tenant isolation (docs/security.md). The first is the
-- store's `TenantScope`: every tenant query filters `tenant_id` by hand. Here PostgreSQL itself
-- shows a connection only the rows of the tenant named by the session setting `anpi.tenant`
-- (set by the store from the scope), every tenant's rows when it is `*` (the store's explicit
-- system paths), and none when it is unset or empty (a query that forgot its scope).
-- FORCE applies the policies to the tables' owner too; superusers and BYPASSRLS roles skip
-- them all the same, so the service must run as a plain role that owns the schema (the store
-- warns at start otherwise).
--
-- Not covered, having no tenant rows: operators, login_throttle, instance_secrets (instance
-- data), telegrams, feeds, feed_entries (public JMA data). Every tenant-owned table, child
-- tables included (group_members, recipients, person_email_hashes, …), carries tenant_id.

-- CASE, not `tenant_id = NULLIF(…)::bigint OR … = '*'`: SQL does not promise to evaluate OR
-- left to right, and casting '*' to bigint fails.
CREATE FUNCTION anpi_tenant_visible(row_tenant BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
  SELECT CASE COALESCE(current_setting('anpi.tenant', true), '')
    WHEN '*' THEN true
    WHEN '' THEN false
    ELSE row_tenant = current_setting('anpi.tenant', true)::bigint
  END
$$;

DO $$
DECLARE
  t TEXT;
BEGIN
  FOREACH t IN ARRAY ARRAY[
    'departments', 'positions', 'sites', 'contact_groups', 'people', 'group_members',
    'person_email_hashes', 'accounts', 'sessions', 'password_resets', 'recovery_codes',
    'passkeys', 'webauthn_challenges', 'tenant_security', 'tenant_keys', 'csv_imports',
    'incidents', 'recipients', 'outbox', 'rules', 'dispatches', 'audit_log', 'audit_heads', 'labels'
  ] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_rows ON %I USING (anpi_tenant_visible(tenant_id)) WITH CHECK (anpi_tenant_visible(tenant_id))', t);
  END LOOP;
END
$$;

-- The tenants themselves: a tenant's connection sees its own row only.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenants USING (anpi_tenant_visible(id)) WITH CHECK (anpi_tenant_visible(id));
