//! Incidents: start (with recipients and outbox rows in one transaction), list, dashboard,
//! re-send, reminders, close.

use crate::audit::AuditEvent;
use crate::outbox::OutboxKind;
use crate::reach::{IncidentAccess, Reach};
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::survey::{Answers, Survey};
use anpi_core::target::{PersonFacts, Target};
use anpi_core::{AreaCode, Label, Millis};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub message: String,
    pub survey: Survey,
    pub target: Target,
    pub drill: bool,
    pub reminder_interval_min: i64,
    pub reminder_count: i64,
    pub started_by: Option<i64>,
    /// Limits the recipients to these people too (a distributor's reach).
    pub within: Option<Target>,
    /// The held rule decision this incident carries out; it becomes `sent` in the same
    /// transaction, and the start fails with `StoreError::NoLongerHeld` if it is no longer held.
    pub dispatch_id: Option<i64>,
    /// The classification label (one of the tenant's).
    pub label_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct IncidentSummary {
    pub id: i64,
    pub title: String,
    pub drill: bool,
    pub started_at: i64,
    pub closed_at: Option<i64>,
    pub recipients: i64,
    pub answered: i64,
    pub label: Option<Label>,
}

#[derive(Debug, Clone)]
pub struct IncidentDetail {
    pub id: i64,
    pub title: String,
    pub message: String,
    pub survey: Survey,
    pub target: Target,
    pub drill: bool,
    pub started_at: i64,
    pub closed_at: Option<i64>,
    pub reminder_interval_min: i64,
    pub reminder_count: i64,
    pub reminders_sent: i64,
    pub label: Option<Label>,
}

#[derive(sqlx::FromRow)]
struct IncidentSummaryDb {
    id: i64,
    title: String,
    drill: i64,
    started_at: i64,
    closed_at: Option<i64>,
    recipients: i64,
    answered: i64,
    label_id: Option<i64>,
    label_name: Option<String>,
    label_en: Option<String>,
    label_rank: Option<i64>,
    label_export_min: Option<String>,
}

#[derive(sqlx::FromRow)]
struct IncidentDb {
    id: i64,
    title: String,
    message: String,
    survey: String,
    target: String,
    drill: i64,
    started_at: i64,
    closed_at: Option<i64>,
    reminder_interval_min: i64,
    reminder_count: i64,
    reminders_sent: i64,
    label_id: Option<i64>,
}

/// One recipient on the dashboard.
#[derive(Debug, Clone)]
pub struct DashboardRow {
    pub recipient_id: i64,
    pub person_id: i64,
    pub name: String,
    pub department_id: Option<i64>,
    pub site_id: Option<i64>,
    pub group_ids: Vec<i64>,
    pub answers: Option<Answers>,
    pub answered_at: Option<i64>,
    /// Outcome of the latest message: pending, sent, failed, undeliverable (bounced) or cancelled.
    pub delivery: String,
}

/// How many recipients of an incident share a department, a site (or a group) and an answer.
#[derive(Debug, Clone)]
pub struct AnswerCount {
    pub department_id: Option<i64>,
    pub site_id: Option<i64>,
    pub answers: Option<Answers>,
    pub recipients: usize,
    pub answered: usize,
}

/// An incident's dashboard figures, counted in the database: no row per person leaves it but
/// the first unanswered ones shown.
#[derive(Debug, Clone, Default)]
pub struct DashboardCounts {
    pub by_place: Vec<AnswerCount>,
    /// (group id, count): `department_id` and `site_id` are unset.
    pub by_group: Vec<(i64, AnswerCount)>,
    /// The first unanswered recipients by id (`delivery` not filled in).
    pub unanswered: Vec<DashboardRow>,
}

#[derive(sqlx::FromRow)]
struct CountDb {
    group_id: Option<i64>,
    department_id: Option<i64>,
    site_id: Option<i64>,
    answers: Option<String>,
    recipients: i64,
    answered: i64,
}

impl CountDb {
    fn count(self) -> AnswerCount {
        AnswerCount {
            department_id: self.department_id,
            site_id: self.site_id,
            answers: self.answers.and_then(|a| serde_json::from_str(&a).ok()),
            recipients: usize::try_from(self.recipients).unwrap_or(0),
            answered: usize::try_from(self.answered).unwrap_or(0),
        }
    }
}

