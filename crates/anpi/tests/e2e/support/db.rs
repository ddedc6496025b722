//! Storage engines under test and throwaway databases.

use std::fmt;
use std::time::Duration;

use sqlx::Connection;
use tempfile::TempDir;

use super::util::{env_nonempty, in_ci, random_hex};

/// A storage engine the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        })
    }
}

/// The engines to test: always SQLite; PostgreSQL when `ANPI_TEST_DATABASE_URL` is set.
/// Panics under CI (`CI` set) when `ANPI_TEST_DATABASE_URL` is missing: CI must test both.
pub fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sqlite];
    if env_nonempty("ANPI_TEST_DATABASE_URL").is_some() {
        v.push(Engine::Postgres);
    } else if in_ci() {
        panic!(
            "ANPI_TEST_DATABASE_URL is not set but CI is: CI must test both SQLite and PostgreSQL. \
             Run the suite with scripts/test.sh, which starts a throwaway PostgreSQL cluster."
        );
    } else {
        eprintln!(
            "note: ANPI_TEST_DATABASE_URL is not set: testing SQLite only \
             (scripts/test.sh starts a throwaway PostgreSQL cluster)"
        );
    }
    v
}

/// The admin URL of the test PostgreSQL cluster (`ANPI_TEST_DATABASE_URL`); panics if unset.
pub fn postgres_admin_url() -> String {
    env_nonempty("ANPI_TEST_DATABASE_URL")
        .unwrap_or_else(|| panic!("ANPI_TEST_DATABASE_URL is not set: cannot create a PostgreSQL test database (use scripts/test.sh)"))
}

/// Keeps a fresh database alive: the SQLite temp directory, or the name of the PostgreSQL
/// database, which is dropped (best effort) when the guard is dropped, unless the thread is
/// panicking (then it is kept, and its URL printed, for debugging).
pub struct DbGuard {
    engine: Engine,
    url: String,
    dir: Option<TempDir>,
    pg: Option<(String /*admin url*/, String /*db name*/)>,
}

impl DbGuard {
    /// A guard that removes nothing (a database whose whole cluster the test owns).
    pub fn owned_elsewhere(engine: Engine, url: &str) -> DbGuard {
        DbGuard { engine, url: url.to_string(), dir: None, pg: None }
    }
    pub fn engine(&self) -> Engine {
        self.engine
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The SQLite database's directory (None for PostgreSQL).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("test failed: keeping SQLite database in {}", kept.display());
            } else {
                eprintln!("test failed: keeping database {}", self.url);
            }
            return;
        }
        if let Some((admin, name)) = self.pg.take() {
            // Drop from a separate thread with its own runtime: Drop may run inside a runtime.
            let _ = std::thread::spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                rt.block_on(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(15), async {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                            let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
                            let _ = conn.close().await;
                        }
                    })
                    .await;
                });
            })
            .join();
        }
    }
}

/// The role the PostgreSQL test databases belong to and the server connects as: a plain
/// login role (no superuser, no BYPASSRLS), as in production, so row-level security is in
/// force in every test. Created once per cluster and kept (the store's tests use it too).
pub const APP_ROLE: &str = "anpi_test_app";
const APP_ROLE_SQL: &str = "DO $$ BEGIN \
    CREATE ROLE anpi_test_app LOGIN PASSWORD 'anpi_test_app' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$";

/// Replaces the user and password of a `postgres://` URL.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let Some(i) = url.find("://") else { return url.to_string() };
    let (scheme, rest) = (&url[..i + 3], &url[i + 3..]);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}{user}:{password}@{host}")
}

/// The same database as the cluster's superuser (`ANPI_TEST_DATABASE_URL`), for tests that
/// inspect or tamper with the database directly: row-level security hides every tenant row
/// from the service's own role outside a tenant scope. SQLite URLs are returned as they are.
pub fn superuser_url(url: &str) -> String {
    if !url.starts_with("postgres") {
        return url.to_string();
    }
    let path = url.find("://").map(|i| &url[i + 3..]).unwrap_or(url);
    let name = path.split_once('/').map(|(_, p)| p).unwrap_or("");
    let name = name.split('?').next().unwrap_or(name);
    with_database_name(&postgres_admin_url(), name)
}

/// Replaces the database name (the URL path) of a `postgres://` URL, keeping the query string.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (main, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = main.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match main[after_scheme..].find('/') {
        Some(i) => &main[..after_scheme + i],
        None => main,
    };
    format!("{base}/{name}{query}")
}

/// A fresh, empty database for `engine`; returns its URL and a guard that keeps it alive.
///
/// - SQLite: `sqlite://<tempdir>/anpi.sqlite?mode=rwc`.
/// - PostgreSQL: `CREATE DATABASE anpi_test_<random>` on the `ANPI_TEST_DATABASE_URL` cluster,
///   owned by [`APP_ROLE`], and a URL that connects as that role.
pub async fn fresh_database(engine: Engine) -> (String, DbGuard) {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::Builder::new().prefix("anpi-sqlite-").tempdir().expect("cannot create temp dir for SQLite database");
            let url = format!("sqlite://{}/anpi.sqlite?mode=rwc", dir.path().display());
            (url.clone(), DbGuard { engine, url, dir: Some(dir), pg: None })
        }
        Engine::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("anpi_test_{}", random_hex(16));
            let mut conn = tokio::time::timeout(Duration::from_secs(30), sqlx::PgConnection::connect(&admin))
                .await
                .unwrap_or_else(|_| panic!("timed out connecting to PostgreSQL at {admin}"))
                .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {admin} (ANPI_TEST_DATABASE_URL): {e}"));
            sqlx::raw_sql(APP_ROLE_SQL).execute(&mut conn).await.unwrap_or_else(|e| panic!("creating role {APP_ROLE} failed on {admin}: {e}"));
            let sql = format!("CREATE DATABASE \"{name}\" OWNER {APP_ROLE} ENCODING 'UTF8' TEMPLATE template0");
            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql} failed on {admin}: {e}"));
            let _ = conn.close().await;
            let url = with_user(&with_database_name(&admin, &name), APP_ROLE, APP_ROLE);
            (url.clone(), DbGuard { engine, url, dir: None, pg: Some((admin, name)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(with_database_name("postgres://anpi@127.0.0.1:5432/postgres", "x"), "postgres://anpi@127.0.0.1:5432/x");
        assert_eq!(with_database_name("postgres://u:p@h:1/postgres?sslmode=disable", "x"), "postgres://u:p@h:1/x?sslmode=disable");
        assert_eq!(with_database_name("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn user_is_replaced() {
        use super::with_user;
        assert_eq!(with_user("postgres://anpi@127.0.0.1:5432/x", "u", "p"), "postgres://u:p@127.0.0.1:5432/x");
        assert_eq!(with_user("postgres://a:b@h:1/x?sslmode=disable", "u", "p"), "postgres://u:p@h:1/x?sslmode=disable");
        assert_eq!(with_user("postgres://h/x", "u", "p"), "postgres://u:p@h/x");
    }
}
