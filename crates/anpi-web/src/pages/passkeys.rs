//! Passkeys (WebAuthn) in the console: adding one on "My account" (after the password again)
//! or while enrolling part-way through sign-in, removing one, and using one at the second
//! sign-in step. The browser side is `static/passkey.js`; options and results travel as JSON.
//! The relying party (RP id and origin) comes from `--base-url`. Errors are generic for the
//! client; the reasons go to the log. Verification itself is in `anpi_store::passkeys`.

// The JSON handlers return their error responses directly (`Result<_, Response>`).
#![allow(clippy::result_large_err)]

use super::mfa::FactorAttempt;
use crate::error::{WebError, WebResult};
use crate::i18n::{problem, Tr};
use crate::session::{Console, SignIn};
use crate::AppState;
use anpi_store::audit::AuditEvent;
use anpi_store::passkeys::{AuthenticationResponse, RegistrationResponse, RelyingParty};
use anpi_store::{SessionStage, StoreError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// A JSON answer; every error is `{"error": "…"}` with a message safe to show.
type JsonResult = Result<Response, Response>;

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn bad_request(t: Tr) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        t.p("リクエストが正しくありません。ページを再読み込みしてください。", "The request was not understood. Please reload the page."),
    )
}

fn internal(t: Tr, detail: impl std::fmt::Display) -> Response {
    tracing::error!(%detail, "passkey request failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        t.p("エラーが発生しました。しばらくしてからもう一度お試しください。", "Something went wrong, please try again."),
    )
}

/// A store error as JSON: validation messages (already generic) are shown, the rest logged.
fn store_error(t: Tr, e: StoreError) -> Response {
    match e {
        StoreError::Invalid(p) | StoreError::Conflict(p) => json_error(StatusCode::BAD_REQUEST, &problem(t, &p)),
        StoreError::NotFound => bad_request(t),
        StoreError::Throttled(wait) => throttled(t, wait),
        StoreError::Busy => busy(t),
        other => internal(t, other),
    }
}

fn web_error(t: Tr, e: WebError) -> Response {
    match e {
        WebError::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, &m),
        WebError::Forbidden => json_error(StatusCode::FORBIDDEN, t.p("この操作の権限がありません。", "You are not allowed to do this.")),
        WebError::NotFound => bad_request(t),
        WebError::Throttled(wait) => throttled(t, wait),
        WebError::Busy => busy(t),
        WebError::Internal(d) => internal(t, d),
    }
}

fn busy(t: Tr) -> Response {
    let msg = t.p("ただいま混み合っています。数秒後にもう一度お試しください。", "Busy: please try again in a few seconds.");
    (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "2")], Json(json!({ "error": msg }))).into_response()
}

/// Reads a JSON body; a malformed one gets a generic answer (details in the log).
fn parse<T: DeserializeOwned>(t: Tr, body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        tracing::info!(error = %e, "malformed passkey request");
        bad_request(t)
    })
}

fn relying_party(st: &AppState, t: Tr) -> Result<RelyingParty, Response> {
    RelyingParty::from_base_url(&st.base_url).ok_or_else(|| internal(t, format!("no WebAuthn relying party from --base-url {}", st.base_url)))
}

fn check_csrf(s: &SignIn, token: &str) -> Result<(), Response> {
    s.check_csrf(token).map_err(|e| web_error(s.t, e))
}

fn throttled(t: Tr, wait_ms: i64) -> Response {
    let secs = (wait_ms + 999) / 1000;
    let msg = format!("{} ({secs} s)", t.p("試行が多すぎます。しばらくしてからもう一度お試しください。", "Too many attempts: try again later."));
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], Json(json!({ "error": msg }))).into_response()
}

/// Adding a passkey: from a full session (My account), or while enrolling when the tenant
/// requires MFA; not while the second factor is pending.
fn may_register(s: &SignIn) -> Result<(), Response> {
    match s.stage {
        SessionStage::Full | SessionStage::Enrol => Ok(()),
        SessionStage::Mfa => Err(json_error(StatusCode::FORBIDDEN, s.t.p("先に2段階目の確認をしてください。", "Finish signing in first."))),
    }
}

