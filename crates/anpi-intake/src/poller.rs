//! The JMA Atom feed poller (DESIGN.md §1): reads each feed with conditional GETs, fetches every
//! telegram it has not fetched before (oldest first) and hands it to [`Intake::accept`]. Feed state
//! (validators, failures, next poll) lives in the database, so several nodes share it and a restart
//! resumes where it stopped. Failures back off exponentially and never stop the poller.

use crate::feed::{parse_feed, FeedEntry};
use crate::{Accepted, Intake, IntakeError, Source};
use anpi_core::Millis;
use anpi_store::FeedStatus;
use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Where JMA publishes its feeds.
pub const JMA_FEED_BASE: &str = "https://www.data.jma.go.jp/developer/xml/feed/";
/// JMA's high-frequency feeds (updated every minute) and long feeds (`_l.xml`, the last days).
const JMA_FEEDS: [&str; 4] = ["eqvol.xml", "extra.xml", "eqvol_l.xml", "extra_l.xml"];
/// How often long feeds (`…_l.xml`) are polled.
pub const LONG_FEED_INTERVAL: Duration = Duration::from_secs(600);
/// Longest wait after failures (or the feed's own interval when that is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(600);

const FEED_TIMEOUT: Duration = Duration::from_secs(60);
const TELEGRAM_TIMEOUT: Duration = Duration::from_secs(10);
const FEED_MAX_BYTES: usize = 32 << 20;
const TELEGRAM_MAX_BYTES: usize = 4 << 20;
/// Longest stored error text, in characters.
const MAX_ERROR_CHARS: usize = 500;
/// The run loop looks at the feed state at least this often.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// One feed to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    pub url: String,
    pub interval: Duration,
}

impl FeedConfig {
    /// A feed polled every `poll`, or every [`LONG_FEED_INTERVAL`] for a long feed (`…_l.xml`).
    pub fn for_url(url: &str, poll: Duration) -> FeedConfig {
        let interval = if url.ends_with("_l.xml") { LONG_FEED_INTERVAL.max(poll) } else { poll };
        FeedConfig { url: url.to_string(), interval }
    }
}

/// JMA's four public feeds: `eqvol` and `extra` every `poll`, their long versions every 10 minutes.
pub fn default_feeds(poll: Duration) -> Vec<FeedConfig> {
    JMA_FEEDS.iter().map(|f| FeedConfig::for_url(&format!("{JMA_FEED_BASE}{f}"), poll)).collect()
}

/// What one successful poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The server answered 304 Not Modified.
    pub not_modified: bool,
    /// Entries with a link in the feed.
    pub listed: usize,
    /// New telegrams fetched and accepted (new or duplicate).
    pub accepted: usize,
    /// New telegrams fetched but rejected by intake; they are not fetched again.
    pub rejected: usize,
    /// New telegrams given up on (HTTP 4xx, too large); not fetched again.
    pub given_up: usize,
    /// Entries whose link is not an http(s) URL.
    pub bad_links: usize,
}

impl PollReport {
    /// Entries handled for the first time.
    fn new_entries(&self) -> i64 {
        i64::try_from(self.accepted + self.rejected + self.given_up).unwrap_or(i64::MAX)
    }
}

/// Polls feeds and feeds their telegrams to intake.
pub struct Poller {
    intake: Intake,
    feeds: Vec<FeedConfig>,
    client: reqwest::Client,
}

/// A fetch error: `retry` ones leave the entry to the next poll.
struct FetchError {
    retry: bool,
    reason: String,
}

/// A feed response: its validators and, unless 304, its entries.
struct FeedBody {
    etag: String,
    last_modified: String,
    entries: Option<Vec<FeedEntry>>,
}

/// The outcome of the entries of one feed response.
#[derive(Default)]
struct Entries {
    report: PollReport,
    /// Telegrams to try again next poll, with why.
    failed: Vec<String>,
}

