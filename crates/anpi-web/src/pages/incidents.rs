//! Incidents: the list, starting one, the live dashboard, re-send, close, CSV export.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::WebResult;
use crate::i18n::{problem, Tr};
use crate::session::Console;
use crate::AppState;
use anpi_core::clock::format_local;
use anpi_core::spreadsheet::Sheet;
use anpi_core::survey::Survey;
use anpi_core::target::Target;
use anpi_core::{AreaCode, Permission};
use anpi_store::{AnswerCount, DashboardCounts, DashboardRow, IncidentDetail, IncidentSummary, NewIncident};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures_util::stream::{Stream, StreamExt};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Template)]
#[template(path = "incidents.html")]
struct ListPage {
    l: Layout,
    can_start: bool,
    member: bool,
    incidents: Vec<(IncidentSummary, String)>,
}

pub async fn list(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    let l = Layout::console(&c, c.t.p("配信一覧", "Incidents")).with_flash(flash.message(c.t));
    if !c.can(Permission::ViewIncidents) {
        return render(&ListPage { l, can_start: false, member: true, incidents: vec![] });
    }
    c.audit(&st, "incidents_viewed", "", "").await?;
    let incidents = st.store.incidents(&c.incident_access(&st).await?).await?.into_iter().map(|i| {
        let at = format_local(i.started_at, &c.zone);
        (i, at)
    });
    render(&ListPage { l, can_start: c.can(Permission::StartIncident), member: false, incidents: incidents.collect() })
}

#[derive(Template)]
#[template(path = "incident_new.html")]
struct NewPage {
    l: Layout,
    csrf: String,
    survey_text: String,
    departments: Vec<(i64, String)>,
    sites: Vec<(i64, String)>,
    groups: Vec<(i64, String)>,
    labels: Vec<(i64, String)>,
    error: Option<String>,
}

/// The tenant's labels for a select: (id, name in the page's language).
pub async fn label_options(st: &AppState, c: &Console) -> WebResult<Vec<(i64, String)>> {
    Ok(st.store.labels(&c.scope).await?.into_iter().map(|u| (u.label.id, u.label.shown(c.t.lang()).to_string())).collect())
}

async fn new_page_with(st: &AppState, c: &Console, survey_text: String, error: Option<String>) -> WebResult<Response> {
    let departments = st.store.departments(&c.scope).await?.into_iter().map(|d| (d.id, d.path)).collect();
    let sites = st.store.sites(&c.scope).await?.into_iter().map(|s| (s.id, format!("{} ({})", s.name, s.area_code))).collect();
    let groups = st.store.groups(&c.scope).await?.into_iter().map(|g| (g.id, g.name)).collect();
    let labels = label_options(st, c).await?;
    let page = NewPage {
        l: Layout::console(c, c.t.p("新規配信", "Start an incident")),
        csrf: c.csrf.clone(),
        survey_text,
        departments,
        sites,
        groups,
        labels,
        error: error.clone(),
    };
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    Ok((status, render(&page)?).into_response())
}

pub async fn new_page(State(st): State<AppState>, c: Console) -> WebResult<Response> {
    c.require(Permission::StartIncident)?;
    new_page_with(&st, &c, Survey::default_safety().to_editor_text(), None).await
}