#[derive(Deserialize)]
pub struct RegisterOptionsRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/passkeys/options`: re-authenticates (the password, in a full session) and
/// returns `{"publicKey": PublicKeyCredentialCreationOptions}`.
pub async fn register_options(State(st): State<AppState>, s: SignIn, body: Bytes) -> JsonResult {
    may_register(&s)?;
    let req: RegisterOptionsRequest = parse(s.t, &body)?;
    check_csrf(&s, &req.csrf)?;
    let now = st.clock.now();
    if s.stage == SessionStage::Full {
        // Re-authentication: throttled per account and counted towards the lockout, like sign-in.
        match st.store.reenter_password(&s.scope, s.account.id, &req.password, now).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(tenant = s.scope.tenant_id(), account = s.account.id, "wrong password before adding a passkey");
                return Err(json_error(StatusCode::BAD_REQUEST, s.t.p("パスワードが違います。", "The password is not correct.")));
            }
            Err(anpi_store::StoreError::Throttled(wait)) => return Err(throttled(s.t, wait)),
            Err(e) => return Err(store_error(s.t, e)),
        }
    }
    let rp = relying_party(&st, s.t)?;
    let options = st.store.begin_passkey_registration(&s.scope, &s.account, &rp, now).await.map_err(|e| store_error(s.t, e))?;
    Ok(Json(json!({ "publicKey": options })).into_response())
}

#[derive(Deserialize)]
pub struct RegisterRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    credential: RegistrationResponse,
}

/// `POST /account/passkeys`: verifies and stores the new credential. Answers
/// `{"next": URL, "codes": [...]}`; `codes` are new recovery codes when this is the account's
/// first second factor (to show once). Enrolling part-way through sign-in completes it.
pub async fn register(State(st): State<AppState>, s: SignIn, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> JsonResult {
    may_register(&s)?;
    let req: RegisterRequest = parse(s.t, &body)?;
    check_csrf(&s, &req.csrf)?;
    let rp = relying_party(&st, s.t)?;
    let codes =
        st.store.finish_passkey_registration(&s.scope, s.account.id, &rp, &req.credential, &req.name, st.clock.now()).await.map_err(|e| store_error(s.t, e))?;
    super::mfa::audit_sign_in(&st, &s, "mfa_enabled", "ok", "passkey").await.map_err(|e| web_error(s.t, e))?;
    if s.stage == SessionStage::Enrol {
        // Enrolment completes the sign-in.
        let cookie = FactorAttempt::new(&st, &s, &headers, peer).passed(&st, &s, "passkey enrolment").await.map_err(|e| web_error(s.t, e))?;
        return Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "next": "/", "codes": codes }))).into_response());
    }
    Ok(Json(json!({ "next": "/account?done=saved#passkeys", "codes": codes })).into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// `POST /account/passkeys/{id}/delete` (a plain form): removes one of one's passkeys after
/// the password again. The last second factor cannot go when the tenant requires MFA; when
/// none is left, the recovery codes go too.
pub async fn delete(State(st): State<AppState>, c: Console, Path(id): Path<i64>, Form(f): Form<DeleteForm>) -> WebResult<Response> {
    c.check_csrf(&f.csrf)?;
    let keys = st.store.passkeys(&c.scope, c.account.id).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(WebError::NotFound);
    }
    if !st.store.reenter_password(&c.scope, c.account.id, &f.password, st.clock.now()).await? {
        return Err(WebError::BadRequest("パスワードが違います (the password is not correct)".into()));
    }
    let last = keys.len() == 1 && !st.store.totp_enabled(&c.scope, c.account.id).await?;
    if last && st.store.security_policy(&c.scope).await?.mfa_required.applies_to(c.account.role) {
        return Err(WebError::BadRequest(
            "組織の設定で2段階認証が必須のため、最後のパスキーは削除できません (your organisation requires two-step sign-in: the last passkey cannot be removed)".into(),
        ));
    }
    let e = c.event("passkey_removed", format!("passkey:{id}"));
    if last {
        // The account's last second factor: everything goes (TOTP was already off).
        st.store.disable_mfa(&c.scope, c.account.id, &AuditEvent { detail: "last second factor".into(), ..e }, st.clock.now()).await?;
    } else {
        st.store.delete_passkey(&c.scope, c.account.id, id, &e, st.clock.now()).await?;
    }
    tracing::info!(tenant = c.scope.tenant_id(), account = c.account.id, passkey = id, "passkey removed");
    Ok(Redirect::to("/account?done=deleted").into_response())
}

#[derive(Deserialize)]
pub struct LoginOptionsRequest {
    #[serde(default)]
    csrf: String,
}

fn second_step(s: &SignIn) -> Result<(), Response> {
    if s.stage == SessionStage::Mfa {
        Ok(())
    } else {
        Err(json_error(StatusCode::BAD_REQUEST, s.t.p("ログインし直してください。", "Please sign in again.")))
    }
}

/// `POST /login/passkey/options`: `{"publicKey": PublicKeyCredentialRequestOptions}` for the
/// account whose password was just accepted.
pub async fn login_options(State(st): State<AppState>, s: SignIn, body: Bytes) -> JsonResult {
    second_step(&s)?;
    let req: LoginOptionsRequest = parse(s.t, &body)?;
    check_csrf(&s, &req.csrf)?;
    let rp = relying_party(&st, s.t)?;
    let options = st.store.begin_passkey_login(&s.scope, s.account.id, &rp, st.clock.now()).await.map_err(|e| store_error(s.t, e))?;
    Ok(Json(json!({ "publicKey": options })).into_response())
}

#[derive(Deserialize)]
pub struct LoginRequest {
    #[serde(default)]
    csrf: String,
    credential: AuthenticationResponse,
}

/// `POST /login/passkey`: the second step with a passkey. Throttled, and a refused assertion
/// counts towards the lockout like a wrong code. Success swaps the half-way session for a
/// full one and answers `{"next": "/"}`.
pub async fn login(State(st): State<AppState>, s: SignIn, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> JsonResult {
    second_step(&s)?;
    let req: LoginRequest = parse(s.t, &body)?;
    check_csrf(&s, &req.csrf)?;
    let rp = relying_party(&st, s.t)?;
    let attempt = FactorAttempt::new(&st, &s, &headers, peer);
    let wait = attempt.wait(&st).await.map_err(|e| web_error(s.t, e))?;
    if wait > 0 {
        return Err(throttled(s.t, wait));
    }
    if st.store.finish_passkey_login(&s.scope, s.account.id, &rp, &req.credential, attempt.now).await.map_err(|e| store_error(s.t, e))? {
        let cookie = attempt.passed(&st, &s, "passkey").await.map_err(|e| web_error(s.t, e))?;
        return Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "next": "/" }))).into_response());
    }
    let locked = attempt.failed(&st, &s, "passkey").await.map_err(|e| web_error(s.t, e))?;
    let msg = s.t.p("パスキーを確認できませんでした。", "The passkey could not be verified.");
    let body = if locked { json!({ "error": msg, "next": "/login" }) } else { json!({ "error": msg }) };
    Err((StatusCode::UNAUTHORIZED, Json(body)).into_response())
}
