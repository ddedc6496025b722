//! `anpi dkim …`: the DKIM keys mail is signed with, per sending domain and selector
//! (docs/operations.md, "DKIM"). The service signs with the newest key of its --mail-from domain.

use crate::DbArgs;
use anpi_core::Clock;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Generate a key for a domain and selector, store it (sealed under the master key) and
    /// print the DNS TXT record to publish.
    Generate {
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "anpi")]
        selector: String,
        /// `rsa` (2048 bits, verified everywhere) or `ed25519` (RFC 8463, much cheaper to sign).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// Store an existing private key: PKCS#1 PEM (`rsa`) or the base64 32-byte secret
    /// (`ed25519`) read from a file; the public key for DNS is derived from it.
    Import {
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "anpi")]
        selector: String,
        #[arg(long, default_value = "rsa")]
        algorithm: String,
        #[arg(long)]
        key_file: PathBuf,
    },
    /// List the keys and their DNS records.
    List,
    /// Remove a key.
    Remove {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        selector: String,
    },
}

fn print_record(k: &anpi_store::DkimKey) {
    let (name, value) = k.dns_record();
    println!("{name} IN TXT \"{value}\"");
}

pub async fn run(db: &DbArgs, command: DkimCommand) -> anyhow::Result<()> {
    let store = db.service_store().await?;
    let now = anpi_core::SystemClock.now();
    match command {
        DkimCommand::Generate { domain, selector, algorithm } => {
            let key = anpi_notify::generate_dkim_key(&domain, &selector, &algorithm, now).map_err(|e| anyhow::anyhow!(e))?;
            store.save_dkim_key(&key).await?;
            println!("stored a new {algorithm} DKIM key; publish this record, then restart anpi serve:");
            print_record(&key);
        }
        DkimCommand::Import { domain, selector, algorithm, key_file } => {
            let private_key = std::fs::read_to_string(&key_file).map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
            let key = anpi_notify::dkim_key_from_private(&domain, &selector, &algorithm, private_key.trim(), now).map_err(|e| anyhow::anyhow!(e))?;
            store.save_dkim_key(&key).await?;
            println!("stored the {algorithm} DKIM key; its record:");
            print_record(&key);
        }
        DkimCommand::List => {
            for k in store.dkim_keys().await? {
                print_record(&k);
            }
        }
        DkimCommand::Remove { domain, selector } => {
            if !store.remove_dkim_key(&domain, &selector).await? {
                anyhow::bail!("no DKIM key {selector}._domainkey.{domain}");
            }
            println!("removed {selector}._domainkey.{domain}");
        }
    }
    Ok(())
}
