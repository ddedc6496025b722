//! The audit log: append-only and hash-chained per tenant, verified by [`Store::verify_audit`],
//! purged by retention while keeping the chain verifiable from an anchor.

use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use sha2::{Digest, Sha256};

/// The chain of operators and the system (not a tenant).
const SYSTEM_CHAIN: i64 = 0;

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

/// A stored entry, for the tenant's log pages.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: String,
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    ip: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

/// The hash of an entry: SHA-256 over a JSON array of the previous hash and every field
/// (JSON makes the encoding unambiguous).
fn entry_hash(tenant: i64, r: &ChainRow) -> String {
    let canonical = serde_json::json!([r.prev_hash, tenant, r.seq, r.at, r.actor, r.action, r.target, r.outcome, r.ip, r.detail]).to_string();
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Store::verify_audit`] found in one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub tenant_id: i64,
    pub entries: i64,
    /// Empty when the chain is intact.
    pub problems: Vec<String>,
}

impl Store {
    /// Appends to the tenant's chain (`None`: the operators' and system chain).
    pub async fn audit(&self, scope: Option<&TenantScope>, e: &AuditEvent<'_>, now: Millis) -> Result<()> {
        self.append_audit(scope.map(|s| s.tenant_id()).unwrap_or(SYSTEM_CHAIN), e, now).await
    }

    /// Records a failed sign-in under the tenant named by `tenant_code`, if it exists.
    pub async fn audit_failed_sign_in(&self, tenant_code: &str, email: &str, ip: &str, why: &str, now: Millis) -> Result<()> {
        let tenant: Option<i64> = sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1").bind(tenant_code.trim().to_lowercase()).fetch_optional(&mut *self.system().await?).await?;
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
        sqlx::query("INSERT INTO audit_heads (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING").bind(tenant).execute(&mut *tx).await?;
        let lock = match self.engine {
            crate::Engine::Sqlite => "",
            crate::Engine::Postgres => "FOR UPDATE",
        };
        let (seq, prev): (i64, String) =
            sqlx::query_as(&format!("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 {lock}")).bind(tenant).fetch_one(&mut *tx).await?;
        let seq = seq + 1;
        let actor = e.actor.code();
        let detail: String = e.detail.chars().take(2000).collect();
        let row = ChainRow {
            seq,
            at: now,
            actor,
            action: e.action.into(),
            target: e.target.clone(),
            outcome: e.outcome.into(),
            ip: e.ip.into(),
            detail,
            prev_hash: prev,
            hash: String::new(),
        };
        let hash = entry_hash(tenant, &row);
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(tenant)
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
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1").bind(tenant).bind(seq).bind(&hash).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's entries, newest first; `actions` filters (empty: all).
    pub async fn audit_entries(&self, scope: &TenantScope, actions: &[&str], limit: i64) -> Result<Vec<AuditEntry>> {
        let filter = if actions.is_empty() { String::new() } else { format!("AND action IN ({})", crate::in_list(3, actions.len())) };
        let sql = format!("SELECT seq, at, actor, action, target, outcome, ip, detail FROM audit_log WHERE tenant_id = $1 {filter} ORDER BY seq DESC LIMIT $2");
        let mut q = sqlx::query_as(&sql).bind(scope.tenant_id()).bind(limit);
        for a in actions {
            q = q.bind(*a);
        }
        Ok(q.fetch_all(&mut *self.scoped(scope).await?).await?)
    }

    /// Checks every chain: sequence without gaps from the anchor, each entry's link to the one
    /// before, each entry's hash, and the head. Any edited, inserted or removed entry shows.
    pub async fn verify_audit(&self) -> Result<Vec<ChainReport>> {
        self.verify_chains(None).await
    }

    /// Checks the tenant's own chain.
    pub async fn verify_tenant_audit(&self, scope: &TenantScope) -> Result<ChainReport> {
        let mut r = self.verify_chains(Some(scope.tenant_id())).await?;
        Ok(r.pop().unwrap_or(ChainReport { tenant_id: scope.tenant_id(), entries: 0, problems: vec![] }))
    }

    async fn verify_chains(&self, only: Option<i64>) -> Result<Vec<ChainReport>> {
        // Every chain (`anpi audit verify`), or one tenant's own.
        let mut c = match only {
            Some(t) => self.scoped(&TenantScope::new(t)).await?,
            None => self.system().await?,
        };
        let heads: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
            "SELECT tenant_id, seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE ($1 < 0 OR tenant_id = $1) ORDER BY tenant_id",
        )
        .bind(only.unwrap_or(-1))
        .fetch_all(&mut *c)
        .await?;
        let mut reports = Vec::new();
        for (tenant, head_seq, head_hash, anchor_seq, anchor_hash) in heads {
            let rows: Vec<ChainRow> = sqlx::query_as(
                "SELECT seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq",
            )
            .bind(tenant)
            .fetch_all(&mut *c)
            .await?;
            let mut problems = Vec::new();
            let (mut expect_seq, mut prev) = (anchor_seq + 1, anchor_hash);
            for r in &rows {
                if r.seq != expect_seq {
                    problems.push(format!("entry {} follows {}: entries {}–{} are missing", r.seq, expect_seq - 1, expect_seq, r.seq - 1));
                }
                if r.prev_hash != prev {
                    problems.push(format!("entry {} does not link to the entry before it", r.seq));
                }
                let h = entry_hash(tenant, r);
                if h != r.hash {
                    problems.push(format!("entry {} was changed (its hash does not match its contents)", r.seq));
                }
                expect_seq = r.seq + 1;
                prev = r.hash.clone();
            }
            if expect_seq - 1 != head_seq || prev != head_hash {
                problems.push(format!("the chain ends at entry {} but the head records entry {}: entries were removed or added at the end", expect_seq - 1, head_seq));
            }
            reports.push(ChainReport { tenant_id: tenant, entries: rows.len() as i64, problems });
        }
        Ok(reports)
    }

    /// Deletes entries older than each tenant's retention (default 365 days; the system chain
    /// keeps 365 days), keeping the last deleted entry as the chain's anchor. Returns how many.
    pub async fn purge_audit(&self, now: Millis) -> Result<u64> {
        let chains: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT h.tenant_id, s.audit_retention_days FROM audit_heads h LEFT JOIN tenant_security s ON s.tenant_id = h.tenant_id",
        )
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut purged = 0;
        for (tenant, days) in chains {
            let before = now - days.unwrap_or(365).max(1) * 86_400_000;
            let mut tx = self.system_tx().await?;
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log WHERE tenant_id = $1 AND at < $2 ORDER BY seq DESC LIMIT 1").bind(tenant).bind(before).fetch_optional(&mut *tx).await?;
            let Some((seq, hash)) = last else { continue };
            let done = sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= $2").bind(tenant).bind(seq).execute(&mut *tx).await?;
            sqlx::query("UPDATE audit_heads SET anchor_seq = $2, anchor_hash = $3 WHERE tenant_id = $1").bind(tenant).bind(seq).bind(&hash).execute(&mut *tx).await?;
            tx.commit().await?;
            purged += done.rows_affected();
        }
        Ok(purged)
    }

    /// The tenant's audit retention in days.
    pub async fn set_audit_retention(&self, scope: &TenantScope, days: i64) -> Result<()> {
        if !(30..=3650).contains(&days) {
            return Err(StoreError::Invalid("保存期間は30〜3650日です (retention: 30–3650 days)".into()));
        }
        sqlx::query(
            "INSERT INTO tenant_security (tenant_id, audit_retention_days) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET audit_retention_days = excluded.audit_retention_days",
        )
        .bind(scope.tenant_id())
        .bind(days)
        .execute(&mut *self.scoped(scope).await?)
        .await?;
        Ok(())
    }
}
