//! Cross-tenant isolation: tenant B's admin, holding tenant A's ids, reads and changes nothing
//! of A's on any route that takes an id. Also: malformed and hostile input.

use super::common::*;
use crate::support::{engines, extract};

#[tokio::test]
async fn tenants_cannot_reach_each_other() {
    for engine in engines() {
        let env = env(engine).await;
        let mut a = tenant(&env, "alpha").await;
        let mut b = tenant(&env, "beta").await;
        import_csv(&mut a, people_csv(4, "A").as_bytes(), "auto").await;
        import_csv(&mut b, people_csv(2, "B").as_bytes(), "auto").await;
        let incident = start_incident(&mut a, "alpha の配信", &[("all", "1")]).await;
        let people = a.get("/people").await.expect_status(200);
        let person = extract(&people.text, "<a href=\"/people/", "\"").expect("a person id");
        let upload = upload_csv(&mut a, people_csv(1, "X").as_bytes(), "auto").await;
        let staged = extract(&upload.text, "action=\"/people/import/", "\"").expect("staged import");
        let accounts = a.get("/accounts").await.expect_status(200);
        let _ = accounts;
        let form = a.get("/rules/new").await.expect_status(200);
        let survey = crate::support::http::html_unescape(&extract(&form.text, "name=\"survey\" rows=\"4\">", "</textarea>").expect("survey"));
        let rule_fields = [
            ("name", "alpha rule"),
            ("enabled", "1"),
            ("trigger", "earthquake|intensity:5-"),
            ("basis", "both"),
            ("survey", survey.as_str()),
            ("suppress_min", "60"),
        ];
        a.post_form("/rules", &rule_fields).await.expect_status(303);
        let rule = extract(&a.get("/rules").await.expect_status(200).text, "<a href=\"/rules/", "\"").expect("a rule id");

        b.get("/").await.expect_status(200);
        for path in [
            format!("/incidents/{incident}"),
            format!("/incidents/{incident}/answers.csv"),
            format!("/incidents/{incident}/events"),
            format!("/people/{person}"),
            format!("/rules/{rule}"),
        ] {
            let r = b.get(&path).await;
            assert_eq!(r.status, 404, "GET {path} as another tenant: {}", r.status);
            b.get("/").await;
        }
        let person_fields = [("employee_no", "HACK"), ("name", "hacked")];
        for (path, fields) in [
            (format!("/incidents/{incident}/resend"), &[][..]),
            (format!("/incidents/{incident}/close"), &[][..]),
            (format!("/people/{person}"), &person_fields[..]),
            (format!("/people/{person}/disable"), &[][..]),
            (format!("/people/{person}/delete"), &[][..]),
            (format!("/people/import/{staged}"), &[][..]),
            (format!("/rules/{rule}"), &rule_fields[..]),
            (format!("/rules/{rule}/delete"), &[][..]),
        ] {
            b.get("/").await.expect_status(200);
            let r = b.post_form(&path, fields).await;
            assert_eq!(r.status, 404, "POST {path} as another tenant: {} {}", r.status, r.text);
        }
        // Nothing of alpha's changed, and beta sees only its own.
        let dash = a.get(&format!("/incidents/{incident}")).await.expect_status(200);
        assert!(dash.text.contains("受付中") || !dash.text.contains("配信を終了しました"));
        assert!(dash.text.contains("配信を終了"), "alpha's incident is still open");
        let p = a.get(&format!("/people/{person}")).await.expect_status(200);
        assert!(!p.text.contains("hacked") && p.text.contains("無効にする"), "person unchanged and enabled");
        a.post_form(&format!("/people/import/{staged}"), &[]).await.expect_status(303);
        assert!(!b.get("/").await.text.contains("alpha の配信"));
        assert!(a.get(&format!("/rules/{rule}")).await.expect_status(200).text.contains("alpha rule"), "alpha's rule unchanged");
        assert!(!b.get("/rules").await.expect_status(200).text.contains("alpha rule"));
        let beta_people = b.get("/people").await.text;
        assert!(!beta_people.contains("A00000") && beta_people.contains("B00000"));
        let export = b.get("/people/export.csv").await.text;
        assert!(!export.contains("@staff.example") || !export.contains("A0000"));
        // The owner can disable (no longer targeted) and delete a person.
        a.get(&format!("/people/{person}")).await.expect_status(200);
        a.post_form(&format!("/people/{person}/disable"), &[]).await.expect_status(303);
        assert!(a.get(&format!("/people/{person}")).await.text.contains("有効にする"));
        let second = start_incident(&mut a, "無効者を除く配信", &[("all", "1")]).await;
        let dash = a.get(&format!("/incidents/{second}")).await.expect_status(200);
        assert_eq!(
            extract(&dash.text, "id=\"answered\">", "</div>").map(|s| s.trim().to_string()).as_deref(),
            Some("0 / 4"),
            "3 of the first 4 plus 1 imported later"
        );
        a.post_form(&format!("/people/{person}/delete"), &[]).await.expect_status(303);
        a.get(&format!("/people/{person}")).await.expect_status(404);
        // Alpha's mail carries links that only ever show alpha's incident.
        let mail = wait_mail(&env.sink, "alpha survey", |m| m.subject.contains("alpha の配信")).await;
        let link = mail.links(&env.server.url("/a/")).remove(0);
        let page = b.get(&link).await.expect_status(200);
        assert!(page.text.contains("alpha の配信") && page.text.contains("alpha 株式会社"));
        // The operator console shows counts, never personal data.
        let mut op = env.server.operator_client();
        op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.expect_status(303);
        let home = op.get("/").await.expect_status(200);
        assert!(home.text.contains("alpha") && !home.text.contains("社員 0") && !home.text.contains("@staff.example"));
        // A tenant session is not an operator session and vice versa.
        let mut cross = env.server.operator_client();
        if let Some(v) = a.cookie("__Host-anpi") {
            cross.set_cookie("__Host-anpi-op", &v);
        }
        assert_eq!(cross.get("/").await.status, 303);
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    for engine in engines() {
        let env = env(engine).await;
        let mut a = tenant(&env, "gamma").await;
        import_csv(&mut a, people_csv(2, "G").as_bytes(), "auto").await;
        let before = a.get("/people/export.csv").await.text;

        // CSV: unknown column, bad rows (all-or-nothing), not Shift_JIS, empty.
        let r = upload_csv(&mut a, "社員番号,氏名,好きな色\n1,A,赤\n".as_bytes(), "auto").await.expect_status(400);
        assert!(r.text.contains("unknown column"), "{}", r.text);
        let r = upload_csv(&mut a, "社員番号,氏名,メールアドレス\nG9,ok,ok@x.example\nG10,,bad-address\n".as_bytes(), "auto").await.expect_status(400);
        assert!(r.text.contains("invalid email") && r.text.contains("name is required") && !r.text.contains("confirm-import"), "{}", r.text);
        let r = upload_csv(&mut a, &[0x82, 0xa0, 0xff, 0xff, 0x0a], "shift_jis").await.expect_status(400);
        assert!(r.text.contains("Shift_JIS"));
        upload_csv(&mut a, b"", "auto").await.expect_status(400);
        assert_eq!(a.get("/people/export.csv").await.text, before, "nothing imported");

        // Forms: invalid fields are listed, nothing saved.
        a.get("/people/new").await;
        let r = a.post_form("/people", &[("employee_no", "G1"), ("name", ""), ("emails", "nope"), ("home_area", "99")]).await.expect_status(400);
        assert!(r.text.contains("invalid email") && r.text.contains("invalid area code"));
        // Missing CSRF token.
        let r = a.post_form_raw("/people", &[("employee_no", "G7"), ("name", "No Token")]).await.expect_status(400);
        assert!(r.text.contains("form expired"));
        // Wrong content type, oversized body, unknown and malformed ids.
        let r = a.post_json("/people", &serde_json::json!({"employee_no": "G8"})).await;
        assert_eq!(r.status, 415);
        a.get("/").await;
        let big = "x".repeat(5 * 1024 * 1024);
        let r = a.post_form("/people", &[("name", big.as_str())]).await;
        assert_eq!(r.status, 413);
        a.get("/incidents/999999").await.expect_status(404);
        let r = a.get("/incidents/abc").await;
        assert_eq!(r.status, 400);
        a.get("/people/999999").await.expect_status(404);
        // Incident form: no target, bad area code, broken survey.
        a.get("/incidents/new").await;
        let r = a.post_form("/incidents", &[("title", "x"), ("survey", "Q: a / b")]).await.expect_status(400);
        assert!(r.text.contains("配信対象を選んでください") && !r.text.contains("choose a target"), "Japanese only: {}", r.text);
        // The store's refusal is a code; the page says it in its own language, and only in that.
        a.get("/incidents/new?lang=en").await;
        let r = a.post_form("/incidents?lang=en", &[("title", "x"), ("survey", "Q: a / b")]).await.expect_status(400);
        assert!(r.text.contains("choose a target") && !r.text.contains("配信対象を選んでください"), "English only: {}", r.text);
        a.get("/incidents/new").await;
        let r = a.post_form("/incidents", &[("title", "x"), ("all", "1"), ("areas", "99999"), ("survey", "Q: a / b")]).await.expect_status(400);
        assert!(r.text.contains("prefecture"));
        a.get("/incidents/new").await;
        let r = a.post_form("/incidents", &[("title", "x"), ("all", "1"), ("survey", "Q: only")]).await.expect_status(400);
        assert!(r.text.contains("two choices"));
        assert_eq!(a.get("/people/export.csv").await.text, before, "directory unchanged");
        assert!(a.get("/").await.text.contains("まだ配信はありません"), "no incident was created");
        // A staged import is confirmed once; the second confirm finds nothing.
        let r = upload_csv(&mut a, people_csv(1, "Z").as_bytes(), "auto").await.expect_status(200);
        let staged = extract(&r.text, "action=\"/people/import/", "\"").expect("staged");
        a.post_form(&format!("/people/import/{staged}"), &[]).await.expect_status(303);
        a.get("/people").await;
        a.post_form(&format!("/people/import/{staged}"), &[]).await.expect_status(404);
        // Wrong credentials look the same whatever was wrong.
        let mut c = env.server.client();
        c.get("/login").await;
        let wrong_pw = c.post_form("/login", &[("tenant", "gamma"), ("email", &admin_email("gamma")), ("password", "wrong password")]).await.expect_status(401);
        let no_user = c.post_form("/login", &[("tenant", "gamma"), ("email", "nobody@gamma.example"), ("password", "wrong password")]).await.expect_status(401);
        let no_tenant =
            c.post_form("/login", &[("tenant", "nope"), ("email", "nobody@gamma.example"), ("password", "wrong password")]).await.expect_status(401);
        let msg = |t: &str| extract(t, "role=\"alert\">", "</p>");
        assert_eq!(msg(&wrong_pw.text), msg(&no_user.text));
        assert_eq!(msg(&no_user.text), msg(&no_tenant.text));
        // Security headers on every page.
        for path in ["/login", "/people", "/a/bogus"] {
            let r = a.get(path).await;
            for h in ["content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"] {
                assert!(r.header(h).is_some(), "{h} missing on {path}");
            }
            assert_eq!(r.header("cache-control").as_deref(), Some("no-store"), "{path}");
            let csp = r.header("content-security-policy").unwrap_or_default();
            for d in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"] {
                assert!(csp.contains(d), "{d} missing from the CSP of {path}: {csp}");
            }
            assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
            assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        }
    }
}

