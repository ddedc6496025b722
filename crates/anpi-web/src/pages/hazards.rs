//! JMA hazards as received, what this tenant's rules decided about each (with reasons), the
//! rules themselves, and the push endpoint for telegram relays.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::{WebError, WebResult};
use crate::i18n::{problem, Tr};
use crate::session::Console;
use crate::AppState;
use anpi_core::clock::format_local;
use anpi_core::survey::Survey;
use anpi_core::{Lang, Permission};
use anpi_intake::rules::{severity_label, threshold_label};
use anpi_intake::{Accepted, IntakeError, Reason, Rule, RuleKind, Source, StoredArea};
use anpi_jma::Severity;
use anpi_store::audit::AuditEvent;
use anpi_store::{DispatchRow, FeedStatus, RuleRow, TelegramRow};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use std::collections::HashMap;

/// A telegram as listed, with this tenant's decisions about it.
pub struct HazardLine {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub severity: String,
    pub title: String,
    pub headline: String,
    /// 訓練 / 試験 / 訂正 / 取消 / 不正 badges.
    pub badges: Vec<String>,
    pub decisions: Vec<DecisionLine>,
}

pub struct DecisionLine {
    pub rule: String,
    pub status: String,
    pub status_code: String,
    pub reason: String,
    pub incident: Option<i64>,
    pub recipients: i64,
    pub due: String,
}

fn kind_label(kind: &str, t: Tr) -> String {
    match RuleKind::parse(kind) {
        Some(k) => k.label(t.lang()).to_string(),
        None if kind.is_empty() => t.p("読めない電文", "unreadable").to_string(),
        None => t.p("その他", "other").to_string(),
    }
}

fn sev_label(s: &str, lang: Lang) -> String {
    match s.parse::<Severity>() {
        Ok(Severity::Info) => String::new(),
        Ok(s) => severity_label(&s, lang),
        Err(_) => s.to_string(),
    }
}

fn badges(t: &TelegramRow, tr: Tr) -> Vec<String> {
    let mut b = Vec::new();
    match t.status.as_str() {
        "drill" => b.push(tr.p("訓練", "drill")),
        "test" => b.push(tr.p("試験", "test")),
        "normal" | "" => {}
        _ => b.push(tr.p("通常以外", "non-live")),
    }
    match t.info_type.as_str() {
        "correction" => b.push(tr.p("訂正", "correction")),
        "cancellation" => b.push(tr.p("取消", "cancellation")),
        "delay" => b.push(tr.p("遅延", "delayed")),
        _ => {}
    }
    if t.source == "drill" {
        b.push(tr.p("訓練再生", "drill replay"));
    }
    if t.error.is_some() {
        b.push(tr.p("不正な電文", "rejected"));
    }
    b.into_iter().map(String::from).collect()
}

fn status_label(status: &str, t: Tr) -> &'static str {
    match status {
        "held" => t.p("保留中", "held"),
        "sent" => t.p("配信", "sent"),
        "suppressed" => t.p("抑止", "suppressed"),
        "drill" => t.p("訓練・試験（配信なし）", "drill/test (not sent)"),
        "not_matched" => t.p("基準未満", "below threshold"),
        "stale" => t.p("古い情報（配信なし）", "too old (not sent)"),
        "no_people" => t.p("対象者なし", "nobody to send to"),
        "cancelled" => t.p("中止", "withdrawn"),
        "withdrawn" => t.p("配信済み・取消", "sent, then cancelled"),
        "notice" => t.p("通知", "notice"),
        "failed" => t.p("失敗", "failed"),
        _ => t.p("不明", "unknown"),
    }
}

fn decision_line(d: &DispatchRow, t: Tr, zone: &str) -> DecisionLine {
    DecisionLine {
        rule: d.rule_name.clone(),
        status: status_label(&d.status, t).to_string(),
        status_code: d.status.clone(),
        reason: Reason::text(&d.reason, t.lang()).to_string(),
        incident: d.incident_id,
        recipients: d.recipients,
        due: if d.status == "held" { format_local(d.due_at, zone) } else { String::new() },
    }
}

fn line(t: &TelegramRow, decisions: &HashMap<i64, Vec<DispatchRow>>, tr: Tr, zone: &str) -> HazardLine {
    HazardLine {
        id: t.id,
        at: format_local(t.received_at, zone),
        kind: kind_label(&t.kind, tr),
        severity: sev_label(&t.severity, tr.lang()),
        title: if t.title.is_empty() { t.type_code.clone() } else { t.title.clone() },
        headline: t.headline.chars().take(120).collect(),
        badges: badges(t, tr),
        decisions: decisions.get(&t.id).map(|ds| ds.iter().map(|d| decision_line(d, tr, zone)).collect()).unwrap_or_default(),
    }
}

