//! Two-step sign-in: the second-factor step after the password, TOTP enrolment (QR code,
//! recovery codes shown once), turning it off, and the tenant's security policy page.

use super::auth::{client_info, throttled};
use super::{render, Flash, Layout};
use crate::error::{WebError, WebResult};
use crate::i18n::problem;
use crate::session::{session_cookie, Console, SignIn, TENANT_COOKIE};
use crate::AppState;
use anpi_core::Permission;
use anpi_store::audit::AuditEvent;
use anpi_store::mfa::{new_totp_secret, otpauth_url};
use anpi_store::{MfaRequirement, SecurityPolicy, SessionStage};
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
    /// The account has TOTP (else only recovery codes go in the code field).
    totp: bool,
    /// The account has passkeys: offer "use a passkey".
    passkeys: bool,
}

async fn second_factor_view(st: &AppState, s: &SignIn, error: bool) -> WebResult<SecondFactorPage> {
    Ok(SecondFactorPage {
        l: Layout::public(s.t, s.t.p("確認コード", "Verification code")),
        csrf: s.csrf.clone(),
        error,
        totp: st.store.totp_enabled(&s.scope, s.account.id).await?,
        passkeys: !st.store.passkeys(&s.scope, s.account.id).await?.is_empty(),
    })
}

pub async fn second_factor_page(State(st): State<AppState>, s: SignIn) -> WebResult<Response> {
    if s.stage != SessionStage::Mfa {
        return Ok(Redirect::to("/").into_response());
    }
    render(&second_factor_view(&st, &s, false).await?)
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
pub async fn second_factor(
    State(st): State<AppState>,
    s: SignIn,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> WebResult<Response> {
    if s.stage != SessionStage::Mfa {
        return Ok(Redirect::to("/").into_response());
    }
    s.check_csrf(&f.csrf)?;
    let attempt = FactorAttempt::new(&st, &s, &headers, peer);
    let wait = attempt.wait(&st).await?;
    if wait > 0 {
        return Ok(throttled(wait));
    }
    if st.store.verify_second_factor(&s.scope, s.account.id, &f.code, attempt.now).await? {
        let cookie = attempt.passed(&st, &s, "second factor").await?;
        return Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response());
    }
    if attempt.failed(&st, &s, "code").await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let page = second_factor_view(&st, &s, true).await?;
    Ok((StatusCode::UNAUTHORIZED, render(&page)?).into_response())
}

/// A sign-in step of the account behind `s`.
fn sign_in_event<'a>(s: &'a SignIn, action: &'a str, outcome: &'a str, detail: &str) -> AuditEvent<'a> {
    AuditEvent { actor: anpi_store::audit::Actor::Account(s.account.id), action, target: s.account.email.clone(), outcome, ip: &s.ip, detail: detail.into() }
}

pub(super) async fn audit_sign_in(st: &AppState, s: &SignIn, action: &str, outcome: &str, detail: &str) -> WebResult<()> {
    st.store.audit(Some(&s.scope), &sign_in_event(s, action, outcome, detail), st.clock.now()).await?;
    Ok(())
}

/// One second-factor attempt (a code or a passkey): throttled per client address and per
/// account; a failure counts towards the lockout like a wrong password.
pub(super) struct FactorAttempt {
    keys: [String; 2],
    client: anpi_store::ClientInfo,
    pub now: anpi_core::Millis,
}

impl FactorAttempt {
    pub(super) fn new(st: &AppState, s: &SignIn, headers: &HeaderMap, peer: SocketAddr) -> FactorAttempt {
        let client = client_info(st, headers, peer);
        let keys =
            [anpi_store::throttle_key("ip", &crate::client_ip::throttle_scope(&client.ip)), anpi_store::throttle_key("account", &s.account.id.to_string())];
        FactorAttempt { keys, client, now: st.clock.now() }
    }

    /// Takes the attempt (counted at once, atomically): milliseconds to wait, or 0 to go ahead.
    pub(super) async fn wait(&self, st: &AppState) -> WebResult<i64> {
        Ok(st.store.login_attempt(&self.keys, self.now).await?)
    }

