//! `anpi serve`: both listeners and the outbox worker, with graceful shutdown.

use crate::DbArgs;
use anpi_core::{Clock, SystemClock};
use anpi_notify::{Channel, MailCatcher, Worker, WorkerConfig};
use anpi_web::AppState;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Tenant console and answer pages.
    #[arg(long, env = "ANPI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Operator console (keep it on a private interface).
    #[arg(long, env = "ANPI_OPERATOR_LISTEN", default_value = "127.0.0.1:8081")]
    pub operator_listen: SocketAddr,
    /// Public URL of the tenant listener, used in mailed links. Default: http://LISTEN.
    #[arg(long, env = "ANPI_BASE_URL")]
    pub base_url: Option<String>,
    /// SMTP relay: smtp://host:port, smtp://user:pass@host:587?tls=required, smtps://host:465;
    /// optional limits `connections=N` and `rate=N` (messages per second), e.g.
    /// smtp://relay:25?connections=16&rate=500. Repeat the flag (or separate with commas) for
    /// several relays: the senders spread over them, and one that cannot be reached is left
    /// alone for 10 s while the others take its share.
    #[arg(long = "smtp-url", env = "ANPI_SMTP_URL", value_delimiter = ',', default_value = "smtp://127.0.0.1:25")]
    pub smtp_urls: Vec<String>,
    /// Sender address of all mail.
    #[arg(long, env = "ANPI_MAIL_FROM", default_value = "anpi@localhost")]
    pub mail_from: String,
    /// How long a worker owns a claimed message before another may retry it.
    #[arg(long, env = "ANPI_OUTBOX_LEASE_SECS", default_value_t = 60)]
    pub outbox_lease_secs: i64,
    /// Messages sent in parallel by this node, each sender over its own SMTP connection kept
    /// open. Each message waits on the relay's round trips, so throughput grows with this; see
    /// docs/benchmarks.md.
    #[arg(long, env = "ANPI_SEND_CONCURRENCY", default_value_t = 64)]
    pub send_concurrency: usize,
    /// Return path for bounces, e.g. bounces@anpi.example: each message is then sent with its
    /// own, bounces+{tag}@anpi.example (VERP), so that a bounce names it. Default: the sender.
    #[arg(long, env = "ANPI_BOUNCE_ADDRESS")]
    pub bounce_address: Option<String>,
    /// Maildir where the MTA of the return-path domain delivers bounces; anpi reads it every
    /// 10 s and marks addresses that failed for good undeliverable. Needs --bounce-address.
    #[arg(long, env = "ANPI_BOUNCE_MAILDIR", requires = "bounce_address")]
    pub bounce_maildir: Option<PathBuf>,
    /// The longest one SMTP step (connect, a message) may take before it is retried later.
    #[arg(long, env = "ANPI_SMTP_TIMEOUT_SECS", default_value_t = 30)]
    pub smtp_timeout_secs: u64,
    /// JMA Atom feeds to poll (repeat the flag). Default: JMA's eqvol, extra and their long
    /// versions. Feeds ending in `_l.xml` are polled every 10 minutes.
    #[arg(long = "jma-feed", env = "ANPI_JMA_FEEDS", value_delimiter = ',')]
    pub jma_feeds: Vec<String>,
    /// Seconds between polls of the high-frequency feeds; 0 turns polling off.
    #[arg(long, env = "ANPI_JMA_POLL_SECS", default_value_t = 60)]
    pub jma_poll_secs: u64,
    /// Telegrams from the feed or the push endpoint reported more than this many minutes ago
    /// are recorded but not dispatched; 0 = no limit. (Replays are never too old.)
    #[arg(long, env = "ANPI_JMA_MAX_AGE_MIN", default_value_t = 60)]
    pub jma_max_age_min: i64,
    /// Shared secret for `POST /api/jma/telegrams` (Bearer); without it the endpoint is off.
    #[arg(long, env = "ANPI_JMA_PUSH_SECRET", hide_env_values = true)]
    pub jma_push_secret: Option<String>,
    /// Reverse proxy (address or CIDR) whose X-Forwarded-For names the client (repeat the
    /// flag). Without one, the TCP peer is the client and the header is ignored.
    #[arg(long = "trusted-proxy", env = "ANPI_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS (TLS 1.3 and 1.2) on both listeners with this certificate chain (PEM, leaf
    /// first); reloaded when the file changes.
    #[arg(long, env = "ANPI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ANPI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Plain-HTTP address whose every request is redirected (308) to the same path on the
    /// --base-url host over https.
    #[arg(long, env = "ANPI_HTTP_REDIRECT", requires = "tls_cert")]
    pub http_redirect: Option<SocketAddr>,
    /// Days an answer link still opens after its incident closed (then "expired", 410).
    #[arg(long, env = "ANPI_ANSWER_LINK_GRACE_DAYS", default_value_t = 14)]
    pub answer_link_grace_days: i64,
}

