//! Group commit of answers (issue #10): answers arriving together share a transaction, yet
//! each caller learns its own outcome, only after the commit.

use super::{drill, person, stores};
use crate::audit::AuditEvent;
use crate::{IncidentAccess, StoreError};
use anpi_core::survey::Answers;
use anpi_core::target::Target;

fn answer(choice: &str) -> Answers {
    [("q1".to_string(), choice.to_string())].into_iter().collect()
}

#[tokio::test]
async fn a_burst_of_answers_is_committed_together_each_with_its_own_outcome_on_every_engine() {
    for (s, _guard) in stores().await {
        let now = 1_700_000_000_000;
        let ev = AuditEvent::system("test");
        let a = s.create_tenant("burst-a", "A", now).await.unwrap();
        let b = s.create_tenant("burst-b", "B", now).await.unwrap();
        let people: Vec<_> = (0..300).map(|i| person(&format!("{i}"), "本社", "", &format!("p{i}@a.example"))).collect();
        s.import_people(&a, &people, &ev, now).await.unwrap();
        s.import_people(&b, &people[..3], &ev, now).await.unwrap();
        let everyone = Target { all: true, ..Default::default() };
        let (open, _) = s.start_incident(&a, &drill("地震", everyone.clone()), &ev, now).await.unwrap();
        let (closed, _) = s.start_incident(&b, &drill("訓練", everyone), &ev, now).await.unwrap();
        s.close_incident(&IncidentAccess::everything(&b), closed, &ev, now).await.unwrap();
        let mut c = s.system().await.unwrap();
        let ours: Vec<i64> = sqlx::query_scalar("SELECT id FROM recipients WHERE incident_id = $1 ORDER BY id").bind(open).fetch_all(&mut *c).await.unwrap();
        let theirs: Vec<i64> = sqlx::query_scalar("SELECT id FROM recipients WHERE incident_id = $1").bind(closed).fetch_all(&mut *c).await.unwrap();
        drop(c);

        // 300 answers at once, one person twice (the later stands), plus refusals in the same
        // batches: another tenant's recipient under our scope, and a closed incident's.
        let mut calls = Vec::new();
        for (i, r) in ours.iter().enumerate() {
            let (s, a, r) = (s.clone(), a, *r);
            calls.push(tokio::spawn(async move { s.save_answer(&a, r, &answer(if i % 2 == 0 { "c1" } else { "c2" }), now + 1).await }));
        }
        let (s2, first) = (s.clone(), ours[0]);
        let twice = tokio::spawn(async move { s2.save_answer(&a, first, &answer("c3"), now + 2).await });
        let (s3, foreign) = (s.clone(), theirs[0]);
        let wrong_tenant = tokio::spawn(async move { s3.save_answer(&a, foreign, &answer("c1"), now).await });
        let (s4, late) = (s.clone(), theirs[1]);
        let after_close = tokio::spawn(async move { s4.save_answer(&b, late, &answer("c1"), now).await });
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), open);
        }
        assert_eq!(twice.await.unwrap().unwrap(), open);
        assert!(matches!(wrong_tenant.await.unwrap(), Err(StoreError::NotFound)), "another tenant's recipient");
        assert!(matches!(after_close.await.unwrap(), Err(StoreError::NotFound)), "a closed incident");

        let board = s.dashboard(&a, open, false).await.unwrap();
        assert_eq!(board.iter().filter(|r| r.answered_at.is_some()).count(), 300, "every confirmed answer is in the database");
        let got = |r: i64| board.iter().find(|row| row.recipient_id == r).and_then(|row| row.answers.as_ref()).and_then(|a| a.get("q1").cloned());
        assert_eq!(got(ours[1]).as_deref(), Some("c2"));
        assert!(matches!(got(ours[0]).as_deref(), Some("c1" | "c3")), "one of the two answers stands, whole");
        // The same figures counted by the database, whole and within a reach of two people.
        let counts = s.dashboard_counts(&a, open, None, 10).await.unwrap();
        let total: usize = counts.by_place.iter().map(|c| c.recipients).sum();
        let answered: usize = counts.by_place.iter().map(|c| c.answered).sum();
        assert_eq!((total, answered, counts.unanswered.len()), (300, 300, 0));
        let c2: usize = counts.by_place.iter().filter(|c| c.answers.as_ref().and_then(|a| a.get("q1")).is_some_and(|v| v == "c2")).map(|c| c.answered).sum();
        assert_eq!(c2, 150);
        let two: std::collections::HashSet<i64> = board.iter().take(2).map(|r| r.person_id).collect();
        let within = s.dashboard_counts(&a, open, Some(&two), 10).await.unwrap();
        assert_eq!(within.by_place.iter().map(|c| c.recipients).sum::<usize>(), 2, "a reach counts only its people");
        assert_eq!(s.dashboard_counts(&b, open, None, 10).await.unwrap().by_place.len(), 0, "another tenant counts nothing");
        let b_counts = s.dashboard_counts(&b, closed, None, 2).await.unwrap();
        assert_eq!(b_counts.unanswered.len(), 2, "the first unanswered, as many as asked");
        let b_board = s.dashboard(&b, closed, false).await.unwrap();
        assert!(b_board.iter().all(|r| r.answered_at.is_none()), "nothing written for the refused answers");
    }
}
