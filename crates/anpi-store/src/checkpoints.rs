//! Signed checkpoints of the audit chains. A checkpoint is a chain's (seq, hash) at a moment,
//! signed with an ECDSA P-256 key derived from the master key, which the database never holds.
//! Someone who can write the database can recompute a whole chain and its head so that the
//! hash links agree; they cannot sign, so the checkpoints no longer match and `verify` says so.
//! The housekeeping job signs every chain whose head moved ([`Store::checkpoint_audit`]); a
//! retention purge signs the new anchor, so verification carries over the deleted part.

use crate::audit::{hex, ChainRow, Head};
use crate::keys::MasterKey;
use crate::{Result, Store, StoreError};
use anpi_core::Millis;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// A signing key derived from one master key, and its public key's id.
pub(crate) struct CheckpointKey {
    signing: SigningKey,
    pub(crate) id: String,
}

impl CheckpointKey {
    pub(crate) fn of(master: &MasterKey) -> Result<CheckpointKey> {
        let signing = SigningKey::from_slice(&master.derive(b"anpi/audit-checkpoint/v1")).map_err(|_| StoreError::Crypto("cannot derive the checkpoint key".into()))?;
        let id = key_id(signing.verifying_key());
        Ok(CheckpointKey { signing, id })
    }

    fn sign(&self, message: &str) -> String {
        let sig: Signature = self.signing.sign(message.as_bytes());
        hex(&sig.to_bytes())
    }

    fn verifies(&self, message: &str, signature_hex: &str) -> bool {
        let Some(bytes) = unhex(signature_hex) else { return false };
        let Ok(sig) = Signature::from_slice(&bytes) else { return false };
        self.signing.verifying_key().verify(message.as_bytes(), &sig).is_ok()
    }

    /// The public key (SEC1, compressed, hex), for publishing.
    pub(crate) fn public_hex(&self) -> String {
        hex(self.signing.verifying_key().to_encoded_point(true).as_bytes())
    }
}

fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.to_encoded_point(true).as_bytes())[..8])
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What a checkpoint signs: the chain, the position and the entry hash there, the time.
fn message(tenant: i64, kind: &str, seq: i64, hash: &str, at: Millis) -> String {
    format!("anpi-audit-checkpoint/v1\n{tenant}\n{kind}\n{seq}\n{hash}\n{at}")
}

#[derive(sqlx::FromRow)]
struct Checkpoint {
    seq: i64,
    hash: String,
    at: i64,
    key_id: String,
    signature: String,
}

impl Store {
    /// The checkpoint keys of the configured master keys, the current one first (empty without
    /// a master key).
    pub(crate) fn checkpoint_keys(&self) -> Vec<CheckpointKey> {
        let Ok(masters) = self.master_keys() else { return Vec::new() };
        masters.all().filter_map(|m| CheckpointKey::of(m).ok()).collect()
    }

    /// The public checkpoint key of the current master key (id, SEC1 hex), if one is set.
    pub fn checkpoint_public_key(&self) -> Option<(String, String)> {
        self.checkpoint_keys().into_iter().next().map(|k| (k.id.clone(), k.public_hex()))
    }

