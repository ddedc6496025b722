//! The `anpi` binary under test, started as a real process on free loopback ports.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::http::{reqwest_client, reqwest_client_trusting, Client};
use super::smtp::SmtpSink;
use super::util::{free_port, signal, tail_file};

/// Path of the application binary built by Cargo for this test.
pub const ANPI_BIN: &str = env!("CARGO_BIN_EXE_anpi");

/// The master key (encryption at rest) given to every `anpi` process the tests start, as
/// `ANPI_MASTER_KEY`, unless a test sets its own: servers sharing a database share it.
pub const TEST_MASTER_KEY: &str = "a8f1c2d3e4b5a6978899aabbccddeeff00112233445566778899aabbccddeef0";

/// The same key for tests and benchmarks that open a `Store` directly.
#[allow(dead_code)]
pub fn test_master_keys() -> anpi_store::MasterKeys {
    match anpi_store::MasterKey::parse(TEST_MASTER_KEY) {
        Ok(k) => anpi_store::MasterKeys::new(k),
        Err(e) => panic!("TEST_MASTER_KEY: {e}"),
    }
}

/// How many log lines a failure report shows.
const LOG_TAIL: usize = 80;

/// Configures and starts a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    database_url: String,
    smtp_url: Option<String>,
    mail_from: String,
    outbox_lease_secs: u64,
    data_dir: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    startup_timeout: Duration,
    base_host: Option<String>,
    tls_ca: Option<Vec<u8>>,
}

impl ServerBuilder {
    /// The listeners serve HTTPS (the test passes `--tls-cert`/`--tls-key`): `--base-url`
    /// and [`Server::url`] use `https://`, and the health check trusts the PEM CA `ca`.
    pub fn https(mut self, ca: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(ca.into());
        self
    }
    /// The host name in `--base-url` (default `127.0.0.1`; the listener stays on 127.0.0.1).
    /// Browsers refuse WebAuthn on IP addresses: passkey tests use `localhost`.
    pub fn base_host(mut self, host: impl Into<String>) -> Self {
        self.base_host = Some(host.into());
        self
    }
    /// SMTP relay: the given sink.
    pub fn smtp(mut self, sink: &SmtpSink) -> Self {
        self.smtp_url = Some(sink.smtp_url());
        self
    }
    /// SMTP relay URL. Default: a closed loopback port (sending fails).
    pub fn smtp_url(mut self, url: impl Into<String>) -> Self {
        self.smtp_url = Some(url.into());
        self
    }
    /// `--mail-from` (default `anpi@example.test`).
    pub fn mail_from(mut self, from: impl Into<String>) -> Self {
        self.mail_from = from.into();
        self
    }
    /// `--outbox-lease-secs` (default 3).
    pub fn outbox_lease_secs(mut self, secs: u64) -> Self {
        self.outbox_lease_secs = secs;
        self
    }
    /// `--data-dir` (default: a fresh temp directory owned by the server).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    /// Appends one argument after the standard ones.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Appends arguments after the standard ones.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Sets an environment variable for the server process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }
    /// How long to wait for both `/healthz` endpoints (default 60 s).
    pub fn startup_timeout(mut self, t: Duration) -> Self {
        self.startup_timeout = t;
        self
    }

