//! The operator console, served on its own listener. Operators create tenants and their
//! first admin; they see counts, never a tenant's personal data.

use super::{render, CsrfForm, Layout};
use crate::error::WebResult;
use crate::i18n::{problem, Tr};
use crate::session::{clear_cookie, cookie, session_cookie, Operator, OPERATOR_COOKIE};
use crate::AppState;
use anpi_core::clock::format_local;
use anpi_core::Role;
use anpi_store::audit::Actor;
use anpi_store::TenantSummary;
use askama::Template;
use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/app.css", get(super::css))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(home))
        .route("/tenants", post(create_tenant))
}

#[derive(Template)]
#[template(path = "operator_login.html")]
struct LoginPage {
    l: Layout,
    csrf: String,
    error: bool,
    expired: bool,
}

/// The sign-in page with its pre-session CSRF token (and cookie, when new).
fn login_form(headers: &HeaderMap, status: StatusCode, error: bool, expired: bool) -> WebResult<Response> {
    let t = Tr::from_request(headers, None);
    let (csrf, set) = crate::session::login_csrf(headers);
    let mut resp = (status, render(&LoginPage { l: Layout::public(t, "Operator sign in"), csrf, error, expired })?).into_response();
    if let Some(c) = set {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, c);
    }
    Ok(resp)
}

async fn login_page(headers: HeaderMap) -> WebResult<Response> {
    login_form(&headers, StatusCode::OK, false, false)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Records an operator action in the operators' and system chain of the audit log.
async fn system_audit(st: &AppState, actor: Actor, action: &str, target: String, outcome: &str) -> WebResult<()> {
    let e = anpi_store::audit::AuditEvent { actor, action, target, outcome, ip: "", detail: String::new() };
    st.store.audit(None, &e, st.clock.now()).await?;
    Ok(())
}

/// Operator sign-in, throttled per address and per email like tenant sign-ins.
async fn login(State(st): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<LoginForm>) -> WebResult<Response> {
    let now = st.clock.now();
    let ip = crate::client_ip::ClientIp(crate::client_ip::resolve(peer.ip(), &headers, &st.trusted_proxies)).shown();
    if !crate::session::login_csrf_ok(&headers, &f.csrf) {
        tracing::info!(%ip, "operator sign-in form without a valid CSRF token");
        return login_form(&headers, StatusCode::BAD_REQUEST, false, true);
    }
    let keys = [anpi_store::throttle_key("op-ip", &crate::client_ip::throttle_scope(&ip)), anpi_store::throttle_key("op", &f.email.trim().to_lowercase())];
    let wait = st.store.login_attempt(&keys, now).await?;
    if wait > 0 {
        tracing::warn!(%ip, "operator sign-in throttled");
        return Ok(super::auth::throttled(wait));
    }
    let found = st.store.operator_login(&f.email, &f.password).await?;
    if found.is_some() {
        st.store.clear_login_failures(&keys).await?;
    }
    match found {
        Some(id) => {
            let e = anpi_store::audit::AuditEvent {
                actor: Actor::Operator(id),
                action: "operator_sign_in",
                target: f.email.trim().to_lowercase(),
                outcome: "ok",
                ip: &ip,
                detail: String::new(),
            };
            let token = st.store.create_session("operator", id, None, &e, now).await?;
            tracing::info!(operator = id, "operator sign-in");
            Ok(([(header::SET_COOKIE, session_cookie(OPERATOR_COOKIE, &token))], Redirect::to("/")).into_response())
        }
        None => {
            tracing::info!("failed operator sign-in");
            system_audit(&st, Actor::Anonymous, "operator_sign_in_failed", f.email.trim().chars().take(100).collect(), "failed").await?;
            login_form(&headers, StatusCode::UNAUTHORIZED, true, false)
        }
    }
}

async fn logout(State(st): State<AppState>, op: Operator, headers: HeaderMap, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    op.check_csrf(&f.csrf)?;
    if let Some(token) = cookie(&headers, OPERATOR_COOKIE) {
        st.store.end_session(&token).await?;
    }
    Ok(([(header::SET_COOKIE, clear_cookie(OPERATOR_COOKIE))], Redirect::to("/login")).into_response())
}

#[derive(Template)]
#[template(path = "operator_home.html")]
struct HomePage {
    l: Layout,
    email: String,
    csrf: String,
    tenants: Vec<(TenantSummary, String)>,
    error: Option<String>,
    created: Option<String>,
    /// PostgreSQL without row-level security (a superuser or BYPASSRLS role): say so.
    row_security_off: bool,
}

async fn home_page(st: &AppState, op: &Operator, t: Tr, error: Option<String>, created: Option<String>) -> WebResult<Response> {
    let tenants = st.store.tenant_summaries().await?.into_iter().map(|s| {
        let at = format_local(s.created_at, "Asia/Tokyo");
        (s, at)
    });
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let row_security_off = st.store.engine() == anpi_store::Engine::Postgres && !st.store.row_security_enforced();
    let page = HomePage {
        l: Layout::public(t, t.p("テナント", "Tenants")),
        email: op.email.clone(),
        csrf: op.csrf.clone(),
        tenants: tenants.collect(),
        error,
        created,
        row_security_off,
    };
    Ok((status, render(&page)?).into_response())
}

async fn home(State(st): State<AppState>, op: Operator, headers: HeaderMap) -> WebResult<Response> {
    home_page(&st, &op, Tr::from_request(&headers, None), None, None).await
}

#[derive(Deserialize)]
struct NewTenant {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_email: String,
}

/// Creates a tenant and its first admin, who receives a link to set a password.
async fn create_tenant(State(st): State<AppState>, op: Operator, headers: HeaderMap, Form(f): Form<NewTenant>) -> WebResult<Response> {
    op.check_csrf(&f.csrf)?;
    let t = Tr::from_request(&headers, None);
    let now = st.clock.now();
    if !anpi_core::directory::valid_email(f.admin_email.trim()) || f.admin_name.trim().is_empty() {
        return home_page(&st, &op, t, Some("管理者の氏名とメールアドレスを入力してください (admin name and email are required)".into()), None).await;
    }
    let scope = match st.store.create_tenant(f.code.trim(), &f.name, now).await {
        Ok(s) => s,
        Err(anpi_store::StoreError::Invalid(p) | anpi_store::StoreError::Conflict(p)) => return home_page(&st, &op, t, Some(problem(t, &p)), None).await,
        Err(e) => return Err(e.into()),
    };
    let e = anpi_store::audit::AuditEvent {
        actor: Actor::Operator(op.id),
        detail: "first admin".into(),
        ..anpi_store::audit::AuditEvent::system("account_created")
    };
    let admin = st.store.create_account(&scope, &f.admin_email, &f.admin_name, Role::Admin, None, &e, now).await?;
    let base = st.base_url.clone();
    st.store.invite_account(&scope, admin, now, |token, _| super::auth::reset_mail(&base, token)).await?;
    st.wake.notify_one();
    tracing::info!(operator = op.id, tenant = scope.tenant_id(), "tenant created");
    system_audit(&st, Actor::Operator(op.id), "tenant_created", format!("tenant:{} {}", scope.tenant_id(), f.code.trim()), "ok").await?;
    home_page(&st, &op, t, None, Some(f.code.trim().to_string())).await
}
