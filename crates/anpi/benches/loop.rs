//! End-to-end throughput benchmark of the main loop, on SQLite always and on PostgreSQL when
//! `ANPI_TEST_DATABASE_URL` (an admin URL; the bench creates its own database) is set:
//!
//! 1. **dispatch**: an admin logs in over HTTP and starts one incident to everyone (N people);
//!    timed until a real SMTP sink (aiosmtpd, Maildir) has received all N messages.
//! 2. **answers**: N answers posted concurrently (`ANPI_BENCH_CONCURRENCY` tasks, default 64) to
//!    `POST /a/{token}`; timed from the first POST until the incident dashboard
//!    (`GET /incidents/{id}`, `id="answered"`) shows `N / N`.
//!    Then **answers under a sign-in flood**: the same N answers changed again while
//!    `ANPI_BENCH_FLOOD` clients (default 1000) sign in with wrong passwords, each attempt from
//!    a new address (`X-Forwarded-For`; the server trusts 127.0.0.1) and account name, so every
//!    attempt reaches Argon2; reports answers/s and p99 against the unloaded figures of phase 2.
//!
//! Run: `cargo bench -p anpi --bench loop` (see docs/benchmarks.md).
//! Environment: `ANPI_BENCH_PEOPLE` (N, default 10000), `ANPI_BENCH_CONCURRENCY` (default 64),
//! `ANPI_BENCH_SEND_CONCURRENCY` (the server's `--send-concurrency`, default: the server's),
//! `ANPI_BENCH_TIMEOUT_SECS` (per phase, default 1800), `ANPI_BENCH_ENGINES` (`sqlite`,
//! `postgres` or both, comma separated; default: SQLite, plus PostgreSQL when configured),
//! `ANPI_TEST_DATABASE_URL`, `ANPI_TEST_AIOSMTPD_PYTHON` as for the tests.
//!
//! The support library of the integration tests is reused as is (real server process, real
//! SMTP sink, cookie- and CSRF-aware client).

// Benchmark code: a failed step should stop with its message, and it reads the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anpi_core::directory::PersonFields;
use anpi_core::Role;
use anpi_store::audit::AuditEvent;
use anpi_store::Store;
use support::{extract, fresh_database, Engine, Server, SmtpSink};

const PASSWORD: &str = "correct horse battery staple";
const TENANT: &str = "bench";
const ADMIN: &str = "admin@bench.example";
const PUSH_SECRET: &str = "bench-push-secret-0123456789";
/// 駿河湾 2009-08-11 震度速報: 静岡県 震度6弱.
const TELEGRAM: &str = "32-35_07_01_100915_VXSE51.xml";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        _ => default,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One line of the results table.
struct Row {
    engine: Engine,
    what: &'static str,
    n: usize,
    secs: f64,
    detail: String,
}

/// Files in the Maildir's `new/` (aiosmtpd's Mailbox handler delivers there). Cheap: no parsing.
fn maildir_count(sink: &SmtpSink) -> usize {
    std::fs::read_dir(sink.maildir().join("new")).map(|rd| rd.count()).unwrap_or(0)
}

