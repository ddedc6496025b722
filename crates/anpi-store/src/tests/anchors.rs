//! The audit chain's start and its signed checkpoints against a database writer: a start moved
//! without a purge, checkpoints deleted with the entries they cover, and a rewrite made between
//! two checkpoint runs (issue #18 §1). Each case passed verification before the fix.

use super::{rewrite_entry_ip, stores};
use crate::audit::AuditEvent;
use crate::Store;

const NOW: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

async fn exec(s: &Store, sql: &str, tenant: i64) {
    sqlx::query(sql).bind(tenant).execute(&mut *s.system().await.unwrap()).await.unwrap();
}

fn problems(r: &[crate::audit::ChainReport]) -> Vec<String> {
    r.iter().flat_map(|c| c.problems.clone()).collect()
}

#[tokio::test]
async fn a_start_moved_without_a_purge_is_caught_on_every_engine() {
    for (s, _guard) in stores().await {
        let t = s.create_tenant("anchor", "Anchor", NOW).await.unwrap();
        for i in 0..6 {
            s.audit(Some(&t), &AuditEvent::system("export"), NOW + i).await.unwrap();
        }
        assert_eq!(s.checkpoint_audit(NOW + 10).await.unwrap(), 1);
        assert!(problems(&s.verify_audit().await.unwrap()).is_empty());

        // Delete entries 1–3 and move the start to entry 3, as a purge would.
        let h3: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = 3")
            .bind(t.tenant_id())
            .fetch_one(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        exec(&s, "DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= 3", t.tenant_id()).await;
        sqlx::query("UPDATE audit_heads SET anchor_seq = 3, anchor_hash = $1 WHERE tenant_id = $2")
            .bind(&h3)
            .bind(t.tenant_id())
            .execute(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        let p = problems(&s.verify_audit().await.unwrap());
        assert!(p.iter().any(|p| p.contains("no retention purge signed that start")), "{p:?}");
        // The hourly job does not sign over it either, and says so.
        s.audit(Some(&t), &AuditEvent::system("export"), NOW + 20).await.unwrap();
        assert_eq!(s.checkpoint_audit(NOW + 30).await.unwrap(), 0);
        assert!(!s.unsigned_chains().await.unwrap().is_empty());

        // Moving the start to the head (everything deleted) is caught the same way.
        let (s2, _g2) = stores().await.remove(0);
        let t2 = s2.create_tenant("anchor2", "Anchor", NOW).await.unwrap();
        for i in 0..3 {
            s2.audit(Some(&t2), &AuditEvent::system("export"), NOW + i).await.unwrap();
        }
        s2.checkpoint_audit(NOW + 10).await.unwrap();
        exec(&s2, "DELETE FROM audit_log WHERE tenant_id = $1", t2.tenant_id()).await;
        exec(&s2, "UPDATE audit_heads SET anchor_seq = seq, anchor_hash = hash WHERE tenant_id = $1", t2.tenant_id()).await;
        let p = problems(&s2.verify_audit().await.unwrap());
        assert!(p.iter().any(|p| p.contains("no retention purge signed that start")), "{p:?}");

        // A real purge signs its anchor: the chain still verifies.
        let (s3, _g3) = stores().await.remove(0);
        let t3 = s3.create_tenant("purged", "Purged", NOW).await.unwrap();
        for i in 0..3 {
            s3.audit(Some(&t3), &AuditEvent::system("export"), NOW + i * 200 * DAY).await.unwrap();
        }
        assert!(s3.purge_audit(NOW + 500 * DAY).await.unwrap() > 0);
        assert!(problems(&s3.verify_audit().await.unwrap()).is_empty());
    }
}

#[tokio::test]
async fn checkpoints_deleted_with_their_entries_show_against_the_copy_outside_on_every_engine() {
    for (s, _guard) in stores().await {
        let log = std::env::temp_dir().join(format!("anpi-checkpoints-{}.jsonl", crate::crypto::random_token()));
        s.set_checkpoint_log(log.clone());
        let t = s.create_tenant("copied", "Copied", NOW).await.unwrap();
        for i in 0..3 {
            s.audit(Some(&t), &AuditEvent::system("export"), NOW + i).await.unwrap();
        }
        s.checkpoint_audit(NOW + 10).await.unwrap();
        for i in 0..3 {
            s.audit(Some(&t), &AuditEvent::system("export"), NOW + 20 + i).await.unwrap();
        }
        s.checkpoint_audit(NOW + 30).await.unwrap();
        let copy = std::fs::read_to_string(&log).unwrap();
        assert_eq!(copy.lines().count(), 2, "{copy}");
        assert!(s.verify_against_checkpoint_log(&copy).await.unwrap().is_empty());

        // The writer removes entries 4–6, the checkpoint at 6 and moves the head back to 3:
        // inside the database everything agrees again.
        exec(&s, "DELETE FROM audit_log WHERE tenant_id = $1 AND seq > 3", t.tenant_id()).await;
        exec(&s, "DELETE FROM audit_checkpoints WHERE tenant_id = $1 AND seq > 3", t.tenant_id()).await;
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
        assert!(problems(&s.verify_audit().await.unwrap()).is_empty(), "undetectable from inside the database");
        let p = s.verify_against_checkpoint_log(&copy).await.unwrap();
        assert!(p.iter().any(|p| p.contains("records entry 6 but the chain ends at 3")), "{p:?}");

        // Deleting only a checkpoint (entries kept) shows too.
        exec(&s, "DELETE FROM audit_checkpoints WHERE tenant_id = $1", t.tenant_id()).await;
        let p = s.verify_against_checkpoint_log(&copy).await.unwrap();
        assert!(p.iter().any(|p| p.contains("checkpoint at entry 3") && p.contains("deleted")), "{p:?}");
        let _ = std::fs::remove_file(&log);
    }
}

/// Entries 4–6 arrive after the checkpoint at 3; before the next run the writer rewrites entry
/// 2 and recomputes every later hash and the head, so links and hashes agree. The next run
/// used to sign that head, vouching for the rewrite; now it checks the checkpoint at 3 first.
#[tokio::test]
async fn a_rewrite_between_checkpoints_is_not_signed_on_every_engine() {
    for (s, _guard) in stores().await {
        let t = s.create_tenant("between", "Between", NOW).await.unwrap();
        for i in 0..3 {
            s.audit(Some(&t), &AuditEvent::system("export"), NOW + i).await.unwrap();
        }
        assert_eq!(s.checkpoint_audit(NOW + 10).await.unwrap(), 1);
        for i in 0..3 {
            s.audit(Some(&t), &AuditEvent { ip: "192.0.2.1", ..AuditEvent::system("export") }, NOW + 20 + i).await.unwrap();
        }
        rewrite_entry_ip(&s, &t, 2, "203.0.113.66").await;

        assert_eq!(s.checkpoint_audit(NOW + 40).await.unwrap(), 0, "the rewritten head must not be signed");
        let refused = s.unsigned_chains().await.unwrap();
        assert!(refused.iter().any(|(_, _, p)| p.iter().any(|p| p.contains("entry 3 differs from its signed checkpoint"))), "{refused:?}");
        let status = s.audit_status(&t).await.unwrap();
        assert!(status.iter().any(|c| !c.problems.is_empty() && !c.full), "the log page shows it: {status:?}");
        let latest: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints WHERE tenant_id = $1")
            .bind(t.tenant_id())
            .fetch_one(&mut *s.system().await.unwrap())
            .await
            .unwrap();
        assert_eq!(latest, 3, "no checkpoint over the rewrite");
    }
}