/// Parses the start form (repeated fields for departments, sites and groups).
fn parse_start(fields: &[(String, String)], by: i64) -> Result<NewIncident, String> {
    let one = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let ids = |k: &str| -> Result<Vec<i64>, String> {
        fields.iter().filter(|(n, _)| n == k).map(|(_, v)| v.parse::<i64>().map_err(|_| format!("bad {k}"))).collect()
    };
    let num = |k: &str| -> Result<i64, String> {
        match one(k).as_str() {
            "" => Ok(0),
            v => v.parse::<i64>().ok().filter(|n| (0..=10_000).contains(n)).ok_or_else(|| format!("{k}: 0–10000")),
        }
    };
    let areas = one("areas").split([',', ' ', '、', '\n']).filter(|s| !s.trim().is_empty()).map(AreaCode::parse).collect::<Result<Vec<_>, _>>()?;
    let title = one("title");
    if title.is_empty() || title.chars().count() > 200 {
        return Err("件名を200文字以内で入力してください (title: 1–200 characters)".into());
    }
    let label_id = match one("label").as_str() {
        "" => None,
        v => Some(v.parse::<i64>().map_err(|_| "bad label".to_string())?),
    };
    let message = one("message");
    if message.chars().count() > 5000 {
        return Err("本文は5000文字以内です (message: at most 5000 characters)".into());
    }
    Ok(NewIncident {
        title,
        message,
        survey: Survey::parse_editor_text(&one("survey"))?,
        target: Target { all: one("all") == "1", departments: ids("department")?, sites: ids("site")?, groups: ids("group")?, areas, ..Default::default() },
        drill: one("drill") == "1",
        reminder_interval_min: num("reminder_interval")?,
        reminder_count: num("reminder_count")?.min(10),
        started_by: Some(by),
        within: None,
        dispatch_id: None,
        label_id,
    })
}

pub async fn start(State(st): State<AppState>, c: Console, Form(fields): Form<Vec<(String, String)>>) -> WebResult<Response> {
    c.require(Permission::StartIncident)?;
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    c.check_csrf(csrf)?;
    let survey_text = fields.iter().find(|(k, _)| k == "survey").map(|(_, v)| v.clone()).unwrap_or_default();
    let new = match parse_start(&fields, c.account.id).map(|n| NewIncident { within: c.account.reach.clone(), ..n }) {
        Ok(n) => n,
        Err(e) => return new_page_with(&st, &c, survey_text, Some(e)).await,
    };
    match st.store.start_incident(&c.scope, &new, &c.event("incident_started", ""), st.clock.now()).await {
        Ok((id, n)) => {
            tracing::info!(tenant = c.scope.tenant_id(), incident = id, recipients = n, drill = new.drill, "incident started");
            st.wake.notify_one();
            Ok(Redirect::to(&format!("/incidents/{id}?done=started")).into_response())
        }
        Err(anpi_store::StoreError::Invalid(p)) => new_page_with(&st, &c, survey_text, Some(problem(c.t, &p))).await,
        Err(e) => Err(e.into()),
    }
}

/// Counts for one row of a breakdown table.
pub struct Tally {
    pub label: String,
    pub total: usize,
    pub answered: usize,
    /// Counts of the primary question's choices, in choice order.
    pub choices: Vec<usize>,
}

impl Tally {
    fn new(label: String, n: usize) -> Tally {
        Tally { label, total: 0, answered: 0, choices: vec![0; n] }
    }
    /// Adds `recipients` people, `answered` of them answered, who chose `choice` (if any).
    fn add(&mut self, recipients: usize, answered: usize, choice: Option<usize>) {
        self.total += recipients;
        self.answered += answered;
        if let Some(i) = choice {
            self.choices[i] += answered;
        }
    }
    pub fn percent(&self) -> usize {
        (self.answered * 100).checked_div(self.total).unwrap_or(0)
    }
}

pub struct Board {
    pub overall: Tally,
    /// Per choice question: its label, and (choice label, count).
    pub questions: Vec<(String, Vec<(String, usize)>)>,
    pub primary_choices: Vec<String>,
    /// (heading, rows): by department, by site, by group.
    pub breakdowns: Vec<(String, Vec<Tally>)>,
    pub unanswered: Vec<(String, String, String)>,
    pub unanswered_more: usize,
}

const UNANSWERED_SHOWN: usize = 300;

/// Tallies by a key (a department, site or group id), labelled and sorted by label at the end.
fn by_label<K: std::hash::Hash + Eq>(tallies: HashMap<K, Tally>, label: impl Fn(&K) -> String) -> Vec<Tally> {
    let mut out: Vec<Tally> = tallies.into_iter().map(|(k, t)| Tally { label: label(&k), ..t }).collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    out
}

