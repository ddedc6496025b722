//! Crash safety: kill the server (SIGKILL) mid-dispatch and restart it. Every person gets
//! the initial message, and any message sent twice carries the same Message-ID, so each
//! person sees exactly one initial message.

use super::common::*;
use crate::support::engines;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const PEOPLE: usize = 600;

#[tokio::test]
async fn killed_mid_dispatch_every_person_gets_exactly_one_message() {
    for engine in engines() {
        let mut env = env(engine).await;
        let mut admin = tenant(&env, "crash").await;
        import_csv(&mut admin, people_csv(PEOPLE, "C").as_bytes(), "auto").await;
        let title = "停電 安否確認";
        start_incident(&mut admin, title, &[("all", "1")]).await;
        // Kill as soon as the first messages arrive, while most are still queued.
        wait_mails(&env.sink, 5, |m| m.subject.contains(title)).await;
        env.server.kill();
        let at_kill = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).count();
        assert!(at_kill < PEOPLE, "the kill came too late to test anything ({at_kill} sent)");
        env.server.restart().await;
        wait_mails(&env.sink, PEOPLE, |m| m.subject.contains(title)).await;
        // Let stragglers (retries after the lease) arrive before counting.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mails: Vec<_> = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).collect();
        let mut ids_by_person: HashMap<String, HashSet<String>> = HashMap::new();
        for m in &mails {
            assert!(!m.message_id.is_empty());
            for to in &m.to {
                ids_by_person.entry(to.clone()).or_default().insert(m.message_id.clone());
            }
        }
        assert_eq!(ids_by_person.len(), PEOPLE, "every person got the message");
        let doubled: Vec<_> = ids_by_person.iter().filter(|(_, ids)| ids.len() != 1).collect();
        assert!(doubled.is_empty(), "people with more than one distinct initial message: {doubled:?}");
        eprintln!("{engine}: {at_kill} delivered before the kill, {} deliveries in all for {PEOPLE} people", mails.len());
    }
}

/// A stop (SIGTERM) mid-dispatch: the senders finish the messages they hold, the queued ones
/// are handed back unleased, and after a restart every person has exactly one delivery — not
/// one message sent twice, and none waiting for a lease to run out.
#[tokio::test]
async fn stopped_mid_dispatch_hands_back_what_it_had_not_sent() {
    for engine in engines() {
        // A long lease: a row still leased after the stop would hold up the test visibly.
        let mut env = env_with(engine, |b| b.outbox_lease_secs(600)).await;
        let mut admin = tenant(&env, "stop").await;
        import_csv(&mut admin, people_csv(PEOPLE, "S").as_bytes(), "auto").await;
        let title = "停止 安否確認";
        start_incident(&mut admin, title, &[("all", "1")]).await;
        wait_mails(&env.sink, 5, |m| m.subject.contains(title)).await;
        let status = env.server.terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "the server stopped cleanly: {status:?}");
        let at_stop = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).count();
        assert!(at_stop < PEOPLE, "the stop came too late to test anything ({at_stop} sent)");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(env.server.database_url())).await.unwrap();
        let (sent, leased): (i64, i64) = sqlx::query_as("SELECT COALESCE(SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN status = 'pending' AND lease_until > 0 THEN 1 ELSE 0 END), 0) FROM outbox WHERE kind = 'survey'")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(sent as usize, at_stop, "every message the relay accepted is recorded as sent");
        assert_eq!(leased, 0, "nothing is left leased: what was queued was handed back");
        env.server.restart().await;
        wait_mails(&env.sink, PEOPLE, |m| m.subject.contains(title)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mails = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).count();
        assert_eq!(mails, PEOPLE, "exactly one delivery per person after a stop and a restart");
    }
}
