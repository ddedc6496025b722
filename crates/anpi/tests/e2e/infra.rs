//! Tests of the test infrastructure itself (no application involved): the SMTP sink receives
//! and decodes real mail, each engine yields a usable fresh database, and headless Chromium
//! renders Japanese text.

use std::time::Duration;

use base64::Engine as _;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{engines, fresh_database, Engine, SmtpSink, WebDriver};

/// Reads one (possibly multi-line) SMTP reply and checks its code.
async fn expect_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, code: &str, after: &str) {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("SMTP: no reply after {after}"))
            .expect("SMTP read");
        assert!(n > 0, "SMTP: connection closed after {after}");
        assert!(line.starts_with(code), "SMTP: expected {code} after {after}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

#[tokio::test]
async fn smtp_sink_receives_and_decodes_mail() {
    let sink = SmtpSink::start().await;
    assert!(sink.messages().is_empty());

    let body = "山田 太郎 様\r\n\r\n地震がありました。安否を回答してください:\r\n\
                http://127.0.0.1:9/r/tok_ABC-123\r\n\r\n※このメールは送信専用です。\r\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let b64_lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).expect("base64 is ascii")).collect();
    let subject = format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode("【安否確認】震度6弱"));
    let data = format!(
        "From: anpi@example.test\r\nTo: taro@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <infra-1@example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n.\r\n",
        b64_lines.join("\r\n")
    );

    let stream = TcpStream::connect(("127.0.0.1", sink.port())).await.expect("connect to SMTP sink");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    expect_reply(&mut r, "220", "connect").await;
    for (cmd, code) in [("HELO infra.test", "250"), ("MAIL FROM:<anpi@example.test>", "250"), ("RCPT TO:<taro@example.test>", "250"), ("DATA", "354")] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).await.expect("SMTP write");
        expect_reply(&mut r, code, cmd).await;
    }
    w.write_all(data.as_bytes()).await.expect("SMTP write data");
    expect_reply(&mut r, "250", "DATA body").await;
    w.write_all(b"QUIT\r\n").await.expect("SMTP write");
    expect_reply(&mut r, "221", "QUIT").await;

    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "exactly one message expected");
    let m = &mails[0];
    assert_eq!(m.to, vec!["taro@example.test".to_string()]);
    assert_eq!(m.from, "anpi@example.test");
    assert_eq!(m.subject, "【安否確認】震度6弱");
    assert_eq!(m.message_id, "<infra-1@example.test>");
    assert_eq!(m.body, body);
    assert_eq!(m.links("http://127.0.0.1:9/r/"), vec!["http://127.0.0.1:9/r/tok_ABC-123".to_string()]);
    assert!(m.raw.contains("X-RcptTo: taro@example.test"), "raw message kept: {}", m.raw);

    sink.clear();
    assert!(sink.messages().is_empty(), "clear() removes messages");
}

#[tokio::test]
async fn smtp_sink_wait_for_times_out_loudly() {
    let sink = SmtpSink::start().await;
    let waited = tokio::spawn(async move { sink.wait_for(1, Duration::from_millis(300)).await.len() }).await;
    let err = waited.expect_err("wait_for must panic when no mail arrives");
    assert!(err.is_panic());
}

#[tokio::test]
async fn fresh_database_works_on_every_engine() {
    let engines = engines();
    assert!(engines.contains(&Engine::Sqlite));
    for engine in engines {
        let (url, guard) = fresh_database(engine).await;
        assert_eq!(guard.url(), url);
        let one: i64 = match engine {
            Engine::Sqlite => {
                assert!(url.starts_with("sqlite://") && url.ends_with("/anpi.sqlite?mode=rwc"), "{url}");
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
                let v: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await.expect("SELECT 1");
                c.close().await.expect("close");
                v
            }
            Engine::Postgres => {
                assert!(url.starts_with("postgres://") && url.contains("/anpi_test_"), "{url}");
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
                let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await.expect("SELECT 1");
                let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut c).await.expect("db");
                assert!(url.ends_with(&format!("/{db}")), "connected to {db}, url {url}");
                let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                    .fetch_one(&mut c)
                    .await
                    .expect("count tables");
                assert_eq!(tables, 0, "a fresh database is empty");
                // The server connects as the database's owner, a plain role, so PostgreSQL
                // row-level security applies (superusers and BYPASSRLS roles skip it).
                let (superuser, bypass, owner): (bool, bool, bool) = sqlx::query_as(
                    "SELECT r.rolsuper, r.rolbypassrls, d.datdba = r.oid FROM pg_roles r \
                     JOIN pg_database d ON d.datname = current_database() WHERE r.rolname = current_user",
                )
                .fetch_one(&mut c)
                .await
                .expect("role");
                assert!(!superuser && !bypass && owner, "superuser {superuser}, bypassrls {bypass}, owner {owner}");
                c.close().await.expect("close");
                v as i64
            }
        };
        assert_eq!(one, 1, "{engine}");
    }
}

#[tokio::test]
async fn two_fresh_databases_are_distinct() {
    for engine in engines() {
        let (a, _ga) = fresh_database(engine).await;
        let (b, _gb) = fresh_database(engine).await;
        assert_ne!(a, b, "{engine}");
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Whether fontconfig knows a Japanese font (`fc-list :lang=ja`), or, without fc-list, whether
/// the IPA Gothic font file is installed.
fn japanese_font_installed() -> bool {
    match std::process::Command::new("fc-list").args([":lang=ja", "family"]).output() {
        Ok(out) => out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        Err(_) => std::path::Path::new("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf").exists(),
    }
}

#[tokio::test]
async fn webdriver_renders_japanese() {
    let Some(wd) = WebDriver::start().await else {
        return;
    };
    let html = "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>安否確認</title></head>\
                <body style=\"font-size:32px\"><h1 id=\"greeting\">こんにちは、世界</h1>\
                <p id=\"q\">無事ですか？</p><input id=\"name\" type=\"text\">\
                <button id=\"go\" onclick=\"document.getElementById('out').textContent='回答:'+document.getElementById('name').value\">送信</button>\
                <p id=\"out\"></p></body></html>";
    wd.goto(&format!("data:text/html;charset=utf-8,{}", percent_encode(html))).await;
    assert_eq!(wd.title().await, "安否確認");
    let h1 = wd.wait_for("#greeting", Duration::from_secs(10)).await;
    assert_eq!(wd.text(&h1).await, "こんにちは、世界");
    let input = wd.find("#name").await;
    wd.send_keys(&input, "山田").await;
    wd.click(&wd.find("#go").await).await;
    assert_eq!(wd.text(&wd.find("#out").await).await, "回答:山田");
    assert!(wd.page_source().await.contains("無事ですか？"));
    assert!(wd.current_url().await.starts_with("data:text/html"));
    assert!(wd.try_find("#does-not-exist").await.is_none());
    // Japanese glyphs need a Japanese font (fonts-ipafont-gothic) or they render as boxes.
    assert!(japanese_font_installed(), "no Japanese font found: install fonts-ipafont-gothic (scripts/test.sh does)");
    let width = wd.execute("return arguments[0].getBoundingClientRect().width;", vec![WebDriver::element_arg(&h1)]).await.as_f64().expect("width");
    assert!(width > 100.0, "heading width {width}");
    let shot = wd.screenshot("infra-webdriver-japanese").await;
    let len = std::fs::metadata(&shot).expect("screenshot written").len();
    assert!(len > 1000, "screenshot {} is only {len} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());
    wd.quit().await;
}
