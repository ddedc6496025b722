//! Classification labels (情報の区分) for administrators: list, add, rename, change who may
//! export, delete when unused, and the default label of exports that belong to no incident.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::{WebError, WebResult};
use crate::i18n::problem;
use crate::session::Console;
use crate::AppState;
use anpi_core::{Permission, Role};
use anpi_store::audit::AuditEvent;
use anpi_store::{LabelInput, LabelUse, StoreError};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "labels.html")]
struct LabelsPage {
    l: Layout,
    csrf: String,
    labels: Vec<LabelUse>,
    /// (role code, restriction as shown), strictest first.
    restrictions: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

async fn page_with(st: &AppState, c: &Console, status: StatusCode, flash: Option<String>, error: Option<String>) -> WebResult<Response> {
    let labels = st.store.labels(&c.scope).await?;
    let restrictions = [Role::Admin, Role::Distributor, Role::Member].into_iter().map(|r| (r.as_str(), r.export_restriction(c.t.lang()))).collect();
    let page =
        LabelsPage {
            l: Layout::console(c, c.t.p("情報の区分", "Classification labels")).with_flash(flash), csrf: c.csrf.clone(), labels, restrictions, error
        };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageLabels)?;
    page_with(&st, &c, StatusCode::OK, flash.message(c.t), None).await
}

#[derive(Deserialize)]
pub struct LabelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    rank: String,
    #[serde(default)]
    export_min: String,
}

impl LabelForm {
    fn input(&self) -> Result<LabelInput, String> {
        let rank = match self.rank.trim() {
            "" => 0,
            v => v.parse().map_err(|_| "順位は数字で入力してください (rank: a number)".to_string())?,
        };
        let export_min = Role::parse(&self.export_min).ok_or("出力できる人を選んでください (choose who may export)")?;
        Ok(LabelInput { name: self.name.clone(), name_en: self.name_en.clone(), rank, export_min })
    }
}

fn describe(i: &LabelInput) -> String {
    format!("{} / {} rank:{} export:{}", i.name.trim(), i.name_en.trim(), i.rank, i.export_min.as_str())
}

/// A refused change shows the page again with the reason; other errors go up.
async fn refused(st: &AppState, c: &Console, e: StoreError) -> WebResult<Response> {
    match e {
        StoreError::Invalid(p) => page_with(st, c, StatusCode::BAD_REQUEST, None, Some(problem(c.t, &p))).await,
        StoreError::Conflict(p) => page_with(st, c, StatusCode::CONFLICT, None, Some(problem(c.t, &p))).await,
        e => Err(e.into()),
    }
}

pub async fn create(State(st): State<AppState>, c: Console, Form(f): Form<LabelForm>) -> WebResult<Response> {
    c.require(Permission::ManageLabels)?;
    c.check_csrf(&f.csrf)?;
    let input = match f.input() {
        Ok(i) => i,
        Err(m) => return page_with(&st, &c, StatusCode::BAD_REQUEST, None, Some(m)).await,
    };
    let e = AuditEvent { detail: describe(&input), ..c.event("label_created", "") };
    match st.store.create_label(&c.scope, &input, &e, st.clock.now()).await {
        Ok(_) => Ok(Redirect::to("/labels?done=saved").into_response()),
        Err(e) => refused(&st, &c, e).await,
    }
}

pub async fn update(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<LabelForm>) -> WebResult<Response> {
    c.require(Permission::ManageLabels)?;
    let before = st.store.label(&c.scope, id).await?;
    c.check_csrf(&f.csrf)?;
    let input = match f.input() {
        Ok(i) => i,
        Err(m) => return page_with(&st, &c, StatusCode::BAD_REQUEST, None, Some(m)).await,
    };
    let was = format!("was {} / {} rank:{} export:{}", before.name, before.name_en, before.rank, before.export_min.as_str());
    let e = AuditEvent { detail: format!("{} ({was})", describe(&input)), ..c.event("label_updated", format!("label:{id}")) };
    match st.store.update_label(&c.scope, id, &input, &e, st.clock.now()).await {
        Ok(()) => Ok(Redirect::to("/labels?done=saved").into_response()),
        Err(e) => refused(&st, &c, e).await,
    }
}

pub async fn delete(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageLabels)?;
    let label = st.store.label(&c.scope, id).await?;
    c.check_csrf(&f.csrf)?;
    let e = AuditEvent { detail: label.name, ..c.event("label_deleted", format!("label:{id}")) };
    match st.store.delete_label(&c.scope, id, &e, st.clock.now()).await {
        Ok(()) => Ok(Redirect::to("/labels?done=deleted").into_response()),
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(e) => refused(&st, &c, e).await,
    }
}

#[derive(Deserialize)]
pub struct DefaultForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

/// Sets the label of exports that belong to no incident (directory, audit log).
pub async fn set_default(State(st): State<AppState>, c: Console, Form(f): Form<DefaultForm>) -> WebResult<Response> {
    c.require(Permission::ManageLabels)?;
    c.check_csrf(&f.csrf)?;
    let id = match f.label.trim() {
        "" => None,
        v => Some(v.parse::<i64>().map_err(|_| WebError::BadRequest("bad label".into()))?),
    };
    let e = c.event("label_default_set", id.map(|i| format!("label:{i}")).unwrap_or_else(|| "none".into()));
    match st.store.set_default_label(&c.scope, id, &e, st.clock.now()).await {
        Ok(()) => Ok(Redirect::to("/labels?done=saved").into_response()),
        Err(e) => refused(&st, &c, e).await,
    }
}