    /// The factor was right: forgets the failures and replaces the half-way session by a full
    /// one (a new token: no session fixation). Returns the new session cookie.
    pub(super) async fn passed(&self, st: &AppState, s: &SignIn, how: &str) -> WebResult<HeaderValue> {
        st.store.clear_login_failures(&self.keys).await?;
        st.store.end_session(&s.token).await?;
        let e = sign_in_event(s, "sign_in", "ok", &self.client.sign_in_detail(how));
        let token = st.store.create_staged_session("account", s.account.id, Some(&s.scope), SessionStage::Full, &self.client, &e, st.clock.now()).await?;
        tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, how, "sign-in");
        Ok(session_cookie(TENANT_COOKIE, &token))
    }

    /// The factor was wrong: counts the failure; true when the account is now locked (its
    /// half-way session is then ended).
    pub(super) async fn failed(&self, st: &AppState, s: &SignIn, how: &str) -> WebResult<bool> {
        audit_sign_in(st, s, "sign_in_mfa_failed", "failed", &self.client.sign_in_detail(how)).await?;
        let policy = st.store.security_policy(&s.scope).await?;
        tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, ip = %self.client.ip, how, "wrong second factor");
        if st.store.note_failed_login(&s.scope, s.account.id, policy.lockout_threshold, self.now).await? {
            st.wake.notify_one();
            st.store.end_session(&s.token).await?;
            return Ok(true);
        }
        Ok(false)
    }
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
    /// Part-way through sign-in: a passkey can be enrolled here instead of an app.
    passkey_enrol: bool,
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
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {dim} {dim}" width="220" height="220" role="img" aria-label="QR"><rect width="100%" height="100%" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    )
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
        passkey_enrol: s.stage == SessionStage::Enrol,
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

pub async fn enrol(
    State(st): State<AppState>,
    s: SignIn,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<EnrolForm>,
) -> WebResult<Response> {
    if s.stage == SessionStage::Mfa {
        return Ok(Redirect::to("/login/mfa").into_response());
    }
    s.check_csrf(&f.csrf)?;
    if s.stage == SessionStage::Full && !st.store.reenter_password(&s.scope, s.account.id, &f.password, st.clock.now()).await? {
        return enrol_page(&st, &s, f.secret, Some(s.t.p("パスワードが違います。", "The password is not correct.").into())).await;
    }
    let e = sign_in_event(&s, "mfa_enabled", "ok", "totp");
    let codes = match st.store.enable_totp(&s.scope, s.account.id, f.secret.trim(), &f.code, &e, st.clock.now()).await {
        Ok(codes) => codes,
        Err(anpi_store::StoreError::Invalid(p)) => return enrol_page(&st, &s, f.secret, Some(problem(s.t, &p))).await,
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, "two-step sign-in enabled");
    let page = render(&CodesPage { l: Layout::public(s.t, s.t.p("リカバリーコード", "Recovery codes")), codes })?;
    if s.stage == SessionStage::Enrol {
        // Enrolment completes the sign-in.
        let client = client_info(&st, &headers, peer);
        st.store.end_session(&s.token).await?;
        let e = sign_in_event(&s, "sign_in", "ok", &client.sign_in_detail("enrolment"));
        let token = st.store.create_staged_session("account", s.account.id, Some(&s.scope), SessionStage::Full, &client, &e, st.clock.now()).await?;
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
    if !st.store.reenter_password(&c.scope, c.account.id, &f.password, st.clock.now()).await? {
        return Err(WebError::BadRequest("パスワードが違います (the password is not correct)".into()));
    }
    st.store.disable_mfa(&c.scope, c.account.id, &c.event("mfa_disabled", c.account.email.clone()), st.clock.now()).await?;
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
    let page =
        PolicyPage { l: Layout::console(c, c.t.p("セキュリティ設定", "Security settings")).with_flash(flash), csrf: c.csrf.clone(), p, options, error };
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
    match st.store.set_security_policy(&c.scope, &p, &c.event("security_policy_changed", ""), st.clock.now()).await {
        Ok(()) => {
            tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, mfa = p.mfa_required.code(), "security policy changed");
            Ok(Redirect::to("/security?done=saved").into_response())
        }
        Err(anpi_store::StoreError::Invalid(why)) => policy_page(&c, p, Some(problem(c.t, &why)), None),
        Err(e) => Err(e.into()),
    }
}
