//! Shared set-up for the application tests: a server on a fresh database with a real SMTP
//! sink, and tenants created the way a customer gets one (operator console + invite mail).

use crate::support::server::create_operator;
use crate::support::{extract, fresh_database, Client, DbGuard, Engine, Mail, Server, ServerBuilder, SmtpSink, WebDriver};
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery staple";
pub const OPERATOR: &str = "ops@example.test";

pub struct Env {
    pub server: Server,
    pub sink: SmtpSink,
    pub _db: DbGuard,
}

pub async fn env(engine: Engine) -> Env {
    env_with(engine, |b| b).await
}

/// [`env`] with extra server settings (flags, base host).
pub async fn env_with(engine: Engine, configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Env {
    let (url, db) = fresh_database(engine).await;
    let sink = SmtpSink::start().await;
    let server = configure(Server::builder(&url).smtp(&sink)).start().await;
    create_operator(&url, OPERATOR, PASSWORD);
    Env { server, sink, _db: db }
}

/// The password step of signing in, in the browser.
pub async fn browser_sign_in(wd: &WebDriver, env: &Env, tenant: &str, email: &str, password: &str) {
    wd.goto(&env.server.url("/login")).await;
    wd.send_keys(&wd.wait_for("#tenant", Duration::from_secs(10)).await, tenant).await;
    wd.send_keys(&wd.find("#email").await, email).await;
    wd.send_keys(&wd.find("#password").await, password).await;
    wd.click(&wd.find("#login").await).await;
}

/// Waits for the first message matching `pred`.
pub async fn wait_mail(sink: &SmtpSink, what: &str, pred: impl Fn(&Mail) -> bool) -> Mail {
    for _ in 0..300 {
        if let Some(m) = sink.messages().into_iter().find(|m| pred(m)) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail {what} within 30 s; got {} messages", sink.messages().len());
}

/// Waits until `pred` holds for `n` messages; returns those.
pub async fn wait_mails(sink: &SmtpSink, n: usize, pred: impl Fn(&Mail) -> bool) -> Vec<Mail> {
    let mut last = 0;
    for _ in 0..1200 {
        let got: Vec<Mail> = sink.messages().into_iter().filter(|m| pred(m)).collect();
        if got.len() >= n {
            return got;
        }
        last = got.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} matching mails within 120 s, got {last}");
}

pub fn admin_email(code: &str) -> String {
    format!("admin@{code}.example")
}

/// Creates tenant `code` through the operator console; the first admin sets a password from
/// the invite mail and signs in. Returns the admin's client.
pub async fn tenant(env: &Env, code: &str) -> Client {
    let mut op = env.server.operator_client();
    op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.expect_status(303);
    op.get("/").await.expect_status(200);
    let admin = admin_email(code);
    let r = op
        .post_form("/tenants", &[("code", code), ("name", &format!("{code} 株式会社")), ("admin_name", "管理 一郎"), ("admin_email", &admin)])
        .await
        .expect_status(200);
    assert!(r.text.contains(code));
    let invite = wait_mail(&env.sink, "invite", |m| m.to.contains(&admin)).await;
    let link = invite.links(&env.server.url("/password/reset/")).into_iter().next().expect("invite link");
    let mut c = env.server.client();
    c.get(&link).await.expect_status(200);
    c.post_form(&link, &[("new", "short")]).await.expect_status(400);
    c.post_form(&link, &[("new", PASSWORD)]).await.expect_status(303);
    // The link is single-use.
    c.get(&link).await.expect_status(404);
    login(&mut c, code, &admin, PASSWORD).await;
    c
}

pub async fn login(c: &mut Client, code: &str, email: &str, password: &str) {
    c.get("/login").await.expect_status(200);
    let r = c.post_form("/login", &[("tenant", code), ("email", email), ("password", password)]).await;
    assert_eq!(r.status, 303, "login as {email} failed: {}", r.text);
    c.get("/").await.expect_status(200);
}

/// Posts a CSV file to the import page as a browser does (multipart); returns the response.
pub async fn upload_csv(c: &mut Client, bytes: &[u8], encoding: &str) -> crate::support::Resp {
    c.get("/people/import").await.expect_status(200);
    let csrf = c.csrf().expect("csrf on import page");
    let boundary = "----anpitestboundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf.as_bytes()), ("encoding", encoding.as_bytes())] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"people.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let rb = c.request(reqwest::Method::POST, "/people/import").header("content-type", format!("multipart/form-data; boundary={boundary}")).body(body);
    c.send(rb).await
}

/// Uploads and confirms a CSV; panics unless every row is valid.
pub async fn import_csv(c: &mut Client, bytes: &[u8], encoding: &str) {
    let r = upload_csv(c, bytes, encoding).await;
    assert_eq!(r.status, 200, "preview failed: {}", r.text);
    let id = extract(&r.text, "action=\"/people/import/", "\"").expect("confirm form");
    c.post_form(&format!("/people/import/{id}"), &[]).await.expect_status(303);
}

/// Generates a CSV of `n` people in departments 本社/総務部 and 大阪支社/営業課.
pub fn people_csv(n: usize, prefix: &str) -> String {
    let mut s = String::from("社員番号,氏名,フリガナ,メールアドレス,部署,自宅地域コード\n");
    for i in 0..n {
        let dept = if i % 2 == 0 { "本社/総務部" } else { "大阪支社/営業課" };
        s.push_str(&format!("{prefix}{i:05},社員 {i},シャイン,{prefix}{i}@staff.example,{dept},13101\n"));
    }
    s
}

/// Starts an incident from the console form; returns its id.
pub async fn start_incident(c: &mut Client, title: &str, extra: &[(&str, &str)]) -> i64 {
    let page = c.get("/incidents/new").await.expect_status(200);
    let survey = extract(&page.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey text");
    let survey = crate::support::http::html_unescape(&survey);
    let mut fields =
        vec![("title", title), ("message", "安否を回答してください。"), ("survey", survey.as_str()), ("reminder_interval", "0"), ("reminder_count", "0")];
    fields.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    fields.extend_from_slice(extra);
    let r = c.post_form("/incidents", &fields).await;
    assert_eq!(r.status, 303, "start failed: {}", r.text);
    let loc = r.location().expect("location");
    loc.trim_start_matches("/incidents/").split('?').next().and_then(|s| s.parse().ok()).expect("incident id")
}

/// The option value of `label` in a `<select>`.
pub fn option_value(html: &str, label: &str) -> String {
    let end = html.find(&format!(">{label}</option>")).unwrap_or_else(|| panic!("no option {label}"));
    let start = html[..end].rfind("value=\"").expect("value") + 7;
    html[start..end].trim_end_matches('"').to_string()
}

/// The routes of a router's source (`.route("PATH", get(…).post(…))` lines) with their
/// methods, so that tests can cover every route, including ones added later.
pub fn routes_in(src: &str) -> Vec<(String, Vec<&'static str>)> {
    src.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix(".route(\"")?;
            let (path, handlers) = rest.split_once('"')?;
            let mut methods = Vec::new();
            if handlers.contains("get(") {
                methods.push("GET");
            }
            if handlers.contains("post(") {
                methods.push("POST");
            }
            Some((path.to_string(), methods))
        })
        .collect()
}
