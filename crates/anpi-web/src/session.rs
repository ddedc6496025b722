//! Session cookies, the authenticated-request extractors and CSRF checks.

use crate::error::WebError;
use crate::i18n::Tr;
use crate::AppState;
use anpi_core::{Permission, Role};
use anpi_store::audit::{Actor, AuditEvent};
use anpi_store::{Account, Principal, SessionStage, TenantScope};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

pub const TENANT_COOKIE: &str = "__Host-anpi";
pub const OPERATOR_COOKIE: &str = "__Host-anpi-op";

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `__Host-` session cookie: Secure, HttpOnly, SameSite=Lax, whole site, session-only.
pub fn session_cookie(name: &str, value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax")).unwrap_or(HeaderValue::from_static(""))
}

pub fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")).unwrap_or(HeaderValue::from_static(""))
}

/// The sign-in forms' CSRF cookie (there is no session yet): the form carries the same random
/// value, which a cross-site page can neither read nor set (`__Host-`, `SameSite=Strict`).
pub const LOGIN_CSRF_COOKIE: &str = "__Host-anpi-login";

/// The sign-in form's token: the browser's current one, else a new one with its cookie.
pub fn login_csrf(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, LOGIN_CSRF_COOKIE).filter(|t| t.len() == 43) {
        Some(t) => (t, None),
        None => {
            let t = anpi_store::random_token();
            let c = HeaderValue::from_str(&format!("{LOGIN_CSRF_COOKIE}={t}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=86400")).ok();
            (t, c)
        }
    }
}

/// Whether a sign-in form came from our own page (its token matches the cookie).
pub fn login_csrf_ok(headers: &HeaderMap, form_token: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| !form_token.is_empty() && same(&c, form_token))
}

pub fn query_lang(parts: &Parts) -> Option<String> {
    parts.uri.query()?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "lang").map(|(_, v)| v.to_string())
}

/// Constant-time string comparison for CSRF tokens (`subtle`).
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The session's CSRF token must come back with every form.
fn check_csrf(expected: &str, given: &str) -> Result<(), WebError> {
    if same(expected, given) {
        Ok(())
    } else {
        Err(WebError::BadRequest("フォームの有効期限が切れました。ページを再読み込みしてください (form expired, reload the page)".into()))
    }
}

/// A signed-in tenant user.
#[derive(Debug, Clone)]
pub struct Console {
    pub scope: TenantScope,
    pub account: Account,
    pub tenant_code: String,
    pub csrf: String,
    pub t: Tr,
    /// The client's address, for the audit log ("unknown" when it cannot be told).
    pub ip: String,
    /// The tenant's time zone (IANA name): times are stored in UTC and shown in it.
    pub zone: String,
    /// Where denials are recorded.
    denials: DenialLog,
}

/// Records refused requests in the tenant's audit log without holding up the refusal.
#[derive(Debug, Clone)]
struct DenialLog {
    store: anpi_store::Store,
    at: anpi_core::Millis,
}

impl Console {
    /// Checks a permission of the user's role; a refusal is written to the audit log.
    pub fn require(&self, p: Permission) -> Result<(), WebError> {
        if self.account.role.can(p) {
            return Ok(());
        }
        tracing::info!(account = self.account.id, tenant = self.scope.tenant_id(), permission = ?p, "permission denied");
        let (log, scope, actor, ip) = (self.denials.clone(), self.scope, Actor::Account(self.account.id), self.ip.clone());
        tokio::spawn(async move {
            let e = AuditEvent { actor, action: "permission_denied", target: String::new(), outcome: "denied", ip: &ip, detail: format!("{p:?}") };
            if let Err(err) = log.store.audit(Some(&scope), &e, log.at).await {
                tracing::error!(error = %err, "cannot record a denial in the audit log");
            }
        });
        Err(WebError::Forbidden)
    }
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        check_csrf(&self.csrf, token)
    }
    pub fn can(&self, p: Permission) -> bool {
        self.account.role.can(p)
    }
    pub fn role(&self) -> Role {
        self.account.role
    }
    /// An action of this user, for the store to record in the same transaction as the change.
    pub fn event<'a>(&'a self, action: &'a str, target: impl Into<String>) -> AuditEvent<'a> {
        AuditEvent { actor: Actor::Account(self.account.id), action, target: target.into(), outcome: "ok", ip: &self.ip, detail: String::new() }
    }

    /// Records an action that changes nothing (an export, a view) in the tenant's audit log.
    /// The caller fails when the record cannot be written.
    pub async fn audit(&self, st: &AppState, action: &str, target: impl Into<String>, detail: impl Into<String>) -> Result<(), WebError> {
        self.audit_outcome(st, action, "ok", target, detail).await
    }

    /// [`Console::audit`] with another outcome (`denied`, `failed`).
    pub async fn audit_outcome(
        &self,
        st: &AppState,
        action: &str,
        outcome: &str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> Result<(), WebError> {
        let e = AuditEvent { outcome, detail: detail.into(), ..self.event(action, target) };
        st.store.audit(Some(&self.scope), &e, st.clock.now()).await?;
        Ok(())
    }

    /// The people this user may see and message: `None` for everyone, else their ids (a
    /// distributor scoped to departments or groups).
    /// The caller's access to the tenant's incidents (a limited distributor's reach in SQL).
    pub async fn incident_access(&self, st: &AppState) -> Result<anpi_store::IncidentAccess, WebError> {
        Ok(st.store.incident_access(&self.scope, self.account.reach.as_ref()).await?)
    }

    /// An incident beyond a limited distributor's reach: 403, recorded like other denials.
    pub fn outside_reach(&self, incident: i64) -> WebError {
        tracing::info!(account = self.account.id, tenant = self.scope.tenant_id(), incident, "incident outside the distributor's reach");
        let (log, scope, actor, ip) = (self.denials.clone(), self.scope, Actor::Account(self.account.id), self.ip.clone());
        tokio::spawn(async move {
            let e = AuditEvent {
                actor,
                action: "permission_denied",
                target: format!("incident:{incident}"),
                outcome: "denied",
                ip: &ip,
                detail: "outside reach".into(),
            };
            if let Err(err) = log.store.audit(Some(&scope), &e, log.at).await {
                tracing::error!(error = %err, "cannot record a denial in the audit log");
            }
        });
        WebError::Forbidden
    }

    pub async fn reach(&self, st: &AppState) -> Result<Option<std::collections::HashSet<i64>>, WebError> {
        match &self.account.reach {
            Some(target) => Ok(Some(st.store.people_within(&self.scope, target).await?)),
            None => Ok(None),
        }
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    /// A fully signed-in tenant user; half-way sign-ins are sent on to finish.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let s = SignIn::from_request_parts(parts, state).await?;
        match s.stage {
            SessionStage::Full => Ok(Console {
                scope: s.scope,
                account: s.account,
                tenant_code: s.tenant_code,
                csrf: s.csrf,
                t: s.t,
                ip: s.ip,
                zone: s.zone,
                denials: DenialLog { store: state.store.clone(), at: state.clock.now() },
            }),
            SessionStage::Mfa => Err(Redirect::to("/login/mfa").into_response()),
            SessionStage::Enrol => Err(Redirect::to("/account/mfa").into_response()),
        }
    }
}