    /// Spawns `anpi serve …` and waits until both listeners answer `GET /healthz` with 200.
    pub async fn start(self) -> Server {
        let dir = tempfile::Builder::new().prefix("anpi-server-").tempdir().expect("cannot create server temp dir");
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => dir.path().join("data"),
        };
        fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("cannot create data dir {}: {e}", data_dir.display()));
        let port = free_port();
        let operator_port = free_port();
        let scheme = if self.tls_ca.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{}:{port}", self.base_host.as_deref().unwrap_or("127.0.0.1"));
        let smtp_url = self.smtp_url.clone().unwrap_or_else(|| format!("smtp://127.0.0.1:{}", free_port()));
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--database-url".into(),
            self.database_url.clone(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--operator-listen".into(),
            format!("127.0.0.1:{operator_port}"),
            "--base-url".into(),
            base_url.clone(),
            "--smtp-url".into(),
            smtp_url.clone(),
            "--mail-from".into(),
            self.mail_from.clone(),
            "--outbox-lease-secs".into(),
            self.outbox_lease_secs.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        // No polling of the real JMA feeds unless a test sets feeds.
        if !self.args.iter().any(|a| a.starts_with("--jma-feed") || a.starts_with("--jma-poll-secs")) {
            args.push("--jma-poll-secs=0".into());
        }
        args.extend(self.args.iter().cloned());
        let log = dir.path().join("server.log");
        let mut server = Server {
            child: None,
            port,
            operator_port,
            base_url,
            database_url: self.database_url,
            smtp_url,
            data_dir,
            args,
            envs: self.envs,
            log,
            dir: Some(dir),
            startup_timeout: self.startup_timeout,
            tls_ca: self.tls_ca,
            starts: 0,
            reported: false,
        };
        server.spawn_and_wait().await;
        server
    }
}

/// A running `anpi serve` process; killed on drop. When dropped during a panic, its log path
/// and the tail of its log are printed and its temp directory (log, data) is kept.
pub struct Server {
    child: Option<Child>,
    port: u16,
    operator_port: u16,
    base_url: String,
    database_url: String,
    smtp_url: String,
    data_dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    dir: Option<TempDir>,
    startup_timeout: Duration,
    tls_ca: Option<Vec<u8>>,
    starts: u32,
    /// The log was already shown in a panic message.
    reported: bool,
}

impl Server {
    /// A builder with the standard arguments for `database_url`.
    pub fn builder(database_url: impl Into<String>) -> ServerBuilder {
        ServerBuilder {
            database_url: database_url.into(),
            smtp_url: None,
            mail_from: "anpi@example.test".into(),
            outbox_lease_secs: 3,
            data_dir: None,
            args: Vec::new(),
            envs: Vec::new(),
            startup_timeout: Duration::from_secs(60),
            base_host: None,
            tls_ca: None,
        }
    }

    /// Starts a server on `database_url` sending mail to `sink`.
    pub async fn start(database_url: &str, sink: &SmtpSink) -> Server {
        Server::builder(database_url).smtp(sink).start().await
    }

