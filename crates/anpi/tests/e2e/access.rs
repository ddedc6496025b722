//! Identity and access over HTTP, on each engine: TOTP enrolment and two-step sign-in (each
//! code once, recovery codes), a tenant policy that requires MFA, lockout and admin unlock,
//! throttling, the 15-character rule without MFA, and one's own sessions.

use super::common::*;
use crate::support::{engines, extract, Client};
use anpi_store::mfa::{totp_code, unbase32};

fn code_at(secret: &str, offset_steps: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    totp_code(&unbase32(secret).unwrap(), now / 30_000 + offset_steps)
}

/// Enrols TOTP from the enrolment page; returns the secret and the recovery codes.
async fn enrol(c: &mut Client, password: Option<&str>) -> (String, Vec<String>) {
    let page = c.get("/account/mfa").await.expect_status(200);
    let secret = extract(&page.text, "id=\"secret\">", "</code>").expect("secret on the page");
    assert!(page.text.contains("<svg"), "QR code");
    let mut fields = vec![("secret", secret.as_str()), ("code", "000000")];
    if let Some(p) = password {
        fields.push(("password", p));
    }
    let wrong = c.post_form("/account/mfa", &fields).await;
    assert_eq!(wrong.status, 400, "a wrong code is refused");
    let code = code_at(&secret, 0);
    fields[1] = ("code", code.as_str());
    let r = c.post_form("/account/mfa", &fields).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = extract(&r.text, "<ul id=\"codes\" class=\"codes\">", "</ul>").expect("recovery codes");
    let codes: Vec<String> = list.split("<code>").skip(1).filter_map(|s| s.split("</code>").next()).map(String::from).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn sign_in(c: &mut Client, code: &str, email: &str) -> crate::support::Resp {
    c.clear_cookies();
    c.get("/login").await;
    c.post_form("/login", &[("tenant", code), ("email", email), ("password", PASSWORD)]).await
}

#[tokio::test]
async fn mfa_lockout_throttling_and_sessions() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = env(engine).await;
        let mut admin = tenant(&env, "sec").await;
        let admin_email = admin_email("sec");

        // Enrolment needs the password again (re-authentication) and a working code.
        let page = admin.get("/account/mfa").await.expect_status(200);
        let secret = extract(&page.text, "id=\"secret\">", "</code>").unwrap();
        let code = code_at(&secret, 0);
        assert_eq!(admin.post_form("/account/mfa", &[("secret", &secret), ("code", &code), ("password", "wrong password here")]).await.status, 400);
        let (secret, recovery) = enrol(&mut admin, Some(PASSWORD)).await;
        assert!(admin.get("/account").await.expect_status(200).text.contains("id=\"mfa-on\""));

        // Two-step sign-in: the password alone reaches only the code page.
        let mut c = env.server.client();
        let r = sign_in(&mut c, "sec", &admin_email).await;
        assert_eq!(r.location().as_deref(), Some("/login/mfa"));
        assert_eq!(c.get("/").await.location().as_deref(), Some("/login/mfa"), "no console before the second factor");
        c.get("/login/mfa").await.expect_status(200);
        assert_eq!(c.post_form("/login/mfa", &[("code", "123456")]).await.status, 401);
        let next = code_at(&secret, 1);
        c.post_form("/login/mfa", &[("code", &next)]).await.expect_status(303);
        c.get("/").await.expect_status(200);
        // The same code cannot be used again; a recovery code works once.
        sign_in(&mut c, "sec", &admin_email).await.expect_status(303);
        c.get("/login/mfa").await.expect_status(200);
        assert_eq!(c.post_form("/login/mfa", &[("code", &next)]).await.status, 401, "replayed TOTP code");
        c.post_form("/login/mfa", &[("code", &recovery[0])]).await.expect_status(303);
        c.get("/").await.expect_status(200);
        sign_in(&mut c, "sec", &admin_email).await.expect_status(303);
        c.get("/login/mfa").await.expect_status(200);
        assert_eq!(c.post_form("/login/mfa", &[("code", &recovery[0])]).await.status, 401, "used recovery code");

        // One's own sessions: several are listed; "everywhere else" ends the others.
        let listed = admin.get("/account").await.expect_status(200);
        assert!(listed.text.matches("ログアウトさせる").count() >= 1, "other sessions listed: {}", listed.text);
        let mut other = env.server.client();
        sign_in(&mut other, "sec", &admin_email).await.expect_status(303);
        other.get("/login/mfa").await.expect_status(200);
        other.post_form("/login/mfa", &[("code", &recovery[1])]).await.expect_status(303);
        other.get("/").await.expect_status(200);
        admin.get("/account").await.expect_status(200);
        admin.post_form("/account/sessions/end-others", &[]).await.expect_status(303);
        assert_eq!(other.get("/").await.status, 303, "signed out elsewhere");
        admin.get("/").await.expect_status(200);

        // A password reset by mail link signs nobody in, ends every session, and the next
        // sign-in still asks for the second factor.
        let mut stranger = env.server.client();
        stranger.get("/password/reset").await.expect_status(200);
        stranger.post_form("/password/reset", &[("tenant", "sec"), ("email", &admin_email)]).await.expect_status(200);
        let mails = wait_mails(&env.sink, 2, |m| m.to.contains(&admin_email)).await;
        let link = mails.last().unwrap().links(&env.server.url("/password/reset/")).remove(0);
        let done = stranger.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
        assert_eq!(done.location().as_deref(), Some("/login"));
        assert!(done.header("set-cookie").is_none(), "a reset starts no session");
        assert_eq!(admin.get("/").await.status, 303, "the reset ended the admin's sessions");
        let r = sign_in(&mut admin, "sec", &admin_email).await;
        assert_eq!(r.location().as_deref(), Some("/login/mfa"), "the reset did not turn the second factor off");
        admin.get("/login/mfa").await.expect_status(200);
        admin.post_form("/login/mfa", &[("code", &recovery[2])]).await.expect_status(303);
        admin.get("/").await.expect_status(200);

        // Policy: MFA for everyone; a distributor without it is sent to enrolment.
        admin.get("/security").await.expect_status(200);
        let bad = admin.post_form("/security", &[("mfa_required", "everyone"), ("lockout_threshold", "0"), ("idle_min", "30"), ("absolute_min", "720")]).await;
        assert_eq!(bad.status, 400, "threshold out of range");
        admin
            .post_form("/security", &[("mfa_required", "everyone"), ("lockout_threshold", "3"), ("idle_min", "30"), ("absolute_min", "720")])
            .await
            .expect_status(303);
        admin.get("/accounts").await.expect_status(200);
        admin.post_form("/accounts", &[("name", "配信 花子"), ("email", "dist@sec.example"), ("role", "distributor")]).await.expect_status(303);
        let invite = wait_mail(&env.sink, "invite", |m| m.to.iter().any(|t| t == "dist@sec.example")).await;
        let link = invite.links(&env.server.url("/password/reset/")).remove(0);
        let mut dist = env.server.client();
        let short = dist.post_form_raw(&link, &[("new", "fourteen chars")]).await;
        assert_eq!(short.status, 400, "15 characters without MFA");
        assert!(short.text.contains("15"), "{}", short.text);
        dist.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
        let r = sign_in(&mut dist, "sec", "dist@sec.example").await;
        assert_eq!(r.location().as_deref(), Some("/account/mfa"), "required but not enrolled");
        assert_eq!(dist.get("/").await.location().as_deref(), Some("/account/mfa"));
        enrol(&mut dist, None).await;
        dist.get("/").await.expect_status(200);

        // Lockout after 3 failures (same answer as a wrong password); an admin unlocks.
        let generic = sign_in(&mut c, "sec", "nobody@sec.example").await;
        assert_eq!(generic.status, 401);
        for _ in 0..3 {
            let r = c.post_form("/login", &[("tenant", "sec"), ("email", "dist@sec.example"), ("password", "not the password!")]).await;
            assert_eq!(r.status, 401);
        }
        let locked = c.post_form("/login", &[("tenant", "sec"), ("email", "dist@sec.example"), ("password", PASSWORD)]).await;
        assert_eq!(locked.status, 401, "locked");
        assert_eq!(extract(&locked.text, "role=\"alert\">", "</p>"), extract(&generic.text, "role=\"alert\">", "</p>"), "same message");
        assert_eq!(dist.get("/").await.status, 303, "a locked account's sessions stop working");
        let accounts = admin.get("/accounts").await.expect_status(200);
        // The role matrix comes from the policy: every permission, which roles have it.
        let matrix = extract(&accounts.text, "id=\"role-matrix\">", "</table>").expect("role matrix");
        assert_eq!(matrix.matches("<tr><td>").count(), anpi_core::Permission::ALL.len(), "{matrix}");
        assert!(matrix.contains("<td>配信の開始</td><td>✓</td><td>✓</td><td>—</td>"), "{matrix}");
        assert!(matrix.contains("<td>情報の区分の設定</td><td>✓</td><td>—</td><td>—</td>"), "{matrix}");
        let at = accounts.text.find("dist@sec.example").unwrap();
        let id = extract(&accounts.text[at..], "action=\"/accounts/", "/").expect("account id");
        assert!(accounts.text[at..].contains(&format!("/accounts/{id}/unlock")), "unlock button");
        // The owner is told by mail, and the lock is in the sign-in history.
        let notice = wait_mail(&env.sink, "lock notice", |m| m.to.iter().any(|t| t == "dist@sec.example") && m.subject.contains("ロック")).await;
        assert!(notice.body.contains("locked after repeated failed sign-ins"), "{}", notice.body);
        let log = admin.get("/audit.json?view=signin&action=account_locked").await.json();
        assert_eq!((log.as_array().map(Vec::len), log[0]["target"].clone()), (Some(1), serde_json::json!(format!("account:{id}"))), "{log}");
        admin.post_form(&format!("/accounts/{id}/unlock"), &[]).await.expect_status(303);
        // Five failures from this address so far: the next attempt waits a second.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let r = sign_in(&mut dist, "sec", "dist@sec.example").await;
        assert_eq!(r.location().as_deref(), Some("/login/mfa"), "unlocked");

        // An admin ends someone's sessions.
        admin.get("/accounts").await.expect_status(200);
        admin.post_form(&format!("/accounts/{id}/sessions/end"), &[]).await.expect_status(303);
        assert_eq!(dist.get("/login/mfa").await.status, 303, "session ended");

        // The distributor lost the phone: an admin resets the second factor, re-entering the
        // admin's own password; the account enrols again at the next sign-in (policy: everyone).
        admin.get("/accounts").await.expect_status(200);
        assert_eq!(admin.post_form(&format!("/accounts/{id}/mfa/reset"), &[("password", "wrong password here")]).await.status, 400);
        let r = sign_in(&mut dist, "sec", "dist@sec.example").await;
        assert_eq!(r.location().as_deref(), Some("/login/mfa"), "still two-step after a refused reset");
        admin.post_form(&format!("/accounts/{id}/mfa/reset"), &[("password", PASSWORD)]).await.expect_status(303);
        assert_eq!(dist.get("/login/mfa").await.status, 303, "the reset ended the half-way session");
        let r = sign_in(&mut dist, "sec", "dist@sec.example").await;
        assert_eq!(r.location().as_deref(), Some("/account/mfa"), "enrols again");
        let log = admin.get("/audit.json?view=audit&action=mfa_reset").await.json();
        assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
        assert_eq!(log[0]["target"], format!("account:{id}"), "{log}");

        // Throttling by client address: after 5 failures, wait (429 with Retry-After), whoever
        // the account is.
        let mut t = env.server.client();
        t.get("/login").await;
        let mut saw = None;
        for i in 0..8 {
            let r = t.post_form("/login", &[("tenant", "sec"), ("email", &format!("x{i}@sec.example")), ("password", "wrong password")]).await;
            if r.status == 429 {
                saw = Some(r);
                break;
            }
            assert_eq!(r.status, 401);
        }
        let r = saw.expect("throttled after repeated failures");
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn distributor_reach_limits_people_and_messages() {
    for engine in engines() {
        let env = env(engine).await;
        let mut admin = tenant(&env, "reach").await;
        import_csv(&mut admin, people_csv(6, "R").as_bytes(), "auto").await; // 3 in 本社/総務部, 3 in 大阪支社/営業課
        admin.get("/accounts").await.expect_status(200);
        admin.post_form("/accounts", &[("name", "本社 配信"), ("email", "hq@reach.example"), ("role", "distributor")]).await.expect_status(303);
        let invite = wait_mail(&env.sink, "invite", |m| m.to.iter().any(|t| t == "hq@reach.example")).await;
        let link = invite.links(&env.server.url("/password/reset/")).remove(0);
        let mut dist = env.server.client();
        dist.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
        login(&mut dist, "reach", "hq@reach.example", PASSWORD).await;

        let page = admin.get("/accounts").await.expect_status(200);
        let honsha = option_value(&page.text, "本社");
        let at = page.text.find("hq@reach.example").unwrap();
        let id = id_before(&page.text[at..], "/reach\"", "/accounts/");
        admin.post_form(&format!("/accounts/{id}/reach"), &[("department", &honsha)]).await.expect_status(303);

        // The directory shows only 本社 people; an 大阪 person's page is not found.
        let people = dist.get("/people").await.expect_status(200);
        assert!(people.text.contains("R00000") && !people.text.contains("R00001"), "only 本社 (even rows)");
        let all = admin.get("/people").await.expect_status(200);
        let row = all.text.find("R00001").expect("an 大阪 person");
        let start = all.text[..row].rfind("<tr").unwrap();
        let osaka_id = extract(&all.text[start..], "/people/", "\"").expect("person link");
        assert_eq!(dist.get(&format!("/people/{osaka_id}")).await.status, 404);

        // "Everyone" from this distributor means everyone within reach.
        let inc = start_incident(&mut dist, "本社だけの訓練", &[("all", "1"), ("drill", "1")]).await;
        wait_mails(&env.sink, 3, |m| m.subject.contains("本社だけの訓練")).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let sent: Vec<_> = env.sink.messages().into_iter().filter(|m| m.subject.contains("本社だけの訓練")).collect();
        assert_eq!(sent.len(), 3, "only the 3 people of 本社");
        assert!(
            sent.iter().all(|m| m.to.iter().all(|t| ["R0@", "R2@", "R4@"].iter().any(|p| t.starts_with(p)))),
            "{:?}",
            sent.iter().map(|m| &m.to).collect::<Vec<_>>()
        );

        // An incident to everyone started by the admin: the distributor sees and re-sends only 本社.
        let all_inc = start_incident(&mut admin, "全社の訓練", &[("all", "1"), ("drill", "1")]).await;
        wait_mails(&env.sink, 6, |m| m.subject.contains("全社の訓練")).await;
        let board = dist.get(&format!("/incidents/{all_inc}")).await.expect_status(200);
        assert_eq!(extract(&board.text, "id=\"answered\">", "</div>").map(|s| s.trim().to_string()).as_deref(), Some("0 / 3"));
        dist.post_form(&format!("/incidents/{all_inc}/resend"), &[]).await.expect_status(303);
        wait_mails(&env.sink, 9, |m| m.subject.contains("全社の訓練")).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(env.sink.messages().iter().filter(|m| m.subject.contains("全社の訓練")).count(), 9, "re-sent to 3, not 6");

        // Closing cancels everyone's mail: the distributor cannot close the company-wide
        // incident (403, recorded), only its own.
        dist.get("/").await.expect_status(200);
        dist.post_form(&format!("/incidents/{all_inc}/close"), &[]).await.expect_status(403);
        let still_open = admin.get(&format!("/incidents/{all_inc}")).await.expect_status(200);
        assert!(still_open.text.contains(&format!("/incidents/{all_inc}/close")), "still open: the admin can close it");
        dist.get(&format!("/incidents/{inc}")).await.expect_status(200);
        dist.post_form(&format!("/incidents/{inc}/close"), &[]).await.expect_status(303);

        // An incident only for 大阪: not in the distributor's list, and every action on it refused.
        let osaka = option_value(&admin.get("/incidents/new").await.text, "大阪支社");
        let osaka_inc = start_incident(&mut admin, "大阪だけの訓練", &[("department", &osaka), ("drill", "1")]).await;
        let list = dist.get("/").await.expect_status(200);
        assert!(!list.text.contains("大阪だけの訓練") && list.text.contains("全社の訓練"), "{}", list.text);
        for path in ["", "/events", "/answers.csv"] {
            assert_eq!(dist.get(&format!("/incidents/{osaka_inc}{path}")).await.status, 403, "GET {path}");
        }
        dist.get("/").await.expect_status(200);
        for action in ["resend", "close"] {
            assert_eq!(dist.post_form(&format!("/incidents/{osaka_inc}/{action}"), &[]).await.status, 403, "{action}");
        }
        let open = admin.get(&format!("/incidents/{osaka_inc}")).await.expect_status(200);
        assert!(open.text.contains(&format!("/incidents/{osaka_inc}/close")), "not closed by the distributor");
        let denials = admin.get("/audit.csv?view=audit&action=permission_denied").await.expect_status(200).text;
        assert!(denials.contains(&format!("incident:{osaka_inc}")) && denials.contains(&format!("incident:{all_inc}")), "{denials}");
    }
}

/// The id in the last `prefix{id}` before the first `marker` of `text`.
fn id_before(text: &str, marker: &str, prefix: &str) -> String {
    let end = text.find(marker).expect("marker");
    let start = text[..end].rfind(prefix).expect("prefix") + prefix.len();
    text[start..end].to_string()
}

#[tokio::test]
async fn audit_log_records_actions_and_detects_tampering() {
    use crate::support::server::{run_cli, run_cli_ok};
    for engine in engines() {
        let env = env(engine).await;
        let mut admin = tenant(&env, "aud").await;
        let url = env.server.database_url().to_string();
        // Health says whether the database answers and whether the clock is synchronised.
        let health = admin.get("/health").await.expect_status(200).json();
        assert_eq!(health["database"], true, "{health}");
        assert!(["synchronised", "not_synchronised", "unknown"].contains(&health["clock"].as_str().unwrap_or("")), "{health}");
        // A failed sign-in, a policy change, an incident.
        let mut stranger = env.server.client();
        stranger.get("/login").await;
        assert_eq!(stranger.post_form("/login", &[("tenant", "aud"), ("email", &admin_email("aud")), ("password", "not the password!")]).await.status, 401);
        assert_eq!(stranger.post_form("/login", &[("tenant", "aud"), ("email", "=1+2@x.example"), ("password", "not the password!")]).await.status, 401);
        admin.get("/security").await;
        admin
            .post_form("/security", &[("mfa_required", "admins"), ("lockout_threshold", "20"), ("idle_min", "30"), ("absolute_min", "720")])
            .await
            .expect_status(303);
        import_csv(&mut admin, people_csv(2, "L").as_bytes(), "auto").await;
        let inc = start_incident(&mut admin, "監査の訓練", &[("all", "1"), ("drill", "1")]).await;

        let history = admin.get("/audit").await.expect_status(200);
        assert!(history.text.contains("sign_in_failed") && history.text.contains("127.0.0.1"), "{}", history.text);
        assert!(history.text.contains(">sign_in<") && !history.text.contains("incident_started"), "sign-ins only");
        let ua = history.text.split(">sign_in<").nth(1).and_then(|t| t.split("</tr>").next()).unwrap_or_default().to_string();
        assert!(ua.contains("password, then full; anpi-e2e-tests"), "method and user agent in the sign-in history: {ua}");
        assert!(history.text.contains("id=\"chain-ok\""));
        let changes = admin.get("/audit?view=audit").await.expect_status(200);
        for action in ["security_policy_changed", "directory_imported", "incident_started"] {
            assert!(changes.text.contains(action), "{action} missing from the audit log");
        }
        assert!(changes.text.contains(&format!("incident:{inc}")));
        // Views are the usage log: who looked at which incident and at the directory.
        admin.get(&format!("/incidents/{inc}")).await.expect_status(200);
        admin.get("/people?q=L1").await.expect_status(200);
        let usage = admin.get("/audit?view=usage").await.expect_status(200);
        assert!(usage.text.contains("incident_viewed") && usage.text.contains(&format!("incident:{inc}")), "{}", usage.text);
        assert!(usage.text.contains("people_viewed") && usage.text.contains(">L1<"));
        // Filters, CSV and JSON exports of the same selection; an export is itself recorded.
        let signins = admin.get("/audit.csv?view=signin").await.expect_status(200);
        assert!(signins.text.contains(",'=1+2@x.example,") && !signins.text.contains(",=1+2"), "no formula in a spreadsheet: {}", signins.text);
        let csv = admin.get("/audit.csv?view=audit").await.expect_status(200);
        assert!(csv.text.contains("incident_started"));
        let json = admin.get("/audit.json?view=audit&action=incident_started").await.expect_status(200).json();
        let rows = json.as_array().expect("an array");
        assert_eq!(rows.len(), 1, "{json}");
        assert_eq!(rows[0]["target"], format!("incident:{inc}"));
        assert_eq!(rows[0]["kind"], "audit");
        assert!(rows[0]["at"].as_i64().is_some() && rows[0]["local_time"].as_str().is_some_and(|t| t.len() == 19), "{json}");
        let none = admin.get("/audit.json?view=audit&from=2001-01-01&to=2001-01-02").await.expect_status(200).json();
        assert_eq!(none.as_array().map(Vec::len), Some(0), "nothing in 2001");
        admin.get("/audit.json?view=audit&from=yesterday").await.expect_status(400);
        let exported = admin.get("/audit.json?view=audit&action=audit_exported").await.json();
        assert!(exported.as_array().is_some_and(|a| a.len() >= 3), "each export is logged: {exported}");
        // Paging: 100 entries a page, then a link to older ones.
        for _ in 0..101 {
            admin.get("/people").await.expect_status(200);
        }
        let first = admin.get("/audit?view=usage&action=people_viewed").await.expect_status(200);
        assert_eq!(first.text.matches(">people_viewed<").count(), 100);
        let link = first.text.split("id=\"older\"").next().and_then(|t| t.rsplit("href=\"").next()).and_then(|t| t.split('"').next());
        let older = link.expect("a link to older entries").replace("&#38;", "&").replace("&amp;", "&");
        let second = admin.get(&older).await.expect_status(200);
        assert_eq!(second.text.matches(">people_viewed<").count(), 2, "{older}");
        // Times are stored in UTC and shown in the tenant's zone (Asia/Tokyo unless set).
        let first = |j: serde_json::Value| j.as_array().and_then(|a| a.last().cloned()).expect("an entry");
        let hour = |v: &serde_json::Value| v["local_time"].as_str().and_then(|t| t.get(11..13)).and_then(|h| h.parse::<i64>().ok()).expect("local time");
        let tokyo = first(admin.get("/audit.json?view=signin").await.json());
        admin.get("/org").await.expect_status(200);
        assert_eq!(admin.post_form("/org/time-zone", &[("zone", "Mars/Olympus")]).await.status, 400);
        admin.post_form("/org/time-zone", &[("zone", "UTC")]).await.expect_status(303);
        let utc = first(admin.get("/audit.json?view=signin").await.json());
        assert_eq!((tokyo["id"].clone(), (hour(&tokyo) - hour(&utc)).rem_euclid(24)), (utc["id"].clone(), 9), "{tokyo} / {utc}");
        admin.post_form("/org/time-zone", &[("zone", "Asia/Tokyo")]).await.expect_status(303);
        // Each account's last sign-in.
        let last = admin.get("/audit?view=accounts").await.expect_status(200);
        assert!(last.text.contains(&admin_email("aud")) && last.text.contains("127.0.0.1"), "{}", last.text);
        // Retention per kind, 30–3650 days, recorded.
        admin.post_form("/audit/retention", &[("audit", "400"), ("signin", "90"), ("usage", "30")]).await.expect_status(303);
        admin.post_form("/audit/retention", &[("audit", "400"), ("signin", "10"), ("usage", "30")]).await.expect_status(400);
        let page = admin.get("/audit?view=audit&action=retention_changed").await.expect_status(200);
        assert!(page.text.contains("signin=90") && page.text.contains("usage=30") && page.text.contains("value=\"90\""), "{}", page.text);
        // Members cannot read the log; other tenants see their own only.
        let mut other = tenant(&env, "aud2").await;
        assert!(!other.get("/audit?view=audit").await.expect_status(200).text.contains("監査"));
        assert!(!other.get("/audit?view=audit").await.text.contains(&format!("incident:{inc}")));
        assert_eq!(
            other.get("/audit.json?view=usage").await.json().as_array().map(|a| a.iter().any(|e| e["target"] == format!("incident:{inc}"))),
            Some(false)
        );

        // Signed checkpoints: `anpi audit checkpoint` signs every chain that moved.
        let out = run_cli_ok(&["audit", "checkpoint", "--database-url", &url], None);
        assert!(out.contains("signed") && !out.contains("signed 0"), "{out}");
        // `anpi audit verify` passes, then finds an edited entry; the page says so too.
        let out = run_cli_ok(&["audit", "verify", "--database-url", &url], None);
        assert!(out.contains("intact") && out.contains("checkpoint key") && out.contains("1 signed checkpoint(s)"), "{out}");
        sqlx::any::install_default_drivers();
        // Tampering as the database superuser (the service's role could not: row-level security).
        let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(&url)).await.unwrap();
        sqlx::query("UPDATE audit_log SET ip = '198.51.100.66' WHERE action = 'sign_in_failed'").execute(&pool).await.unwrap();
        pool.close().await;
        let out = run_cli(&["audit", "verify", "--database-url", &url], None);
        assert!(!out.status.success(), "tampering must fail verification");
        assert!(String::from_utf8_lossy(&out.stdout).contains("was changed"), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(admin.get("/audit").await.expect_status(200).text.contains("id=\"chain-broken\""));
    }
}

#[tokio::test]
async fn operator_sign_in_is_throttled() {
    let env = env(crate::support::Engine::Sqlite).await;
    let mut op = env.server.operator_client();
    op.get("/login").await;
    let mut throttled = None;
    for _ in 0..8 {
        let r = op.post_form("/login", &[("email", OPERATOR), ("password", "not the operator password")]).await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(throttled.expect("throttled after repeated failures").header("retry-after").is_some());
    // Even the right password waits until the delay is over.
    assert_eq!(op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.status, 429);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.expect_status(303);
}

/// The sign-in forms carry a pre-session CSRF token (double-submit cookie): a form posted from
/// elsewhere — no cookie, no token, or a token that is not the cookie's — is refused before any
/// password is checked, with the form values kept and the message in the page's language.
#[tokio::test]
async fn sign_in_forms_need_their_csrf_token() {
    let env = env(crate::support::Engine::Sqlite).await;
    let _admin = tenant(&env, "csrf").await;
    for (base, fields) in [
        (env.server.url("/login"), vec![("tenant", "csrf"), ("email", "admin@csrf.example"), ("password", PASSWORD)]),
        (env.server.operator_url("/login"), vec![("email", OPERATOR), ("password", PASSWORD)]),
    ] {
        // A cross-site form: no cookie, no token.
        let mut stranger = crate::support::Client::new(base.trim_end_matches("/login"));
        let r = stranger.post_form_raw(&base, &fields).await.expect_status(400);
        assert!(r.text.contains("id=\"login-expired\"") && r.text.contains("フォームの有効期限が切れました"), "{}", r.text);
        assert!(r.header_all("set-cookie").iter().any(|c| c.starts_with("__Host-anpi-login=")), "a fresh token comes with the answer");
        // A token of its own that is not the cookie's.
        let mut with_token = fields.clone();
        with_token.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        stranger.post_form_raw(&base, &with_token).await.expect_status(400);
        // The real form works.
        let mut browser = crate::support::Client::new(base.trim_end_matches("/login"));
        browser.get(&base).await.expect_status(200);
        browser.post_form(&base, &fields).await.expect_status(303);
    }
}