/// A tenant user part-way through sign-in (second factor or enrolment pending) or fully
/// signed in: for the sign-in and enrolment pages.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub scope: TenantScope,
    pub account: Account,
    pub tenant_code: String,
    pub csrf: String,
    pub stage: SessionStage,
    /// The session cookie, to end this session when it is replaced.
    pub token: String,
    pub t: Tr,
    pub ip: String,
    /// The tenant's time zone (IANA name), for showing times.
    pub zone: String,
}

impl SignIn {
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        check_csrf(&self.csrf, token)
    }
}

impl FromRequestParts<AppState> for SignIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let t = Tr::from_request(&parts.headers, query_lang(parts).as_deref());
        let Some(token) = cookie(&parts.headers, TENANT_COOKIE) else {
            return Err(Redirect::to("/login").into_response());
        };
        match state.store.session(&token, state.clock.now(), state.sessions).await {
            Ok(Some(ctx)) => match ctx.principal {
                Principal::Account { scope, account, tenant_code, time_zone } => {
                    crate::client_ip::guard_console(parts, state, &scope, &account, t).await?;
                    let ip = crate::client_ip::ClientIp(crate::client_ip::of_request(parts, &state.trusted_proxies)).shown();
                    let certs = parts.extensions.get::<crate::PeerCertificates>().cloned().unwrap_or_default();
                    crate::client_cert::guard(state, &scope, &account, &certs, &ip, t, "request").await?;
                    Ok(SignIn { scope, account, tenant_code, csrf: ctx.csrf, stage: ctx.stage, token, t, ip, zone: time_zone })
                }
                Principal::Operator { .. } => Err(Redirect::to("/login").into_response()),
            },
            Ok(None) => Err(([(header::SET_COOKIE, clear_cookie(TENANT_COOKIE))], Redirect::to("/login")).into_response()),
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

/// A signed-in operator (operator listener only).
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: i64,
    pub email: String,
    pub csrf: String,
}

impl Operator {
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        check_csrf(&self.csrf, token)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, OPERATOR_COOKIE) else {
            return Err(Redirect::to("/login").into_response());
        };
        match state.store.session(&token, state.clock.now(), state.sessions).await {
            Ok(Some(ctx)) => match ctx.principal {
                Principal::Operator { id, email } => Ok(Operator { id, email, csrf: ctx.csrf }),
                Principal::Account { .. } => Err(Redirect::to("/login").into_response()),
            },
            Ok(None) => Err(([(header::SET_COOKIE, clear_cookie(OPERATOR_COOKIE))], Redirect::to("/login")).into_response()),
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_host_only_secure_httponly_samesite() {
        for name in [TENANT_COOKIE, OPERATOR_COOKIE] {
            assert!(name.starts_with("__Host-"), "{name}");
            let set = session_cookie(name, "tok");
            assert_eq!(set.to_str().unwrap(), format!("{name}=tok; Path=/; Secure; HttpOnly; SameSite=Lax"));
            // No Domain (host-only) and no Expires/Max-Age (gone when the browser closes).
            let s = set.to_str().unwrap().to_ascii_lowercase();
            assert!(!s.contains("domain=") && !s.contains("expires=") && !s.contains("max-age="), "{s}");
            assert!(clear_cookie(name).to_str().unwrap().contains("Max-Age=0"));
        }
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
