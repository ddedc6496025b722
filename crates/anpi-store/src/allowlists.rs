//! A tenant's IP allowlists (columns of `tenant_security`): who may reach the console, the
//! console as an admin, and the answer pages. Each is a space-separated list of CIDR prefixes
//! (see `anpi_core::netlist`); empty means anywhere. No row means all three are empty.

use crate::audit::AuditEvent;
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::netlist::NetList;
use anpi_core::Millis;

/// The three lists as stored (canonical text, as [`NetList`] displays them).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Allowlists {
    /// Every console request (all roles).
    pub console: String,
    /// Console requests by admins, in addition to `console`.
    pub admin: String,
    /// The answer pages (`/a/{token}`).
    pub answer: String,
}

impl Allowlists {
    /// Parses and normalises all three lists; the error names the first bad entry.
    pub fn normalised(&self) -> std::result::Result<Allowlists, String> {
        let canon = |s: &str| NetList::parse(s).map(|l| l.to_string());
        Ok(Allowlists { console: canon(&self.console)?, admin: canon(&self.admin)?, answer: canon(&self.answer)? })
    }
}

impl Store {
    /// The tenant's allowlists (all empty when never set). One primary-key lookup.
    pub async fn allowlists(&self, scope: &TenantScope) -> Result<Allowlists> {
        let row: Option<Allowlists> = sqlx::query_as(
            "SELECT console_allowlist AS console, admin_allowlist AS admin, answer_allowlist AS answer FROM tenant_security WHERE tenant_id = $1",
        )
        .bind(scope.tenant_id())
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?;
        Ok(row.unwrap_or_default())
    }

    /// Validates, normalises and saves the allowlists, leaving the tenant's other security
    /// settings as they are. Returns what was stored.
    pub async fn set_allowlists(&self, scope: &TenantScope, lists: &Allowlists, audit: &AuditEvent<'_>, now: Millis) -> Result<Allowlists> {
        let lists = lists.normalised().map_err(|e| StoreError::Invalid(Problem::Other(e)))?;
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query(
            "INSERT INTO tenant_security (tenant_id, console_allowlist, admin_allowlist, answer_allowlist) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET console_allowlist = excluded.console_allowlist, \
             admin_allowlist = excluded.admin_allowlist, answer_allowlist = excluded.answer_allowlist",
        )
        .bind(scope.tenant_id())
        .bind(&lists.console)
        .bind(&lists.admin)
        .bind(&lists.answer)
        .execute(&mut *tx)
        .await?;
        let detail = format!("console=[{}] admin=[{}] answer=[{}]", lists.console, lists.admin, lists.answer);
        self.record(&mut tx, scope, &AuditEvent { detail, ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(lists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_per_tenant_and_normalised() {
        let s = Store::connect("sqlite::memory:").await.unwrap();
        s.migrate().await.unwrap();
        let a = s.create_tenant("acme", "ACME", 0).await.unwrap();
        let b = s.create_tenant("beta", "Beta", 0).await.unwrap();
        assert_eq!(s.allowlists(&a).await.unwrap(), Allowlists::default());
        let set = Allowlists { console: "203.0.113.0/24,\n2001:DB8::/32".into(), admin: "10.1.2.3/8".into(), answer: String::new() };
        let stored = s.set_allowlists(&a, &set, &AuditEvent::system("test"), 0).await.unwrap();
        assert_eq!(stored.console, "203.0.113.0/24 2001:db8::/32");
        assert_eq!(stored.admin, "10.0.0.0/8");
        assert_eq!(s.allowlists(&a).await.unwrap(), stored);
        assert_eq!(s.allowlists(&b).await.unwrap(), Allowlists::default());
        let bad = Allowlists { answer: "10.0.0.300/8".into(), ..stored.clone() };
        assert!(
            matches!(s.set_allowlists(&a, &bad, &AuditEvent::system("test"), 0).await, Err(StoreError::Invalid(Problem::Other(m))) if m.contains("10.0.0.300/8"))
        );
        let cleared = s.set_allowlists(&a, &Allowlists::default(), &AuditEvent::system("test"), 0).await.unwrap();
        assert_eq!(s.allowlists(&a).await.unwrap(), cleared);
    }
}
