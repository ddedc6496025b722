//! JMA telegrams (public, not tenant-owned), tenants' dispatch rules, and the decisions
//! (dispatches) each rule took about each telegram. Severity, kinds and areas are stored as the
//! strings `anpi-intake` gives; this crate does not interpret them.

use crate::audit::AuditEvent;
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;

/// A telegram to store. `dedupe_key` identifies "the same telegram" across sources.
#[derive(Debug, Clone, Default)]
pub struct NewTelegram {
    pub dedupe_key: String,
    pub source: String,
    pub type_code: String,
    pub title: String,
    pub status: String,
    pub info_type: String,
    pub event_id: String,
    pub serial: Option<i64>,
    pub reported_at: Option<Millis>,
    pub kind: String,
    pub severity: String,
    pub headline: String,
    /// JSON list of `{code, name, severity}`.
    pub areas: String,
    /// Why it was rejected; `None` when it parsed.
    pub error: Option<String>,
    pub xml: String,
}

/// A stored telegram, without its XML.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TelegramRow {
    pub id: i64,
    pub source: String,
    pub received_at: i64,
    pub type_code: String,
    pub title: String,
    pub status: String,
    pub info_type: String,
    pub event_id: String,
    pub serial: Option<i64>,
    pub reported_at: Option<i64>,
    pub kind: String,
    pub severity: String,
    pub headline: String,
    pub areas: String,
    pub error: Option<String>,
    /// When the rules were applied; `None` while that is still to do.
    pub processed_at: Option<i64>,
}

const TELEGRAM_COLUMNS: &str =
    "id, source, received_at, type_code, title, status, info_type, event_id, serial, reported_at, kind, severity, headline, areas, error, processed_at";

/// A tenant's dispatch rule, as stored.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct RuleRow {
    pub id: i64,
    pub name: String,
    pub enabled: i64,
    pub kind: String,
    pub threshold: String,
    /// Space-separated JIS codes; empty means wherever the tenant's people are.
    pub areas: String,
    pub basis: String,
    /// Survey JSON.
    pub survey: String,
    pub message: String,
    pub hold_secs: i64,
    pub suppress_min: i64,
    pub reminder_interval_min: i64,
    pub reminder_count: i64,
    /// The classification label of the incidents the rule starts.
    pub label_id: Option<i64>,
}

const RULE_COLUMNS: &str =
    "id, name, enabled, kind, threshold, areas, basis, survey, message, hold_secs, suppress_min, reminder_interval_min, reminder_count, label_id";

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDispatch {
    pub rule_id: i64,
    pub telegram_id: i64,
    pub kind: String,
    pub event_id: String,
    pub severity: String,
    pub status: String,
    pub reason: String,
    pub areas: String,
    pub due_at: Millis,
}

/// A recorded decision, for the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DispatchRow {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub telegram_id: i64,
    pub kind: String,
    pub event_id: String,
    pub severity: String,
    pub status: String,
    pub reason: String,
    pub areas: String,
    pub due_at: i64,
    pub incident_id: Option<i64>,
    pub recipients: i64,
    pub created_at: i64,
}

const DISPATCH_COLUMNS: &str = "d.id, d.rule_id, r.name AS rule_name, d.telegram_id, d.kind, d.event_id, d.severity, d.status, \
     d.reason, d.areas, d.due_at, d.incident_id, d.recipients, d.created_at";

/// An earlier decision of the same rule, for repeat suppression.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PriorDispatch {
    pub event_id: String,
    pub severity: String,
    pub status: String,
    pub incident_id: Option<i64>,
    pub created_at: i64,
}

/// Where a tenant's (enabled) people are: distinct home and site area codes.
#[derive(Debug, Clone, Default)]
pub struct PeopleAreas {
    pub home: Vec<String>,
    pub work: Vec<String>,
}