    /// Signs the head of every chain that moved since its last checkpoint. Returns how many
    /// were signed (0 without a master key).
    pub async fn checkpoint_audit(&self, now: Millis) -> Result<usize> {
        let Some(key) = self.checkpoint_keys().into_iter().next() else { return Ok(0) };
        let heads: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT h.tenant_id, h.kind, h.seq, h.hash FROM audit_heads h WHERE h.seq > 0 AND h.seq > \
               COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.tenant_id = h.tenant_id AND c.kind = h.kind), 0)",
        )
        .fetch_all(&mut *self.system().await?)
        .await?;
        for (tenant, kind, seq, hash) in &heads {
            insert(&mut *self.system().await?, &key, *tenant, kind, *seq, hash, now).await?;
        }
        Ok(heads.len())
    }

    /// Within a purge: signs the new anchor and drops the checkpoints before it. Without a
    /// master key the old checkpoints stay (those before the anchor are then not checked).
    pub(crate) async fn carry_checkpoint_over(&self, conn: &mut sqlx::AnyConnection, tenant: i64, kind: &str, seq: i64, hash: &str, now: Millis) -> Result<()> {
        let Some(key) = self.checkpoint_keys().into_iter().next() else { return Ok(()) };
        insert(&mut *conn, &key, tenant, kind, seq, hash, now).await?;
        sqlx::query("DELETE FROM audit_checkpoints WHERE tenant_id = $1 AND kind = $2 AND seq < $3").bind(tenant).bind(kind).bind(seq).execute(&mut *conn).await?;
        Ok(())
    }

    /// Re-signs every checkpoint that verifies under a known key with `new`'s key (master key
    /// rotation). Returns how many.
    pub(crate) async fn resign_checkpoints(&self, conn: &mut sqlx::AnyConnection, known: &[CheckpointKey], new: &MasterKey) -> Result<usize> {
        let key = CheckpointKey::of(new)?;
        let rows: Vec<(i64, String, i64, String, i64, String, String)> =
            sqlx::query_as("SELECT tenant_id, kind, seq, hash, at, key_id, signature FROM audit_checkpoints").fetch_all(&mut *conn).await?;
        let mut n = 0;
        for (tenant, kind, seq, hash, at, key_id, signature) in rows {
            let m = message(tenant, &kind, seq, &hash, at);
            if key_id == key.id || !known.iter().any(|k| k.id == key_id && k.verifies(&m, &signature)) {
                continue;
            }
            sqlx::query("UPDATE audit_checkpoints SET key_id = $4, signature = $5 WHERE tenant_id = $1 AND kind = $2 AND seq = $3")
                .bind(tenant)
                .bind(&kind)
                .bind(seq)
                .bind(&key.id)
                .bind(key.sign(&m))
                .execute(&mut *conn)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Checks the chain's checkpoints against its entries with `keys` ([`Store::checkpoint_keys`]);
    /// returns how many were checked. Without keys (no master key), signatures cannot be
    /// checked and nothing is counted.
    pub(crate) async fn check_checkpoints(&self, head: &Head, rows: &[ChainRow], keys: &[CheckpointKey], problems: &mut Vec<String>) -> Result<i64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let checkpoints: Vec<Checkpoint> = sqlx::query_as("SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE tenant_id = $1 AND kind = $2 ORDER BY seq")
            .bind(head.tenant_id)
            .bind(&head.kind)
            .fetch_all(&mut *self.system().await?)
            .await?;
        let mut checked = 0;
        for c in checkpoints.iter().filter(|c| c.seq >= head.anchor_seq) {
            let m = message(head.tenant_id, &head.kind, c.seq, &c.hash, c.at);
            match keys.iter().find(|k| k.id == c.key_id) {
                None => problems.push(format!("checkpoint at entry {} is signed by an unknown key ({})", c.seq, c.key_id)),
                Some(k) if !k.verifies(&m, &c.signature) => problems.push(format!("checkpoint at entry {} has a bad signature", c.seq)),
                Some(_) => {}
            }
            let stored = if c.seq == head.anchor_seq { Some(head.anchor_hash.as_str()) } else { rows.iter().find(|r| r.seq == c.seq).map(|r| r.hash.as_str()) };
            match stored {
                Some(h) if h == c.hash => {}
                Some(_) => problems.push(format!("entry {} differs from its signed checkpoint: the chain was rewritten", c.seq)),
                None if c.seq > head.seq => problems.push(format!("a signed checkpoint records entry {} but the chain ends at {}: entries were removed", c.seq, head.seq)),
                None => {} // a gap, reported by the chain check
            }
            checked += 1;
        }
        Ok(checked)
    }
}

async fn insert<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(db: E, key: &CheckpointKey, tenant: i64, kind: &str, seq: i64, hash: &str, now: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, kind, seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, kind, seq) DO NOTHING",
    )
    .bind(tenant)
    .bind(kind)
    .bind(seq)
    .bind(hash)
    .bind(now)
    .bind(&key.id)
    .bind(key.sign(&message(tenant, kind, seq, hash, now)))
    .execute(db)
    .await?;
    Ok(())
}
