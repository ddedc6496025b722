//! The outbox worker, a pipeline: one claimer leases due rows in batches and queues them,
//! `concurrency` senders each keep one SMTP connection open and send from the queue, one
//! recorder writes outcomes in batches. A window bounds what is claimed and not yet recorded,
//! so a slow relay slows claiming instead of letting leases run out. Every node may run one;
//! claims never overlap. On stop, queued messages are handed back unsent.

use crate::compose::compose;
use crate::relay::Relays;
use anpi_core::{Clock, Millis};
use anpi_store::{Claimed, Delivery, Store};
use lettre::message::{header::ContentType, Mailbox, Message};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Where messages go.
#[derive(Clone, Debug)]
pub enum Channel {
    Smtp(Relays),
    /// Keeps messages in memory for the demo's mail page.
    Catcher(MailCatcher),
}

impl Channel {
    /// SMTP relays by URL (see [`crate::Relay::from_url`]); `timeout` bounds each step.
    pub fn smtp(urls: &[String], timeout: Duration) -> Result<Channel, String> {
        Relays::from_urls(urls, timeout).map(Channel::Smtp)
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
    /// Rows claimed at a time.
    pub batch: i64,
    /// Sender tasks, each with its own SMTP connection.
    pub concurrency: usize,
    pub max_attempts: i64,
    pub idle_poll: Duration,
    /// Signs every message (the key of the sender's domain), if one is configured.
    pub dkim: Option<crate::DkimSigner>,
    /// The return path as `(local part, domain)`: each message then gets its own,
    /// `local+{tag}@domain` (VERP), so that bounces name it. `None`: the sender address.
    pub bounce: Option<(String, String)>,
}

impl WorkerConfig {
    /// Messages claimed and not yet recorded, at most.
    fn window(&self) -> usize {
        (self.batch.max(1) as usize * 2).max(self.concurrency * 4)
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            base_url: "http://127.0.0.1:8080".into(),
            from: "anpi@localhost".into(),
            lease_ms: 60_000,
            batch: 128,
            concurrency: 8,
            max_attempts: 8,
            idle_poll: Duration::from_millis(250),
            dkim: None,
            bounce: None,
        }
    }
}

pub struct Worker {
    pub store: Store,
    pub channel: Channel,
    pub config: WorkerConfig,
    pub clock: Arc<dyn Clock>,
}

/// A claimed message and its place in the window.
struct Job {
    message: Claimed,
    slot: OwnedSemaphorePermit,
}

/// What became of a job; the place in the window is freed once it is recorded.
struct Done {
    id: i64,
    delivery: Delivery,
    _slot: OwnedSemaphorePermit,
}

enum Outcome {
    Sent,
    Retry(String),
    Permanent(String),
}

impl Worker {
    /// Runs until `stop` turns true. Wakes early when `wake` is notified. Returns when every
    /// sender has finished its message and every outcome is recorded.
    pub async fn run(self, wake: Arc<tokio::sync::Notify>, stop: tokio::sync::watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let window = Arc::new(Semaphore::new(worker.config.window()));
        let (queue, queued) = mpsc::channel::<Job>(worker.config.window());
        let queued = Arc::new(tokio::sync::Mutex::new(queued));
        let (done, outcomes) = mpsc::unbounded_channel::<Done>();
        let recorder = tokio::spawn(worker.clone().record(outcomes));
        let senders: Vec<_> =
            (0..worker.config.concurrency.max(1)).map(|i| tokio::spawn(worker.clone().sender(i, queued.clone(), done.clone(), stop.clone()))).collect();
        drop(done);
        worker.claim(window, queue, wake, stop).await;
        for s in senders {
            let _ = s.await;
        }
        if let Channel::Smtp(relays) = &worker.channel {
            relays.close().await;
        }
        let _ = recorder.await;
    }