impl Store {
    /// Stores a telegram unless one with the same `dedupe_key` exists. Returns its id and
    /// whether it is new.
    pub async fn insert_telegram(&self, t: &NewTelegram, now: Millis) -> Result<(i64, bool)> {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO telegrams (dedupe_key, source, received_at, type_code, title, status, info_type, event_id, serial, reported_at, \
               kind, severity, headline, areas, error, xml, processed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(&t.dedupe_key)
        .bind(&t.source)
        .bind(now)
        .bind(&t.type_code)
        .bind(&t.title)
        .bind(&t.status)
        .bind(&t.info_type)
        .bind(&t.event_id)
        .bind(t.serial)
        .bind(t.reported_at)
        .bind(&t.kind)
        .bind(&t.severity)
        .bind(&t.headline)
        .bind(&t.areas)
        .bind(t.error.as_deref())
        .bind(&t.xml)
        .bind(t.error.as_ref().map(|_| now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok((id, true));
        }
        let id: i64 = sqlx::query_scalar("SELECT id FROM telegrams WHERE dedupe_key = $1").bind(&t.dedupe_key).fetch_one(&self.pool).await?;
        Ok((id, false))
    }

    /// Telegrams whose rules have not been applied yet (a crash or a failure interrupted them).
    pub async fn unprocessed_telegrams(&self, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM telegrams WHERE processed_at IS NULL ORDER BY id LIMIT $1").bind(limit).fetch_all(&self.pool).await?)
    }

    pub async fn mark_telegram_processed(&self, id: i64, now: Millis) -> Result<()> {
        sqlx::query("UPDATE telegrams SET processed_at = $2 WHERE id = $1 AND processed_at IS NULL").bind(id).bind(now).execute(&self.pool).await?;
        Ok(())
    }

    /// The latest telegrams, newest first; `kind` filters (empty: all).
    pub async fn telegrams(&self, kind: &str, limit: i64) -> Result<Vec<TelegramRow>> {
        let sql = format!("SELECT {TELEGRAM_COLUMNS} FROM telegrams WHERE ($1 = '' OR kind = $1) ORDER BY received_at DESC, id DESC LIMIT $2");
        Ok(sqlx::query_as(&sql).bind(kind).bind(limit).fetch_all(&self.pool).await?)
    }

    pub async fn telegram(&self, id: i64) -> Result<TelegramRow> {
        let sql = format!("SELECT {TELEGRAM_COLUMNS} FROM telegrams WHERE id = $1");
        sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?.ok_or(StoreError::NotFound)
    }

    pub async fn telegram_xml(&self, id: i64) -> Result<String> {
        sqlx::query_scalar("SELECT xml FROM telegrams WHERE id = $1").bind(id).fetch_optional(&self.pool).await?.ok_or(StoreError::NotFound)
    }

    /// Every telegram of one event (same kind and event id), oldest first.
    pub async fn event_telegrams(&self, kind: &str, event_id: &str) -> Result<Vec<TelegramRow>> {
        if event_id.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {TELEGRAM_COLUMNS} FROM telegrams WHERE kind = $1 AND event_id = $2 ORDER BY received_at, id");
        Ok(sqlx::query_as(&sql).bind(kind).bind(event_id).fetch_all(&self.pool).await?)
    }

    pub async fn rules(&self, scope: &TenantScope) -> Result<Vec<RuleRow>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 ORDER BY id");
        Ok(sqlx::query_as(&sql).bind(scope.tenant_id()).fetch_all(&mut *self.scoped(scope).await?).await?)
    }

    pub async fn rule(&self, scope: &TenantScope, id: i64) -> Result<RuleRow> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 AND id = $2");
        sqlx::query_as(&sql).bind(scope.tenant_id()).bind(id).fetch_optional(&mut *self.scoped(scope).await?).await?.ok_or(StoreError::NotFound)
    }

