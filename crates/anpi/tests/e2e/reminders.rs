//! Automatic reminders: with a 1-minute interval and a count of 1, the person who has not
//! answered gets exactly one reminder after a minute; the one who answered gets none.
//! (Takes about 70 s of wall time; engines run in parallel.)

use super::common::*;
use crate::support::{engines, Engine};
use std::time::Duration;

async fn reminders_on(engine: Engine) {
    let env = env(engine).await;
    let mut admin = tenant(&env, "remind").await;
    import_csv(&mut admin, people_csv(2, "M").as_bytes(), "auto").await;
    let id = start_incident(&mut admin, "リマインド試験", &[("all", "1"), ("reminder_interval", "1"), ("reminder_count", "1")]).await;
    let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("リマインド試験")).await;
    let first = mails.iter().find(|m| m.to.contains(&"M0@staff.example".to_string())).expect("M0's mail");
    let link = first.links(&env.server.url("/a/")).remove(0);
    let mut phone = crate::support::Client::new(env.server.base_url());
    phone.post_form_raw(&link, &[("q1", "c1")]).await.expect_status(303);
    let reminders = wait_mails(&env.sink, 1, |m| m.subject.contains("【再送】リマインド試験")).await;
    assert_eq!(reminders[0].to, vec!["M1@staff.example".to_string()], "only the person who has not answered");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let all: Vec<_> = env.sink.messages().into_iter().filter(|m| m.subject.contains("リマインド試験")).collect();
    assert_eq!(all.len(), 3, "two initial messages and one reminder, no more");
    let dash = admin.get(&format!("/incidents/{id}")).await.expect_status(200);
    assert!(dash.text.contains("1/1"), "the dashboard counts the reminder round");
}

#[tokio::test]
async fn unanswered_people_are_reminded_automatically() {
    // Both engines at once, on one task: the wait is a minute either way.
    match engines().as_slice() {
        [one] => reminders_on(*one).await,
        [a, b] => {
            tokio::join!(reminders_on(*a), reminders_on(*b));
        }
        other => panic!("unexpected engines {}", other.len()),
    }
}
