//! An incident is written in chunks (issue #10): the first commit already queues mail, and a
//! writer that stops half-way leaves a fill that `finish_fills` completes, each person once.

use super::{drill, person, stores};
use crate::audit::AuditEvent;
use anpi_core::target::Target;

#[tokio::test]
async fn an_unfinished_incident_is_finished_once_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("fill", "Fill", now).await.unwrap();
        let ev = AuditEvent::system("test");
        let n = super::super::incidents::FIRST_FILL + 500;
        let people: Vec<_> = (0..n).map(|i| person(&format!("{i}"), "本社", "", &format!("p{i}@fill.example"))).collect();
        s.import_people(&t, &people, &ev, now).await.unwrap();
        let ready = s.outbox_ready();
        let woken = ready.notified();

        let (incident, chosen) = s.start_incident(&t, &drill("地震", Target { all: true, ..Default::default() }), &ev, now).await.unwrap();
        assert_eq!(chosen, n);
        tokio::time::timeout(std::time::Duration::from_secs(1), woken).await.expect("the worker is woken by the first commit");
        let counts = |s: crate::Store| async move {
            let mut c = s.system().await.unwrap();
            let r: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipients WHERE incident_id = $1").bind(incident).fetch_one(&mut *c).await.unwrap();
            let o: i64 =
                sqlx::query_scalar("SELECT COUNT(DISTINCT recipient_id) FROM outbox WHERE incident_id = $1").bind(incident).fetch_one(&mut *c).await.unwrap();
            let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE incident_id = $1").bind(incident).fetch_one(&mut *c).await.unwrap();
            let left: Option<String> = sqlx::query_scalar("SELECT fill_ids FROM incidents WHERE id = $1").bind(incident).fetch_one(&mut *c).await.unwrap();
            (r, o, all, left.is_some())
        };
        assert_eq!(counts(s.clone()).await, (n as i64, n as i64, n as i64, false), "written whole, list dropped");

        // A writer that died after the first chunk: the rest of the rows were never written.
        let mut c = s.system().await.unwrap();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM people WHERE tenant_id = $1 ORDER BY id").bind(t.tenant_id()).fetch_all(&mut *c).await.unwrap();
        let first = super::super::incidents::FIRST_FILL as i64;
        let cut = ids[first as usize];
        sqlx::query("DELETE FROM outbox WHERE incident_id = $1 AND recipient_id IN (SELECT id FROM recipients WHERE incident_id = $1 AND person_id >= $2)")
            .bind(incident)
            .bind(cut)
            .execute(&mut *c)
            .await
            .unwrap();
        sqlx::query("DELETE FROM recipients WHERE incident_id = $1 AND person_id >= $2").bind(incident).bind(cut).execute(&mut *c).await.unwrap();
        sqlx::query("UPDATE incidents SET fill_ids = $2, filled = $3, fill_lease_until = $4 WHERE id = $1")
            .bind(incident)
            .bind(serde_json::to_string(&ids).unwrap())
            .bind(first)
            .bind(now + 60_000)
            .execute(&mut *c)
            .await
            .unwrap();
        drop(c);
        assert_eq!(counts(s.clone()).await, (first, first, first, true));

        assert_eq!(s.finish_fills(now + 30_000).await.unwrap(), 0, "the writer's lease still runs");
        assert_eq!(s.finish_fills(now + 60_000).await.unwrap(), 1);
        assert_eq!(counts(s.clone()).await, (n as i64, n as i64, n as i64, false), "each person once, one message each");
        assert_eq!(s.finish_fills(now + 200_000).await.unwrap(), 0, "nothing left to finish");
        assert_eq!(s.claim_outbox(&(now + 200_000), 10_000, 60_000).await.unwrap().len(), n);
    }
}

#[tokio::test]
async fn an_unknown_outbox_kind_is_failed_not_sent_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("kinds", "Kinds", now).await.unwrap();
        let ev = AuditEvent::system("test");
        s.save_person(&t, None, &person("1", "本社", "", "one@kinds.example"), &ev, now).await.unwrap();
        s.start_incident(&t, &drill("地震", Target { all: true, ..Default::default() }), &ev, now).await.unwrap();
        // A row written by a newer version (or by hand) with a kind this one does not know.
        let mut c = s.system().await.unwrap();
        sqlx::query("UPDATE outbox SET kind = 'carrier-pigeon' WHERE tenant_id = $1").bind(t.tenant_id()).execute(&mut *c).await.unwrap();
        drop(c);
        assert!(s.claim_outbox(&now, 10, 60_000).await.unwrap().is_empty(), "not handed to a sender as some other kind");
        let mut c = s.system().await.unwrap();
        let (status, error): (String, String) =
            sqlx::query_as("SELECT status, last_error FROM outbox WHERE tenant_id = $1").bind(t.tenant_id()).fetch_one(&mut *c).await.unwrap();
        assert_eq!((status.as_str(), error.as_str()), ("failed", "unknown kind carrier-pigeon"));
        drop(c);
        assert!(s.claim_outbox(&(now + 120_000), 10, 60_000).await.unwrap().is_empty(), "and not claimed again");
    }
}
