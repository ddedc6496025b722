//! anpi persistence: one schema on SQLite (embedded default) and PostgreSQL, through sqlx's
//! `Any` driver with runtime queries. Tenant-owned data is reachable only through a
//! [`TenantScope`], which this crate hands out only to authenticated contexts.
//!
//! Two walls keep tenants apart. First, every tenant query takes a `TenantScope` and filters
//! `tenant_id` by hand. Second, on PostgreSQL, row-level security (migration 0011) shows a
//! connection only the rows of the tenant named by the session setting `anpi.tenant`:
//! [`Store::scoped`] / [`Store::scoped_tx`] set it from the scope, [`Store::system`] /
//! [`Store::system_tx`] set `*` for the few paths that work across tenants, and a connection
//! without it (a raw `pool` query) sees no tenant rows at all. `self.pool` is used directly
//! only for instance tables without tenant rows (operators, login_throttle, telegrams, feeds,
//! feed_entries, instance_secrets, dkim_keys) and for migrations, ping and close.

mod accounts;
mod allowlists;
mod answer_writer;
pub mod audit;
mod bounces;
mod checkpoints;
mod clientcerts;
mod crypto;
mod directory;
mod dkim;
mod feeds;
mod hazards;
mod incidents;
mod keys;
mod labels;
mod live;
pub mod mfa;
mod outbox;
pub mod passkeys;
mod problem;
mod reach;
mod responses;
mod scope;
mod security;
mod tenants;
mod verify;

pub use accounts::{session_id, Account, AuthContext, ClientInfo, Principal, SessionPolicy, SessionRow, SessionStage};
pub use allowlists::Allowlists;
pub use bounces::Bounce;
pub use checkpoints::Checkpoint;
pub use clientcerts::ClientCertSettings;
pub use crypto::{hash_password, random_token, verify_password, Lane};
pub use directory::{Department, Group, PersonRow, Site};
pub use dkim::DkimKey;
pub use feeds::FeedStatus;
pub use hazards::{DispatchRow, NewDispatch, NewTelegram, PeopleAreas, PriorDispatch, RuleRow, TelegramRow};
pub use incidents::{AnswerCount, DashboardCounts, DashboardRow, IncidentDetail, IncidentSummary, NewIncident};
pub use keys::{normalise_email, MasterKey, MasterKeys};
pub use labels::{LabelInput, LabelUse};
pub use live::LiveListener;
pub use outbox::{Claimed, Delivery, OutboxKind, SurveyMail};
pub use problem::Problem;
pub use reach::IncidentAccess;
pub use responses::AnswerContext;
pub use scope::TenantScope;
pub use security::{throttle_delay, throttle_key, MfaRequirement, SecurityPolicy};
pub use tenants::CommandLine;
pub use tenants::{Tenant, TenantSummary};
pub use verify::ChainStatus;

use sqlx::any::{Any, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{AnyPool, Executor, Transaction};
use std::time::Duration;

/// A pooled connection with its row-level-security tenant set (see [`Store::scoped`]).
pub(crate) type Conn = PoolConnection<Any>;

/// Whose rows a connection may see under PostgreSQL row-level security.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Tenant(i64),
    /// Every tenant's: `Store::system`.
    All,
}

