//! A minimal W3C WebDriver client (reqwest + serde_json) driving headless Chromium through
//! chromedriver.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::http::reqwest_client;
use super::util::{env_nonempty, free_port, in_ci, random_hex, tail_file, test_artifacts_dir};

/// The W3C element-reference key.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium. chromedriver and the browser are ended on drop;
/// when dropped during a panic, a screenshot and the page source are saved under
/// `test-artifacts/screenshots/` first.
pub struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Option<Child>,
    dir: Option<TempDir>,
    profile: PathBuf,
    log: PathBuf,
}

/// An HTTP response as Chromium received it (header names in lower case).
#[derive(Debug, Clone)]
pub struct NetResponse {
    pub url: String,
    pub status: u16,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl NetResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An error returned by chromedriver.
#[derive(Debug, Clone)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.error, self.message)
    }
}

impl WebDriver {
    /// Starts chromedriver (`$ANPI_TEST_CHROMEDRIVER`) and a headless Chromium session
    /// (`$ANPI_TEST_CHROMIUM`). Returns None (after printing why) when `ANPI_TEST_CHROMEDRIVER`
    /// is unset; panics instead when `CI` is set.
    pub async fn start() -> Option<WebDriver> {
        let Some(driver) = env_nonempty("ANPI_TEST_CHROMEDRIVER") else {
            if in_ci() {
                panic!("ANPI_TEST_CHROMEDRIVER is not set but CI is: browser tests must run in CI (use scripts/test.sh)");
            }
            eprintln!("SKIPPED browser test: ANPI_TEST_CHROMEDRIVER is not set (scripts/test.sh sets it)");
            return None;
        };
        Some(Self::start_with(&driver, env_nonempty("ANPI_TEST_CHROMIUM").as_deref()).await)
    }

    /// Like [`WebDriver::start`], with extra Chromium arguments and Chrome's performance log
    /// on, so that [`WebDriver::network_responses`] can read the HTTP responses as Chromium
    /// received them (WebDriver classic has no access to headers).
    pub async fn start_recording_network(extra_args: &[String]) -> Option<WebDriver> {
        let Some(driver) = env_nonempty("ANPI_TEST_CHROMEDRIVER") else {
            assert!(!in_ci(), "ANPI_TEST_CHROMEDRIVER is not set but CI is: browser tests must run in CI (use scripts/test.sh)");
            eprintln!("SKIPPED browser test: ANPI_TEST_CHROMEDRIVER is not set (scripts/test.sh sets it)");
            return None;
        };
        Some(Self::launch(&driver, env_nonempty("ANPI_TEST_CHROMIUM").as_deref(), extra_args, true).await)
    }

    /// Starts `driver` (a chromedriver binary) and a session with `chromium` (None: the
    /// driver's default browser).
    pub async fn start_with(driver: &str, chromium: Option<&str>) -> WebDriver {
        Self::launch(driver, chromium, &[], false).await
    }

