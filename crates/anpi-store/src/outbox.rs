//! The durable outbox. Rows are written in the same transaction as what caused them;
//! workers claim them with a lease, send, and record the outcome. A crash mid-send lets
//! the lease expire and the row is sent again with the same idempotency key (Message-ID).

use crate::keys::KeyRing;
use crate::{in_list, values_placeholders, Result, Store};
use anpi_core::Millis;
use sqlx::any::Any;
use sqlx::Transaction;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// The first safety message of an incident.
    Survey,
    /// An automatic reminder.
    Reminder,
    /// A re-send asked for on the dashboard.
    Resend,
    /// A pre-composed system mail (password links).
    System,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Survey => "survey",
            OutboxKind::Reminder => "reminder",
            OutboxKind::Resend => "resend",
            OutboxKind::System => "system",
        }
    }
    /// `None` for a kind this version does not know: such a row is failed, never sent as
    /// something else (see [`Store::claim_outbox`]).
    fn parse(s: &str) -> Option<OutboxKind> {
        match s {
            "survey" => Some(OutboxKind::Survey),
            "reminder" => Some(OutboxKind::Reminder),
            "resend" => Some(OutboxKind::Resend),
            "system" => Some(OutboxKind::System),
            _ => None,
        }
    }
}

/// What became of a claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Try again at this time.
    Retry {
        at: Millis,
        error: String,
    },
    /// Given up: refused for good, or out of attempts.
    Failed(String),
    /// Not tried (the worker is stopping): free for the next claim, the attempt not counted.
    HandedBack,
}

fn clip(error: &str) -> String {
    error.chars().take(500).collect()
}

