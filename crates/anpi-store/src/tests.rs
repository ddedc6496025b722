//! Store tests on both engines: SQLite always, PostgreSQL when ANPI_TEST_DATABASE_URL is set.

use crate::audit::AuditEvent;
use crate::{Engine, NewIncident, Problem, Store, StoreError};
use anpi_core::directory::PersonFields;
use anpi_core::survey::{Answers, Survey};
use anpi_core::target::Target;
use anpi_core::{AreaCode, Role};

pub(crate) async fn stores() -> Vec<(Store, Option<tempdir::TempDir>)> {
    let mut out = Vec::new();
    let dir = tempdir::TempDir::new();
    let s = Store::connect(&format!("sqlite://{}/t.sqlite?mode=rwc", dir.0.display())).await.unwrap();
    s.migrate().await.unwrap();
    s.set_master_keys(crate::MasterKeys::new(crate::MasterKey::generate()));
    out.push((s, Some(dir)));
    match std::env::var("ANPI_TEST_DATABASE_URL") {
        Ok(admin) => {
            let name = format!("anpi_store_{}", &crate::crypto::random_token().to_lowercase().replace(['-', '_'], "")[..12]);
            let admin_store = Store::connect(&admin).await.unwrap();
            // As in production, the store runs as a plain role that owns its database (no
            // superuser, no BYPASSRLS), so row-level security is in force in every test.
            sqlx::raw_sql(TEST_ROLE_SQL).execute(&admin_store.pool).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name} OWNER {TEST_ROLE}")).execute(&admin_store.pool).await.unwrap();
            admin_store.close().await;
            let url = app_url(&admin, &name);
            let s = Store::connect(&url).await.unwrap();
            assert!(s.row_security_enforced(), "the test role {TEST_ROLE} must not be a superuser or BYPASSRLS");
            s.migrate().await.unwrap();
            s.set_master_keys(crate::MasterKeys::new(crate::MasterKey::generate()));
            assert_eq!(s.engine(), Engine::Postgres);
            out.push((s, None));
        }
        Err(_) if std::env::var_os("CI").is_some() => panic!("CI must test PostgreSQL: set ANPI_TEST_DATABASE_URL"),
        Err(_) => eprintln!("ANPI_TEST_DATABASE_URL unset: store tests run on SQLite only"),
    }
    out
}

/// The role the PostgreSQL test databases belong to (created once per cluster, kept).
pub(crate) const TEST_ROLE: &str = "anpi_test_app";
const TEST_ROLE_SQL: &str = "DO $$ BEGIN \
    CREATE ROLE anpi_test_app LOGIN PASSWORD 'anpi_test_app' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$";

/// `admin` (a `postgres://` URL) with the test role as user and `db` as database.
fn app_url(admin: &str, db: &str) -> String {
    let (scheme, rest) = admin.split_once("://").expect("bad ANPI_TEST_DATABASE_URL");
    let (rest, query) = rest.split_once('?').map(|(r, q)| (r, format!("?{q}"))).unwrap_or((rest, String::new()));
    let host = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = host.split('/').next().unwrap_or(host);
    format!("{scheme}://{TEST_ROLE}:{TEST_ROLE}@{host}/{db}{query}")
}

