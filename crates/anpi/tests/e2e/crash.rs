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