pub struct FeedLine {
    pub url: String,
    pub ok: bool,
    pub last_ok: String,
    pub error: String,
    pub failures: i64,
}

fn feed_lines(feeds: Vec<FeedStatus>, zone: &str) -> Vec<FeedLine> {
    feeds
        .into_iter()
        .map(|f| FeedLine {
            ok: f.failures == 0,
            last_ok: f.last_ok_at.map(|t| format_local(t, zone)).unwrap_or_else(|| "—".into()),
            error: f.last_error.clone(),
            failures: f.failures,
            url: f.url,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "hazards.html")]
struct ListPage {
    l: Layout,
    lines: Vec<HazardLine>,
    feeds: Vec<FeedLine>,
    kinds: Vec<(String, String)>,
    kind: String,
    can_rules: bool,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    kind: String,
}

pub async fn list(State(st): State<AppState>, c: Console, Query(q): Query<ListQuery>) -> WebResult<Response> {
    c.require(Permission::ViewHazards)?;
    let telegrams = st.store.telegrams(&q.kind, 200).await?;
    let ids: Vec<i64> = telegrams.iter().map(|t| t.id).collect();
    let mut decisions: HashMap<i64, Vec<DispatchRow>> = HashMap::new();
    for d in st.store.dispatches(&c.scope, &ids).await? {
        decisions.entry(d.telegram_id).or_default().push(d);
    }
    let mut kinds: Vec<(String, String)> = RuleKind::ALL.iter().map(|k| (k.code().to_string(), k.label(c.t.lang()).to_string())).collect();
    kinds.push(("other".into(), c.t.p("その他", "other").into()));
    render(&ListPage {
        l: Layout::console(&c, c.t.p("気象庁の情報", "JMA information")),
        lines: telegrams.iter().map(|t| line(t, &decisions, c.t, &c.zone)).collect(),
        feeds: feed_lines(st.store.feeds().await?, &c.zone),
        kinds,
        kind: q.kind,
        can_rules: c.can(Permission::ManageRules),
    })
}

pub struct AreaLine {
    pub code: String,
    pub name: String,
    pub severity: String,
}

#[derive(Template)]
#[template(path = "hazard.html")]
struct DetailPage {
    l: Layout,
    h: HazardLine,
    t: TelegramRow,
    reported: String,
    areas: Vec<AreaLine>,
    history: Vec<HazardLine>,
}

pub async fn detail(State(st): State<AppState>, c: Console, Path(id): Path<i64>) -> WebResult<Response> {
    c.require(Permission::ViewHazards)?;
    let t = st.store.telegram(id).await?;
    let mut decisions: HashMap<i64, Vec<DispatchRow>> = HashMap::new();
    let history_rows: Vec<TelegramRow> = st.store.event_telegrams(&t.kind, &t.event_id).await?.into_iter().filter(|h| h.id != id).collect();
    let mut ids: Vec<i64> = history_rows.iter().map(|h| h.id).collect();
    ids.push(id);
    for d in st.store.dispatches(&c.scope, &ids).await? {
        decisions.entry(d.telegram_id).or_default().push(d);
    }
    let areas: Vec<StoredArea> = serde_json::from_str(&t.areas).unwrap_or_default();
    render(&DetailPage {
        l: Layout::console(&c, c.t.p("気象庁の情報", "JMA information")),
        h: line(&t, &decisions, c.t, &c.zone),
        reported: t.reported_at.map(|r| format_local(r, &c.zone)).unwrap_or_default(),
        areas: areas.into_iter().map(|a| AreaLine { severity: sev_label(&a.severity, c.t.lang()), code: a.code, name: a.name }).collect(),
        history: history_rows.iter().map(|h| line(h, &decisions, c.t, &c.zone)).collect(),
        t,
    })
}

/// The telegram as received, for checking what JMA said.
pub async fn xml(State(st): State<AppState>, c: Console, Path(id): Path<i64>) -> WebResult<Response> {
    c.require(Permission::ViewHazards)?;
    let xml = st.store.telegram_xml(id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], xml).into_response())
}

// ---- rules ----

pub struct RuleLine {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub what: String,
    pub areas: String,
    pub basis: String,
    pub hold_secs: i64,
    pub suppress_min: i64,
    pub label: String,
}

fn basis_label(code: &str, t: Tr) -> &'static str {
    match code {
        "home" => t.p("自宅", "home"),
        "work" => t.p("勤務地", "work site"),
        _ => t.p("自宅・勤務地", "home or work site"),
    }
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    l: Layout,
    csrf: String,
    rules: Vec<RuleLine>,
}