impl Rows {
    /// The value of `anpi.tenant` (an integer or `*`: safe to put in a statement).
    fn setting(self) -> String {
        match self {
            Rows::Tenant(id) => id.to_string(),
            Rows::All => "*".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    /// The request clashes with what is stored (a name or number in use): a person can fix it.
    #[error("{0}")]
    Conflict(Problem),
    /// The input is refused: a person can fix it. anpi-web shows the problem in the page's language.
    #[error("{0}")]
    Invalid(Problem),
    /// A fault no user can fix (a task that stopped, JSON that does not encode, a setting that
    /// does not apply): for the log only.
    #[error("{0}")]
    Internal(String),
    /// The held dispatch being started was started or withdrawn meanwhile (by another node):
    /// nothing was done.
    #[error("dispatch is no longer held")]
    NoLongerHeld,
    /// Encryption at rest: no or wrong master key, or a value that does not decrypt.
    #[error("encryption: {0}")]
    Crypto(String),
    /// The incident exists but is beyond the caller's reach (a limited distributor).
    #[error("outside the caller's reach")]
    OutsideReach,
    /// Too many attempts: wait this many milliseconds.
    #[error("throttled")]
    Throttled(i64),
    /// Too much password work queued (a sign-in flood): try again shortly.
    #[error("busy")]
    Busy,
    /// The answers' group commit failed or has stopped (details for the log).
    #[error("answer writer: {0}")]
    AnswerWriter(String),
    /// A batched write stopped half-way: `done` of `total` rows are in (repeating it is safe).
    #[error("stopped after {done} of {total} rows")]
    Partial { done: usize, total: usize },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A transaction that sees `rows` (`SET LOCAL`: gone at its end).
async fn begin(pool: &AnyPool, engine: Engine, rows: Rows) -> Result<Transaction<'static, Any>> {
    let mut tx = pool.begin().await?;
    if engine == Engine::Postgres {
        (&mut *tx).execute(format!("SET LOCAL anpi.tenant = '{}'", rows.setting()).as_str()).await?;
    }
    Ok(tx)
}

/// A pool that opens its connections on first use, each running `setup` once.
fn lazy_pool(url: &str, max: u32, setup: &'static str) -> Result<AnyPool> {
    let opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30)).max_connections(max);
    let opts = opts.after_connect(move |conn, _| {
        Box::pin(async move {
            conn.execute(setup).await?;
            Ok(())
        })
    });
    Ok(opts.connect_lazy(url)?)
}

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// For the hot system reads (answer links, [`Store::system_read`]): on SQLite a few
    /// read-only connections beside the one writer (WAL lets them read while it writes); on
    /// PostgreSQL a few connections that see every tenant's rows (`anpi.tenant = '*'` once).
    readers: AnyPool,
    engine: Engine,
    /// Master keys for encryption at rest (memory only).
    keys: std::sync::Arc<keys::KeyState>,
    /// PostgreSQL enforces row-level security on this role (not a superuser, no BYPASSRLS).
    row_security: bool,
    /// Where new audit checkpoints are also appended (outside the database), if set.
    checkpoint_log: std::sync::Arc<std::sync::OnceLock<std::path::PathBuf>>,
    /// The PostgreSQL URL, for the live-event listener's own connection (never logged).
    url: Option<std::sync::Arc<str>>,
    /// Poked after each commit that queued messages: the outbox worker waits on it.
    outbox_ready: std::sync::Arc<tokio::sync::Notify>,
    /// The answers' group-commit writer, started on first use.
    answers: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<answer_writer::Pending>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("engine", &self.engine).finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. SQLite gets WAL and a single writer connection.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StoreError::Internal("database URL must start with sqlite: or postgres:".into()));
        };
        let opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match engine {
            Engine::Sqlite => {
                opts.max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // secure_delete: freed space is zeroed, so plaintext replaced by ciphertext
                            // (encryption at rest of older rows) does not linger in the file.
                            conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000; PRAGMA secure_delete=ON;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Engine::Postgres => {
                opts.max_connections(16)
                    // A connection goes back to the pool without a tenant (row-level security),
                    // so a later raw query on it sees no tenant rows.
                    .after_release(|conn, _| {
                        Box::pin(async move {
                            (&mut *conn).execute("RESET anpi.tenant").await?;
                            Ok(true)
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        let row_security = match engine {
            Engine::Sqlite => false,
            Engine::Postgres => {
                let bypass: bool = sqlx::query_scalar("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").fetch_one(&pool).await?;
                if bypass {
                    tracing::warn!(
                        "the database role is a superuser or has BYPASSRLS: PostgreSQL row-level security (the second wall of tenant \
                         isolation) is OFF; run anpi as a non-superuser role that owns the schema (docs/operations.md)"
                    );
                }
                !bypass
            }
        };
        let readers = match engine {
            // An in-memory database exists once per connection: it has no other readers.
            Engine::Sqlite if !url.contains(":memory:") => lazy_pool(url, 4, "PRAGMA query_only=ON; PRAGMA busy_timeout=10000;")?,
            Engine::Sqlite => pool.clone(),
            // Connections that see every tenant's rows for their whole life, so a lookup costs
            // one round trip instead of three (set, query, reset); only `system_read` uses them.
            Engine::Postgres => lazy_pool(url, 8, "SET anpi.tenant = '*'")?,
        };
        let url = (engine == Engine::Postgres).then(|| std::sync::Arc::from(url));
        Ok(Store {
            pool,
            readers,
            engine,
            keys: Default::default(),
            row_security,
            checkpoint_log: Default::default(),
            url,
            outbox_ready: Default::default(),
            answers: Default::default(),
        })
    }

    /// Notified after every commit that queued messages (in this process), so the outbox
    /// worker claims them at once; other nodes find them at their next poll.
    pub fn outbox_ready(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// Whether PostgreSQL row-level security is in force for this store's role: false on
    /// SQLite (no such feature) and for a superuser or BYPASSRLS role (logged at start).
    pub fn row_security_enforced(&self) -> bool {
        self.row_security
    }

    /// A connection that sees only the tenant's rows (PostgreSQL row-level security; on
    /// SQLite a plain connection). One extra round trip; reset when it returns to the pool.
    /// Don't hold it across another store call: SQLite has one connection.
    pub(crate) async fn scoped(&self, scope: &TenantScope) -> Result<Conn> {
        self.conn_for(Rows::Tenant(scope.tenant_id())).await
    }

    /// A transaction that sees only the tenant's rows (`SET LOCAL`: gone at its end).
    pub(crate) async fn scoped_tx(&self, scope: &TenantScope) -> Result<Transaction<'static, Any>> {
        self.tx_for(Rows::Tenant(scope.tenant_id())).await
    }

    /// A connection that sees every tenant's rows. Only for the paths that legitimately work
    /// across tenants or before a scope exists: outbox workers, intake and rules over all
    /// tenants, reminders, the operator console's tenant list, sign-in (tenant by code,
    /// session, reset and answer-token lookups), audit verify and purge, key rotation,
    /// migrations and housekeeping.
    pub(crate) async fn system(&self) -> Result<Conn> {
        self.conn_for(Rows::All).await
    }

    /// A transaction that sees every tenant's rows (see [`Store::system`]).
    pub(crate) async fn system_tx(&self) -> Result<Transaction<'static, Any>> {
        self.tx_for(Rows::All).await
    }

    /// Like [`Store::system`], from the readers: for reads that need not see this process's
    /// uncommitted writes (there are none outside a transaction) and must not queue behind
    /// SQLite's one writer.
    pub(crate) async fn system_read(&self) -> Result<Conn> {
        Ok(self.readers.acquire().await?)
    }

    async fn conn_for(&self, rows: Rows) -> Result<Conn> {
        let mut conn = self.pool.acquire().await?;
        if self.engine == Engine::Postgres {
            (&mut *conn).execute(format!("SET anpi.tenant = '{}'", rows.setting()).as_str()).await?;
        }
        Ok(conn)
    }

    async fn tx_for(&self, rows: Rows) -> Result<Transaction<'static, Any>> {
        begin(&self.pool, self.engine, rows).await
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Applies pending migrations. Refuses to run against a database migrated by a newer
    /// version (a migration recorded there but unknown here).
    pub async fn migrate(&self) -> Result<()> {
        let m = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        // Migrations may move data between tenant tables: they see every tenant's rows.
        let mut conn = self.system().await?;
        m.run(&mut *conn).await?;
        Ok(())
    }

    /// A trivial query: does the database answer?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }

    /// `FOR UPDATE SKIP LOCKED` where the engine has it (SQLite has a single writer).
    fn skip_locked(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// A subquery of the integers in the JSON array parameter `param` (one parameter for
    /// any number of ids).
    fn ids_in_json(&self, param: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("SELECT value FROM json_each({param})"),
            Engine::Postgres => format!("SELECT value::bigint FROM json_array_elements_text({param}::json)"),
        }
    }

    /// An instance secret (the WebAuthn user-handle key), created on first use.
    async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let fresh = crypto::random_bytes::<32>().to_vec();
        sqlx::query("INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh)
            .execute(&self.pool)
            .await?;
        let v: Vec<u8> = sqlx::query_scalar("SELECT value FROM instance_secrets WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(v)
    }
}

/// `$first, $first+1, …` placeholders for a multi-row VALUES list.
fn values_placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (0..cols).map(|c| format!("${}", r * cols + c + 1)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$start, $start+1, …` for an IN list.
fn in_list(start: usize, n: usize) -> String {
    (0..n).map(|i| format!("${}", start + i)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
