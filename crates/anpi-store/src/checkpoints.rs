//! Signed checkpoints of the audit chains. A checkpoint is a chain's (seq, hash) at a moment,
//! signed with an ECDSA P-256 key derived from the master key, which the database never holds.
//! Someone who can write the database can recompute a whole chain and its head so that the
//! hash links agree; they cannot sign, so the checkpoints no longer match and `verify` says so.
//!
//! - The housekeeping job ([`Store::checkpoint_audit`]) verifies each chain from its last
//!   checkpoint to its head and signs the head only if that stretch is intact: a rewrite made
//!   between two runs is reported, never signed.
//! - A retention purge signs the chain's new start as an *anchor* (a different message), so a
//!   start that moved without the purge (entries deleted from the front) shows.
//! - Every checkpoint is also copied outside the database: a log line (target
//!   `anpi_audit_checkpoint`) and, when configured, a JSON line appended to a file an operator
//!   ships elsewhere; `anpi audit verify --checkpoint-log FILE` compares the two, so deleting
//!   checkpoints (with the entries they cover) shows too.

use crate::audit::{hex, Head};
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
        let signing =
            SigningKey::from_slice(&master.derive(b"anpi/audit-checkpoint/v1")).map_err(|_| StoreError::Crypto("cannot derive the checkpoint key".into()))?;
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

/// A stored checkpoint; `anchor` when a purge signed it as the chain's new start.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub tenant_id: i64,
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    pub key_id: String,
    pub signature: String,
    pub anchor: i64,
}

impl Checkpoint {
    /// What the signature covers: the chain, the position and the entry hash there, the time,
    /// and whether it is a purge's anchor (a different prefix, so one cannot pass for the other).
    fn message(&self) -> String {
        let prefix = if self.anchor != 0 { "anpi-audit-anchor/v1" } else { "anpi-audit-checkpoint/v1" };
        format!("{prefix}\n{}\n{}\n{}\n{}\n{}", self.tenant_id, self.kind, self.seq, self.hash, self.at)
    }

    /// Whether one of `keys` signed it.
    pub(crate) fn signed_by(&self, keys: &[CheckpointKey]) -> std::result::Result<(), String> {
        match keys.iter().find(|k| k.id == self.key_id) {
            None => Err(format!("checkpoint at entry {} is signed by an unknown key ({})", self.seq, self.key_id)),
            Some(k) if !k.verifies(&self.message(), &self.signature) => Err(format!("checkpoint at entry {} has a bad signature", self.seq)),
            Some(_) => Ok(()),
        }
    }
}

