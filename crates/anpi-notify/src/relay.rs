//! The SMTP relays anpi hands its mail to, and persistent connections to them.
//!
//! lettre speaks SMTP; this module only chooses where and how to connect. Several relays may be
//! configured: each sender prefers one (the senders spread evenly), a relay that cannot be
//! reached is left alone for [`DOWN_FOR`] while the others take its share, and each relay may
//! cap its connections and its messages per second. Each sender task of the outbox
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
    /// At most this many connections to this relay (`?connections=N`).
    connections: Option<usize>,
    /// At most this many messages per second to this relay (`?rate=N`).
    rate: Option<f64>,
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
    /// sent in EHLO as the path (`smtp://host/anpi.example`) — as lettre reads them; and
    /// anpi's own limits `connections=N` and `rate=N` (messages per second).
    pub fn from_url(url: &str, timeout: Duration) -> Result<Relay, String> {
        let u = url::Url::parse(url).map_err(|e| format!("bad SMTP URL: {e}"))?;
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or("bad SMTP URL: no host")?.trim_matches(['[', ']']).to_string();
        let (mut tls, mut connections, mut rate) = (None, None, None);
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "tls" => tls = Some(v.into_owned()),
                "connections" => {
                    connections = Some(v.parse::<usize>().ok().filter(|n| *n > 0).ok_or("bad SMTP URL: connections must be a whole number above 0")?)
                }
                "rate" => {
                    rate = Some(
                        v.parse::<f64>()
                            .ok()
                            .filter(|r| r.is_finite() && *r > 0.0)
                            .ok_or("bad SMTP URL: rate must be a number above 0 (messages per second)")?,
                    )
                }
                other => return Err(format!("bad SMTP URL: unknown parameter {other:?} (tls, connections, rate)")),
            }
        }
        let (security, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTls { required: true }, 587),
            ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
            ("smtps", _) => (Security::Implicit, 465),
            (scheme, tls) => return Err(format!("bad SMTP URL: unknown scheme {scheme:?} or tls={tls:?} (smtp, smtps; tls=required|opportunistic)")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s).decode_utf8().map(|s| s.into_owned()).map_err(|_| "bad SMTP URL: credentials are not UTF-8".to_string())
        };
        let credentials = match u.password() {
            Some(p) => Some(Credentials::new(decode(u.username())?, decode(p)?)),
            None => None,
        };
        let path = u.path().trim_matches('/');
        let hello = if path.is_empty() { ClientId::default() } else { ClientId::Domain(path.to_string()) };
        Ok(Relay { host, port: u.port().unwrap_or(default_port), security, hello, credentials, timeout, connections, rate })
    }

    /// Opens a connection: TCP (no Nagle), TLS as configured, EHLO, AUTH.
    pub async fn connect(&self) -> Result<Connection, SendError> {
        let deadline = self.timeout;
        let conn = tokio::time::timeout(deadline, self.open())
            .await
            .map_err(|_| SendError::transient(format!("connecting to the SMTP relay timed out after {deadline:?}")))??;
        Ok(Connection { conn, used: Instant::now() })
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tls = || TlsParameters::new(self.host.clone()).map_err(SendError::from_smtp);
        let mut conn = match self.security {
            Security::Implicit => AsyncSmtpConnection::connect_tokio1((self.host.as_str(), self.port), Some(self.timeout), &self.hello, Some(tls()?), None)
                .await
                .map_err(SendError::from_smtp)?,
            Security::Plain | Security::StartTls { .. } => {
                let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|e| SendError::transient(format!("cannot connect to the SMTP relay: {e}")))?;
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

/// A relay that cannot be reached is not tried again for this long (unless every relay is).
pub const DOWN_FOR: Duration = Duration::from_secs(10);

/// Every configured relay with its open connections, limits and health. Senders borrow a
/// connection for one message and return it, so a relay's connection cap is shared by all.
#[derive(Clone, Debug)]
pub struct Relays(std::sync::Arc<Vec<RelayState>>);

#[derive(Debug)]
struct RelayState {
    relay: Relay,
    /// Connections in use, at most the relay's cap.
    in_use: std::sync::Arc<tokio::sync::Semaphore>,
    idle: std::sync::Mutex<Vec<Connection>>,
    /// When the next message may go (the rate limit).
    next_slot: std::sync::Mutex<tokio::time::Instant>,
    down_until: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// A borrowed connection: returned to its relay's idle list after a successful message.
struct Borrowed {
    relay: usize,
    connection: Connection,
    _in_use: tokio::sync::OwnedSemaphorePermit,
}

impl Relays {
    /// One or more relay URLs (see [`Relay::from_url`]).
    pub fn from_urls(urls: &[String], timeout: Duration) -> Result<Relays, String> {
        if urls.is_empty() {
            return Err("no SMTP relay configured".into());
        }
        let states = urls
            .iter()
            .map(|u| {
                let relay = Relay::from_url(u, timeout)?;
                let cap = relay.connections.unwrap_or(tokio::sync::Semaphore::MAX_PERMITS);
                Ok(RelayState {
                    relay,
                    in_use: std::sync::Arc::new(tokio::sync::Semaphore::new(cap)),
                    idle: std::sync::Mutex::new(Vec::new()),
                    next_slot: std::sync::Mutex::new(tokio::time::Instant::now()),
                    down_until: std::sync::Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Relays(std::sync::Arc::new(states)))
    }

    /// Sends one message over a connection borrowed from the `preferred` relay (modulo the
    /// relays), or the next one that is up and has a connection free, or failing that, the first
    /// one up as soon as it has one. When none is up, each is tried once more.
    pub async fn send(&self, preferred: usize, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let mut borrowed = self.borrow(preferred).await?;
        let state = &self.0[borrowed.relay];
        state.pace().await;
        borrowed.connection.send(&state.relay, envelope, message).await?;
        // lettre drops a connection on any error (returned above): only good ones go back.
        if let Ok(mut idle) = state.idle.lock() {
            idle.push(borrowed.connection);
        }
        Ok(())
    }

    async fn borrow(&self, preferred: usize) -> Result<Borrowed, SendError> {
        let n = self.0.len();
        let order: Vec<usize> = (0..n).map(|k| (preferred + k) % n).collect();
        let mut last = None;
        // Up and free now; then the first one up, waiting for a free connection; then any.
        for i in order.iter().copied().filter(|i| !self.0[*i].is_down()) {
            if let Ok(permit) = self.0[i].in_use.clone().try_acquire_owned() {
                match self.0[i].checkout(i, permit).await {
                    Ok(b) => return Ok(b),
                    Err(e) => last = Some(e),
                }
            }
        }
        if let Some(i) = order.iter().copied().find(|i| !self.0[*i].is_down()) {
            let state = &self.0[i];
            if let Ok(Ok(permit)) = tokio::time::timeout(state.relay.timeout, state.in_use.clone().acquire_owned()).await {
                match state.checkout(i, permit).await {
                    Ok(b) => return Ok(b),
                    Err(e) => last = Some(e),
                }
            }
        }
        for i in order.iter().copied().filter(|i| self.0[*i].is_down()) {
            if let Ok(permit) = self.0[i].in_use.clone().try_acquire_owned() {
                match self.0[i].checkout(i, permit).await {
                    Ok(b) => return Ok(b),
                    Err(e) => last = Some(e),
                }
            }
        }
        // A refusal when connecting (a 5xx greeting, failed AUTH) is about the relay, not the
        // message: always worth a retry later.
        Err(match last {
            Some(e) => SendError { permanent: false, ..e },
            None => SendError::transient("no SMTP relay has a free connection"),
        })
    }

    /// Says QUIT on every idle connection (best effort).
    pub async fn close(&self) {
        for state in self.0.iter() {
            let idle = state.idle.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
            for c in idle {
                c.close(&state.relay).await;
            }
        }
    }
}

impl RelayState {
    /// An idle connection that still works, or a new one (marking the relay down or up).
    async fn checkout(&self, index: usize, permit: tokio::sync::OwnedSemaphorePermit) -> Result<Borrowed, SendError> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(mut connection) = idle else { break };
            if connection.usable(&self.relay).await {
                return Ok(Borrowed { relay: index, connection, _in_use: permit });
            }
        }
        match self.relay.connect().await {
            Ok(connection) => {
                self.set_down(None);
                Ok(Borrowed { relay: index, connection, _in_use: permit })
            }
            Err(e) => {
                tracing::warn!(relay = ?self.relay, error = %e.message, "SMTP relay unreachable; the others take its share");
                self.set_down(Some(Instant::now() + DOWN_FOR));
                Err(e)
            }
        }
    }

    fn is_down(&self) -> bool {
        self.down_until.lock().map(|d| d.is_some_and(|until| Instant::now() < until)).unwrap_or(false)
    }

    fn set_down(&self, until: Option<Instant>) {
        if let Ok(mut d) = self.down_until.lock() {
            *d = until;
        }
    }

    /// Waits for this relay's next message slot under its rate limit.
    async fn pace(&self) {
        let Some(rate) = self.relay.rate else { return };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let at = match self.next_slot.lock() {
            Ok(mut next) => {
                let at = (*next).max(tokio::time::Instant::now());
                *next = at + interval;
                at
            }
            Err(_) => return,
        };
        tokio::time::sleep_until(at).await;
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
        let r = Relay::from_url("smtp://mail.example:2525?connections=4&rate=50", t).unwrap();
        assert_eq!((r.connections, r.rate), (Some(4), Some(50.0)));
        assert!(Relay::from_url("smtp://mail.example?connections=0", t).is_err());
        assert!(Relay::from_url("smtp://mail.example?rate=-1", t).is_err());
        assert!(Relay::from_url("smtp://mail.example?ratee=1", t).is_err());
    }

    #[test]
    fn at_least_one_relay() {
        assert!(Relays::from_urls(&[], Duration::from_secs(1)).is_err());
    }

    /// The rate limit spaces messages evenly: 10 per second → the 21st starts after 2 s.
    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_messages() {
        let relays = Relays::from_urls(&["smtp://a?rate=10".to_string()], Duration::from_secs(1)).unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..21 {
            relays.0[0].pace().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
