//! The tenant's records for its administrators: sign-in history, the audit log of changes and
//! security events, the usage log (who viewed what), each account's last sign-in; filters,
//! paging, CSV and JSON export, retention per log kind, and the state of the hash chains.

use super::{render, Layout};
use crate::error::{WebError, WebResult};
use crate::session::Console;
use crate::AppState;
use anpi_core::clock::{format_local_seconds, local_day_start};
use anpi_core::{Label, Permission};
use anpi_store::audit::{AuditEntry, LogFilter, LogKind};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// Entries per page.
const PAGE: i64 = 100;
/// Entries per export at most (narrow the filter for more).
const EXPORT_MAX: i64 = 100_000;

/// The view and filters, from the query string (the same for the page and the exports).
#[derive(Deserialize, Default, Clone)]
pub struct LogQuery {
    /// `signin` (default), `audit`, `usage` or `accounts`.
    #[serde(default)]
    view: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    /// Days `YYYY-MM-DD` in the tenant's zone; `to` is included.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The paging cursor: entries older than this id.
    #[serde(default)]
    before: String,
}

impl LogQuery {
    fn view(&self) -> &str {
        match self.view.as_str() {
            "audit" | "usage" | "accounts" => &self.view,
            _ => "signin",
        }
    }

    fn filter(&self, zone: &str) -> Result<LogFilter, WebError> {
        let day = |d: &str, what: &str| -> Result<Option<i64>, WebError> {
            match d.trim() {
                "" => Ok(None),
                d => local_day_start(d, zone)
                    .map(Some)
                    .ok_or_else(|| WebError::BadRequest(format!("日付は YYYY-MM-DD で入力してください ({what}: use YYYY-MM-DD)"))),
            }
        };
        Ok(LogFilter {
            kind: LogKind::parse(self.view()),
            actor: self.actor.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            from: day(&self.from, "from")?,
            to: day(&self.to, "to")?.map(|t| t + 86_400_000),
            before_id: self.before.trim().parse().ok(),
        })
    }

    /// The query string of these filters, with another cursor.
    fn link(&self, before: Option<i64>) -> String {
        let before = before.map(|b| b.to_string()).unwrap_or_default();
        let pairs = [
            ("view", self.view()),
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
            ("before", &before),
        ];
        let set: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        serde_urlencoded::to_string(set).unwrap_or_default()
    }
}

/// An entry with its time in the tenant's zone.
pub struct Line {
    pub at: String,
    pub e: AuditEntry,
}

fn line(e: AuditEntry, zone: &str) -> Line {
    Line { at: format_local_seconds(e.at, zone), e }
}