pub async fn rules(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageRules)?;
    let labels: HashMap<i64, String> = super::incidents::label_options(&st, &c).await?.into_iter().collect();
    let rules = st
        .store
        .rules(&c.scope)
        .await?
        .into_iter()
        .filter_map(|r| Rule::from_row(&r).ok())
        .map(|r| RuleLine {
            id: r.id,
            enabled: r.enabled,
            what: format!("{}: {}", r.kind.label(c.t.lang()), threshold_label(&r.threshold, c.t.lang())),
            areas: if r.areas.is_empty() {
                c.t.p("社員のいる全地域", "wherever our people are").into()
            } else {
                r.areas.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ")
            },
            basis: basis_label(r.basis.code(), c.t).into(),
            hold_secs: r.hold_secs,
            suppress_min: r.suppress_min,
            label: r.label_id.and_then(|l| labels.get(&l).cloned()).unwrap_or_default(),
            name: r.name,
        })
        .collect();
    render(&RulesPage { l: Layout::console(&c, c.t.p("自動配信ルール", "Dispatch rules")).with_flash(flash.message(c.t)), csrf: c.csrf.clone(), rules })
}

/// One choice of the trigger select: `kind|threshold`.
pub struct TriggerOption {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "rule.html")]
struct RulePage {
    l: Layout,
    csrf: String,
    id: i64,
    form: RuleForm,
    triggers: Vec<(String, Vec<TriggerOption>)>,
    labels: Vec<(String, String)>,
    error: Option<String>,
}

/// The rule form, as posted and as shown again.
#[derive(Deserialize, Default, Clone)]
pub struct RuleForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub enabled: Option<String>,
    #[serde(default)]
    pub trigger: String,
    #[serde(default)]
    pub areas: String,
    #[serde(default)]
    pub basis: String,
    #[serde(default)]
    pub survey: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub hold_secs: String,
    #[serde(default)]
    pub suppress_min: String,
    #[serde(default)]
    pub reminder_interval: String,
    #[serde(default)]
    pub reminder_count: String,
    /// The label's id, empty for none.
    #[serde(default)]
    pub label: String,
}

impl RuleForm {
    fn from_rule(r: &Rule) -> RuleForm {
        RuleForm {
            csrf: String::new(),
            name: r.name.clone(),
            enabled: r.enabled.then(|| "1".into()),
            trigger: format!("{}|{}", r.kind.code(), r.threshold),
            areas: r.areas.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "),
            basis: r.basis.code().into(),
            survey: r.survey.to_editor_text(),
            message: r.message.clone(),
            hold_secs: r.hold_secs.to_string(),
            suppress_min: r.suppress_min.to_string(),
            reminder_interval: r.reminder_interval_min.to_string(),
            reminder_count: r.reminder_count.to_string(),
            label: r.label_id.map(|l| l.to_string()).unwrap_or_default(),
        }
    }

    fn blank() -> RuleForm {
        RuleForm {
            enabled: Some("1".into()),
            trigger: "earthquake|intensity:5-".into(),
            basis: "both".into(),
            survey: Survey::default_safety().to_editor_text(),
            hold_secs: "0".into(),
            suppress_min: "60".into(),
            reminder_interval: "0".into(),
            reminder_count: "0".into(),
            ..Default::default()
        }
    }

    fn to_rule(&self, id: i64) -> Result<Rule, String> {
        let num = |v: &str, what: &str| -> Result<i64, String> {
            match v.trim() {
                "" => Ok(0),
                v => v.parse::<i64>().map_err(|_| format!("{what}: 数字で入力してください (enter a number)")),
            }
        };
        let (kind, threshold) = self.trigger.split_once('|').unwrap_or(("", ""));
        let survey = Survey::parse_editor_text(&self.survey)?;
        let label_id = match self.label.trim() {
            "" => None,
            v => Some(v.parse::<i64>().map_err(|_| "bad label".to_string())?),
        };
        Rule::from_row(&RuleRow {
            id,
            name: self.name.clone(),
            enabled: self.enabled.is_some() as i64,
            kind: kind.into(),
            threshold: threshold.into(),
            areas: self.areas.clone(),
            basis: self.basis.clone(),
            survey: serde_json::to_string(&survey).map_err(|e| e.to_string())?,
            message: self.message.clone(),
            hold_secs: num(&self.hold_secs, "保留時間 (hold)")?,
            suppress_min: num(&self.suppress_min, "重複抑止 (suppression)")?,
            reminder_interval_min: num(&self.reminder_interval, "リマインド間隔 (reminder interval)")?,
            reminder_count: num(&self.reminder_count, "リマインド回数 (reminders)")?,
            label_id,
        })
    }
}

