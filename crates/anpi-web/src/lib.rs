//! anpi HTTP: the answer page, the tenant console, the operator console (its own listener).
//! Pages are server-rendered and work without JavaScript.

mod client_cert;
mod client_ip;
pub mod clock_sync;
mod error;
mod i18n;
pub mod live;
mod pages;
mod request_id;
mod session;

pub use client_cert::PeerCertificates;
pub use error::WebError;
pub use i18n::Tr;

use anpi_core::Clock;
use anpi_intake::Intake;
use anpi_notify::MailCatcher;
use anpi_store::{SessionPolicy, Store};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::Router;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

/// Upload and form bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Public URL of the tenant listener, no trailing slash (used in mail links).
    pub base_url: String,
    pub sessions: SessionPolicy,
    /// Answer events for live dashboards (this node's, and on PostgreSQL the other nodes'
    /// through [`live::relay`]).
    pub events: tokio::sync::broadcast::Sender<live::AnswerEvent>,
    /// Wakes the outbox worker when new rows are queued.
    pub wake: Arc<tokio::sync::Notify>,
    /// Set in demo mode: the page listing caught mail.
    pub catcher: Option<MailCatcher>,
    /// Whether the system clock is synchronised (for `/health`).
    pub clock_check: Arc<clock_sync::ClockCheck>,
    /// Where telegrams enter (the push endpoint uses it).
    pub intake: Intake,
    /// The shared secret of the JMA push endpoint; without one the endpoint is off.
    pub jma_push_secret: Option<PushSecret>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (empty: the peer is the client).
    pub trusted_proxies: anpi_core::netlist::NetList,
    /// The listeners serve HTTPS themselves: every response carries `Strict-Transport-Security`.
    pub hsts: bool,
    /// How long after its incident closed an answer link still opens (then 410).
    pub answer_link_grace_ms: i64,
}

/// The push endpoint's shared secret. Compared in constant time; never printed.
#[derive(Clone)]
pub struct PushSecret(String);

impl PushSecret {
    /// At least 16 characters, so it cannot be guessed quickly.
    pub fn new(secret: &str) -> Result<PushSecret, String> {
        let s = secret.trim();
        if s.len() < 16 {
            return Err("the JMA push secret must have at least 16 characters".into());
        }
        Ok(PushSecret(s.to_string()))
    }
    pub fn matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        let (a, b) = (sha256(self.0.as_bytes()), sha256(given.as_bytes()));
        a.ct_eq(&b).into()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

impl std::fmt::Debug for PushSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushSecret(<redacted>)")
    }
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, base_url: &str) -> AppState {
        let wake = store.outbox_ready();
        AppState {
            intake: Intake::new(store.clone(), clock.clone(), wake.clone()),
            jma_push_secret: None,
            trusted_proxies: Default::default(),
            hsts: false,
            answer_link_grace_ms: 14 * 86_400_000,
            store,
            clock,
            base_url: base_url.trim_end_matches('/').to_string(),
            sessions: SessionPolicy::default(),
            events: tokio::sync::broadcast::channel(1024).0,
            wake,
            catcher: None,
            clock_check: Arc::default(),
        }
    }
}

fn security_headers(router: Router, hsts: bool) -> Router {
    let h = |name: &'static str, v: &'static str| SetResponseHeaderLayer::if_not_present(header::HeaderName::from_static(name), HeaderValue::from_static(v));
    let router = if hsts { router.layer(h("strict-transport-security", "max-age=31536000; includeSubDomains")) } else { router };
    router
        .layer(h("x-content-type-options", "nosniff"))
        .layer(h("x-frame-options", "DENY"))
        .layer(h("referrer-policy", "no-referrer"))
        .layer(h("content-security-policy", "default-src 'self'; object-src 'none'; base-uri 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"))
        .layer(h("cache-control", "no-store"))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(close_after_refused_body))
        .layer(axum::middleware::from_fn(request_id::tag))
}

/// A refused oversized body is left unread, so the connection cannot be reused: say so.
async fn close_after_refused_body(mut r: axum::response::Response) -> axum::response::Response {
    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The tenant listener: answer pages and the tenant console.
pub fn tenant_router(state: AppState) -> Router {
    let hsts = state.hsts;
    security_headers(pages::tenant_routes().with_state(state), hsts)
}

/// The operator listener: tenants and their first admins, no personal data.
pub fn operator_router(state: AppState) -> Router {
    let hsts = state.hsts;
    security_headers(pages::operator::routes().with_state(state), hsts)
}