impl ServeArgs {
    pub fn base_url(&self) -> String {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        self.base_url.clone().unwrap_or_else(|| format!("{scheme}://{}", self.listen))
    }
}

/// The DKIM signer of the sender's domain (`anpi dkim generate|import`), if it has a key.
async fn dkim_signer(store: &anpi_store::Store, from: &str) -> anyhow::Result<Option<anpi_notify::DkimSigner>> {
    let domain = from.rsplit_once('@').map(|(_, d)| d.trim_end_matches('>')).unwrap_or_default();
    let Some(key) = store.dkim_key_for(domain).await? else {
        tracing::info!(domain, "no DKIM key for the sender's domain: mail is not signed (anpi dkim generate)");
        return Ok(None);
    };
    let signer = anpi_notify::DkimSigner::new(&key).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(key = %signer.name, algorithm = %key.algorithm, "mail is DKIM-signed");
    Ok(Some(signer))
}

pub async fn run(db: &DbArgs, args: ServeArgs, catcher: Option<MailCatcher>) -> anyhow::Result<()> {
    let store = db.service_store().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut state = AppState::new(store.clone(), clock.clone(), &args.base_url());
    state.catcher = catcher.clone();
    state.answer_link_grace_ms = args.answer_link_grace_days.max(0) * 86_400_000;
    let channel = match catcher {
        Some(c) => Channel::Catcher(c),
        None => Channel::smtp(&args.smtp_urls, std::time::Duration::from_secs(args.smtp_timeout_secs.max(1))).map_err(|e| anyhow::anyhow!(e))?,
    };
    let dkim = dkim_signer(&store, &args.mail_from).await?;
    let bounce = match &args.bounce_address {
        Some(a) => match a.trim().rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !local.contains('+') => Some((local.to_string(), domain.to_string())),
            _ => anyhow::bail!("--bounce-address must be local@domain without '+', got {a:?}"),
        },
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = Worker {
        store: store.clone(),
        channel,
        config: WorkerConfig {
            base_url: state.base_url.clone(),
            from: args.mail_from.clone(),
            lease_ms: args.outbox_lease_secs.max(1) * 1000,
            concurrency: args.send_concurrency.max(1),
            dkim,
            bounce: bounce.clone(),
            ..WorkerConfig::default()
        },
        clock,
    };
    let worker = tokio::spawn(worker.run(state.wake.clone(), stop_rx));
    let bounces = match (&args.bounce_maildir, &bounce) {
        (Some(dir), Some((local, _))) => {
            anpi_notify::ensure_maildir(dir).map_err(|e| anyhow::anyhow!("--bounce-maildir {}: {e}", dir.display()))?;
            let reader = anpi_notify::BounceReader { store: store.clone(), clock: state.clock.clone(), maildir: dir.clone(), local: local.clone() };
            Some(tokio::spawn(reader.run(std::time::Duration::from_secs(10), stop_tx.subscribe())))
        }
        _ => None,
    };
    if let Some(secret) = &args.jma_push_secret {
        state.jma_push_secret = Some(anpi_web::PushSecret::new(secret).map_err(|e| anyhow::anyhow!(e))?);
    }
    state.trusted_proxies = anpi_core::netlist::NetList::parse(&args.trusted_proxies.join(" ")).map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}"))?;
    state.intake.max_age_ms = (args.jma_max_age_min > 0).then(|| args.jma_max_age_min * 60_000);
    let node = format!("{:016x}", rand::random::<u64>());
    let live = tokio::spawn(anpi_web::live::relay(store.clone(), state.events.clone(), node, stop_tx.subscribe()));
    let housekeeping = tokio::spawn(housekeeping(store.clone(), state.clock.clone(), stop_tx.subscribe()));
    let intake = tokio::spawn(state.intake.clone().run(std::time::Duration::from_secs(5), stop_tx.subscribe()));
    let poller = match feeds(&args) {
        Some(feeds) => {
            tracing::info!(feeds = feeds.len(), "polling JMA feeds");
            let poller = anpi_intake::poller::Poller::new(state.intake.clone(), feeds).map_err(|e| anyhow::anyhow!(e))?;
            Some(tokio::spawn(poller.run(stop_tx.subscribe())))
        }
        None => None,
    };

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let provider = crate::tls::provider();
            let files = crate::tls::CertFiles::load(cert, key, provider.clone()).map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?;
            // Client certificates are asked for on the tenant listener only (admin access).
            let tenant_config = crate::tls::server_config(files.clone(), provider.clone(), true)?;
            let operator_config = crate::tls::server_config(files.clone(), provider, false)?;
            tokio::spawn(files.watch(stop_tx.subscribe()));
            if !state.base_url.starts_with("https://") {
                tracing::warn!(base_url = %state.base_url, "TLS is on but --base-url is not https://: mailed links will not use it");
            }
            Some((tokio_rustls::TlsAcceptor::from(tenant_config), tokio_rustls::TlsAcceptor::from(operator_config)))
        }
        _ => None,
    };
    state.hsts = tls.is_some();
    let redirect = match args.http_redirect {
        Some(addr) => {
            let router = crate::tls::redirect_router(&state.base_url).map_err(anyhow::Error::msg)?;
            Some((tokio::net::TcpListener::bind(addr).await?, router))
        }
        None => None,
    };
    let tenant = tokio::net::TcpListener::bind(args.listen).await?;
    let operator = tokio::net::TcpListener::bind(args.operator_listen).await?;
    tracing::info!(listen = %args.listen, operator = %args.operator_listen, tls = tls.is_some(), http_redirect = ?args.http_redirect, engine = ?store.engine(), "anpi serving");
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (tenant_tls, operator_tls) = tls.map_or((None, None), |(t, o)| (Some(t), Some(o)));
    let t = crate::tls::serve(tenant, tenant_tls, anpi_web::tenant_router(state.clone()), shutdown(stop_tx.subscribe()));
    let o = crate::tls::serve(operator, operator_tls, anpi_web::operator_router(state.clone()), shutdown(stop_tx.subscribe()));
    let r = {
        let stop = shutdown(stop_tx.subscribe());
        async move {
            match redirect {
                Some((listener, router)) => crate::tls::serve(listener, None, router, stop).await,
                None => Ok(()),
            }
        }
    };
    let signal = async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let (r1, r2, r3, _) = tokio::join!(t, o, r, signal);
    r1?;
    r2?;
    r3?;
    let _ = worker.await;
    if let Some(b) = bounces {
        let _ = b.await;
    }
    let _ = intake.await;
    let _ = housekeeping.await;
    let _ = live.await;
    if let Some(p) = poller {
        let _ = p.await;
    }
    store.close().await;
    Ok(())
}