    /// Creates (`rule.id == 0`) or updates a rule; returns its id.
    pub async fn save_rule(&self, scope: &TenantScope, rule: &RuleRow, audit: &AuditEvent<'_>, now: Millis) -> Result<i64> {
        // $1–$13: the rule's fields, $14: now, $15: tenant, $16: the rule's id (updates).
        const FIELDS: &str =
            "name, enabled, kind, threshold, areas, basis, survey, message, hold_secs, suppress_min, reminder_interval_min, reminder_count, label_id";
        self.check_label(scope, rule.label_id).await?;
        let sql = if rule.id == 0 {
            format!("INSERT INTO rules ({FIELDS}, updated_at, tenant_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14) RETURNING id")
        } else {
            let set: Vec<String> = FIELDS.split(", ").enumerate().map(|(i, f)| format!("{f} = ${}", i + 1)).collect();
            format!("UPDATE rules SET {}, updated_at = $14 WHERE tenant_id = $15 AND id = $16 RETURNING id", set.join(", "))
        };
        let mut q = sqlx::query_scalar(&sql)
            .bind(&rule.name)
            .bind(rule.enabled)
            .bind(&rule.kind)
            .bind(&rule.threshold)
            .bind(&rule.areas)
            .bind(&rule.basis)
            .bind(&rule.survey)
            .bind(&rule.message)
            .bind(rule.hold_secs)
            .bind(rule.suppress_min)
            .bind(rule.reminder_interval_min)
            .bind(rule.reminder_count)
            .bind(rule.label_id)
            .bind(now)
            .bind(scope.tenant_id());
        if rule.id != 0 {
            q = q.bind(rule.id);
        }
        let mut tx = self.scoped_tx(scope).await?;
        let id: i64 = q.fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
        self.record(&mut tx, scope, &audit.on(format!("rule:{id}")), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes a rule with the decisions it recorded; incidents it started stay.
    pub async fn delete_rule(&self, scope: &TenantScope, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("DELETE FROM dispatches WHERE tenant_id = $1 AND rule_id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM rules WHERE tenant_id = $1 AND id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every tenant with enabled rules of `kind`, with those rules. For intake, which acts for
    /// all tenants when a telegram arrives.
    pub async fn rules_of_kind(&self, kind: &str) -> Result<Vec<(TenantScope, Vec<RuleRow>)>> {
        let sql = format!("SELECT tenant_id, {RULE_COLUMNS} FROM rules WHERE kind = $1 AND enabled = 1 ORDER BY tenant_id, id");
        let rows: Vec<(i64, RuleRow)> =
            sqlx::query_as::<_, TenantRule>(&sql).bind(kind).fetch_all(&mut *self.system().await?).await?.into_iter().map(|r| (r.tenant_id, r.rule)).collect();
        let mut out: Vec<(TenantScope, Vec<RuleRow>)> = Vec::new();
        for (t, rule) in rows {
            match out.last_mut() {
                Some((s, rules)) if s.tenant_id() == t => rules.push(rule),
                _ => out.push((TenantScope::new(t), vec![rule])),
            }
        }
        Ok(out)
    }

    /// Distinct area codes of the tenant's enabled people: home areas and their sites' areas.
    pub async fn people_areas(&self, scope: &TenantScope) -> Result<PeopleAreas> {
        let t = scope.tenant_id();
        let home = sqlx::query_scalar("SELECT DISTINCT home_area FROM people WHERE tenant_id = $1 AND disabled = 0 AND home_area <> ''")
            .bind(t)
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?;
        let work = sqlx::query_scalar(
            "SELECT DISTINCT s.area_code FROM people p JOIN sites s ON s.id = p.site_id WHERE p.tenant_id = $1 AND p.disabled = 0 AND s.area_code <> ''",
        )
        .bind(t)
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        Ok(PeopleAreas { home, work })
    }

    /// Records a decision once per (rule, telegram); returns its id, or `None` if recorded before.
    pub async fn record_dispatch(&self, scope: &TenantScope, d: &NewDispatch, now: Millis) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "INSERT INTO dispatches (tenant_id, rule_id, telegram_id, kind, event_id, severity, status, reason, areas, due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (rule_id, telegram_id) DO NOTHING RETURNING id",
        )
        .bind(scope.tenant_id())
        .bind(d.rule_id)
        .bind(d.telegram_id)
        .bind(&d.kind)
        .bind(&d.event_id)
        .bind(&d.severity)
        .bind(&d.status)
        .bind(&d.reason)
        .bind(&d.areas)
        .bind(d.due_at)
        .bind(now)
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?)
    }

    /// The rule's earlier held or sent decisions for the same event, or since `since`; only
    /// those from drill replays when `drill`, only the others otherwise.
    pub async fn prior_dispatches(&self, scope: &TenantScope, rule_id: i64, event_id: &str, since: Millis, drill: bool) -> Result<Vec<PriorDispatch>> {
        Ok(sqlx::query_as(
            "SELECT d.event_id, d.severity, d.status, d.incident_id, d.created_at FROM dispatches d JOIN telegrams t ON t.id = d.telegram_id \
             WHERE d.tenant_id = $1 AND d.rule_id = $2 AND d.status IN ('held', 'sent') AND ((d.event_id <> '' AND d.event_id = $3) OR d.created_at >= $4) \
               AND (CASE WHEN t.source = 'drill' THEN 1 ELSE 0 END) = $5 \
             ORDER BY d.id",
        )
        .bind(scope.tenant_id())
        .bind(rule_id)
        .bind(event_id)
        .bind(since)
        .bind(drill as i64)
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?)
    }

    /// Marks the sent decisions about a withdrawn event, so they no longer suppress others.
    pub async fn withdraw_sent(&self, scope: &TenantScope, id: i64) -> Result<()> {
        sqlx::query("UPDATE dispatches SET status = 'withdrawn' WHERE tenant_id = $1 AND id = $2 AND status = 'sent'")
            .bind(scope.tenant_id())
            .bind(id)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        Ok(())
    }

    /// Held decisions whose hold time is over, across tenants (for the dispatch runner).
    pub async fn due_dispatches(&self, now: Millis, limit: i64) -> Result<Vec<(TenantScope, DispatchRow)>> {
        let sql = format!(
            "SELECT d.tenant_id, {DISPATCH_COLUMNS} FROM dispatches d JOIN rules r ON r.id = d.rule_id \
             WHERE d.status = 'held' AND d.due_at <= $1 ORDER BY d.due_at, d.id LIMIT $2"
        );
        let rows: Vec<TenantDispatch> = sqlx::query_as(&sql).bind(now).bind(limit).fetch_all(&mut *self.system().await?).await?;
        Ok(rows.into_iter().map(|r| (TenantScope::new(r.tenant_id), r.dispatch)).collect())
    }

    /// Moves a held decision to a final status (not `sent`: that happens in `start_incident`).
    /// Returns false if it was no longer held.
    pub async fn settle_dispatch(&self, scope: &TenantScope, id: i64, status: &str, reason: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE dispatches SET status = $3, reason = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'held'")
            .bind(scope.tenant_id())
            .bind(id)
            .bind(status)
            .bind(reason)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Held or sent decisions about an event, across tenants, from drill replays or not: for
    /// corrections and cancellations.
    pub async fn event_dispatches(&self, kind: &str, event_id: &str, drill: bool) -> Result<Vec<(TenantScope, DispatchRow)>> {
        let sql = format!(
            "SELECT d.tenant_id, {DISPATCH_COLUMNS} FROM dispatches d JOIN rules r ON r.id = d.rule_id JOIN telegrams t ON t.id = d.telegram_id \
             WHERE d.kind = $1 AND d.event_id = $2 AND d.event_id <> '' AND d.status IN ('held', 'sent') \
               AND (CASE WHEN t.source = 'drill' THEN 1 ELSE 0 END) = $3 ORDER BY d.tenant_id, d.id"
        );
        let rows: Vec<TenantDispatch> = sqlx::query_as(&sql).bind(kind).bind(event_id).bind(drill as i64).fetch_all(&mut *self.system().await?).await?;
        Ok(rows.into_iter().map(|r| (TenantScope::new(r.tenant_id), r.dispatch)).collect())
    }

    /// The tenant's decisions about some telegrams (or all recent ones when `telegrams` is empty).
    pub async fn dispatches(&self, scope: &TenantScope, telegrams: &[i64]) -> Result<Vec<DispatchRow>> {
        let filter = if telegrams.is_empty() { String::new() } else { format!("AND d.telegram_id IN ({})", crate::in_list(2, telegrams.len())) };
        let sql = format!(
            "SELECT {DISPATCH_COLUMNS} FROM dispatches d JOIN rules r ON r.id = d.rule_id WHERE d.tenant_id = $1 {filter} ORDER BY d.id DESC LIMIT 1000"
        );
        let mut q = sqlx::query_as(&sql).bind(scope.tenant_id());
        for t in telegrams {
            q = q.bind(*t);
        }
        Ok(q.fetch_all(&mut *self.scoped(scope).await?).await?)
    }

    /// Mails a notice to the tenant's administrators, once per `key`.
    pub async fn notify_admins(&self, scope: &TenantScope, key: &str, subject: &str, body: &str, now: Millis) -> Result<usize> {
        let admins: Vec<(i64, String)> = sqlx::query_as("SELECT id, email FROM accounts WHERE tenant_id = $1 AND role = 'admin' AND disabled = 0 ORDER BY id")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?;
        let ring = self.system_ring(scope.tenant_id()).await?;
        let mut tx = self.scoped_tx(scope).await?;
        for (id, email) in &admins {
            crate::outbox::enqueue_system(&mut tx, ring.as_ref(), scope.tenant_id(), &format!("{key}:{id}"), email, subject, body, now).await?;
        }
        tx.commit().await?;
        Ok(admins.len())
    }
}

#[derive(sqlx::FromRow)]
struct TenantRule {
    tenant_id: i64,
    #[sqlx(flatten)]
    rule: RuleRow,
}

#[derive(sqlx::FromRow)]
struct TenantDispatch {
    tenant_id: i64,
    #[sqlx(flatten)]
    dispatch: DispatchRow,
}
