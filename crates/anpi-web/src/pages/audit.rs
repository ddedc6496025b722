//! The tenant's records for its administrators: sign-in history and the usage log (every
//! security-relevant action), with the state of the log's hash chain and a CSV export.

use super::{render, Layout};
use crate::error::WebResult;
use crate::session::Console;
use crate::AppState;
use anpi_core::clock::format_local;
use anpi_core::Permission;
use anpi_store::audit::AuditEntry;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Actions shown as sign-in history.
const SIGN_IN: &[&str] = &["sign_in", "sign_in_failed", "sign_in_mfa_failed", "sign_out", "account_locked", "client_cert_denied"];

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    view: String,
}

pub struct Line {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: String,
}

fn line(e: AuditEntry) -> Line {
    Line { at: format_local(e.at, "Asia/Tokyo"), actor: e.actor, action: e.action, target: e.target, outcome: e.outcome, ip: e.ip, detail: e.detail }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct LogPage {
    l: Layout,
    sign_ins: bool,
    lines: Vec<Line>,
    entries: i64,
    problems: Vec<String>,
}

pub async fn page(State(st): State<AppState>, c: Console, Query(q): Query<LogQuery>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    let sign_ins = q.view != "all";
    let filter = if sign_ins { SIGN_IN } else { &[] };
    let lines = st.store.audit_entries(&c.scope, filter, 500).await?.into_iter().map(line).collect();
    let report = st.store.verify_tenant_audit(&c.scope).await?;
    render(&LogPage {
        l: Layout::console(&c, c.t.p("ログ", "Logs")),
        sign_ins,
        lines,
        entries: report.entries,
        problems: report.problems,
    })
}

/// The whole retained log as CSV (UTF-8 with BOM, for Excel).
pub async fn csv(State(st): State<AppState>, c: Console) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    let mut w = csv_writer();
    for e in st.store.audit_entries(&c.scope, &[], i64::MAX).await? {
        let at = format_local(e.at, "Asia/Tokyo");
        let _ = w.write_record([e.seq.to_string().as_str(), &at, &e.actor, &e.action, &e.target, &e.outcome, &e.ip, &e.detail]);
    }
    let body = w.into_inner().unwrap_or_default();
    let mut out = "\u{FEFF}".as_bytes().to_vec();
    out.extend_from_slice(&body);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"audit-log.csv\"")], out).into_response())
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["seq", "日時 (time)", "実行者 (actor)", "操作 (action)", "対象 (target)", "結果 (outcome)", "接続元 (ip)", "詳細 (detail)"]);
    w
}