mod tempdir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> TempDir {
            let p = std::env::temp_dir().join(format!("anpi-store-{}", crate::crypto::random_token()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn person(no: &str, dept: &str, site: &str, email: &str) -> anpi_core::directory::PersonInput {
    PersonFields { employee_no: no.into(), name: format!("人{no}"), emails: email.into(), department: dept.into(), site: site.into(), ..Default::default() }
        .validate()
        .unwrap()
}

/// A drill to `target` with the default safety survey and no reminders.
pub(crate) fn drill(title: &str, target: Target) -> NewIncident {
    NewIncident {
        title: title.into(),
        message: String::new(),
        survey: Survey::default_safety(),
        target,
        drill: true,
        reminder_interval_min: 0,
        reminder_count: 0,
        started_by: None,
        within: None,
        dispatch_id: None,
        label_id: None,
    }
}

/// What a database writer does to hide an edit: changes entry `seq`'s address and recomputes
/// every hash of the tenant's chain, and its head, so that links and hashes agree again.
pub(crate) async fn rewrite_entry_ip(s: &Store, t: &crate::TenantScope, seq: i64, ip: &str) {
    use crate::audit::{entry_hash, ChainRow};
    let rows: Vec<ChainRow> =
        sqlx::query_as("SELECT seq, at, actor, action, target, outcome, ip, detail, prev_hash, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
            .bind(t.tenant_id())
            .fetch_all(&mut *s.system().await.unwrap())
            .await
            .unwrap();
    let mut prev = String::new();
    for mut r in rows {
        if r.seq == seq {
            r.ip = ip.into();
        }
        r.prev_hash = prev.clone();
        r.hash = entry_hash(t.tenant_id(), &r);
        sqlx::query("UPDATE audit_log SET ip = $1, prev_hash = $2, hash = $3 WHERE tenant_id = $4 AND seq = $5")
            .bind(&r.ip)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .bind(t.tenant_id())
            .bind(r.seq)
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        prev = r.hash;
    }
    sqlx::query("UPDATE audit_heads SET hash = $1 WHERE tenant_id = $2")
        .bind(&prev)
        .bind(t.tenant_id())
        .execute(&mut *s.system().await.unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn whole_loop_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let a = s.create_tenant("acme", "ACME", now).await.unwrap();
        let b = s.create_tenant("beta", "Beta", now).await.unwrap();
        assert!(matches!(s.create_tenant("acme", "again", now).await, Err(StoreError::Conflict(Problem::TenantCodeTaken(c))) if c == "acme"));
        s.create_site(&a, "東京本社", &AreaCode::parse("13101").unwrap()).await.unwrap();
        s.save_person(&a, None, &person("1", "本社/総務部", "東京本社", "one@example.jp"), &AuditEvent::system("test"), now).await.unwrap();
        s.save_person(&a, None, &person("2", "本社/営業部", "", "two@example.jp;two@b.example.jp"), &AuditEvent::system("test"), now).await.unwrap();
        s.save_person(&b, None, &person("1", "営業", "", "b1@example.jp"), &AuditEvent::system("test"), now).await.unwrap();
        assert!(
            matches!(s.save_person(&a, None, &person("1", "", "", ""), &AuditEvent::system("test"), now).await, Err(StoreError::Conflict(Problem::EmployeeNoInUse(n))) if n == "1"),
            "duplicate employee number"
        );
        assert!(
            matches!(s.save_person(&a, None, &person("9", "", "大阪", ""), &AuditEvent::system("test"), now).await, Err(StoreError::Invalid(Problem::UnknownSite(n))) if n == "大阪"),
            "unknown site"
        );
        let people = s.people(&a).await.unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[1].input.emails.len(), 2);
        let depts = s.departments(&a).await.unwrap();
        assert_eq!(depts.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(), ["本社", "本社/営業部", "本社/総務部"]);
        let honsha = depts[0].id;

        // Import is all-or-nothing.
        let bad = vec![person("3", "", "", ""), person("4", "", "存在しない", "")];
        assert!(
            matches!(s.import_people(&a, &bad, &AuditEvent::system("test"), now).await, Err(StoreError::Invalid(Problem::UnknownSite(n))) if n == "存在しない")
        );
        assert_eq!(s.people(&a).await.unwrap().len(), 2);

        let acc = s.create_account(&a, "Admin@Example.jp", "管理者", Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now).await.unwrap();
        assert_eq!(s.account_login("acme", "admin@example.jp", "long enough pass", now).await.unwrap().map(|x| x.1.id), Some(acc));
        assert!(s.account_login("beta", "admin@example.jp", "long enough pass", now).await.unwrap().is_none());
        assert!(s.account_login("acme", "admin@example.jp", "wrong", now).await.unwrap().is_none());
        assert!(!s.account(&a, acc).await.unwrap().locked, "one failure does not lock");
        s.account_login("acme", "admin@example.jp", "long enough pass", now).await.unwrap().expect("a success resets the count");

        // Lockout at the tenant's threshold; the right password then fails too; an admin unlocks.
        s.set_security_policy(&a, &crate::SecurityPolicy { lockout_threshold: 3, ..Default::default() }, &AuditEvent::system("test"), 0).await.unwrap();
        for _ in 0..3 {
            assert!(s.account_login("acme", "admin@example.jp", "wrong", now).await.unwrap().is_none());
        }
        assert!(s.account(&a, acc).await.unwrap().locked);
        let notice = s.claim_outbox(&now, 100, 60_000).await.unwrap();
        assert_eq!(
            notice.iter().map(|c| (c.to.clone(), c.subject.contains("locked"))).collect::<Vec<_>>(),
            [(vec!["admin@example.jp".to_string()], true)],
            "the owner is told"
        );
        s.record_outbox(&[(notice[0].id, crate::Delivery::Sent)], now).await.unwrap();
        let locked = s.audit_entries(&a, &crate::audit::LogFilter { action: "account_locked".into(), ..Default::default() }, 10).await.unwrap();
        assert_eq!(locked.len(), 1, "recorded once");
        assert!(s.account_login("acme", "admin@example.jp", "long enough pass", now).await.unwrap().is_none(), "locked");
        assert!(s.unlock_account(&b, acc, &AuditEvent::system("test"), 0).await.is_err(), "another tenant cannot unlock");
        s.unlock_account(&a, acc, &AuditEvent::system("test"), 0).await.unwrap();
        assert!(s.account_login("acme", "admin@example.jp", "long enough pass", now).await.unwrap().is_some());

        // TOTP: each code once; recovery codes once; other tenants cannot use them.
        let secret = crate::mfa::new_totp_secret();
        let code = |t: i64| crate::mfa::totp_code(&crate::mfa::unbase32(&secret).unwrap(), t / 30_000);
        assert!(matches!(s.enable_totp(&a, acc, &secret, "000000x", &AuditEvent::system("test"), now).await, Err(StoreError::Invalid(Problem::CodeMismatch))));
        let codes = s.enable_totp(&a, acc, &secret, &code(now), &AuditEvent::system("test"), now).await.unwrap();
        assert_eq!(codes.len(), 10);
        assert!(!s.verify_second_factor(&a, acc, &code(now), now).await.unwrap(), "the enrolment code is spent");
        let later = now + 60_000;
        assert!(s.verify_second_factor(&a, acc, &code(later), later).await.unwrap());
        assert!(!s.verify_second_factor(&a, acc, &code(later), later).await.unwrap(), "replayed code");
        assert!(!s.verify_second_factor(&b, acc, &codes[0], later).await.unwrap(), "another tenant");
        assert!(s.verify_second_factor(&a, acc, &codes[0].to_lowercase(), later).await.unwrap());
        assert!(!s.verify_second_factor(&a, acc, &codes[0], later).await.unwrap(), "recovery code used");
        assert_eq!(s.recovery_codes_left(&a, acc).await.unwrap(), 9);
        assert!(s.account(&a, acc).await.unwrap().mfa);

        let new = NewIncident {
            title: "地震".into(),
            message: "安否を回答してください".into(),
            survey: Survey::default_safety(),
            target: Target { departments: vec![honsha], ..Default::default() },
            drill: true,
            reminder_interval_min: 10,
            reminder_count: 2,
            started_by: Some(acc),
            within: None,
            dispatch_id: None,
            label_id: None,
        };
        let (inc, n) = s.start_incident(&a, &new, &AuditEvent::system("test"), now).await.unwrap();
        assert_eq!(n, 2);
        assert!(s.incident(&b, inc).await.is_err(), "other tenant cannot see it");
        let claimed = s.claim_outbox(&now, 100, 60_000).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let mut to: Vec<String> = claimed.iter().flat_map(|c| c.to.clone()).collect();
        to.sort();
        assert_eq!(to, ["one@example.jp", "two@b.example.jp", "two@example.jp"], "addresses decrypted for sending");
        assert!(s.claim_outbox(&now, 100, 60_000).await.unwrap().is_empty(), "leased rows are not claimed twice");
        assert_eq!(s.claim_outbox(&(now + 61_000), 100, 60_000).await.unwrap().len(), 2, "expired lease is claimed again");
        let mail = claimed[0].survey.clone().unwrap();
        assert!(mail.drill);
        s.record_outbox(&[(claimed[0].id, crate::Delivery::Sent)], now).await.unwrap();
        s.record_outbox(&[(claimed[1].id, crate::Delivery::Sent)], now).await.unwrap();

        let ctx = s.answer_context(&mail.answer_token).await.unwrap().unwrap();
        assert_eq!(ctx.scope, a);
        assert!(s.answer_context("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await.unwrap().is_none());
        let mut ans = Answers::new();
        ans.insert("q1".into(), "c1".into());
        assert!(s.save_answer(&b, ctx.recipient_id, &ans, now).await.is_err(), "foreign scope cannot answer");
        assert_eq!(s.save_answer(&a, ctx.recipient_id, &ans, now + 1).await.unwrap(), inc);
        let dash = s.dashboard(&a, inc, true).await.unwrap();
        assert_eq!(dash.iter().filter(|r| r.answered_at.is_some()).count(), 1);
        assert!(dash.iter().all(|r| r.delivery == "sent"));
        assert!(s.dashboard(&b, inc, true).await.unwrap().is_empty());

        // Reminders: one unanswered person, due after 10 minutes, counted once.
        assert_eq!(s.queue_due_reminders(now + 5 * 60_000).await.unwrap(), 0);
        assert_eq!(s.queue_due_reminders(now + 10 * 60_000).await.unwrap(), 1);
        assert_eq!(s.queue_due_reminders(now + 11 * 60_000).await.unwrap(), 0);
        assert_eq!(s.resend_unanswered(&crate::IncidentAccess::everything(&a), inc, None, &AuditEvent::system("test"), now).await.unwrap(), 1);
        assert!(s.resend_unanswered(&crate::IncidentAccess::everything(&b), inc, None, &AuditEvent::system("test"), now).await.is_err());
        let list = s.incidents(&crate::IncidentAccess::everything(&a)).await.unwrap();
        assert_eq!((list[0].recipients, list[0].answered), (2, 1));
        s.close_incident(&crate::IncidentAccess::everything(&a), inc, &AuditEvent::system("test"), now).await.unwrap();
        assert!(s.save_answer(&a, ctx.recipient_id, &ans, now).await.is_err(), "closed incidents take no answers");
        let counts = s.outbox_counts().await.unwrap();
        assert!(counts.iter().any(|(st, n)| st == "cancelled" && *n == 2), "{counts:?}");

        let summaries = s.tenant_summaries().await.unwrap();
        assert_eq!(summaries[0].people, 2);
    }
}

#[tokio::test]
async fn feed_state_on_every_engine() {
    for (s, _guard) in stores().await {
        let url = "https://example.jp/feed.xml";
        assert_eq!(s.feed_state(url).await.unwrap(), None);
        s.record_feed_failure(url, "HTTP 500", 10, 20, 0).await.unwrap();
        s.record_feed_failure(url, "timeout", 30, 50, 1).await.unwrap();
        let st = s.feed_state(url).await.unwrap().unwrap();
        assert_eq!((st.failures, st.last_error.as_str(), st.next_poll_at, st.last_ok_at), (2, "timeout", 50, None));
        s.record_feed_success(url, "\"e1\"", "Mon, 01 Jan 2024 07:10:20 GMT", 60, 120, 3).await.unwrap();
        s.record_feed_success(url, "\"e1\"", "Mon, 01 Jan 2024 07:10:20 GMT", 120, 180, 2).await.unwrap();
        let st = s.feed_state(url).await.unwrap().unwrap();
        assert_eq!((st.failures, st.last_error.as_str(), st.etag.as_str(), st.entries_seen), (0, "", "\"e1\"", 6));
        assert_eq!((st.last_polled_at, st.last_ok_at, st.next_poll_at), (Some(120), Some(120), 180));
        s.record_feed_failure(url, "HTTP 503", 200, 300, 0).await.unwrap();
        let st = s.feed_state(url).await.unwrap().unwrap();
        assert_eq!((st.failures, st.etag.as_str(), st.last_ok_at), (1, "\"e1\"", Some(120)), "validators kept");
        assert_eq!(s.feeds().await.unwrap(), vec![st]);

        let entry = "https://example.jp/data/a.xml";
        assert!(!s.feed_entry_known(entry).await.unwrap());
        s.mark_feed_entry(entry, None, 10).await.unwrap();
        s.mark_feed_entry(entry, Some(7), 20).await.unwrap();
        assert!(s.feed_entry_known(entry).await.unwrap());
    }
}

#[tokio::test]
async fn audit_chain_detects_edits_and_removals_on_every_engine() {
    use crate::audit::{Actor, AuditEvent, LogFilter, LogKind};
    for (s, _dir) in stores().await {
        let now = 1_700_000_000_000;
        let a = s.create_tenant("audited", "Audited", now).await.unwrap();
        let b = s.create_tenant("other", "Other", now).await.unwrap();
        let ev = |action: &'static str, n: i64| AuditEvent {
            actor: Actor::Account(n),
            action,
            target: format!("t{n}"),
            outcome: "ok",
            ip: "192.0.2.1",
            detail: String::new(),
        };
        for i in 0..5 {
            s.audit(Some(&a), &ev("sign_in", i), now + i * 86_400_000).await.unwrap();
        }
        s.audit(Some(&b), &ev("sign_in", 9), now).await.unwrap();
        s.audit(None, &ev("tenant_created", 1), now).await.unwrap();
        s.audit_failed_sign_in("audited", "x@y.example", "192.0.2.9", "wrong password", now + 5 * 86_400_000).await.unwrap();
        s.audit_failed_sign_in("nosuch", "x@y.example", "192.0.2.9", "wrong password", now).await.unwrap();
        let ok = |r: &[crate::audit::ChainReport]| r.iter().all(|c| c.problems.is_empty());
        let reports = s.verify_audit().await.unwrap();
        assert!(ok(&reports), "{reports:?}");
        assert_eq!(reports.iter().map(|r| r.entries).sum::<i64>(), 8);
        let failed = LogFilter { action: "sign_in_failed".into(), ..Default::default() };
        assert_eq!(s.audit_entries(&a, &failed, 10).await.unwrap().len(), 1);
        assert_eq!(
            s.audit_entries(&a, &LogFilter { kind: Some(LogKind::Audit), ..Default::default() }, 10).await.unwrap().len(),
            0,
            "sign-ins are their own kind"
        );
        assert_eq!(s.audit_entries(&b, &LogFilter::default(), 10).await.unwrap().len(), 1, "tenants see only their own");
        let page1 = s.audit_entries(&a, &LogFilter::default(), 4).await.unwrap();
        let page2 = s.audit_entries(&a, &LogFilter { before_id: page1.last().map(|e| e.id), ..Default::default() }, 4).await.unwrap();
        assert_eq!((page1.len(), page2.len()), (4, 2), "pages of four, newest first");
        assert!(page1[0].at > page2[0].at);
        let window = LogFilter { from: Some(now + 86_400_000), to: Some(now + 3 * 86_400_000), ..Default::default() };
        assert_eq!(s.audit_entries(&a, &window, 10).await.unwrap().len(), 2, "days 1 and 2");
        let last = s.last_sign_ins(&a).await.unwrap();
        assert_eq!(last.len(), 5, "one row per account");
        assert!(last.iter().all(|l| l.ip == "192.0.2.1"));

        // An edited entry, a removed one in the middle, one removed at the end: all found.
        sqlx::query("UPDATE audit_log SET ip = '203.0.113.1' WHERE tenant_id = $1 AND seq = 2")
            .bind(a.tenant_id())
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        let r = s.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("entry 2 was changed"))), "{r:?}");
        sqlx::query("UPDATE audit_log SET ip = '192.0.2.1' WHERE tenant_id = $1 AND seq = 2")
            .bind(a.tenant_id())
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        assert!(ok(&s.verify_audit().await.unwrap()));
        sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 6").bind(a.tenant_id()).execute(&mut *s.system().await.unwrap()).await.unwrap();
        let r = s.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("removed or added at the end"))), "{r:?}");
        sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 3").bind(a.tenant_id()).execute(&mut *s.system().await.unwrap()).await.unwrap();
        let r = s.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("missing"))), "{r:?}");

        // Retention: a purge keeps the rest verifiable from its anchor.
        let (s2, _d2) = stores().await.remove(0);
        let t = s2.create_tenant("kept", "Kept", now).await.unwrap();
        for i in 0..4 {
            s2.audit(Some(&t), &ev("sign_in", i), now + i * 200 * 86_400_000).await.unwrap();
        }
        s2.audit(Some(&t), &ev("incident_viewed", 1), now).await.unwrap();
        s2.set_audit_retention(&t, LogKind::SignIn, 365, &AuditEvent::system("retention_changed"), now + 800 * 86_400_000).await.unwrap();
        s2.set_audit_retention(&t, LogKind::Usage, 3650, &AuditEvent::system("retention_changed"), now + 800 * 86_400_000).await.unwrap();
        assert!(s2.set_audit_retention(&t, LogKind::Audit, 1, &AuditEvent::system("retention_changed"), now).await.is_err());
        assert_eq!(s2.checkpoint_audit(now + 700 * 86_400_000).await.unwrap(), 3, "the sign-in, usage and audit chains are signed");
        let purged = s2.purge_audit(now + 800 * 86_400_000).await.unwrap();
        assert_eq!(purged, 3, "sign-ins older than 365 days (days 0, 200, 400 of 0–600, at day 800); the usage entry is kept for 10 years");
        let r = s2.verify_audit().await.unwrap();
        let signin = r.iter().find(|c| c.kind == LogKind::SignIn).unwrap();
        assert!(ok(&r) && signin.entries == 1 && signin.checkpoints == 2, "the anchor's checkpoint carries over: {r:?}");
    }
}