    fn spawn(&mut self) {
        let mut logf =
            OpenOptions::new().create(true).append(true).open(&self.log).unwrap_or_else(|e| panic!("cannot open server log {}: {e}", self.log.display()));
        self.starts += 1;
        let _ = writeln!(logf, "===== [support] start #{}: {} {} =====", self.starts, ANPI_BIN, self.args.join(" "));
        let mut cmd = Command::new(ANPI_BIN);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(logf.try_clone().expect("clone log handle")).stderr(logf);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env("RUST_BACKTRACE", "1");
        if !self.envs.iter().any(|(k, _)| k == "ANPI_MASTER_KEY" || k == "ANPI_MASTER_KEY_FILE")
            && !self.args.iter().any(|a| a.starts_with("--master-key-file"))
        {
            cmd.env("ANPI_MASTER_KEY", TEST_MASTER_KEY);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {ANPI_BIN}: {e}"));
        self.child = Some(child);
    }

    async fn spawn_and_wait(&mut self) {
        self.spawn();
        let http = match &self.tls_ca {
            Some(ca) => reqwest_client_trusting(ca),
            None => reqwest_client(),
        };
        let urls = [self.url("/healthz"), self.operator_url("/healthz")];
        let started = Instant::now();
        let mut last = String::from("no attempt yet");
        'outer: loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    self.fail(&format!("anpi serve exited with {status} during start-up"));
                }
            }
            let mut all_ok = true;
            for url in &urls {
                match http.get(url).timeout(Duration::from_secs(2)).send().await {
                    Ok(r) if r.status().as_u16() == 200 => {}
                    Ok(r) => {
                        last = format!("GET {url} → HTTP {}", r.status());
                        all_ok = false;
                    }
                    Err(e) => {
                        last = format!("GET {url} → {e}");
                        all_ok = false;
                    }
                }
                if !all_ok {
                    break;
                }
            }
            if all_ok {
                break 'outer;
            }
            if started.elapsed() >= self.startup_timeout {
                self.kill();
                self.fail(&format!("anpi serve did not become healthy within {:?} (last: {last})", self.startup_timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics with the log path and the tail of the log, keeping the temp dir.
    #[track_caller]
    fn fail(&mut self, what: &str) -> ! {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.reported = true;
        panic!(
            "{what}\ncommand: {ANPI_BIN} {}\nlog: {}\n----- last {LOG_TAIL} log lines -----\n{}\n-----",
            self.args.join(" "),
            self.log.display(),
            tail_file(&self.log, LOG_TAIL)
        );
    }

    /// `http://127.0.0.1:PORT` + `path` (the tenant/public listener).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
    /// `http://127.0.0.1:OPERATOR_PORT` + `path` (the operator console listener; `https://`
    /// with [`ServerBuilder::https`]).
    pub fn operator_url(&self, path: &str) -> String {
        let scheme = if self.tls_ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{}", self.operator_port, path)
    }
    /// The `--base-url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn operator_port(&self) -> u16 {
        self.operator_port
    }
    pub fn database_url(&self) -> &str {
        &self.database_url
    }
    pub fn smtp_url(&self) -> &str {
        &self.smtp_url
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The full argument list given to the binary.
    pub fn args(&self) -> &[String] {
        &self.args
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    /// The whole log so far (all starts).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    /// A [`Client`] for the tenant/public listener.
    pub fn client(&self) -> Client {
        self.client_for(self.base_url.clone())
    }
    /// A [`Client`] for the operator listener.
    pub fn operator_client(&self) -> Client {
        self.client_for(self.operator_url(""))
    }
    /// A client for `base`, trusting the test CA over `https://`.
    fn client_for(&self, base: String) -> Client {
        match &self.tls_ca {
            Some(ca) => Client::with_http(base, reqwest_client_trusting(ca)),
            None => Client::new(base),
        }
    }
    /// The PEM CA that `https://` servers' certificates come from, if any.
    pub fn tls_ca(&self) -> Option<&[u8]> {
        self.tls_ca.as_deref()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (a crash: no shutdown code runs) and reap. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `grace` for exit (SIGKILL after that). Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the binary again with the same arguments (same ports, database and data dir),
    /// killing the running process first if there is one, and waits until healthy.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.reported {
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
            eprintln!("----- anpi serve log ({}), last {LOG_TAIL} lines -----\n{}\n-----", self.log.display(), tail_file(&self.log, LOG_TAIL));
        }
    }
}

/// Runs `anpi ARGS…` to completion (at most 120 s), feeding `stdin` if given.
pub fn run_cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(ANPI_BIN);
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    if !args.iter().any(|a| a.starts_with("--master-key-file")) {
        cmd.env("ANPI_MASTER_KEY", TEST_MASTER_KEY);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {ANPI_BIN} {}: {e}", args.join(" ")));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let _ = pipe.write_all(input.as_bytes());
        drop(pipe);
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {ANPI_BIN} {} failed: {e}", args.join(" "))),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{ANPI_BIN} {} did not finish within 120 s (killed)", args.join(" "));
        }
    }
}

/// Like [`run_cli`] but panics (showing stdout and stderr) unless the command succeeded;
/// returns stdout.
#[track_caller]
pub fn run_cli_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = run_cli(args, stdin);
    if !out.status.success() {
        panic!(
            "`anpi {}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `anpi operator create --database-url URL --email EMAIL --password-stdin`; panics on failure.
#[track_caller]
pub fn create_operator(database_url: &str, email: &str, password: &str) -> String {
    run_cli_ok(&["operator", "create", "--database-url", database_url, "--email", email, "--password-stdin"], Some(password))
}
