//! Departments, sites and contact groups, and the tenant's time zone.

use super::{render, Flash, Layout};
use crate::error::WebResult;
use crate::session::Console;
use crate::AppState;
use anpi_core::{AreaCode, Permission};
use anpi_store::{Department, Group, Site};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    l: Layout,
    csrf: String,
    departments: Vec<Department>,
    sites: Vec<Site>,
    groups: Vec<Group>,
    zone: String,
}

pub async fn page(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    render(&OrgPage {
        l: Layout::console(&c, c.t.p("組織", "Organisation")).with_flash(flash.message(c.t)),
        csrf: c.csrf.clone(),
        departments: st.store.departments(&c.scope).await?,
        sites: st.store.sites(&c.scope).await?,
        groups: st.store.groups(&c.scope).await?,
        zone: c.zone.clone(),
    })
}

#[derive(Deserialize)]
pub struct ZoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    zone: String,
}

/// Sets the time zone times are shown in (they are stored in UTC).
pub async fn set_time_zone(State(st): State<AppState>, c: Console, Form(f): Form<ZoneForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    st.store.set_time_zone(&c.scope, &f.zone, &c.event("time_zone_changed", ""), st.clock.now()).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    area_code: String,
}

fn done() -> Response {
    Redirect::to("/org?done=saved").into_response()
}

pub async fn add_department(State(st): State<AppState>, c: Console, Form(f): Form<NameForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    st.store.create_department(&c.scope, &f.name).await?;
    Ok(done())
}

pub async fn add_site(State(st): State<AppState>, c: Console, Form(f): Form<NameForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    let area = AreaCode::parse(&f.area_code).map_err(|e| crate::WebError::BadRequest(format!("地域コードが正しくありません (invalid area code): {e}")))?;
    st.store.create_site(&c.scope, &f.name, &area).await?;
    Ok(done())
}

pub async fn add_group(State(st): State<AppState>, c: Console, Form(f): Form<NameForm>) -> WebResult<Response> {
    c.require(Permission::ManageDirectory)?;
    c.check_csrf(&f.csrf)?;
    st.store.create_group(&c.scope, &f.name).await?;
    Ok(done())
}
