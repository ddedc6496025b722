//! Sign-in, sign-out, password change and password reset by mail link.

use super::{render, CsrfForm, Flash, Layout};
use crate::client_ip::throttle_scope;
use crate::error::{WebError, WebResult};
use crate::i18n::{problem, Tr};
use crate::session::{clear_cookie, login_csrf, login_csrf_ok, session_cookie, Console, TENANT_COOKIE};
use crate::AppState;
use crate::PeerCertificates;
use anpi_store::{throttle_key, ClientInfo, SessionStage};
use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    csrf: String,
    tenant: String,
    email: String,
    /// Wrong credentials.
    error: bool,
    /// The form did not come from this page (or its cookie expired): sign in again.
    expired: bool,
}

/// The sign-in page, with its pre-session CSRF token (and the cookie, when new).
fn login_form(headers: &HeaderMap, page: impl FnOnce(String) -> LoginPage, status: StatusCode) -> WebResult<Response> {
    let (csrf, set) = login_csrf(headers);
    let mut resp = (status, render(&page(csrf))?).into_response();
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[derive(Deserialize, Default)]
pub struct LangQuery {
    pub lang: Option<String>,
}

pub async fn login_page(headers: HeaderMap, Query(q): Query<LangQuery>) -> WebResult<Response> {
    let t = Tr::from_request(&headers, q.lang.as_deref());
    let page =
        |csrf| LoginPage {
            l: Layout::public(t, t.p("ログイン", "Sign in")), csrf, tenant: String::new(), email: String::new(), error: false, expired: false
        };
    let mut resp = login_form(&headers, page, StatusCode::OK)?;
    if let Some(l) = q.lang.as_deref().and_then(anpi_core::Lang::parse) {
        if let Ok(v) = format!("anpi_lang={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000", l.code()).parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// What the sign-in pages know of the client: its address (for throttling and the session
/// list) and browser.
pub fn client_info(st: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    ClientInfo {
        ip: crate::client_ip::resolve(peer.ip(), headers, &st.trusted_proxies).unwrap_or(peer.ip()).to_string(),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
    }
}

/// 429 with the wait, for throttled sign-in attempts. Says nothing about the account.
pub fn throttled(wait_ms: i64) -> Response {
    let secs = (wait_ms + 999) / 1000;
    let msg = format!("試行が多すぎます。{secs}秒後にもう一度お試しください (too many attempts: try again in {secs} s)");
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], crate::WebError::BadRequest(msg)).into_response()
}

/// Password sign-in. Failures are throttled per client address and per account name (known or
/// not), and count towards the account's lockout; every failure gets the same answer.
pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    certs: PeerCertificates,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> WebResult<Response> {
    let t = Tr::from_request(&headers, None);
    let now = st.clock.now();
    let client = client_info(&st, &headers, peer);
    if !login_csrf_ok(&headers, &f.csrf) {
        tracing::info!(ip = %client.ip, "sign-in form without a valid CSRF token");
        let page =
            |csrf| LoginPage { l: Layout::public(t, t.p("ログイン", "Sign in")), csrf, tenant: f.tenant, email: f.email, error: false, expired: true };
        return login_form(&headers, page, StatusCode::BAD_REQUEST);
    }
    let keys =
        [throttle_key("ip", &throttle_scope(&client.ip)), throttle_key("id", &format!("{}/{}", f.tenant.trim().to_lowercase(), f.email.trim().to_lowercase()))];
    // Taken and counted in one statement per key: parallel attempts cannot all pass.
    let wait = st.store.login_attempt(&keys, now).await?;
    if wait > 0 {
        tracing::warn!(ip = %client.ip, tenant = %f.tenant, "sign-in throttled");
        return Ok(throttled(wait));
    }
    let Some((scope, account)) = st.store.account_login(&f.tenant, &f.email, &f.password, now).await? else {
        st.store.audit_failed_sign_in(&f.tenant, &f.email, &client.ip, &client.sign_in_detail("password"), now).await?;
        tracing::info!(tenant = %f.tenant, ip = %client.ip, "failed sign-in");
        let page =
            |csrf| LoginPage { l: Layout::public(t, t.p("ログイン", "Sign in")), csrf, tenant: f.tenant, email: f.email, error: true, expired: false };
        return login_form(&headers, page, StatusCode::UNAUTHORIZED);
    };
    st.store.clear_login_failures(&keys).await?;
    // An admin of a tenant that requires client certificates gets no session without one.
    if let Err(denied) = crate::client_cert::guard(&st, &scope, &account, &certs, &client.ip, t, "sign-in").await {
        return Ok(denied);
    }
    let policy = st.store.security_policy(&scope).await?;
    let (stage, next) = if account.mfa {
        (SessionStage::Mfa, "/login/mfa")
    } else if policy.mfa_required.applies_to(account.role) {
        (SessionStage::Enrol, "/account/mfa")
    } else {
        (SessionStage::Full, "/")
    };
    let action = if stage == SessionStage::Full { "sign_in" } else { "password_accepted" };
    let e = anpi_store::audit::AuditEvent {
        actor: anpi_store::audit::Actor::Account(account.id),
        action,
        target: account.email.clone(),
        outcome: "ok",
        ip: &client.ip,
        detail: client.sign_in_detail(&format!("password, then {}", stage.code())),
    };
    let token = st.store.create_staged_session("account", account.id, Some(&scope), stage, &client, &e, now).await?;
    tracing::info!(tenant = scope.tenant_id(), account = account.id, stage = stage.code(), ip = %client.ip, "password accepted");
    Ok(([(header::SET_COOKIE, session_cookie(TENANT_COOKIE, &token))], Redirect::to(next)).into_response())
}

pub async fn logout(State(st): State<AppState>, c: Console, headers: HeaderMap, Form(f): Form<CsrfForm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    if let Some(token) = crate::session::cookie(&headers, TENANT_COOKIE) {
        st.store.sign_out(&c.scope, &token, &c.event("sign_out", c.account.email.clone()), st.clock.now()).await?;
    }
    Ok(([(header::SET_COOKIE, clear_cookie(TENANT_COOKIE))], Redirect::to("/login")).into_response())
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    l: Layout,
    csrf: String,
    error: Option<String>,
    min: usize,
}

pub async fn password_page(c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    render(&PasswordPage {
        l: Layout::console(&c, c.t.p("パスワード変更", "Change password")).with_flash(flash.message(c.t)),
        csrf: c.csrf.clone(),
        error: None,
        min: anpi_core::password::min_len(c.account.mfa),
    })
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

pub async fn change_password(State(st): State<AppState>, c: Console, Form(f): Form<ChangePasswordForm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    match st.store.change_password(&c.scope, c.account.id, &f.current, &f.new, &c.event("password_changed", ""), st.clock.now()).await {
        Ok(()) => {
            // Every session ended with the change; start a fresh one for this browser.
            let e = anpi_store::audit::AuditEvent { detail: "new session after the password change".into(), ..c.event("sign_in", c.account.email.clone()) };
            let token = st.store.create_session("account", c.account.id, Some(&c.scope), &e, st.clock.now()).await?;
            Ok(([(header::SET_COOKIE, session_cookie(TENANT_COOKIE, &token))], Redirect::to("/password?done=password")).into_response())
        }
        Err(anpi_store::StoreError::Invalid(p)) => {
            let page = PasswordPage {
                l: Layout::console(&c, c.t.p("パスワード変更", "Change password")),
                csrf: c.csrf.clone(),
                error: Some(problem(c.t, &p)),
                min: anpi_core::password::min_len(c.account.mfa),
            };
            Ok((StatusCode::BAD_REQUEST, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "reset_request.html")]
struct ResetRequestPage {
    l: Layout,
    sent: bool,
}

pub async fn reset_request_page(headers: HeaderMap, Query(q): Query<LangQuery>) -> WebResult<Response> {
    let t = Tr::from_request(&headers, q.lang.as_deref());
    render(&ResetRequestPage { l: Layout::public(t, t.p("パスワードの再設定", "Reset password")), sent: false })
}

#[derive(Deserialize)]
pub struct ResetRequestForm {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    email: String,
}

/// Mail for a password link (reset or first password).
pub fn reset_mail(base_url: &str, token: &str) -> (String, String) {
    let link = format!("{base_url}/password/reset/{token}");
    (
        "anpi パスワード設定のご案内 / Set your anpi password".to_string(),
        format!(
            "下のリンクからパスワードを設定してください（24時間有効）。\nSet your password with the link below (valid for 24 hours).\n\n{link}\n\n心当たりがない場合はこのメールを破棄してください。\nIf you did not ask for this, ignore this mail.\n"
        ),
    )
}

/// Mails a reset link. The answer is the same whether or not the account exists; requests are
/// throttled per address and per account name like sign-ins (each request counts), so nobody
/// can flood a mailbox.
pub async fn reset_request(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ResetRequestForm>,
) -> WebResult<Response> {
    let t = Tr::from_request(&headers, None);
    let base = st.base_url.clone();
    let now = st.clock.now();
    let client = client_info(&st, &headers, peer);
    let keys = [
        throttle_key("reset-ip", &throttle_scope(&client.ip)),
        throttle_key("reset", &format!("{}/{}", f.tenant.trim().to_lowercase(), f.email.trim().to_lowercase())),
    ];
    if st.store.login_attempt(&keys, now).await? > 0 {
        tracing::warn!(ip = %client.ip, tenant = %f.tenant, "password reset request throttled");
    } else {
        // The link is made and mailed after the answer, so an existing account takes no longer
        // to answer than a missing one.
        let (store, wake) = (st.store.clone(), st.wake.clone());
        tokio::spawn(async move {
            match store.request_password_reset(&f.tenant, &f.email, now, |token, _| reset_mail(&base, token)).await {
                Ok(true) => wake.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "password reset request failed"),
            }
        });
    }
    render(&ResetRequestPage { l: Layout::public(t, t.p("パスワードの再設定", "Reset password")), sent: true })
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    l: Layout,
    valid: bool,
    error: Option<String>,
    min: usize,
}

pub async fn reset_page(State(st): State<AppState>, headers: HeaderMap, Path(token): Path<String>) -> WebResult<Response> {
    let t = Tr::from_request(&headers, None);
    let valid = st.store.reset_token_valid(&token, st.clock.now()).await?;
    let page = ResetPage { l: Layout::public(t, t.p("パスワードの設定", "Set password")), valid, error: None, min: anpi_core::password::MIN_LEN };
    Ok(((if valid { StatusCode::OK } else { StatusCode::NOT_FOUND }), render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    new: String,
}

pub async fn reset(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<ResetForm>,
) -> WebResult<Response> {
    let t = Tr::from_request(&headers, None);
    let client = client_info(&st, &headers, peer);
    let e = anpi_store::audit::AuditEvent { ip: &client.ip, ..anpi_store::audit::AuditEvent::system("password_reset") };
    match st.store.reset_password(&token, &f.new, &e, st.clock.now()).await {
        Ok(()) => Ok(Redirect::to("/login").into_response()),
        Err(anpi_store::StoreError::Invalid(p)) => {
            let valid = st.store.reset_token_valid(&token, st.clock.now()).await?;
            let page = ResetPage {
                l: Layout::public(t, t.p("パスワードの設定", "Set password")),
                valid,
                error: Some(problem(t, &p)),
                min: anpi_core::password::MIN_LEN,
            };
            Ok((StatusCode::BAD_REQUEST, render(&page)?).into_response())
        }
        Err(e) => Err(WebError::from(e)),
    }
}
