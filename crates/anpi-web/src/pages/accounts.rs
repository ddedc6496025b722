//! Console accounts of a tenant (admin only). New accounts set their password by mail link.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::WebResult;
use crate::session::Console;
use crate::AppState;
use anpi_core::{Permission, Role};
use anpi_store::audit::AuditEvent;
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
    departments: Vec<(i64, String)>,
    groups: Vec<(i64, String)>,
    /// The role matrix, from the policy itself: each permission and which roles have it.
    matrix: Vec<((&'static str, &'static str), Vec<bool>)>,
}

pub async fn list(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    render(&AccountsPage {
        l: Layout::console(&c, c.t.p("アカウント", "Accounts")).with_flash(flash.message(c.t)),
        csrf: c.csrf.clone(),
        accounts: st.store.accounts(&c.scope).await?,
        me: c.account.id,
        departments: st.store.departments(&c.scope).await?.into_iter().map(|d| (d.id, d.path)).collect(),
        groups: st.store.groups(&c.scope).await?.into_iter().map(|g| (g.id, g.name)).collect(),
        matrix: Permission::ALL.iter().map(|p| (p.describe(), Role::ALL.iter().map(|r| r.can(*p)).collect())).collect(),
    })
}

/// Sets the departments and groups a distributor may see and message (none: everyone).
pub async fn set_reach(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(fields): Form<Vec<(String, String)>>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    c.check_csrf(csrf)?;
    let ids = |key: &str| -> WebResult<Vec<i64>> {
        fields.iter().filter(|(k, _)| k == key).map(|(_, v)| v.parse().map_err(|_| crate::WebError::BadRequest(format!("bad {key}")))).collect()
    };
    let account = st.store.account(&c.scope, id).await?;
    if account.role != Role::Distributor {
        return Err(crate::WebError::BadRequest("配信範囲は配信権限のアカウントにだけ設定できます (reach applies to distributors only)".into()));
    }
    let (departments, groups) = (ids("department")?, ids("group")?);
    let e = AuditEvent { detail: format!("departments={departments:?} groups={groups:?}"), ..c.event("reach_changed", format!("account:{id}")) };
    st.store.set_reach(&c.scope, id, &departments, &groups, &e, st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, "distributor reach changed");
    Ok(Redirect::to("/accounts?done=saved").into_response())
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
    let e = AuditEvent { detail: format!("{} {}", f.email.trim(), role.as_str()), ..c.event("account_created", "") };
    let id = st.store.create_account(&c.scope, &f.email, &f.name, role, None, &e, now).await?;
    let base = st.base_url.clone();
    st.store.invite_account(&c.scope, id, now, |token, _| super::auth::reset_mail(&base, token)).await?;
    st.wake.notify_one();
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, role = role.as_str(), "account created");
    Ok(Redirect::to("/accounts?done=invited").into_response())
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// Resets the second factor of an account whose owner lost it (the admin re-enters their own
/// password); the account's sessions end and, where the policy requires MFA, it enrols again.
pub async fn reset_mfa(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<ReauthForm>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(&f.csrf)?;
    if id == c.account.id {
        return Err(crate::WebError::BadRequest("自分の2段階認証はアカウント画面で変更してください (change your own on the account page)".into()));
    }
    st.store.account(&c.scope, id).await?;
    if !st.store.reenter_password(&c.scope, c.account.id, &f.password, st.clock.now()).await? {
        return Err(crate::WebError::BadRequest("パスワードが違います (the password is not correct)".into()));
    }
    st.store.reset_mfa(&c.scope, id, &c.event("mfa_reset", format!("account:{id}")), st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, "second factor reset by an admin");
    Ok(Redirect::to("/accounts?done=saved").into_response())
}

async fn set_disabled(st: &AppState, c: &Console, id: i64, csrf: &str, disabled: bool) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(csrf)?;
    if id == c.account.id {
        return Err(crate::WebError::BadRequest("自分自身は無効にできません (you cannot disable yourself)".into()));
    }
    let e = c.event(if disabled { "account_disabled" } else { "account_enabled" }, format!("account:{id}"));
    st.store.set_account_disabled(&c.scope, id, disabled, &e, st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, account = id, disabled, "account state changed");
    Ok(Redirect::to("/accounts?done=saved").into_response())
}

pub async fn disable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, true).await
}

pub async fn enable(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    set_disabled(&st, &c, id, &f.csrf, false).await
}
