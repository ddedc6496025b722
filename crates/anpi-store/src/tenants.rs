//! Tenants (organisations). Created by operators.

use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::Millis;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub time_zone: String,
    pub created_at: i64,
}

/// What an operator sees of a tenant: no personal data, only counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantSummary {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub people: i64,
    pub accounts: i64,
    pub created_at: i64,
}

pub fn valid_code(code: &str) -> bool {
    (2..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Store {
    pub async fn create_tenant(&self, code: &str, name: &str, now: Millis) -> Result<TenantScope> {
        if !valid_code(code) {
            return Err(StoreError::Invalid(Problem::TenantCode));
        }
        if name.trim().is_empty() {
            return Err(StoreError::Invalid(Problem::TenantNameMissing));
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1").bind(code).fetch_optional(&mut *self.system().await?).await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(Problem::TenantCodeTaken(code.to_string())));
        }
        // Born sealed (keys.rs): it has no contact data in an older format.
        let id: i64 = sqlx::query_scalar("INSERT INTO tenants (code, name, created_at, sealed) VALUES ($1, $2, $3, 1) RETURNING id")
            .bind(code)
            .bind(name.trim())
            .bind(now)
            .fetch_one(&mut *self.system().await?)
            .await?;
        // The tenant's data key, when a master key is configured (else created on first use).
        if self.master_keys().is_ok() {
            self.ensure_tenant_key(id, now).await?;
        }
        let scope = TenantScope::new(id);
        self.seed_labels(&scope, now).await?;
        Ok(scope)
    }

    /// The scope of a tenant named by its code, for operator tools on the command line
    /// (`anpi keys rotate-tenant`); never for request handling: it needs the [`CommandLine`]
    /// capability, which request code may not make (crates/anpi-web/clippy.toml and
    /// crates/anpi-intake/clippy.toml forbid both).
    pub async fn tenant_scope_by_code(&self, _: &CommandLine, code: &str) -> Result<Option<TenantScope>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1").bind(code.trim().to_lowercase()).fetch_optional(&mut *self.system().await?).await?;
        Ok(id.map(TenantScope::new))
    }

    pub async fn tenant(&self, scope: &TenantScope) -> Result<Tenant> {
        sqlx::query_as("SELECT id, code, name, time_zone, created_at FROM tenants WHERE id = $1")
            .bind(scope.tenant_id())
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The zone times are shown in (an IANA name such as `Asia/Tokyo`).
    pub async fn set_time_zone(&self, scope: &TenantScope, zone: &str, audit: &crate::audit::AuditEvent<'_>, now: Millis) -> Result<()> {
        let zone = zone.trim();
        if !anpi_core::clock::valid_zone(zone) {
            return Err(StoreError::Invalid(Problem::UnknownTimeZone(zone.to_string())));
        }
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("UPDATE tenants SET time_zone = $1 WHERE id = $2").bind(zone).bind(scope.tenant_id()).execute(&mut *tx).await?;
        self.record(&mut tx, scope, &crate::audit::AuditEvent { detail: zone.to_string(), ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn tenant_summaries(&self) -> Result<Vec<TenantSummary>> {
        Ok(sqlx::query_as(
            "SELECT t.id, t.code, t.name, \
               (SELECT COUNT(*) FROM people p WHERE p.tenant_id = t.id) AS people, \
               (SELECT COUNT(*) FROM accounts a WHERE a.tenant_id = t.id) AS accounts, \
               t.created_at \
             FROM tenants t ORDER BY t.id",
        )
        .fetch_all(&mut *self.system().await?)
        .await?)
    }
}

/// The capability of an operator at the command line (with the database URL and master key in
/// hand), as opposed to a request. Only the `anpi` binary's subcommands make one.
#[derive(Debug)]
pub struct CommandLine(());

impl CommandLine {
    /// For `anpi` subcommands only (forbidden in request code by clippy.toml).
    pub fn operator_at_the_console() -> CommandLine {
        CommandLine(())
    }
}
