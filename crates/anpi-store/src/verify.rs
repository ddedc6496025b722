//! Verifying the audit chains (docs/security.md, "Audit log"). Three depths:
//!
//! - **Full** ([`Store::verify_audit`]; `anpi audit verify`, and daily in `anpi serve`): every
//!   entry re-hashed from the chain's start, every link, the head, every checkpoint's signature
//!   and entry, and a start other than the first entry covered by a purge's signed anchor.
//! - **Since the last checkpoint** (before [`Store::checkpoint_audit`] signs a head): the
//!   entries after the last checkpoint, the checkpoints' entries (one indexed query) and the
//!   signatures of the last checkpoint and the anchor. Each checkpoint is signed only after the
//!   stretch before it verified, so the chain of signatures vouches for what came before.
//! - **Against the external copy** ([`Store::verify_against_checkpoint_log`]): every checkpoint
//!   ever copied out must still be in the database, so deleted checkpoints show.
//!
//! Re-hashing runs on the blocking pool, never on the async workers. The results are kept
//! per chain ([`Store::audit_status`]) for the log page, which no longer verifies on load.

use crate::audit::{entry_hash, ChainReport, ChainRow, Head, LogKind};
use crate::checkpoints::{Checkpoint, CheckpointKey};
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use std::collections::HashMap;

const ROW_COLUMNS: &str = "seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash";

/// A chain's last verification, for the log page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    pub kind: LogKind,
    /// 0: never verified.
    pub checked_at: Millis,
    /// A full verification (else: since the last checkpoint).
    pub full: bool,
    pub problems: Vec<String>,
}

/// Checks entries in order from `(start_seq, start_hash)`: no gaps, each links to the one
/// before, each hash matches its contents. Returns (last seq, last hash, problems).
fn check_rows(tenant: i64, start_seq: i64, start_hash: String, rows: &[ChainRow]) -> (i64, String, Vec<String>) {
    let mut problems = Vec::new();
    let (mut expect_seq, mut prev) = (start_seq + 1, start_hash);
    for r in rows {
        if r.seq != expect_seq {
            problems.push(format!("entry {} follows {}: entries {}–{} are missing", r.seq, expect_seq - 1, expect_seq, r.seq - 1));
        }
        if r.prev_hash != prev {
            problems.push(format!("entry {} does not link to the entry before it", r.seq));
        }
        if entry_hash(tenant, r) != r.hash {
            problems.push(format!("entry {} was changed (its hash does not match its contents)", r.seq));
        }
        expect_seq = r.seq + 1;
        prev = r.hash.clone();
    }
    (expect_seq - 1, prev, problems)
}

/// The chain's start must be its first entry, or a position a retention purge signed as an anchor.
fn check_anchor(head: &Head, checkpoints: &[Checkpoint], keys: &[CheckpointKey], problems: &mut Vec<String>) {
    if head.anchor_seq == 0 || keys.is_empty() {
        return;
    }
    match checkpoints.iter().find(|c| c.seq == head.anchor_seq && c.anchor != 0) {
        Some(c) if c.hash != head.anchor_hash => problems.push(format!("the chain's start (entry {}) differs from its signed anchor", head.anchor_seq)),
        Some(c) => {
            if let Err(p) = c.signed_by(keys) {
                problems.push(p);
            }
        }
        None => {
            problems.push(format!("the chain starts at entry {} but no retention purge signed that start: entries before it were deleted", head.anchor_seq))
        }
    }
}

/// Checkpoints against the entries at their positions (`stored`: seq → hash).
fn check_checkpoint_entries(head: &Head, checkpoints: &[Checkpoint], stored: &HashMap<i64, String>, problems: &mut Vec<String>) {
    for c in checkpoints.iter().filter(|c| c.seq > head.anchor_seq) {
        match stored.get(&c.seq) {
            Some(h) if *h == c.hash => {}
            Some(_) => problems.push(format!("entry {} differs from its signed checkpoint: the chain was rewritten", c.seq)),
            None if c.seq > head.seq => {
                problems.push(format!("a signed checkpoint records entry {} but the chain ends at {}: entries were removed", c.seq, head.seq))
            }
            None => {} // a gap, reported by the chain check
        }
    }
}

impl Store {
    /// Checks every chain in full (see the module documentation) and keeps the results.
    pub async fn verify_audit(&self) -> Result<Vec<ChainReport>> {
        self.verify_chains(None).await
    }

