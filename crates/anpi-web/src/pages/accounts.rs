//! Console accounts of a tenant (admin only). New accounts set their password by mail link.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::WebResult;
use crate::session::Console;
use crate::AppState;
use anpi_core::{Permission, Role};
use anpi_store::Account;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    l: Layout,
    csrf: String,
    accounts: Vec<Account>,
    me: i64,
}

pub async fn list(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    render(&AccountsPage {
        l: Layout::console(&c, c.t.p("アカウント", "Accounts")).with_flash(flash.message(c.t)),
        csrf: c.csrf.clone(),
        accounts: st.store.accounts(&c.scope).await?,
        me: c.account.id,
    })
}

#[derive(Deserialize)]
pub struct NewAccount {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

pub async fn create(State(st): State<AppState>, c: Console, Form(f): Form<NewAccount>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(&f.csrf)?;
    let role = Role::parse(&f.role).ok_or_else(|| crate::WebError::BadRequest("unknown role".into()))?;
    let now = st.clock.now();
    let id = st.store.create_account(&c.scope, &f.email, &f.name, role, None, now).await?;
    let base = st.base_url.clone();
    st.store.invite_account(&c.scope, id, now, |token, _| super::auth::reset_mail(&base, token)).await?;
    st.wake.notify_one();
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, role = role.as_str(), "account created");
    Ok(Redirect::to("/accounts?done=invited").into_response())
}

async fn set_disabled(st: &AppState, c: &Console, id: i64, csrf: &str, disabled: bool) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(csrf)?;
    if id == c.account.id {
        return Err(crate::WebError::BadRequest("自分自身は無効にできません (you cannot disable yourself)".into()));
    }
    st.store.set_account_disabled(&c.scope, id, disabled).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, disabled, "account state changed");
    Ok(Redirect::to("/accounts?done=saved").into_response())
}

pub async fn disable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, true).await
}

pub async fn enable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, false).await
}
