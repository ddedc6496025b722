//! Delivery at scale against the machine's own ceiling (issue #10), in one run:
//!
//! 1. **ceiling**: Postfix's `smtp-source -s 64 -m N -l 2000` into Postfix's `smtp-sink`
//!    (which counts every message; `-c`) — the fastest this machine moves mail over loopback SMTP.
//! 2. **anpi**: N people, one incident to everyone started over HTTP, timed from the POST until
//!    a fresh `smtp-sink` has counted N messages; on SQLite with one node, on PostgreSQL with
//!    1, 2 and 3 nodes (`ANPI_BENCH_NODES`) sharing the database. Reported as msg/s and as a
//!    ratio of the ceiling. A second later the sink must still count exactly N: nothing doubled.
//!
//! Run: `cargo bench -p anpi --bench send` (see docs/benchmarks.md). Needs Debian's `postfix`
//! package (smtp-sink, smtp-source in /usr/sbin; the daemon need not run).
//! Environment: `ANPI_BENCH_PEOPLE` (N, default 20000), `ANPI_BENCH_ENGINES` (as for `loop`),
//! `ANPI_BENCH_NODES` (PostgreSQL node counts, default `1,2,3`), `ANPI_BENCH_SEND_CONCURRENCY`
//! (each node's `--send-concurrency`, default the server's), `ANPI_TEST_DATABASE_URL`.

// Benchmark code: a failed step should stop with its message, and it reads the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anpi_core::directory::PersonFields;
use anpi_core::Role;
use anpi_store::audit::AuditEvent;
use anpi_store::Store;
use support::{extract, fresh_database, Engine, Server};

const PASSWORD: &str = "correct horse battery staple";
const TENANT: &str = "bench";
const ADMIN: &str = "admin@bench.example";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        _ => default,
    }
}

fn postfix_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install Debian's postfix package (apt-get install postfix)");
}

/// Postfix's `smtp-sink` on a free loopback port, counting messages (`-c`) into a file.
struct PostfixSink {
    child: Child,
    port: u16,
    counter: PathBuf,
    _dir: tempfile::TempDir,
}

