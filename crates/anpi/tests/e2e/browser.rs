//! The loop as a person does it, in headless Chromium: an admin signs in, starts an incident,
//! an employee answers from the mailed link, and the open dashboard updates by itself.
//! Screenshots go to test-artifacts/screenshots/.

use super::common::*;
use crate::support::{fresh_database, Engine, Server, SmtpSink, WebDriver};
use std::time::Duration;

#[tokio::test]
async fn admin_and_employee_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let (url, _db) = fresh_database(Engine::Sqlite).await;
    let sink = SmtpSink::start().await;
    let server = Server::start(&url, &sink).await;
    crate::support::server::create_operator(&url, OPERATOR, PASSWORD);
    let env = Env { server, sink, _db };
    let mut admin = tenant(&env, "browser").await;
    import_csv(&mut admin, people_csv(6, "W").as_bytes(), "auto").await;

    wd.goto(&env.server.url("/login")).await;
    let tenant_field = wd.wait_for("#tenant", Duration::from_secs(10)).await;
    wd.send_keys(&tenant_field, "browser").await;
    wd.send_keys(&wd.find("#email").await, &admin_email("browser")).await;
    wd.send_keys(&wd.find("#password").await, PASSWORD).await;
    wd.screenshot("01-login").await;
    wd.click(&wd.find("#login").await).await;
    let new = wd.wait_for("#new-incident", Duration::from_secs(10)).await;
    wd.click(&new).await;
    wd.send_keys(&wd.wait_for("#title", Duration::from_secs(10)).await, "ブラウザ訓練 安否確認").await;
    wd.click(&wd.find("#all").await).await;
    wd.click(&wd.find("#drill").await).await;
    wd.screenshot("02-start-incident").await;
    wd.click(&wd.find("#start").await).await;
    let answered = wd.wait_for("#answered", Duration::from_secs(10)).await;
    assert_eq!(wd.text(&answered).await.trim(), "0 / 6");
    let dashboard = wd.current_url().await;
    wd.screenshot("03-dashboard-before").await;

    // The employee's phone: open the mailed link, tap 無事.
    let mails = wait_mails(&env.sink, 6, |m| m.subject.contains("ブラウザ訓練")).await;
    let link = mails[0].links(&env.server.url("/a/")).remove(0);
    wd.goto(&link).await;
    let safe = wd.wait_for("button.big", Duration::from_secs(10)).await;
    wd.screenshot("04-answer-page").await;
    wd.click(&safe).await;
    wd.wait_for(".ok", Duration::from_secs(10)).await;
    wd.screenshot("05-answered").await;

    // Back on the dashboard, which then updates live when another answer arrives.
    wd.goto(&dashboard).await;
    wd.wait_for("#answered", Duration::from_secs(10)).await;
    assert_eq!(answered_text(&wd).await, "1 / 6");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = mails[1].links(&env.server.url("/a/")).remove(0);
    let mut phone = crate::support::Client::new(env.server.base_url());
    phone.post_form_raw(&other, &[("q1", "c3")]).await.expect_status(303);
    let mut live = String::new();
    for _ in 0..100 {
        live = answered_text(&wd).await;
        if live.trim() == "2 / 6" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wd.screenshot("06-dashboard-live").await;
    assert_eq!(live.trim(), "2 / 6", "dashboard did not update without a reload");
    wd.quit().await;
}

/// Read by script: a live update may replace the element between a find and a read.
async fn answered_text(wd: &WebDriver) -> String {
    let v = wd.execute("var e = document.getElementById('answered'); return e ? e.textContent : '';", vec![]).await;
    v.as_str().unwrap_or_default().trim().to_string()
}
