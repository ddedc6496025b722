//! Answer links (issue #18 §4): made with a key derived from the master key (a database copy
//! cannot make one: the old stored link key is gone), and refused once their incident has
//! been closed longer than the grace period (`--answer-link-grace-days`, 0 here).

use super::common::*;
use crate::support::engines;

#[tokio::test]
async fn answer_links_expire_after_the_incident_closes() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = env_with(engine, |b| b.args(["--answer-link-grace-days", "0"])).await;
        let mut admin = tenant(&env, "links").await;
        import_csv(&mut admin, people_csv(1, "K").as_bytes(), "auto").await;
        let id = start_incident(&mut admin, "リンクの期限", &[("all", "1")]).await;
        let mail = wait_mail(&env.sink, "answer link", |m| m.subject.contains("リンクの期限")).await;
        let link = mail.links(&env.server.url("/a/")).remove(0);
        let mut phone = env.server.client();
        phone.get(&link).await.expect_status(200);
        phone.post_form_raw(&link, &[("q1", "c1")]).await.expect_status(303);

        // The database holds no link key any more.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(env.server.database_url())).await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instance_secrets WHERE name = 'answer-link'").fetch_one(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(stored, 0);

        admin.post_form(&format!("/incidents/{id}/close"), &[]).await.expect_status(303);
        let gone = phone.get(&link).await.expect_status(410);
        assert!(gone.text.contains("id=\"link-expired\"") && gone.text.contains("有効期限が切れました"), "{}", gone.text);
        assert!(!gone.text.contains("社員 0"), "no personal data after expiry");
        phone.post_form_raw(&link, &[("q1", "c2")]).await.expect_status(410);
    }
}
