//! "My account": two-step sign-in status and one's own sessions (end one, or all others).
//! Admins end another account's sessions and unlock locked accounts from the accounts page.

use super::{render, CsrfForm, Flash, Layout};
use crate::error::WebResult;
use crate::session::{cookie, Console, TENANT_COOKIE};
use crate::AppState;
use anpi_core::clock::format_local;
use anpi_core::Permission;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

pub struct SessionLine {
    pub id: String,
    pub started: String,
    pub seen: String,
    pub ip: String,
    pub browser: String,
    pub current: bool,
}

pub struct PasskeyLine {
    pub id: i64,
    pub name: String,
    pub created: String,
    pub used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    l: Layout,
    csrf: String,
    mfa: bool,
    mfa_required: bool,
    totp: bool,
    passkeys: Vec<PasskeyLine>,
    /// Adding a passkey asks for the password again (for the shared passkey form).
    ask_password: bool,
    codes_left: i64,
    sessions: Vec<SessionLine>,
}

pub async fn page(State(st): State<AppState>, c: Console, headers: HeaderMap, Query(flash): Query<Flash>) -> WebResult<Response> {
    let current = cookie(&headers, TENANT_COOKIE).map(|t| anpi_store::session_id(&t)).unwrap_or_default();
    let sessions = st
        .store
        .account_sessions(&c.scope, c.account.id)
        .await?
        .into_iter()
        .map(|s| SessionLine {
            current: s.id == current,
            started: format_local(s.created_at, &c.zone),
            seen: format_local(s.last_seen_at, &c.zone),
            ip: s.ip,
            browser: s.user_agent.chars().take(80).collect(),
            id: s.id,
        })
        .collect();
    let passkeys = st
        .store
        .passkeys(&c.scope, c.account.id)
        .await?
        .into_iter()
        .map(|p| PasskeyLine {
            id: p.id,
            name: p.name,
            created: format_local(p.created_at, &c.zone),
            used: if p.last_used_at > 0 { format_local(p.last_used_at, &c.zone) } else { "—".into() },
        })
        .collect();
    render(&AccountPage {
        l: Layout::console(&c, c.t.p("アカウント設定", "My account")).with_flash(flash.message(c.t)),
        csrf: c.csrf.clone(),
        mfa: c.account.mfa,
        mfa_required: st.store.security_policy(&c.scope).await?.mfa_required.applies_to(c.account.role),
        codes_left: st.store.recovery_codes_left(&c.scope, c.account.id).await?,
        totp: st.store.totp_enabled(&c.scope, c.account.id).await?,
        passkeys,
        ask_password: true,
        sessions,
    })
}

pub async fn end_session(State(st): State<AppState>, c: Console, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    st.store.end_account_session(&c.scope, c.account.id, &id, &c.event("session_ended", format!("session:{id}")), st.clock.now()).await?;
    Ok(Redirect::to("/account?done=saved").into_response())
}

/// Signs out everywhere but here.
pub async fn end_others(State(st): State<AppState>, c: Console, headers: HeaderMap, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    let here = cookie(&headers, TENANT_COOKIE);
    let e = c.event("sessions_ended", format!("account:{}", c.account.id));
    let n = st.store.end_account_sessions(&c.scope, c.account.id, here.as_deref(), &e, st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, sessions = n, "signed out everywhere else");
    Ok(Redirect::to("/account?done=saved").into_response())
}

/// An admin ends all sessions of an account of the tenant.
pub async fn admin_end_sessions(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(&f.csrf)?;
    st.store.account(&c.scope, id).await?;
    let n = st.store.end_account_sessions(&c.scope, id, None, &c.event("sessions_ended", format!("account:{id}")), st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), admin = c.account.id, account = id, sessions = n, "sessions ended by admin");
    Ok(Redirect::to("/accounts?done=saved").into_response())
}

pub async fn unlock(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.require(Permission::ManageAccounts)?;
    c.check_csrf(&f.csrf)?;
    st.store.unlock_account(&c.scope, id, &c.event("account_unlocked", format!("account:{id}")), st.clock.now()).await?;
    tracing::info!(tenant = c.scope.tenant_id(), admin = c.account.id, account = id, "account unlocked");
    Ok(Redirect::to("/accounts?done=saved").into_response())
}
