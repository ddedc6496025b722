//! Security headers as headless Chromium received them (Chrome's performance log), on every GET
//! page of the console, the public pages and the operator console: CSP, nosniff, frame and
//! referrer headers everywhere, `Cache-Control: no-store` on everything but the static assets,
//! and HSTS over the built-in TLS listener. The routes are read from the routers' source, so a
//! new page fails the test until it is mapped to a concrete URL here.
//!
//! Headers do not depend on the storage engine: SQLite only.

use super::common::*;
use super::tls::{openssl_ok, tls_server, Pki};
use crate::support::webdriver::NetResponse;
use crate::support::{extract, shared_dir, Engine, WebDriver};
use anpi_store::mfa::{totp_code, unbase32};
use base64::Engine as _;
use reqwest::Method;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const HSTS: &str = "max-age=31536000; includeSubDomains";
const PUSH_SECRET: &str = "headers-push-secret-0123456789";
/// A JMA sample telegram (Iwate-Miyagi 2008), pushed so that /hazards/{id} has a page.
const TELEGRAM: &str = "32-35_06_03_240613_VXSE53.xml";

/// When in the session a page is visited.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Stage {
    /// Not signed in.
    Public,
    /// Signed in as the tenant's admin.
    Console,
    /// Password given, second factor pending.
    SecondStep,
    /// Signed in to the operator console.
    Operator,
}

/// How the browser loads it: pages are navigated to; downloads and the event stream (which
/// never finishes loading) are fetched by the page itself, with its cookies.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Load {
    Navigate,
    Fetch,
}

/// A GET route and the concrete URL that exercises it (`{name}` filled from the seeded ids).
struct Page {
    route: &'static str,
    url: &'static str,
    stage: Stage,
    load: Load,
    status: u16,
}

const fn page(route: &'static str, url: &'static str, stage: Stage, load: Load, status: u16) -> Page {
    Page { route, url, stage, load, status }
}

use Load::{Fetch, Navigate};
use Stage::{Console, Operator, Public, SecondStep};

/// Every GET route of the tenant listener (crates/anpi-web/src/pages/mod.rs).
const TENANT_PAGES: &[Page] = &[
    page("/healthz", "/healthz", Public, Navigate, 200),
    page("/health", "/health", Public, Navigate, 200),
    page("/login", "/login", Public, Navigate, 200),
    page("/password/reset", "/password/reset", Public, Navigate, 200),
    page("/password/reset/{token}", "/password/reset/{reset}", Public, Navigate, 200),
    page("/a/{token}", "/a/{answer}", Public, Navigate, 200),
    page("/static/app.css", "/static/app.css", Public, Fetch, 200),
    page("/static/live.js", "/static/live.js", Public, Fetch, 200),
    page("/static/passkey.js", "/static/passkey.js", Public, Fetch, 200),
    page("/", "/", Console, Navigate, 200),
    page("/account", "/account", Console, Navigate, 200),
    page("/account/mfa", "/account/mfa", Console, Navigate, 200),
    page("/security", "/security", Console, Navigate, 200),
    page("/security/network", "/security/network", Console, Navigate, 200),
    page("/security/client-cert", "/security/client-cert", Console, Navigate, 200),
    page("/labels", "/labels", Console, Navigate, 200),
    page("/audit", "/audit", Console, Navigate, 200),
    page("/audit.csv", "/audit.csv", Console, Fetch, 200),
    page("/audit.json", "/audit.json", Console, Fetch, 200),
    page("/password", "/password", Console, Navigate, 200),
    page("/incidents/new", "/incidents/new", Console, Navigate, 200),
    page("/incidents/{id}", "/incidents/{incident}", Console, Navigate, 200),
    page("/incidents/{id}/events", "/incidents/{incident}/events", Console, Fetch, 200),
    page("/incidents/{id}/answers.csv", "/incidents/{incident}/answers.csv", Console, Fetch, 200),
    page("/people", "/people", Console, Navigate, 200),
    page("/people/new", "/people/new", Console, Navigate, 200),
    page("/people/export.csv", "/people/export.csv", Console, Fetch, 200),
    page("/people/import", "/people/import", Console, Navigate, 200),
    page("/people/{id}", "/people/{person}", Console, Navigate, 200),
    page("/org", "/org", Console, Navigate, 200),
    page("/accounts", "/accounts", Console, Navigate, 200),
    // The caught-mail page exists in demo mode only; elsewhere it is a 404, with the headers.
    page("/mail", "/mail", Console, Navigate, 404),
    page("/hazards", "/hazards", Console, Navigate, 200),
    page("/hazards/{id}", "/hazards/{hazard}", Console, Navigate, 200),
    page("/hazards/{id}/xml", "/hazards/{hazard}/xml", Console, Fetch, 200),
    page("/rules", "/rules", Console, Navigate, 200),
    page("/rules/new", "/rules/new", Console, Navigate, 200),
    page("/rules/{id}", "/rules/{rule}", Console, Navigate, 200),
    page("/login/mfa", "/login/mfa", SecondStep, Navigate, 200),
];

