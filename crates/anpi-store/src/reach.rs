//! A distributor's reach over incidents, applied in SQL. An account limited to some
//! departments (with their sub-departments) and contact groups:
//! - lists, views, exports and re-sends only incidents that reach at least one of its people
//!   (and within them only its people: the dashboard rows and re-sends are filtered);
//! - closes only incidents whose every recipient is within reach, since closing cancels the
//!   mail of everyone (a department's distributor cannot stop a company-wide incident).
//!
//! Admins and unlimited distributors reach every incident. Store methods that read or change
//! incidents for a person take an [`IncidentAccess`], so the reach cannot be forgotten.

use crate::{Result, Store, TenantScope};
use anpi_core::target::Target;
use std::collections::{HashMap, HashSet};

/// How much of an incident's recipients must be the caller's people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// At least one (to see it, follow up, re-send to them).
    Some,
    /// Every one (to close it).
    All,
}

/// The tenant and the caller's reach over its incidents.
#[derive(Debug, Clone)]
pub struct IncidentAccess {
    pub scope: TenantScope,
    /// `None`: every incident. Else the departments (expanded to sub-departments) and groups.
    within: Option<(Vec<i64>, Vec<i64>)>,
}

fn id_list(ids: &[i64]) -> String {
    match ids.is_empty() {
        true => "NULL".into(),
        false => ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
    }
}

impl IncidentAccess {
    /// Every incident of the tenant: for the system (rules, reminders) and tests. Request code
    /// gets its access from [`Store::incident_access`] (crates/anpi-web/clippy.toml forbids this).
    pub fn everything(scope: &TenantScope) -> IncidentAccess {
        IncidentAccess { scope: *scope, within: None }
    }

    /// Whether the access is limited (a distributor with a reach).
    pub fn limited(&self) -> bool {
        self.within.is_some()
    }

    /// SQL: true when incident `incident` (an alias in the query) reaches one of the
    /// caller's people (`Reach::Some`) or only the caller's people (`Reach::All`). Ids are
    /// integers read from the database and written as literals (no bind-parameter limit).
    pub(crate) fn sql(&self, incident: &str, reach: Reach) -> String {
        let Some((departments, groups)) = &self.within else { return "1 = 1".into() };
        let t = self.scope.tenant_id();
        let mine = format!(
            "(COALESCE(rr.person_id, -1) IN (SELECT p.id FROM people p WHERE p.tenant_id = {t} AND p.department_id IN ({})) \
               OR COALESCE(rr.person_id, -1) IN (SELECT g.person_id FROM group_members g WHERE g.tenant_id = {t} AND g.group_id IN ({})))",
            id_list(departments),
            id_list(groups)
        );
        let recipients = format!("SELECT 1 FROM recipients rr WHERE rr.tenant_id = {t} AND rr.incident_id = {incident}.id");
        match reach {
            Reach::Some => format!("EXISTS ({recipients} AND {mine})"),
            Reach::All => format!("NOT EXISTS ({recipients} AND NOT {mine})"),
        }
    }
}

impl Store {
    /// The caller's access to the tenant's incidents: `reach` is the account's (`None`: all).
    pub async fn incident_access(&self, scope: &TenantScope, reach: Option<&Target>) -> Result<IncidentAccess> {
        let Some(reach) = reach else { return Ok(IncidentAccess { scope: *scope, within: None }) };
        let parents: HashMap<i64, Option<i64>> = sqlx::query_as::<_, (i64, Option<i64>)>("SELECT id, parent_id FROM departments WHERE tenant_id = $1")
            .bind(scope.tenant_id())
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?
            .into_iter()
            .collect();
        // A department is within reach when it or one of its ancestors is listed.
        let listed: HashSet<i64> = reach.departments.iter().copied().collect();
        let departments = parents
            .keys()
            .copied()
            .filter(|d| {
                let mut cur = Some(*d);
                for _ in 0..64 {
                    match cur {
                        Some(c) if listed.contains(&c) => return true,
                        Some(c) => cur = parents.get(&c).copied().flatten(),
                        None => return false,
                    }
                }
                false
            })
            .collect();
        Ok(IncidentAccess { scope: *scope, within: Some((departments, reach.groups.clone())) })
    }
}