#[tokio::test]
async fn signed_checkpoints_catch_a_rewritten_chain_on_every_engine() {
    for (s, _dir) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("signed", "Signed", now).await.unwrap();
        for i in 0..4 {
            s.audit(Some(&t), &AuditEvent { ip: "192.0.2.1", ..AuditEvent::system("export") }, now + i).await.unwrap();
        }
        assert_eq!(s.checkpoint_audit(now + 10).await.unwrap(), 1);
        assert_eq!(s.checkpoint_audit(now + 20).await.unwrap(), 0, "nothing new to sign");
        let clean = |r: &[crate::audit::ChainReport]| r.iter().all(|c| c.problems.is_empty());
        assert!(clean(&s.verify_audit().await.unwrap()));

        // Someone with write access rewrites entry 2 and recomputes every hash and the head:
        // the hash chain agrees again, but the signed checkpoint at entry 4 does not.
        rewrite_entry_ip(&s, &t, 2, "203.0.113.66").await;
        let r = s.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("entry 4 differs from its signed checkpoint"))), "{r:?}");

        // Cutting the end off and moving the head back is caught too.
        sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 4").bind(t.tenant_id()).execute(&mut *s.system().await.unwrap()).await.unwrap();
        let h3: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = 3")
            .bind(t.tenant_id())
            .fetch_one(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        sqlx::query("UPDATE audit_heads SET seq = 3, hash = $1 WHERE tenant_id = $2")
            .bind(&h3)
            .bind(t.tenant_id())
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        let r = s.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("records entry 4 but the chain ends at 3"))), "{r:?}");

        // A forged checkpoint (signed by another key) is refused; after a master key rotation the
        // checkpoints are re-signed and verify under the new key alone.
        let (s2, _d2) = stores().await.remove(0);
        let t2 = s2.create_tenant("rotated", "Rotated", now).await.unwrap();
        s2.audit(Some(&t2), &AuditEvent::system("export"), now).await.unwrap();
        s2.checkpoint_audit(now).await.unwrap();
        let new = crate::MasterKey::generate();
        s2.rewrap_tenant_keys(&new).await.unwrap();
        s2.set_master_keys(crate::MasterKeys::new(new));
        let r = s2.verify_audit().await.unwrap();
        assert!(clean(&r) && r.iter().map(|c| c.checkpoints).sum::<i64>() == 1, "{r:?}");
        s2.set_master_keys(crate::MasterKeys::new(crate::MasterKey::generate()));
        let r = s2.verify_audit().await.unwrap();
        assert!(r.iter().any(|c| c.problems.iter().any(|p| p.contains("unknown key"))), "{r:?}");
    }
}