/// The dashboard's figures from the counts (the database did the counting; see
/// [`anpi_store::Store::dashboard_counts`]). `states`: the delivery state of the unanswered
/// rows listed; `unanswered_total`: how many there are in all.
fn board(
    t: Tr,
    inc: &IncidentDetail,
    counts: &DashboardCounts,
    states: &HashMap<i64, String>,
    depts: &HashMap<i64, String>,
    sites: &HashMap<i64, String>,
    groups: &HashMap<i64, String>,
) -> Board {
    let primary = inc.survey.questions.iter().find(|q| !q.choices.is_empty());
    let n = primary.map(|q| q.choices.len()).unwrap_or(0);
    let none = t.p("（なし）", "(none)").to_string();
    let choice = |a: &AnswerCount| {
        primary.and_then(|q| {
            let v = a.answers.as_ref()?.get(&q.id)?;
            q.choices.iter().position(|c| &c.id == v)
        })
    };
    let mut overall = Tally::new(String::new(), n);
    let mut by_d: HashMap<Option<i64>, Tally> = HashMap::new();
    let mut by_s: HashMap<Option<i64>, Tally> = HashMap::new();
    let mut by_g: HashMap<i64, Tally> = HashMap::new();
    let mut question_counts: Vec<Vec<usize>> = inc.survey.questions.iter().map(|q| vec![0; q.choices.len()]).collect();
    for c in &counts.by_place {
        let ch = choice(c);
        overall.add(c.recipients, c.answered, ch);
        by_d.entry(c.department_id).or_insert_with(|| Tally::new(String::new(), n)).add(c.recipients, c.answered, ch);
        by_s.entry(c.site_id).or_insert_with(|| Tally::new(String::new(), n)).add(c.recipients, c.answered, ch);
        if let Some(a) = &c.answers {
            for (qi, q) in inc.survey.questions.iter().enumerate() {
                if let Some(ci) = a.get(&q.id).and_then(|v| q.choices.iter().position(|ch| &ch.id == v)) {
                    question_counts[qi][ci] += c.answered;
                }
            }
        }
    }
    for (g, c) in counts.by_group.iter().filter(|(g, _)| groups.contains_key(g)) {
        by_g.entry(*g).or_insert_with(|| Tally::new(String::new(), n)).add(c.recipients, c.answered, choice(c));
    }
    let unanswered: Vec<(String, String, String)> = counts
        .unanswered
        .iter()
        .map(|r| {
            let dept = r.department_id.and_then(|d| depts.get(&d).cloned()).unwrap_or_else(|| none.clone());
            let state = states.get(&r.recipient_id).map(String::as_str).unwrap_or("none");
            (r.name.clone(), dept, delivery_label(t, state).to_string())
        })
        .collect();
    let unanswered_more = (overall.total - overall.answered).saturating_sub(unanswered.len());
    let label = |names: &HashMap<i64, String>, id: &Option<i64>| id.and_then(|i| names.get(&i).cloned()).unwrap_or_else(|| none.clone());
    let by_d = by_label(by_d, |d| label(depts, d));
    let by_s = by_label(by_s, |s| label(sites, s));
    let by_g = by_label(by_g, |g| groups.get(g).cloned().unwrap_or_default());
    Board {
        overall,
        questions: inc
            .survey
            .questions
            .iter()
            .zip(question_counts)
            .filter(|(q, _)| !q.choices.is_empty())
            .map(|(q, counts)| (q.label(t.0).to_string(), q.choices.iter().map(|c| c.label(t.0).to_string()).zip(counts).collect()))
            .collect(),
        primary_choices: primary.map(|q| q.choices.iter().map(|c| c.label(t.0).to_string()).collect()).unwrap_or_default(),
        breakdowns: vec![
            (t.p("部署別", "By department").to_string(), by_d),
            (t.p("事業所別", "By site").to_string(), by_s),
            (t.p("グループ別", "By group").to_string(), by_g),
        ],
        unanswered,
        unanswered_more,
    }
}

