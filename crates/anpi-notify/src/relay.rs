//! The SMTP relay anpi hands its mail to, and one persistent connection to it.
//!
//! lettre speaks SMTP; this module only chooses how to connect. Each sender task of the outbox
//! keeps its own connection open across messages (lettre's pool would add a NOOP before each
//! message) with `TCP_NODELAY` (small SMTP commands must not wait for the peer's delayed ACK),
//! and every step has a deadline, so a stalled relay cannot hold a sender forever.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::time::{Duration, Instant};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls { required: bool },
    Implicit,
}

/// Where and how to reach the relay; parsed once from `--smtp-url`.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "Relay({}:{}, {:?})", self.host, self.port, self.security)
    }
}

/// Why a send did not succeed: `permanent` when the relay refused this message for good (5xx).
#[derive(Debug, Clone)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

impl SendError {
    fn transient(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), permanent: false }
    }
    fn from_smtp(e: lettre::transport::smtp::Error) -> SendError {
        SendError { permanent: e.is_permanent(), message: e.to_string() }
    }
}

impl Relay {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required|opportunistic` (STARTTLS),
    /// `smtps://host:port` (implicit TLS); credentials as `smtp://user:pass@host`, the name
    /// sent in EHLO as the path (`smtp://host/anpi.example`) — as lettre reads them.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Relay, String> {
        let u = url::Url::parse(url).map_err(|e| format!("bad SMTP URL: {e}"))?;
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or("bad SMTP URL: no host")?.trim_matches(['[', ']']).to_string();
        let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (security, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTls { required: true }, 587),
            ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
            ("smtps", _) => (Security::Implicit, 465),
            (scheme, tls) => return Err(format!("bad SMTP URL: unknown scheme {scheme:?} or tls={tls:?} (smtp, smtps; tls=required|opportunistic)")),
        };
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|s| s.into_owned()).map_err(|_| "bad SMTP URL: credentials are not UTF-8".to_string());
        let credentials = match u.password() {
            Some(p) => Some(Credentials::new(decode(u.username())?, decode(p)?)),
            None => None,
        };
        let path = u.path().trim_matches('/');
        let hello = if path.is_empty() { ClientId::default() } else { ClientId::Domain(path.to_string()) };
        Ok(Relay { host, port: u.port().unwrap_or(default_port), security, hello, credentials, timeout })
    }

    /// Opens a connection: TCP (no Nagle), TLS as configured, EHLO, AUTH.
    pub async fn connect(&self) -> Result<Connection, SendError> {
        let deadline = self.timeout;
        let conn = tokio::time::timeout(deadline, self.open()).await.map_err(|_| SendError::transient(format!("connecting to the SMTP relay timed out after {deadline:?}")))??;
        Ok(Connection { conn, used: Instant::now() })
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tls = || TlsParameters::new(self.host.clone()).map_err(SendError::from_smtp);
        let mut conn = match self.security {
            Security::Implicit => AsyncSmtpConnection::connect_tokio1((self.host.as_str(), self.port), Some(self.timeout), &self.hello, Some(tls()?), None).await.map_err(SendError::from_smtp)?,
            Security::Plain | Security::StartTls { .. } => {
                let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| SendError::transient(format!("cannot connect to the SMTP relay: {e}")))?;
                tcp.set_nodelay(true).map_err(|e| SendError::transient(format!("cannot set TCP_NODELAY: {e}")))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await.map_err(SendError::from_smtp)?
            }
        };
        match self.security {
            Security::StartTls { required } if required || conn.can_starttls() => conn.starttls(tls()?, &self.hello).await.map_err(SendError::from_smtp)?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(SendError::from_smtp)?;
        }
        Ok(conn)
    }
}

/// One open connection to the relay.
pub struct Connection {
    conn: AsyncSmtpConnection,
    used: Instant,
}

/// A connection idle this long is checked with NOOP before it carries a message: the relay
/// may have closed it, and a message should not be the probe.
const IDLE_CHECK: Duration = Duration::from_secs(10);

impl Connection {
    /// Sends one message. On any error the connection should be dropped.
    pub async fn send(&mut self, relay: &Relay, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let sent = tokio::time::timeout(relay.timeout, self.conn.send(envelope, message)).await;
        self.used = Instant::now();
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError::from_smtp(e)),
            Err(_) => Err(SendError::transient(format!("the SMTP relay did not answer within {:?}", relay.timeout))),
        }
    }

    /// Whether the connection can carry another message (not broken; alive if idle long).
    pub async fn usable(&mut self, relay: &Relay) -> bool {
        if self.conn.has_broken() {
            return false;
        }
        if self.used.elapsed() < IDLE_CHECK {
            return true;
        }
        let alive = tokio::time::timeout(relay.timeout, self.conn.test_connected()).await.unwrap_or(false);
        self.used = Instant::now();
        alive
    }

    /// Says QUIT (best effort).
    pub async fn close(mut self, relay: &Relay) {
        let _ = tokio::time::timeout(relay.timeout, self.conn.quit()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_lettre_reads_them() {
        let t = Duration::from_secs(1);
        let r = Relay::from_url("smtp://127.0.0.1:2525", t).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.security), ("127.0.0.1", 2525, Security::Plain));
        let r = Relay::from_url("smtp://user:p%40ss@mail.example?tls=required", t).unwrap();
        assert_eq!((r.port, r.security), (587, Security::StartTls { required: true }));
        assert!(r.credentials.is_some());
        assert!(!format!("{r:?}").contains("p@ss"), "credentials never in Debug");
        let r = Relay::from_url("smtps://mail.example/anpi.example", t).unwrap();
        assert_eq!((r.port, r.security), (465, Security::Implicit));
        assert_eq!(r.hello, ClientId::Domain("anpi.example".into()));
        assert!(Relay::from_url("http://mail.example", t).is_err());
        assert!(Relay::from_url("smtp://mail.example?tls=sometimes", t).is_err());
        assert!(Relay::from_url("not a url", t).is_err());
    }
}