impl PostfixSink {
    fn start() -> PostfixSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let counter = dir.path().join("counter");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(postfix_tool("smtp-sink"));
        // As root, smtp-sink drops to a user; `postfix` exists where the package is installed.
        if nix_is_root() {
            cmd.args(["-u", "postfix"]);
        }
        let child = cmd
            .args(["-c", &format!("127.0.0.1:{port}"), "1024"])
            .stdout(std::fs::File::create(&counter).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PostfixSink { child, port, counter, _dir: dir }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Messages received so far: the last `mesg=` of the counter line smtp-sink rewrites.
    fn count(&self) -> usize {
        let text = std::fs::read(&self.counter).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(200)..];
        String::from_utf8_lossy(tail)
            .rsplit(['\r', '\n'])
            .find_map(|rec| rec.split_whitespace().find_map(|w| w.strip_prefix("mesg=")).and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; `after` starts at field 3. Clock ticks of 1/100 s.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Peak resident memory of a process so far (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

/// CPU seconds used so far by every process named `name` (e.g. all PostgreSQL backends).
fn cpu_of_all(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == name).unwrap_or(false))
        .map(cpu_of)
        .sum()
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Waits until the sink has counted `n`; returns when it did. Panics on a stall.
async fn wait_for(sink: &PostfixSink, n: usize, what: &str) -> Instant {
    let mut last = (0, Instant::now());
    loop {
        let got = sink.count();
        if got >= n {
            return Instant::now();
        }
        if got != last.0 {
            last = (got, Instant::now());
        }
        assert!(last.1.elapsed() < Duration::from_secs(60), "{what}: stalled at {got}/{n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ceiling: smtp-source into a fresh smtp-sink. Returns msg/s.
async fn ceiling(n: usize) -> f64 {
    let sink = PostfixSink::start();
    let t = Instant::now();
    let status = Command::new(postfix_tool("smtp-source"))
        .args(["-s", "64", "-m", &n.to_string(), "-l", "2000", "-f", "bench@anpi.example", "-t", "someone@staff.example", &format!("127.0.0.1:{}", sink.port)])
        .status()
        .expect("run smtp-source");
    assert!(status.success(), "smtp-source failed: {status}");
    let done = wait_for(&sink, n, "smtp-source").await;
    n as f64 / done.duration_since(t).as_secs_f64()
}

async fn seed(engine: Engine, n: usize) -> (String, support::DbGuard) {
    let (db_url, guard) = fresh_database(engine).await;
    let store = Store::connect(&db_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.set_master_keys(support::server::test_master_keys());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let scope = store.create_tenant(TENANT, "Bench 株式会社", now).await.expect("create tenant");
    store.create_account(&scope, ADMIN, "管理 一郎", Role::Admin, Some(PASSWORD), &AuditEvent::system("bench_seed"), now).await.expect("create admin");
    let people: Vec<_> = (0..n)
        .map(|i| {
            PersonFields {
                employee_no: format!("E{i:07}"),
                name: format!("社員 {i}"),
                emails: format!("p{i}@staff.example"),
                home_area: "22203".into(),
                ..Default::default()
            }
            .validate()
            .unwrap_or_else(|e| panic!("invalid person {i}: {e:?}"))
        })
        .collect();
    let t = Instant::now();
    for chunk in people.chunks(10_000) {
        store.import_people(&scope, chunk, &AuditEvent::system("bench_seed"), now).await.expect("import people");
    }
    eprintln!("[{engine}] imported {n} people in {:.1} s", t.elapsed().as_secs_f64());
    store.close().await;
    (db_url, guard)
}

/// What one dispatch took.
struct Dispatch {
    /// From the POST to the last message.
    secs: f64,
    /// The POST alone (recipients and outbox rows written).
    posted: f64,
    /// From the POST to the first message counted by the sink.
    first: f64,
    /// CPU seconds of the anpi nodes and of PostgreSQL (all its processes) over the dispatch.
    anpi_cpu: f64,
    db_cpu: f64,
    /// The largest peak RSS of the nodes, MiB.
    rss: f64,
    /// The incident's dashboard page, fetched three times after the send: the median, seconds.
    dashboard: f64,
}

/// One incident to everyone over `nodes` servers.
async fn dispatch(engine: Engine, db_url: &str, n: usize, nodes: usize) -> Dispatch {
    let sink = PostfixSink::start();
    let mut servers = Vec::new();
    for _ in 0..nodes {
        let mut b = Server::builder(db_url).smtp_url(sink.url()).outbox_lease_secs(60).env("ANPI_LOG", "warn");
        if let Ok(c) = std::env::var("ANPI_BENCH_SEND_CONCURRENCY") {
            if !c.trim().is_empty() {
                b = b.arg("--send-concurrency").arg(c.trim());
            }
        }
        servers.push(b.start().await);
    }
    let mut admin = servers[0].client();
    admin.get("/login").await.expect_status(200);
    let r = admin.post_form("/login", &[("tenant", TENANT), ("email", ADMIN), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 303, "login failed: {}", r.text);
    let page = admin.get("/incidents/new").await.expect_status(200);
    let survey = support::http::html_unescape(&extract(&page.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey textarea"));
    let pids: Vec<u32> = servers.iter().filter_map(|s| s.pid()).collect();
    let (anpi0, db0) = (pids.iter().map(|p| cpu_of(*p)).sum::<f64>(), cpu_of_all("postgres"));
    let t0 = Instant::now();
    let first = async {
        while sink.count() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        t0.elapsed().as_secs_f64()
    };
    let form = [
        ("title", "ベンチマーク: 安否確認"),
        ("message", "安否を回答してください。"),
        ("all", "1"),
        ("survey", survey.as_str()),
        ("reminder_interval", "0"),
        ("reminder_count", "0"),
    ];
    let post = admin.post_form("/incidents", &form);
    let post = async {
        let r = post.await;
        (r, t0.elapsed().as_secs_f64())
    };
    let ((r, posted), first) = tokio::join!(post, first);
    assert_eq!(r.status, 303, "starting the incident failed: {}", r.text);
    let location = r.location().expect("incident location").to_string();
    let done = wait_for(&sink, n, &format!("[{engine}] {nodes} node(s)")).await;
    let secs = done.duration_since(t0).as_secs_f64();
    let (anpi_cpu, db_cpu) = (pids.iter().map(|p| cpu_of(*p)).sum::<f64>() - anpi0, cpu_of_all("postgres") - db0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.count(), n, "[{engine}] {nodes} node(s): the sink counted more than one message per person");
    let mut pages = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        admin.get(&location).await.expect_status(200);
        pages.push(t.elapsed().as_secs_f64());
    }
    pages.sort_by(f64::total_cmp);
    let rss = pids.iter().map(|p| peak_rss_mib(*p)).fold(0.0, f64::max);
    drop(servers);
    Dispatch { secs, posted, first, anpi_cpu, db_cpu, rss, dashboard: pages[1] }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("anpi send benchmark: not run (no --bench argument); use `cargo bench -p anpi --bench send`");
        return;
    }
    let n = env_usize("ANPI_BENCH_PEOPLE", 20_000);
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
    let node_counts: Vec<usize> =
        std::env::var("ANPI_BENCH_NODES").unwrap_or_else(|_| "1,2,3".into()).split(',').map(|s| s.trim().parse().expect("ANPI_BENCH_NODES: numbers")).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut rows = Vec::new();
    rt.block_on(async {
        for engine in engines {
            let counts = if engine == Engine::Postgres { node_counts.clone() } else { vec![1] };
            for nodes in counts {
                let (db_url, _guard) = seed(engine, n).await;
                // The ceiling is measured next to each run: the machine is shared and noisy.
                let sink_rate = ceiling(n).await;
                let Dispatch { secs, posted, first, anpi_cpu, db_cpu, rss, dashboard } = dispatch(engine, &db_url, n, nodes).await;
                let rate = n as f64 / secs;
                let per = |cpu: f64| 1e6 * cpu / n as f64;
                eprintln!(
                    "[{engine}] {nodes} node(s): {n} messages in {secs:.2} s = {rate:.0} msg/s; ceiling {sink_rate:.0} msg/s; {:.0} %; POST /incidents took {posted:.2} s (first message at {:.0} ms); CPU per message: anpi {:.0} µs, PostgreSQL {:.0} µs; peak RSS {rss:.0} MiB; dashboard page {:.0} ms",
                    100.0 * rate / sink_rate,
                    first * 1000.0,
                    per(anpi_cpu),
                    per(db_cpu),
                    dashboard * 1000.0
                );
                rows.push(format!(
                    "| {engine} | {nodes} | {n} | {secs:.2} ({posted:.2}) | {:.0} | {rate:.0} | {sink_rate:.0} | {:.0} % | {:.0} / {:.0} | {rss:.0} | {:.0} |",
                    first * 1000.0,
                    100.0 * rate / sink_rate,
                    per(anpi_cpu),
                    per(db_cpu),
                    dashboard * 1000.0
                ));
            }
        }
    });
    println!();
    println!("| engine | nodes | N | seconds: POST → last message (POST alone) | first message ms | anpi msg/s | ceiling msg/s (smtp-source -s 64 -l 2000 → smtp-sink) | anpi / ceiling | CPU µs per message: anpi / PostgreSQL | peak RSS MiB | dashboard ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