/// Every GET route of the operator listener (crates/anpi-web/src/pages/operator.rs).
const OPERATOR_PAGES: &[Page] = &[
    page("/healthz", "/healthz", Public, Navigate, 200),
    page("/login", "/login", Public, Navigate, 200),
    page("/static/app.css", "/static/app.css", Public, Fetch, 200),
    page("/", "/", Operator, Navigate, 200),
];

/// The GET routes of a router's source that `pages` does not map, and mapped routes that no
/// longer exist.
fn unmapped(src: &str, pages: &[Page]) -> Vec<String> {
    let routes: Vec<String> = routes_in(src).into_iter().filter(|(_, m)| m.contains(&"GET")).map(|(r, _)| r).collect();
    let mut problems: Vec<String> =
        routes.iter().filter(|r| !pages.iter().any(|p| p.route == r.as_str())).map(|r| format!("GET {r} is not mapped to a URL in headers.rs")).collect();
    problems.extend(pages.iter().filter(|p| !routes.iter().any(|r| r == p.route)).map(|p| format!("{} is mapped but is no route", p.route)));
    problems
}

/// The headers every response of ours must carry as the browser saw them; problems are added
/// to `problems`.
fn check_headers(r: &NetResponse, tls: bool, problems: &mut Vec<String>) {
    let mut want = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{} {}: {what}; headers: {:?}", r.status, r.url, r.headers));
        }
    };
    let csp = r.header("content-security-policy").unwrap_or_default();
    for d in ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"] {
        want(csp.split(';').any(|part| part.trim() == d), &format!("CSP without {d}"));
    }
    want(r.header("x-content-type-options") == Some("nosniff"), "X-Content-Type-Options is not nosniff");
    want(r.header("x-frame-options") == Some("DENY"), "X-Frame-Options is not DENY");
    want(r.header("referrer-policy") == Some("no-referrer"), "Referrer-Policy is not no-referrer");
    // Static assets (the same bytes for everyone) may be cached; nothing else may be stored.
    let path = r.url.splitn(4, '/').nth(3).unwrap_or_default();
    if path.starts_with("static/") {
        want(r.header("cache-control") == Some("public, max-age=3600"), "a static asset without its public max-age");
    } else {
        want(r.header("cache-control") == Some("no-store"), "Cache-Control is not no-store");
    }
    if tls {
        want(r.header("strict-transport-security") == Some(HSTS), "no HSTS over TLS");
    } else {
        want(r.header("strict-transport-security").is_none(), "HSTS over plain HTTP");
    }
}

/// Loads `url` in the browser and checks the headers of every response from `origin` that
/// came with it (redirects and sub-resources too). Returns the status of `url`'s own response.
async fn visit(wd: &WebDriver, origin: &str, url: &str, load: Load, tls: bool, problems: &mut Vec<String>) -> Option<u16> {
    wd.network_responses().await;
    match load {
        Load::Navigate => wd.goto(url).await,
        Load::Fetch => {
            if !wd.current_url().await.starts_with(origin) {
                wd.goto(&format!("{origin}/healthz")).await;
                wd.network_responses().await;
            }
            let script = "return fetch(arguments[0], { credentials: 'same-origin' }).then(r => { if (r.body) { r.body.cancel(); } return r.status; });";
            wd.execute(script, vec![serde_json::json!(url)]).await;
        }
    }
    // The log is filled from DevTools events: poll briefly until the response is in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        seen.extend(wd.network_responses().await);
        if seen.iter().any(|r| r.url == url) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in seen.iter().filter(|r| r.url.starts_with(origin)) {
        check_headers(r, tls, problems);
    }
    seen.iter().rev().find(|r| r.url == url).map(|r| r.status)
}

