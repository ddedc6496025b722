//! Live dashboards across nodes: two `anpi serve` processes on one PostgreSQL; a dashboard's
//! event stream on node A announces an answer given on node B at once (LISTEN/NOTIFY), not
//! only at the 15-second fallback tick. Without the relay this test times out.

use std::time::Duration;

use super::common::*;
use crate::support::{engines, Engine, Server};

/// Reads the event stream until an `answer` event arrives; false after `limit`.
async fn answer_event_within(resp: reqwest::Response, limit: Duration) -> bool {
    let mut resp = resp;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("event: answer") {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_dashboard_on_one_node_sees_answers_given_on_another() {
    for engine in engines() {
        if engine != Engine::Postgres {
            continue;
        }
        let env = env(engine).await;
        let node_b = Server::builder(env.server.database_url()).smtp(&env.sink).start().await;
        let mut admin = tenant(&env, "live").await;
        import_csv(&mut admin, people_csv(2, "V").as_bytes(), "auto").await;
        let id = start_incident(&mut admin, "地震 (二つのノード)", &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("二つのノード")).await;

        // The dashboard on node A listens; nothing has happened yet.
        let stream = admin.request(reqwest::Method::GET, &format!("/incidents/{id}/events")).send().await.expect("event stream");
        assert_eq!(stream.status(), 200);
        let listening = tokio::spawn(answer_event_within(stream, Duration::from_secs(8)));
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Someone answers through node B (same link, other node).
        let link = mails[0].links(&env.server.url("/a/")).remove(0).replace(env.server.base_url(), node_b.base_url());
        let mut phone = node_b.client();
        phone.post_form_raw(&link, &[("q1", "c1")]).await.expect_status(303);
        assert!(listening.await.unwrap(), "node A's dashboard did not hear of node B's answer within 8 s");
    }
}
