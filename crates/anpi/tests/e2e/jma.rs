//! JMA telegrams in, targeted mail out: a loopback HTTP server serves an Atom feed and JMA's
//! sample telegrams; the server polls it, applies a tenant's rules and mails the people in the
//! affected areas. Also the push endpoint, drills, repeats, cancellations and `jma replay`.

use super::common::*;
use crate::support::server::ANPI_BIN;
use crate::support::{engines, shared_dir, Client, SmtpSink};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "relay-secret-0123456789";
/// Suruga Bay 2009-08-11: 静岡県 6-, 東京都 4, 愛知県 4 (prefecture detail only).
const SURUGA_1: &str = "32-35_07_01_100915_VXSE51.xml";
/// The same event's next telegram: still 6- in 静岡県 (a repeat, suppressed).
const SURUGA_2: &str = "32-35_07_02_100915_VXSE51.xml";
/// Iwate-Miyagi 2008-06-14 (VXSE53 with municipalities), and its cancellation.
const IWATE: &str = "32-35_06_03_240613_VXSE53.xml";
const IWATE_CANCEL: &str = "32-35_06_06_100915_VXSE53.xml";
/// Tohoku 2011-03-11 震度速報.
const TOHOKU: &str = "32-39_11_01_120615_VXSE51.xml";

/// The loopback JMA: an Atom feed listing `entries`, with an ETag, and the telegram files.
#[derive(Clone)]
struct FakeJma {
    samples: PathBuf,
    entries: Arc<Mutex<Vec<String>>>,
    base: Arc<Mutex<String>>,
    not_modified: Arc<Mutex<usize>>,
}

async fn feed(State(j): State<FakeJma>, headers: HeaderMap) -> Response {
    let entries = j.entries.lock().unwrap().clone();
    let etag = format!("\"v{}\"", entries.len());
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        *j.not_modified.lock().unwrap() += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let base = j.base.lock().unwrap().clone();
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" lang="ja"><title>高頻度（地震火山）</title><id>urn:test</id><updated>2024-01-01T00:00:00Z</updated>"#,
    );
    for name in entries.iter().rev() {
        xml.push_str(&format!(
            r#"<entry><title>震度速報</title><id>{base}/data/{name}</id><updated>2024-01-01T00:00:00Z</updated><author><name>気象庁</name></author><link type="application/xml" href="{base}/data/{name}"/><content type="text">test</content></entry>"#
        ));
    }
    xml.push_str("</feed>");
    ([(header::CONTENT_TYPE, "application/atom+xml"), (header::ETAG, etag.as_str())], xml).into_response()
}

