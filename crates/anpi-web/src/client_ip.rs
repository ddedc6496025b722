//! The client's address, and the tenant IP allowlists checked against it.
//!
//! The address is the TCP peer, unless the peer is one of the configured trusted proxies
//! (`--trusted-proxy`): then it is the rightmost `X-Forwarded-For` hop that is not itself a
//! trusted proxy. A header from any other peer is ignored, so it cannot be spoofed.

use crate::error::WebError;
use crate::i18n::Tr;
use crate::pages::{render, Layout};
use crate::AppState;
use anpi_core::netlist::NetList;
use anpi_core::Role;
use anpi_store::audit::{Actor, AuditEvent};
use anpi_store::{Account, Allowlists, TenantScope};
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address from the peer and the headers. `None` when a trusted proxy passed an
/// unreadable hop: the address is then unknown (and no non-empty allowlist admits it).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &NetList) -> Option<IpAddr> {
    let mut client = peer.to_canonical();
    if !trusted.contains(client) {
        return Some(client);
    }
    let values: Vec<&str> = headers.get_all(X_FORWARDED_FOR).iter().map(|v| v.to_str()).collect::<Result<_, _>>().ok()?;
    for hop in values.iter().rev().flat_map(|v| v.rsplit(',')).map(str::trim).filter(|h| !h.is_empty()) {
        client = parse_hop(hop)?.to_canonical();
        if !trusted.contains(client) {
            return Some(client);
        }
    }
    Some(client)
}

/// One hop: an address, possibly bracketed or with a port (`[2001:db8::1]:443`, `192.0.2.1:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The client's address of a request; `None` without a peer address (no `ConnectInfo`).
pub fn of_request(parts: &Parts, trusted: &NetList) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    resolve(peer, &parts.headers, trusted)
}

/// Extractor for the client's address (see [`of_request`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// For messages and logs: the address, or "unknown".
    pub fn shown(&self) -> String {
        self.0.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

/// The network an address is throttled as: an IPv4 address (or IPv4-mapped IPv6 address)
/// alone, an IPv6 address by its /64 (one subscriber gets a whole /64, so keying the full
/// address would give an attacker 2^64 fresh keys). Text that is not an address is kept.
pub fn throttle_scope(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(of_request(parts, &state.trusted_proxies)))
    }
}

/// Whether a stored list admits `ip`. A list that no longer parses admits no one.
fn admits(list: &str, ip: Option<IpAddr>) -> bool {
    match NetList::parse(list) {
        Ok(l) => l.permits(ip),
        Err(e) => {
            tracing::error!(error = %e, "stored IP allowlist is unreadable: refusing");
            false
        }
    }
}

/// Which list refuses a console request by `role` from `ip`, if any.
pub fn console_refusal(lists: &Allowlists, role: Role, ip: Option<IpAddr>) -> Option<&'static str> {
    if !admits(&lists.console, ip) {
        Some("console")
    } else if role == Role::Admin && !admits(&lists.admin, ip) {
        Some("admin")
    } else {
        None
    }
}

/// Refuses a signed-in console request whose address the tenant's lists do not admit.
pub async fn guard_console(parts: &Parts, state: &AppState, scope: &TenantScope, account: &Account, t: Tr) -> Result<(), Response> {
    let ip = ClientIp(of_request(parts, &state.trusted_proxies));
    let lists = state.store.allowlists(scope).await.map_err(|e| WebError::from(e).into_response())?;
    match console_refusal(&lists, account.role, ip.0) {
        None => Ok(()),
        Some(list) => {
            tracing::warn!(tenant = scope.tenant_id(), account = account.id, ip = %ip.shown(), list, "console request refused by the IP allowlist");
            let shown = ip.shown();
            let e = AuditEvent {
                actor: Actor::Account(account.id),
                action: "access_denied",
                target: String::new(),
                outcome: "denied",
                ip: &shown,
                detail: format!("IP allowlist: {list}"),
            };
            record_denial(state, scope, &e).await;
            Err(denied(t))
        }
    }
}

/// Refuses an answer-page request whose address the tenant's answer list does not admit.
pub async fn guard_answer(state: &AppState, ctx: &anpi_store::AnswerContext, ip: ClientIp, t: Tr) -> Result<(), Response> {
    let (scope, recipient) = (&ctx.scope, ctx.recipient_id);
    if admits(&ctx.allowlist, ip.0) {
        return Ok(());
    }
    tracing::warn!(tenant = scope.tenant_id(), recipient, ip = %ip.shown(), list = "answer", "answer page refused by the IP allowlist");
    let shown = ip.shown();
    let e = AuditEvent {
        actor: Actor::Anonymous,
        action: "access_denied",
        target: format!("recipient:{recipient}"),
        outcome: "denied",
        ip: &shown,
        detail: "IP allowlist: answer".into(),
    };
    record_denial(state, scope, &e).await;
    Err(denied(t))
}

