//! The `anpi` binary: `serve`, `demo`, `migrate`, `operator create`, `jma replay`, `keys`.

mod demo;
mod dkim;
mod jma;
mod serve;
mod tls;

use anpi_store::audit::AuditEvent;
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "anpi", version, about = "anpi: emergency notification and safety confirmation")]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct DbArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER@HOST/DB. Default: SQLite under --data-dir.
    #[arg(long, env = "ANPI_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Directory for the embedded database and other local state.
    #[arg(long, env = "ANPI_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Master key for encryption at rest (32 bytes as 64 hex digits or base64), read from this
    /// file. Else the ANPI_MASTER_KEY environment variable, else DATA_DIR/master.key when it
    /// exists. Never stored in the database. See docs/security.md.
    #[arg(long, env = "ANPI_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// The previous master key, during a master key rotation: tenant keys still wrapped by it
    /// can be unwrapped.
    #[arg(long, env = "ANPI_OLD_MASTER_KEY_FILE", global = true)]
    pub old_master_key_file: Option<PathBuf>,
    /// Every signed audit checkpoint is also appended to this file as a JSON line (a copy
    /// outside the database: ship it elsewhere; `anpi audit verify --checkpoint-log FILE`
    /// compares). Checkpoints are always written to the log (target anpi_audit_checkpoint) too.
    #[arg(long, env = "ANPI_CHECKPOINT_LOG", global = true)]
    pub checkpoint_log: Option<PathBuf>,
}

/// Where `anpi demo` keeps its generated master key (and `serve` looks when none is given).
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

fn read_master_key(path: &std::path::Path) -> anyhow::Result<anpi_store::MasterKey> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read master key file {}: {e}", path.display()))?;
    anpi_store::MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()))
}

/// Writes a fresh master key to `path`, readable by the owner only; fails if it exists.
pub fn write_new_master_key(path: &std::path::Path) -> anyhow::Result<anpi_store::MasterKey> {
    use std::io::Write;
    let key = anpi_store::MasterKey::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    writeln!(f, "{}", key.to_hex())?;
    f.sync_all()?;
    Ok(key)
}