    /// The tenant's chains' last verification results.
    pub async fn audit_status(&self, scope: &TenantScope) -> Result<Vec<ChainStatus>> {
        let rows: Vec<(String, i64, i64, String)> =
            sqlx::query_as("SELECT kind, checked_at, checked_full, problems FROM audit_heads WHERE tenant_id = $1 ORDER BY kind")
                .bind(scope.tenant_id())
                .fetch_all(&mut *self.scoped(scope).await?)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, checked_at, full, problems)| ChainStatus {
                kind: LogKind::parse(&kind).unwrap_or(LogKind::Audit),
                checked_at,
                full: full != 0,
                problems: problems.lines().filter(|l| !l.is_empty()).map(String::from).collect(),
            })
            .collect())
    }

    async fn heads(&self, only: Option<i64>) -> Result<Vec<Head>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, kind, seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE ($1 < 0 OR tenant_id = $1) ORDER BY tenant_id, kind",
        )
        .bind(only.unwrap_or(-1))
        .fetch_all(&mut *self.system().await?)
        .await?)
    }

    async fn rows_after(&self, head: &Head, after: i64) -> Result<Vec<ChainRow>> {
        Ok(sqlx::query_as(&format!("SELECT {ROW_COLUMNS} FROM audit_log WHERE tenant_id = $1 AND kind = $2 AND seq > $3 ORDER BY seq"))
            .bind(head.tenant_id)
            .bind(&head.kind)
            .bind(after)
            .fetch_all(&mut *self.system().await?)
            .await?)
    }

    async fn verify_chains(&self, only: Option<i64>) -> Result<Vec<ChainReport>> {
        let keys = self.checkpoint_keys();
        let mut reports = Vec::new();
        for head in self.heads(only).await? {
            let rows = self.rows_after(&head, head.anchor_seq).await?;
            let checkpoints = self.checkpoints_of(head.tenant_id, &head.kind).await?;
            let (tenant, start_seq, start_hash) = (head.tenant_id, head.anchor_seq, head.anchor_hash.clone());
            let (rows, (end_seq, end_hash, mut problems)) = tokio::task::spawn_blocking(move || {
                let checked = check_rows(tenant, start_seq, start_hash, &rows);
                (rows, checked)
            })
            .await
            .map_err(|e| StoreError::Internal(format!("verification task: {e}")))?;
            if end_seq != head.seq || end_hash != head.hash {
                problems.push(format!("the chain ends at entry {end_seq} but the head records entry {}: entries were removed or added at the end", head.seq));
            }
            let mut checked = 0;
            if !keys.is_empty() {
                check_anchor(&head, &checkpoints, &keys, &mut problems);
                for c in checkpoints.iter().filter(|c| c.seq >= head.anchor_seq) {
                    if let Err(p) = c.signed_by(&keys) {
                        problems.push(p);
                    }
                    checked += 1;
                }
                let stored: HashMap<i64, String> = rows.iter().map(|r| (r.seq, r.hash.clone())).collect();
                check_checkpoint_entries(&head, &checkpoints, &stored, &mut problems);
            }
            self.record_check(head.tenant_id, &head.kind, true, &problems, anpi_core::Clock::now(&anpi_core::SystemClock)).await?;
            let kind = LogKind::parse(&head.kind).unwrap_or(LogKind::Audit);
            reports.push(ChainReport { tenant_id: head.tenant_id, kind, entries: rows.len() as i64, checkpoints: checked, problems });
        }
        Ok(reports)
    }

    /// The check before signing a head: from the last checkpoint (or the chain's start) to the
    /// head, plus the start's anchor, the last checkpoint's signature and every checkpoint's entry.
    pub(crate) async fn verify_since_last_checkpoint(&self, head: &Head, keys: &[CheckpointKey]) -> Result<Vec<String>> {
        let checkpoints = self.checkpoints_of(head.tenant_id, &head.kind).await?;
        let mut problems = Vec::new();
        check_anchor(head, &checkpoints, keys, &mut problems);
        let last = checkpoints.iter().rfind(|c| c.seq >= head.anchor_seq);
        let (start_seq, start_hash) = match last {
            Some(c) => {
                if let Err(p) = c.signed_by(keys) {
                    problems.push(p);
                }
                (c.seq, c.hash.clone())
            }
            None => (head.anchor_seq, head.anchor_hash.clone()),
        };
        let at_checkpoints: Vec<(i64, String)> = sqlx::query_as(
            "SELECT l.seq, l.hash FROM audit_log l JOIN audit_checkpoints c ON c.tenant_id = l.tenant_id AND c.kind = l.kind AND c.seq = l.seq \
             WHERE l.tenant_id = $1 AND l.kind = $2",
        )
        .bind(head.tenant_id)
        .bind(&head.kind)
        .fetch_all(&mut *self.system().await?)
        .await?;
        check_checkpoint_entries(head, &checkpoints, &at_checkpoints.into_iter().collect(), &mut problems);
        let rows = self.rows_after(head, start_seq).await?;
        let tenant = head.tenant_id;
        let (end_seq, end_hash, stretch) = tokio::task::spawn_blocking(move || check_rows(tenant, start_seq, start_hash, &rows))
            .await
            .map_err(|e| StoreError::Internal(format!("verification task: {e}")))?;
        problems.extend(stretch);
        if end_seq != head.seq || end_hash != head.hash {
            problems.push(format!("the chain ends at entry {end_seq} but the head records entry {}: entries were removed or added at the end", head.seq));
        }
        Ok(problems)
    }

    /// Chains whose last check (before signing) found problems: (tenant, kind, problems).
    pub async fn unsigned_chains(&self) -> Result<Vec<(i64, String, Vec<String>)>> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT tenant_id, kind, problems FROM audit_heads WHERE problems <> '' ORDER BY tenant_id, kind")
                .fetch_all(&mut *self.system().await?)
                .await?;
        Ok(rows.into_iter().map(|(t, k, p)| (t, k, p.lines().map(String::from).collect())).collect())
    }

    /// Keeps a chain's verification result for the log page.
    pub(crate) async fn record_check(&self, tenant: i64, kind: &str, full: bool, problems: &[String], now: Millis) -> Result<()> {
        sqlx::query("UPDATE audit_heads SET checked_at = $3, checked_full = $4, problems = $5 WHERE tenant_id = $1 AND kind = $2")
            .bind(tenant)
            .bind(kind)
            .bind(now)
            .bind(full as i64)
            .bind(problems.join("\n"))
            .execute(&mut *self.system().await?)
            .await?;
        Ok(())
    }

    /// Compares the database with checkpoints copied out (JSON lines, as written to the
    /// checkpoint log): each one at or after its chain's start must still be there, signed the
    /// same, and the chain must not end before it. Returns the problems.
    pub async fn verify_against_checkpoint_log(&self, log: &str) -> Result<Vec<String>> {
        let heads: HashMap<(i64, String), Head> = self.heads(None).await?.into_iter().map(|h| ((h.tenant_id, h.kind.clone()), h)).collect();
        let mut stored: HashMap<(i64, String), HashMap<i64, Checkpoint>> = HashMap::new();
        let mut problems = Vec::new();
        for (n, line) in log.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let Ok(cp) = serde_json::from_str::<Checkpoint>(line) else {
                problems.push(format!("checkpoint log line {}: not a checkpoint", n + 1));
                continue;
            };
            let chain = format!("tenant {} {}", cp.tenant_id, cp.kind);
            let Some(head) = heads.get(&(cp.tenant_id, cp.kind.clone())) else {
                problems.push(format!("{chain}: the chain is gone from the database (checkpoint at entry {})", cp.seq));
                continue;
            };
            if cp.seq < head.anchor_seq {
                continue; // purged by retention since
            }
            if cp.seq > head.seq {
                problems.push(format!("{chain}: a checkpoint copied out records entry {} but the chain ends at {}: entries were removed", cp.seq, head.seq));
                continue;
            }
            let key = (cp.tenant_id, cp.kind.clone());
            if !stored.contains_key(&key) {
                let list = self.checkpoints_of(cp.tenant_id, &cp.kind).await?;
                stored.insert(key.clone(), list.into_iter().map(|c| (c.seq, c)).collect());
            }
            match stored.get(&key).and_then(|m| m.get(&cp.seq)) {
                Some(db) if db.hash == cp.hash => {}
                Some(_) => problems.push(format!("{chain}: the checkpoint at entry {} differs from its copy", cp.seq)),
                None if cp.seq == head.anchor_seq => {}
                None => problems.push(format!("{chain}: the checkpoint at entry {} (signed at {}) was deleted from the database", cp.seq, cp.at)),
            }
        }
        Ok(problems)
    }
}
