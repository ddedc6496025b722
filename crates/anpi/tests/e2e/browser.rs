//! The loop as a person does it, in headless Chromium: an admin signs in, starts an incident,
//! an employee answers from the mailed link, and the open dashboard updates by itself.
//! Screenshots go to test-artifacts/screenshots/.

use super::common::*;
use crate::support::{Engine, WebDriver};
use std::time::Duration;

#[tokio::test]
async fn admin_and_employee_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let env = env(Engine::Sqlite).await;
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

/// Passkeys in Chromium with its virtual authenticator (WebDriver): an admin adds a passkey on
/// "My account" (password again first), gets recovery codes, signs out, signs in with the
/// password and then the passkey, and lands on the console. The JSON endpoints refuse a forged
/// assertion, a missing CSRF token and a half-way session's attempt to skip the second step.
/// The server's `--base-url` is `http://localhost:PORT`: browsers refuse WebAuthn on IP addresses.
#[tokio::test]
async fn passkey_registration_and_sign_in_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let env = env_with(Engine::Sqlite, |b| b.base_host("localhost")).await;
    let _admin = tenant(&env, "passkey").await;
    let email = admin_email("passkey");
    let authenticator = wd
        .add_virtual_authenticator(serde_json::json!({
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true
        }))
        .await;

    // Sign in (no second factor yet) and add a passkey on My account.
    browser_sign_in(&wd, &env, "passkey", &email, PASSWORD).await;
    wd.wait_for("#new-incident", Duration::from_secs(10)).await;
    wd.goto(&env.server.url("/account")).await;
    wd.wait_for("#passkey-add:not([hidden])", Duration::from_secs(10)).await;
    wd.send_keys(&wd.find("#passkey-name").await, "テスト端末").await;
    wd.send_keys(&wd.find("#passkey-password").await, PASSWORD).await;
    wd.screenshot("passkey-01-add").await;
    wd.click(&wd.find("#passkey-register").await).await;
    wd.wait_for("#passkey-codes:not([hidden])", Duration::from_secs(20)).await;
    assert_eq!(wd.find_all("#codes li").await.len(), 10, "recovery codes shown once");
    wd.screenshot("passkey-02-codes").await;
    assert_eq!(wd.authenticator_credentials(&authenticator).await.len(), 1);
    wd.click(&wd.find("#passkey-continue").await).await;
    let list = wd.wait_for("#passkey-list", Duration::from_secs(10)).await;
    assert!(wd.text(&list).await.contains("テスト端末"));
    assert!(wd.try_find("#mfa-on").await.is_some(), "two-step sign-in is on");

    // Sign out; the password now leads to the second step, where the passkey finishes it.
    let logout = wd.find("form[action='/logout'] button").await;
    wd.click(&logout).await;
    wd.wait_for("#tenant", Duration::from_secs(10)).await;
    browser_sign_in(&wd, &env, "passkey", &email, PASSWORD).await;
    wd.wait_for_url("/login/mfa", Duration::from_secs(10)).await;
    let use_it = wd.wait_for("#passkey-login:not([hidden]) #passkey-use", Duration::from_secs(10)).await;
    wd.screenshot("passkey-03-second-step").await;
    wd.click(&use_it).await;
    wd.wait_for("#new-incident", Duration::from_secs(20)).await;
    wd.screenshot("passkey-04-signed-in").await;
    let count = wd.authenticator_credentials(&authenticator).await[0]["signCount"].as_i64().unwrap_or(0);
    assert!(count >= 1, "the authenticator signed: {count}");
    wd.goto(&env.server.url("/account")).await;
    let list = wd.wait_for("#passkey-list", Duration::from_secs(10)).await;
    assert!(!wd.text(&list).await.contains('—'), "last use recorded");
    wd.quit().await;

    // Over HTTP: a half-way session cannot skip the second step, and the passkey endpoints
    // refuse a missing CSRF token and a forged assertion (which counts as a failure).
    let mut c = env.server.client();
    c.get("/login").await.expect_status(200);
    let r = c.post_form("/login", &[("tenant", "passkey"), ("email", &email), ("password", PASSWORD)]).await;
    assert_eq!(r.location().as_deref(), Some("/login/mfa"));
    assert_eq!(c.get("/").await.location().as_deref(), Some("/login/mfa"));
    let page = c.get("/login/mfa").await.expect_status(200);
    assert!(page.text.contains("id=\"passkey-use\""));
    let csrf = c.csrf().expect("csrf");
    let r = c.post_json("/login/passkey/options", &serde_json::json!({})).await;
    assert_eq!(r.status, 400, "no CSRF token: {}", r.text);
    let r = c.post_json("/login/passkey/options", &serde_json::json!({ "csrf": csrf })).await.expect_status(200);
    let options = r.json();
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    let challenge = options["publicKey"]["challenge"].as_str().unwrap().to_string();
    let id = options["publicKey"]["allowCredentials"][0]["id"].as_str().unwrap().to_string();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let client_data = serde_json::json!({ "type": "webauthn.get", "challenge": challenge, "origin": env.server.base_url() }).to_string();
    // authenticatorData: an RP ID hash, flags UP|UV, counter 99; the signature is junk DER.
    let mut auth_data = vec![0u8; 32];
    auth_data.extend_from_slice(&[0x05, 0, 0, 0, 99]);
    let forged = serde_json::json!({ "csrf": csrf, "credential": { "id": id, "rawId": id, "type": "public-key", "response": {
        "clientDataJSON": b64(client_data.as_bytes()), "authenticatorData": b64(&auth_data), "signature": b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]) } } });
    let r = c.post_json("/login/passkey", &forged).await;
    assert_eq!(r.status, 401, "forged assertion: {}", r.text);
    assert!(r.json()["error"].is_string());
    // The challenge was spent: the same request again is refused too, and nothing leaked.
    let r = c.post_json("/login/passkey", &forged).await;
    assert_eq!(r.status, 401);
    assert!(!r.text.contains("signature") && !r.text.contains("challenge"), "generic errors: {}", r.text);
    assert_eq!(c.get("/").await.location().as_deref(), Some("/login/mfa"), "still half-way");
    let r = c.post_json("/account/passkeys/options", &serde_json::json!({ "csrf": csrf, "password": PASSWORD })).await;
    assert_eq!(r.status, 403, "no passkey enrolment while the second factor is pending");
}