#[derive(sqlx::FromRow)]
struct DashboardDb {
    id: i64,
    person_id: i64,
    name: String,
    department_id: Option<i64>,
    site_id: Option<i64>,
    answers: Option<String>,
    answered_at: Option<i64>,
    delivery: Option<String>,
}

impl DashboardDb {
    fn row(self, group_ids: Vec<i64>) -> DashboardRow {
        DashboardRow {
            recipient_id: self.id,
            person_id: self.person_id,
            name: self.name,
            department_id: self.department_id,
            site_id: self.site_id,
            group_ids,
            answers: self.answers.and_then(|a| serde_json::from_str(&a).ok()),
            answered_at: self.answered_at,
            delivery: self.delivery.unwrap_or_else(|| "none".into()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct TargetDb {
    id: i64,
    department_id: Option<i64>,
    site_id: Option<i64>,
    home_area: String,
    site_area: Option<String>,
}

/// A person with what targeting needs: departments (own and ancestors), groups, areas.
struct Targetable {
    row: TargetDb,
    departments: Vec<i64>,
    groups: Vec<i64>,
    home: Option<AreaCode>,
    site_area: Option<AreaCode>,
}

impl Targetable {
    fn facts(&self) -> PersonFacts<'_> {
        PersonFacts {
            departments: &self.departments,
            site: self.row.site_id,
            site_area: self.site_area.as_ref(),
            home_area: self.home.as_ref(),
            groups: &self.groups,
        }
    }
}

const BATCH: usize = 500;

fn json_ids(ids: &[i64]) -> Result<String> {
    serde_json::to_string(ids).map_err(|e| StoreError::Internal(e.to_string()))
}

/// The state of recipient `r`'s latest message; a bounce shows as `undeliverable`.
const DELIVERY_STATE: &str = "SELECT CASE WHEN o.status = 'failed' AND o.last_error LIKE 'undeliverable%' THEN 'undeliverable' ELSE o.status END \
     FROM outbox o WHERE o.recipient_id = r.id ORDER BY o.id DESC LIMIT 1";

impl Store {
    /// The tenant's enabled people that `target` selects.
    async fn targeted(&self, scope: &TenantScope, target: &Target) -> Result<Vec<Targetable>> {
        let t = scope.tenant_id();
        let mut c = self.scoped(scope).await?;
        let people: Vec<TargetDb> = sqlx::query_as(
            "SELECT p.id, p.department_id, p.site_id, p.home_area, s.area_code AS site_area \
             FROM people p LEFT JOIN sites s ON s.id = p.site_id WHERE p.tenant_id = $1 AND p.disabled = 0 ORDER BY p.id",
        )
        .bind(t)
        .fetch_all(&mut *c)
        .await?;
        let parents: HashMap<i64, Option<i64>> = sqlx::query_as::<_, (i64, Option<i64>)>("SELECT id, parent_id FROM departments WHERE tenant_id = $1")
            .bind(t)
            .fetch_all(&mut *c)
            .await?
            .into_iter()
            .collect();
        let mut groups: HashMap<i64, Vec<i64>> = HashMap::new();
        for (p, g) in sqlx::query_as::<_, (i64, i64)>("SELECT person_id, group_id FROM group_members WHERE tenant_id = $1").bind(t).fetch_all(&mut *c).await? {
            groups.entry(p).or_default().push(g);
        }
        Ok(people
            .into_iter()
            .map(|row| {
                let mut departments = Vec::new();
                let mut cur = row.department_id;
                while let Some(d) = cur {
                    if departments.contains(&d) || departments.len() > 64 {
                        break;
                    }
                    departments.push(d);
                    cur = parents.get(&d).copied().flatten();
                }
                Targetable {
                    departments,
                    groups: groups.remove(&row.id).unwrap_or_default(),
                    home: AreaCode::parse(&row.home_area).ok(),
                    site_area: row.site_area.as_deref().and_then(|a| AreaCode::parse(a).ok()),
                    row,
                }
            })
            .filter(|p| target.matches(&p.facts()))
            .collect())
    }

    /// Ids of the tenant's enabled people that `target` selects (e.g. a distributor's reach).
    pub async fn people_within(&self, scope: &TenantScope, target: &Target) -> Result<std::collections::HashSet<i64>> {
        Ok(self.targeted(scope, target).await?.into_iter().map(|p| p.row.id).collect())
    }
}

/// The first chunk of an incident's recipients: small, so the first message leaves at once.
pub(crate) const FIRST_FILL: usize = 1_000;
/// The largest later chunk: one transaction each.
const FILL_CHUNK: usize = 20_000;
/// How long the writer owns an unfinished fill; after that the outbox worker finishes it.
const FILL_LEASE_MS: i64 = 60_000;

impl Store {
    /// Starts an incident: picks the recipients, writes the incident, its audit entry (target
    /// and recipient count filled in) and the first [`FIRST_FILL`] recipients with their
    /// queued messages in one transaction, so the first message leaves while the rest are
    /// written in chunks. The chosen people are kept with the incident until every one has
    /// a recipient row and a message: a crash after the first commit leaves a fill that
    /// [`Store::finish_fills`] completes, each person once.
    pub async fn start_incident(&self, scope: &TenantScope, new: &NewIncident, audit: &AuditEvent<'_>, now: Millis) -> Result<(i64, usize)> {
        if new.title.trim().is_empty() {
            return Err(StoreError::Invalid(Problem::TitleMissing));
        }
        if new.target.is_empty() {
            return Err(StoreError::Invalid(Problem::NoTarget));
        }
        let t = scope.tenant_id();
        let chosen: Vec<i64> = if new.target.all && new.within.is_none() {
            // Everyone: no facts to match, so only the ids (a 100,000-person tenant reads one column).
            sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1 AND disabled = 0 ORDER BY id")
                .bind(t)
                .fetch_all(&mut *self.scoped(scope).await?)
                .await?
        } else {
            let people = self.targeted(scope, &new.target).await?;
            people.iter().filter(|p| new.within.as_ref().is_none_or(|w| w.matches(&p.facts()))).map(|p| p.row.id).collect()
        };
        if chosen.is_empty() {
            return Err(StoreError::Invalid(Problem::NobodyMatches));
        }
        self.check_label(scope, new.label_id).await?;
        let survey = serde_json::to_string(&new.survey).map_err(|e| StoreError::Internal(e.to_string()))?;
        let target = serde_json::to_string(&new.target).map_err(|e| StoreError::Internal(e.to_string()))?;
        let first = chosen.len().min(FIRST_FILL);
        let rest = if first < chosen.len() { Some(json_ids(&chosen)?) } else { None };
        let mut tx = self.scoped_tx(scope).await?;
        let incident: i64 = sqlx::query_scalar(
            "INSERT INTO incidents (tenant_id, title, message, survey, target, drill, started_by, started_at, reminder_interval_min, reminder_count, dispatch_id, label_id, \
             fill_ids, filled, fill_lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(t)
        .bind(new.title.trim())
        .bind(new.message.trim())
        .bind(survey)
        .bind(target)
        .bind(new.drill as i64)
        .bind(new.started_by)
        .bind(now)
        .bind(new.reminder_interval_min.max(0))
        .bind(new.reminder_count.clamp(0, 10))
        .bind(new.dispatch_id)
        .bind(new.label_id)
        .bind(rest)
        .bind(first as i64)
        .bind(now + FILL_LEASE_MS)
        .fetch_one(&mut *tx)
        .await?;
        self.fill_chunk(&mut tx, t, incident, &chosen[..first], now).await?;
        if let Some(dispatch) = new.dispatch_id {
            let done =
                sqlx::query("UPDATE dispatches SET status = 'sent', incident_id = $3, recipients = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'held'")
                    .bind(t)
                    .bind(dispatch)
                    .bind(incident)
                    .bind(chosen.len() as i64)
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NoLongerHeld);
            }
        }
        let label: Option<String> = match new.label_id {
            Some(l) => sqlx::query_scalar("SELECT name FROM labels WHERE tenant_id = $1 AND id = $2").bind(t).bind(l).fetch_optional(&mut *tx).await?,
            None => None,
        };
        let label = label.map(|l| format!("label:{l}")).unwrap_or_default();
        let detail = [audit.detail.as_str(), &format!("{} recipients", chosen.len()), if new.drill { "drill" } else { "" }, &label]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        self.record(&mut tx, scope, &AuditEvent { target: format!("incident:{incident}"), detail, ..audit.clone() }, now).await?;
        tx.commit().await?;
        self.outbox_ready.notify_one();
        // The incident has started: a failure from here on is finished by `finish_fills`.
        if let Err(e) = self.fill_rest(scope, incident, &chosen, first, now).await {
            tracing::warn!(incident, error = %e, "writing the incident's recipients stopped; the outbox worker will finish it");
        }
        Ok((incident, chosen.len()))
    }

    /// Recipient rows and queued messages for `ids` (people of the incident), inside `tx`.
    async fn fill_chunk(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, t: i64, incident: i64, ids: &[i64], now: Millis) -> Result<()> {
        let ids = json_ids(ids)?;
        let ids_in = self.ids_in_json("$3");
        let sql = format!(
            "INSERT INTO recipients (tenant_id, incident_id, person_id, name, department_id, site_id, language) \
             SELECT p.tenant_id, $2, p.id, p.name, p.department_id, p.site_id, p.language FROM people p \
             WHERE p.tenant_id = $1 AND p.id IN ({ids_in}) ORDER BY p.id RETURNING id"
        );
        let recipients: Vec<i64> = sqlx::query_scalar(&sql).bind(t).bind(incident).bind(&ids).fetch_all(&mut **tx).await?;
        // The chunk's rows are the incident's rows in its id range (one writer per incident): a
        // primary-key range, which no planner estimate of a growing table can make costly.
        match (recipients.iter().min(), recipients.iter().max()) {
            (Some(first), Some(last)) => crate::outbox::enqueue_incident(tx, t, incident, (*first, *last), now).await,
            _ => Ok(()),
        }
    }

    /// Writes the chosen people from `filled` on, a chunk per transaction, each recording
    /// how far it got; the last one drops the list.
    async fn fill_rest(&self, scope: &TenantScope, incident: i64, chosen: &[i64], mut filled: usize, now: Millis) -> Result<()> {
        let t = scope.tenant_id();
        // The lease moves with the work: `now` plus the time spent so far (a monotonic clock),
        // so a fill of millions that takes longer than one lease is not taken over while alive.
        let started = std::time::Instant::now();
        while filled < chosen.len() {
            // Growing chunks (4,000, then 20,000): on SQLite the worker's first claim waits for
            // the one connection, so the chunk right after the first stays short.
            let end = (filled + (filled * 4).clamp(4_000, FILL_CHUNK)).min(chosen.len());
            let mut tx = self.scoped_tx(scope).await?;
            self.fill_chunk(&mut tx, t, incident, &chosen[filled..end], now).await?;
            sqlx::query(
                "UPDATE incidents SET filled = $3, fill_lease_until = $4, fill_ids = CASE WHEN $3 >= $5 THEN NULL ELSE fill_ids END \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(t)
            .bind(incident)
            .bind(end as i64)
            .bind(now + i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX / 2) + FILL_LEASE_MS)
            .bind(chosen.len() as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.outbox_ready.notify_one();
            filled = end;
        }
        Ok(())
    }

    /// Finishes the fills whose writer stopped (its lease ran out), e.g. after a crash; the
    /// outbox worker calls this with its reminder scan. Returns how many it finished.
    pub async fn finish_fills(&self, now: Millis) -> Result<usize> {
        let stale: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "UPDATE incidents SET fill_lease_until = $1 WHERE fill_ids IS NOT NULL AND fill_lease_until <= $2 RETURNING tenant_id, id, fill_ids, filled",
        )
        .bind(now + FILL_LEASE_MS)
        .bind(now)
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut finished = 0;
        for (tenant, incident, ids, filled) in stale {
            let chosen: Vec<i64> = serde_json::from_str(&ids).map_err(|e| StoreError::Internal(format!("incident {incident}: fill list: {e}")))?;
            self.fill_rest(&TenantScope::new(tenant), incident, &chosen, usize::try_from(filled).unwrap_or(0), now).await?;
            tracing::info!(incident, people = chosen.len(), "finished writing an incident's recipients after its writer stopped");
            finished += 1;
        }
        Ok(finished)
    }

    /// The incidents the caller reaches, newest first (at most 200).
    pub async fn incidents(&self, access: &IncidentAccess) -> Result<Vec<IncidentSummary>> {
        let scope = &access.scope;
        let rows: Vec<IncidentSummaryDb> = sqlx::query_as(&format!(
            "SELECT i.id, i.title, i.drill, i.started_at, i.closed_at, \
               (SELECT COUNT(*) FROM recipients r WHERE r.incident_id = i.id) AS recipients, \
               (SELECT COUNT(*) FROM recipients r WHERE r.incident_id = i.id AND r.answered_at IS NOT NULL) AS answered, \
               l.id AS label_id, l.name AS label_name, l.name_en AS label_en, l.rank AS label_rank, l.export_min AS label_export_min \
             FROM incidents i LEFT JOIN labels l ON l.id = i.label_id AND l.tenant_id = i.tenant_id WHERE i.tenant_id = $1 AND {} \
             ORDER BY i.started_at DESC, i.id DESC LIMIT 200",
            access.sql("i", Reach::Some)
        ))
        .bind(scope.tenant_id())
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| IncidentSummary {
                id: r.id,
                title: r.title,
                drill: r.drill != 0,
                started_at: r.started_at,
                closed_at: r.closed_at,
                recipients: r.recipients,
                answered: r.answered,
                label: match (r.label_id, r.label_name) {
                    (Some(id), Some(name)) => Some(
                        crate::labels::LabelDb {
                            id,
                            name,
                            name_en: r.label_en.unwrap_or_default(),
                            rank: r.label_rank.unwrap_or_default(),
                            export_min: r.label_export_min.unwrap_or_default(),
                        }
                        .into_label(),
                    ),
                    _ => None,
                },
            })
            .collect())
    }

