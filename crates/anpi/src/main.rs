//! The `anpi` binary: `serve`, `demo`, `migrate`, `operator create`, `jma replay`.

mod demo;
mod jma;
mod serve;

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
    pub async fn store(&self) -> anyhow::Result<anpi_store::Store> {
        let store = anpi_store::Store::connect(&self.url()?).await?;
        store.migrate().await?;
        Ok(store)
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
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every hash chain; exits with status 1 and names each problem if any entry was
    /// edited, inserted or removed.
    Verify,
    /// Delete entries older than each tenant's retention now (the service also does this hourly).
    Purge,
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
                    let reports = store.verify_audit().await?;
                    let mut bad = 0;
                    for r in &reports {
                        let chain = if r.tenant_id == 0 { "operators/system".to_string() } else { format!("tenant {}", r.tenant_id) };
                        if r.problems.is_empty() {
                            println!("{chain}: {} entries, intact", r.entries);
                        } else {
                            bad += 1;
                            for p in &r.problems {
                                println!("{chain}: {p}");
                            }
                        }
                    }
                    if bad > 0 {
                        anyhow::bail!("{bad} audit chain(s) failed verification");
                    }
                    println!("all {} chain(s) intact", reports.len());
                }
                AuditCommand::Purge => println!("purged {} entries", store.purge_audit(anpi_core::SystemClock.now()).await?),
            }
            Ok(())
        }
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
