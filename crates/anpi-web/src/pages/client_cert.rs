//! Client certificates for admin access (admins only): the tenant's CA certificate and the
//! switch that makes admins present a certificate it issued.
//!
//! Turning the switch on, or replacing the CA while it is on, is refused unless this very
//! request presents a certificate that verifies against the (new) CA: an admin cannot lock
//! themself out, like the IP allowlists' guard.

use super::{render, Flash, Layout};
use crate::client_cert::PeerCertificates;
use crate::client_ip::ClientIp;
use crate::error::WebResult;
use crate::i18n::problem;
use crate::session::Console;
use crate::AppState;
use anpi_core::clientcert::{ClientCa, Refusal};
use anpi_core::clock::format_local;
use anpi_core::Permission;
use anpi_store::{Problem, StoreError};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// The stored CA as shown.
pub struct CaView {
    pub subject: String,
    pub fingerprint: String,
    pub not_before: String,
    pub not_after: String,
    /// Outside its validity period now: nothing verifies.
    pub expired: bool,
}

#[derive(Template)]
#[template(path = "client_cert.html")]
struct ClientCertPage {
    l: Layout,
    csrf: String,
    ca: Option<CaView>,
    required: bool,
    /// What this request presents: `verified`, `invalid` (not from the CA, expired…), `none`.
    presented: &'static str,
    /// The PEM text to show again after an error.
    pem: String,
    error: Option<String>,
}

const LOCKOUT: &str = "この接続では、登録するCAが発行した有効なクライアント証明書が提示されていません。このままでは管理画面を使えなくなるため、保存しませんでした (you would lock yourself out: this connection does not present a valid client certificate issued by the CA)";

fn presented(ca: Option<&ClientCa>, certs: &PeerCertificates, now: anpi_core::Millis) -> &'static str {
    match (ca, certs.chain()) {
        (_, None) => "none",
        (Some(ca), chain) if ca.verify(chain, now).is_ok() => "verified",
        _ => "invalid",
    }
}

async fn show(st: &AppState, c: &Console, certs: &PeerCertificates, pem: String, error: Option<String>, flash: Option<String>) -> WebResult<Response> {
    let settings = st.store.client_cert_settings(&c.scope).await?;
    let now = st.clock.now();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = ClientCertPage {
        l: Layout::console(c, c.t.p("管理者のクライアント証明書", "Client certificates for admins")).with_flash(flash),
        csrf: c.csrf.clone(),
        presented: presented(settings.ca.as_ref(), certs, now),
        ca: settings.ca.map(|ca| CaView {
            expired: !ca.is_current(now),
            subject: ca.subject,
            fingerprint: ca.fingerprint,
            not_before: format_local(ca.not_before, &c.zone),
            not_after: format_local(ca.not_after, &c.zone),
        }),
        required: settings.admin_required,
        pem,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

pub async fn page(State(st): State<AppState>, c: Console, certs: PeerCertificates, Query(flash): Query<Flash>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    show(&st, &c, &certs, String::new(), None, flash.message(c.t)).await
}

#[derive(Deserialize)]
pub struct CaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ca_pem: String,
}

/// Stores a new CA certificate (replacing any earlier one).
pub async fn save_ca(State(st): State<AppState>, c: Console, certs: PeerCertificates, ip: ClientIp, Form(f): Form<CaForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&f.csrf)?;
    let ca = match ClientCa::from_pem(&f.ca_pem) {
        Ok(ca) => ca,
        Err(e) => return show(&st, &c, &certs, f.ca_pem, Some(e), None).await,
    };
    if st.store.client_cert_settings(&c.scope).await?.admin_required && ca.verify(certs.chain(), st.clock.now()).is_err() {
        return show(&st, &c, &certs, f.ca_pem, Some(LOCKOUT.into()), None).await;
    }
    let ca = st.store.set_client_ca(&c.scope, &f.ca_pem).await?;
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, ip = %ip.shown(), subject = %ca.subject, fingerprint = %ca.fingerprint, "client CA certificate set");
    c.audit(&st, "client_ca_changed", ca.subject.clone(), format!("sha256={} not_after={}", ca.fingerprint, format_local(ca.not_after, "UTC"))).await?;
    Ok(Redirect::to("/security/client-cert?done=saved").into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

/// Removes the CA certificate (only while certificates are not required).
pub async fn remove_ca(State(st): State<AppState>, c: Console, certs: PeerCertificates, Form(f): Form<RemoveForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&f.csrf)?;
    match st.store.remove_client_ca(&c.scope).await {
        Ok(()) => {
            c.audit(&st, "client_ca_removed", "", "").await?;
            Ok(Redirect::to("/security/client-cert?done=deleted").into_response())
        }
        Err(StoreError::Invalid(p)) => show(&st, &c, &certs, String::new(), Some(problem(c.t, &p)), None).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct RequireForm {
    #[serde(default)]
    csrf: String,
    /// A checkbox: present (any value) means on.
    required: Option<String>,
}

/// Turns the requirement on (only when this request's certificate verifies) or off.
pub async fn save_required(State(st): State<AppState>, c: Console, certs: PeerCertificates, ip: ClientIp, Form(f): Form<RequireForm>) -> WebResult<Response> {
    c.require(Permission::ManageSecurity)?;
    c.check_csrf(&f.csrf)?;
    let required = f.required.is_some();
    if required {
        let settings = st.store.client_cert_settings(&c.scope).await?;
        let Some(ca) = settings.ca else {
            return show(&st, &c, &certs, String::new(), Some(problem(c.t, &Problem::NeedClientCa)), None).await;
        };
        if let Err(why) = ca.verify(certs.chain(), st.clock.now()) {
            tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, reason = %why, "client certificate requirement refused: would lock the admin out");
            let msg = if why == Refusal::CaExpired { "CA証明書の有効期限が切れています (the CA certificate has expired)" } else { LOCKOUT };
            return show(&st, &c, &certs, String::new(), Some(msg.into()), None).await;
        }
    }
    match st.store.set_admin_cert_required(&c.scope, required).await {
        Ok(()) => {}
        Err(StoreError::Invalid(p)) => return show(&st, &c, &certs, String::new(), Some(problem(c.t, &p)), None).await,
        Err(e) => return Err(e.into()),
    }
    tracing::info!(tenant = c.scope.tenant_id(), by = c.account.id, ip = %ip.shown(), required, "admin client certificate requirement changed");
    c.audit(&st, "client_cert_requirement_changed", "", format!("admin_required={required}")).await?;
    Ok(Redirect::to("/security/client-cert?done=saved").into_response())
}