fn delivery_label(t: Tr, d: &str) -> &'static str {
    match d {
        "sent" => t.p("送信済み", "sent"),
        "pending" => t.p("送信待ち", "queued"),
        "failed" => t.p("送信失敗", "failed"),
        "undeliverable" => t.p("宛先不達", "undeliverable"),
        "cancelled" => t.p("取消", "cancelled"),
        _ => t.p("宛先なし", "no message"),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    csrf: String,
    inc: IncidentDetail,
    started: String,
    closed: Option<String>,
    b: Board,
    can_manage: bool,
    /// Whether this user may export the answers (the label's restriction).
    can_export: bool,
}

#[derive(Template)]
#[template(path = "dashboard_live.html")]
struct DashboardFragment {
    l: Layout,
    b: Board,
}

#[derive(serde::Deserialize, Default)]
pub struct DashQuery {
    done: Option<String>,
    fragment: Option<String>,
}

/// The rows a scoped distributor may see (all for everyone else).
/// The incident, if the caller reaches it (403, recorded, when beyond a distributor's reach).
async fn reached(st: &AppState, c: &Console, id: i64) -> WebResult<IncidentDetail> {
    match st.store.incident_for(&c.incident_access(st).await?, id).await {
        Err(anpi_store::StoreError::OutsideReach) => Err(c.outside_reach(id)),
        other => Ok(other?),
    }
}

fn visible(rows: Vec<DashboardRow>, reach: Option<std::collections::HashSet<i64>>) -> Vec<DashboardRow> {
    match reach {
        Some(ids) => rows.into_iter().filter(|r| ids.contains(&r.person_id)).collect(),
        None => rows,
    }
}

pub async fn dashboard(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Query(q): Query<DashQuery>) -> WebResult<Response> {
    c.require(Permission::ViewIncidents)?;
    let inc = reached(&st, &c, id).await?;
    let counts = st.store.dashboard_counts(&c.scope, id, c.reach(&st).await?.as_ref(), UNANSWERED_SHOWN).await?;
    let shown: Vec<i64> = counts.unanswered.iter().map(|r| r.recipient_id).collect();
    let states = st.store.delivery_states(&c.scope, &shown).await?;
    let depts = st.store.departments(&c.scope).await?.into_iter().map(|d| (d.id, d.path)).collect();
    let sites = st.store.sites(&c.scope).await?.into_iter().map(|s| (s.id, s.name)).collect();
    let groups = st.store.groups(&c.scope).await?.into_iter().map(|g| (g.id, g.name)).collect();
    let b = board(c.t, &inc, &counts, &states, &depts, &sites, &groups);
    let l = Layout::console(&c, &inc.title).with_flash(Flash { done: q.done }.message(c.t));
    if q.fragment.is_some() {
        return render(&DashboardFragment { l, b });
    }
    c.audit(&st, "incident_viewed", format!("incident:{id}"), "").await?;
    let can_export = export_label(&st, &c, &inc).await?.is_none_or(|label| label.may_export(c.role()));
    render(&DashboardPage {
        l,
        csrf: c.csrf.clone(),
        started: format_local(inc.started_at, &c.zone),
        closed: inc.closed_at.map(|t| format_local(t, &c.zone)),
        inc,
        b,
        can_manage: c.can(Permission::ManageIncident),
        can_export,
    })
}

/// Server-sent events: `answer` when answers to this incident arrive on any node (at most one
/// event per half second however fast they come), and every 15 s in case a node's
/// notification was lost. The dashboard's live signal. `Cache-Control: no-store` like every console response (the
/// SSE default is `no-cache`, which the header layer does not override).
pub async fn events(
    State(st): State<AppState>,
    c: Console,
    Path(id): Path<i64>,
) -> WebResult<([(header::HeaderName, &'static str); 1], Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>)> {
    c.require(Permission::ViewIncidents)?;
    reached(&st, &c, id).await?;
    let tenant = c.scope.tenant_id();
    let answers = tokio_stream::wrappers::BroadcastStream::new(st.events.subscribe())
        .filter_map(move |e| async move { matches!(e, Ok(e) if e.tenant == tenant && e.incident == id).then_some(()) });
    let answers = tokio_stream::StreamExt::chunks_timeout(answers, 100_000, Duration::from_millis(500)).map(|_| ());
    let ticks =
        tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(15), Duration::from_secs(15)))
            .map(|_| ());
    let stream = futures_util::stream::select(answers, ticks).map(|_| Ok(Event::default().event("answer").data("1")));
    Ok(([(header::CACHE_CONTROL, "no-store")], Sse::new(stream).keep_alive(KeepAlive::default())))
}