/// Writes a refusal to the tenant's audit log; the refusal stands even if that fails.
async fn record_denial(state: &AppState, scope: &TenantScope, e: &AuditEvent<'_>) {
    if let Err(err) = state.store.audit(Some(scope), e, state.clock.now()).await {
        tracing::error!(error = %err, "cannot record a denial in the audit log");
    }
}

#[derive(Template)]
#[template(path = "network_denied.html")]
struct DeniedPage {
    l: Layout,
}

/// 403: access from this address is not allowed (nothing about the lists themselves).
pub fn denied(t: Tr) -> Response {
    let page = DeniedPage { l: Layout::public(t, t.p("アクセスできません", "Access not allowed")) };
    match render(&page) {
        Ok(body) => (StatusCode::FORBIDDEN, body).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ipv6_is_throttled_by_its_64() {
        assert_eq!(throttle_scope("2001:db8:1:2:aaaa::1"), throttle_scope("2001:db8:1:2:bbbb:cccc:dddd:eeee"));
        assert_eq!(throttle_scope("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(throttle_scope("2001:db8:1:2::1"), throttle_scope("2001:db8:1:3::1"));
        assert_eq!(throttle_scope("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(throttle_scope("192.0.2.7"), "192.0.2.7");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let trusted = NetList::parse("10.0.0.0/8").unwrap();
        assert_eq!(resolve(ip("192.0.2.1"), &xff(&["198.51.100.7"]), &trusted), Some(ip("192.0.2.1")));
        assert_eq!(resolve(ip("192.0.2.1"), &xff(&["198.51.100.7"]), &NetList::default()), Some(ip("192.0.2.1")));
        assert_eq!(resolve(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &trusted), Some(ip("192.0.2.1")));
    }

    #[test]
    fn rightmost_untrusted_hop_behind_trusted_proxies() {
        let trusted = NetList::parse("10.0.0.0/8 ::1").unwrap();
        let peer = ip("10.0.0.2");
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), Some(peer));
        assert_eq!(resolve(peer, &xff(&["203.0.113.9, 198.51.100.7"]), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(resolve(peer, &xff(&["203.0.113.9, 198.51.100.7, 10.1.1.1"]), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(resolve(peer, &xff(&["203.0.113.9", "198.51.100.7"]), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(resolve(ip("::1"), &xff(&["[2001:db8::1]:443"]), &trusted), Some(ip("2001:db8::1")));
        assert_eq!(resolve(peer, &xff(&["192.0.2.1:8080"]), &trusted), Some(ip("192.0.2.1")));
        assert_eq!(resolve(peer, &xff(&["::ffff:198.51.100.7"]), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(resolve(peer, &xff(&["10.9.9.9"]), &trusted), Some(ip("10.9.9.9")));
        // Junk left of an untrusted hop does not matter; junk where the client should be does.
        assert_eq!(resolve(peer, &xff(&["junk, 198.51.100.7"]), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(resolve(peer, &xff(&["198.51.100.7, unknown"]), &trusted), None);
    }

    #[test]
    fn lists_by_role() {
        let lists = Allowlists { console: "198.51.100.0/24 203.0.113.0/24".into(), admin: "198.51.100.0/24".into(), answer: String::new() };
        let (inside, other, outside) = (Some(ip("198.51.100.7")), Some(ip("203.0.113.9")), Some(ip("192.0.2.1")));
        assert_eq!(console_refusal(&lists, Role::Admin, inside), None);
        assert_eq!(console_refusal(&lists, Role::Admin, other), Some("admin"));
        assert_eq!(console_refusal(&lists, Role::Distributor, other), None);
        assert_eq!(console_refusal(&lists, Role::Member, outside), Some("console"));
        assert_eq!(console_refusal(&lists, Role::Member, None), Some("console"));
        assert_eq!(console_refusal(&Allowlists::default(), Role::Admin, None), None);
        let broken = Allowlists { console: "not-an-address".into(), ..Allowlists::default() };
        assert_eq!(console_refusal(&broken, Role::Member, inside), Some("console"));
    }
}
