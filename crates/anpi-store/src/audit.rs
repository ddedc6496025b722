//! The audit log: append-only and hash-chained per tenant and log kind, written in the same
//! transaction as the change it records, verified by [`Store::verify_audit`] (with the signed
//! checkpoints of [`crate::checkpoints`]), purged by retention per kind while keeping each
//! chain verifiable from an anchor.

use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use sha2::{Digest, Sha256};

/// The chain of operators and the system (not a tenant).
pub(crate) const SYSTEM_CHAIN: i64 = 0;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Account(i64),
    Operator(i64),
    System,
    Anonymous,
}

impl Actor {
    fn code(&self) -> String {
        match self {
            Actor::Account(id) => format!("account:{id}"),
            Actor::Operator(id) => format!("operator:{id}"),
            Actor::System => "system".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

/// The kinds of log a tenant sees, each its own chain with its own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// Changes and security events.
    Audit,
    /// Sign-in history: sign-ins, failures, sign-outs, lockouts.
    SignIn,
    /// Usage: who viewed which incident, dashboard or list.
    Usage,
}

impl LogKind {
    pub const ALL: [LogKind; 3] = [LogKind::Audit, LogKind::SignIn, LogKind::Usage];

    pub fn code(self) -> &'static str {
        match self {
            LogKind::Audit => "audit",
            LogKind::SignIn => "signin",
            LogKind::Usage => "usage",
        }
    }

    pub fn parse(s: &str) -> Option<LogKind> {
        LogKind::ALL.into_iter().find(|k| k.code() == s)
    }

    /// The kind an action is logged under.
    pub fn of(action: &str) -> LogKind {
        match action {
            "sign_in" | "sign_in_failed" | "sign_in_mfa_failed" | "password_accepted" | "sign_out" | "account_locked" | "client_cert_denied" => LogKind::SignIn,
            a if a.ends_with("_viewed") => LogKind::Usage,
            _ => LogKind::Audit,
        }
    }

    /// The `tenant_security` column holding this kind's retention in days.
    fn retention_column(self) -> &'static str {
        match self {
            LogKind::Audit => "audit_retention_days",
            LogKind::SignIn => "signin_retention_days",
            LogKind::Usage => "usage_retention_days",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub actor: Actor,
    pub action: &'a str,
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: &'a str,
    pub ip: &'a str,
    pub detail: String,
}

impl AuditEvent<'_> {
    /// The same event about `target` (for changes whose target is created by the change).
    pub fn on(&self, target: String) -> Self {
        AuditEvent { target, ..self.clone() }
    }

    /// An action of the system itself (demo set-up, command line, tests).
    pub fn system(action: &'static str) -> AuditEvent<'static> {
        AuditEvent { actor: Actor::System, action, target: String::new(), outcome: "ok", ip: "", detail: String::new() }
    }
}

/// A stored entry, for the tenant's log pages.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    /// Global and increasing: the paging cursor.
    pub id: i64,
    pub kind: String,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: String,
}

/// Which entries to list; `None` and empty strings do not filter.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub kind: Option<LogKind>,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    /// From (inclusive) and to (exclusive), UTC milliseconds.
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    /// Entries older than this id (the next page).
    pub before_id: Option<i64>,
}