impl Poller {
    /// A poller with an HTTP client of its own. Needs a rustls crypto provider installed.
    pub fn new(intake: Intake, feeds: Vec<FeedConfig>) -> Result<Poller, String> {
        let client = client_builder().build().map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))?;
        Ok(Poller { intake, feeds, client })
    }

    /// Polls every feed when it is due until `stop` turns true (or its sender is dropped).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        info!(feeds = self.feeds.len(), "JMA feed poller started");
        while !*stop.borrow() {
            let wait = self.poll_due(&stop).await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        info!("JMA feed poller stopped");
    }

    /// Polls the feeds that are due; returns how long to sleep before the next is.
    async fn poll_due(&self, stop: &tokio::sync::watch::Receiver<bool>) -> Duration {
        let mut next = self.intake.clock.now() + millis(MAX_IDLE);
        for feed in &self.feeds {
            if *stop.borrow() {
                return Duration::ZERO;
            }
            let mut due = self.due_at(feed).await;
            if due <= self.intake.clock.now() {
                // Failures are recorded and logged by poll_once.
                let _ = self.poll_once(feed).await;
                due = self.due_at(feed).await;
            }
            next = next.min(due);
        }
        let wait = u64::try_from(next - self.intake.clock.now()).unwrap_or(0);
        Duration::from_millis(wait).max(Duration::from_millis(200))
    }

    /// When `feed` should be polled next; the configured interval wins over a longer stored one.
    async fn due_at(&self, feed: &FeedConfig) -> Millis {
        match self.intake.store.feed_state(&feed.url).await {
            Ok(None) => 0,
            Ok(Some(s)) => s.next_poll_at.min(s.last_polled_at.unwrap_or(0).saturating_add(millis(backoff(feed.interval, s.failures)))),
            Err(e) => {
                warn!(feed = %feed.url, error = %e, "cannot read the feed state");
                self.intake.clock.now() + millis(feed.interval)
            }
        }
    }

    /// Polls one feed now and records the outcome. `Err` is why the poll failed (or which
    /// telegrams are left for the next poll); it has been recorded and logged.
    pub async fn poll_once(&self, feed: &FeedConfig) -> Result<PollReport, String> {
        let now = self.intake.clock.now();
        let state = self.intake.store.feed_state(&feed.url).await.map_err(|e| store_failure(&feed.url, e))?;
        let failures = state.as_ref().map_or(0, |s| s.failures);
        let result = match self.fetch_feed(feed, state.as_ref()).await {
            Ok(body) => {
                let out = self.handle_entries(&feed.url, &body).await;
                match left_over(&out.failed) {
                    None => Ok((body, out.report)),
                    Some(reason) => Err((reason, out.report)),
                }
            }
            Err(reason) => Err((reason, PollReport::default())),
        };
        let store = &self.intake.store;
        match result {
            Ok((body, report)) => {
                let next = now + millis(feed.interval);
                let stored = store.record_feed_success(&feed.url, &body.etag, &body.last_modified, now, next, report.new_entries()).await;
                stored.map_err(|e| store_failure(&feed.url, e))?;
                log_success(&feed.url, &report);
                Ok(report)
            }
            Err((reason, report)) => {
                let reason: String = reason.chars().take(MAX_ERROR_CHARS).collect();
                let delay = backoff(feed.interval, failures + 1);
                warn!(feed = %feed.url, failures = failures + 1, retry_in_secs = delay.as_secs(), "JMA feed poll failed: {reason}");
                let stored = store.record_feed_failure(&feed.url, &reason, now, now + millis(delay), report.new_entries()).await;
                stored.map_err(|e| store_failure(&feed.url, e))?;
                Err(reason)
            }
        }
    }

    /// GETs the feed with the stored validators; parses it unless 304.
    async fn fetch_feed(&self, feed: &FeedConfig, state: Option<&FeedStatus>) -> Result<FeedBody, String> {
        let mut req = self.client.get(&feed.url).timeout(FEED_TIMEOUT);
        let (etag, last_modified) = state.map_or(("", ""), |s| (s.etag.as_str(), s.last_modified.as_str()));
        if !etag.is_empty() {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if !last_modified.is_empty() {
            req = req.header(IF_MODIFIED_SINCE, last_modified);
        }
        let resp = req.send().await.map_err(|e| format!("GET {}: {}", feed.url, describe(&e)))?;
        let etag = header(resp.headers(), ETAG).unwrap_or_else(|| etag.to_string());
        let last_modified = header(resp.headers(), LAST_MODIFIED).unwrap_or_else(|| last_modified.to_string());
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FeedBody { etag, last_modified, entries: None });
        }
        if !status.is_success() {
            return Err(format!("GET {}: HTTP {status}", feed.url));
        }
        let bytes = read_capped(resp, FEED_MAX_BYTES).await.map_err(|e| format!("GET {}: {}", feed.url, e.reason))?;
        let entries = parse_feed(&bytes).map_err(|e| format!("{}: {e}", feed.url))?;
        Ok(FeedBody { etag, last_modified, entries: Some(entries) })
    }

    /// Fetches and accepts the new entries, oldest first.
    async fn handle_entries(&self, feed_url: &str, body: &FeedBody) -> Entries {
        let mut out = Entries::default();
        let Some(entries) = &body.entries else {
            out.report.not_modified = true;
            return out;
        };
        out.report.listed = entries.len();
        let base = Url::parse(feed_url).ok();
        for entry in oldest_first(entries) {
            let url = match entry_url(base.as_ref(), &entry.link) {
                Ok(url) => url,
                Err(reason) => {
                    warn!(feed = %feed_url, "skipping a feed entry: {reason}");
                    out.report.bad_links += 1;
                    continue;
                }
            };
            if let Err(reason) = self.handle_entry(&url, &mut out.report).await {
                out.failed.push(reason);
            }
        }
        out
    }

    /// One entry: skipped when known; else fetched, accepted and marked. `Err` means retry.
    async fn handle_entry(&self, url: &Url, report: &mut PollReport) -> Result<(), String> {
        let store = &self.intake.store;
        if store.feed_entry_known(url.as_str()).await.map_err(|e| format!("{url}: {e}"))? {
            return Ok(());
        }
        let telegram_id = match self.fetch_telegram(url).await {
            Ok(bytes) => match self.intake.accept(&bytes, Source::Feed).await {
                Ok(Accepted::New { telegram_id, .. } | Accepted::Duplicate { telegram_id }) => {
                    report.accepted += 1;
                    Some(telegram_id)
                }
                Err(IntakeError::Rejected(reason)) => {
                    warn!(telegram = %url, "telegram rejected: {reason}");
                    report.rejected += 1;
                    None
                }
                Err(e) => return Err(format!("{url}: {e}")),
            },
            Err(FetchError { retry: false, reason }) => {
                warn!(telegram = %url, "giving up on a telegram: {reason}");
                report.given_up += 1;
                None
            }
            Err(FetchError { retry: true, reason }) => return Err(reason),
        };
        store.mark_feed_entry(url.as_str(), telegram_id, self.intake.clock.now()).await.map_err(|e| format!("{url}: {e}"))
    }

    /// GETs one telegram. A 4xx (other than 408/429) or an oversized body is final.
    async fn fetch_telegram(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let retry = |reason: String| FetchError { retry: true, reason };
        let resp = self.client.get(url.clone()).timeout(TELEGRAM_TIMEOUT).send().await.map_err(|e| retry(format!("GET {url}: {}", describe(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            let transient = status.is_server_error() || matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS);
            return Err(FetchError { retry: transient, reason: format!("GET {url}: HTTP {status}") });
        }
        read_capped(resp, TELEGRAM_MAX_BYTES).await.map_err(|e| FetchError { reason: format!("GET {url}: {}", e.reason), ..e })
    }
}

/// Client settings shared with the tests.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("anpi/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
}

