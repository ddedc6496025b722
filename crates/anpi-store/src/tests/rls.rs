//! PostgreSQL row-level security, the second wall behind `TenantScope` (docs/security.md §5,
//! ASVS 8.4.1): the catalog says every tenant table is guarded, and the guard holds in practice.

use super::{drill, person, stores};
use crate::audit::AuditEvent;
use crate::{Engine, Store};
use anpi_core::target::Target;
use anpi_core::Role;

async fn count<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(e: E, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(e).await.unwrap()
}

async fn postgres_stores() -> Vec<Store> {
    let v: Vec<Store> = stores().await.into_iter().map(|(s, _)| s).filter(|s| s.engine() == Engine::Postgres).collect();
    if v.is_empty() {
        eprintln!("no PostgreSQL (ANPI_TEST_DATABASE_URL unset): nothing to test");
    }
    v
}

/// Every table with a `tenant_id` column, read from the catalog, has row-level security enabled
/// *and forced*, and every one of its policies compares rows against the scope's `anpi.tenant`
/// (through `anpi_tenant_visible`) both for reading (`USING`) and writing (`WITH CHECK`). A new
/// table without a policy, a dropped FORCE or a `USING (true)` policy fails here.
#[tokio::test]
async fn every_tenant_table_has_forced_row_level_security_on_postgres() {
    for s in postgres_stores().await {
        let mut c = s.system().await.unwrap();
        let tables: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT CAST(c.relname AS TEXT), c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
             ORDER BY 1",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap();
        assert!(tables.len() >= 20, "tenant tables found in the catalog: {tables:?}");
        for (t, enabled, forced) in &tables {
            assert!(*enabled && *forced, "{t}: row-level security enabled={enabled} forced={forced}");
            let policies: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT CAST(policyname AS TEXT), CAST(cmd AS TEXT), qual, with_check FROM pg_policies WHERE schemaname = current_schema() AND tablename = $1",
            )
            .bind(t)
            .fetch_all(&mut *c)
            .await
            .unwrap();
            assert!(!policies.is_empty(), "{t}: no policy (forced RLS without a policy hides everything, but a table must say who sees what)");
            for (name, cmd, using, check) in &policies {
                let guarded = |e: &Option<String>| e.as_deref().is_some_and(|e| e.contains("anpi_tenant_visible(tenant_id)"));
                assert!(guarded(using), "{t}.{name} ({cmd}): USING {using:?} does not compare tenant_id with anpi.tenant");
                if cmd == "ALL" || cmd == "INSERT" || cmd == "UPDATE" {
                    assert!(guarded(check), "{t}.{name} ({cmd}): WITH CHECK {check:?} does not compare tenant_id with anpi.tenant");
                }
            }
        }
        // The function the policies call still reads the scope's setting.
        let body: String = sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = 'anpi_tenant_visible'").fetch_one(&mut *c).await.unwrap();
        assert!(body.contains("current_setting('anpi.tenant', true)") && body.contains("WHEN '' THEN false"), "anpi_tenant_visible: {body}");
        // `tenants` itself is guarded by id.
        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'tenants' AND relnamespace = current_schema()::regnamespace",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        assert!(enabled && forced, "tenants: row-level security");
    }
}

