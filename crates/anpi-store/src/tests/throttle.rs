//! Sign-in floods and password re-entry (issue #18 §2, §7): throttling is one atomic step per
//! key, keys are short, old state is purged, re-entering a password counts towards the lockout,
//! and a reset link works once however many use it at the same time.

use super::stores;
use crate::audit::AuditEvent;
use crate::{throttle_key, SecurityPolicy, StoreError};
use anpi_core::Role;

const NOW: i64 = 1_700_000_000_000;
const PASSWORD: &str = "long enough pass phrase";

/// Twenty attempts at the same moment under one key: only the five free ones go ahead. With a
/// check-then-count throttle all twenty passed the check before any was counted.
#[tokio::test]
async fn concurrent_attempts_beyond_the_limit_are_refused_on_every_engine() {
    for (s, _guard) in stores().await {
        let keys = vec![throttle_key("ip", "192.0.2.1"), throttle_key("id", "t/someone@example.jp")];
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let (s, keys) = (s.clone(), keys.clone());
                tokio::spawn(async move { s.login_attempt(&keys, NOW).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for a in attempts {
            if a.await.unwrap() == 0 {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "only the free attempts go ahead");
        assert!(s.login_attempt(&keys, NOW + 500).await.unwrap() > 0, "still waiting");
        assert_eq!(s.login_attempt(&keys, NOW + 60_000).await.unwrap(), 0, "after the delay, one more");

        // Old state is purged after a day.
        assert_eq!(s.purge_login_throttle(NOW + 3_600_000).await.unwrap(), 0);
        assert_eq!(s.purge_login_throttle(NOW + 2 * 86_400_000).await.unwrap(), 2);
        // Keys never grow with what a form sends.
        let long = throttle_key("id", &"x".repeat(1 << 20));
        assert_eq!(s.login_attempt(std::slice::from_ref(&long), NOW).await.unwrap(), 0);
        let stored: i64 = sqlx::query_scalar("SELECT MAX(LENGTH(key)) FROM login_throttle").fetch_one(&s.pool).await.unwrap();
        assert!(stored < 80, "key length {stored}");
    }
}

#[tokio::test]
async fn wrong_password_re_entry_counts_towards_the_lockout_on_every_engine() {
    for (s, _guard) in stores().await {
        let t = s.create_tenant("reenter", "Re-enter", NOW).await.unwrap();
        s.set_security_policy(&t, &SecurityPolicy { lockout_threshold: 3, ..Default::default() }, &AuditEvent::system("test"), NOW).await.unwrap();
        let acc = s.create_account(&t, "admin@reenter.example", "管理者", Role::Admin, Some(PASSWORD), &AuditEvent::system("test"), NOW).await.unwrap();
        let session = s.create_session("account", acc, Some(&t), &AuditEvent::system("test"), NOW).await.unwrap();
        assert!(s.reenter_password(&t, acc, PASSWORD, NOW).await.unwrap());
        for i in 0..3 {
            assert!(!s.reenter_password(&t, acc, "not the password", NOW + i).await.unwrap());
        }
        assert!(s.account(&t, acc).await.unwrap().locked, "three wrong re-entries lock the account");
        assert!(s.session(&session, NOW + 10, Default::default()).await.unwrap().is_none(), "and end its sessions");
        assert!(s.account_login("reenter", "admin@reenter.example", PASSWORD, NOW + 20).await.unwrap().is_none(), "locked");
        // Re-entry is throttled like sign-in.
        let mut throttled = false;
        for i in 0..10 {
            if matches!(s.reenter_password(&t, acc, "not the password", NOW + 100 + i).await, Err(StoreError::Throttled(_))) {
                throttled = true;
            }
        }
        assert!(throttled);
    }
}

#[tokio::test]
async fn a_reset_link_works_once_when_used_twice_at_the_same_time_on_every_engine() {
    for (s, _guard) in stores().await {
        let t = s.create_tenant("reset", "Reset", NOW).await.unwrap();
        s.create_account(&t, "user@reset.example", "利用者", Role::Member, None, &AuditEvent::system("test"), NOW).await.unwrap();
        let token = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = token.clone();
        assert!(s
            .request_password_reset("reset", "user@reset.example", NOW, move |tok, _| {
                *keep.lock().unwrap() = tok.to_string();
                ("subject".into(), "body".into())
            })
            .await
            .unwrap());
        let token = token.lock().unwrap().clone();
        let uses: Vec<_> = ["first new pass phrase", "second new pass phrase"]
            .into_iter()
            .map(|pw| {
                let (s, token) = (s.clone(), token.clone());
                tokio::spawn(async move { s.reset_password(&token, pw, &AuditEvent::system("password_reset"), NOW + 1).await })
            })
            .collect();
        let mut ok = 0;
        for u in uses {
            if u.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1, "one use of the link");
    }
}
