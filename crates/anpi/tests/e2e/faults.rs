//! Delivery faults from a real SMTP peer that misbehaves on purpose (aiosmtpd with
//! `support/python/faulty_smtp.py`): 4xx, 5xx, a connection cut after DATA, a reply slower than
//! `--smtp-timeout-secs`. Every deliverable person gets the message, once or — where the peer
//! may have kept a message it never confirmed — again with the same Message-ID; a refused
//! address is marked failed and not tried again.

use super::common::*;
use crate::support::server::create_operator;
use crate::support::{engines, fresh_database, Server, SmtpSink};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const EACH: usize = 6;
const GROUPS: [&str; 5] = ["ok", "later", "bad", "cut", "slow"];

#[tokio::test]
async fn a_misbehaving_relay_loses_nothing_and_doubles_nothing() {
    for engine in engines() {
        let (url, db) = fresh_database(engine).await;
        let sink = SmtpSink::start_faulty("tempfail-first:later,reject:bad,drop-first:cut,slow-first:slow:3").await;
        let server = Server::builder(&url).smtp(&sink).args(["--smtp-timeout-secs", "1"]).start().await;
        create_operator(&url, OPERATOR, PASSWORD);
        let env = Env { server, sink, _db: db };
        let mut admin = tenant(&env, "faults").await;
        let mut csv = String::new();
        for (i, g) in GROUPS.iter().enumerate() {
            let part = people_csv(EACH, g);
            csv.push_str(if i == 0 { &part } else { part.split_once('\n').map(|(_, rows)| rows).unwrap_or("") });
        }
        import_csv(&mut admin, csv.as_bytes(), "auto").await;
        let title = "障害 安否確認";
        start_incident(&mut admin, title, &[("all", "1")]).await;
        let deliverable = EACH * (GROUPS.len() - 1);
        wait_mails(&env.sink, deliverable, |m| m.subject.contains(title)).await;
        // Time for anything sent twice to show.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
        let mut copies: HashMap<String, usize> = HashMap::new();
        for m in env.sink.messages().into_iter().filter(|m| m.subject.contains(title)) {
            for to in &m.to {
                ids.entry(to.clone()).or_default().insert(m.message_id.clone());
                *copies.entry(to.clone()).or_default() += 1;
            }
        }
        for g in GROUPS {
            let reached = ids.keys().filter(|a| a.starts_with(g)).count();
            let want = if g == "bad" { 0 } else { EACH };
            assert_eq!(reached, want, "{engine}: people in group {g} reached");
        }
        assert!(ids.values().all(|s| s.len() == 1), "{engine}: one Message-ID per person");
        for (to, n) in &copies {
            let most = if to.starts_with("slow") { 2 } else { 1 };
            assert!(*n <= most, "{engine}: {to} got {n} copies");
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(env.server.database_url())).await.unwrap();
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT status, attempts, last_error FROM outbox WHERE kind = 'survey' AND status <> 'sent'").fetch_all(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(rows.len(), EACH, "{engine}: only the refused addresses are not sent: {rows:?}");
        assert!(
            rows.iter().all(|(status, attempts, error)| status == "failed" && *attempts == 1 && error.contains("550")),
            "{engine}: refused once, for good: {rows:?}"
        );
    }
}

/// PostgreSQL stops in the middle of a dispatch and starts again two seconds later: the server
/// reconnects and carries on; every person gets the message, with one Message-ID each.
#[tokio::test]
async fn the_database_restarting_mid_dispatch_loses_nothing() {
    if crate::support::pgcluster::PgCluster::binaries().is_none() {
        eprintln!("SKIPPED: no PostgreSQL server binaries (scripts/test.sh installs them)");
        return;
    }
    let pg = crate::support::pgcluster::PgCluster::start();
    let url = pg.url();
    let sink = SmtpSink::start().await;
    let server = Server::builder(&url).smtp(&sink).start().await;
    create_operator(&url, OPERATOR, PASSWORD);
    let env = Env { server, sink, _db: crate::support::DbGuard::owned_elsewhere(crate::support::Engine::Postgres, &url) };
    let mut admin = tenant(&env, "restart").await;
    const PEOPLE: usize = 600;
    import_csv(&mut admin, people_csv(PEOPLE, "P").as_bytes(), "auto").await;
    let title = "再起動 安否確認";
    start_incident(&mut admin, title, &[("all", "1")]).await;
    wait_mails(&env.sink, 5, |m| m.subject.contains(title)).await;
    pg.down();
    let at_stop = env.sink.messages().into_iter().filter(|m| m.subject.contains(title)).count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.up();
    assert!(at_stop < PEOPLE, "the database stopped too late to test anything ({at_stop} sent)");
    wait_mails(&env.sink, PEOPLE, |m| m.subject.contains(title)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for m in env.sink.messages().into_iter().filter(|m| m.subject.contains(title)) {
        for to in &m.to {
            ids.entry(to.clone()).or_default().insert(m.message_id.clone());
        }
    }
    assert_eq!(ids.len(), PEOPLE, "every person got the message");
    assert!(ids.values().all(|s| s.len() == 1), "one Message-ID per person");
    // The server is still serving: the dashboard answers.
    admin.get("/").await.expect_status(200);
}
