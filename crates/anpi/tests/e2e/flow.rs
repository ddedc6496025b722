//! The whole safety-confirmation loop over HTTP with a real SMTP peer, on each engine.

use super::common::*;
use crate::support::{engines, extract};
use std::time::Duration;

#[tokio::test]
async fn safety_loop_end_to_end() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = env(engine).await;
        let mut admin = tenant(&env, "acme").await;

        // Organisation and directory: a site, a person by form, more by CSV (UTF-8, Shift_JIS).
        admin.get("/org").await.expect_status(200);
        admin.post_form("/org/sites", &[("name", "東京本社"), ("area_code", "13101")]).await.expect_status(303);
        admin.get("/people/new").await.expect_status(200);
        let r = admin
            .post_form(
                "/people",
                &[
                    ("employee_no", "A001"),
                    ("name", "山田 太郎"),
                    ("emails", "taro@acme.example; taro.home@acme.example"),
                    ("department", "本社/総務部"),
                    ("site", "東京本社"),
                    ("home_area", "13104"),
                    ("language", "ja"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        import_csv(
            &mut admin,
            "社員番号,氏名,メールアドレス,部署,言語\nA002,Jane Smith,jane@acme.example,本社/営業部,en\nA003,佐藤 花子,hanako@acme.example,本社/総務部,ja\n"
                .as_bytes(),
            "auto",
        )
        .await;
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("社員番号,氏名,メールアドレス,部署\nA004,髙橋 一郎,ichiro@acme.example,大阪支社/営業課\n");
        import_csv(&mut admin, &sjis, "shift_jis").await;
        let people = admin.get("/people").await.expect_status(200);
        for name in ["山田 太郎", "Jane Smith", "佐藤 花子", "髙橋 一郎"] {
            assert!(people.text.contains(name), "{name} missing from the directory");
        }
        let export = admin.get("/people/export.csv").await.expect_status(200);
        assert!(export.text.contains("A004,髙橋 一郎"), "{}", export.text);
        assert!(export.text.contains("taro@acme.example;taro.home@acme.example"));

        // Start an incident for 本社 (and its sub-departments): three people, not 大阪.
        let page = admin.get("/incidents/new").await.expect_status(200);
        let honsha = option_value(&page.text, "本社");
        let id = start_incident(&mut admin, "震度6弱 安否確認", &[("department", &honsha), ("drill", "1")]).await;
        let mails = wait_mails(&env.sink, 3, |m| m.subject.contains("震度6弱")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mails_again: Vec<_> = env.sink.messages().into_iter().filter(|m| m.subject.contains("震度6弱")).collect();
        assert_eq!(mails_again.len(), 3, "exactly one message per person");
        assert!(mails.iter().all(|m| m.subject.starts_with("【訓練】") || m.subject.starts_with("[DRILL]")), "drill is marked");
        let taro = mails.iter().find(|m| m.to.contains(&"taro@acme.example".to_string())).expect("taro's mail");
        assert!(taro.to.contains(&"taro.home@acme.example".to_string()), "one message to both addresses");
        let jane = mails.iter().find(|m| m.to.contains(&"jane@acme.example".to_string())).expect("jane's mail");
        assert!(jane.body.contains("Dear Jane Smith"), "English for English speakers: {}", jane.body);
        assert!(!env.sink.messages().iter().any(|m| m.to.contains(&"ichiro@acme.example".to_string()) && m.subject.contains("震度")));

        // Answer from the link: no login, no JavaScript, small page.
        let link = taro.links(&env.server.url("/a/")).into_iter().next().expect("answer link");
        let mut phone = crate::support::Client::new(env.server.base_url());
        let page = phone.get(&link).await.expect_status(200);
        assert!(page.text.len() < 20 * 1024, "answer page is {} bytes", page.text.len());
        assert!(!page.text.contains("<script"), "answer page needs no JavaScript");
        assert!(page.text.contains("震度6弱 安否確認") && page.text.contains("無事"));
        let r = phone.post_form_raw(&link, &[("q1", "c2"), ("q2", "c1"), ("q3", "足を少し切りました")]).await.expect_status(303);
        let saved = phone.get(&r.location().expect("redirect")).await.expect_status(200);
        assert!(saved.text.contains("回答を受け付けました") && saved.text.contains("軽傷"));
        // Change the answer later (the form carries the other current answers, as a browser sends it).
        phone.post_form_raw(&link, &[("q1", "c2"), ("q2", "c1"), ("q3", "足を少し切りました"), ("q1", "c1")]).await.expect_status(303);
        phone.post_form_raw(&link, &[("q1", "c99")]).await.expect_status(400);

        let dash = admin.get(&format!("/incidents/{id}")).await.expect_status(200);
        let answered = extract(&dash.text, "id=\"answered\">", "</div>").expect("answered count");
        assert_eq!(answered.trim(), "1 / 3");
        let csv = admin.get(&format!("/incidents/{id}/answers.csv")).await.expect_status(200);
        let taro_line = csv.text.lines().find(|l| l.starts_with("山田 太郎")).expect("taro in CSV");
        assert!(taro_line.contains("無事") && taro_line.contains("可") && taro_line.contains("足を少し切りました"), "{taro_line}");

        // Live updates: the SSE stream announces the next answer.
        let mut events = admin.request(reqwest::Method::GET, &format!("/incidents/{id}/events")).send().await.expect("events");
        assert_eq!(events.status(), 200);
        let hanako = mails.iter().find(|m| m.to.contains(&"hanako@acme.example".to_string())).expect("hanako's mail");
        let hanako_link = hanako.links(&env.server.url("/a/")).remove(0);
        phone.post_form_raw(&hanako_link, &[("q1", "c4")]).await.expect_status(303);
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let mut seen = String::new();
            while let Ok(Some(chunk)) = events.chunk().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains("event: answer") {
                    return seen;
                }
            }
            seen
        })
        .await
        .expect("an SSE event within 10 s");
        assert!(got.contains("event: answer"));

        // Re-send goes to the one person who has not answered, marked as a reminder.
        admin.get(&format!("/incidents/{id}")).await.expect_status(200);
        admin.post_form(&format!("/incidents/{id}/resend"), &[]).await.expect_status(303);
        let resent = wait_mails(&env.sink, 1, |m| m.subject.contains("【再送】") || m.subject.contains("[Reminder]")).await;
        assert_eq!(resent.len(), 1);
        assert!(resent[0].to.contains(&"jane@acme.example".to_string()));
        assert_eq!(resent[0].links(&env.server.url("/a/")), jane.links(&env.server.url("/a/")), "same answer link");

        // Closing stops answers; bad and foreign tokens get a clear page.
        admin.get(&format!("/incidents/{id}")).await.expect_status(200);
        admin.post_form(&format!("/incidents/{id}/close"), &[]).await.expect_status(303);
        let closed = phone.post_form_raw(&link, &[("q1", "c1")]).await.expect_status(400);
        assert!(closed.text.contains("終了"));
        let mut forged = link.clone();
        forged.pop();
        forged.push(if link.ends_with('A') { 'B' } else { 'A' });
        let bad = phone.get(&forged).await.expect_status(404);
        assert!(bad.text.contains("このリンクは無効です"));
        phone.get(&env.server.url("/a/not-a-token")).await.expect_status(404);

        // Password change ends other sessions; the reset mail flow works for the admin too.
        let mut second = env.server.client();
        login(&mut second, "acme", &admin_email("acme"), PASSWORD).await;
        admin.get("/password").await.expect_status(200);
        admin.post_form("/password", &[("current", PASSWORD), ("new", "password")]).await.expect_status(400);
        admin.post_form("/password", &[("current", PASSWORD), ("new", "a brand new passphrase")]).await.expect_status(303);
        admin.get("/").await.expect_status(200);
        assert_eq!(second.get("/").await.status, 303, "other session ended");
    }
}

