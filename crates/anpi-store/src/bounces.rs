//! Bounces. Every message carries its own return path (VERP): `LOCAL+{outbox id}.{tag}@DOMAIN`,
//! the tag an HMAC of the id under a key derived from the master key, so a delivery status
//! notification can only name a message anpi sent. A permanent failure marks the address of the
//! person it went to undeliverable: the next claims leave that address out (a person with no
//! other address is not mailed, and the dashboard says why), until the person's addresses change.

use crate::keys::MasterKey;
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn bounce_key(master: &MasterKey) -> [u8; 32] {
    master.derive_key(b"anpi/return-path/v1")
}

fn tag(key: &[u8; 32], outbox: i64) -> String {
    let mut out = String::new();
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) {
        m.update(&outbox.to_be_bytes());
        out = m.finalize().into_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect();
    }
    out
}

/// What a notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounce {
    /// The person's address is marked undeliverable.
    Marked,
    /// A message that went to no person (a password link); recorded on the message only.
    MessageOnly,
    /// The return path names no message of ours (forged, or the message is gone).
    Unknown,
}

impl Store {
    /// The part after `+` in the return path of outbox row `outbox`.
    pub fn return_path_tag(&self, outbox: i64) -> Result<String> {
        let key = self.master_keys()?.all().next().map(bounce_key).ok_or_else(|| StoreError::Crypto("no master key".into()))?;
        Ok(format!("{outbox}.{}", tag(&key, outbox)))
    }

    /// The outbox row a return-path tag names, if one of the master keys made it.
    pub fn outbox_of_return_tag(&self, t: &str) -> Result<Option<i64>> {
        use subtle::ConstantTimeEq;
        let Some((id, mac)) = t.split_once('.') else { return Ok(None) };
        let Ok(id) = id.parse::<i64>() else { return Ok(None) };
        Ok(self.master_keys()?.all().any(|k| bool::from(tag(&bounce_key(k), id).as_bytes().ct_eq(mac.to_ascii_lowercase().as_bytes()))).then_some(id))
    }

    /// Records a permanent failure reported for outbox row `outbox` to `address` with DSN status
    /// `status` (e.g. `5.1.1`): the message is marked failed and, when it went to a person, that
    /// address of theirs undeliverable.
    pub async fn record_bounce(&self, outbox: i64, address: &str, status: &str, now: Millis) -> Result<Bounce> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT tenant_id, recipient_id FROM outbox WHERE id = $1").bind(outbox).fetch_optional(&mut *self.system().await?).await?;
        let Some((tenant, recipient)) = row else { return Ok(Bounce::Unknown) };
        let status: String = status.chars().filter(|c| c.is_ascii_digit() || *c == '.').take(16).collect();
        let scope = TenantScope::new(tenant);
        let person: Option<i64> = match recipient {
            Some(r) => {
                sqlx::query_scalar("SELECT person_id FROM recipients WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(r)
                    .fetch_optional(&mut *self.scoped(&scope).await?)
                    .await?
            }
            None => None,
        };
        // Sealed before the transaction: on SQLite the transaction holds the one connection.
        let sealed = match person {
            Some(p) => Some(self.keyring(tenant).await?.seal_row("people.undeliverable_address", &p.to_string(), &address.trim().to_lowercase())?),
            None => None,
        };
        let mut tx = self.scoped_tx(&scope).await?;
        sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(format!("undeliverable: {status}"))
            .bind(tenant)
            .bind(outbox)
            .execute(&mut *tx)
            .await?;
        let (Some(person), Some(sealed)) = (person, sealed) else {
            tx.commit().await?;
            return Ok(Bounce::MessageOnly);
        };
        sqlx::query("UPDATE people SET undeliverable_address = $1, undeliverable_status = $2, undeliverable_at = $3 WHERE tenant_id = $4 AND id = $5")
            .bind(sealed)
            .bind(&status)
            .bind(now)
            .bind(tenant)
            .bind(person)
            .execute(&mut *tx)
            .await?;
        let event = crate::audit::AuditEvent {
            target: format!("person:{person}"),
            detail: format!("status {status}"),
            ..crate::audit::AuditEvent::system("mail_undeliverable")
        };
        self.record(&mut tx, &scope, &event, now).await?;
        tx.commit().await?;
        Ok(Bounce::Marked)
    }
}