pub async fn resend(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageIncident)?;
    c.check_csrf(&f.csrf)?;
    let e = c.event("incident_resent", format!("incident:{id}"));
    let access = c.incident_access(&st).await?;
    let n = match st.store.resend_unanswered(&access, id, c.reach(&st).await?.as_ref(), &e, st.clock.now()).await {
        Err(anpi_store::StoreError::OutsideReach) => return Err(c.outside_reach(id)),
        other => other?,
    };
    tracing::info!(tenant = c.scope.tenant_id(), incident = id, recipients = n, "re-send");
    st.wake.notify_one();
    Ok(Redirect::to(&format!("/incidents/{id}?done=resent")).into_response())
}

pub async fn close(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageIncident)?;
    c.check_csrf(&f.csrf)?;
    let access = c.incident_access(&st).await?;
    match st.store.close_incident(&access, id, &c.event("incident_closed", format!("incident:{id}")), st.clock.now()).await {
        Err(anpi_store::StoreError::OutsideReach) => return Err(c.outside_reach(id)),
        other => other?,
    }
    Ok(Redirect::to(&format!("/incidents/{id}?done=closed")).into_response())
}

/// The label an export of the incident's answers carries: its own, else the tenant's default.
async fn export_label(st: &AppState, c: &Console, inc: &IncidentDetail) -> WebResult<Option<anpi_core::Label>> {
    match &inc.label {
        Some(l) => Ok(Some(l.clone())),
        None => Ok(st.store.default_label(&c.scope).await?),
    }
}

pub async fn answers_csv(State(st): State<AppState>, c: Console, Path(id): Path<i64>) -> WebResult<Response> {
    c.require(Permission::ViewIncidents)?;
    let inc = reached(&st, &c, id).await?;
    let label = export_label(&st, &c, &inc).await?;
    let target = format!("incident:{id}");
    super::export::authorise(&st, &c, "answers_exported", &target, label.as_ref()).await?;
    let rows = visible(st.store.dashboard(&c.scope, id, true).await?, c.reach(&st).await?);
    let depts: HashMap<i64, String> = st.store.departments(&c.scope).await?.into_iter().map(|d| (d.id, d.path)).collect();
    let sites: HashMap<i64, String> = st.store.sites(&c.scope).await?.into_iter().map(|s| (s.id, s.name)).collect();
    let mut header: Vec<String> = ["氏名", "部署", "事業所", "回答日時", "配信状況"].iter().map(|s| s.to_string()).collect();
    header.extend(inc.survey.questions.iter().map(|q| q.label_ja.clone()));
    let mut out = Sheet::new(&header);
    for r in &rows {
        let mut line = vec![
            r.name.clone(),
            r.department_id.and_then(|d| depts.get(&d).cloned()).unwrap_or_default(),
            r.site_id.and_then(|s| sites.get(&s).cloned()).unwrap_or_default(),
            r.answered_at.map(|t| format_local(t, &c.zone)).unwrap_or_default(),
            r.delivery.clone(),
        ];
        for q in &inc.survey.questions {
            let v =
                r.answers.as_ref().and_then(|a| a.get(&q.id)).map(|v| q.choice_label(v, anpi_core::Lang::Ja).map(String::from).unwrap_or_else(|| v.clone()));
            line.push(v.unwrap_or_default());
        }
        out.row(&line);
    }
    super::export::record(&st, &c, "answers_exported", &target, label.as_ref(), format!("{} rows", rows.len())).await?;
    Ok(super::export::csv_download(&format!("incident-{id}-answers"), label.as_ref(), out.finish()))
}