/// When the tenant requires MFA, the enrolment step right after the password offers a passkey:
/// enrolling one (no second password prompt) completes the sign-in, and the last passkey
/// cannot then be removed.
#[tokio::test]
async fn passkey_enrolment_when_required_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let env = env_with(Engine::Sqlite, |b| b.base_host("localhost")).await;
    let mut admin = tenant(&env, "pkenrol").await;
    admin.get("/security").await.expect_status(200);
    admin
        .post_form("/security", &[("mfa_required", "admins"), ("lockout_threshold", "10"), ("idle_min", "30"), ("absolute_min", "720")])
        .await
        .expect_status(303);
    wd.add_virtual_authenticator(serde_json::json!({
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true
    }))
    .await;

    browser_sign_in(&wd, &env, "pkenrol", &admin_email("pkenrol"), PASSWORD).await;
    wd.wait_for_url("/account/mfa", Duration::from_secs(10)).await;
    wd.wait_for("#passkey-add:not([hidden])", Duration::from_secs(10)).await;
    assert!(wd.try_find("#passkey-password").await.is_none(), "the password was just given");
    wd.screenshot("passkey-05-enrol").await;
    wd.click(&wd.find("#passkey-register").await).await;
    wd.wait_for("#passkey-codes:not([hidden])", Duration::from_secs(20)).await;
    assert_eq!(wd.find_all("#codes li").await.len(), 10);
    wd.click(&wd.find("#passkey-continue").await).await;
    wd.wait_for("#new-incident", Duration::from_secs(10)).await;
    wd.quit().await;

    // The only second factor stays while the policy requires one.
    let page = admin.get("/account").await.expect_status(200);
    let action = crate::support::extract(&page.text, "action=\"/account/passkeys/", "\"").expect("remove form");
    let r = admin.post_form(&format!("/account/passkeys/{action}"), &[("password", PASSWORD)]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(admin.get("/account").await.text.contains("id=\"passkey-list\""));
}