#[tokio::test]
async fn a_change_and_its_audit_entry_commit_together_on_every_engine() {
    use crate::audit::Actor;
    for (s, _dir) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("atomic", "Atomic", now).await.unwrap();
        let by = |action: &'static str| AuditEvent { actor: Actor::Account(7), ip: "192.0.2.7", ..AuditEvent::system(action) };
        let id = s.save_person(&t, None, &person("1", "総務部", "", "a@x.example"), &by("person_created"), now).await.unwrap();
        let last = s.audit_entries(&t, &Default::default(), 1).await.unwrap().remove(0);
        assert_eq!((last.action.as_str(), last.target.clone(), last.actor.as_str()), ("person_created", format!("person:{id}"), "account:7"));

        // The audit log cannot be written: every change fails and leaves nothing behind.
        sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away").execute(&mut *s.system().await.unwrap()).await.unwrap();
        assert!(s.delete_person(&t, id, &by("person_deleted"), now).await.is_err());
        assert!(s.set_person_disabled(&t, id, true, &by("person_disabled"), now).await.is_err());
        let new = drill("訓練", Target { all: true, ..Default::default() });
        assert!(s.start_incident(&t, &new, &by("incident_started"), now).await.is_err());
        assert!(s.create_account(&t, "b@x.example", "B", Role::Member, None, &by("account_created"), now).await.is_err());
        sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log").execute(&mut *s.system().await.unwrap()).await.unwrap();
        let p = s.person(&t, id).await.unwrap();
        assert!(!p.disabled, "the person is neither deleted nor disabled");
        assert!(s.incidents(&crate::IncidentAccess::everything(&t)).await.unwrap().is_empty(), "no incident");
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(queued, 0, "no message queued");
        assert_eq!(s.accounts(&t).await.unwrap().len(), 0, "no account");

        // Written again: the change goes through and the chain is whole.
        s.delete_person(&t, id, &by("person_deleted"), now).await.unwrap();
        assert_eq!(s.audit_entries(&t, &Default::default(), 10).await.unwrap().len(), 2);
        assert!(s.verify_audit().await.unwrap().iter().all(|r| r.problems.is_empty()));
    }
}

