//! Per-tenant IP allowlists over HTTP, on each engine: validation, the self-lockout guard, the
//! console list (everyone), the admin list (admins only), the answer list, proxy headers
//! believed only from `--trusted-proxy`, and the denial page in headless Chromium.
//!
//! The server trusts 127.0.0.1 as a proxy, so the test presents other client addresses with
//! `X-Forwarded-For`; a plain request is from 127.0.0.1 itself.

use super::common::*;
use crate::support::{engines, Client, Engine, Resp, Server, WebDriver};
use reqwest::Method;
use std::time::Duration;

const DENIED: &str = "この接続元からのアクセスは、組織のポリシーにより許可されていません";
const INSIDE: &str = "198.51.100.7";
const OUTSIDE: &str = "203.0.113.9";

/// A server that believes `X-Forwarded-For` from loopback.
async fn proxied_env(engine: Engine) -> Env {
    env_with(engine, |b| b.args(["--trusted-proxy", "127.0.0.1/32"])).await
}

/// GET as a client at `ip` behind the loopback proxy.
async fn get_from(c: &mut Client, path: &str, ip: &str) -> Resp {
    let rb = c.request(Method::GET, path).header("X-Forwarded-For", ip);
    c.send(rb).await
}

/// POSTs a form (with the last CSRF token, if any) as a client at `ip`.
async fn post_from(c: &mut Client, path: &str, ip: &str, fields: &[(&str, &str)]) -> Resp {
    let mut all: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(csrf) = c.csrf() {
        all.push(("csrf".into(), csrf));
    }
    let rb = c.request(Method::POST, path).header("X-Forwarded-For", ip).form(&all);
    c.send(rb).await
}

/// Saves the three lists from the settings page, as a client at `ip`.
async fn set_lists(c: &mut Client, ip: &str, console: &str, admin: &str, answer: &str) -> Resp {
    get_from(c, "/security/network", ip).await.expect_status(200);
    post_from(c, "/security/network", ip, &[("console", console), ("admin", admin), ("answer", answer)]).await
}

#[track_caller]
fn assert_denied(r: &Resp) {
    assert_eq!(r.status, 403, "{}: expected the allowlist denial, got {}: {}", r.url, r.status, r.text);
    assert!(r.text.contains(DENIED), "denial text on {}: {}", r.url, r.text);
    assert!(!r.text.contains("198.51.100") && !r.text.contains("192.0.2"), "the lists are not shown");
}

/// Invites a distributor and signs them in (before any list is set).
async fn distributor(env: &Env, admin: &mut Client) -> Client {
    admin.get("/accounts").await.expect_status(200);
    admin.post_form("/accounts", &[("name", "配信 花子"), ("email", "dist@net.example"), ("role", "distributor")]).await.expect_status(303);
    let invite = wait_mail(&env.sink, "invite", |m| m.to.contains(&"dist@net.example".to_string())).await;
    let link = invite.links(&env.server.url("/password/reset/")).remove(0);
    let mut c = env.server.client();
    c.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
    login(&mut c, "net", "dist@net.example", PASSWORD).await;
    c
}

#[tokio::test]
async fn allowlists_on_every_engine() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = proxied_env(engine).await;
        let mut admin = tenant(&env, "net").await;
        let mut dist = distributor(&env, &mut admin).await;
        import_csv(&mut admin, people_csv(2, "N").as_bytes(), "auto").await;
        let incident = start_incident(&mut admin, "接続元テスト", &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("接続元テスト")).await;
        let link = mails[0].links(&env.server.url("/a/")).remove(0);

        settings_are_validated(&mut admin, &mut dist).await;
        console_list(&env, &mut admin, &mut dist, incident).await;
        admin_list(&mut admin, &mut dist).await;
        answer_list(&env, &mut admin, &link).await;
        untrusted_peer(&env, &mut admin, &link).await;

        // Clearing the lists opens everything again.
        set_lists(&mut admin, INSIDE, "", "", "").await.expect_status(303);
        admin.get("/").await.expect_status(200);
        env.server.client().get(&link).await.expect_status(200);
    }
}

