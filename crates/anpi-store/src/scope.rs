//! Tenant scoping by type: every tenant-owned query takes a `TenantScope`.

/// Proof that the caller acts within one tenant. It has no public constructor: the store
/// hands it out after authenticating a session or an answer token, or creating a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: i64,
}

impl TenantScope {
    pub(crate) fn new(tenant_id: i64) -> TenantScope {
        TenantScope { tenant_id }
    }
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }
}