#[tokio::test]
async fn passwords_refuse_common_and_context_words_on_every_engine() {
    use anpi_core::password::PasswordProblem;
    fn refused(r: crate::Result<impl std::fmt::Debug>, what: &str) -> Problem {
        match r {
            Err(StoreError::Invalid(p)) => p,
            other => panic!("{what}: expected Invalid, got {other:?}"),
        }
    }
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("sakura", "Sakura Logistics 株式会社", now).await.unwrap();
        // Creation: common list (with variations), the service name, tenant code and name, email.
        let m = refused(
            s.create_account(&t, "taro.yamada@hq.example", "山田 太郎", Role::Admin, Some("p@ssw0rd1234567"), &AuditEvent::system("test"), now).await,
            "common",
        );
        assert_eq!(m, Problem::Password(PasswordProblem::Common));
        for pw in [
            "my anpi password is long",
            "welcome to sakura!!",
            "logistics team password",
            "株式会社のながいパスワードです",
            "taro yamada is here now",
            "yamada-yamada-yamada",
        ] {
            let m = refused(s.create_account(&t, "taro.yamada@hq.example", "山田 太郎", Role::Admin, Some(pw), &AuditEvent::system("test"), now).await, pw);
            assert_eq!(m, Problem::Password(PasswordProblem::ContainsContext), "{pw}");
        }
        let id = s
            .create_account(&t, "taro.yamada@hq.example", "山田 太郎", Role::Admin, Some("correct horse battery staple"), &AuditEvent::system("test"), now)
            .await
            .unwrap();
        // Change and reset check the same words (looked up from the tenant and the account).
        let m = refused(s.change_password(&t, id, "correct horse battery staple", "SAKURA shelter check 2026", &AuditEvent::system("test"), 0).await, "change");
        assert_eq!(m, Problem::Password(PasswordProblem::ContainsContext));
        refused(s.change_password(&t, id, "correct horse battery staple", "qwertyuiop123456", &AuditEvent::system("test"), 0).await, "change common");
        let m = refused(
            s.change_password(&t, id, "not the current password", "blue shelter check 2026", &AuditEvent::system("test"), 0).await,
            "wrong current password",
        );
        assert_eq!(m, Problem::WrongCurrentPassword);
        s.change_password(&t, id, "correct horse battery staple", "blue shelter check 2026", &AuditEvent::system("test"), 0).await.unwrap();
        let mut token = String::new();
        assert!(s
            .request_password_reset("sakura", "taro.yamada@hq.example", now, |tok, _| {
                token = tok.to_string();
                ("s".into(), "b".into())
            })
            .await
            .unwrap());
        refused(s.reset_password(&token, "hq.example is my home", &AuditEvent::system("test"), now).await, "reset with email domain");
        s.reset_password(&token, "green shelter check 2027", &AuditEvent::system("test"), now).await.unwrap();
        assert!(s.account_login("sakura", "taro.yamada@hq.example", "green shelter check 2027", now).await.unwrap().is_some());
        // Operators: the service name and their email.
        assert!(matches!(
            s.create_operator("ops@opsteam.example", "opsteam night shift key", now).await,
            Err(StoreError::Invalid(Problem::Password(PasswordProblem::ContainsContext)))
        ));
        assert!(matches!(s.create_operator("ops@opsteam.example", "password1234567890", now).await, Err(StoreError::Invalid(Problem::Password(_)))));
        s.create_operator("ops@opsteam.example", "night shift rotation key", now).await.unwrap();
    }
}

/// Every stored value of every table, as text (SQLite: `quote()` of each column, so blobs show
/// as hex; PostgreSQL: each row cast to text, bytea as `\x…` hex).
async fn dump_all(s: &Store) -> String {
    let mut out = String::new();
    match s.engine() {
        Engine::Sqlite => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&mut *s.system().await.unwrap()).await.unwrap();
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')")).fetch_all(&mut *s.system().await.unwrap()).await.unwrap();
                for c in cols {
                    let vals: Vec<String> = sqlx::query_scalar(&format!("SELECT COALESCE(quote(\"{c}\"), '') FROM \"{t}\""))
                        .fetch_all(&mut *s.system().await.unwrap())
                        .await
                        .unwrap();
                    out.push_str(&vals.join("\n"));
                    out.push('\n');
                }
            }
        }
        Engine::Postgres => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut *s.system().await.unwrap())
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "people"), "{tables:?}");
            for t in tables {
                let vals: Vec<String> = sqlx::query_scalar(&format!("SELECT COALESCE(CAST(x AS TEXT), '') FROM \"{t}\" AS x"))
                    .fetch_all(&mut *s.system().await.unwrap())
                    .await
                    .unwrap();
                out.push_str(&vals.join("\n"));
                out.push('\n');
            }
        }
    }
    out
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn assert_absent(haystack: &str, secrets: &[&str], what: &str) {
    let lower = haystack.to_lowercase();
    for secret in secrets {
        assert!(!haystack.contains(secret), "{what}: plaintext {secret:?} found");
        assert!(!lower.contains(&hex(secret)), "{what}: hex of {secret:?} found");
    }
}