    async fn launch(driver: &str, chromium: Option<&str>, extra_args: &[String], record_network: bool) -> WebDriver {
        if !Path::new(driver).exists() {
            panic!("chromedriver not found at {driver} (ANPI_TEST_CHROMEDRIVER)");
        }
        if let Some(c) = chromium {
            if !Path::new(c).exists() {
                panic!("chromium not found at {c} (ANPI_TEST_CHROMIUM)");
            }
        }
        let dir = tempfile::Builder::new().prefix("anpi-webdriver-").tempdir().expect("cannot create webdriver temp dir");
        let profile = dir.path().join("profile");
        fs::create_dir_all(&profile).expect("create chromium profile dir");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let logf = fs::File::create(&log).expect("create chromedriver log");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("clone log handle"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn chromedriver {driver}: {e}"));
        let mut wd = WebDriver {
            http: reqwest_client(),
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            child: Some(child),
            dir: Some(dir),
            profile,
            log,
        };

        // Wait for /status to report ready.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = wd.child.as_mut().map(|c| c.try_wait()) {
                wd.child = None;
                panic!("chromedriver exited with {status} at start-up; its log:\n{}", tail_file(&wd.log, 40));
            }
            let ready = match wd.http.get(format!("{}/status", wd.base)).timeout(Duration::from_secs(2)).send().await {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["value"]["ready"].as_bool()).unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                panic!("chromedriver on port {port} not ready within 30 s; its log:\n{}", tail_file(&wd.log, 40));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", wd.profile.display()));
        args.extend_from_slice(extra_args);
        let mut chrome_options = json!({ "args": args });
        if let Some(c) = chromium {
            chrome_options["binary"] = json!(c);
        }
        let mut caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": chrome_options,
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 60000, "script": 30000 }
                }
            }
        });
        if record_network {
            caps["capabilities"]["alwaysMatch"]["goog:loggingPrefs"] = json!({ "performance": "ALL" });
        }
        let v = match wd.raw_cmd(Method::POST, "/session".to_string(), Some(caps)).await {
            Ok(v) => v,
            Err(e) => panic!("cannot create a WebDriver session: {e}\nchromedriver log:\n{}", tail_file(&wd.log, 40)),
        };
        wd.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("new session response has no sessionId: {v}")).to_string();
        wd
    }

    async fn raw_cmd(&self, method: Method, path: String, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}{}", self.base, path);
        let mut rb = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            rb = rb.json(&b);
        } else if method == Method::POST {
            rb = rb.json(&json!({}));
        }
        let resp = rb.send().await.map_err(|e| WdError { status: 0, error: "transport".into(), message: format!("{method} {url}: {e}") })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value =
            serde_json::from_str(&text).map_err(|e| WdError { status, error: "invalid json".into(), message: format!("{method} {url}: {e}: {text}") })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 || value.get("error").is_some() {
            return Err(WdError {
                status,
                error: value["error"].as_str().unwrap_or("unknown error").to_string(),
                message: format!("{method} {path}: {}", value["message"].as_str().unwrap_or(&text)),
            });
        }
        Ok(value)
    }

    /// Sends a session command (`path` relative to `/session/{id}`).
    pub async fn try_cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        self.raw_cmd(method, format!("/session/{}{}", self.session, path), body).await
    }

    /// Like [`WebDriver::try_cmd`] but panics on error.
    pub async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver command failed: {e}"),
        }
    }

    pub fn session_id(&self) -> &str {
        &self.session
    }

    /// Navigates to `url` and waits for the page load.
    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url }))).await;
    }
    pub async fn back(&self) {
        self.cmd(Method::POST, "/back", None).await;
    }
    pub async fn refresh(&self) {
        self.cmd(Method::POST, "/refresh", None).await;
    }
    pub async fn current_url(&self) -> String {
        self.cmd(Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }
    pub async fn title(&self) -> String {
        self.cmd(Method::GET, "/title", None).await.as_str().unwrap_or_default().to_string()
    }
    pub async fn page_source(&self) -> String {
        self.cmd(Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    fn element_id(v: &Value) -> String {
        v[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("not an element reference: {v}")).to_string()
    }

    /// The first element matching the CSS selector, or None.
    pub async fn try_find(&self, css: &str) -> Option<String> {
        match self.try_cmd(Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await {
            Ok(v) => Some(Self::element_id(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("finding {css:?} failed: {e}"),
        }
    }
    /// The first element matching the CSS selector; panics (with the page URL) if none.
    pub async fn find(&self, css: &str) -> String {
        match self.try_find(css).await {
            Some(el) => el,
            None => panic!("no element matches {css:?} on {}", self.current_url().await),
        }
    }
    /// All elements matching the CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.cmd(Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        v.as_array().map(|a| a.iter().map(Self::element_id).collect()).unwrap_or_default()
    }
    /// Polls until an element matches `css`; panics after `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(el) = self.try_find(css).await {
                return el;
            }
            if Instant::now() >= deadline {
                panic!("no element matched {css:?} within {timeout:?} on {}", self.current_url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    /// Polls until the current URL contains `needle`; returns it; panics after `timeout`.
    pub async fn wait_for_url(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await;
            if url.contains(needle) {
                return url;
            }
            if Instant::now() >= deadline {
                panic!("URL did not come to contain {needle:?} within {timeout:?}; it is {url}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, el: &str) {
        self.cmd(Method::POST, &format!("/element/{el}/click"), None).await;
    }
    pub async fn clear(&self, el: &str) {
        self.cmd(Method::POST, &format!("/element/{el}/clear"), None).await;
    }
    pub async fn send_keys(&self, el: &str, text: &str) {
        self.cmd(Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text }))).await;
    }
    /// The rendered text of an element.
    pub async fn text(&self, el: &str) -> String {
        self.cmd(Method::GET, &format!("/element/{el}/text"), None).await.as_str().unwrap_or_default().to_string()
    }
    pub async fn attribute(&self, el: &str, name: &str) -> Option<String> {
        self.cmd(Method::GET, &format!("/element/{el}/attribute/{name}"), None).await.as_str().map(str::to_string)
    }
    pub async fn property(&self, el: &str, name: &str) -> Value {
        self.cmd(Method::GET, &format!("/element/{el}/property/{name}"), None).await
    }
    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }
    /// Adds a virtual WebAuthn authenticator (the WebDriver extension of Web Authentication
    /// §11.3), e.g. `{"protocol":"ctap2","transport":"internal","hasResidentKey":true,
    /// "hasUserVerification":true,"isUserVerified":true}`; returns its id.
    pub async fn add_virtual_authenticator(&self, options: Value) -> String {
        let v = self.cmd(Method::POST, "/webauthn/authenticator", Some(options)).await;
        v.as_str().unwrap_or_else(|| panic!("no authenticator id in {v}")).to_string()
    }
    /// The credentials a virtual authenticator holds (each with `credentialId`, `signCount`, …).
    pub async fn authenticator_credentials(&self, authenticator: &str) -> Vec<Value> {
        let v = self.cmd(Method::GET, &format!("/webauthn/authenticator/{authenticator}/credentials"), None).await;
        v.as_array().cloned().unwrap_or_default()
    }
    /// The HTTP responses Chromium received since the last call (needs
    /// [`WebDriver::start_recording_network`]): `Network.responseReceived` events and the
    /// redirect responses carried by `Network.requestWillBeSent`, from Chrome's performance
    /// log (chromedriver's `se/log`, which empties the log as it reads it).
    pub async fn network_responses(&self) -> Vec<NetResponse> {
        let entries = self.cmd(Method::POST, "/se/log", Some(json!({ "type": "performance" }))).await;
        let mut out = Vec::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(event) = entry["message"].as_str().and_then(|m| serde_json::from_str::<Value>(m).ok()) else {
                continue;
            };
            let event = &event["message"];
            let response = match event["method"].as_str() {
                Some("Network.responseReceived") => &event["params"]["response"],
                Some("Network.requestWillBeSent") if event["params"]["redirectResponse"].is_object() => &event["params"]["redirectResponse"],
                _ => continue,
            };
            let headers = response["headers"]
                .as_object()
                .map(|h| h.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            out.push(NetResponse {
                url: response["url"].as_str().unwrap_or_default().to_string(),
                status: response["status"].as_u64().unwrap_or(0) as u16,
                headers,
            });
        }
        out
    }

    /// An element reference usable as an [`WebDriver::execute`] argument.
    pub fn element_arg(el: &str) -> Value {
        json!({ ELEMENT_KEY: el })
    }

    /// Saves a PNG screenshot of the viewport. A relative `path` is taken under
    /// `<repo>/test-artifacts/screenshots/` (".png" appended when it has no extension).
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> PathBuf {
        let v = self.cmd(Method::GET, "/screenshot", None).await;
        let b64 = v.as_str().unwrap_or_else(|| panic!("screenshot response is not a string"));
        let png = base64::engine::general_purpose::STANDARD.decode(b64).expect("screenshot is not valid base64");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is not a PNG");
        let target = screenshot_path(path.as_ref());
        fs::write(&target, &png).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
        target
    }

    /// Ends the session and chromedriver.
    pub async fn quit(mut self) {
        if !self.session.is_empty() {
            let _ = self.raw_cmd(Method::DELETE, format!("/session/{}", self.session), None).await;
            self.session.clear();
        }
        self.shutdown();
    }

    /// A blocking HTTP/1.1 request to chromedriver (for Drop, where nothing can be awaited).
    fn blocking_request(&self, method: &str, path: &str) -> Option<String> {
        let addr = self.base.strip_prefix("http://")?;
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).ok()?;
                if n == 0 || after.len() < n {
                    break;
                }
                out.push_str(&after[..n]);
                rest = after[n..].trim_start_matches("\r\n");
            }
            Some(out)
        } else {
            Some(body.to_string())
        }
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Chromium processes still running with our (unique) profile directory: kill them by id.
        let marker = format!("--user-data-dir={}", self.profile.display());
        if let Ok(rd) = fs::read_dir("/proc") {
            for entry in rd.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                if cmdline.split(|&b| b == 0).any(|arg| arg == marker.as_bytes()) {
                    super::util::signal(pid, "KILL");
                }
            }
        }
    }
}

