//! The outbox worker: claim due rows with a lease, send them concurrently, record outcomes,
//! retry with exponential backoff. Every node may run one; claims never overlap.

use crate::compose::compose;
use anpi_core::{Clock, Millis};
use anpi_store::{Claimed, Store};
use futures_util::stream::{self, StreamExt};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where messages go.
#[derive(Clone)]
pub enum Channel {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Keeps messages in memory for the demo's mail page.
    Catcher(MailCatcher),
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Channel::Smtp(_) => "Channel::Smtp",
            Channel::Catcher(_) => "Channel::Catcher",
        })
    }
}

impl Channel {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (implicit TLS); credentials as `smtp://user:pass@host`.
    /// `connections` bounds the pool of open SMTP connections.
    pub fn smtp(url: &str, connections: u32) -> Result<Channel, String> {
        let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| format!("bad SMTP URL: {e}"))?;
        let pool = lettre::transport::smtp::PoolConfig::new().max_size(connections.max(1));
        Ok(Channel::Smtp(t.timeout(Some(Duration::from_secs(30))).pool_config(pool).build()))
    }
}

/// A caught message, for the demo.
#[derive(Debug, Clone)]
pub struct Caught {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct MailCatcher(Arc<Mutex<VecDeque<Caught>>>);

impl MailCatcher {
    const KEEP: usize = 500;
    pub fn push(&self, m: Caught) {
        if let Ok(mut q) = self.0.lock() {
            q.push_front(m);
            q.truncate(Self::KEEP);
        }
    }
    pub fn list(&self) -> Vec<Caught> {
        self.0.lock().map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub base_url: String,
    pub from: String,
    pub lease_ms: i64,
    pub batch: i64,
    pub concurrency: usize,
    pub max_attempts: i64,
    pub idle_poll: Duration,
    /// Signs every message (the key of the sender's domain), if one is configured.
    pub dkim: Option<crate::DkimSigner>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            base_url: "http://127.0.0.1:8080".into(),
            from: "anpi@localhost".into(),
            lease_ms: 60_000,
            batch: 100,
            concurrency: 8,
            max_attempts: 8,
            idle_poll: Duration::from_millis(250),
            dkim: None,
        }
    }
}

pub struct Worker {
    pub store: Store,
    pub channel: Channel,
    pub config: WorkerConfig,
    pub clock: Arc<dyn Clock>,
}

enum Outcome {
    Sent,
    Retry(String),
    Permanent(String),
}

impl Worker {
    /// Runs until `stop` turns true. Wakes early when `wake` is notified.
    pub async fn run(self, wake: Arc<tokio::sync::Notify>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_reminder_check = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now();
            if now - last_reminder_check >= 10_000 {
                last_reminder_check = now;
                if let Err(e) = self.store.queue_due_reminders(now).await {
                    tracing::warn!(error = %e, "reminder scan failed");
                }
            }
            let worked = match self.tick().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Claims one batch and sends it. Returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, anpi_store::StoreError> {
        let now = self.clock.now();
        let claimed = self.store.claim_outbox(now, self.config.batch, self.config.lease_ms).await?;
        let n = claimed.len();
        let results: Vec<(Claimed, Outcome)> = stream::iter(claimed)
            .map(|m| async move {
                let outcome = self.send(&m).await;
                (m, outcome)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for (m, outcome) in results {
            let now = self.clock.now();
            let r = match outcome {
                Outcome::Sent => self.store.outbox_sent(m.id, now).await,
                Outcome::Permanent(e) => {
                    tracing::warn!(outbox = m.id, error = %e, "delivery failed permanently");
                    self.store.outbox_failed(m.id, &e, None).await
                }
                Outcome::Retry(e) if m.attempts >= self.config.max_attempts => {
                    tracing::warn!(outbox = m.id, error = %e, "delivery failed, giving up");
                    self.store.outbox_failed(m.id, &e, None).await
                }
                Outcome::Retry(e) => {
                    let delay = backoff_ms(m.attempts);
                    tracing::info!(outbox = m.id, error = %e, delay, "delivery failed, will retry");
                    self.store.outbox_failed(m.id, &e, Some(now + delay)).await
                }
            };
            if let Err(e) = r {
                tracing::warn!(outbox = m.id, error = %e, "could not record delivery outcome");
            }
        }
        Ok(n)
    }

    async fn send(&self, m: &Claimed) -> Outcome {
        if m.to.is_empty() {
            return Outcome::Permanent("no email address".into());
        }
        let c = compose(m, &self.config.base_url);
        match &self.channel {
            Channel::Catcher(catcher) => {
                catcher.push(Caught { to: m.to.clone(), subject: c.subject, body: c.body, at: self.clock.now() });
                Outcome::Sent
            }
            Channel::Smtp(transport) => {
                let mut msg = match self.build(m, &c) {
                    Ok(msg) => msg,
                    Err(e) => return Outcome::Permanent(e),
                };
                if let Some(dkim) = &self.config.dkim {
                    msg = match dkim.sign(msg).await {
                        Ok(signed) => signed,
                        Err(e) => return Outcome::Retry(e),
                    };
                }
                match transport.send(msg).await {
                    Ok(_) => Outcome::Sent,
                    Err(e) if e.is_permanent() => Outcome::Permanent(e.to_string()),
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
        }
    }

    fn build(&self, m: &Claimed, c: &crate::Composed) -> Result<Message, String> {
        let from: Mailbox = self.config.from.parse().map_err(|e| format!("bad sender address: {e}"))?;
        let domain = self.config.from.rsplit_once('@').map(|(_, d)| d).unwrap_or("anpi.invalid");
        // The same outbox row always carries the same Message-ID, so a re-send after a
        // crash is recognisable as the same message.
        let key: String = m.idempotency_key.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '.' }).collect();
        let mut b = Message::builder()
            .from(from)
            .subject(c.subject.clone())
            .message_id(Some(format!("<{key}.t{}@{domain}>", m.tenant_id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &m.to {
            b = b.to(to.parse().map_err(|e| format!("bad address {to}: {e}"))?);
        }
        b.body(c.body.clone()).map_err(|e| e.to_string())
    }
}

/// 5 s, 10 s, 20 s … capped at one hour.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (5_000i64 << exp).min(3_600_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(super::backoff_ms(1), 5_000);
        assert_eq!(super::backoff_ms(2), 10_000);
        assert_eq!(super::backoff_ms(30), 3_600_000);
    }
}