#[tokio::test]
async fn contact_data_is_encrypted_at_rest_on_every_engine() {
    use crate::{MasterKey, MasterKeys};
    for (s, guard) in stores().await {
        let now = 1_700_000_000_000;
        let a = s.create_tenant("acme", "ACME", now).await.unwrap();
        let b = s.create_tenant("beta", "Beta", now).await.unwrap();
        let mut p1 = person("1", "総務", "", "hanako.secret@acme.example;h.s2@acme.example");
        p1.phone = "090-1111-2222".into();
        let id1 = s.save_person(&a, None, &p1, &AuditEvent::system("test"), now).await.unwrap();
        let mut p2 = person("2", "総務", "", "taro.hidden@acme.example");
        p2.phone = "03-3333-4444".into();
        s.import_people(&a, &[p2.clone()], &AuditEvent::system("test"), now).await.unwrap();
        s.save_person(&b, None, &person("1", "", "", "beta.person@beta.example"), &AuditEvent::system("test"), now).await.unwrap();
        let staged = s.stage_import(&a, 1, "社員番号,氏名,メール\n9,staged,staged.upload@acme.example\n", now).await.unwrap();
        s.create_account(&a, "admin@acme.example", "管理者", Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now).await.unwrap();
        s.notify_admins(&a, "notice", "件名", "BODY-MARKER-reset-link-7788", now).await.unwrap();
        let secrets = [
            "hanako.secret@acme.example",
            "h.s2@acme.example",
            "090-1111-2222",
            "taro.hidden@acme.example",
            "03-3333-4444",
            "beta.person@beta.example",
            "staged.upload@acme.example",
            "BODY-MARKER-reset-link-7788",
        ];

        // Read back through the store: plaintext again.
        let people = s.people(&a).await.unwrap();
        assert_eq!(people[0].input.emails, ["hanako.secret@acme.example", "h.s2@acme.example"]);
        assert_eq!(people[0].input.phone, "090-1111-2222");
        assert_eq!(people[1].input.emails, ["taro.hidden@acme.example"]);
        assert_eq!(s.person(&a, id1).await.unwrap().input.phone, "090-1111-2222");
        assert!(s.take_staged_import(&a, staged).await.unwrap().contains("staged.upload@acme.example"));
        let staged = s.stage_import(&a, 1, "9,staged,staged.upload@acme.example\n", now).await.unwrap();
        let system = s.claim_outbox(&now, 10, 60_000).await.unwrap();
        assert_eq!(system.len(), 1);
        assert_eq!(system[0].to, ["admin@acme.example"]);
        assert_eq!(system[0].body, "BODY-MARKER-reset-link-7788");

        // Lookups by email use the keyed hash, within the tenant only.
        assert_eq!(s.person_by_email(&a, " H.S2@Acme.Example ").await.unwrap().map(|p| p.id), Some(id1));
        assert!(s.person_by_email(&b, "hanako.secret@acme.example").await.unwrap().is_none());
        assert!(s.person_by_email(&a, "nobody@acme.example").await.unwrap().is_none());

        // The dump: no plaintext contact data anywhere.
        let dump = dump_all(&s).await;
        assert!(dump.contains("enc2:"), "row-bound ciphertexts are there");
        assert_absent(&dump, &secrets, "table dump");

        // Associated data binds tenant, column and row: a ciphertext moved elsewhere does not
        // open, and the directory shows the value as missing (the rest still loads).
        let (enc_emails, enc_phone): (String, String) =
            sqlx::query_as("SELECT emails, phone FROM people WHERE id = $1").bind(id1).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        let b_id: i64 =
            sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1").bind(b.tenant_id()).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        let b_emails: String =
            sqlx::query_scalar("SELECT emails FROM people WHERE id = $1").bind(b_id).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        sqlx::query("UPDATE people SET emails = $1 WHERE id = $2").bind(&enc_emails).bind(b_id).execute(&mut *s.system().await.unwrap()).await.unwrap();
        let b_people = s.people(&b).await.unwrap();
        assert!(b_people.iter().all(|p| p.input.emails.is_empty()), "another tenant's ciphertext must not decrypt: {:?}", b_people[0].input.emails);
        sqlx::query("UPDATE people SET emails = $1 WHERE id = $2").bind(&b_emails).bind(b_id).execute(&mut *s.system().await.unwrap()).await.unwrap();
        sqlx::query("UPDATE people SET phone = $1 WHERE id = $2").bind(&enc_emails).bind(id1).execute(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(s.person(&a, id1).await.unwrap().input.phone, "", "another column's ciphertext must not decrypt");
        sqlx::query("UPDATE people SET phone = $1 WHERE id = $2").bind(&enc_phone).bind(id1).execute(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(s.person(&a, id1).await.unwrap().input.phone, "090-1111-2222");

        // Master key rotation: re-wrapped, still readable; the old key alone no longer works,
        // nor does a wrong one (with a clear error).
        let old = s.master_keys().unwrap().current().clone();
        let new = MasterKey::generate();
        assert_eq!(s.rewrap_tenant_keys(&new).await.unwrap(), 2);
        let masters: Vec<String> = sqlx::query_scalar("SELECT DISTINCT master_id FROM tenant_keys").fetch_all(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(masters, [new.id().to_string()]);
        assert_eq!(s.people(&a).await.unwrap()[0].input.phone, "090-1111-2222");
        s.set_master_keys(MasterKeys::new(old.clone()));
        let err = s.people(&a).await.unwrap_err().to_string();
        assert!(err.contains("master key") && err.contains(new.id()), "{err}");
        s.set_master_keys(MasterKeys::new(MasterKey::generate()));
        assert!(s.people(&a).await.unwrap_err().to_string().contains("wrong --master-key-file"));
        s.set_master_keys(MasterKeys::new(new.clone()).with_old(old));
        assert_eq!(s.people(&b).await.unwrap()[0].input.emails, ["beta.person@beta.example"]);

        // Tenant key rotation: the old key still decrypts until the rows are re-encrypted.
        let old_kid = KeyRingProbe::kid(&enc_emails);
        let new_kid = s.rotate_tenant_key(&a, &AuditEvent::system("tenant_key_rotated"), now).await.unwrap();
        assert_ne!(old_kid, new_kid);
        assert_eq!(s.people(&a).await.unwrap()[1].input.emails, ["taro.hidden@acme.example"]);
        let mut p3 = person("3", "", "", "new.hire@acme.example");
        p3.phone = "080-5555-6666".into();
        s.save_person(&a, None, &p3, &AuditEvent::system("test"), now).await.unwrap();
        assert_eq!(s.reencrypt_tenant(&a, 1).await.unwrap(), 3, "two people and the staged upload");
        let kids: Vec<String> =
            sqlx::query_scalar("SELECT emails FROM people WHERE tenant_id = $1").bind(a.tenant_id()).fetch_all(&mut *s.system().await.unwrap()).await.unwrap();
        assert!(kids.iter().all(|e| KeyRingProbe::kid(e) == new_kid), "{kids:?}");
        assert_eq!(s.person_by_email(&a, "taro.hidden@acme.example").await.unwrap().map(|p| p.input.employee_no), Some("2".to_string()));
        assert!(s.take_staged_import(&a, staged).await.unwrap().contains("staged.upload@acme.example"));
        assert_eq!(s.people(&b).await.unwrap().len(), 1, "other tenants untouched");

        // Rows written before encryption at rest (a tenant from before migration 0015, not yet
        // sealed) are encrypted at start, and the tenant is sealed.
        sqlx::query("UPDATE tenants SET sealed = 0 WHERE id = $1").bind(a.tenant_id()).execute(&mut *s.system().await.unwrap()).await.unwrap();
        sqlx::query("UPDATE people SET emails = $1, phone = $2 WHERE id = $3")
            .bind("legacy.plain@acme.example")
            .bind("06-7777-8888")
            .bind(id1)
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        assert_eq!(s.encrypt_existing().await.unwrap(), 1);
        assert_eq!(s.encrypt_existing().await.unwrap(), 0);
        let sealed: i64 =
            sqlx::query_scalar("SELECT sealed FROM tenants WHERE id = $1").bind(a.tenant_id()).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(sealed, 1);
        let p = s.person(&a, id1).await.unwrap();
        assert_eq!((p.input.emails.clone(), p.input.phone.as_str()), (vec!["legacy.plain@acme.example".to_string()], "06-7777-8888"));
        assert_eq!(s.person_by_email(&a, "legacy.plain@acme.example").await.unwrap().map(|p| p.id), Some(id1));

        let mut secrets = secrets.to_vec();
        secrets.extend(["new.hire@acme.example", "080-5555-6666", "legacy.plain@acme.example", "06-7777-8888"]);
        assert_absent(&dump_all(&s).await, &secrets, "table dump after rotations");

        // SQLite: the raw database files (WAL included, before and after a checkpoint).
        if let Some(dir) = &guard {
            let raw = |label: &str| {
                let mut bytes = Vec::new();
                for e in std::fs::read_dir(&dir.0).unwrap() {
                    bytes.extend(std::fs::read(e.unwrap().path()).unwrap());
                }
                let text = String::from_utf8_lossy(&bytes).into_owned();
                assert!(text.contains("enc2:"), "{label}: ciphertexts in the file");
                assert_absent(&text, &secrets[..secrets.len() - 2], label);
                text
            };
            raw("database files with WAL");
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *s.system().await.unwrap()).await.unwrap();
            let text = raw("database file after checkpoint");
            assert_absent(&text, &secrets, "database file after checkpoint (legacy rows overwritten)");
        }

        // A rotation whose re-encryption was interrupted is finished by the service's pass.
        let kid3 = s.rotate_tenant_key(&a, &AuditEvent::system("tenant_key_rotated"), now).await.unwrap();
        assert_eq!(s.reencrypt_retired(2).await.unwrap(), 3, "three people of tenant a");
        let kids: Vec<String> =
            sqlx::query_scalar("SELECT emails FROM people WHERE tenant_id = $1").bind(a.tenant_id()).fetch_all(&mut *s.system().await.unwrap()).await.unwrap();
        assert!(kids.iter().all(|e| KeyRingProbe::kid(e) == kid3), "{kids:?}");
        assert_eq!(s.reencrypt_retired(2).await.unwrap(), 0, "nothing left to do");

        // Crypto-shredding: tenant a's contact data can never be read again; b is untouched.
        assert_eq!(s.shred_tenant_keys(&a, &AuditEvent::system("tenant_keys_shredded"), now).await.unwrap(), 3);
        let shredded_people = s.people(&a).await.unwrap();
        assert!(shredded_people.iter().all(|p| p.input.emails.is_empty() && p.input.phone.is_empty()), "undecryptable: shown as missing");
        assert_eq!(s.people(&b).await.unwrap()[0].input.emails, ["beta.person@beta.example"]);
        let shredded = s.audit_entries(&a, &crate::audit::LogFilter { action: "tenant_keys_shredded".into(), ..Default::default() }, 5).await.unwrap();
        assert_eq!(shredded.len(), 1);
    }
}

struct KeyRingProbe;
impl KeyRingProbe {
    fn kid(v: &str) -> i64 {
        crate::keys::KeyRing::key_of(v).unwrap_or(-1)
    }
}

#[tokio::test]
async fn sessions_expire_when_idle_or_too_old_on_every_engine() {
    use crate::{SessionPolicy, SessionStage};
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let min = 60_000;
        let t = s.create_tenant("sess", "Sess", now).await.unwrap();
        let acc =
            s.create_account(&t, "a@sess.example", "A", Role::Admin, Some("correct horse battery staple"), &AuditEvent::system("test"), now).await.unwrap();
        let policy = SessionPolicy::default();
        // Idle timeout (30 minutes by default): activity keeps the session alive.
        let tok = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), now).await.unwrap();
        assert!(s.session(&tok, now + 29 * min, policy).await.unwrap().is_some());
        assert!(s.session(&tok, now + 58 * min, policy).await.unwrap().is_some(), "seen at 29 min: still within 30 min of that");
        assert!(s.session(&tok, now + 89 * min, policy).await.unwrap().is_none(), "idle for 31 minutes");
        assert!(s.session(&tok, now + 90 * min, policy).await.unwrap().is_none(), "and it is gone for good");
        // Absolute timeout (12 hours by default), however active.
        let tok = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), now).await.unwrap();
        let mut at = now;
        while at < now + 12 * 60 * min - 20 * min {
            at += 20 * min;
            assert!(s.session(&tok, at, policy).await.unwrap().is_some(), "active at {}", (at - now) / min);
        }
        assert!(s.session(&tok, now + 12 * 60 * min + 1, policy).await.unwrap().is_none(), "older than 12 hours");
        // The tenant's own timeouts replace the defaults.
        s.set_security_policy(&t, &crate::SecurityPolicy { idle_min: 5, absolute_min: 60, ..Default::default() }, &AuditEvent::system("test"), 0)
            .await
            .unwrap();
        let tok = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), now).await.unwrap();
        assert!(s.session(&tok, now + 6 * min, policy).await.unwrap().is_none(), "tenant idle timeout 5 minutes");
        // A half-way sign-in (second factor pending) lasts ten minutes at most.
        s.set_security_policy(&t, &crate::SecurityPolicy::default(), &AuditEvent::system("test"), 0).await.unwrap();
        let half = s.create_staged_session("account", acc, Some(&t), SessionStage::Mfa, &Default::default(), &AuditEvent::system("test"), now).await.unwrap();
        assert_eq!(s.session(&half, now + 5 * min, policy).await.unwrap().unwrap().stage, SessionStage::Mfa);
        assert!(s.session(&half, now + 11 * min, policy).await.unwrap().is_none(), "half-way sessions end after 10 minutes");
        // Sign-out and disabling end sessions on the server.
        let tok = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), now).await.unwrap();
        s.end_session(&tok).await.unwrap();
        assert!(s.session(&tok, now, policy).await.unwrap().is_none(), "signed out");
        let tok = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), now).await.unwrap();
        s.set_account_disabled(&t, acc, true, &AuditEvent::system("test"), 0).await.unwrap();
        assert!(s.session(&tok, now, policy).await.unwrap().is_none(), "disabled account");
    }
}