fn screenshot_path(path: &Path) -> PathBuf {
    let mut p = if path.is_absolute() { path.to_path_buf() } else { test_artifacts_dir("screenshots").join(path) };
    if p.extension().is_none() {
        p.set_extension("png");
    }
    if let Some(parent) = p.parent() {
        let _ = fs::create_dir_all(parent);
    }
    p
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if !self.session.is_empty() {
            if std::thread::panicking() {
                let name = format!("failure-{}", random_hex(8));
                if let Some(body) = self.blocking_request("GET", &format!("/session/{}/screenshot", self.session)) {
                    if let Some(png) = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["value"].as_str().map(str::to_string))
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    {
                        let target = screenshot_path(Path::new(&name));
                        if fs::write(&target, png).is_ok() {
                            eprintln!("browser screenshot at failure: {}", target.display());
                        }
                    }
                }
                if let Some(body) = self.blocking_request("GET", &format!("/session/{}/source", self.session)) {
                    if let Some(src) = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["value"].as_str().map(str::to_string)) {
                        let target = screenshot_path(Path::new(&format!("{name}.html")));
                        if fs::write(&target, src).is_ok() {
                            eprintln!("page source at failure: {}", target.display());
                        }
                    }
                }
            }
            let _ = self.blocking_request("DELETE", &format!("/session/{}", self.session));
        }
        self.shutdown();
    }
}
