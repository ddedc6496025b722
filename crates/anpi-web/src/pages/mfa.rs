//! Two-step sign-in: the second-factor step after the password, TOTP enrolment (QR code,
//! recovery codes shown once), turning it off, and the tenant's security policy page.

use super::auth::{client_info, throttled};
use super::{render, Flash, Layout};
use crate::error::{WebError, WebResult};
use crate::session::{session_cookie, Console, SignIn, TENANT_COOKIE};
use crate::AppState;
use anpi_core::Permission;
use anpi_store::mfa::{new_totp_secret, otpauth_url};
use anpi_store::{MfaRequirement, SecurityPolicy, SessionStage};
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct SecondFactorPage {
    l: Layout,
    csrf: String,
    error: bool,
}

pub async fn second_factor_page(s: SignIn) -> WebResult<Response> {
    if s.stage != SessionStage::Mfa {
        return Ok(Redirect::to("/").into_response());
    }
    render(&SecondFactorPage { l: Layout::public(s.t, s.t.p("確認コード", "Verification code")), csrf: s.csrf.clone(), error: false })
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// The second step: a TOTP code or a recovery code. Failures are throttled and count towards
/// the lockout, like wrong passwords.
pub async fn second_factor(State(st): State<AppState>, s: SignIn, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CodeForm>) -> WebResult<Response> {
    if s.stage != SessionStage::Mfa {
        return Ok(Redirect::to("/").into_response());
    }
    s.check_csrf(&f.csrf)?;
    let now = st.clock.now();
    let client = client_info(&st, &headers, peer);
    let keys = [format!("ip:{}", client.ip), format!("account:{}", s.account.id)];
    let wait = st.store.login_wait(&keys, now).await?;
    if wait > 0 {
        return Ok(throttled(s.t, wait));
    }
    if st.store.verify_second_factor(&s.scope, s.account.id, &f.code, now).await? {
        st.store.clear_login_failures(&keys).await?;
        return full_session(&st, &s, &client, "/").await;
    }
    st.store.note_login_failure(&keys, now).await?;
    let policy = st.store.security_policy(&s.scope).await?;
    tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, ip = %client.ip, "wrong second factor");
    if st.store.note_failed_login(&s.scope, s.account.id, policy.lockout_threshold, now).await? {
        st.store.end_session(&s.token).await?;
        return Ok(Redirect::to("/login").into_response());
    }
    let page = SecondFactorPage { l: Layout::public(s.t, s.t.p("確認コード", "Verification code")), csrf: s.csrf.clone(), error: true };
    Ok((StatusCode::UNAUTHORIZED, render(&page)?).into_response())
}

/// Replaces a half-way session by a full one (a new token: no session fixation).
async fn full_session(st: &AppState, s: &SignIn, client: &anpi_store::ClientInfo, next: &str) -> WebResult<Response> {
    st.store.end_session(&s.token).await?;
    let token = st.store.create_staged_session("account", s.account.id, Some(&s.scope), SessionStage::Full, client, st.clock.now()).await?;
    tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, "sign-in");
    Ok(([(header::SET_COOKIE, session_cookie(TENANT_COOKIE, &token))], Redirect::to(next)).into_response())
}

#[derive(Template)]
#[template(path = "mfa_enrol.html")]
struct EnrolPage {
    l: Layout,
    csrf: String,
    secret: String,
    qr_svg: String,
    /// Re-authentication is needed (a full session); a just-signed-in enrolment is not asked again.
    ask_password: bool,
    required: bool,
    error: Option<String>,
}

/// An `otpauth://` URL as an inline SVG QR code (no external service, no JavaScript).
fn qr_svg(text: &str) -> String {
    let Ok(qr) = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium) else { return String::new() };
    let (n, border) = (qr.size(), 4);
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let dim = n + 2 * border;
    format!(r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {dim} {dim}" width="220" height="220" role="img" aria-label="QR"><rect width="100%" height="100%" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##)
}

async fn enrol_page(st: &AppState, s: &SignIn, secret: String, error: Option<String>) -> WebResult<Response> {
    let required = st.store.security_policy(&s.scope).await?.mfa_required.applies_to(s.account.role);
    let issuer = format!("anpi {}", s.tenant_code);
    let page = EnrolPage {
        l: Layout::public(s.t, s.t.p("2段階認証の設定", "Set up two-step sign-in")),
        csrf: s.csrf.clone(),
        qr_svg: qr_svg(&otpauth_url(&secret, &issuer, &s.account.email)),
        secret,
        ask_password: s.stage == SessionStage::Full,
        required,
        error: error.clone(),
    };
    Ok(((if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }), render(&page)?).into_response())
}

pub async fn enrol_form(State(st): State<AppState>, s: SignIn) -> WebResult<Response> {
    if s.stage == SessionStage::Mfa {
        return Ok(Redirect::to("/login/mfa").into_response());
    }
    enrol_page(&st, &s, new_totp_secret(), None).await
}