fn triggers(t: Tr) -> Vec<(String, Vec<TriggerOption>)> {
    RuleKind::ALL
        .iter()
        .map(|k| {
            let options = k
                .thresholds()
                .iter()
                .map(|s| TriggerOption { value: format!("{}|{}", k.code(), s), label: format!("{} — {}", k.label(t.lang()), threshold_label(s, t.lang())) })
                .collect();
            (k.label(t.lang()).to_string(), options)
        })
        .collect()
}

async fn rule_page(st: &AppState, c: &Console, id: i64, form: RuleForm, error: Option<String>) -> WebResult<Response> {
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let labels = super::incidents::label_options(st, c).await?.into_iter().map(|(id, name)| (id.to_string(), name)).collect();
    let page =
        RulePage {
            l: Layout::console(c, c.t.p("自動配信ルール", "Dispatch rule")), csrf: c.csrf.clone(), id, form, triggers: triggers(c.t), labels, error
        };
    Ok((status, render(&page)?).into_response())
}

pub async fn new_rule(State(st): State<AppState>, c: Console) -> WebResult<Response> {
    c.require(Permission::ManageRules)?;
    rule_page(&st, &c, 0, RuleForm::blank(), None).await
}

pub async fn edit_rule(State(st): State<AppState>, c: Console, Path(id): Path<i64>) -> WebResult<Response> {
    c.require(Permission::ManageRules)?;
    let rule = Rule::from_row(&st.store.rule(&c.scope, id).await?).map_err(WebError::BadRequest)?;
    rule_page(&st, &c, id, RuleForm::from_rule(&rule), None).await
}

async fn save(st: &AppState, c: &Console, id: i64, form: RuleForm) -> WebResult<Response> {
    c.require(Permission::ManageRules)?;
    c.check_csrf(&form.csrf)?;
    match form.to_rule(id) {
        Ok(rule) => {
            let label = rule.label_id.map(|l| format!(" label:{l}")).unwrap_or_default();
            let detail = format!("{} {} {}{label}", rule.name, rule.kind.code(), rule.threshold);
            let e = AuditEvent { detail, ..c.event(if id == 0 { "rule_created" } else { "rule_updated" }, "") };
            match st.store.save_rule(&c.scope, &rule.to_row(), &e, st.clock.now()).await {
                Ok(_) => {}
                Err(anpi_store::StoreError::Invalid(p)) => return rule_page(st, c, id, form, Some(problem(c.t, &p))).await,
                Err(e) => return Err(e.into()),
            }
            Ok(Redirect::to("/rules?done=saved").into_response())
        }
        Err(e) => rule_page(st, c, id, form, Some(e)).await,
    }
}

pub async fn create_rule(State(st): State<AppState>, c: Console, Form(form): Form<RuleForm>) -> WebResult<Response> {
    save(&st, &c, 0, form).await
}

pub async fn update_rule(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(form): Form<RuleForm>) -> WebResult<Response> {
    if id == 0 {
        return Err(WebError::NotFound);
    }
    st.store.rule(&c.scope, id).await?;
    save(&st, &c, id, form).await
}

pub async fn delete_rule(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageRules)?;
    c.check_csrf(&f.csrf)?;
    st.store.delete_rule(&c.scope, id, &c.event("rule_deleted", format!("rule:{id}")), st.clock.now()).await?;
    Ok(Redirect::to("/rules?done=deleted").into_response())
}

// ---- push endpoint ----

/// `POST /api/jma/telegrams` with `Authorization: Bearer <secret>` and the telegram XML as the
/// body. 201 for a new telegram, 200 for a repeat, 422 with the reason for a rejected one.
pub async fn push(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = st.jma_push_secret.as_ref() else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !secret.matches(given) {
        tracing::warn!("JMA push refused: bad or missing secret");
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "unauthorized").into_response();
    }
    match st.intake.accept(&body, Source::Push).await {
        Ok(Accepted::New { telegram_id, decisions }) => {
            (StatusCode::CREATED, Json(serde_json::json!({"telegram": telegram_id, "status": "accepted", "decisions": decisions}))).into_response()
        }
        Ok(Accepted::Duplicate { telegram_id }) => (StatusCode::OK, Json(serde_json::json!({"telegram": telegram_id, "status": "duplicate"}))).into_response(),
        Err(IntakeError::Rejected(reason)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"status": "rejected", "error": reason}))).into_response()
        }
        Err(IntakeError::Store(e)) => {
            tracing::error!(error = %e, "JMA push failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "error", "error": "temporarily unavailable, retry"}))).into_response()
        }
    }
}
