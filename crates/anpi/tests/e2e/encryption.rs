//! Encryption at rest (docs/security.md): contact data entered through the console is not in
//! the database in plaintext, mail still reaches the right addresses, a wrong master key is
//! refused with a clear message, and `anpi keys rotate` re-wraps the tenant keys while the
//! service keeps working.

use super::common::*;
use crate::support::server::{run_cli, run_cli_ok};
use crate::support::{engines, Engine};

const SECRETS: [&str; 4] = ["kaori.private@enc.example", "090-4321-8765", "ken.csv@enc.example", "03-1212-3434"];

/// Every value of every table as text (and, for SQLite, the raw files after a checkpoint).
async fn dump(engine: Engine, url: &str, dir: Option<&std::path::Path>) -> String {
    sqlx::any::install_default_drivers();
    // As the database superuser: row-level security would hide the rows from the service's role.
    let pool = sqlx::AnyPool::connect(&crate::support::superuser_url(url)).await.expect("connect for the dump");
    let mut out = String::new();
    match engine {
        Engine::Sqlite => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.expect("tables");
            for t in tables {
                let cols: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')")).fetch_all(&pool).await.expect("columns");
                for c in cols {
                    let vals: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT COALESCE(quote(\"{c}\"), '') FROM \"{t}\"")).fetch_all(&pool).await.expect("values");
                    out.push_str(&vals.join("\n"));
                }
            }
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await.expect("checkpoint");
            if let Some(dir) = dir {
                for e in std::fs::read_dir(dir).expect("db dir").flatten() {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()));
                }
            }
        }
        Engine::Postgres => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&pool)
            .await
            .expect("tables");
            for t in tables {
                let vals: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT COALESCE(CAST(x AS TEXT), '') FROM \"{t}\" AS x")).fetch_all(&pool).await.expect("rows");
                out.push_str(&vals.join("\n"));
            }
        }
    }
    pool.close().await;
    out
}

#[tokio::test]
async fn contact_data_is_encrypted_at_rest() {
    for engine in engines() {
        eprintln!("== engine {engine}");
        let env = env(engine).await;
        let url = env.server.database_url().to_string();
        let mut admin = tenant(&env, "enc").await;
        admin
            .post_form("/people", &[("employee_no", "E1"), ("name", "暗号 香織"), ("emails", SECRETS[0]), ("phone", SECRETS[1]), ("language", "ja")])
            .await
            .expect_status(303);
        import_csv(&mut admin, format!("社員番号,氏名,メールアドレス,電話番号\nE2,暗号 健,{},{}\n", SECRETS[2], SECRETS[3]).as_bytes(), "auto").await;

        // Through the service: plaintext, and mail goes to the right addresses.
        let export = admin.get("/people/export.csv").await.expect_status(200);
        for s in SECRETS {
            assert!(export.text.contains(s), "{s} missing from the export: {}", export.text);
        }
        start_incident(&mut admin, "暗号化テスト", &[("all", "1"), ("drill", "1")]).await;
        let mails = wait_mails(&env.sink, 2, |m| m.subject.contains("暗号化テスト")).await;
        assert!(mails.iter().any(|m| m.to.contains(&SECRETS[0].to_string())) && mails.iter().any(|m| m.to.contains(&SECRETS[2].to_string())));

        // In the database: none of it.
        let text = dump(engine, &url, env._db.dir()).await;
        assert!(text.contains("enc2:"), "row-bound ciphertexts are stored");
        for s in SECRETS {
            assert!(!text.contains(s), "plaintext {s} in the database dump ({engine})");
        }

        // A wrong master key is refused with a clear message.
        let keys = tempfile::tempdir().expect("tempdir");
        let wrong = keys.path().join("wrong.key");
        let wrong_s = wrong.display().to_string();
        run_cli_ok(&["keys", "generate", "--out", &wrong_s], None);
        let out = run_cli(&["migrate", "--database-url", &url, "--master-key-file", &wrong_s], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("master key"), "{err}");

        // Master key rotation while the service runs: it keeps sending.
        let new = keys.path().join("new.key");
        let new_s = new.display().to_string();
        run_cli_ok(&["keys", "generate", "--out", &new_s], None);
        let out = run_cli_ok(&["keys", "rotate", "--database-url", &url, "--new-master-key-file", &new_s], None);
        assert!(out.contains("re-wrapped 1 tenant key"), "{out}");
        run_cli_ok(&["migrate", "--database-url", &url, "--master-key-file", &new_s], None);
        assert!(!run_cli(&["migrate", "--database-url", &url], None).status.success(), "the old key no longer unwraps");
        start_incident(&mut admin, "ローテーション後", &[("all", "1"), ("drill", "1")]).await;
        wait_mails(&env.sink, 2, |m| m.subject.contains("ローテーション後")).await;
        let export = admin.get("/people/export.csv").await.expect_status(200);
        assert!(export.text.contains(SECRETS[1]));
    }
}
