//! Several SMTP relays: one that cannot be reached leaves its share to the others, nothing
//! lost; a relay's connection cap holds.

use super::common::*;
use crate::support::server::create_operator;
use crate::support::{engines, fresh_database, Server, SmtpSink};
use std::collections::{HashMap, HashSet};

const PEOPLE: usize = 120;

/// A loopback URL where nothing listens.
fn dead_relay() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("smtp://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_relay_that_is_down_leaves_its_share_to_the_others_and_connection_caps_hold() {
    for engine in engines() {
        let (url, db) = fresh_database(engine).await;
        let sink = SmtpSink::start().await;
        // Two relays of three are down; the live one allows two connections; eight senders.
        let relays = format!("{},{}?connections=2,{}", dead_relay(), sink.smtp_url(), dead_relay());
        let server = Server::builder(&url).smtp_url(relays).arg("--send-concurrency").arg("8").start().await;
        create_operator(&url, OPERATOR, PASSWORD);
        let env = Env { server, sink, _db: db };
        let mut admin = tenant(&env, "relays").await;
        import_csv(&mut admin, people_csv(PEOPLE, "R").as_bytes(), "auto").await;
        let title = "中継 安否確認";
        start_incident(&mut admin, title, &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, PEOPLE, |m| m.subject.contains(title)).await;
        let mut per_person: HashMap<String, usize> = HashMap::new();
        for m in &mails {
            for to in &m.to {
                *per_person.entry(to.clone()).or_default() += 1;
            }
        }
        assert_eq!(per_person.len(), PEOPLE, "{engine}: everyone reached through the live relay");
        assert!(per_person.values().all(|n| *n == 1), "{engine}: nobody twice");
        // aiosmtpd names each message's connection (X-Peer: the client's address and port).
        let peers: HashSet<String> =
            env.sink.messages().iter().filter(|m| m.subject.contains(title)).filter_map(|m| m.header("X-Peer").map(String::from)).collect();
        assert!(!peers.is_empty() && peers.len() <= 2, "{engine}: at most 2 connections to the capped relay, saw {peers:?}");
    }
}
