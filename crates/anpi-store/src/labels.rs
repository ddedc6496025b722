//! Classification labels per tenant: list, add, change, delete when unused, and the tenant's
//! default label for exports that belong to no incident.

use crate::audit::AuditEvent;
use crate::{Problem, Result, Store, StoreError, TenantScope};
use anpi_core::label::{self, Label};
use anpi_core::{Millis, Role};

/// A label as entered: names, rank, export restriction.
#[derive(Debug, Clone)]
pub struct LabelInput {
    pub name: String,
    pub name_en: String,
    pub rank: i64,
    pub export_min: Role,
}

/// A label with how often it is in use (incidents, rules, the tenant default).
#[derive(Debug, Clone)]
pub struct LabelUse {
    pub label: Label,
    pub incidents: i64,
    pub rules: i64,
    pub default: bool,
}

impl LabelUse {
    pub fn in_use(&self) -> bool {
        self.incidents > 0 || self.rules > 0 || self.default
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LabelDb {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) name_en: String,
    pub(crate) rank: i64,
    pub(crate) export_min: String,
}

impl LabelDb {
    pub(crate) fn into_label(self) -> Label {
        // An unknown stored restriction is read as the strictest.
        let export_min = Role::parse(&self.export_min).unwrap_or(Role::Admin);
        Label { id: self.id, name: self.name, name_en: self.name_en, rank: self.rank, export_min }
    }
}

const COLUMNS: &str = "id, name, name_en, rank, export_min";

fn checked(input: &LabelInput) -> Result<(String, String, i64)> {
    let (name, name_en) = label::check_names(&input.name, &input.name_en).map_err(|e| StoreError::Invalid(Problem::Other(e)))?;
    if !(0..=1000).contains(&input.rank) {
        return Err(StoreError::Invalid(Problem::LabelRank));
    }
    Ok((name, name_en, input.rank))
}

impl Store {
    /// The tenant's labels, least sensitive first, with their use.
    pub async fn labels(&self, scope: &TenantScope) -> Result<Vec<LabelUse>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            label: LabelDb,
            incidents: i64,
            rules: i64,
            is_default: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT l.id, l.name, l.name_en, l.rank, l.export_min, \
               (SELECT COUNT(*) FROM incidents i WHERE i.tenant_id = l.tenant_id AND i.label_id = l.id) AS incidents, \
               (SELECT COUNT(*) FROM rules r WHERE r.tenant_id = l.tenant_id AND r.label_id = l.id) AS rules, \
               (SELECT COUNT(*) FROM tenants t WHERE t.id = l.tenant_id AND t.default_label_id = l.id) AS is_default \
             FROM labels l WHERE l.tenant_id = $1 ORDER BY l.rank, l.id",
        )
        .bind(scope.tenant_id())
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        Ok(rows.into_iter().map(|r| LabelUse { label: r.label.into_label(), incidents: r.incidents, rules: r.rules, default: r.is_default > 0 }).collect())
    }

    pub async fn label(&self, scope: &TenantScope, id: i64) -> Result<Label> {
        let sql = format!("SELECT {COLUMNS} FROM labels WHERE tenant_id = $1 AND id = $2");
        let row: Option<LabelDb> = sqlx::query_as(&sql).bind(scope.tenant_id()).bind(id).fetch_optional(&mut *self.scoped(scope).await?).await?;
        row.map(LabelDb::into_label).ok_or(StoreError::NotFound)
    }

    /// Refuses a label id that is not one of the tenant's (for incidents and rules).
    pub(crate) async fn check_label(&self, scope: &TenantScope, id: Option<i64>) -> Result<()> {
        match id {
            None => Ok(()),
            Some(id) => match self.label(scope, id).await {
                Err(StoreError::NotFound) => Err(StoreError::Invalid(Problem::UnknownLabel)),
                other => other.map(|_| ()),
            },
        }
    }

    pub async fn create_label(&self, scope: &TenantScope, input: &LabelInput, audit: &AuditEvent<'_>, now: Millis) -> Result<i64> {
        let (name, name_en, rank) = checked(input)?;
        self.refuse_taken_name(scope, &name, 0).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let id = insert_label(&mut tx, scope, &name, &name_en, rank, input.export_min, now).await?;
        self.record(&mut tx, scope, &audit.on(format!("label:{id}")), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Renames a label or changes its rank or export restriction.
    pub async fn update_label(&self, scope: &TenantScope, id: i64, input: &LabelInput, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        self.label(scope, id).await?;
        let (name, name_en, rank) = checked(input)?;
        self.refuse_taken_name(scope, &name, id).await?;
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("UPDATE labels SET name = $1, name_en = $2, rank = $3, export_min = $4, updated_at = $5 WHERE tenant_id = $6 AND id = $7")
            .bind(name)
            .bind(name_en)
            .bind(rank)
            .bind(input.export_min.as_str())
            .bind(now)
            .bind(scope.tenant_id())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn refuse_taken_name(&self, scope: &TenantScope, name: &str, except: i64) -> Result<()> {
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM labels WHERE tenant_id = $1 AND name = $2 AND id <> $3")
            .bind(scope.tenant_id())
            .bind(name)
            .bind(except)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        match taken {
            Some(_) => Err(StoreError::Conflict(Problem::LabelExists(name.to_string()))),
            None => Ok(()),
        }
    }

    /// Deletes a label that nothing uses; a label on an incident or a rule, or the tenant's
    /// default, is refused with `Conflict` (the foreign keys refuse it too).
    pub async fn delete_label(&self, scope: &TenantScope, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let used = self.labels(scope).await?.into_iter().find(|l| l.label.id == id).ok_or(StoreError::NotFound)?;
        if used.in_use() {
            return Err(StoreError::Conflict(Problem::LabelInUse {
                name: used.label.name,
                incidents: used.incidents,
                rules: used.rules,
                default: used.default,
            }));
        }
        let mut tx = self.scoped_tx(scope).await?;
        let done = sqlx::query("DELETE FROM labels WHERE tenant_id = $1 AND id = $2").bind(scope.tenant_id()).bind(id).execute(&mut *tx).await;
        match done {
            Ok(_) => {
                self.record(&mut tx, scope, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }
            // Put to use between the check and the delete.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(StoreError::Conflict(Problem::LabelTaken)),
            Err(e) => Err(e.into()),
        }
    }

    /// The label of exports that belong to no incident (directory, audit log), if any.
    pub async fn default_label(&self, scope: &TenantScope) -> Result<Option<Label>> {
        let sql = "SELECT l.id, l.name, l.name_en, l.rank, l.export_min FROM labels l JOIN tenants t ON t.default_label_id = l.id AND t.id = l.tenant_id WHERE t.id = $1";
        let row: Option<LabelDb> = sqlx::query_as(sql).bind(scope.tenant_id()).fetch_optional(&mut *self.scoped(scope).await?).await?;
        Ok(row.map(LabelDb::into_label))
    }

    pub async fn set_default_label(&self, scope: &TenantScope, id: Option<i64>, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        self.check_label(scope, id).await?;
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("UPDATE tenants SET default_label_id = $1 WHERE id = $2").bind(id).bind(scope.tenant_id()).execute(&mut *tx).await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new tenant's labels (anpi-core `label::STARTING`) and default, in one transaction
    /// (part of creating the tenant, which is audited; not audited one by one).
    pub(crate) async fn seed_labels(&self, scope: &TenantScope, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        for (name, name_en, rank, export_min) in label::STARTING {
            let id = insert_label(&mut tx, scope, name, name_en, rank, export_min, now).await?;
            if name == label::STARTING_DEFAULT {
                sqlx::query("UPDATE tenants SET default_label_id = $1 WHERE id = $2").bind(id).bind(scope.tenant_id()).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_label(tx: &mut sqlx::AnyConnection, scope: &TenantScope, name: &str, name_en: &str, rank: i64, export_min: Role, now: Millis) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO labels (tenant_id, name, name_en, rank, export_min, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(scope.tenant_id())
    .bind(name)
    .bind(name_en)
    .bind(rank)
    .bind(export_min.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::tests::stores;
    use crate::{NewIncident, RuleRow};
    use anpi_core::directory::PersonFields;
    use anpi_core::survey::Survey;
    use anpi_core::target::Target;

    fn input(name: &str, en: &str, rank: i64, min: Role) -> LabelInput {
        LabelInput { name: name.into(), name_en: en.into(), rank, export_min: min }
    }

    #[tokio::test]
    async fn labels_on_every_engine() {
        for (s, _guard) in stores().await {
            let now = 1_700_000_000_000;
            let a = s.create_tenant("lab-a", "A", now).await.unwrap();
            let b = s.create_tenant("lab-b", "B", now).await.unwrap();
            // New tenants start with 公開 / 社外秘 / 機密, 社外秘 the default for exports.
            let start = s.labels(&a).await.unwrap();
            let names: Vec<_> = start.iter().map(|l| (l.label.name.as_str(), l.label.export_min)).collect();
            assert_eq!(names, [("公開", Role::Member), ("社外秘", Role::Distributor), ("機密", Role::Admin)]);
            let default = s.default_label(&a).await.unwrap().expect("a default label");
            assert_eq!(default.name, "社外秘");
            assert!(start[1].default && start[1].in_use() && !start[0].in_use());
            let kimitsu = start[2].label.id;

            // Add, rename, refuse duplicates and bad names; other tenants see nothing of it.
            let id = s.create_label(&a, &input("部外秘", "", 5, Role::Admin), &AuditEvent::system("test"), now).await.unwrap();
            assert!(
                matches!(s.create_label(&a, &input("部外秘", "x", 1, Role::Admin), &AuditEvent::system("test"), now).await, Err(StoreError::Conflict(Problem::LabelExists(n))) if n == "部外秘")
            );
            assert!(matches!(
                s.create_label(&a, &input("a/b", "", 1, Role::Admin), &AuditEvent::system("test"), now).await,
                Err(StoreError::Invalid(Problem::Other(_)))
            ));
            assert!(matches!(
                s.create_label(&a, &input("ok", "", 5000, Role::Admin), &AuditEvent::system("test"), now).await,
                Err(StoreError::Invalid(Problem::LabelRank))
            ));
            s.create_label(&b, &input("部外秘", "", 1, Role::Member), &AuditEvent::system("test"), now).await.expect("names are per tenant");
            s.update_label(&a, id, &input("関係者外秘", "Need to know", 3, Role::Distributor), &AuditEvent::system("test"), now).await.unwrap();
            let l = s.label(&a, id).await.unwrap();
            assert_eq!((l.name.as_str(), l.name_en.as_str(), l.rank, l.export_min), ("関係者外秘", "Need to know", 3, Role::Distributor));
            assert!(
                matches!(
                    s.update_label(&a, id, &input("機密", "", 3, Role::Admin), &AuditEvent::system("test"), now).await,
                    Err(StoreError::Conflict(Problem::LabelExists(_)))
                ),
                "rename onto another"
            );
            assert!(matches!(s.label(&b, id).await, Err(StoreError::NotFound)));
            assert!(matches!(s.update_label(&b, id, &input("x", "", 1, Role::Member), &AuditEvent::system("test"), now).await, Err(StoreError::NotFound)));
            assert!(matches!(s.delete_label(&b, id, &AuditEvent::system("test"), 0).await, Err(StoreError::NotFound)));
            assert!(s.set_default_label(&b, Some(id), &AuditEvent::system("test"), 0).await.is_err(), "another tenant's label");
            assert_eq!(s.labels(&a).await.unwrap().iter().map(|l| l.label.rank).collect::<Vec<_>>(), [0, 1, 2, 3], "ordered by rank");

            // An incident carries its label into the list, the detail and the mail.
            let person =
                PersonFields { employee_no: "1".into(), name: "一郎".into(), emails: "one@a.example".into(), ..Default::default() }.validate().unwrap();
            s.save_person(&a, None, &person, &AuditEvent::system("test"), now).await.unwrap();
            let new = NewIncident {
                title: "区分つき".into(),
                message: String::new(),
                survey: Survey::default_safety(),
                target: Target { all: true, ..Default::default() },
                drill: false,
                reminder_interval_min: 0,
                reminder_count: 0,
                started_by: None,
                within: None,
                dispatch_id: None,
                label_id: Some(id),
            };
            let foreign = s.labels(&b).await.unwrap()[0].label.id;
            assert!(matches!(
                s.start_incident(&a, &NewIncident { label_id: Some(foreign), ..new.clone() }, &AuditEvent::system("test"), now).await,
                Err(StoreError::Invalid(Problem::UnknownLabel))
            ));
            let (inc, _) = s.start_incident(&a, &new, &AuditEvent::system("test"), now).await.unwrap();
            assert_eq!(s.incident(&a, inc).await.unwrap().label.map(|l| l.name), Some("関係者外秘".into()));
            assert_eq!(s.incidents(&crate::IncidentAccess::everything(&a)).await.unwrap()[0].label.as_ref().map(|l| l.id), Some(id));
            let mail = s.claim_outbox(&now, 10, 60_000).await.unwrap().remove(0).survey.unwrap();
            assert_eq!((mail.label.as_deref(), mail.label_en.as_deref()), (Some("関係者外秘"), Some("Need to know")));
            let (plain, _) =
                s.start_incident(&a, &NewIncident { label_id: None, title: "区分なし".into(), ..new.clone() }, &AuditEvent::system("test"), now).await.unwrap();
            assert!(s.incident(&a, plain).await.unwrap().label.is_none());
            assert!(s.claim_outbox(&now, 10, 60_000).await.unwrap().remove(0).survey.unwrap().label.is_none());

            // In use (incident, rule, default): not deleted; unused: deleted.
            assert!(matches!(
                s.delete_label(&a, id, &AuditEvent::system("test"), 0).await,
                Err(StoreError::Conflict(Problem::LabelInUse { incidents: 1, .. }))
            ));
            assert!(s.label(&a, id).await.is_ok());
            let rule = RuleRow { name: "r".into(), kind: "earthquake".into(), label_id: Some(kimitsu), ..Default::default() };
            assert!(
                s.save_rule(&a, &RuleRow { label_id: Some(foreign), ..rule.clone() }, &AuditEvent::system("test"), now).await.is_err(),
                "another tenant's label on a rule"
            );
            let rid = s.save_rule(&a, &rule, &AuditEvent::system("test"), now).await.unwrap();
            assert_eq!(s.rule(&a, rid).await.unwrap().label_id, Some(kimitsu));
            assert!(
                matches!(s.delete_label(&a, kimitsu, &AuditEvent::system("test"), 0).await, Err(StoreError::Conflict(Problem::LabelInUse { rules: 1, .. }))),
                "used by a rule"
            );
            s.save_rule(&a, &RuleRow { id: rid, label_id: None, ..rule }, &AuditEvent::system("test"), now).await.unwrap();
            assert!(
                matches!(
                    s.delete_label(&a, default.id, &AuditEvent::system("test"), 0).await,
                    Err(StoreError::Conflict(Problem::LabelInUse { default: true, .. }))
                ),
                "the default"
            );
            s.set_default_label(&a, None, &AuditEvent::system("test"), 0).await.unwrap();
            assert!(s.default_label(&a).await.unwrap().is_none());
            s.delete_label(&a, default.id, &AuditEvent::system("test"), 0).await.unwrap();
            s.delete_label(&a, kimitsu, &AuditEvent::system("test"), 0).await.unwrap();
            assert_eq!(s.labels(&a).await.unwrap().len(), 2);
            assert_eq!(s.labels(&b).await.unwrap().len(), 4, "B untouched");
        }
    }
}