    /// The claimer: scans for due reminders and unfinished incidents every 10 s, claims a batch whenever the window has
    /// room for one, and queues it for the senders. Dropping `queue` on return ends the senders.
    async fn claim(&self, window: Arc<Semaphore>, queue: mpsc::Sender<Job>, wake: Arc<tokio::sync::Notify>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_reminder_check = 0;
        let batch = self.config.batch.max(1);
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
                if let Err(e) = self.store.finish_fills(now).await {
                    tracing::warn!(error = %e, "finishing an unfinished incident failed");
                }
            }
            let room = tokio::select! {
                room = window.clone().acquire_many_owned(batch as u32) => room,
                _ = stop.changed() => return,
            };
            let Ok(mut room) = room else { return };
            let claimed = match self.store.claim_outbox(self.clock.as_ref(), batch, self.config.lease_ms).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    vec![]
                }
            };
            let worked = !claimed.is_empty();
            for message in claimed {
                let Some(slot) = room.split(1) else { break };
                if queue.send(Job { message, slot }).await.is_err() {
                    return;
                }
            }
            drop(room);
            if !worked {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.config.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Sender number `me`: takes jobs from the queue until it is closed and sends each over a
    /// connection borrowed from relay `me` (modulo the relays) while it is up. After stop, it
    /// hands what it takes back unsent.
    async fn sender(
        self: Arc<Self>,
        me: usize,
        queued: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
        done: mpsc::UnboundedSender<Done>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let job = queued.lock().await.recv().await;
            let Some(Job { message, slot }) = job else { break };
            let delivery = if *stop.borrow() { Delivery::HandedBack } else { self.delivery(&message, self.send(&message, me).await) };
            let _ = done.send(Done { id: message.id, delivery, _slot: slot });
        }
    }

    /// What to record for an outcome: sent, retry later with backoff, or failed for good.
    fn delivery(&self, m: &Claimed, outcome: Outcome) -> Delivery {
        match outcome {
            Outcome::Sent => Delivery::Sent,
            Outcome::Permanent(e) => {
                tracing::warn!(outbox = m.id, error = %e, "delivery failed permanently");
                Delivery::Failed(e)
            }
            Outcome::Retry(e) if m.attempts >= self.config.max_attempts => {
                tracing::warn!(outbox = m.id, error = %e, "delivery failed, giving up");
                Delivery::Failed(e)
            }
            Outcome::Retry(e) => {
                let delay = backoff_ms(m.attempts);
                tracing::info!(outbox = m.id, error = %e, delay, "delivery failed, will retry");
                Delivery::Retry { at: self.clock.now() + delay, error: e }
            }
        }
    }

    /// The recorder: writes outcomes as they come, many in one transaction.
    async fn record(self: Arc<Self>, mut outcomes: mpsc::UnboundedReceiver<Done>) {
        let mut batch = Vec::new();
        while outcomes.recv_many(&mut batch, 1024).await > 0 {
            let rows: Vec<(i64, Delivery)> = batch.iter().map(|d| (d.id, d.delivery.clone())).collect();
            if let Err(e) = self.store.record_outbox(&rows, self.clock.now()).await {
                // The rows stay leased: when the lease ends they are sent again, same Message-ID.
                tracing::warn!(error = %e, messages = rows.len(), "could not record delivery outcomes");
            }
            batch.clear();
        }
    }

    async fn send(&self, m: &Claimed, me: usize) -> Outcome {
        if m.to.is_empty() {
            return Outcome::Permanent(match &m.undeliverable {
                Some(status) => format!("undeliverable: {status}"),
                None => "no email address".into(),
            });
        }
        let c = compose(m, &self.config.base_url);
        let relays = match &self.channel {
            Channel::Catcher(catcher) => {
                catcher.push(Caught { to: m.to.clone(), subject: c.subject, body: c.body, at: self.clock.now() });
                return Outcome::Sent;
            }
            Channel::Smtp(relays) => relays,
        };
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
        match relays.send(me, msg.envelope(), &msg.formatted()).await {
            Ok(()) => Outcome::Sent,
            Err(e) if e.permanent => Outcome::Permanent(e.message),
            Err(e) => Outcome::Retry(e.message),
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
        let mut rcpts = Vec::new();
        for to in &m.to {
            let mailbox: Mailbox = to.parse().map_err(|e| format!("bad address {to}: {e}"))?;
            rcpts.push(mailbox.email.clone());
            b = b.to(mailbox);
        }
        if let Some((local, bounce_domain)) = &self.config.bounce {
            let tag = self.store.return_path_tag(m.id).map_err(|e| e.to_string())?;
            let path: lettre::Address = format!("{local}+{tag}@{bounce_domain}").parse().map_err(|e| format!("bad return path: {e}"))?;
            b = b.envelope(lettre::address::Envelope::new(Some(path), rcpts).map_err(|e| e.to_string())?);
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
