//! Bounces: every message has its own return path; a delivery status notification (as Postfix
//! writes one) dropped into the bounce Maildir marks that person's address undeliverable — on
//! the dashboard and the people list — and the next incident leaves it out, until the address
//! changes. A notification with a forged return path changes nothing.

use super::common::*;
use crate::support::engines;
use std::time::Duration;

fn dsn(return_path: &str, recipient: &str) -> String {
    format!(
        "Return-Path: <>\r\nDelivered-To: {return_path}\r\nFrom: MAILER-DAEMON@mx.staff.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\nTo: {return_path}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"XYZ\"\r\n\r\n\
--XYZ\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nYour message could not be delivered.\r\n\r\n\
--XYZ\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.staff.example\r\n\r\n\
Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--XYZ--\r\n"
    )
}

async fn wait_page(admin: &mut crate::support::Client, path: &str, needle: &str) -> String {
    for _ in 0..150 {
        let page = admin.get(path).await.expect_status(200);
        if page.text.contains(needle) {
            return page.text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{path} never showed {needle:?}");
}

#[tokio::test]
async fn a_bounce_marks_the_address_and_the_next_incident_leaves_it_out() {
    for engine in engines() {
        let bounces = tempfile::tempdir().unwrap();
        let dir = bounces.path().to_string_lossy().into_owned();
        let env = env_with(engine, |b| b.args(["--bounce-address", "bounces@example.test", "--bounce-maildir", dir.as_str()])).await;
        let mut admin = tenant(&env, "bounce").await;
        import_csv(&mut admin, people_csv(3, "B").as_bytes(), "auto").await;
        let first = start_incident(&mut admin, "一回目 安否確認", &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, 3, |m| m.subject.contains("一回目")).await;
        let paths: std::collections::HashSet<&str> = mails.iter().map(|m| m.from.as_str()).collect();
        assert_eq!(paths.len(), 3, "{engine}: one return path per message: {paths:?}");
        assert!(paths.iter().all(|p| p.starts_with("bounces+") && p.ends_with("@example.test")), "{engine}: {paths:?}");
        let to = |who: &str| mails.iter().find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(who))).unwrap_or_else(|| panic!("{who}'s message"));
        let (to_b0, to_b1) = (to("B0@staff.example"), to("B1@staff.example"));
        // A forged tag for B1 (its message id, a made-up MAC), and the real bounce for B0.
        let b1_id = to_b1.from.split_once('+').and_then(|(_, t)| t.split_once('.')).map(|(id, _)| id).expect("id in the return path");
        let forged = format!("bounces+{b1_id}.0000000000000000@example.test");
        std::fs::write(bounces.path().join("new/1.forged"), dsn(&forged, "B1@staff.example")).unwrap();
        std::fs::write(bounces.path().join("new/2.real"), dsn(&to_b0.from, "B0@staff.example")).unwrap();
        wait_page(&mut admin, &format!("/incidents/{first}"), "宛先不達").await;
        let people = admin.get("/people").await.expect_status(200).text;
        assert_eq!(people.matches("宛先不達 (5.1.1)").count(), 1, "{engine}: only B0 is marked on the people list");
        assert!(std::fs::read_dir(bounces.path().join("new")).unwrap().next().is_none(), "{engine}: both notifications read");

        env.sink.clear();
        let second = start_incident(&mut admin, "二回目 安否確認", &[("all", "1")]).await;
        let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("二回目")).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let to: Vec<String> = env.sink.messages().into_iter().filter(|m| m.subject.contains("二回目")).flat_map(|m| m.to).collect();
        assert_eq!(mails.len(), 2, "{engine}");
        assert!(!to.iter().any(|t| t.eq_ignore_ascii_case("B0@staff.example")), "{engine}: the bounced address is left out: {to:?}");
        wait_page(&mut admin, &format!("/incidents/{second}"), "宛先不達").await;

        // The admin lifts the mark on the person's page: the address is mailed again.
        let people = admin.get("/people").await.expect_status(200).text;
        let at = people.find(">社員 0</a>").expect("B0 on the people list");
        let b0 = people[..at].rsplit_once("/people/").map(|(_, rest)| rest.trim_end_matches('"').to_string()).expect("B0's link");
        let page = admin.get(&format!("/people/{b0}")).await.expect_status(200).text;
        assert!(page.contains("宛先不達 (5.1.1)"), "{engine}: the person's page shows the mark");
        admin.post_form(&format!("/people/{b0}/undeliverable/clear"), &[]).await.expect_status(303);
        assert!(!admin.get("/people").await.expect_status(200).text.contains("宛先不達"), "{engine}: the mark is lifted");
        start_incident(&mut admin, "解除後 安否確認", &[("all", "1")]).await;
        let again = wait_mail(&env.sink, "to the restored address", |m| {
            m.subject.contains("解除後") && m.to.iter().any(|t| t.eq_ignore_ascii_case("B0@staff.example"))
        })
        .await;

        // Bounced again, then a new address clears the mark.
        std::fs::write(bounces.path().join("new/3.again"), dsn(&again.from, "B0@staff.example")).unwrap();
        wait_page(&mut admin, "/people", "宛先不達 (5.1.1)").await;
        let csv = "社員番号,氏名,フリガナ,メールアドレス,部署,自宅地域コード\nB00000,社員 0,シャイン,b0.new@staff.example,本社/総務部,13101\n";
        import_csv(&mut admin, csv.as_bytes(), "auto").await;
        assert!(!admin.get("/people").await.expect_status(200).text.contains("宛先不達"), "{engine}: the mark is gone with the address");
        start_incident(&mut admin, "三回目 安否確認", &[("all", "1")]).await;
        wait_mail(&env.sink, "to the new address", |m| m.subject.contains("三回目") && m.to.iter().any(|t| t.eq_ignore_ascii_case("b0.new@staff.example")))
            .await;
    }
}