/// Hourly duties: the audit log's retention purge and signed checkpoints (each head verified
/// since the last checkpoint first), a full verification of every chain once a day, and a
/// warning when the system clock is not synchronised.
async fn housekeeping(store: anpi_store::Store, clock: Arc<dyn Clock>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut last_full: anpi_core::Millis = 0;
    loop {
        match anpi_web::clock_sync::probe().await {
            anpi_web::clock_sync::ClockSync::Synchronised => {}
            anpi_web::clock_sync::ClockSync::NotSynchronised => {
                tracing::warn!("the system clock is NOT synchronised (chrony / systemd-timesyncd): times in answers and logs may be wrong")
            }
            anpi_web::clock_sync::ClockSync::Unknown => {
                tracing::warn!("cannot tell whether the system clock is synchronised: no chrony or systemd-timesyncd answered")
            }
        }
        match store.purge_audit(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "audit log purged by retention"),
            Err(e) => tracing::warn!(error = %e, "audit purge failed"),
        }
        match store.purge_login_throttle(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "sign-in throttling state purged"),
            Err(e) => tracing::warn!(error = %e, "throttle purge failed"),
        }
        // Finishes tenant key rotations (rows still under a retired key).
        match store.reencrypt_retired(500).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "contact data re-encrypted under the active tenant keys"),
            Err(e) => tracing::warn!(error = %e, "re-encryption failed"),
        }
        match store.checkpoint_audit(clock.now()).await {
            Ok(n) => tracing::debug!(chains = n, "audit checkpoints signed"),
            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed"),
        }
        if clock.now() - last_full >= 86_400_000 {
            last_full = clock.now();
            match store.verify_audit().await {
                Ok(r) if r.iter().all(|c| c.problems.is_empty()) => tracing::info!(chains = r.len(), "audit chains verified in full: intact"),
                Ok(r) => tracing::error!(
                    broken = r.iter().filter(|c| !c.problems.is_empty()).count(),
                    "audit chains verified in full: TAMPERING DETECTED (anpi audit verify)"
                ),
                Err(e) => tracing::warn!(error = %e, "audit verification failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The feeds to poll, or `None` when polling is off.
fn feeds(args: &ServeArgs) -> Option<Vec<anpi_intake::poller::FeedConfig>> {
    if args.jma_poll_secs == 0 {
        return None;
    }
    let every = std::time::Duration::from_secs(args.jma_poll_secs);
    Some(if args.jma_feeds.is_empty() {
        anpi_intake::poller::default_feeds(every)
    } else {
        args.jma_feeds.iter().map(|u| anpi_intake::poller::FeedConfig::for_url(u, every)).collect()
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
