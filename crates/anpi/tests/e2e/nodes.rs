//! Three nodes on one PostgreSQL share a dispatch; one is killed (SIGKILL) in the middle. Every
//! recipient gets the message; a person mailed twice got the same Message-ID both times, and
//! such re-deliveries are at most one claim batch (the killed node's messages in flight).

use super::common::*;
use crate::support::server::create_operator;
use crate::support::{fresh_database, Engine, Server, SmtpSink};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const PEOPLE: usize = 1500;
/// Rows one claim takes (`WorkerConfig::batch`).
const CLAIM_BATCH: usize = 128;

#[tokio::test]
async fn three_nodes_share_a_dispatch_and_survive_losing_one() {
    if !crate::support::engines().contains(&Engine::Postgres) {
        eprintln!("SKIPPED: several nodes need PostgreSQL (ANPI_TEST_DATABASE_URL)");
        return;
    }
    let (url, db) = fresh_database(Engine::Postgres).await;
    let sink = SmtpSink::start().await;
    let first = Server::builder(&url).smtp(&sink).start().await;
    create_operator(&url, OPERATOR, PASSWORD);
    let env = Env { server: first, sink, _db: db };
    let mut others = vec![Server::builder(&url).smtp(&env.sink).start().await, Server::builder(&url).smtp(&env.sink).start().await];
    let mut admin = tenant(&env, "nodes").await;
    import_csv(&mut admin, people_csv(PEOPLE, "N").as_bytes(), "auto").await;
    let title = "三台 安否確認";
    start_incident(&mut admin, title, &[("all", "1")]).await;
    wait_mails(&env.sink, 50, |m| m.subject.contains(title)).await;
    others[0].kill();
    let at_kill = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).count();
    assert!(at_kill < PEOPLE, "the kill came too late to test anything ({at_kill} sent)");
    wait_mails(&env.sink, PEOPLE, |m| m.subject.contains(title)).await;
    // The killed node's leases (3 s in tests) run out and its rows go out from the others.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails: Vec<_> = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).collect();
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for m in &mails {
        for to in &m.to {
            ids.entry(to.clone()).or_default().insert(m.message_id.clone());
            *deliveries.entry(to.clone()).or_default() += 1;
        }
    }
    assert_eq!(ids.len(), PEOPLE, "every recipient got the message");
    assert!(ids.values().all(|s| s.len() == 1), "a second delivery carries the same Message-ID");
    let again: usize = deliveries.values().map(|n| n - 1).sum();
    assert!(again <= CLAIM_BATCH, "re-deliveries ({again}) are at most one claim batch");
    // Every node sent some: the claims spread over all three.
    let peers: HashSet<String> = mails.iter().filter_map(|m| m.header("X-Peer").map(String::from)).collect();
    assert!(peers.len() >= 3, "connections from all three nodes, saw {}", peers.len());
    eprintln!("3 nodes: {at_kill} delivered at the kill, {again} re-deliveries for {PEOPLE} people");
    drop(others);
}