#[tokio::test]
async fn roles_are_enforced() {
    for engine in engines() {
        let env = env(engine).await;
        let mut admin = tenant(&env, "roles").await;
        import_csv(&mut admin, people_csv(3, "R").as_bytes(), "auto").await;
        admin.get("/accounts").await.expect_status(200);
        admin.post_form("/accounts", &[("name", "配信 花子"), ("email", "dist@roles.example"), ("role", "distributor")]).await.expect_status(303);
        admin.get("/accounts").await.expect_status(200);
        admin.post_form("/accounts", &[("name", "一般 次郎"), ("email", "member@roles.example"), ("role", "member")]).await.expect_status(303);
        let mut clients = Vec::new();
        for email in ["dist@roles.example", "member@roles.example"] {
            let invite = wait_mail(&env.sink, "invite", |m| m.to.contains(&email.to_string())).await;
            let link = invite.links(&env.server.url("/password/reset/")).remove(0);
            let mut c = env.server.client();
            c.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
            login(&mut c, "roles", email, PASSWORD).await;
            clients.push(c);
        }
        let (mut dist, mut member) = (clients.remove(0), clients.remove(0));
        // Distributor: starts incidents, cannot edit the directory or accounts.
        let id = start_incident(&mut dist, "配信者の訓練", &[("all", "1")]).await;
        dist.get(&format!("/incidents/{id}")).await.expect_status(200);
        dist.get("/people").await.expect_status(200);
        dist.get("/people/new").await.expect_status(403);
        dist.get("/accounts").await.expect_status(403);
        dist.get("/people/export.csv").await.expect_status(403);
        dist.get("/hazards").await.expect_status(200);
        dist.get("/rules").await.expect_status(403);
        dist.get("/rules/new").await.expect_status(403);
        dist.post_form("/rules", &[("name", "x"), ("trigger", "earthquake|intensity:5-")]).await.expect_status(403);
        // Member: nothing but the own password.
        member.get(&format!("/incidents/{id}")).await.expect_status(403);
        member.get("/people").await.expect_status(403);
        member.get("/incidents/new").await.expect_status(403);
        member.get("/hazards").await.expect_status(403);
        member.get("/password").await.expect_status(200);
        // Disabling an account ends its sessions at once.
        let page = admin.get("/accounts").await.expect_status(200);
        let start = page.text.find("dist@roles.example").expect("listed");
        let rest = &page.text[start..];
        let end = rest.find("/disable\"").expect("disable form");
        let acct = &rest[rest[..end].rfind("/accounts/").expect("account id") + "/accounts/".len()..end];
        admin.post_form(&format!("/accounts/{acct}/disable"), &[]).await.expect_status(303);
        assert_eq!(dist.get("/").await.status, 303);
    }
}