/// A claimed message, with what is needed to compose it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub tenant_id: i64,
    pub kind: OutboxKind,
    pub idempotency_key: String,
    pub attempts: i64,
    pub to: Vec<String>,
    /// For system mail: the stored subject and body.
    pub subject: String,
    pub body: String,
    /// For survey kinds.
    pub survey: Option<SurveyMail>,
    /// The DSN status of an address left out of `to` because it bounced for good.
    pub undeliverable: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SurveyMail {
    pub recipient_id: i64,
    pub answer_token: String,
    pub name: String,
    pub language: String,
    pub tenant_name: String,
    pub title: String,
    pub message: String,
    pub drill: bool,
    /// The incident's classification label (Japanese and English names), if any.
    pub label: Option<String>,
    pub label_en: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimDb {
    id: i64,
    tenant_id: i64,
    kind: String,
    idempotency_key: String,
    attempts: i64,
    to_addrs: String,
    subject: String,
    body: String,
    recipient_id: Option<i64>,
    name: Option<String>,
    language: Option<String>,
    person_id: Option<i64>,
    emails: Option<String>,
    tenant_name: String,
    title: Option<String>,
    message: Option<String>,
    drill: Option<i64>,
    label: Option<String>,
    label_en: Option<String>,
    undeliverable_address: Option<String>,
    undeliverable_status: Option<String>,
}

/// Queues the first message of an incident for every recipient, in one statement: no row of
/// parameters per person (100,000 recipients are one INSERT … SELECT).
/// Queues the first message of the recipients of `incident` whose ids lie in `range`
/// (inclusive), unless the incident has closed meanwhile.
pub(crate) async fn enqueue_incident(tx: &mut Transaction<'static, Any>, tenant: i64, incident: i64, range: (i64, i64), now: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (tenant_id, idempotency_key, kind, incident_id, recipient_id, to_addrs, subject, body, next_attempt_at, created_at) \
         SELECT r.tenant_id, 'survey:' || r.id, 'survey', r.incident_id, r.id, '', '', '', $3, $3 FROM recipients r \
         JOIN incidents i ON i.tenant_id = r.tenant_id AND i.id = r.incident_id AND i.closed_at IS NULL \
         WHERE r.tenant_id = $1 AND r.incident_id = $2 AND r.id BETWEEN $4 AND $5 ORDER BY r.id",
    )
    .bind(tenant)
    .bind(incident)
    .bind(now)
    .bind(range.0)
    .bind(range.1)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn enqueue_survey(
    tx: &mut Transaction<'static, Any>,
    tenant: i64,
    incident: i64,
    recipients: &[i64],
    kind: OutboxKind,
    round: i64,
    now: Millis,
) -> Result<()> {
    if recipients.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO outbox (tenant_id, idempotency_key, kind, incident_id, recipient_id, to_addrs, subject, body, next_attempt_at, created_at) VALUES {} \
         ON CONFLICT (idempotency_key) DO NOTHING",
        values_placeholders(recipients.len(), 10)
    );
    let mut q = sqlx::query(&sql);
    for r in recipients {
        let key = match kind {
            OutboxKind::Survey => format!("survey:{r}"),
            k => format!("{}:{r}:{round}", k.as_str()),
        };
        q = q.bind(tenant).bind(key).bind(kind.as_str()).bind(incident).bind(*r).bind("").bind("").bind("").bind(now).bind(now);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// `ring`: the tenant's keys (see [`Store::system_ring`]); the address and the body (it holds
/// a password link) are then stored encrypted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn enqueue_system(
    tx: &mut Transaction<'static, Any>,
    ring: Option<&KeyRing>,
    tenant: i64,
    key: &str,
    to: &str,
    subject: &str,
    body: &str,
    now: Millis,
) -> Result<()> {
    // Bound to the row by its idempotency key: an address copied from another row does not open.
    let (to, body) = match ring {
        Some(k) => (k.seal_row("outbox.to_addrs", key, to)?, k.seal_row("outbox.body", key, body)?),
        None => (to.to_string(), body.to_string()),
    };
    sqlx::query(
        "INSERT INTO outbox (tenant_id, idempotency_key, kind, to_addrs, subject, body, next_attempt_at, created_at) VALUES ($1, $2, 'system', $3, $4, $5, $6, $6) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(key)
    .bind(to)
    .bind(subject)
    .bind(body)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The tenant's keys for system mail when a master key is configured (always in a
    /// service). Without one, system mail is stored as before only on a database that has no
    /// tenant keys yet (some tests); else it is an error (no plaintext next to ciphertext).
    pub(crate) async fn system_ring(&self, tenant: i64) -> Result<Option<KeyRing>> {
        match self.master_keys() {
            Ok(_) => Ok(Some(self.keyring(tenant).await?)),
            Err(e) => {
                let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenant_keys").fetch_one(&mut *self.system().await?).await?;
                match keys {
                    0 => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// Claims up to `limit` due messages for `lease_ms`. The clock is read once the transaction
    /// has its connection: a wait for it (SQLite's one writer, a busy pool) must not eat the lease.
    pub async fn claim_outbox(&self, clock: &dyn anpi_core::Clock, limit: i64, lease_ms: i64) -> Result<Vec<Claimed>> {
        let mut tx = self.system_tx().await?;
        let now = clock.now();
        let sql = format!(
            "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2 ORDER BY id LIMIT $3 {}) RETURNING id",
            self.skip_locked()
        );
        let ids: Vec<i64> = sqlx::query_scalar(&sql).bind(now + lease_ms).bind(now).bind(limit).fetch_all(&mut *tx).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let sql = format!(
            "SELECT o.id, o.tenant_id, o.kind, o.idempotency_key, o.attempts, o.to_addrs, o.subject, o.body, o.recipient_id, \
               r.name, r.language, r.person_id, p.emails, p.undeliverable_address, p.undeliverable_status, t.name AS tenant_name, i.title, i.message, i.drill, l.name AS label, l.name_en AS label_en \
             FROM outbox o JOIN tenants t ON t.id = o.tenant_id \
               LEFT JOIN recipients r ON r.id = o.recipient_id AND r.tenant_id = o.tenant_id \
               LEFT JOIN people p ON p.id = r.person_id AND p.tenant_id = o.tenant_id \
               LEFT JOIN incidents i ON i.id = o.incident_id AND i.tenant_id = o.tenant_id \
               LEFT JOIN labels l ON l.id = i.label_id AND l.tenant_id = o.tenant_id \
             WHERE o.id IN ({}) ORDER BY o.id",
            in_list(1, ids.len())
        );
        let mut q = sqlx::query_as::<_, ClaimDb>(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let (mut rows, mut unknown) = (Vec::new(), Vec::new());
        for r in q.fetch_all(&mut *tx).await? {
            match OutboxKind::parse(&r.kind) {
                Some(kind) => rows.push((kind, r)),
                None => unknown.push(r),
            }
        }
        for r in &unknown {
            tracing::error!(outbox = r.id, kind = %r.kind, "unknown outbox kind: failed, not sent");
            sqlx::query("UPDATE outbox SET status = 'failed', lease_until = 0, last_error = $1 WHERE id = $2")
                .bind(clip(&format!("unknown kind {}", r.kind)))
                .bind(r.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let link_key = self.link_keys()?.into_iter().next().ok_or_else(|| crate::StoreError::Crypto("no master key: answer links cannot be made".into()))?;
        // Contact data and system mail are encrypted with the tenant's keys (keys.rs).
        let mut rings: HashMap<i64, KeyRing> = HashMap::new();
        if self.master_keys().is_ok() {
            for (_, r) in &rows {
                if let std::collections::hash_map::Entry::Vacant(e) = rings.entry(r.tenant_id) {
                    e.insert(self.keyring(r.tenant_id).await?);
                }
            }
        }
        // A value that does not open (planted, copied from another row) leaves the message
        // without an address: it is not sent anywhere (and is marked failed).
        let open = |tenant: i64, id: i64, column: &str, row: &str, v: String| -> String {
            match rings.get(&tenant) {
                Some(k) => k.open_row(column, row, &v).unwrap_or_else(|e| {
                    tracing::error!(outbox = id, error = %e, "cannot decrypt {column}");
                    String::new()
                }),
                None => v,
            }
        };
        Ok(rows
            .into_iter()
            .map(|(kind, r)| {
                let survey = match (kind, r.recipient_id) {
                    (OutboxKind::System, _) | (_, None) => None,
                    (_, Some(rid)) => Some(SurveyMail {
                        recipient_id: rid,
                        answer_token: crate::responses::link_token(&link_key, rid),
                        name: r.name.unwrap_or_default(),
                        language: r.language.unwrap_or_default(),
                        tenant_name: r.tenant_name.clone(),
                        title: r.title.unwrap_or_default(),
                        message: r.message.unwrap_or_default(),
                        drill: r.drill.unwrap_or(0) != 0,
                        label: r.label,
                        label_en: r.label_en,
                    }),
                };
                let person = r.person_id.map(|p| p.to_string()).unwrap_or_default();
                let to = match &survey {
                    Some(_) => open(r.tenant_id, r.id, "people.emails", &person, r.emails.unwrap_or_default()),
                    None => open(r.tenant_id, r.id, "outbox.to_addrs", &r.idempotency_key, r.to_addrs),
                };
                let body = open(r.tenant_id, r.id, "outbox.body", &r.idempotency_key, r.body);
                let bounced = match r.undeliverable_address.as_deref() {
                    Some(a) if !a.is_empty() => open(r.tenant_id, r.id, "people.undeliverable_address", &person, a.to_string()),
                    _ => String::new(),
                };
                let mut to: Vec<String> = to.split('\n').filter(|s| !s.is_empty()).map(String::from).collect();
                let before = to.len();
                if !bounced.is_empty() {
                    to.retain(|a| !a.eq_ignore_ascii_case(&bounced));
                }
                Claimed {
                    id: r.id,
                    tenant_id: r.tenant_id,
                    kind,
                    idempotency_key: r.idempotency_key,
                    attempts: r.attempts,
                    undeliverable: (to.len() < before).then(|| r.undeliverable_status.unwrap_or_default()),
                    to,
                    subject: r.subject,
                    body,
                    survey,
                }
            })
            .collect())
    }

    /// Records what became of claimed messages, all in one transaction: sent (the stored body,
    /// which may hold a link, is dropped), retry later, failed for good, or handed back unsent
    /// (the lease and the attempt are returned).
    pub async fn record_outbox(&self, outcomes: &[(i64, Delivery)], now: Millis) -> Result<()> {
        let mut tx = self.system_tx().await?;
        let sent: Vec<i64> = outcomes.iter().filter(|(_, d)| matches!(d, Delivery::Sent)).map(|(id, _)| *id).collect();
        let back: Vec<i64> = outcomes.iter().filter(|(_, d)| matches!(d, Delivery::HandedBack)).map(|(id, _)| *id).collect();
        for ids in sent.chunks(500) {
            let sql = format!("UPDATE outbox SET status = 'sent', sent_at = $1, body = '', last_error = '' WHERE id IN ({})", in_list(2, ids.len()));
            let mut q = sqlx::query(&sql).bind(now);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for ids in back.chunks(500) {
            let sql = format!("UPDATE outbox SET lease_until = 0, attempts = attempts - 1 WHERE status = 'pending' AND id IN ({})", in_list(1, ids.len()));
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        for (id, d) in outcomes {
            let q = match d {
                Delivery::Retry { at, error } => {
                    sqlx::query("UPDATE outbox SET next_attempt_at = $1, lease_until = 0, last_error = $2 WHERE id = $3").bind(*at).bind(clip(error))
                }
                Delivery::Failed(error) => sqlx::query("UPDATE outbox SET status = 'failed', body = '', last_error = $1 WHERE id = $2").bind(clip(error)),
                Delivery::Sent | Delivery::HandedBack => continue,
            };
            q.bind(*id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts by status, for health and benchmarks.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status").fetch_all(&mut *self.system().await?).await?)
    }
}