#[tokio::test]
async fn client_cert_settings_on_every_engine() {
    const CA: &str = include_str!("../../anpi-core/testdata/clientcert/ca.pem");
    const OTHER_CA: &str = include_str!("../../anpi-core/testdata/clientcert/other-ca.pem");
    const LEAF: &str = include_str!("../../anpi-core/testdata/clientcert/client.pem");
    for (s, _guard) in stores().await {
        let a = s.create_tenant("acme", "ACME", 0).await.unwrap();
        let b = s.create_tenant("beta", "Beta", 0).await.unwrap();
        assert_eq!(s.client_cert_settings(&a).await.unwrap(), crate::ClientCertSettings::default());
        // Nothing to require without a CA; nothing to remove either.
        assert!(matches!(s.set_admin_cert_required(&a, true).await, Err(StoreError::Invalid(Problem::NeedClientCa))));
        s.remove_client_ca(&a).await.unwrap();
        // Only a CA is accepted; what is stored is the canonical PEM.
        assert!(matches!(s.set_client_ca(&a, LEAF).await, Err(StoreError::Invalid(Problem::Other(m))) if m.contains("not a CA certificate")));
        assert!(matches!(s.set_client_ca(&a, "junk").await, Err(StoreError::Invalid(Problem::Other(_)))));
        let ca = s.set_client_ca(&a, &format!("\n  {CA}\n")).await.unwrap();
        assert_eq!(ca.subject, "CN=anpi test client CA,O=anpi test");
        let got = s.client_cert_settings(&a).await.unwrap();
        assert_eq!(got, crate::ClientCertSettings { ca: Some(ca.clone()), admin_required: false });
        s.set_admin_cert_required(&a, true).await.unwrap();
        assert!(s.client_cert_settings(&a).await.unwrap().admin_required);
        // Per tenant.
        assert_eq!(s.client_cert_settings(&b).await.unwrap(), crate::ClientCertSettings::default());
        // The CA stays while it is required; it can be replaced.
        assert!(matches!(s.remove_client_ca(&a).await, Err(StoreError::Invalid(Problem::ClientCertStillRequired))));
        let other = s.set_client_ca(&a, OTHER_CA).await.unwrap();
        assert_eq!(s.client_cert_settings(&a).await.unwrap(), crate::ClientCertSettings { ca: Some(other), admin_required: true });
        // Other security settings leave these alone, and these leave the others alone.
        s.set_allowlists(&a, &crate::Allowlists { console: "10.0.0.0/8".into(), ..Default::default() }, &AuditEvent::system("test"), 0).await.unwrap();
        assert!(s.client_cert_settings(&a).await.unwrap().admin_required);
        assert_eq!(s.allowlists(&a).await.unwrap().console, "10.0.0.0/8");
        s.set_admin_cert_required(&a, false).await.unwrap();
        s.remove_client_ca(&a).await.unwrap();
        assert_eq!(s.client_cert_settings(&a).await.unwrap(), crate::ClientCertSettings::default());
        // A stored CA that no longer reads verifies nothing but keeps the requirement (fails closed).
        s.set_client_ca(&a, CA).await.unwrap();
        s.set_admin_cert_required(&a, true).await.unwrap();
        sqlx::query("UPDATE tenant_security SET client_ca_pem = 'garbage' WHERE tenant_id = $1")
            .bind(a.tenant_id())
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        assert_eq!(s.client_cert_settings(&a).await.unwrap(), crate::ClientCertSettings { ca: None, admin_required: true });
    }
}