/// Admins only; bad entries are named; lists that would lock the admin out are refused.
async fn settings_are_validated(admin: &mut Client, dist: &mut Client) {
    let page = admin.get("/security/network").await.expect_status(200);
    assert!(page.text.contains("id=\"here\">127.0.0.1<"), "own address shown");
    let page = get_from(admin, "/security/network", INSIDE).await.expect_status(200);
    assert!(page.text.contains(&format!("id=\"here\">{INSIDE}<")), "address from the trusted proxy");
    dist.get("/security/network").await.expect_status(403);
    dist.post_form("/security/network", &[("console", ""), ("admin", ""), ("answer", "")]).await.expect_status(403);

    let r = set_lists(admin, INSIDE, "198.51.100.0/24\n10.0.0.300/8", "", "").await.expect_status(400);
    assert!(r.text.contains("IPアドレス範囲が不正です: 10.0.0.300/8 (invalid address range)"), "{}", r.text);
    let r = set_lists(admin, INSIDE, "", "", "2001:db8::/129").await.expect_status(400);
    assert!(r.text.contains("IPアドレス範囲が不正です: 2001:db8::/129"), "{}", r.text);
    for (console, admin_list) in [("198.51.100.0/24", ""), ("", "198.51.100.0/24")] {
        let r = set_lists(admin, "127.0.0.1", console, admin_list, "").await.expect_status(400);
        assert!(r.text.contains("この設定では現在の接続元 127.0.0.1 から操作できなくなります"), "{}", r.text);
    }
    // Nothing was saved.
    admin.get("/").await.expect_status(200);
}