    /// An incident the caller reaches: [`StoreError::OutsideReach`] when it exists but is
    /// beyond a limited distributor's reach.
    pub async fn incident_for(&self, access: &IncidentAccess, id: i64) -> Result<IncidentDetail> {
        let inc = self.incident(&access.scope, id).await?;
        self.check_reach(access, id, Reach::Some).await?;
        Ok(inc)
    }

    async fn check_reach(&self, access: &IncidentAccess, id: i64, reach: Reach) -> Result<()> {
        if !access.limited() {
            return Ok(());
        }
        let within: Option<i64> =
            sqlx::query_scalar(&format!("SELECT i.id FROM incidents i WHERE i.tenant_id = $1 AND i.id = $2 AND {}", access.sql("i", reach)))
                .bind(access.scope.tenant_id())
                .bind(id)
                .fetch_optional(&mut *self.scoped(&access.scope).await?)
                .await?;
        within.map(|_| ()).ok_or(StoreError::OutsideReach)
    }

    pub async fn incident(&self, scope: &TenantScope, id: i64) -> Result<IncidentDetail> {
        let r: IncidentDb = sqlx::query_as(
            "SELECT id, title, message, survey, target, drill, started_at, closed_at, reminder_interval_min, reminder_count, reminders_sent, label_id \
             FROM incidents WHERE tenant_id = $1 AND id = $2",
        )
        .bind(scope.tenant_id())
        .bind(id)
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?
        .ok_or(StoreError::NotFound)?;
        let label = match r.label_id {
            Some(l) => Some(self.label(scope, l).await?),
            None => None,
        };
        Ok(IncidentDetail {
            id: r.id,
            title: r.title,
            message: r.message,
            survey: serde_json::from_str(&r.survey).unwrap_or_else(|_| Survey::default_safety()),
            target: serde_json::from_str(&r.target).unwrap_or_default(),
            drill: r.drill != 0,
            started_at: r.started_at,
            closed_at: r.closed_at,
            reminder_interval_min: r.reminder_interval_min,
            reminder_count: r.reminder_count,
            reminders_sent: r.reminders_sent,
            label,
        })
    }

