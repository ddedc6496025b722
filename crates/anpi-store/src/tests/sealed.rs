//! No plaintext fallback (issue #18 §3): in a sealed tenant an address written straight into
//! the database — plaintext, or another row's ciphertext — is never mailed.

use super::{drill, person, stores};
use crate::audit::AuditEvent;
use anpi_core::target::Target;

#[tokio::test]
async fn a_planted_address_is_never_mailed_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let t = s.create_tenant("planted", "Planted", now).await.unwrap();
        let ev = AuditEvent::system("test");
        let victim = s.save_person(&t, None, &person("1", "本社", "", "victim@planted.example"), &ev, now).await.unwrap();
        let other = s.save_person(&t, None, &person("2", "本社", "", "other@planted.example"), &ev, now).await.unwrap();
        // The writer plants a plaintext address for one person and copies the other's ciphertext.
        sqlx::query("UPDATE people SET emails = 'attacker@evil.example' WHERE id = $1").bind(victim).execute(&mut *s.system().await.unwrap()).await.unwrap();
        let theirs: String =
            sqlx::query_scalar("SELECT emails FROM people WHERE id = $1").bind(other).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        let third = s.save_person(&t, None, &person("3", "本社", "", "third@planted.example"), &ev, now).await.unwrap();
        sqlx::query("UPDATE people SET emails = $1 WHERE id = $2").bind(&theirs).bind(third).execute(&mut *s.system().await.unwrap()).await.unwrap();

        let new = drill("地震", Target { all: true, ..Default::default() });
        s.start_incident(&t, &new, &ev, now).await.unwrap();
        let claimed = s.claim_outbox(&now, 10, 60_000).await.unwrap();
        let to: Vec<String> = claimed.iter().flat_map(|c| c.to.clone()).collect();
        assert!(!to.iter().any(|a| a.contains("attacker")), "a planted plaintext address is mailed: {to:?}");
        assert_eq!(to.iter().filter(|a| *a == "other@planted.example").count(), 1, "a copied ciphertext reaches only its own row: {to:?}");
        // The start-up pass does not launder the planted value into ciphertext.
        s.encrypt_existing().await.unwrap();
        let still: String =
            sqlx::query_scalar("SELECT emails FROM people WHERE id = $1").bind(victim).fetch_one(&mut *s.system().await.unwrap()).await.unwrap();
        assert_eq!(still, "attacker@evil.example", "left for an admin to re-enter, never sealed as if it were real");
    }
}
