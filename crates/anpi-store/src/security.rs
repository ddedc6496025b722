//! A tenant's security policy (MFA requirement, lockout threshold, session timeouts) and the
//! throttling of failed sign-ins by client address and by account name.

use crate::audit::AuditEvent;
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::{Millis, Role};

/// Who must use a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaRequirement {
    #[default]
    Nobody,
    Admins,
    /// Admins and distributors.
    Distributors,
    Everyone,
}

impl MfaRequirement {
    pub const ALL: [MfaRequirement; 4] = [MfaRequirement::Nobody, MfaRequirement::Admins, MfaRequirement::Distributors, MfaRequirement::Everyone];
    pub fn code(self) -> &'static str {
        match self {
            MfaRequirement::Nobody => "none",
            MfaRequirement::Admins => "admins",
            MfaRequirement::Distributors => "distributors",
            MfaRequirement::Everyone => "everyone",
        }
    }
    pub fn parse(s: &str) -> Option<MfaRequirement> {
        MfaRequirement::ALL.into_iter().find(|m| m.code() == s)
    }
    pub fn applies_to(self, role: Role) -> bool {
        match self {
            MfaRequirement::Nobody => false,
            MfaRequirement::Admins => role == Role::Admin,
            MfaRequirement::Distributors => matches!(role, Role::Admin | Role::Distributor),
            MfaRequirement::Everyone => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub mfa_required: MfaRequirement,
    /// Consecutive failed sign-ins that lock an account (NIST: at most 100).
    pub lockout_threshold: i64,
    pub idle_min: i64,
    pub absolute_min: i64,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy { mfa_required: MfaRequirement::Nobody, lockout_threshold: 100, idle_min: 30, absolute_min: 720 }
    }
}

impl SecurityPolicy {
    /// Checks the ranges; the error says which.
    pub fn check(&self) -> std::result::Result<(), Problem> {
        if !(1..=100).contains(&self.lockout_threshold) {
            return Err(Problem::LockoutThreshold);
        }
        if !(5..=1440).contains(&self.idle_min) {
            return Err(Problem::IdleTimeout);
        }
        if !(60..=10_080).contains(&self.absolute_min) || self.absolute_min < self.idle_min {
            return Err(Problem::AbsoluteTimeout);
        }
        Ok(())
    }
}

/// Failed attempts allowed before delays start; each further one doubles the delay.
const FREE_FAILURES: i64 = 5;
const MAX_DELAY_MS: i64 = 15 * 60_000;

/// How long to wait after `failures` consecutive failures.
pub fn throttle_delay(failures: i64) -> Millis {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES).min(20) as u32;
    (1000i64 << doublings).min(MAX_DELAY_MS)
}

impl Store {
    pub async fn security_policy(&self, scope: &TenantScope) -> Result<SecurityPolicy> {
        let row: Option<(String, i64, i64, i64)> =
            sqlx::query_as("SELECT mfa_required, lockout_threshold, idle_min, absolute_min FROM tenant_security WHERE tenant_id = $1")
                .bind(scope.tenant_id())
                .fetch_optional(&mut *self.scoped(scope).await?)
                .await?;
        Ok(match row {
            Some((mfa, lockout_threshold, idle_min, absolute_min)) => {
                SecurityPolicy { mfa_required: MfaRequirement::parse(&mfa).unwrap_or_default(), lockout_threshold, idle_min, absolute_min }
            }
            None => SecurityPolicy::default(),
        })
    }

    pub async fn set_security_policy(&self, scope: &TenantScope, p: &SecurityPolicy, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        p.check().map_err(StoreError::Invalid)?;
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query(
            "INSERT INTO tenant_security (tenant_id, mfa_required, lockout_threshold, idle_min, absolute_min) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET mfa_required = excluded.mfa_required, lockout_threshold = excluded.lockout_threshold, \
               idle_min = excluded.idle_min, absolute_min = excluded.absolute_min",
        )
        .bind(scope.tenant_id())
        .bind(p.mfa_required.code())
        .bind(p.lockout_threshold)
        .bind(p.idle_min)
        .bind(p.absolute_min)
        .execute(&mut *tx)
        .await?;
        let detail = format!("mfa={} lockout={} idle={} absolute={}", p.mfa_required.code(), p.lockout_threshold, p.idle_min, p.absolute_min);
        self.record(&mut tx, scope, &AuditEvent { detail, ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Milliseconds to wait before another attempt under any of `keys` ([`throttle_key`]:
    /// client address, account name), 0 if none. Read-only: see [`Store::login_attempt`].
    pub async fn login_wait(&self, keys: &[String], now: Millis) -> Result<Millis> {
        let mut wait = 0;
        for k in keys {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT failures, last_failed_at FROM login_throttle WHERE key = $1").bind(k).fetch_optional(&self.pool).await?;
            if let Some((failures, at)) = row {
                wait = wait.max(at + throttle_delay(failures) - now);
            }
        }
        Ok(wait.max(0))
    }

    /// Takes one attempt under every key, atomically: each key's count goes up only if its
    /// delay is over, in one statement, so concurrent attempts cannot all pass a check made
    /// before any of them counted. Returns 0 when the attempt may go ahead (it is already
    /// counted: a success clears it with [`Store::clear_login_failures`]), else the wait.
    pub async fn login_attempt(&self, keys: &[String], now: Millis) -> Result<Millis> {
        static TAKE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let take = TAKE.get_or_init(|| {
            format!(
                "INSERT INTO login_throttle (key, failures, last_failed_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET failures = login_throttle.failures + 1, last_failed_at = excluded.last_failed_at \
                 WHERE login_throttle.last_failed_at + {} <= excluded.last_failed_at RETURNING failures",
                delay_sql("login_throttle.failures")
            )
        });
        for k in keys {
            let taken: Option<i64> = sqlx::query_scalar(take).bind(k).bind(now).fetch_optional(&self.pool).await?;
            if taken.is_none() {
                return self.login_wait(keys, now).await.map(|w| w.max(1));
            }
        }
        Ok(0)
    }

    pub async fn clear_login_failures(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(k).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Forgets throttling state untouched for a day (the longest delay is 15 minutes).
    pub async fn purge_login_throttle(&self, now: Millis) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM login_throttle WHERE last_failed_at < $1").bind(now - 86_400_000).execute(&self.pool).await?.rows_affected())
    }
}

/// A throttling key: what is throttled (`ip`, `account`, …) and a SHA-256 of the value, so a
/// key is short whatever a form sends and the table holds no email addresses.
pub fn throttle_key(what: &str, value: &str) -> String {
    format!("{what}:{}", crate::crypto::token_hash(value))
}

/// [`throttle_delay`] as SQL over a failures column (no `POWER` on SQLite).
fn delay_sql(failures: &str) -> String {
    let steps: String = (FREE_FAILURES..FREE_FAILURES + 20).map(|f| format!(" WHEN {failures} = {f} THEN {}", throttle_delay(f))).collect();
    format!("(CASE WHEN {failures} < {FREE_FAILURES} THEN 0{steps} ELSE {MAX_DELAY_MS} END)")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(throttle_delay(4), 0);
        assert_eq!(throttle_delay(5), 1000);
        assert_eq!(throttle_delay(7), 4000);
        assert_eq!(throttle_delay(40), MAX_DELAY_MS);
        assert_eq!(throttle_key("account", &"x".repeat(100_000)).len(), "account:".len() + 64);
        assert!(MfaRequirement::Distributors.applies_to(Role::Distributor) && !MfaRequirement::Admins.applies_to(Role::Distributor));
    }
}
