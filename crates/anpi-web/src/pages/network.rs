//! IP allowlists of the tenant (admins only): console, admin and answer-page lists.

use super::{render, Flash, Layout};
use crate::client_ip::ClientIp;
use crate::error::WebResult;
use crate::session::Console;
use crate::AppState;
use anpi_core::netlist::NetList;
use anpi_core::Permission;
use anpi_store::Allowlists;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "network.html")]
struct NetworkPage {
    l: Layout,
    csrf: String,
    form: ListsForm,
    /// The admin's own address as the server sees it.
    here: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    console: String,
    #[serde(default)]
    admin: String,
    #[serde(default)]
    answer: String,
}

impl ListsForm {
    /// Stored lists, one entry a line for editing.
    fn from_lists(l: Allowlists) -> ListsForm {
        let lines = |s: String| s.split_whitespace().collect::<Vec<_>>().join("\n");
        ListsForm { csrf: String::new(), console: lines(l.console), admin: lines(l.admin), answer: lines(l.answer) }
    }
    fn lists(&self) -> Allowlists {
        Allowlists { console: self.console.clone(), admin: self.admin.clone(), answer: self.answer.clone() }
    }
}

fn show(c: &Console, ip: ClientIp, form: ListsForm, error: Option<String>, flash: Option<String>) -> WebResult<Response> {
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = NetworkPage {
        l: Layout::console(c, c.t.p("接続元IPアドレスの制限", "IP allowlists")).with_flash(flash),
        csrf: c.csrf.clone(),
        form,
        here: ip.shown(),
        error,
    };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(State(st): State<AppState>, c: Console, ip: ClientIp, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    let lists = st.store.allowlists(&c.scope).await?;
    show(&c, ip, ListsForm::from_lists(lists), None, flash.message(c.t))
}

/// Refuses lists under which the admin saving them could no longer use the console.
/// Also validates all three lists (the error names the bad entry).
fn lockout_check(lists: &Allowlists, ip: ClientIp) -> Result<(), String> {
    let console = NetList::parse(&lists.console)?;
    let admin = NetList::parse(&lists.admin)?;
    NetList::parse(&lists.answer)?;
    if console.permits(ip.0) && admin.permits(ip.0) {
        return Ok(());
    }
    let here = ip.shown();
    Err(format!("この設定では現在の接続元 {here} から操作できなくなります (you would lock yourself out: your current address {here} is not in these lists)"))
}

pub async fn save(State(st): State<AppState>, c: Console, ip: ClientIp, Form(form): Form<ListsForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&form.csrf)?;
    let lists = form.lists();
    if let Err(e) = lockout_check(&lists, ip) {
        return show(&c, ip, form, Some(e), None);
    }
    let saved = st.store.set_allowlists(&c.scope, &lists, &c.event("allowlists_changed", ""), st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, ip = %ip.shown(), console = %saved.console, admin = %saved.admin, answer = %saved.answer, "IP allowlists changed");
    Ok(Redirect::to("/security/network?done=saved").into_response())
}