async fn telegram(State(j): State<FakeJma>, Path(name): Path<String>) -> Response {
    match std::fs::read(j.samples.join(&name)) {
        Ok(b) if !name.contains('/') => ([(header::CONTENT_TYPE, "application/xml")], b).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

impl FakeJma {
    async fn start(samples: PathBuf) -> FakeJma {
        let j = FakeJma { samples, entries: Default::default(), base: Default::default(), not_modified: Default::default() };
        let app = axum::Router::new().route("/feed.xml", axum::routing::get(feed)).route("/data/{name}", axum::routing::get(telegram)).with_state(j.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *j.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        j
    }
    fn publish(&self, name: &str) {
        self.entries.lock().unwrap().push(name.to_string());
    }
    fn feed_url(&self) -> String {
        format!("{}/feed.xml", self.base.lock().unwrap())
    }
}

fn samples() -> Option<PathBuf> {
    let dir = shared_dir().map(|d| d.join("jma/samples")).filter(|d| d.is_dir());
    if dir.is_none() {
        assert!(!crate::support::in_ci(), "../shared/jma/samples is missing in CI");
        eprintln!("SKIPPED: ../shared/jma/samples not found; the JMA end-to-end test needs the official samples");
    }
    dir
}

async fn push(c: &Client, body: Vec<u8>, secret: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(c.url("/api/jma/telegrams"))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .expect("push");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Creates a rule through the console form.
async fn add_rule(c: &mut Client, name: &str, trigger: &str, areas: &str, basis: &str) {
    let page = c.get("/rules/new").await.expect_status(200);
    let survey = crate::support::extract(&page.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey");
    let survey = crate::support::http::html_unescape(&survey);
    let r = c
        .post_form(
            "/rules",
            &[
                ("name", name),
                ("enabled", "1"),
                ("trigger", trigger),
                ("areas", areas),
                ("basis", basis),
                ("survey", &survey),
                ("message", "安否を回答してください"),
                ("hold_secs", "0"),
                ("suppress_min", "60"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "rule not saved: {}", r.text);
}

fn mails_to(sink: &SmtpSink, addr: &str) -> usize {
    sink.messages().iter().filter(|m| m.to.iter().any(|t| t == addr)).count()
}

#[tokio::test]
async fn jma_feed_rules_and_dispatch() {
    let Some(samples) = samples() else { return };
    for engine in engines() {
        eprintln!("== engine {engine}");
        let jma = FakeJma::start(samples.clone()).await;
        let feed = jma.feed_url();
        let env = env_with(engine, |b| b.args(["--jma-feed", &feed, "--jma-poll-secs", "1", "--jma-push-secret", SECRET, "--jma-max-age-min", "0"])).await;
        let url = env.server.database_url().to_string();
        let mut admin = tenant(&env, "jma").await;

        // Directory: 静岡 (home), 東京 (home and site), someone living in 東京 but working in 大阪,
        // 岩手 and 宮城.
        for (name, area) in [("東京本社", "13101"), ("大阪支社", "27128")] {
            admin.post_form("/org/sites", &[("name", name), ("area_code", area)]).await.expect_status(303);
        }
        let csv = "社員番号,氏名,メールアドレス,事業所,自宅地域コード\n\
                   S1,静岡 一,s1@jma.example,,22203\nS2,静岡 二,s2@jma.example,,22100\nS3,静岡 三,s3@jma.example,,22\n\
                   T1,東京 一,t1@jma.example,東京本社,13104\nT2,東京 二,t2@jma.example,大阪支社,13104\n\
                   I1,岩手 一,i1@jma.example,,03215\nM1,宮城 一,m1@jma.example,,04101\n";
        import_csv(&mut admin, csv.as_bytes(), "auto").await;
        add_rule(&mut admin, "震度5弱以上", "earthquake|intensity:5-", "", "both").await;
        add_rule(&mut admin, "東京の職場 震度4以上", "earthquake|intensity:4", "13", "work").await;
        let rules = admin.get("/rules").await.expect_status(200);
        assert!(rules.text.contains("震度5弱以上") && rules.text.contains("勤務地"), "{}", rules.text);

        // The feed publishes the Suruga Bay quake: 静岡 people (rule 1) and the person working in
        // Tokyo (rule 2) are mailed; the one living in Tokyo but working in Osaka is not.
        jma.publish(SURUGA_1);
        for who in ["s1", "s2", "s3", "t1"] {
            wait_mail(&env.sink, who, |m| m.to.iter().any(|t| t == &format!("{who}@jma.example"))).await;
        }
        let hazards = admin.get("/hazards").await.expect_status(200);
        assert!(hazards.text.contains("震度速報") && hazards.text.contains("震度6弱"), "{}", hazards.text);
        assert!(hazards.text.contains(&jma.feed_url()), "feed status shown");
        let id: i64 = crate::support::extract(&hazards.text, "<a href=\"/hazards/", "\"").and_then(|s| s.parse().ok()).expect("hazard link");
        let detail = admin.get(&format!("/hazards/{id}")).await.expect_status(200);
        assert!(detail.text.contains("静岡県") && detail.text.contains("基準に該当"), "{}", detail.text);
        assert!(detail.text.contains("最大 震度4 (基準 震度5弱以上)") || detail.text.contains("東京の職場"), "{}", detail.text);

        // The next telegram of the same event is no stronger: suppressed, nobody mailed again.
        // The poller sends its validators, so an unchanged feed is answered 304.
        jma.publish(SURUGA_2);
        let mut suppressed = false;
        for _ in 0..100 {
            if admin.get("/hazards").await.text.contains("抑止") {
                suppressed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(suppressed, "the repeat was not suppressed");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(*jma.not_modified.lock().unwrap() > 0, "the poller did not use If-None-Match");
        assert_eq!(mails_to(&env.sink, "s1@jma.example"), 1, "a repeat must not mail again");
        assert_eq!(mails_to(&env.sink, "t2@jma.example"), 0, "home in Tokyo, work in Osaka: rule 2 counts work only");

        // Push: the secret is required; a drill version of the Iwate quake sends nothing.
        let iwate = std::fs::read(samples.join(IWATE)).unwrap();
        assert_eq!(push(&admin, iwate.clone(), "wrong-secret-wrong-secret").await.0, 401);
        let drill = String::from_utf8(iwate.clone()).unwrap().replace("<Status>通常</Status>", "<Status>訓練</Status>");
        let (s, v) = push(&admin, drill.into_bytes(), SECRET).await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = push(&admin, b"<Report><broken".to_vec(), SECRET).await;
        assert_eq!(s, 422, "malformed telegrams are rejected: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "with a reason: {v}");
        // The live telegram mails the Iwate and Miyagi people; the same telegram again changes nothing.
        let (s, v) = push(&admin, iwate.clone(), SECRET).await;
        assert_eq!(s, 201, "{v}");
        wait_mail(&env.sink, "i1", |m| m.to.iter().any(|t| t == "i1@jma.example")).await;
        wait_mail(&env.sink, "m1", |m| m.to.iter().any(|t| t == "m1@jma.example")).await;
        let (s, v) = push(&admin, iwate, SECRET).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("duplicate")), "{v}");
        let page = admin.get("/hazards").await.expect_status(200);
        assert!(page.text.contains("訓練") && page.text.contains("訓練・試験（配信なし）"), "drill decision shown");
        assert!(page.text.contains("不正な電文"), "rejected telegram listed");

        // Its cancellation tells the tenant's administrators.
        let cancel = std::fs::read(samples.join(IWATE_CANCEL)).unwrap();
        assert_eq!(push(&admin, cancel, SECRET).await.0, 201);
        let notice = wait_mail(&env.sink, "cancellation notice", |m| m.subject.contains("取消")).await;
        assert!(notice.to.iter().any(|t| t == &admin_email("jma")), "{:?}", notice.to);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(mails_to(&env.sink, "i1@jma.example"), 1);

        // `anpi jma replay --drill` feeds a file through the same path: a drill incident.
        let out = std::process::Command::new(ANPI_BIN)
            .env("ANPI_MASTER_KEY", crate::support::server::TEST_MASTER_KEY)
            .args(["--database-url", &url, "jma", "replay", "--drill"])
            .arg(samples.join(TOHOKU))
            .output()
            .expect("run anpi jma replay");
        assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("rule decision"), "{}", String::from_utf8_lossy(&out.stdout));
        let m = wait_mail(&env.sink, "drill replay", |m| m.to.iter().any(|t| t == "m1@jma.example") && m.subject.contains("訓練")).await;
        assert!(m.body.contains("/a/"), "answer link in the drill mail");
        let out = std::process::Command::new(ANPI_BIN)
            .env("ANPI_MASTER_KEY", crate::support::server::TEST_MASTER_KEY)
            .args(["--database-url", &url, "jma", "replay", "/nonexistent.xml"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
}