impl DbArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(u) => Ok(u.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                Ok(format!("sqlite://{}/anpi.sqlite?mode=rwc", self.data_dir.display()))
            }
        }
    }
    /// The configured master keys, if any (see `--master-key-file`).
    pub fn master_keys(&self) -> anyhow::Result<Option<anpi_store::MasterKeys>> {
        let default_file = self.data_dir.join(MASTER_KEY_FILE_NAME);
        let current = match (&self.master_key_file, std::env::var("ANPI_MASTER_KEY")) {
            (Some(f), _) => read_master_key(f)?,
            (None, Ok(v)) if !v.trim().is_empty() => anpi_store::MasterKey::parse(&v).map_err(|e| anyhow::anyhow!("ANPI_MASTER_KEY: {e}"))?,
            _ if default_file.is_file() => read_master_key(&default_file)?,
            _ => return Ok(None),
        };
        let mut keys = anpi_store::MasterKeys::new(current);
        if let Some(old) = &self.old_master_key_file {
            keys = keys.with_old(read_master_key(old)?);
        }
        Ok(Some(keys))
    }

    /// Connects and migrates. With a master key: checks that it unwraps every tenant key and
    /// encrypts contact data still stored in plaintext.
    pub async fn store(&self) -> anyhow::Result<anpi_store::Store> {
        let keys = self.master_keys()?;
        let store = anpi_store::Store::connect(&self.url()?).await?;
        store.migrate().await?;
        if let Some(path) = &self.checkpoint_log {
            store.set_checkpoint_log(path.clone());
        }
        if let Some(keys) = keys {
            tracing::info!(master_key = keys.current().id(), "master key loaded");
            store.set_master_keys(keys);
            store.check_master_keys().await?;
            store.encrypt_existing().await?;
        }
        Ok(store)
    }

    /// [`DbArgs::store`] for the service: a master key is required.
    pub async fn service_store(&self) -> anyhow::Result<anpi_store::Store> {
        if self.master_keys()?.is_none() {
            anyhow::bail!(
                "no master key for encryption at rest: pass --master-key-file FILE (32 bytes as 64 hex digits or base64; \
                 `anpi keys generate --out FILE` writes one) or set ANPI_MASTER_KEY, or put the key in {} (used when it exists). \
                 Keep it outside the database and its backups; see docs/security.md",
                self.data_dir.join(MASTER_KEY_FILE_NAME).display()
            );
        }
        self.store().await
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(serve::ServeArgs),
    /// Run the service with a demo tenant and a built-in mailbox page (no SMTP needed).
    Demo(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Operator accounts.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// JMA telegrams.
    Jma {
        #[command(subcommand)]
        command: JmaCommand,
    },
    /// Encryption keys (docs/security.md, "Encryption at rest").
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// DKIM signing keys of the sending domains (docs/operations.md, "DKIM").
    Dkim {
        #[command(subcommand)]
        command: dkim::DkimCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new random master key to a file (mode 0600).
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-wrap every tenant key under a new master key, in one transaction. The current key
    /// (--master-key-file, and --old-master-key-file if set) unwraps them.
    Rotate {
        /// The new master key. Without it, keys are re-wrapped under --master-key-file (to
        /// finish a rotation started with --old-master-key-file).
        #[arg(long)]
        new_master_key_file: Option<PathBuf>,
    },
    /// Crypto-shred a tenant: destroy its data keys, so its encrypted contact data can never be
    /// read again, in the database and in every backup. Irreversible.
    ShredTenant {
        /// Organisation code.
        #[arg(long)]
        tenant: String,
        /// The organisation code again, to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// Give a tenant a new data key and re-encrypt its contact data in batches while the
    /// service runs; the old key is retired (kept: it still decrypts older backups).
    RotateTenant {
        /// Organisation code.
        #[arg(long)]
        tenant: String,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every hash chain in full; exits with status 1 and names each problem if any entry
    /// was edited, inserted or removed. The results show on each tenant's log page.
    Verify,
    /// Delete entries older than each tenant's retention now (the service also does this hourly).
    Purge,
    /// Sign a checkpoint of every chain that moved (the service also does this hourly); needs
    /// the master key.
    Checkpoint,
}

#[derive(Subcommand)]
enum JmaCommand {
    /// Feed stored telegrams through the intake (drills, tests); the running service sends.
    Replay(jma::ReplayArgs),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Create an operator account (or set its password).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ANPI_LOG").unwrap_or_else(|_| "info,sqlx=warn".into())).init();
    // One TLS crypto provider for every client (JMA feeds over HTTPS).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(&cli.db, args, None).await,
        Command::Demo(args) => demo::run(&cli.db, args).await,
        Command::Jma { command: JmaCommand::Replay(args) } => jma::replay(&cli.db, args).await,
        Command::Audit { command } => {
            let store = cli.db.store().await?;
            use anpi_core::Clock;
            match command {
                AuditCommand::Verify => {
                    match store.checkpoint_public_key() {
                        Some((id, key)) => println!("checkpoint key {id} (P-256, SEC1 {key})"),
                        None => println!("no master key: the signed checkpoints are not checked (pass --master-key-file)"),
                    }
                    let reports = store.verify_audit().await?;
                    let mut bad = 0;
                    for r in &reports {
                        let owner = if r.tenant_id == 0 { "operators/system".to_string() } else { format!("tenant {}", r.tenant_id) };
                        let chain = format!("{owner} {}", r.kind.code());
                        if r.problems.is_empty() {
                            println!("{chain}: {} entries, {} signed checkpoint(s), intact", r.entries, r.checkpoints);
                        } else {
                            bad += 1;
                            for p in &r.problems {
                                println!("{chain}: {p}");
                            }
                        }
                    }
                    if let Some(path) = &cli.db.checkpoint_log {
                        let log = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                        let problems = store.verify_against_checkpoint_log(&log).await?;
                        println!("checkpoint log {}: {} line(s) compared", path.display(), log.lines().count());
                        for p in &problems {
                            println!("{p}");
                        }
                        bad += problems.len();
                    }
                    if bad > 0 {
                        anyhow::bail!("audit verification failed ({bad} problem(s))");
                    }
                    println!("all {} chain(s) intact", reports.len());
                }
                AuditCommand::Purge => println!("purged {} entries", store.purge_audit(anpi_core::SystemClock.now()).await?),
                AuditCommand::Checkpoint => {
                    if store.checkpoint_public_key().is_none() {
                        anyhow::bail!("checkpoints are signed with a key derived from the master key: pass --master-key-file or set ANPI_MASTER_KEY");
                    }
                    println!("signed {} checkpoint(s)", store.checkpoint_audit(anpi_core::SystemClock.now()).await?);
                    let refused = store.unsigned_chains().await?;
                    if !refused.is_empty() {
                        for (tenant, kind, problems) in &refused {
                            println!("tenant {tenant} {kind}: NOT signed: {}", problems.join("; "));
                        }
                        anyhow::bail!("{} chain(s) do not verify since their last checkpoint and were not signed", refused.len());
                    }
                }
            }
            Ok(())
        }
        Command::Keys { command } => keys(&cli.db, command).await,
        Command::Dkim { command } => dkim::run(&cli.db, command).await,
        Command::Migrate => {
            cli.db.store().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Operator { command: OperatorCommand::Create { email, password_stdin } } => {
            if !password_stdin {
                anyhow::bail!("pass the password on standard input with --password-stdin");
            }
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let pw = pw.trim_end_matches(['\r', '\n']);
            let store = cli.db.store().await?;
            use anpi_core::Clock;
            store.create_operator(&email, pw, anpi_core::SystemClock.now()).await?;
            println!("operator {email} ready");
            Ok(())
        }
    }
}

async fn keys(db: &DbArgs, command: KeysCommand) -> anyhow::Result<()> {
    use anpi_core::Clock;
    match command {
        KeysCommand::Generate { out } => {
            let key = write_new_master_key(&out)?;
            println!("wrote master key {} to {}", key.id(), out.display());
        }
        KeysCommand::Rotate { new_master_key_file } => {
            let store = db.service_store().await?;
            let new = match &new_master_key_file {
                Some(f) => read_master_key(f)?,
                None => db.master_keys()?.map(|k| k.current().clone()).ok_or_else(|| anyhow::anyhow!("no master key"))?,
            };
            let n = store.rewrap_tenant_keys(&new).await?;
            let d = store.reseal_dkim_keys(&new).await?;
            let e = AuditEvent {
                detail: format!("master key {}, {n} tenant key(s) re-wrapped, {d} DKIM key(s) re-sealed", new.id()),
                ..AuditEvent::system("master_key_rotated")
            };
            store.audit(None, &e, anpi_core::SystemClock.now()).await?;
            println!("re-wrapped {n} tenant key(s) under master key {}", new.id());
            if new_master_key_file.is_some() {
                println!("now restart every anpi process with --master-key-file set to the new key (the old one is no longer needed)");
            }
        }
        KeysCommand::ShredTenant { tenant, confirm } => {
            if confirm != tenant {
                anyhow::bail!("crypto-shredding cannot be undone: repeat the organisation code with --confirm {tenant}");
            }
            let store = db.service_store().await?;
            let scope = store
                .tenant_scope_by_code(&anpi_store::CommandLine::operator_at_the_console(), &tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with code {tenant}"))?;
            let n = store.shred_tenant_keys(&scope, &AuditEvent::system("tenant_keys_shredded"), anpi_core::SystemClock.now()).await?;
            println!("tenant {tenant}: destroyed {n} data key(s); its encrypted contact data, backups included, can no longer be read");
        }
        KeysCommand::RotateTenant { tenant, batch } => {
            let store = db.service_store().await?;
            let scope = store
                .tenant_scope_by_code(&anpi_store::CommandLine::operator_at_the_console(), &tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant with code {tenant}"))?;
            let id = store.rotate_tenant_key(&scope, &AuditEvent::system("tenant_key_rotated"), anpi_core::SystemClock.now()).await?;
            println!("tenant {tenant}: new data key {id}; re-encrypting…");
            let n = store.reencrypt_tenant(&scope, batch).await?;
            println!("tenant {tenant}: re-encrypted {n} row(s) under key {id}");
        }
    }
    Ok(())
}