/// When the first message after now lands: polls the modification time of the Maildir's `new/`
/// (a file added changes it) every 2 ms, which costs nothing like listing 100,000 files.
/// Runs alongside the request that starts the send, since that returns only when every
/// recipient is written; the result is measured from `t0`.
fn first_delivery(sink: &SmtpSink, t0: Instant) -> tokio::task::JoinHandle<Duration> {
    let dir = sink.maildir().join("new");
    let mtime = |d: &std::path::Path| std::fs::metadata(d).and_then(|m| m.modified()).ok();
    let before = mtime(&dir);
    tokio::spawn(async move {
        loop {
            if mtime(&dir) != before {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn outbox_counts(db_url: &str) -> String {
    // A separate short-lived connection; the server keeps running.
    match Store::connect(db_url).await {
        Ok(s) => {
            let r = s.outbox_counts().await.map(|v| v.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" "));
            s.close().await;
            r.unwrap_or_else(|e| format!("(outbox_counts failed: {e})"))
        }
        Err(e) => format!("(cannot connect: {e})"),
    }
}

async fn bench_engine(engine: Engine, n: usize, concurrency: usize, timeout: Duration, rows: &mut Vec<Row>) {
    eprintln!("\n=== {engine}: N = {n} ===");
    // ---- set-up (not timed) ----
    let setup = Instant::now();
    let (db_url, _db_guard) = fresh_database(engine).await;
    let store = Store::connect(&db_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.set_master_keys(support::server::test_master_keys());
    let now = now_ms();
    let scope = store.create_tenant(TENANT, "Bench 株式会社", now).await.expect("create tenant");
    store.create_account(&scope, ADMIN, "管理 一郎", Role::Admin, Some(PASSWORD), &AuditEvent::system("bench_seed"), now).await.expect("create admin");
    let inputs: Vec<_> = (0..n)
        .map(|i| {
            PersonFields {
                employee_no: format!("E{i:06}"),
                name: format!("社員 {i}"),
                emails: format!("p{i}@staff.example"),
                department: if i % 2 == 0 { "本社/総務部".into() } else { "大阪支社/営業課".into() },
                home_area: "22203".into(),
                ..Default::default()
            }
            .validate()
            .unwrap_or_else(|e| panic!("invalid person {i}: {e:?}"))
        })
        .collect();
    let t = Instant::now();
    store.import_people(&scope, &inputs, &AuditEvent::system("bench_seed"), now).await.expect("import people");
    eprintln!("[{engine}] imported {n} people in {:.1} s", t.elapsed().as_secs_f64());
    let sink = SmtpSink::start().await;
    let mut builder = Server::builder(&db_url).smtp(&sink).outbox_lease_secs(60).env("ANPI_LOG", "warn").args([
        "--jma-push-secret",
        PUSH_SECRET,
        "--jma-max-age-min",
        "0",
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    if let Ok(c) = std::env::var("ANPI_BENCH_SEND_CONCURRENCY") {
        if !c.trim().is_empty() {
            builder = builder.arg("--send-concurrency").arg(c.trim());
        }
    }
    let server = builder.start().await;
    eprintln!("[{engine}] set-up done in {:.1} s (server {}, log {})", setup.elapsed().as_secs_f64(), server.base_url(), server.log_path().display());

    // ---- 1. dispatch: login → start incident → N messages in the sink ----
    let mut admin = server.client();
    let t0 = Instant::now();
    admin.get("/login").await.expect_status(200);
    let r = admin.post_form("/login", &[("tenant", TENANT), ("email", ADMIN), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 303, "login failed: {}", r.text);
    let page = admin.get("/incidents/new").await.expect_status(200);
    let survey = extract(&page.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey textarea on /incidents/new");
    let survey = support::http::html_unescape(&survey);
    let t_login = t0.elapsed();
    let first_watch = first_delivery(&sink, t0);
    let r = admin
        .post_form(
            "/incidents",
            &[
                ("title", "ベンチマーク: 地震発生に伴う安否確認"),
                ("message", "安否を回答してください。"),
                ("all", "1"),
                ("survey", survey.as_str()),
                ("reminder_interval", "0"),
                ("reminder_count", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "starting the incident failed: {}", r.text);
    let t_started = t0.elapsed();
    let incident: i64 =
        r.location().and_then(|l| l.trim_start_matches("/incidents/").split('?').next().and_then(|s| s.parse().ok())).expect("incident id in Location");
    let deadline = Instant::now() + timeout;
    let mut first_mail: Option<Duration> = None;
    let mut last = (0usize, Instant::now());
    let mut next_report = Instant::now() + Duration::from_secs(10);
    loop {
        let got = maildir_count(&sink);
        if got > 0 && first_mail.is_none() {
            first_mail = Some(t0.elapsed());
        }
        if got >= n {
            break;
        }
        if got != last.0 {
            last = (got, Instant::now());
        }
        if Instant::now() >= next_report {
            eprintln!("[{engine}] dispatch: {got}/{n} after {:.1} s", t0.elapsed().as_secs_f64());
            next_report += Duration::from_secs(10);
        }
        if Instant::now() >= deadline || last.1.elapsed() > Duration::from_secs(120) {
            panic!(
                "[{engine}] dispatch stalled: {got}/{n} messages after {:.1} s; outbox: {}; server log {}",
                t0.elapsed().as_secs_f64(),
                outbox_counts(&db_url).await,
                server.log_path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dispatch = t0.elapsed();
    let delivered = maildir_count(&sink);
    let first = match tokio::time::timeout(Duration::from_secs(1), first_watch).await {
        Ok(Ok(watched)) => watched,
        _ => first_mail.unwrap_or(dispatch),
    };
    eprintln!(
        "[{engine}] dispatch: {delivered} messages in {:.2} s (login+form {}, POST /incidents done at {}, first mail at {}); outbox: {}",
        dispatch.as_secs_f64(),
        ms(t_login),
        ms(t_started),
        ms(first),
        outbox_counts(&db_url).await
    );
    rows.push(Row {
        engine,
        what: "dispatch (login → all mails in SMTP sink)",
        n,
        secs: dispatch.as_secs_f64(),
        detail: format!(
            "{:.0} msg/s; POST /incidents returned after {}, first mail at {}, sending phase {:.0} msg/s",
            n as f64 / dispatch.as_secs_f64(),
            ms(t_started),
            ms(first),
            n as f64 / (dispatch - first).as_secs_f64().max(1e-9)
        ),
    });

    // ---- 2. answers: N concurrent POST /a/{token} → dashboard shows N / N ----
    let ids: Vec<i64> = {
        sqlx::any::install_default_drivers();
        // As the database superuser: row-level security hides tenant rows from the app's role.
        let pool = sqlx::AnyPool::connect(&support::superuser_url(&db_url)).await.expect("connect for recipient ids");
        let ids = sqlx::query_scalar::<_, i64>("SELECT id FROM recipients WHERE incident_id = $1 ORDER BY id")
            .bind(incident)
            .fetch_all(&pool)
            .await
            .expect("recipient ids");
        pool.close().await;
        ids
    };
    assert_eq!(ids.len(), n, "recipients of incident {incident}");
    let mut tokens = Vec::with_capacity(n);
    for id in ids {
        tokens.push(store.answer_token(id).await.expect("answer token"));
    }
    store.close().await;
    drop(store);
    let tokens = Arc::new(tokens);
    let base = server.base_url().to_string();
    // The HTTP ceiling: as many GET /healthz from as many connections, through the same stack.
    let (ceiling_rate, ceiling_p99) = http_ceiling(&base, n, concurrency).await;
    eprintln!("[{engine}] HTTP ceiling: {ceiling_rate:.0} GET /healthz per s from {concurrency} connections, p99 {}", ms(ceiling_p99));
    rows.push(Row {
        engine,
        what: "HTTP ceiling (GET /healthz, same clients)",
        n,
        secs: n as f64 / ceiling_rate,
        detail: format!("{ceiling_rate:.0} requests/s; {concurrency} concurrent clients; p99 {}", ms(ceiling_p99)),
    });
    // The dashboard's live stream, listening through the burst: when do its events arrive?
    let stream = admin.request(reqwest::Method::GET, &format!("/incidents/{incident}/events")).send().await.expect("event stream");
    assert_eq!(stream.status(), 200, "event stream");
    let heard = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let listener = tokio::spawn(listen(stream, heard.clone()));
    let t1 = Instant::now();
    let (lat, errors) = post_answers(&base, tokens.clone(), concurrency, "c1").await;
    let posts_done = t1.elapsed();
    if !errors.is_empty() {
        eprintln!("[{engine}] {} answer POSTs failed, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    }
    let want = format!("{n} / {n}");
    let deadline = Instant::now() + timeout;
    let mut board_fetches = 0usize;
    let mut board_time = Duration::ZERO;
    let shown = loop {
        let t = Instant::now();
        let page = admin.get(&format!("/incidents/{incident}")).await.expect_status(200);
        board_time += t.elapsed();
        board_fetches += 1;
        let shown = extract(&page.text, "id=\"answered\">", "</div>").unwrap_or_default();
        if shown.trim() == want {
            break shown;
        }
        if Instant::now() >= deadline {
            panic!("[{engine}] dashboard shows {shown:?}, want {want:?} after {:.1} s", t1.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answers = t1.elapsed();
    // Events within a second after the last POST count; the stream's own window is 500 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    listener.abort();
    let heard = heard.lock().unwrap().clone();
    let (during, after): (Vec<Duration>, Vec<Duration>) = heard.iter().map(|t| t.duration_since(t1)).partition(|d| *d <= posts_done);
    let max_gap = std::iter::once(Duration::ZERO).chain(during.iter().copied()).collect::<Vec<_>>().windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let lag = after.first().map(|d| *d - posts_done);
    eprintln!(
        "[{engine}] live stream: {} events during the {:.2} s burst (largest gap {}), first event after the last POST {}",
        during.len(),
        posts_done.as_secs_f64(),
        ms(max_gap),
        lag.map(ms).unwrap_or_else(|| "none".into())
    );
    rows.push(Row {
        engine,
        what: "live stream during the answers",
        n,
        secs: posts_done.as_secs_f64(),
        detail: format!(
            "{} `answer` events during the burst, largest gap {}; first event after the last POST: {}",
            during.len(),
            ms(max_gap),
            lag.map(ms).unwrap_or_else(|| "none".into())
        ),
    });
    eprintln!(
        "[{engine}] answers: {} POSTs in {:.2} s, dashboard shows {shown:?} at {:.2} s ({board_fetches} dashboard fetch(es), avg {}); latency p50 {} p99 {} max {}",
        lat.len(),
        posts_done.as_secs_f64(),
        answers.as_secs_f64(),
        ms(board_time / board_fetches.max(1) as u32),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    rows.push(Row {
        engine,
        what: "answers (first POST → dashboard N / N)",
        n,
        secs: answers.as_secs_f64(),
        detail: format!(
            "{:.0} answers/s ({:.0} % of the HTTP ceiling, POSTs alone); {concurrency} concurrent clients; POST latency p50 {}, p99 {}, max {}; {} errors; dashboard page {}",
            n as f64 / answers.as_secs_f64(),
            100.0 * n as f64 / posts_done.as_secs_f64() / ceiling_rate,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
            errors.len(),
            ms(board_time / board_fetches.max(1) as u32)
        ),
    });

    // ---- 2b. the same answers (changed) while a sign-in flood runs ----
    let unloaded_rate = n as f64 / posts_done.as_secs_f64();
    let unloaded_p99 = percentile(&lat, 0.99);
    let flooders = env_usize("ANPI_BENCH_FLOOD", 1000);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
    let flood: Vec<_> = (0..flooders).map(|i| tokio::spawn(sign_in_flood(base.clone(), i, stop.clone(), outcomes.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await; // the flood is running at full strength
    let t2 = Instant::now();
    let (flat, ferrors) = post_answers(&base, tokens.clone(), concurrency, "c2").await;
    let flooded = t2.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    let flooded_rate = n as f64 / flooded.as_secs_f64();
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!(
        "[{engine}] answers under a flood of {flooders} concurrent wrong-password sign-ins: {:.0}/s (unloaded {:.0}/s), p99 {} (unloaded {}); sign-in outcomes {outcomes:?}",
        flooded_rate,
        unloaded_rate,
        ms(percentile(&flat, 0.99)),
        ms(unloaded_p99)
    );
    rows.push(Row {
        engine,
        what: "answers during a sign-in flood (POSTs only)",
        n,
        secs: flooded.as_secs_f64(),
        detail: format!(
            "{flooded_rate:.0} answers/s = {:.0} % of unloaded {unloaded_rate:.0}/s; p99 {} (unloaded {}); {} errors; {flooders} clients signing in with wrong passwords from distinct addresses: {outcomes:?}",
            100.0 * flooded_rate / unloaded_rate,
            ms(percentile(&flat, 0.99)),
            ms(unloaded_p99),
            ferrors.len()
        ),
    });

    // ---- 3. telegram latency: push a stored telegram → N messages in the sink ----
    match support::shared_dir().map(|d| d.join("jma/samples").join(TELEGRAM)).and_then(|p| std::fs::read(p).ok()) {
        Some(xml) => rows.push(telegram_latency(engine, n, scope, &db_url, &server, &sink, xml, timeout).await),
        None => eprintln!("[{engine}] telegram latency: SKIPPED (../shared/jma/samples/{TELEGRAM} not found)"),
    }
    drop(server);
    drop(sink);
}

/// Notes when each `answer` event of an SSE stream arrives, until aborted.
async fn listen(mut stream: reqwest::Response, heard: Arc<Mutex<Vec<Instant>>>) {
    while let Ok(Some(chunk)) = stream.chunk().await {
        let events = String::from_utf8_lossy(&chunk).matches("event: answer").count();
        let now = Instant::now();
        heard.lock().unwrap().extend(std::iter::repeat_n(now, events));
    }
}

/// `n` GET /healthz from `concurrency` clients: what the HTTP stack and these clients carry on
/// this machine without any work behind it. Returns requests/s and the p99 latency.
async fn http_ceiling(base: &str, n: usize, concurrency: usize) -> (f64, Duration) {
    let url = format!("{base}/healthz");
    let t = Instant::now();
    let (lat, errors) = drive(n, concurrency, 200, "GET /healthz", move |http, _| http.get(&url)).await;
    assert!(errors.is_empty(), "the ceiling's requests failed: {:?}", &errors[..errors.len().min(5)]);
    (n as f64 / t.elapsed().as_secs_f64(), percentile(&lat, 0.99))
}

/// Posts one answer per token (`choice` to question 1) from `concurrency` clients; returns the
/// sorted latencies and the failures.
async fn post_answers(base: &str, tokens: Arc<Vec<String>>, concurrency: usize, choice: &'static str) -> (Vec<Duration>, Vec<String>) {
    let base = base.to_string();
    drive(tokens.len(), concurrency, 303, "POST /a/…", move |http, i| http.post(format!("{base}/a/{}", tokens[i])).form(&[("q1", choice)])).await
}

/// Sends `n` requests from `concurrency` clients, request `i` made by `request`; returns the
/// sorted latencies and the failures (transport errors, and statuses other than `expect`),
/// each named by `what` and its number.
async fn drive<F>(n: usize, concurrency: usize, expect: u16, what: &'static str, request: F) -> (Vec<Duration>, Vec<String>)
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let http = support::http::reqwest_client();
    let request = Arc::new(request);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, latencies, errors, http, request) = (next.clone(), latencies.clone(), errors.clone(), http.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let start = Instant::now();
                let status = match request(&http, i).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        Ok(s)
                    }
                    Err(e) => Err(e.to_string()),
                };
                mine.push(start.elapsed());
                match status {
                    Ok(s) if s == expect => {}
                    Ok(s) => errors.lock().unwrap().push(format!("{what} #{i}: HTTP {s}")),
                    Err(e) => errors.lock().unwrap().push(format!("{what} #{i}: {e}")),
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for t in tasks {
        t.await.expect("request task");
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let errors = errors.lock().unwrap().clone();
    (lat, errors)
}

/// One flooding client: signs in with a wrong password, again and again, each time from a new
/// address (`X-Forwarded-For`, the server trusts 127.0.0.1) and for a new account name, so the
/// per-address and per-name throttles never stop it and every attempt reaches Argon2 — what a
/// distributed flood would do. Counts the answers by status.
async fn sign_in_flood(base: String, client: usize, stop: Arc<std::sync::atomic::AtomicBool>, outcomes: Arc<Mutex<std::collections::BTreeMap<String, usize>>>) {
    let http = support::http::reqwest_client();
    let mut attempt = 0usize;
    while !stop.load(Ordering::Relaxed) {
        attempt += 1;
        let ip = format!("10.{}.{}.{}", client % 250, attempt % 250, (client / 250) % 250 + 1);
        let Ok(page) = http.get(format!("{base}/login")).header("X-Forwarded-For", &ip).send().await else { continue };
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("__Host-anpi-login="))
            .map(|c| c.split(';').next().unwrap_or("").to_string());
        let html = page.text().await.unwrap_or_default();
        let csrf = extract(&html, "name=\"csrf\" value=\"", "\"").unwrap_or_default();
        let email = format!("x{client}-{attempt}@bench.example");
        let mut req = http.post(format!("{base}/login")).header("X-Forwarded-For", &ip).form(&[
            ("csrf", csrf.as_str()),
            ("tenant", TENANT),
            ("email", email.as_str()),
            ("password", "wrong password 123"),
        ]);
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let outcome = match req.send().await {
            Ok(r) => r.status().as_u16().to_string(),
            Err(_) => "error".to_string(),
        };
        *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
    }
}

#[allow(clippy::too_many_arguments)]
async fn telegram_latency(
    engine: Engine,
    n: usize,
    scope: anpi_store::TenantScope,
    db_url: &str,
    server: &Server,
    sink: &SmtpSink,
    xml: Vec<u8>,
    timeout: Duration,
) -> Row {
    use anpi_intake::Rule;
    let store = Store::connect(db_url).await.expect("connect");
    store.set_master_keys(support::server::test_master_keys());
    let rule = Rule::from_row(&anpi_store::RuleRow {
        name: "震度5弱以上".into(),
        enabled: 1,
        kind: "earthquake".into(),
        threshold: "intensity:5-".into(),
        basis: "home".into(),
        survey: serde_json::to_string(&anpi_core::survey::Survey::default_safety()).expect("survey"),
        ..Default::default()
    })
    .expect("rule");
    store.save_rule(&scope, &rule.to_row(), &AuditEvent::system("bench_seed"), now_ms()).await.expect("save rule");
    store.close().await;
    let before = maildir_count(sink);
    let http = support::http::reqwest_client();
    let t0 = Instant::now();
    let first_watch = first_delivery(sink, t0);
    let r = http
        .post(format!("{}/api/jma/telegrams", server.base_url()))
        .header("authorization", format!("Bearer {PUSH_SECRET}"))
        .body(xml)
        .send()
        .await
        .expect("push telegram");
    assert_eq!(r.status().as_u16(), 201, "push failed: {:?}", r.text().await);
    let accepted = t0.elapsed();
    let mut first = None;
    let deadline = Instant::now() + timeout;
    loop {
        let got = maildir_count(sink) - before;
        if got > 0 && first.is_none() {
            first = Some(t0.elapsed());
        }
        if got >= n {
            break;
        }
        assert!(Instant::now() < deadline, "[{engine}] telegram latency: {got}/{n} messages after {:.1} s", t0.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = t0.elapsed();
    let first = match tokio::time::timeout(Duration::from_secs(1), first_watch).await {
        Ok(Ok(watched)) => watched,
        _ => first.unwrap_or(all),
    };
    eprintln!("[{engine}] telegram → {n} mails in {:.2} s (push answered after {}, first mail at {})", all.as_secs_f64(), ms(accepted), ms(first));
    Row {
        engine,
        what: "telegram latency (push → all mails in SMTP sink)",
        n,
        secs: all.as_secs_f64(),
        detail: format!("push accepted (rules applied, incident and outbox written) after {}, first mail at {}", ms(accepted), ms(first)),
    }
}

fn main() {
    // `cargo bench` passes `--bench`. Under `cargo test --benches` / `--all-targets` (no
    // `--bench`) do nothing: the benchmark takes minutes and is not a test.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("anpi loop benchmark: not run (no --bench argument); use `cargo bench -p anpi --bench loop`");
        return;
    }
    let n = env_usize("ANPI_BENCH_PEOPLE", 10_000);
    let concurrency = env_usize("ANPI_BENCH_CONCURRENCY", 64);
    let timeout = Duration::from_secs(env_usize("ANPI_BENCH_TIMEOUT_SECS", 1800) as u64);
    let engines: Vec<Engine> = match std::env::var("ANPI_BENCH_ENGINES") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|e| match e.trim() {
                "sqlite" => Engine::Sqlite,
                "postgres" | "postgresql" => Engine::Postgres,
                other => panic!("ANPI_BENCH_ENGINES: unknown engine {other:?}"),
            })
            .collect(),
        _ => support::engines(),
    };
    eprintln!("anpi loop benchmark: binary {}", support::server::ANPI_BIN);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut rows = Vec::new();
    rt.block_on(async {
        for engine in engines {
            bench_engine(engine, n, concurrency, timeout, &mut rows).await;
        }
    });
    println!();
    println!("| engine | measurement | N | seconds | details |");
    println!("|---|---|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {:.2} | {} |", r.engine, r.what, r.n, r.secs, r.detail);
    }
}