    /// Every recipient of the incident with their answers; `with_delivery` adds the state of
    /// each one's latest message (one lookup per recipient: for exports; a page asks
    /// [`Store::delivery_states`] for the rows it shows).
    pub async fn dashboard(&self, scope: &TenantScope, incident: i64, with_delivery: bool) -> Result<Vec<DashboardRow>> {
        let delivery = if with_delivery { format!("({DELIVERY_STATE}) AS delivery") } else { "NULL AS delivery".to_string() };
        let rows: Vec<DashboardDb> = sqlx::query_as(&format!(
            "SELECT r.id, r.person_id, r.name, r.department_id, r.site_id, r.answers, r.answered_at, {delivery} \
             FROM recipients r WHERE r.tenant_id = $1 AND r.incident_id = $2 ORDER BY r.id"
        ))
        .bind(scope.tenant_id())
        .bind(incident)
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        let mut groups: HashMap<i64, Vec<i64>> = HashMap::new();
        for (p, g) in sqlx::query_as::<_, (i64, i64)>("SELECT person_id, group_id FROM group_members WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?
        {
            groups.entry(p).or_default().push(g);
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let groups = groups.get(&r.person_id).cloned().unwrap_or_default();
                r.row(groups)
            })
            .collect())
    }

    /// The dashboard's figures for `incident`, counted by SQL; `people`: only these (a limited
    /// distributor's reach). `shown`: how many unanswered recipients to list.
    pub async fn dashboard_counts(&self, scope: &TenantScope, incident: i64, people: Option<&HashSet<i64>>, shown: usize) -> Result<DashboardCounts> {
        let within = match people {
            Some(_) => format!("AND r.person_id IN ({})", self.ids_in_json("$3")),
            None => "AND $3 = ''".to_string(),
        };
        let ids = match people {
            Some(p) => json_ids(&p.iter().copied().collect::<Vec<i64>>())?,
            None => String::new(),
        };
        let answered = "COALESCE(SUM(CASE WHEN r.answered_at IS NULL THEN 0 ELSE 1 END), 0) AS answered";
        let mut c = self.scoped(scope).await?;
        let by_place: Vec<CountDb> = sqlx::query_as(&format!(
            "SELECT CAST(NULL AS BIGINT) AS group_id, r.department_id, r.site_id, r.answers, COUNT(*) AS recipients, {answered} \
             FROM recipients r WHERE r.tenant_id = $1 AND r.incident_id = $2 {within} GROUP BY r.department_id, r.site_id, r.answers"
        ))
        .bind(scope.tenant_id())
        .bind(incident)
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?;
        let by_group: Vec<CountDb> = sqlx::query_as(&format!(
            "SELECT g.group_id, CAST(NULL AS BIGINT) AS department_id, CAST(NULL AS BIGINT) AS site_id, r.answers, COUNT(*) AS recipients, {answered} \
             FROM recipients r JOIN group_members g ON g.tenant_id = r.tenant_id AND g.person_id = r.person_id \
             WHERE r.tenant_id = $1 AND r.incident_id = $2 {within} GROUP BY g.group_id, r.answers"
        ))
        .bind(scope.tenant_id())
        .bind(incident)
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?;
        let unanswered: Vec<DashboardDb> = sqlx::query_as(&format!(
            "SELECT r.id, r.person_id, r.name, r.department_id, r.site_id, r.answers, r.answered_at, NULL AS delivery \
             FROM recipients r WHERE r.tenant_id = $1 AND r.incident_id = $2 {within} AND r.answered_at IS NULL ORDER BY r.id LIMIT $4"
        ))
        .bind(scope.tenant_id())
        .bind(incident)
        .bind(&ids)
        .bind(i64::try_from(shown).unwrap_or(i64::MAX))
        .fetch_all(&mut *c)
        .await?;
        Ok(DashboardCounts {
            by_place: by_place.into_iter().map(CountDb::count).collect(),
            by_group: by_group.into_iter().filter_map(|g| Some((g.group_id?, g.count()))).collect(),
            unanswered: unanswered.into_iter().map(|r| r.row(Vec::new())).collect(),
        })
    }

    /// The state of the latest message of each of `recipients` (pending, sent, failed,
    /// undeliverable, cancelled; absent: none).
    pub async fn delivery_states(&self, scope: &TenantScope, recipients: &[i64]) -> Result<HashMap<i64, String>> {
        let mut out = HashMap::new();
        let mut c = self.scoped(scope).await?;
        for ids in recipients.chunks(500) {
            let sql = format!("SELECT r.id, ({DELIVERY_STATE}) FROM recipients r WHERE r.tenant_id = $1 AND r.id IN ({})", crate::in_list(2, ids.len()));
            let mut q = sqlx::query_as::<_, (i64, Option<String>)>(&sql).bind(scope.tenant_id());
            for id in ids {
                q = q.bind(*id);
            }
            out.extend(q.fetch_all(&mut *c).await?.into_iter().filter_map(|(id, state)| Some((id, state?))));
        }
        Ok(out)
    }

    /// Queues one more message to everyone (of `within`, when given) who has not answered.
    /// Returns how many.
    pub async fn resend_unanswered(
        &self,
        access: &IncidentAccess,
        incident: i64,
        within: Option<&std::collections::HashSet<i64>>,
        audit: &AuditEvent<'_>,
        now: Millis,
    ) -> Result<usize> {
        let scope = &access.scope;
        self.check_reach(access, incident, Reach::Some).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let closed: Option<Option<i64>> = sqlx::query_scalar("SELECT closed_at FROM incidents WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(incident)
            .fetch_optional(&mut *tx)
            .await?;
        match closed {
            None => return Err(StoreError::NotFound),
            Some(Some(_)) => return Err(StoreError::Invalid(Problem::IncidentClosed)),
            Some(None) => {}
        }
        let n: i64 = sqlx::query_scalar("UPDATE incidents SET resends = resends + 1 WHERE tenant_id = $1 AND id = $2 RETURNING resends")
            .bind(scope.tenant_id())
            .bind(incident)
            .fetch_one(&mut *tx)
            .await?;
        let count = queue_unanswered(&mut tx, scope.tenant_id(), incident, OutboxKind::Resend, n, within, now).await?;
        self.record(&mut tx, scope, &AuditEvent { detail: format!("{count} recipients"), ..audit.clone() }, now).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// Closes an incident the caller reaches (the reach is part of the update: a limited
    /// distributor cannot close, and so cancel the mail of, an incident beyond it).
    pub async fn close_incident(&self, access: &IncidentAccess, incident: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let scope = &access.scope;
        self.check_reach(access, incident, Reach::All).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let n = sqlx::query(&format!(
            "UPDATE incidents SET closed_at = $1 WHERE tenant_id = $2 AND id = $3 AND closed_at IS NULL AND {}",
            access.sql("incidents", Reach::All)
        ))
        .bind(now)
        .bind(scope.tenant_id())
        .bind(incident)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        // Messages not yet sent for a closed incident are dropped.
        sqlx::query("UPDATE outbox SET status = 'cancelled' WHERE tenant_id = $1 AND incident_id = $2 AND status = 'pending'")
            .bind(scope.tenant_id())
            .bind(incident)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues due automatic reminders across tenants (a system job). Returns messages queued.
    pub async fn queue_due_reminders(&self, now: Millis) -> Result<usize> {
        let due: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, id, reminders_sent FROM incidents WHERE closed_at IS NULL AND reminder_interval_min > 0 \
             AND reminders_sent < reminder_count AND started_at + (reminders_sent + 1) * reminder_interval_min * 60000 <= $1",
        )
        .bind(now)
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut total = 0;
        for (tenant, incident, sent) in due {
            let mut tx = self.system_tx().await?;
            // Only one node wins the increment; the others see 0 rows and skip.
            let won = sqlx::query("UPDATE incidents SET reminders_sent = reminders_sent + 1 WHERE id = $1 AND reminders_sent = $2")
                .bind(incident)
                .bind(sent)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if won == 1 {
                total += queue_unanswered(&mut tx, tenant, incident, OutboxKind::Reminder, sent + 1, None, now).await?;
            }
            tx.commit().await?;
        }
        Ok(total)
    }
}

#[allow(clippy::too_many_arguments)]
async fn queue_unanswered(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: i64,
    incident: i64,
    kind: OutboxKind,
    round: i64,
    within: Option<&std::collections::HashSet<i64>>,
    now: Millis,
) -> Result<usize> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, person_id FROM recipients WHERE tenant_id = $1 AND incident_id = $2 AND answered_at IS NULL ORDER BY id")
            .bind(tenant)
            .bind(incident)
            .fetch_all(&mut **tx)
            .await?;
    let ids: Vec<i64> = rows.into_iter().filter(|(_, p)| within.is_none_or(|w| w.contains(p))).map(|(id, _)| id).collect();
    for chunk in ids.chunks(BATCH) {
        crate::outbox::enqueue_survey(tx, tenant, incident, chunk, kind, round, now).await?;
    }
    Ok(ids.len())
}