/// The tenant listener's routes, read from the router's source, so that a route added later
/// cannot escape [`every_route_with_an_id_refuses_other_tenants`].
fn tenant_routes() -> Vec<(String, Vec<&'static str>)> {
    routes_in(include_str!("../../../anpi-web/src/pages/mod.rs"))
}

/// Routes whose parameter is not a tenant-owned id, and why that is safe.
const NOT_TENANT_IDS: &[(&str, &str)] = &[
    ("/a/{token}", "the answer link is the recipient's own bearer token (signed, per recipient)"),
    ("/password/reset/{token}", "a single-use bearer token mailed to the account's owner"),
    ("/hazards/{id}", "JMA telegrams are public; the decisions shown are filtered by tenant (see jma.rs)"),
    ("/hazards/{id}/xml", "a JMA telegram as received: public data"),
];

#[tokio::test]
async fn every_route_with_an_id_refuses_other_tenants() {
    let routes = tenant_routes();
    assert!(routes.len() > 40, "routes parsed from pages/mod.rs: {}", routes.len());
    for engine in engines() {
        let env = env(engine).await;
        let mut a = tenant(&env, "owner").await;
        let mut b = tenant(&env, "intruder").await;
        // Tenant A's ids of every kind.
        import_csv(&mut a, people_csv(2, "O").as_bytes(), "auto").await;
        let incident = start_incident(&mut a, "owner の配信", &[("all", "1")]).await;
        let person = extract(&a.get("/people").await.text, "<a href=\"/people/", "\"").expect("person");
        let upload = upload_csv(&mut a, people_csv(1, "X").as_bytes(), "auto").await;
        let staged = extract(&upload.text, "action=\"/people/import/", "\"").expect("staged import");
        a.get("/accounts").await;
        a.post_form("/accounts", &[("name", "配信"), ("email", "d@owner.example"), ("role", "distributor")]).await.expect_status(303);
        let accounts = a.get("/accounts").await.text;
        let at = accounts.find("d@owner.example").unwrap();
        let account = extract(&accounts[at..], "action=\"/accounts/", "/").expect("account id");
        let form = a.get("/rules/new").await.text;
        let survey = crate::support::http::html_unescape(&extract(&form, "name=\"survey\" rows=\"4\">", "</textarea>").unwrap());
        a.post_form(
            "/rules",
            &[("name", "owner rule"), ("enabled", "1"), ("trigger", "earthquake|intensity:5-"), ("basis", "both"), ("survey", &survey), ("suppress_min", "60")],
        )
        .await
        .expect_status(303);
        let rule = extract(&a.get("/rules").await.text, "<a href=\"/rules/", "\"").expect("rule id");
        let label = extract(&a.get("/labels").await.text, "action=\"/labels/", "\"").expect("label id");
        let mut a2 = env.server.client();
        login(&mut a2, "owner", &admin_email("owner"), PASSWORD).await;
        let sessions = a.get("/account").await.text;
        let session = extract(&sessions, "action=\"/account/sessions/", "/end\"").expect("another session of A");
        // A passkey of A's admin (inserted directly, as the database superuser: registering one
        // needs an authenticator).
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(env.server.database_url())).await.unwrap();
        let passkey: i64 = sqlx::query_scalar(
            "INSERT INTO passkeys (tenant_id, account_id, credential_id, public_key, sign_count, name, created_at) \
             SELECT a.tenant_id, a.id, 'isolation-test', $1, 0, 'owner key', 0 FROM accounts a JOIN tenants t ON t.id = a.tenant_id \
             WHERE t.code = 'owner' ORDER BY a.id LIMIT 1 RETURNING id",
        )
        .bind(vec![4u8; 65])
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;

        let id_for = |path: &str| -> Option<String> {
            let id = if path.starts_with("/incidents/") {
                incident.to_string()
            } else if path.starts_with("/people/import/") {
                staged.clone()
            } else if path.starts_with("/people/") {
                person.clone()
            } else if path.starts_with("/accounts/") {
                account.clone()
            } else if path.starts_with("/account/sessions/") {
                session.clone()
            } else if path.starts_with("/account/passkeys/") {
                passkey.to_string()
            } else if path.starts_with("/rules/") {
                rule.clone()
            } else if path.starts_with("/labels/") {
                label.clone()
            } else {
                return None;
            };
            Some(path.replace("{id}", &id))
        };
        let mut checked = 0;
        for (path, methods) in &routes {
            if !path.contains('{') {
                continue;
            }
            if NOT_TENANT_IDS.iter().any(|(p, _)| p == path) {
                continue;
            }
            let url = id_for(path)
                .unwrap_or_else(|| panic!("route {path} takes an id this test does not know: add it to id_for (or to NOT_TENANT_IDS with the reason)"));
            for m in methods {
                b.get("/").await.expect_status(200);
                let r = if *m == "GET" { b.get(&url).await } else { b.post_form(&url, &[("name", "hijack"), ("employee_no", "HACK")]).await };
                assert!([403, 404].contains(&r.status), "{m} {url} as another tenant: HTTP {} {}", r.status, r.text);
                checked += 1;
            }
        }
        assert!(checked >= 15, "checked {checked} route/method pairs");
        // Nothing of A's changed: the incident is open, the person, rule, account, session and
        // staged import are all still there.
        assert!(a.get(&format!("/incidents/{incident}")).await.expect_status(200).text.contains("配信を終了"));
        assert!(a.get(&format!("/people/{person}")).await.expect_status(200).text.contains("無効にする"));
        a.get(&format!("/rules/{rule}")).await.expect_status(200);
        let labels = a.get("/labels").await.text;
        assert!(labels.contains(&format!("action=\"/labels/{label}\"")) && !labels.contains("hijack"), "A's label unchanged");
        let accounts = a.get("/accounts").await.text;
        assert!(!accounts.contains("ロック中") && accounts.contains("d@owner.example"));
        a2.get("/").await.expect_status(200);
        assert!(a.get("/account").await.text.contains("owner key"), "A's passkey is still there");
        a.post_form(&format!("/people/import/{staged}"), &[]).await.expect_status(303);
    }
}

/// The second wall (PostgreSQL row-level security): the server runs as the test database's
/// owner, a plain role, so the wall is up and the operator console says nothing; the same
/// database through a superuser turns it off, which the log and the console say.
#[tokio::test]
async fn operators_see_whether_row_level_security_is_on() {
    use crate::support::{superuser_url, Engine, Server};
    for engine in engines() {
        if engine != Engine::Postgres {
            continue;
        }
        let env = env(engine).await;
        let mut op = env.server.operator_client();
        op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.expect_status(303);
        let home = op.get("/").await.expect_status(200);
        assert!(!home.text.contains("row-security-off"), "plain role: no warning");
        assert!(!env.server.log().contains("row-level security"), "{}", env.server.log());

        let su = Server::builder(superuser_url(env.server.database_url())).smtp(&env.sink).start().await;
        let mut op = su.operator_client();
        op.post_form("/login", &[("email", OPERATOR), ("password", PASSWORD)]).await.expect_status(303);
        let home = op.get("/").await.expect_status(200);
        assert!(home.text.contains("id=\"row-security-off\""), "superuser: the console warns");
        assert!(su.log().contains("row-level security (the second wall of tenant isolation) is OFF"), "{}", su.log());
    }
}
