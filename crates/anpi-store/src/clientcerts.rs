//! A tenant's client-certificate settings (columns of `tenant_security`): the CA whose
//! certificates admins may present, and whether admins must present one. No row: neither.

use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::clientcert::ClientCa;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertSettings {
    /// `None` when none is set, or when the stored one no longer reads (then nothing verifies).
    pub ca: Option<ClientCa>,
    /// Admins must present a certificate issued by `ca` (on sign-in and every request).
    pub admin_required: bool,
}

impl Store {
    /// The tenant's settings. One primary-key lookup.
    pub async fn client_cert_settings(&self, scope: &TenantScope) -> Result<ClientCertSettings> {
        let row: Option<(String, i64)> = sqlx::query_as("SELECT client_ca_pem, admin_cert_required FROM tenant_security WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        let Some((pem, required)) = row else { return Ok(ClientCertSettings::default()) };
        let ca = if pem.is_empty() {
            None
        } else {
            ClientCa::from_pem(&pem)
                .map_err(|e| tracing::error!(tenant = scope.tenant_id(), error = %e, "stored client CA certificate is unreadable: no certificate verifies"))
                .ok()
        };
        Ok(ClientCertSettings { ca, admin_required: required != 0 })
    }

    /// Validates and stores the tenant's CA certificate (PEM), replacing any earlier one.
    /// Returns what was stored.
    pub async fn set_client_ca(&self, scope: &TenantScope, pem: &str) -> Result<ClientCa> {
        let ca = ClientCa::from_pem(pem).map_err(|e| StoreError::Invalid(Problem::Other(e)))?;
        sqlx::query(
            "INSERT INTO tenant_security (tenant_id, client_ca_pem) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET client_ca_pem = excluded.client_ca_pem",
        )
        .bind(scope.tenant_id())
        .bind(ca.to_pem())
        .execute(&mut *self.scoped(scope).await?)
        .await?;
        Ok(ca)
    }

    /// Removes the CA certificate; refused while admins must present certificates.
    pub async fn remove_client_ca(&self, scope: &TenantScope) -> Result<()> {
        let done = sqlx::query("UPDATE tenant_security SET client_ca_pem = '' WHERE tenant_id = $1 AND admin_cert_required = 0")
            .bind(scope.tenant_id())
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        if done.rows_affected() == 0 && self.client_cert_settings(scope).await?.admin_required {
            return Err(StoreError::Invalid(Problem::ClientCertStillRequired));
        }
        Ok(())
    }

    /// Turns the admin certificate requirement on (refused without a CA) or off. Whether the
    /// admin doing it presents a valid certificate is the caller's check.
    pub async fn set_admin_cert_required(&self, scope: &TenantScope, required: bool) -> Result<()> {
        let sql = if required {
            "UPDATE tenant_security SET admin_cert_required = 1 WHERE tenant_id = $1 AND client_ca_pem <> ''"
        } else {
            "UPDATE tenant_security SET admin_cert_required = 0 WHERE tenant_id = $1"
        };
        let done = sqlx::query(sql).bind(scope.tenant_id()).execute(&mut *self.scoped(scope).await?).await?;
        if required && done.rows_affected() == 0 {
            return Err(StoreError::Invalid(Problem::NeedClientCa));
        }
        Ok(())
    }
}