/// The console list applies to every role, on every console page and form.
async fn console_list(env: &Env, admin: &mut Client, dist: &mut Client, incident: i64) {
    set_lists(admin, INSIDE, "198.51.100.0/24\n2001:DB8::/32", "", "").await.expect_status(303);
    let page = get_from(admin, "/security/network", INSIDE).await.expect_status(200);
    assert!(page.text.contains("198.51.100.0/24\n2001:db8::/32</textarea>"), "stored, normalised: {}", page.text);

    let dashboard = format!("/incidents/{incident}");
    for path in ["/", "/people", "/accounts", "/security/network", "/account", dashboard.as_str()] {
        assert_denied(&get_from(admin, path, OUTSIDE).await);
        get_from(admin, path, INSIDE).await.expect_status(200);
    }
    assert_denied(&admin.get("/").await);
    get_from(admin, "/", "2001:db8::5").await.expect_status(200);
    get_from(admin, "/", "::ffff:198.51.100.9").await.expect_status(200);
    // Only the rightmost hop not added by a trusted proxy counts: a forged left part is ignored.
    get_from(admin, "/", &format!("{OUTSIDE}, {INSIDE}")).await.expect_status(200);
    assert_denied(&get_from(admin, "/", &format!("{INSIDE}, {OUTSIDE}")).await);
    assert_denied(&post_from(admin, &format!("/incidents/{incident}/resend"), OUTSIDE, &[]).await);
    assert_denied(&get_from(dist, "/", OUTSIDE).await);
    get_from(dist, "/", INSIDE).await.expect_status(200);

    // Signing in still works; the console behind it does not.
    let mut fresh = env.server.client();
    fresh.get("/login").await.expect_status(200);
    let r = post_from(&mut fresh, "/login", OUTSIDE, &[("tenant", "net"), ("email", &admin_email("net")), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_denied(&get_from(&mut fresh, "/", OUTSIDE).await);
    assert!(env.server.log().contains("console request refused by the IP allowlist"), "denials are logged");
}

/// The admin list restricts admins only.
async fn admin_list(admin: &mut Client, dist: &mut Client) {
    set_lists(admin, INSIDE, "", "198.51.100.0/24", "").await.expect_status(303);
    assert_denied(&get_from(admin, "/", OUTSIDE).await);
    assert_denied(&admin.get("/").await);
    get_from(admin, "/", INSIDE).await.expect_status(200);
    get_from(dist, "/", OUTSIDE).await.expect_status(200);
    dist.get("/").await.expect_status(200);
}

/// Answer links work from anywhere unless the answer list says otherwise.
async fn answer_list(env: &Env, admin: &mut Client, link: &str) {
    let mut phone = env.server.client();
    let page = get_from(&mut phone, link, OUTSIDE).await.expect_status(200);
    assert!(page.text.contains("接続元テスト") && page.text.contains("社員 "), "answer page: {}", page.text);

    set_lists(admin, INSIDE, "", "198.51.100.0/24", "192.0.2.0/24").await.expect_status(303);
    let r = get_from(&mut phone, link, OUTSIDE).await;
    assert_denied(&r);
    assert!(!r.text.contains("社員 ") && !r.text.contains("接続元テスト"), "nothing of the incident is shown");
    assert_denied(&post_from(&mut phone, link, OUTSIDE, &[("q1", "c1")]).await);
    get_from(&mut phone, link, "192.0.2.5").await.expect_status(200);
    post_from(&mut phone, link, "192.0.2.5", &[("q1", "c1")]).await.expect_status(303);
    assert!(env.server.log().contains("answer page refused by the IP allowlist"), "denials are logged");
    // Every denial is in the tenant's audit log: allowlist refusals and missing permissions.
    let log = get_from(admin, "/audit.json?view=audit&outcome=denied", INSIDE).await.expect_status(200).json();
    let seen: Vec<String> = log.as_array().expect("entries").iter().map(|e| format!("{} {} {}", e["action"], e["detail"], e["ip"])).collect();
    for want in [
        ("access_denied", "IP allowlist: console", OUTSIDE),
        ("access_denied", "IP allowlist: answer", OUTSIDE),
        ("permission_denied", "ManageSecurity", "127.0.0.1"),
    ] {
        assert!(seen.iter().any(|s| s.contains(want.0) && s.contains(want.1) && s.contains(want.2)), "{want:?} not in {seen:#?}");
    }
}

/// Without `--trusted-proxy`, `X-Forwarded-For` is ignored: the peer (127.0.0.1) is the client.
async fn untrusted_peer(env: &Env, admin: &mut Client, link: &str) {
    let plain = Server::builder(env.server.database_url()).smtp(&env.sink).start().await;
    let mut c = plain.client();
    c.set_cookie("__Host-anpi", &admin.cookie("__Host-anpi").expect("session cookie"));
    assert_denied(&get_from(&mut c, "/", INSIDE).await);
    let mut phone = plain.client();
    let link = link.replace(env.server.base_url(), plain.base_url());
    assert_denied(&get_from(&mut phone, &link, "192.0.2.5").await);
    // The same session through the trusting server, from the listed address, still works.
    get_from(admin, "/", INSIDE).await.expect_status(200);
}

/// An admin saves a console list without 127.0.0.1 (while appearing from an allowed address);
/// the browser, at plain 127.0.0.1, signs in and sees the denial.
#[tokio::test]
async fn denial_in_chromium() {
    let Some(wd) = WebDriver::start().await else { return };
    let env = proxied_env(Engine::Sqlite).await;
    let mut admin = tenant(&env, "net-browser").await;
    set_lists(&mut admin, INSIDE, "198.51.100.0/24", "", "").await.expect_status(303);

    wd.goto(&env.server.url("/login")).await;
    let tenant_field = wd.wait_for("#tenant", Duration::from_secs(10)).await;
    wd.send_keys(&tenant_field, "net-browser").await;
    wd.send_keys(&wd.find("#email").await, &admin_email("net-browser")).await;
    wd.send_keys(&wd.find("#password").await, PASSWORD).await;
    wd.click(&wd.find("#login").await).await;
    let denied = wd.wait_for("#network-denied", Duration::from_secs(10)).await;
    wd.screenshot("network-denied").await;
    assert!(wd.text(&denied).await.contains(DENIED), "denial text in the browser");
    assert!(wd.try_find("#new-incident").await.is_none(), "no console page behind it");
    wd.goto(&env.server.url("/people")).await;
    wd.wait_for("#network-denied", Duration::from_secs(10)).await;
    wd.quit().await;
}