#[derive(Deserialize)]
pub struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "mfa_codes.html")]
struct CodesPage {
    l: Layout,
    codes: Vec<String>,
}

pub async fn enrol(State(st): State<AppState>, s: SignIn, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<EnrolForm>) -> WebResult<Response> {
    if s.stage == SessionStage::Mfa {
        return Ok(Redirect::to("/login/mfa").into_response());
    }
    s.check_csrf(&f.csrf)?;
    if s.stage == SessionStage::Full && !st.store.verify_account_password(&s.scope, s.account.id, &f.password).await? {
        return enrol_page(&st, &s, f.secret, Some(s.t.p("パスワードが違います。", "The password is not correct.").into())).await;
    }
    let codes = match st.store.enable_totp(&s.scope, s.account.id, f.secret.trim(), &f.code, st.clock.now()).await {
        Ok(codes) => codes,
        Err(anpi_store::StoreError::Invalid(m)) => return enrol_page(&st, &s, f.secret, Some(m)).await,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, "two-step sign-in enabled");
    let page = render(&CodesPage { l: Layout::public(s.t, s.t.p("リカバリーコード", "Recovery codes")), codes })?;
    if s.stage == SessionStage::Enrol {
        // Enrolment completes the sign-in.
        let client = client_info(&st, &headers, peer);
        st.store.end_session(&s.token).await?;
        let token = st.store.create_staged_session("account", s.account.id, Some(&s.scope), SessionStage::Full, &client, st.clock.now()).await?;
        return Ok(([(header::SET_COOKIE, session_cookie(TENANT_COOKIE, &token))], page).into_response());
    }
    Ok(page)
}

#[derive(Deserialize)]
pub struct PasswordConfirm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

pub async fn disable(State(st): State<AppState>, c: Console, Form(f): Form<PasswordConfirm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    if st.store.security_policy(&c.scope).await?.mfa_required.applies_to(c.account.role) {
        return Err(WebError::BadRequest("組織の設定で2段階認証が必須のため、無効にできません (your organisation requires two-step sign-in)".into()));
    }
    if !st.store.verify_account_password(&c.scope, c.account.id, &f.password).await? {
        return Err(WebError::BadRequest("パスワードが違います (the password is not correct)".into()));
    }
    st.store.disable_mfa(&c.scope, c.account.id).await?;
    tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, "two-step sign-in disabled");
    Ok(Redirect::to("/account?done=saved").into_response())
}

// ---- the tenant's security policy ----

#[derive(Template)]
#[template(path = "security.html")]
struct PolicyPage {
    l: Layout,
    csrf: String,
    p: SecurityPolicy,
    options: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

fn policy_page(c: &Console, p: SecurityPolicy, error: Option<String>, flash: Option<String>) -> WebResult<Response> {
    let options = MfaRequirement::ALL
        .iter()
        .map(|m| {
            let label = match m {
                MfaRequirement::Nobody => c.t.p("必須にしない", "not required"),
                MfaRequirement::Admins => c.t.p("システム管理者に必須", "required for admins"),
                MfaRequirement::Distributors => c.t.p("管理者と配信権限に必須", "required for admins and distributors"),
                MfaRequirement::Everyone => c.t.p("全員に必須", "required for everyone"),
            };
            (m.code(), label)
        })
        .collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = PolicyPage { l: Layout::console(c, c.t.p("セキュリティ設定", "Security settings")).with_flash(flash), csrf: c.csrf.clone(), p, options, error };
    Ok((status, render(&page)?).into_response())
}

pub async fn policy(State(st): State<AppState>, c: Console, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    let p = st.store.security_policy(&c.scope).await?;
    policy_page(&c, p, None, flash.message(c.t))
}

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mfa_required: String,
    #[serde(default)]
    lockout_threshold: String,
    #[serde(default)]
    idle_min: String,
    #[serde(default)]
    absolute_min: String,
}

pub async fn save_policy(State(st): State<AppState>, c: Console, Form(f): Form<PolicyForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&f.csrf)?;
    let num = |v: &str| v.trim().parse::<i64>().unwrap_or(-1);
    let p = SecurityPolicy {
        mfa_required: MfaRequirement::parse(&f.mfa_required).unwrap_or_default(),
        lockout_threshold: num(&f.lockout_threshold),
        idle_min: num(&f.idle_min),
        absolute_min: num(&f.absolute_min),
    };
    match st.store.set_security_policy(&c.scope, &p).await {
        Ok(()) => {
            tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, mfa = p.mfa_required.code(), "security policy changed");
            Ok(Redirect::to("/security?done=saved").into_response())
        }
        Err(anpi_store::StoreError::Invalid(m)) => policy_page(&c, p, Some(m), None),
        Err(e) => Err(e.into()),
    }
}
