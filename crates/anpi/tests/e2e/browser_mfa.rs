//! Two-step sign-in and lockout as a person meets them, in headless Chromium: enrol TOTP from
//! the QR page, sign in with a code, and see a locked account get the ordinary error message.

use super::common::*;
use crate::support::{extract, Engine, WebDriver};
use anpi_store::mfa::{totp_code, unbase32};
use std::time::Duration;

fn code(secret: &str, offset_steps: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    totp_code(&unbase32(secret).unwrap(), now / 30_000 + offset_steps)
}

async fn sign_in(wd: &WebDriver, env: &Env, email: &str, password: &str) {
    browser_sign_in(wd, env, "mfa", email, password).await;
}

#[tokio::test]
async fn totp_enrolment_login_and_lockout_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let env = env(Engine::Sqlite).await;
    let mut admin = tenant(&env, "mfa").await;
    let email = admin_email("mfa");

    // Enrol from the QR page.
    sign_in(&wd, &env, &email, PASSWORD).await;
    wd.wait_for("#new-incident", Duration::from_secs(10)).await;
    wd.goto(&env.server.url("/account")).await;
    wd.click(&wd.wait_for("#mfa-setup", Duration::from_secs(10)).await).await;
    let secret = wd.text(&wd.wait_for("#secret", Duration::from_secs(10)).await).await;
    wd.screenshot("mfa-01-enrol").await;
    wd.send_keys(&wd.find("#code").await, &code(&secret, 0)).await;
    wd.send_keys(&wd.find("#password").await, PASSWORD).await;
    wd.click(&wd.find("#enable").await).await;
    let codes = wd.wait_for("#codes", Duration::from_secs(10)).await;
    assert_eq!(wd.text(&codes).await.lines().filter(|l| !l.trim().is_empty()).count(), 10, "ten recovery codes");
    wd.screenshot("mfa-02-recovery-codes").await;

    // Sign out, sign in again: password, then the code.
    wd.goto(&env.server.url("/account")).await;
    wd.click(&wd.wait_for("form[action=\"/logout\"] button", Duration::from_secs(10)).await).await;
    sign_in(&wd, &env, &email, PASSWORD).await;
    let field = wd.wait_for("#code", Duration::from_secs(10)).await;
    wd.screenshot("mfa-03-code-step").await;
    wd.send_keys(&field, &code(&secret, 1)).await;
    wd.click(&wd.find("#verify").await).await;
    wd.wait_for("#new-incident", Duration::from_secs(10)).await;

    // Lockout: three failures lock a member; the right password then gets the usual message.
    admin.get("/security").await.expect_status(200);
    admin.post_form("/security", &[("mfa_required", "none"), ("lockout_threshold", "3"), ("idle_min", "30"), ("absolute_min", "720")]).await.expect_status(303);
    admin.get("/accounts").await.expect_status(200);
    admin.post_form("/accounts", &[("name", "一般 次郎"), ("email", "member@mfa.example"), ("role", "member")]).await.expect_status(303);
    let invite = wait_mail(&env.sink, "invite", |m| m.to.iter().any(|t| t == "member@mfa.example")).await;
    let link = invite.links(&env.server.url("/password/reset/")).remove(0);
    let mut member = env.server.client();
    member.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
    wd.goto(&env.server.url("/account")).await;
    wd.click(&wd.wait_for("form[action=\"/logout\"] button", Duration::from_secs(10)).await).await;
    for _ in 0..3 {
        sign_in(&wd, &env, "member@mfa.example", "not the right password").await;
        wd.wait_for("p.error", Duration::from_secs(10)).await;
    }
    sign_in(&wd, &env, "member@mfa.example", PASSWORD).await;
    let error = wd.text(&wd.wait_for("p.error", Duration::from_secs(10)).await).await;
    wd.screenshot("mfa-04-locked").await;
    assert!(error.contains("正しくありません"), "the ordinary message, not 'locked': {error}");
    let accounts = admin.get("/accounts").await.expect_status(200);
    assert!(extract(&accounts.text, "member@mfa.example", "</tr>").is_some_and(|row| row.contains("ロック中")), "the admin sees the lock");
    wd.quit().await;
}