const COLUMNS: &str = "tenant_id, kind, seq, hash, at, key_id, signature, anchor";

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

    /// Also appends every new checkpoint, as a JSON line, to this file (outside the database).
    pub fn set_checkpoint_log(&self, path: std::path::PathBuf) {
        let _ = self.checkpoint_log.set(path);
    }

    /// A chain's checkpoints, oldest first.
    pub(crate) async fn checkpoints_of(&self, tenant: i64, kind: &str) -> Result<Vec<Checkpoint>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 AND kind = $2 ORDER BY seq"))
            .bind(tenant)
            .bind(kind)
            .fetch_all(&mut *self.system().await?)
            .await?)
    }

    /// For every chain that moved since its last checkpoint: verifies the entries since that
    /// checkpoint (and the chain's start and every checkpoint's entry), then signs the head
    /// if all is well. A chain that fails is not signed: its problems are logged as errors and
    /// kept for the log page ([`Store::audit_status`]). Returns how many heads were signed (0
    /// without a master key).
    pub async fn checkpoint_audit(&self, now: Millis) -> Result<usize> {
        let keys = self.checkpoint_keys();
        let Some(key) = keys.first() else { return Ok(0) };
        let heads: Vec<Head> = sqlx::query_as(
            "SELECT h.tenant_id, h.kind, h.seq, h.hash, h.anchor_seq, h.anchor_hash FROM audit_heads h WHERE h.seq > 0 AND h.seq > \
               COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.tenant_id = h.tenant_id AND c.kind = h.kind), 0)",
        )
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut signed = 0;
        for head in &heads {
            let problems = self.verify_since_last_checkpoint(head, &keys).await?;
            if !problems.is_empty() {
                tracing::error!(tenant = head.tenant_id, kind = %head.kind, problems = ?problems, "audit chain NOT signed: it does not verify since its last checkpoint");
                self.record_check(head.tenant_id, &head.kind, false, &problems, now).await?;
                continue;
            }
            let cp = sign(key, head.tenant_id, &head.kind, head.seq, &head.hash, false, now);
            if insert(&mut *self.system().await?, &cp).await? {
                self.copy_out(&cp);
                signed += 1;
            }
            self.record_check(head.tenant_id, &head.kind, false, &[], now).await?;
        }
        Ok(signed)
    }

    /// Within a purge: signs the new start as an anchor and drops the checkpoints before it.
    /// Returns the anchor, to be copied out once the purge commits ([`Store::copy_out`]).
    pub(crate) async fn carry_checkpoint_over(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant: i64,
        kind: &str,
        seq: i64,
        hash: &str,
        now: Millis,
    ) -> Result<Option<Checkpoint>> {
        let Some(key) = self.checkpoint_keys().into_iter().next() else { return Ok(None) };
        let cp = sign(&key, tenant, kind, seq, hash, true, now);
        sqlx::query("DELETE FROM audit_checkpoints WHERE tenant_id = $1 AND kind = $2 AND seq <= $3")
            .bind(tenant)
            .bind(kind)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        insert(&mut *conn, &cp).await?;
        Ok(Some(cp))
    }

    /// Re-signs every checkpoint that verifies under a known key with `new`'s key (master key
    /// rotation). Returns how many.
    pub(crate) async fn resign_checkpoints(&self, conn: &mut sqlx::AnyConnection, known: &[CheckpointKey], new: &MasterKey) -> Result<usize> {
        let key = CheckpointKey::of(new)?;
        let rows: Vec<Checkpoint> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_checkpoints")).fetch_all(&mut *conn).await?;
        let mut n = 0;
        for cp in rows {
            if cp.key_id == key.id || cp.signed_by(known).is_err() {
                continue;
            }
            let new_cp = Checkpoint { key_id: key.id.clone(), signature: key.sign(&cp.message()), ..cp };
            sqlx::query("UPDATE audit_checkpoints SET key_id = $4, signature = $5 WHERE tenant_id = $1 AND kind = $2 AND seq = $3")
                .bind(new_cp.tenant_id)
                .bind(&new_cp.kind)
                .bind(new_cp.seq)
                .bind(&new_cp.key_id)
                .bind(&new_cp.signature)
                .execute(&mut *conn)
                .await?;
            self.copy_out(&new_cp);
            n += 1;
        }
        Ok(n)
    }

    /// Copies a checkpoint outside the database: a log line, and the checkpoint log file if set.
    pub(crate) fn copy_out(&self, cp: &Checkpoint) {
        let line = serde_json::to_string(cp).unwrap_or_default();
        tracing::info!(target: "anpi_audit_checkpoint", checkpoint = %line, "audit checkpoint signed");
        if let Some(path) = self.checkpoint_log.get() {
            use std::io::Write;
            let written = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::error!(file = %path.display(), error = %e, "cannot append to the checkpoint log");
            }
        }
    }
}

fn sign(key: &CheckpointKey, tenant: i64, kind: &str, seq: i64, hash: &str, anchor: bool, now: Millis) -> Checkpoint {
    let mut cp = Checkpoint {
        tenant_id: tenant,
        kind: kind.into(),
        seq,
        hash: hash.into(),
        at: now,
        key_id: key.id.clone(),
        signature: String::new(),
        anchor: anchor as i64,
    };
    cp.signature = key.sign(&cp.message());
    cp
}

/// Writes a checkpoint; false if the chain already had one at that position.
async fn insert<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(db: E, cp: &Checkpoint) -> Result<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO audit_checkpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, kind, seq) DO NOTHING"
    ))
    .bind(cp.tenant_id)
    .bind(&cp.kind)
    .bind(cp.seq)
    .bind(&cp.hash)
    .bind(cp.at)
    .bind(&cp.key_id)
    .bind(&cp.signature)
    .bind(cp.anchor)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
