//! The tenant directory: people, departments (a tree), positions, sites, contact groups.

use crate::audit::AuditEvent;
use crate::keys::{write_email_hashes, KeyRing, PREFIX};
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::directory::PersonInput;
use anpi_core::{AreaCode, Lang, Millis};
use sqlx::any::Any;
use sqlx::Transaction;
use std::collections::{HashMap, HashSet};

/// Rows per transaction of a directory import.
pub const IMPORT_BATCH: usize = 250;

#[derive(Debug, Clone)]
pub struct Department {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    /// `本社/総務部`
    pub path: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub area_code: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Group {
    pub id: i64,
    pub name: String,
}

/// A person as listed in the console.
#[derive(Debug, Clone)]
pub struct PersonRow {
    pub id: i64,
    pub disabled: bool,
    pub department_id: Option<i64>,
    pub site_id: Option<i64>,
    pub group_ids: Vec<i64>,
    pub input: PersonInput,
    /// The DSN status when one of the person's addresses bounced for good (else empty).
    pub undeliverable: String,
}

#[derive(sqlx::FromRow)]
struct PersonDb {
    id: i64,
    employee_no: String,
    name: String,
    furigana: String,
    emails: String,
    phone: String,
    home_area: String,
    department_id: Option<i64>,
    position: Option<String>,
    site_id: Option<i64>,
    language: String,
    disabled: i64,
    undeliverable_status: String,
}

const PERSON_COLUMNS: &str = "p.id, p.employee_no, p.name, p.furigana, p.emails, p.phone, p.home_area, p.department_id, \
     pos.name AS position, p.site_id, p.language, p.disabled, p.undeliverable_status";

/// Builds `id → path` for a department list.
pub(crate) fn department_paths(rows: &[(i64, Option<i64>, String)]) -> HashMap<i64, String> {
    let by_id: HashMap<i64, (Option<i64>, &str)> = rows.iter().map(|(id, p, n)| (*id, (*p, n.as_str()))).collect();
    let mut out = HashMap::new();
    for (id, _, _) in rows {
        let mut parts = Vec::new();
        let mut cur = Some(*id);
        let mut guard = 0;
        while let Some(c) = cur {
            let Some((parent, name)) = by_id.get(&c) else { break };
            parts.push(*name);
            cur = *parent;
            guard += 1;
            if guard > 64 {
                break;
            }
        }
        parts.reverse();
        out.insert(*id, parts.join("/"));
    }
    out
}

impl Store {
    pub async fn departments(&self, scope: &TenantScope) -> Result<Vec<Department>> {
        let rows: Vec<(i64, Option<i64>, String)> = sqlx::query_as("SELECT id, parent_id, name FROM departments WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?;
        let paths = department_paths(&rows);
        let mut out: Vec<Department> =
            rows.into_iter().map(|(id, parent_id, name)| Department { id, parent_id, name, path: paths.get(&id).cloned().unwrap_or_default() }).collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub async fn sites(&self, scope: &TenantScope) -> Result<Vec<Site>> {
        Ok(sqlx::query_as("SELECT id, name, area_code FROM sites WHERE tenant_id = $1 ORDER BY name")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?)
    }

    pub async fn groups(&self, scope: &TenantScope) -> Result<Vec<Group>> {
        Ok(sqlx::query_as("SELECT id, name FROM contact_groups WHERE tenant_id = $1 ORDER BY name")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?)
    }

    pub async fn create_site(&self, scope: &TenantScope, name: &str, area: &AreaCode) -> Result<i64> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid(Problem::SiteNameMissing));
        }
        let mut tx = self.scoped_tx(scope).await?;
        if lookup(&mut tx, "sites", scope, name).await?.is_some() {
            return Err(StoreError::Conflict(Problem::SiteExists));
        }
        let id = sqlx::query_scalar("INSERT INTO sites (tenant_id, name, area_code) VALUES ($1, $2, $3) RETURNING id")
            .bind(scope.tenant_id())
            .bind(name)
            .bind(area.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn create_department(&self, scope: &TenantScope, path: &str) -> Result<i64> {
        let mut tx = self.scoped_tx(scope).await?;
        let id = ensure_department(&mut tx, scope, path).await?.ok_or_else(|| StoreError::Invalid(Problem::DepartmentNameMissing))?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn create_group(&self, scope: &TenantScope, name: &str) -> Result<i64> {
        let mut tx = self.scoped_tx(scope).await?;
        let id = ensure_named(&mut tx, "contact_groups", scope, name).await?.ok_or_else(|| StoreError::Invalid(Problem::GroupNameMissing))?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn people(&self, scope: &TenantScope) -> Result<Vec<PersonRow>> {
        let rows: Vec<PersonDb> = sqlx::query_as(&format!(
            "SELECT {PERSON_COLUMNS} FROM people p LEFT JOIN positions pos ON pos.id = p.position_id WHERE p.tenant_id = $1 ORDER BY p.employee_no"
        ))
        .bind(scope.tenant_id())
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        self.people_rows(scope, rows).await
    }

    pub async fn person(&self, scope: &TenantScope, id: i64) -> Result<PersonRow> {
        let row: Option<PersonDb> = sqlx::query_as(&format!(
            "SELECT {PERSON_COLUMNS} FROM people p LEFT JOIN positions pos ON pos.id = p.position_id WHERE p.tenant_id = $1 AND p.id = $2"
        ))
        .bind(scope.tenant_id())
        .bind(id)
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        self.people_rows(scope, vec![row]).await?.pop().ok_or(StoreError::NotFound)
    }

    async fn people_rows(&self, scope: &TenantScope, rows: Vec<PersonDb>) -> Result<Vec<PersonRow>> {
        let depts: HashMap<i64, String> = self.departments(scope).await?.into_iter().map(|d| (d.id, d.path)).collect();
        let sites: HashMap<i64, String> = self.sites(scope).await?.into_iter().map(|s| (s.id, s.name)).collect();
        let groups: HashMap<i64, String> = self.groups(scope).await?.into_iter().map(|g| (g.id, g.name)).collect();
        let members: Vec<(i64, i64)> = sqlx::query_as("SELECT person_id, group_id FROM group_members WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?;
        let mut by_person: HashMap<i64, Vec<i64>> = HashMap::new();
        for (p, g) in members {
            by_person.entry(p).or_default().push(g);
        }
        // Contact fields are encrypted (keys.rs); the keys are loaded only when needed.
        let ring = match rows.iter().any(|r| !r.emails.is_empty() || !r.phone.is_empty()) {
            true => Some(self.keyring(scope.tenant_id()).await?),
            false => None,
        };
        // A value that does not open (planted or copied in the database) is logged and shown
        // as missing: the person stays listed, the rest of the directory loads.
        let open = |column: &str, id: i64, v: String| -> Result<String> {
            match &ring {
                Some(k) => Ok(k.open_row(column, &id.to_string(), &v).unwrap_or_default()),
                None => Ok(v),
            }
        };
        rows.into_iter()
            .map(|r| {
                let group_ids = by_person.remove(&r.id).unwrap_or_default();
                let emails = open("people.emails", r.id, r.emails)?;
                let phone = open("people.phone", r.id, r.phone)?;
                Ok(PersonRow {
                    id: r.id,
                    disabled: r.disabled != 0,
                    undeliverable: r.undeliverable_status.clone(),
                    department_id: r.department_id,
                    site_id: r.site_id,
                    input: PersonInput {
                        employee_no: r.employee_no,
                        name: r.name,
                        furigana: r.furigana,
                        emails: emails.split('\n').filter(|e| !e.is_empty()).map(String::from).collect(),
                        phone,
                        department: r.department_id.and_then(|d| depts.get(&d).cloned()).unwrap_or_default(),
                        position: r.position.unwrap_or_default(),
                        site: r.site_id.and_then(|s| sites.get(&s).cloned()).unwrap_or_default(),
                        home_area: AreaCode::parse(&r.home_area).ok(),
                        language: Lang::parse(&r.language).unwrap_or_default(),
                        groups: group_ids.iter().filter_map(|g| groups.get(g).cloned()).collect(),
                    },
                    group_ids,
                })
            })
            .collect()
    }

    /// The person with this email (case-insensitive), found by its keyed hash.
    pub async fn person_by_email(&self, scope: &TenantScope, email: &str) -> Result<Option<PersonRow>> {
        if email.trim().is_empty() {
            return Ok(None);
        }
        let ring = self.keyring(scope.tenant_id()).await?;
        let hashes: Vec<String> = ring.email_hashes(email).into_iter().map(|(_, h)| h).collect();
        let sql = format!(
            "SELECT person_id FROM person_email_hashes WHERE tenant_id = $1 AND hash IN ({}) ORDER BY person_id LIMIT 1",
            crate::in_list(2, hashes.len())
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(scope.tenant_id());
        for h in &hashes {
            q = q.bind(h);
        }
        let found = q.fetch_optional(&mut *self.scoped(scope).await?).await?;
        match found {
            Some(id) => Ok(Some(self.person(scope, id).await?)),
            None => Ok(None),
        }
    }

    /// The tenant's keys when any of these people has contact data to encrypt.
    async fn ring_for(&self, scope: &TenantScope, people: &[PersonInput]) -> Result<Option<KeyRing>> {
        match people.iter().any(|p| !p.emails.is_empty() || !p.phone.is_empty()) {
            true => Ok(Some(self.keyring(scope.tenant_id()).await?)),
            false => Ok(None),
        }
    }

    /// Adds a person, or updates the one with the same employee number when `id` is `None`
    /// and `upsert` is set. With `id`, updates that person.
    pub async fn save_person(&self, scope: &TenantScope, id: Option<i64>, p: &PersonInput, audit: &AuditEvent<'_>, now: Millis) -> Result<i64> {
        let ring = self.ring_for(scope, std::slice::from_ref(p)).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let id = save_person_tx(&mut tx, ring.as_ref(), scope, id, p, false, now).await?;
        self.record(&mut tx, scope, &audit.on(format!("person:{id}")), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Imports rows all-or-nothing: upsert by employee number.
    /// Imports validated rows (new employee numbers are added, known ones updated). Every row
    /// is checked against the directory first (unknown sites), so a bad file changes nothing;
    /// then rows are written in transactions of [`IMPORT_BATCH`], each with its audit entry, so
    /// a 50,000-row file never holds the database (SQLite's single writer) for long. Should the
    /// database fail half-way, the error says how many rows are in; importing again is safe.
    pub async fn import_people(&self, scope: &TenantScope, rows: &[PersonInput], audit: &AuditEvent<'_>, now: Millis) -> Result<usize> {
        let sites: HashSet<String> = self.sites(scope).await?.into_iter().map(|s| s.name).collect();
        if let Some(p) = rows.iter().find(|p| !p.site.trim().is_empty() && !sites.contains(p.site.trim())) {
            return Err(StoreError::Invalid(Problem::UnknownSite(p.site.trim().to_string())));
        }
        let ring = self.ring_for(scope, rows).await?;
        let mut done = 0;
        for batch in rows.chunks(IMPORT_BATCH) {
            let written = async {
                let mut tx = self.scoped_tx(scope).await?;
                for p in batch {
                    save_person_tx(&mut tx, ring.as_ref(), scope, None, p, true, now).await?;
                }
                let detail = format!("rows {}-{} of {}", done + 1, done + batch.len(), rows.len());
                self.record(&mut tx, scope, &AuditEvent { detail, ..audit.clone() }, now).await?;
                tx.commit().await?;
                Ok::<(), StoreError>(())
            }
            .await;
            match written {
                Ok(()) => done += batch.len(),
                Err(e) if done == 0 => return Err(e),
                Err(e) => {
                    tracing::error!(tenant = scope.tenant_id(), done, total = rows.len(), error = %e, "directory import stopped half-way");
                    return Err(StoreError::Partial { done, total: rows.len() });
                }
            }
            // Let other requests have the connection between batches.
            tokio::task::yield_now().await;
        }
        Ok(done)
    }

    pub async fn set_person_disabled(&self, scope: &TenantScope, id: i64, disabled: bool, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let set = sqlx::query("UPDATE people SET disabled = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(disabled as i64)
            .bind(now)
            .bind(scope.tenant_id())
            .bind(id);
        self.change_one(scope, set, audit, now).await
    }

    /// Lifts a bounce mark: the person's bounced address is mailed again (the admin knows the
    /// mailbox works now). Harmless when there is no mark.
    pub async fn clear_undeliverable(&self, scope: &TenantScope, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let clear =
            sqlx::query("UPDATE people SET undeliverable_address = '', undeliverable_status = '', undeliverable_at = 0 WHERE tenant_id = $1 AND id = $2")
                .bind(scope.tenant_id())
                .bind(id);
        self.change_one(scope, clear, audit, now).await
    }

    /// Deletes a person from the directory. Past incidents keep their recipient snapshot.
    pub async fn delete_person(&self, scope: &TenantScope, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND person_id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM person_email_hashes WHERE tenant_id = $1 AND person_id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM people WHERE tenant_id = $1 AND id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn lookup(tx: &mut Transaction<'static, Any>, table: &str, scope: &TenantScope, name: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE tenant_id = $1 AND name = $2"))
        .bind(scope.tenant_id())
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Finds or creates a position or group by name.
async fn ensure_named(tx: &mut Transaction<'static, Any>, table: &str, scope: &TenantScope, name: &str) -> Result<Option<i64>> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if let Some(id) = lookup(tx, table, scope, name).await? {
        return Ok(Some(id));
    }
    Ok(Some(
        sqlx::query_scalar(&format!("INSERT INTO {table} (tenant_id, name) VALUES ($1, $2) RETURNING id"))
            .bind(scope.tenant_id())
            .bind(name)
            .fetch_one(&mut **tx)
            .await?,
    ))
}

/// Finds or creates each level of a department path.
async fn ensure_department(tx: &mut Transaction<'static, Any>, scope: &TenantScope, path: &str) -> Result<Option<i64>> {
    let mut parent: Option<i64> = None;
    for part in path.split('/').map(str::trim).filter(|p| !p.is_empty()) {
        let found: Option<i64> = match parent {
            Some(pid) => sqlx::query_scalar("SELECT id FROM departments WHERE parent_id = $1 AND tenant_id = $2 AND name = $3").bind(pid),
            None => sqlx::query_scalar("SELECT id FROM departments WHERE tenant_id = $1 AND name = $2 AND parent_id IS NULL"),
        }
        .bind(scope.tenant_id())
        .bind(part)
        .fetch_optional(&mut **tx)
        .await?;
        parent = Some(match found {
            Some(id) => id,
            None => {
                sqlx::query_scalar("INSERT INTO departments (tenant_id, parent_id, name) VALUES ($1, $2, $3) RETURNING id")
                    .bind(scope.tenant_id())
                    .bind(parent)
                    .bind(part)
                    .fetch_one(&mut **tx)
                    .await?
            }
        });
    }
    Ok(parent)
}

async fn save_person_tx(
    tx: &mut Transaction<'static, Any>,
    ring: Option<&KeyRing>,
    scope: &TenantScope,
    id: Option<i64>,
    p: &PersonInput,
    upsert: bool,
    now: Millis,
) -> Result<i64> {
    let t = scope.tenant_id();
    let department = ensure_department(tx, scope, &p.department).await?;
    let position = ensure_named(tx, "positions", scope, &p.position).await?;
    let site = match p.site.trim() {
        "" => None,
        name => Some(lookup(tx, "sites", scope, name).await?.ok_or_else(|| StoreError::Invalid(Problem::UnknownSite(name.to_string())))?),
    };
    let same_no: Option<i64> =
        sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1 AND employee_no = $2").bind(t).bind(&p.employee_no).fetch_optional(&mut **tx).await?;
    let existing = match (id, same_no) {
        (Some(id), Some(other)) if other != id => return Err(StoreError::Conflict(Problem::EmployeeNoInUse(p.employee_no.clone()))),
        (Some(id), _) => Some(id),
        (None, Some(other)) if upsert => Some(other),
        (None, Some(_)) => return Err(StoreError::Conflict(Problem::EmployeeNoInUse(p.employee_no.clone()))),
        (None, None) => None,
    };
    // Encrypted under the tenant's active key and bound to the person's row (keys.rs); `ring`
    // is there whenever a value is not empty. A new person gets its row first, then its values.
    let seal = |column: &str, row: i64, v: &str| -> Result<String> {
        match ring {
            Some(k) => k.seal_row(column, &row.to_string(), v),
            None if v.is_empty() => Ok(String::new()),
            None => Err(StoreError::Crypto("no tenant key".into())),
        }
    };
    let plain_emails = p.emails.join("\n");
    let (emails, phone) = match existing {
        Some(pid) => (seal("people.emails", pid, &plain_emails)?, seal("people.phone", pid, &p.phone)?),
        None => (String::new(), String::new()),
    };
    let home = p.home_area.as_ref().map(|a| a.as_str()).unwrap_or("");
    let person_id = match existing {
        Some(pid) => {
            let n = sqlx::query(
                "UPDATE people SET employee_no = $1, name = $2, furigana = $3, emails = $4, phone = $5, home_area = $6, department_id = $7, \
                 position_id = $8, site_id = $9, language = $10, updated_at = $11 WHERE tenant_id = $12 AND id = $13",
            )
            .bind(&p.employee_no)
            .bind(&p.name)
            .bind(&p.furigana)
            .bind(&emails)
            .bind(&phone)
            .bind(home)
            .bind(department)
            .bind(position)
            .bind(site)
            .bind(p.language.code())
            .bind(now)
            .bind(t)
            .bind(pid)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            pid
        }
        None => sqlx::query_scalar(
            "INSERT INTO people (tenant_id, employee_no, name, furigana, emails, phone, home_area, department_id, position_id, site_id, language, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        )
        .bind(t)
        .bind(&p.employee_no)
        .bind(&p.name)
        .bind(&p.furigana)
        .bind(&emails)
        .bind(&phone)
        .bind(home)
        .bind(department)
        .bind(position)
        .bind(site)
        .bind(p.language.code())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?,
    };
    if existing.is_none() && !(plain_emails.is_empty() && p.phone.is_empty()) {
        sqlx::query("UPDATE people SET emails = $1, phone = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(seal("people.emails", person_id, &plain_emails)?)
            .bind(seal("people.phone", person_id, &p.phone)?)
            .bind(t)
            .bind(person_id)
            .execute(&mut **tx)
            .await?;
    }
    // A bounced address stays marked while it is still one of the person's addresses.
    if existing.is_some() {
        let bounced: String = sqlx::query_scalar("SELECT undeliverable_address FROM people WHERE tenant_id = $1 AND id = $2")
            .bind(t)
            .bind(person_id)
            .fetch_one(&mut **tx)
            .await?;
        let kept = !bounced.is_empty()
            && ring
                .and_then(|k| k.open_row("people.undeliverable_address", &person_id.to_string(), &bounced).ok())
                .is_some_and(|a| p.emails.iter().any(|e| e.eq_ignore_ascii_case(&a)));
        if !bounced.is_empty() && !kept {
            sqlx::query("UPDATE people SET undeliverable_address = '', undeliverable_status = '', undeliverable_at = 0 WHERE tenant_id = $1 AND id = $2")
                .bind(t)
                .bind(person_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    match ring {
        Some(k) => write_email_hashes(tx, k, t, person_id, &p.emails).await?,
        None => {
            sqlx::query("DELETE FROM person_email_hashes WHERE tenant_id = $1 AND person_id = $2").bind(t).bind(person_id).execute(&mut **tx).await?;
        }
    }
    sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND person_id = $2").bind(t).bind(person_id).execute(&mut **tx).await?;
    for g in &p.groups {
        if let Some(gid) = ensure_named(tx, "contact_groups", scope, g).await? {
            sqlx::query("INSERT INTO group_members (tenant_id, group_id, person_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(t)
                .bind(gid)
                .bind(person_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(person_id)
}

impl Store {
    /// Keeps an uploaded CSV (decoded) between preview and confirmation.
    pub async fn stage_import(&self, scope: &TenantScope, account: i64, content: &str, now: Millis) -> Result<i64> {
        // Old staged uploads are not kept beyond a day.
        sqlx::query("DELETE FROM csv_imports WHERE tenant_id = $1 AND created_at < $2")
            .bind(scope.tenant_id())
            .bind(now - 86_400_000)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        // The upload holds contact data: encrypted like the people it describes.
        let content = match content.is_empty() {
            true => String::new(),
            false => self.keyring(scope.tenant_id()).await?.seal("csv_imports.content", content)?,
        };
        Ok(sqlx::query_scalar("INSERT INTO csv_imports (tenant_id, account_id, content, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(scope.tenant_id())
            .bind(account)
            .bind(&content)
            .bind(now)
            .fetch_one(&mut *self.scoped(scope).await?)
            .await?)
    }

    /// Takes a staged upload (it can be confirmed once).
    pub async fn take_staged_import(&self, scope: &TenantScope, id: i64) -> Result<String> {
        let content: String = sqlx::query_scalar("SELECT content FROM csv_imports WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(id)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?
            .ok_or(StoreError::NotFound)?;
        sqlx::query("DELETE FROM csv_imports WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(id)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        match self.master_keys() {
            Ok(_) => self.keyring(scope.tenant_id()).await?.open("csv_imports.content", &content),
            Err(_) if !content.starts_with(PREFIX) => Ok(content),
            Err(e) => Err(e),
        }
    }
}