pub struct LastSeen {
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub at: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct LogPage {
    l: Layout,
    csrf: String,
    q: LogQuery,
    view: String,
    lines: Vec<Line>,
    accounts: Vec<LastSeen>,
    next: Option<String>,
    export: String,
    /// When the chains were last verified (the oldest of the tenant's chains), or "".
    checked: String,
    problems: Vec<String>,
    retention: Vec<(&'static str, &'static str, &'static str, i64)>,
}

pub async fn page(State(st): State<AppState>, c: Console, Query(q): Query<LogQuery>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    let view = q.view().to_string();
    let (lines, accounts, next) = if view == "accounts" {
        (Vec::new(), last_seen(&st, &c).await?, None)
    } else {
        let entries = st.store.audit_entries(&c.scope, &q.filter(&c.zone)?, PAGE).await?;
        let next = match entries.last() {
            Some(e) if entries.len() as i64 == PAGE => Some(format!("/audit?{}", q.link(Some(e.id)))),
            _ => None,
        };
        (entries.into_iter().map(|e| line(e, &c.zone)).collect(), Vec::new(), next)
    };
    // The background verification's results: the page itself verifies nothing.
    let status = st.store.audit_status(&c.scope).await?;
    let checked = status.iter().map(|s| s.checked_at).min().filter(|t| *t > 0).map(|t| format_local_seconds(t, &c.zone)).unwrap_or_default();
    let retention = st
        .store
        .audit_retention(&c.scope)
        .await?
        .into_iter()
        .map(|(k, days)| {
            let (ja, en) = kind_label(k);
            (k.code(), ja, en, days)
        })
        .collect();
    render(&LogPage {
        l: Layout::console(&c, c.t.p("ログ", "Logs")),
        csrf: c.csrf.clone(),
        export: q.link(None),
        q,
        view,
        lines,
        accounts,
        next,
        checked,
        problems: status.into_iter().flat_map(|s| s.problems.into_iter().map(move |p| format!("{}: {p}", s.kind.code()))).collect(),
        retention,
    })
}

fn kind_label(k: LogKind) -> (&'static str, &'static str) {
    match k {
        LogKind::Audit => ("操作・設定変更", "Changes and security events"),
        LogKind::SignIn => ("ログイン履歴", "Sign-in history"),
        LogKind::Usage => ("閲覧履歴", "Usage (views)"),
    }
}

/// Every account with its last successful sign-in (still within retention).
async fn last_seen(st: &AppState, c: &Console) -> WebResult<Vec<LastSeen>> {
    let last = st.store.last_sign_ins(&c.scope).await?;
    Ok(st
        .store
        .accounts(&c.scope)
        .await?
        .into_iter()
        .map(|a| {
            let seen = last.iter().find(|l| l.actor == format!("account:{}", a.id));
            LastSeen {
                name: a.name,
                email: a.email,
                role: a.role.as_str(),
                at: seen.map(|l| format_local_seconds(l.at, &c.zone)).unwrap_or_default(),
                ip: seen.map(|l| l.ip.clone()).unwrap_or_default(),
            }
        })
        .collect())
}

/// The filtered entries for export (newest first) and the tenant's default label, which the
/// export carries and which may restrict who exports; the export is recorded first.
async fn exported(st: &AppState, c: &Console, q: &LogQuery, format: &str) -> WebResult<(Vec<AuditEntry>, Option<Label>)> {
    c.require(Permission::ManageSecurity)?;
    let label = st.store.default_label(&c.scope).await?;
    super::export::authorise(st, c, "audit_exported", q.view(), label.as_ref()).await?;
    let filter = q.filter(&c.zone)?;
    // Recorded first, so the export lists itself.
    super::export::record(st, c, "audit_exported", q.view(), label.as_ref(), format!("{format} {}", q.link(None))).await?;
    let entries = st.store.audit_entries(&c.scope, &filter, EXPORT_MAX).await?;
    Ok((entries, label))
}

/// The filtered log as CSV (UTF-8 with BOM, for Excel).
pub async fn csv(State(st): State<AppState>, c: Console, Query(q): Query<LogQuery>) -> WebResult<Response> {
    let (entries, label) = exported(&st, &c, &q, "csv").await?;
    let mut w = anpi_core::spreadsheet::Sheet::new([
        "seq",
        "日時 (time)",
        "実行者 (actor)",
        "操作 (action)",
        "対象 (target)",
        "結果 (outcome)",
        "接続元 (ip)",
        "詳細 (detail)",
        "種別 (kind)",
    ]);
    for e in entries {
        let at = format_local_seconds(e.at, &c.zone);
        w.row([e.seq.to_string(), at, e.actor, e.action, e.target, e.outcome, e.ip, e.detail, e.kind]);
    }
    Ok(super::export::csv_download("audit-log", label.as_ref(), w.finish()))
}

/// The filtered log as JSON: an array of entries, times in UTC milliseconds and local text.
pub async fn json(State(st): State<AppState>, c: Console, Query(q): Query<LogQuery>) -> WebResult<Response> {
    let (entries, label) = exported(&st, &c, &q, "json").await?;
    let rows: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|e| {
            let local = format_local_seconds(e.at, &c.zone);
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["local_time"] = local.into();
            v
        })
        .collect();
    let body = serde_json::to_vec_pretty(&rows).map_err(|_| WebError::BadRequest("export failed".into()))?;
    Ok(super::export::download("audit-log", "json", "application/json", label.as_ref(), body))
}

#[derive(Deserialize)]
pub struct RetentionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    audit: String,
    #[serde(default)]
    signin: String,
    #[serde(default)]
    usage: String,
}

/// Sets the retention of each log kind (days, 30–3650).
pub async fn save_retention(State(st): State<AppState>, c: Console, Form(f): Form<RetentionForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&f.csrf)?;
    let current = st.store.audit_retention(&c.scope).await?;
    for (kind, text) in [(LogKind::Audit, &f.audit), (LogKind::SignIn, &f.signin), (LogKind::Usage, &f.usage)] {
        let days: i64 = text.trim().parse().map_err(|_| WebError::BadRequest("保存期間は日数で入力してください (retention: a number of days)".into()))?;
        if current.iter().any(|(k, d)| *k == kind && *d == days) {
            continue;
        }
        st.store.set_audit_retention(&c.scope, kind, days, &c.event("retention_changed", ""), st.clock.now()).await?;
    }
    Ok(Redirect::to("/audit?view=audit").into_response())
}