/// Visits the `stage` pages of `pages` on `origin`, checking status and headers.
async fn visit_stage(wd: &WebDriver, origin: &str, pages: &[Page], stage: Stage, ids: &HashMap<&str, String>, problems: &mut Vec<String>) -> usize {
    let mut visited = 0;
    for p in pages.iter().filter(|p| p.stage == stage) {
        let mut path = p.url.to_string();
        for (name, value) in ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "no value for {path}");
        let url = format!("{origin}{path}");
        match visit(wd, origin, &url, p.load, false, problems).await {
            Some(status) if status == p.status => {}
            other => problems.push(format!("GET {url} ({:?}, {stage:?}): status {other:?}, expected {}", p.load, p.status)),
        }
        visited += 1;
    }
    visited
}

#[tokio::test]
async fn security_headers_on_every_page_in_chromium() {
    let tenant_src = include_str!("../../../anpi-web/src/pages/mod.rs");
    let operator_src = include_str!("../../../anpi-web/src/pages/operator.rs");
    let mut problems = unmapped(tenant_src, TENANT_PAGES);
    problems.extend(unmapped(operator_src, OPERATOR_PAGES));
    assert!(problems.is_empty(), "every GET route needs a concrete URL:\n{}", problems.join("\n"));
    assert!(TENANT_PAGES.len() > 30, "routes parsed: {}", TENANT_PAGES.len());

    let Some(wd) = WebDriver::start_recording_network(&[]).await else { return };
    let samples = shared_dir().map(|d| d.join("jma/samples")).filter(|d| d.is_dir()).expect("ANPI_SHARED_DIR with jma/samples (a telegram for /hazards/{id})");
    let env = env_with(Engine::Sqlite, |b| b.args(["--jma-push-secret", PUSH_SECRET, "--jma-max-age-min", "0"])).await;
    let origin = env.server.base_url().to_string();

    // Content for every page: people, an incident, a rule, a telegram, a second account.
    let mut admin = tenant(&env, "hdr").await;
    import_csv(&mut admin, people_csv(4, "H").as_bytes(), "auto").await;
    let incident = start_incident(&mut admin, "ヘッダー確認の配信", &[("all", "1")]).await;
    let person = extract(&admin.get("/people").await.text, "<a href=\"/people/", "\"").expect("a person");
    let form = admin.get("/rules/new").await.expect_status(200).text;
    let survey = crate::support::http::html_unescape(&extract(&form, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey"));
    let rule_fields = [
        ("name", "地震 5弱以上"),
        ("enabled", "1"),
        ("trigger", "earthquake|intensity:5-"),
        ("basis", "both"),
        ("survey", survey.as_str()),
        ("suppress_min", "60"),
    ];
    admin.post_form("/rules", &rule_fields).await.expect_status(303);
    let rule = extract(&admin.get("/rules").await.text, "<a href=\"/rules/", "\"").expect("a rule");
    let telegram = std::fs::read(samples.join(TELEGRAM)).expect("sample telegram");
    let pushed = reqwest::Client::new()
        .post(env.server.url("/api/jma/telegrams"))
        .header("authorization", format!("Bearer {PUSH_SECRET}"))
        .header("content-type", "application/xml")
        .body(telegram)
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), 201, "telegram pushed");
    let hazard = extract(&admin.get("/hazards").await.text, "<a href=\"/hazards/", "\"").expect("a hazard");
    admin.get("/accounts").await.expect_status(200);
    admin.post_form("/accounts", &[("name", "配信 花子"), ("email", "d@hdr.example"), ("role", "distributor")]).await.expect_status(303);
    let invite = wait_mail(&env.sink, "invite", |m| m.to.iter().any(|t| t == "d@hdr.example")).await;
    let reset = invite.links(&env.server.url("/password/reset/")).remove(0);
    let survey_mail = wait_mail(&env.sink, "survey", |m| m.subject.contains("ヘッダー確認の配信")).await;
    let answer = survey_mail.links(&env.server.url("/a/")).remove(0);
    let tail = |url: &str| url.rsplit('/').next().unwrap_or_default().to_string();
    let ids: HashMap<&str, String> =
        [("incident", incident.to_string()), ("person", person), ("rule", rule), ("hazard", hazard), ("reset", tail(&reset)), ("answer", tail(&answer))]
            .into_iter()
            .collect();

    // Public pages, then the console as the admin.
    let mut visited = visit_stage(&wd, &origin, TENANT_PAGES, Public, &ids, &mut problems).await;
    browser_sign_in(&wd, &env, "hdr", &admin_email("hdr"), PASSWORD).await;
    wd.wait_for("#new-incident", Duration::from_secs(10)).await;
    visited += visit_stage(&wd, &origin, TENANT_PAGES, Console, &ids, &mut problems).await;

    // The second step of signing in: the admin turns on TOTP and signs in again.
    let enrol = admin.get("/account/mfa").await.expect_status(200);
    let secret = extract(&enrol.text, "id=\"secret\">", "</code>").expect("TOTP secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
    let code = totp_code(&unbase32(&secret).expect("base32 secret"), now / 30_000);
    admin.post_form("/account/mfa", &[("secret", &secret), ("code", &code), ("password", PASSWORD)]).await.expect_status(200);
    wd.cmd(Method::DELETE, "/cookie", None).await;
    browser_sign_in(&wd, &env, "hdr", &admin_email("hdr"), PASSWORD).await;
    wd.wait_for_url("/login/mfa", Duration::from_secs(10)).await;
    visited += visit_stage(&wd, &origin, TENANT_PAGES, SecondStep, &ids, &mut problems).await;

    // The operator console on its own listener: its sign-in page, then signed in.
    let op_origin = env.server.operator_url("");
    visited += visit_stage(&wd, &op_origin, OPERATOR_PAGES, Public, &ids, &mut problems).await;
    wd.goto(&env.server.operator_url("/login")).await;
    wd.send_keys(&wd.wait_for("#email", Duration::from_secs(10)).await, OPERATOR).await;
    wd.send_keys(&wd.find("#password").await, PASSWORD).await;
    wd.click(&wd.find("form[action='/login'] button").await).await;
    wd.wait_for("form[action='/tenants']", Duration::from_secs(10)).await;
    visited += visit_stage(&wd, &op_origin, OPERATOR_PAGES, Operator, &ids, &mut problems).await;
    wd.quit().await;

    assert_eq!(visited, TENANT_PAGES.len() + OPERATOR_PAGES.len(), "every mapped page visited");
    assert!(problems.is_empty(), "{} problems with the security headers:\n{}", problems.len(), problems.join("\n"));
}

/// The base64 SHA-256 of a certificate's public key (SubjectPublicKeyInfo), as Chromium's
/// `--ignore-certificate-errors-spki-list` wants it: Chromium accepts that one test key only.
fn spki_sha256(pki: &Pki, cert: &str) -> String {
    let dir = pki.dir.path();
    openssl_ok(dir, &["x509", "-in", cert, "-pubkey", "-noout", "-out", "spki.pem"]);
    openssl_ok(dir, &["pkey", "-pubin", "-in", "spki.pem", "-outform", "DER", "-out", "spki.der"]);
    openssl_ok(dir, &["dgst", "-sha256", "-binary", "-out", "spki.sha256", "spki.der"]);
    let digest = std::fs::read(dir.join("spki.sha256")).expect("read the digest");
    assert_eq!(digest.len(), 32, "a SHA-256 digest");
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Over the built-in TLS listener Chromium receives HSTS with the other headers, on the
/// tenant and the operator listener.
#[tokio::test]
async fn hsts_over_the_tls_listener_in_chromium() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 3001, false);
    let spki = spki_sha256(&pki, "server.pem");
    let Some(wd) = WebDriver::start_recording_network(&[format!("--ignore-certificate-errors-spki-list={spki}")]).await else { return };
    let (server, _db) = tls_server(&pki, &cert, &key, &[]).await;
    let mut problems = Vec::new();
    for (origin, url) in [(server.url(""), server.url("/login")), (server.operator_url(""), server.operator_url("/login"))] {
        assert!(url.starts_with("https://"), "{url}");
        let status = visit(&wd, &origin, &url, Load::Navigate, true, &mut problems).await;
        assert_eq!(status, Some(200), "GET {url} in Chromium over TLS");
    }
    wd.quit().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
