//! Client certificates (mutual TLS) for admin access: the chain the client presented in the
//! TLS handshake, and the tenant's requirement checked against it on sign-in and on every
//! console request of an admin. Distributors, members and answer pages are not affected.
//!
//! Only the built-in TLS listener sees certificates; a certificate forwarded by a proxy in a
//! header is never believed, so behind a TLS-terminating proxy a tenant that requires
//! certificates has no admin access at all.

use crate::error::WebError;
use crate::i18n::Tr;
use crate::pages::{render, Layout};
use crate::AppState;
use anpi_core::clientcert::Refusal;
use anpi_core::Role;
use anpi_store::{Account, TenantScope};
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

/// The certificate chain the client presented in the TLS handshake, end certificate first.
/// The TLS listener puts it in every request's extensions; `None` (or absent) over plain HTTP
/// and when the client sent none.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Option<Arc<Vec<CertificateDer<'static>>>>);

impl PeerCertificates {
    pub fn chain(&self) -> Option<&[CertificateDer<'static>]> {
        self.0.as_deref().map(Vec::as_slice)
    }
}

impl FromRequestParts<AppState> for PeerCertificates {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<PeerCertificates>().cloned().unwrap_or_default())
    }
}

/// Whether `certs` satisfy the tenant's requirement for `account` now: `Ok` for non-admins and
/// when nothing is required, else the reason for refusing.
pub async fn check(state: &AppState, scope: &TenantScope, account: &Account, certs: &PeerCertificates) -> Result<Result<(), String>, WebError> {
    if account.role != Role::Admin {
        return Ok(Ok(()));
    }
    let settings = state.store.client_cert_settings(scope).await?;
    if !settings.admin_required {
        return Ok(Ok(()));
    }
    Ok(match settings.ca {
        Some(ca) => ca.verify(certs.chain(), state.clock.now()).map_err(|r: Refusal| r.to_string()),
        None => Err("the stored CA certificate is unreadable".into()),
    })
}

/// Refuses an admin of a tenant that requires client certificates when `certs` do not verify:
/// logged, written to the tenant's audit log (`client_cert_denied`), and answered with the
/// generic denial page. `during` says where (`sign-in`, `request`).
pub async fn guard(state: &AppState, scope: &TenantScope, account: &Account, certs: &PeerCertificates, ip: &str, t: Tr, during: &str) -> Result<(), Response> {
    let why = match check(state, scope, account, certs).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(why)) => why,
        Err(e) => return Err(e.into_response()),
    };
    tracing::warn!(tenant = scope.tenant_id(), account = account.id, %ip, during, reason = %why, "admin access refused: client certificate required");
    let e = anpi_store::audit::AuditEvent {
        actor: anpi_store::audit::Actor::Account(account.id),
        action: "client_cert_denied",
        target: account.email.clone(),
        outcome: "denied",
        ip,
        detail: format!("{during}: {why}"),
    };
    if let Err(err) = state.store.audit(Some(scope), &e, state.clock.now()).await {
        tracing::error!(error = %err, "audit log write failed");
    }
    Err(denied(t))
}

#[derive(Template)]
#[template(path = "cert_denied.html")]
struct DeniedPage {
    l: Layout,
}

/// 403: admin access from this device is not allowed (nothing about why).
pub fn denied(t: Tr) -> Response {
    let page = DeniedPage { l: Layout::public(t, t.p("アクセスできません", "Access not allowed")) };
    match render(&page) {
        Ok(body) => (StatusCode::FORBIDDEN, body).into_response(),
        Err(e) => e.into_response(),
    }
}