/// `interval · 2^failures`, at most 10 minutes (or `interval` when that is longer).
fn backoff(interval: Duration, failures: i64) -> Duration {
    let factor = 1u32 << failures.clamp(0, 20);
    interval.saturating_mul(factor).min(MAX_BACKOFF.max(interval))
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// JMA lists the newest first; telegrams are accepted in the order they were issued.
fn oldest_first(entries: &[FeedEntry]) -> Vec<&FeedEntry> {
    let mut v: Vec<&FeedEntry> = entries.iter().rev().collect();
    v.sort_by(|a, b| a.updated.cmp(&b.updated));
    v
}

/// The entry's link, resolved against the feed; only http(s).
fn entry_url(base: Option<&Url>, link: &str) -> Result<Url, String> {
    let url = match base {
        Some(base) => base.join(link),
        None => Url::parse(link),
    };
    let url = url.map_err(|e| format!("bad link {link:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("link {link:?} is {other}:, not http(s)")),
    }
}

fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Reads the body, failing (for good) once it exceeds `cap` bytes.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError { retry: false, reason: format!("body larger than {} MiB", cap >> 20) };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let read_error = |e: reqwest::Error| FetchError { retry: true, reason: format!("reading the body: {}", describe(&e)) };
    while let Some(chunk) = resp.chunk().await.map_err(read_error)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes: reqwest's own message rarely says what went wrong.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Logs a database error about a feed's state and returns it as the poll's error.
fn store_failure(url: &str, e: anpi_store::StoreError) -> String {
    warn!(feed = %url, error = %e, "cannot read or record the JMA feed state");
    format!("feed state of {url}: {e}")
}

/// Why a poll is incomplete, when telegrams were left for the next one.
fn left_over(failed: &[String]) -> Option<String> {
    let first = failed.first()?;
    Some(match failed.len() {
        1 => format!("telegram left for the next poll: {first}"),
        n => format!("{n} telegrams left for the next poll; first: {first}"),
    })
}

fn log_success(url: &str, r: &PollReport) {
    if r.new_entries() > 0 {
        info!(feed = %url, accepted = r.accepted, rejected = r.rejected, given_up = r.given_up, "JMA feed polled");
    } else {
        debug!(feed = %url, not_modified = r.not_modified, "JMA feed polled: nothing new");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_core::{Clock, ManualClock};
    use anpi_store::Store;
    use axum::extract::{Path, State};
    use axum::http::{header as h, HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const T0: Millis = 1_700_000_000_000;
    const MINUTE: Millis = 60_000;
    const LAST_MODIFIED_V: &str = "Mon, 01 Jan 2024 07:10:25 GMT";

    /// What the test server answers for the feed.
    #[derive(Clone)]
    enum FeedReply {
        Atom { etag: String, body: String },
        Status(u16),
        Raw(String),
    }

    /// One feed request as the server saw it.
    #[derive(Debug, Clone, PartialEq)]
    struct FeedRequest {
        if_none_match: Option<String>,
        if_modified_since: Option<String>,
        user_agent: Option<String>,
    }

    struct Server {
        feed: Mutex<FeedReply>,
        /// Telegram path → (status, body).
        telegrams: Mutex<HashMap<String, (u16, Vec<u8>)>>,
        feed_requests: Mutex<Vec<FeedRequest>>,
        /// Telegram paths in the order they were requested.
        telegram_requests: Mutex<Vec<String>>,
    }

    impl Server {
        fn set_feed(&self, reply: FeedReply) {
            *self.feed.lock().unwrap() = reply;
        }
        fn set_telegram(&self, name: &str, status: u16, body: impl Into<Vec<u8>>) {
            self.telegrams.lock().unwrap().insert(name.into(), (status, body.into()));
        }
        fn hits(&self, name: &str) -> usize {
            self.telegram_requests.lock().unwrap().iter().filter(|p| *p == name).count()
        }
        fn feed_requests(&self) -> Vec<FeedRequest> {
            self.feed_requests.lock().unwrap().clone()
        }
    }

    fn text(h: &HeaderMap, name: h::HeaderName) -> Option<String> {
        h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    async fn serve_feed(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
        let inm = text(&headers, h::IF_NONE_MATCH);
        let req =
            FeedRequest { if_none_match: inm.clone(), if_modified_since: text(&headers, h::IF_MODIFIED_SINCE), user_agent: text(&headers, h::USER_AGENT) };
        s.feed_requests.lock().unwrap().push(req);
        let reply = s.feed.lock().unwrap().clone();
        match reply {
            FeedReply::Atom { etag, .. } if inm.as_deref() == Some(etag.as_str()) => (StatusCode::NOT_MODIFIED, [(h::ETAG, etag)]).into_response(),
            FeedReply::Atom { etag, body } => {
                (StatusCode::OK, [(h::ETAG, etag), (h::LAST_MODIFIED, LAST_MODIFIED_V.into()), (h::CONTENT_TYPE, "application/atom+xml".into())], body)
                    .into_response()
            }
            FeedReply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
            FeedReply::Raw(body) => (StatusCode::OK, body).into_response(),
        }
    }

    async fn serve_telegram(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Response {
        s.telegram_requests.lock().unwrap().push(name.clone());
        match s.telegrams.lock().unwrap().get(&name).cloned() {
            Some((code, body)) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }

    /// An Atom feed of `(link, updated)` entries, in the given (document) order.
    fn atom(entries: &[(&str, &str)]) -> String {
        let items: String = entries
            .iter()
            .map(|(link, updated)| format!("<entry><title>震度速報</title><id>{link}</id><updated>{updated}</updated><author><name>気象庁</name></author><link type=\"application/xml\" href=\"{link}\"/><content type=\"text\">【震度速報】</content></entry>"))
            .collect();
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\" lang=\"ja\"><title>高頻度（地震火山）</title><updated>2024-01-01T07:10:25+09:00</updated>{items}</feed>")
    }

    fn atom_reply(etag: &str, entries: &[(&str, &str)]) -> FeedReply {
        FeedReply::Atom { etag: format!("\"{etag}\""), body: atom(entries) }
    }

    struct Harness {
        poller: Poller,
        server: Arc<Server>,
        clock: Arc<ManualClock>,
        feed: FeedConfig,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        async fn state(&self) -> FeedStatus {
            self.poller.intake.store.feed_state(&self.feed.url).await.unwrap().expect("feed state recorded")
        }
        async fn poll(&self) -> Result<PollReport, String> {
            self.poller.poll_once(&self.feed).await
        }
    }

    async fn harness() -> Harness {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let server = Arc::new(Server {
            feed: Mutex::new(atom_reply("empty", &[])),
            telegrams: Mutex::default(),
            feed_requests: Mutex::default(),
            telegram_requests: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/feed.xml", axum::routing::get(serve_feed))
            .route("/data/{name}", axum::routing::get(serve_telegram))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.sqlite").display())).await.unwrap();
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let intake = Intake::new(store, clock.clone(), Arc::default());
        let feed = FeedConfig { url: format!("http://{addr}/feed.xml"), interval: Duration::from_secs(60) };
        let client = client_builder().no_proxy().build().unwrap();
        let poller = Poller { intake, feeds: vec![feed.clone()], client };
        Harness { poller, server, clock, feed, _dir: dir }
    }

    /// A real JMA telegram from the shared samples, or `None` (with a note) when they are absent.
    fn sample(name: &str) -> Option<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/jma/samples").join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!("skipping: JMA sample {} not readable ({e}); the samples live in shared/jma/samples", path.display());
                None
            }
        }
    }

    #[tokio::test]
    async fn conditional_get_and_each_telegram_fetched_once() {
        let (Some(a), Some(b), Some(c)) =
            (sample("32-35_01_01_100806_VXSE51.xml"), sample("32-35_01_02_240613_VXSE52.xml"), sample("32-35_01_03_240613_VXSE53.xml"))
        else {
            return;
        };
        let t = harness().await;
        t.server.set_telegram("a.xml", 200, a);
        t.server.set_telegram("b.xml", 200, b);
        t.server.set_telegram("c.xml", 200, c);
        let base = t.feed.url.trim_end_matches("feed.xml").to_string();
        let (link_b, link_c) = (format!("{base}data/b.xml"), format!("{base}data/c.xml"));
        // Newest first, as JMA lists them; one link relative to the feed.
        let v1 = [(link_b.as_str(), "2024-01-01T07:10:20Z"), ("data/a.xml", "2024-01-01T07:05:00Z")];
        t.server.set_feed(atom_reply("v1", &v1));

        let r = t.poll().await.unwrap();
        assert_eq!((r.not_modified, r.listed, r.accepted + r.rejected), (false, 2, 2), "{r:?}");
        assert_eq!(*t.server.telegram_requests.lock().unwrap(), ["a.xml", "b.xml"], "oldest first");
        let s = t.state().await;
        assert_eq!((s.etag.as_str(), s.last_modified.as_str(), s.failures, s.entries_seen), ("\"v1\"", LAST_MODIFIED_V, 0, 2));
        assert_eq!((s.last_polled_at, s.last_ok_at, s.next_poll_at), (Some(T0), Some(T0), T0 + MINUTE));

        // Unchanged: the validators are sent, the server answers 304, nothing is fetched.
        t.clock.advance(MINUTE);
        let r = t.poll().await.unwrap();
        assert!(r.not_modified, "{r:?}");
        let reqs = t.server.feed_requests();
        assert_eq!(reqs[0], FeedRequest { if_none_match: None, if_modified_since: None, user_agent: Some(format!("anpi/{}", env!("CARGO_PKG_VERSION"))) });
        assert_eq!((reqs[1].if_none_match.as_deref(), reqs[1].if_modified_since.as_deref()), (Some("\"v1\""), Some(LAST_MODIFIED_V)));
        assert_eq!(t.server.telegram_requests.lock().unwrap().len(), 2);
        assert_eq!(t.state().await.next_poll_at, T0 + 2 * MINUTE);

        // A new entry beside the old ones: only it is fetched.
        t.server.set_feed(atom_reply("v2", &[(link_c.as_str(), "2024-01-01T07:20:00Z"), v1[0], v1[1]]));
        t.clock.advance(MINUTE);
        let r = t.poll().await.unwrap();
        assert_eq!((r.listed, r.accepted + r.rejected), (3, 1), "{r:?}");
        // Served in full again (a changed ETag): still nothing fetched twice.
        t.server.set_feed(atom_reply("v3", &[(link_c.as_str(), "2024-01-01T07:20:00Z"), v1[0], v1[1]]));
        t.clock.advance(MINUTE);
        let r = t.poll().await.unwrap();
        assert_eq!((r.not_modified, r.accepted + r.rejected), (false, 0), "{r:?}");
        for name in ["a.xml", "b.xml", "c.xml"] {
            assert_eq!(t.server.hits(name), 1, "{name} fetched once");
        }
        let s = t.state().await;
        assert_eq!((s.etag.as_str(), s.entries_seen), ("\"v3\"", 3));
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_and_recover() {
        let t = harness().await;
        let steps: [(FeedReply, &str, Millis); 4] = [
            (FeedReply::Status(500), "HTTP 500", 2 * MINUTE),
            (FeedReply::Status(503), "HTTP 503", 4 * MINUTE),
            (FeedReply::Raw("<html><body>メンテナンス中</body></html>".into()), "not an Atom feed", 8 * MINUTE),
            (FeedReply::Raw("<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry>".into()), "unexpected end", 10 * MINUTE),
        ];
        for (i, (reply, want, delay)) in steps.into_iter().enumerate() {
            t.server.set_feed(reply);
            let now = t.clock.now();
            let err = t.poll().await.unwrap_err();
            assert!(err.contains(want), "{err}");
            let s = t.state().await;
            assert_eq!((s.failures, s.next_poll_at, s.last_polled_at, s.last_ok_at), (i as i64 + 1, now + delay, Some(now), None));
            assert!(s.last_error.contains(want), "{}", s.last_error);
            t.clock.advance(delay);
        }
        let status = t.poller.intake.store.feeds().await.unwrap();
        assert_eq!(status.len(), 1);
        assert!(status[0].last_error.contains("unexpected end") && status[0].failures == 4);

        // Recovery resets the failures; a telegram intake cannot read is fetched once all the same.
        t.server.set_telegram("x.xml", 200, "not a telegram");
        t.server.set_feed(atom_reply("v1", &[("data/x.xml", "2024-01-01T07:10:20Z")]));
        let now = t.clock.now();
        let r = t.poll().await.unwrap();
        assert_eq!(r.accepted + r.rejected, 1, "{r:?}");
        let s = t.state().await;
        assert_eq!((s.failures, s.last_error.as_str(), s.last_ok_at, s.next_poll_at), (0, "", Some(now), now + MINUTE));
        t.server.set_feed(atom_reply("v2", &[("data/x.xml", "2024-01-01T07:10:20Z")]));
        t.poll().await.unwrap();
        assert_eq!(t.server.hits("x.xml"), 1);
    }

    #[tokio::test]
    async fn failed_telegrams_are_retried_and_hopeless_ones_dropped() {
        let t = harness().await;
        t.poll().await.unwrap();
        assert_eq!(t.state().await.etag, "\"empty\"");

        t.server.set_telegram("flaky.xml", 503, "busy");
        t.server.set_telegram("ok.xml", 200, "<not-jma/>");
        t.server.set_telegram("huge.xml", 200, vec![b' '; TELEGRAM_MAX_BYTES + 1]);
        let entries = [
            ("data/flaky.xml", "2024-01-01T07:03:00Z"),
            ("data/gone.xml", "2024-01-01T07:02:00Z"),
            ("data/ok.xml", "2024-01-01T07:01:00Z"),
            ("data/huge.xml", "2024-01-01T07:00:00Z"),
            ("ftp://example.jp/x.xml", "2024-01-01T06:00:00Z"),
        ];
        t.server.set_feed(atom_reply("v1", &entries));
        let err = t.poll().await.unwrap_err();
        assert!(err.contains("telegram left for the next poll") && err.contains("flaky.xml") && err.contains("503"), "{err}");
        let s = t.state().await;
        assert_eq!((s.failures, s.etag.as_str(), s.entries_seen), (1, "\"empty\"", 3), "validators kept, so the feed is read in full again");

        t.server.set_telegram("flaky.xml", 200, "<still-not-jma/>");
        t.clock.advance(2 * MINUTE);
        let r = t.poll().await.unwrap();
        assert_eq!((r.listed, r.accepted + r.rejected, r.given_up, r.bad_links), (5, 1, 0, 1), "{r:?}");
        for (name, hits) in [("flaky.xml", 2), ("gone.xml", 1), ("ok.xml", 1), ("huge.xml", 1)] {
            assert_eq!(t.server.hits(name), hits, "{name}");
        }
        let s = t.state().await;
        assert_eq!((s.failures, s.etag.as_str(), s.entries_seen), (0, "\"v1\"", 4));
    }

    #[tokio::test]
    async fn run_polls_until_stopped() {
        let t = harness().await;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(t.poller.run(rx));
        let polled = async {
            while t.server.feed_requests().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), polled).await.expect("the poller polls at once");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the poller stops").unwrap();
        assert_eq!(t.server.feed_requests().len(), 1, "not due again within the interval");
    }

    #[test]
    fn defaults_and_backoff() {
        let feeds = default_feeds(Duration::from_secs(60));
        let got: Vec<(&str, u64)> = feeds.iter().map(|f| (f.url.trim_start_matches(JMA_FEED_BASE), f.interval.as_secs())).collect();
        assert_eq!(got, [("eqvol.xml", 60), ("extra.xml", 60), ("eqvol_l.xml", 600), ("extra_l.xml", 600)]);
        let secs = |i: u64, f: i64| backoff(Duration::from_secs(i), f).as_secs();
        assert_eq!([secs(60, 0), secs(60, 1), secs(60, 3), secs(60, 4), secs(60, 60)], [60, 120, 480, 600, 600]);
        assert_eq!([secs(600, 0), secs(600, 2), secs(900, 1)], [600, 600, 900]);
    }
}