/// An account's last successful sign-in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LastSignIn {
    pub actor: String,
    pub at: i64,
    pub ip: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChainRow {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: String,
    pub(crate) ip: String,
    pub(crate) detail: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

/// The hash of an entry: SHA-256 over a JSON array of the previous hash and every field
/// (JSON makes the encoding unambiguous). The kind is not hashed: an entry moved to another
/// chain breaks the links of both.
pub(crate) fn entry_hash(tenant: i64, r: &ChainRow) -> String {
    let canonical = serde_json::json!([r.prev_hash, tenant, r.seq, r.at, r.actor, r.action, r.target, r.outcome, r.ip, r.detail]).to_string();
    hex(&Sha256::digest(canonical.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Store::verify_audit`] found in one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub tenant_id: i64,
    pub kind: LogKind,
    pub entries: i64,
    /// Signed checkpoints whose signature and hash were checked.
    pub checkpoints: i64,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

/// A chain's head and anchor.
#[derive(sqlx::FromRow)]
pub(crate) struct Head {
    pub(crate) tenant_id: i64,
    pub(crate) kind: String,
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) anchor_seq: i64,
    pub(crate) anchor_hash: String,
}

impl Store {
    /// Records an action that changes nothing (an export, a view, a failed attempt) in the
    /// tenant's chain (`None`: the operators' and system chain). Changes are recorded by the
    /// store method that makes them, in its transaction.
    pub async fn audit(&self, scope: Option<&TenantScope>, e: &AuditEvent<'_>, now: Millis) -> Result<()> {
        self.append_audit(scope.map(|s| s.tenant_id()).unwrap_or(SYSTEM_CHAIN), e, now).await
    }

    /// Records a failed sign-in under the tenant named by `tenant_code`, if it exists.
    pub async fn audit_failed_sign_in(&self, tenant_code: &str, email: &str, ip: &str, why: &str, now: Millis) -> Result<()> {
        let tenant: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
            .bind(tenant_code.trim().to_lowercase())
            .fetch_optional(&mut *self.system().await?)
            .await?;
        let Some(tenant) = tenant else { return Ok(()) };
        let email: String = email.trim().chars().take(100).collect();
        let e = AuditEvent { actor: Actor::Anonymous, action: "sign_in_failed", target: email, outcome: "failed", ip, detail: why.into() };
        self.append_audit(tenant, &e, now).await
    }

    async fn append_audit(&self, tenant: i64, e: &AuditEvent<'_>, now: Millis) -> Result<()> {
        // The system chain (operators, the system) is no tenant's: written as the system.
        let mut tx = match tenant {
            SYSTEM_CHAIN => self.system_tx().await?,
            t => self.scoped_tx(&TenantScope::new(t)).await?,
        };
        self.append_in(&mut tx, tenant, e, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends the tenant's entry inside the caller's transaction: the change and its record
    /// commit together, and a failed write undoes the change.
    pub(crate) async fn record(&self, conn: &mut sqlx::AnyConnection, scope: &TenantScope, e: &AuditEvent<'_>, now: Millis) -> Result<()> {
        self.append_in(conn, scope.tenant_id(), e, now).await
    }

    /// Runs one statement that must touch a row of the tenant's (else `NotFound`) and records
    /// it, in one transaction.
    pub(crate) async fn change_one<'q>(
        &self,
        scope: &TenantScope,
        change: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        audit: &AuditEvent<'_>,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        if change.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn append_in(&self, conn: &mut sqlx::AnyConnection, tenant: i64, e: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let kind = LogKind::of(e.action).code();
        sqlx::query("INSERT INTO audit_heads (tenant_id, kind) VALUES ($1, $2) ON CONFLICT (tenant_id, kind) DO NOTHING")
            .bind(tenant)
            .bind(kind)
            .execute(&mut *conn)
            .await?;
        let lock = match self.engine {
            crate::Engine::Sqlite => "",
            crate::Engine::Postgres => "FOR UPDATE",
        };
        let (seq, prev): (i64, String) = sqlx::query_as(&format!("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 AND kind = $2 {lock}"))
            .bind(tenant)
            .bind(kind)
            .fetch_one(&mut *conn)
            .await?;
        let row = ChainRow {
            seq: seq + 1,
            at: now,
            actor: e.actor.code(),
            action: e.action.into(),
            target: e.target.chars().take(500).collect(),
            outcome: e.outcome.into(),
            ip: e.ip.into(),
            detail: e.detail.chars().take(2000).collect(),
            prev_hash: prev,
            hash: String::new(),
        };
        let hash = entry_hash(tenant, &row);
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, kind, seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tenant)
        .bind(kind)
        .bind(row.seq)
        .bind(row.at)
        .bind(&row.actor)
        .bind(&row.action)
        .bind(&row.target)
        .bind(&row.outcome)
        .bind(&row.ip)
        .bind(&row.detail)
        .bind(&row.prev_hash)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE audit_heads SET seq = $3, hash = $4 WHERE tenant_id = $1 AND kind = $2")
            .bind(tenant)
            .bind(kind)
            .bind(row.seq)
            .bind(&hash)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The tenant's entries matching `f`, newest first, at most `limit`.
    pub async fn audit_entries(&self, scope: &TenantScope, f: &LogFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        let kind = f.kind.map(LogKind::code).unwrap_or("");
        let texts: Vec<(&str, &str)> = [("kind", kind), ("actor", f.actor.trim()), ("action", f.action.trim()), ("outcome", f.outcome.trim())]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let numbers: Vec<(&str, i64)> = [("at >=", f.from), ("at <", f.to), ("id <", f.before_id)].into_iter().filter_map(|(c, v)| v.map(|v| (c, v))).collect();
        let mut sql = String::from("SELECT id, kind, seq, at, actor, action, target, outcome, ip, detail FROM audit_log WHERE tenant_id = $1");
        let mut n = 1;
        for (column, _) in &texts {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
        }
        for (cond, _) in &numbers {
            n += 1;
            sql.push_str(&format!(" AND {cond} ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query_as(&sql).bind(scope.tenant_id());
        for (_, t) in texts {
            q = q.bind(t);
        }
        for (_, v) in numbers {
            q = q.bind(v);
        }
        Ok(q.bind(limit).fetch_all(&mut *self.scoped(scope).await?).await?)
    }

    /// Each account's last successful sign-in still within retention.
    pub async fn last_sign_ins(&self, scope: &TenantScope) -> Result<Vec<LastSignIn>> {
        Ok(sqlx::query_as(
            "SELECT l.actor, l.at, l.ip FROM audit_log l JOIN \
               (SELECT actor, MAX(id) AS id FROM audit_log WHERE tenant_id = $1 AND kind = 'signin' AND action = 'sign_in' AND outcome = 'ok' GROUP BY actor) m \
             ON m.id = l.id ORDER BY l.at DESC",
        )
        .bind(scope.tenant_id())
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?)
    }

    /// Deletes entries older than each chain's retention (the tenant's setting for the kind,
    /// default 365 days; the system chain keeps 365 days), keeping the last deleted entry as
    /// the chain's anchor, signed as a purge anchor when a master key is set. Returns how many.
    pub async fn purge_audit(&self, now: Millis) -> Result<u64> {
        let chains: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT h.tenant_id, h.kind, CASE h.kind WHEN 'signin' THEN s.signin_retention_days WHEN 'usage' THEN s.usage_retention_days \
               ELSE s.audit_retention_days END FROM audit_heads h LEFT JOIN tenant_security s ON s.tenant_id = h.tenant_id",
        )
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut purged = 0;
        for (tenant, kind, days) in chains {
            let before = now - days.unwrap_or(365).max(1) * 86_400_000;
            let mut tx = self.system_tx().await?;
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log WHERE tenant_id = $1 AND kind = $2 AND at < $3 ORDER BY seq DESC LIMIT 1")
                    .bind(tenant)
                    .bind(&kind)
                    .bind(before)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((seq, hash)) = last else { continue };
            let done = sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND kind = $2 AND seq <= $3")
                .bind(tenant)
                .bind(&kind)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE audit_heads SET anchor_seq = $3, anchor_hash = $4 WHERE tenant_id = $1 AND kind = $2")
                .bind(tenant)
                .bind(&kind)
                .bind(seq)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            let anchor = self.carry_checkpoint_over(&mut tx, tenant, &kind, seq, &hash, now).await?;
            tx.commit().await?;
            if let Some(cp) = anchor {
                self.copy_out(&cp);
            }
            purged += done.rows_affected();
        }
        Ok(purged)
    }

    /// The tenant's retention of one log kind, in days.
    pub async fn set_audit_retention(&self, scope: &TenantScope, kind: LogKind, days: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        if !(30..=3650).contains(&days) {
            return Err(StoreError::Invalid(crate::Problem::RetentionDays));
        }
        let column = kind.retention_column();
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query(&format!(
            "INSERT INTO tenant_security (tenant_id, {column}) VALUES ($1, $2) ON CONFLICT (tenant_id) DO UPDATE SET {column} = excluded.{column}"
        ))
        .bind(scope.tenant_id())
        .bind(days)
        .execute(&mut *tx)
        .await?;
        self.record(&mut tx, scope, &AuditEvent { detail: format!("{}={days}", kind.code()), ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's retention per log kind, in days.
    pub async fn audit_retention(&self, scope: &TenantScope) -> Result<Vec<(LogKind, i64)>> {
        let row: Option<(i64, i64, i64)> =
            sqlx::query_as("SELECT audit_retention_days, signin_retention_days, usage_retention_days FROM tenant_security WHERE tenant_id = $1")
                .bind(scope.tenant_id())
                .fetch_optional(&mut *self.scoped(scope).await?)
                .await?;
        let (a, s, u) = row.unwrap_or((365, 365, 365));
        Ok(vec![(LogKind::Audit, a), (LogKind::SignIn, s), (LogKind::Usage, u)])
    }
}