mod anchors;
mod answers;
mod fill;
mod rls;
mod sealed;
mod throttle;

/// A large import is written in batches, each with its audit entry, and other writers get the
/// database between batches (SQLite has a single connection: one transaction for the whole
/// file would hold every tenant's writes until it ends).
#[tokio::test]
async fn a_large_import_is_written_in_batches_that_let_others_in_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let a = s.create_tenant("batch", "A", now).await.unwrap();
        let b = s.create_tenant("other", "B", now).await.unwrap();
        let n = crate::directory::IMPORT_BATCH * 8 + 1;
        let rows: Vec<_> = (0..n).map(|i| person(&format!("{i:05}"), "本社/営業部", "", &format!("p{i}@example.jp"))).collect();
        let import = {
            let (s, a) = (s.clone(), a);
            tokio::spawn(async move { s.import_people(&a, &rows, &AuditEvent::system("directory_imported"), now).await })
        };
        // As soon as the first batch is in, another tenant's admin saves a person.
        let batches = |s: Store, a: crate::TenantScope| async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'directory_imported'")
                .bind(a.tenant_id())
                .fetch_one(&mut *s.scoped(&a).await.unwrap())
                .await
                .unwrap()
        };
        while batches(s.clone(), a).await == 0 {
            tokio::task::yield_now().await;
        }
        s.save_person(&b, None, &person("1", "", "", "b@example.jp"), &AuditEvent::system("test"), now).await.unwrap();
        let imported_while_saving = batches(s.clone(), a).await;
        assert_eq!(import.await.unwrap().unwrap(), n);
        assert!(imported_while_saving < 9, "the other tenant's save waited for the whole import ({imported_while_saving} batches were in)");
        assert_eq!(batches(s.clone(), a).await, 9, "one audit entry per batch");
        assert_eq!(s.people(&a).await.unwrap().len(), n);
        let last: String = sqlx::query_scalar("SELECT detail FROM audit_log WHERE tenant_id = $1 AND action = 'directory_imported' ORDER BY seq DESC LIMIT 1")
            .bind(a.tenant_id())
            .fetch_one(&mut *s.scoped(&a).await.unwrap())
            .await
            .unwrap();
        assert_eq!(last, format!("rows {}-{n} of {n}", n));
    }
}