/// Two tenants with rows in every kind of table: a query without a scope sees nothing and
/// writes nothing; a scope sees, changes and writes only its own tenant's rows.
#[tokio::test]
async fn row_level_security_is_a_second_wall_on_postgres() {
    for s in postgres_stores().await {
        let now = 1_700_000_000_000;
        let ev = AuditEvent::system("test");
        let a = s.create_tenant("wall-a", "A", now).await.unwrap();
        let b = s.create_tenant("wall-b", "B", now).await.unwrap();
        for (t, no) in [(&a, "a1"), (&a, "a2"), (&b, "b1")] {
            s.save_person(t, None, &person(no, "本社", "", &format!("{no}@example.jp")), &ev, now).await.unwrap();
            let acc = s.create_account(t, &format!("admin-{no}@example.jp"), "管理者", Role::Admin, Some("long enough pass"), &ev, now).await.unwrap();
            s.create_session("account", acc, Some(t), &ev, now).await.unwrap();
        }
        for t in [&a, &b] {
            let honsha = s.departments(t).await.unwrap()[0].id;
            let new = drill("地震", Target { departments: vec![honsha], ..Default::default() });
            s.start_incident(t, &new, &ev, now).await.unwrap();
        }

        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY 1",
        )
        .fetch_all(&mut *s.system().await.unwrap())
        .await
        .unwrap();
        for t in ["people", "incidents", "recipients", "outbox", "accounts", "sessions", "audit_log", "tenant_keys", "person_email_hashes"] {
            assert!(tables.iter().any(|x| x == t), "{t} in {tables:?}");
        }
        let (ta, tb) = (a.tenant_id(), b.tenant_id());
        for t in &tables {
            let all = count(&mut *s.system().await.unwrap(), &format!("SELECT COUNT(*) FROM {t} WHERE tenant_id IN ({ta}, {tb})")).await;
            let of_a = count(&mut *s.system().await.unwrap(), &format!("SELECT COUNT(*) FROM {t} WHERE tenant_id = {ta}")).await;
            let of_b = all - of_a;
            // A raw query on the pool (no scope): nothing, not even with the right WHERE.
            assert_eq!(count(&s.pool, &format!("SELECT COUNT(*) FROM {t}")).await, 0, "{t}: a query without a scope sees no rows");
            // A's scope: all of A's rows and nothing of B's, whatever the WHERE says.
            assert_eq!(count(&mut *s.scoped(&a).await.unwrap(), &format!("SELECT COUNT(*) FROM {t}")).await, of_a, "{t}: A's scope sees A's rows only");
            let b_in_a = count(&mut *s.scoped(&a).await.unwrap(), &format!("SELECT COUNT(*) FROM {t} WHERE tenant_id = {tb}")).await;
            assert_eq!(b_in_a, 0, "{t}: A's scope sees none of B's rows");
            assert_eq!(count(&mut *s.scoped(&b).await.unwrap(), &format!("SELECT COUNT(*) FROM {t}")).await, of_b, "{t}: B's scope sees B's rows only");
            if ["people", "incidents", "recipients", "outbox", "accounts", "sessions", "audit_log"].contains(&t.as_str()) {
                assert!(of_a > 0 && of_b > 0, "{t}: both tenants have rows ({of_a}, {of_b})");
            }
            // Under A's scope, B's rows cannot be deleted either.
            let hit = sqlx::query(&format!("DELETE FROM {t} WHERE tenant_id = {tb}")).execute(&mut *s.scoped(&a).await.unwrap()).await.unwrap();
            assert_eq!(hit.rows_affected(), 0, "{t}: A's scope cannot delete B's rows");
        }
        assert_eq!(count(&s.pool, "SELECT COUNT(*) FROM tenants").await, 0, "tenants: a query without a scope sees none");
        assert_eq!(count(&mut *s.scoped(&a).await.unwrap(), "SELECT COUNT(*) FROM tenants").await, 1, "tenants: a scope sees its own");

        // Writing a row of tenant B under A's scope is refused (WITH CHECK), and so is moving A's rows to B.
        let e = sqlx::query("INSERT INTO people (tenant_id, employee_no, name, created_at, updated_at) VALUES ($1, 'x', 'x', 0, 0)")
            .bind(tb)
            .execute(&mut *s.scoped(&a).await.unwrap())
            .await
            .expect_err("an insert for B under A's scope");
        assert!(e.to_string().contains("row-level security"), "{e}");
        let moved = sqlx::query("UPDATE people SET tenant_id = $1 WHERE tenant_id = $2").bind(tb).bind(ta).execute(&mut *s.scoped(&a).await.unwrap()).await;
        assert!(moved.is_err(), "moving A's rows to B under A's scope");
        // Without a scope nothing is written at all.
        let unscoped = sqlx::query("INSERT INTO people (tenant_id, employee_no, name, created_at, updated_at) VALUES ($1, 'y', 'y', 0, 0)")
            .bind(ta)
            .execute(&s.pool)
            .await;
        assert!(unscoped.is_err(), "an insert without a scope");
        // The store's own methods still see each tenant's data (the two walls agree).
        assert_eq!(s.people(&a).await.unwrap().len(), 2);
        assert_eq!(s.people(&b).await.unwrap().len(), 1);
        assert_eq!(s.tenant_summaries().await.unwrap().iter().map(|t| t.people).sum::<i64>(), 3, "system() sees every tenant");

        // A scoped connection goes back to the pool without its tenant.
        let pid: i32 = {
            let mut c = s.scoped(&a).await.unwrap();
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&mut *c).await.unwrap()
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut held = Vec::new();
        let mut seen_pid = false;
        for _ in 0..s.pool.size() {
            let mut c = s.pool.acquire().await.unwrap();
            let (p, setting): (i32, Option<String>) =
                sqlx::query_as("SELECT pg_backend_pid(), current_setting('anpi.tenant', true)").fetch_one(&mut *c).await.unwrap();
            assert_eq!(setting.unwrap_or_default(), "", "connection {p} came back with a tenant");
            seen_pid |= p == pid;
            held.push(c);
        }
        assert!(seen_pid, "the scoped connection {pid} is back in the pool");
    }
}
