//! Encryption at rest of contact data (docs/security.md, "Encryption at rest").
//!
//! - A **master key** (32 bytes) is given to the process (file or environment); it is never
//!   written to the database. Its id (`MasterKey::id`) is a keyed fingerprint, stored next to
//!   each key it wrapped so the right one is tried and a wrong key gives a clear error.
//! - Each tenant has **data keys** (32 random bytes) in `tenant_keys`, wrapped by the master
//!   key with XChaCha20-Poly1305 (associated data: tenant id and key id). One is `active`
//!   (new writes); `retired` ones still decrypt rows not yet re-encrypted.
//! - A field is stored as `enc1:KEY_ID:BASE64URL(nonce[24] ‖ ciphertext ‖ tag)`, sealed with
//!   associated data binding the tenant id, the column and the key id, so a value copied to
//!   another tenant or column does not decrypt. The empty string stays empty.
//! - Lookups by email use HMAC-SHA256 under a key derived from the data key.

use crate::audit::AuditEvent;
use crate::crypto::{b64, random_bytes, unb64};
use crate::{Result, Store, StoreError};
use anpi_core::Millis;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::any::Any;
use sqlx::Transaction;
use std::collections::HashMap;
use std::sync::Arc;

/// Prefix of an encrypted field value bound to its tenant and column (staged imports; older
/// contact data, re-sealed as [`PREFIX_ROW`] at start).
pub(crate) const PREFIX: &str = "enc1:";
/// Prefix of an encrypted field value bound to its tenant, column and row.
pub(crate) const PREFIX_ROW: &str = "enc2:";

/// A master key: 32 secret bytes. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).field("key", &"<redacted>").finish()
    }
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> MasterKey {
        let id = hmac(&key, b"anpi/master-key-id/v1").iter().take(8).map(|b| format!("{b:02x}")).collect();
        MasterKey { id, key }
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        MasterKey::from_bytes(random_bytes::<32>())
    }

    /// Parses 32 bytes written as 64 hex digits or base64 (standard or URL-safe, padded or
    /// not); surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<MasterKey> {
        use base64::Engine as _;
        let t = text.trim();
        let bytes: Option<Vec<u8>> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()).collect()
        } else {
            let e = &base64::engine::general_purpose::STANDARD;
            let u = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
            e.decode(t).ok().or_else(|| u.decode(t.trim_end_matches('=')).ok())
        };
        match bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()) {
            Some(k) => Ok(MasterKey::from_bytes(k)),
            None => Err(StoreError::Crypto("a master key must be 32 bytes written as 64 hex digits or base64".into())),
        }
    }

    /// The key as 64 hex digits (for writing a key file).
    pub fn to_hex(&self) -> String {
        self.key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A fingerprint naming the key (not secret; safe to log and store).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A secret derived from this key for one purpose (`label`), as HMAC-SHA256(key, label):
    /// the audit checkpoint key (kept as it is so existing checkpoints still verify).
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        hmac(&self.key, label)
    }

    /// A key derived from this one for one purpose with HKDF-SHA256 (RFC 5869); `info` names
    /// the purpose and its version. Every newer derived key uses this.
    pub(crate) fn derive_key(&self, info: &[u8]) -> [u8; 32] {
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF's 255 × 32 limit: expand cannot fail.
        let _ = hkdf::Hkdf::<Sha256>::new(Some(b"anpi master key"), &self.key).expand(info, &mut okm);
        okm
    }
}

/// The master keys a process knows: the current one (wraps new keys) and older ones (still
/// unwrap keys not yet re-wrapped, during a rotation).
#[derive(Clone, Debug)]
pub struct MasterKeys {
    current: MasterKey,
    older: Vec<MasterKey>,
}

impl MasterKeys {
    pub fn new(current: MasterKey) -> MasterKeys {
        MasterKeys { current, older: Vec::new() }
    }
    /// Also accepts keys wrapped by `old`.
    pub fn with_old(mut self, old: MasterKey) -> MasterKeys {
        if old.id != self.current.id {
            self.older.push(old);
        }
        self
    }
    pub fn current(&self) -> &MasterKey {
        &self.current
    }
    fn find(&self, id: &str) -> Option<&MasterKey> {
        self.all().find(|k| k.id == id)
    }
    /// The current key, then the older ones.
    pub(crate) fn all(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(self.older.iter())
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let Ok(mut m) = <HmacSha256 as Mac>::new_from_slice(key) else { return [0; 32] };
    m.update(msg);
    m.finalize().into_bytes().into()
}

pub(crate) fn seal_raw(key: &[u8; 32], plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let nonce = random_bytes::<24>();
    let ct = XChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(crate) fn open_raw(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    XChaCha20Poly1305::new(Key::from_slice(key)).decrypt(XNonce::from_slice(&sealed[..24]), Payload { msg: &sealed[24..], aad }).ok()
}

fn wrap_aad(tenant: i64, key_id: i64) -> Vec<u8> {
    format!("anpi/tenant-key/v1/{tenant}/{key_id}").into_bytes()
}

fn field_aad(tenant: i64, column: &str, key_id: i64) -> Vec<u8> {
    format!("anpi/field/v1/{tenant}/{column}/{key_id}").into_bytes()
}

/// The row (a person's id, an outbox row's idempotency key) is bound too: a value copied to
/// another row of the same column no longer decrypts.
fn row_aad(tenant: i64, column: &str, row: &str, key_id: i64) -> Vec<u8> {
    format!("anpi/field/v2/{tenant}/{column}/{key_id}/{}:{row}", row.len()).into_bytes()
}

pub(crate) fn wrap(master: &MasterKey, tenant: i64, key_id: i64, data_key: &[u8; 32]) -> Result<String> {
    Ok(b64(&seal_raw(&master.key, data_key, &wrap_aad(tenant, key_id))?))
}

fn unwrap(masters: &MasterKeys, tenant: i64, key_id: i64, master_id: &str, wrapped: &str) -> Result<[u8; 32]> {
    let master = masters.find(master_id).ok_or_else(|| {
        StoreError::Crypto(format!(
            "tenant key {key_id} is wrapped by master key {master_id}, but the configured master key is {} (wrong --master-key-file / ANPI_MASTER_KEY, or pass the previous key with --old-master-key-file)",
            masters.current.id
        ))
    })?;
    unb64(wrapped)
        .and_then(|w| open_raw(&master.key, &w, &wrap_aad(tenant, key_id)))
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        .ok_or_else(|| StoreError::Crypto(format!("tenant key {key_id} does not unwrap under master key {master_id} (corrupted or moved key)")))
}

/// A tenant's data keys, unwrapped: seals with the active key, opens with the key named in
/// the value.
#[derive(Clone)]
pub(crate) struct KeyRing {
    tenant: i64,
    active: i64,
    keys: HashMap<i64, Arc<[u8; 32]>>,
    /// Every contact value of the tenant is row-bound ciphertext (`tenants.sealed`): plaintext
    /// and older formats are refused, so a value planted in the database is never used.
    sealed: bool,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("tenant", &self.tenant).field("active", &self.active).finish_non_exhaustive()
    }
}

impl KeyRing {
    pub(crate) fn active_id(&self) -> i64 {
        self.active
    }

    /// Encrypts a field value; the empty string stays empty.
    pub(crate) fn seal(&self, column: &str, plain: &str) -> Result<String> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        let key = self.keys.get(&self.active).ok_or_else(|| StoreError::Crypto("no active tenant key".into()))?;
        let sealed = seal_raw(key, plain.as_bytes(), &field_aad(self.tenant, column, self.active))?;
        Ok(format!("{PREFIX}{}:{}", self.active, b64(&sealed)))
    }

    /// Decrypts a value written by [`KeyRing::seal`]. A value without the prefix is plaintext
    /// from before encryption at rest; it is refused once the tenant is sealed.
    pub(crate) fn open(&self, column: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return self.unsealed(column, stored) };
        let bad = || StoreError::Crypto(format!("{column}: cannot decrypt a value of tenant {}", self.tenant));
        let (kid, data) = rest.split_once(':').ok_or_else(bad)?;
        let kid: i64 = kid.parse().map_err(|_| bad())?;
        let key = self.keys.get(&kid).ok_or_else(bad)?;
        let plain = unb64(data).and_then(|d| open_raw(key, &d, &field_aad(self.tenant, column, kid))).ok_or_else(bad)?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    /// A plaintext value: the empty string, or legacy data of a tenant not yet sealed.
    fn unsealed(&self, column: &str, stored: &str) -> Result<String> {
        if stored.is_empty() || !self.sealed {
            return Ok(stored.to_string());
        }
        tracing::error!(tenant = self.tenant, column, "plaintext where ciphertext belongs: refused (written to the database directly?)");
        Err(StoreError::Crypto(format!("{column}: plaintext in a sealed tenant ({})", self.tenant)))
    }

    /// Encrypts a field value of one row (see [`row_aad`]); the empty string stays empty.
    pub(crate) fn seal_row(&self, column: &str, row: &str, plain: &str) -> Result<String> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        let key = self.keys.get(&self.active).ok_or_else(|| StoreError::Crypto("no active tenant key".into()))?;
        let sealed = seal_raw(key, plain.as_bytes(), &row_aad(self.tenant, column, row, self.active))?;
        Ok(format!("{PREFIX_ROW}{}:{}", self.active, b64(&sealed)))
    }

    /// Decrypts a value of one row: row-bound ciphertext; or, until the tenant is sealed, a
    /// value in an older format (column-bound or plaintext), which the start-up pass re-seals.
    pub(crate) fn open_row(&self, column: &str, row: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX_ROW) else {
            if self.sealed && !stored.is_empty() {
                tracing::error!(tenant = self.tenant, column, row, "a value not bound to its row: refused (copied or planted in the database?)");
                return Err(StoreError::Crypto(format!("{column}: a value not bound to row {row} in a sealed tenant ({})", self.tenant)));
            }
            return self.open(column, stored);
        };
        let bad = || StoreError::Crypto(format!("{column}: cannot decrypt row {row} of tenant {}", self.tenant));
        let (kid, data) = rest.split_once(':').ok_or_else(bad)?;
        let kid: i64 = kid.parse().map_err(|_| bad())?;
        let key = self.keys.get(&kid).ok_or_else(bad)?;
        let plain = unb64(data).and_then(|d| open_raw(key, &d, &row_aad(self.tenant, column, row, kid))).ok_or_else(bad)?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    /// The key id a stored value was sealed with (None: plaintext or empty).
    pub(crate) fn key_of(stored: &str) -> Option<i64> {
        stored.strip_prefix(PREFIX).or_else(|| stored.strip_prefix(PREFIX_ROW))?.split_once(':')?.0.parse().ok()
    }

    /// Keyed hashes of a normalised email under each of the tenant's keys (active first).
    pub(crate) fn email_hashes(&self, email: &str) -> Vec<(i64, String)> {
        let mut ids: Vec<i64> = self.keys.keys().copied().collect();
        ids.sort_by_key(|id| (*id != self.active, -*id));
        ids.into_iter().filter_map(|id| self.keys.get(&id).map(|k| (id, email_hash(k, id, email)))).collect()
    }

    pub(crate) fn active_email_hash(&self, email: &str) -> Result<(i64, String)> {
        let key = self.keys.get(&self.active).ok_or_else(|| StoreError::Crypto("no active tenant key".into()))?;
        Ok((self.active, email_hash(key, self.active, email)))
    }
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn email_hash(data_key: &[u8; 32], key_id: i64, email: &str) -> String {
    let index_key = hmac(data_key, b"anpi/email-index/v1");
    let mut msg = key_id.to_be_bytes().to_vec();
    msg.extend_from_slice(normalise_email(email).as_bytes());
    hmac(&index_key, &msg).iter().map(|b| format!("{b:02x}")).collect()
}

/// The master keys of a store (shared by its clones).
/// Unwrapped data keys by key id, with their tenant.
type DataKeyCache = std::sync::Mutex<HashMap<i64, (i64, Arc<[u8; 32]>)>>;

#[derive(Default)]
pub(crate) struct KeyState {
    masters: std::sync::RwLock<Option<MasterKeys>>,
    /// Unwrapped data keys by key id (with their tenant). A key's bytes never change (only
    /// its wrapping does), so a running process keeps working through a master key rotation.
    data: DataKeyCache,
}

impl Store {
    /// Gives the store its master keys (kept in memory only).
    pub fn set_master_keys(&self, keys: MasterKeys) {
        if let Ok(mut m) = self.keys.masters.write() {
            *m = Some(keys);
        }
        if let Ok(mut d) = self.keys.data.lock() {
            d.clear();
        }
    }

    /// Unwraps every tenant key with the configured master keys (at start: a wrong master key
    /// is reported at once, naming the key ids). Returns how many keys there are.
    pub async fn check_master_keys(&self) -> Result<usize> {
        let rows: Vec<(i64, i64, String, String)> =
            sqlx::query_as("SELECT id, tenant_id, master_id, wrapped FROM tenant_keys").fetch_all(&mut *self.system().await?).await?;
        let masters = self.master_keys()?;
        for (id, tenant, master_id, wrapped) in &rows {
            self.cached_unwrap(&masters, *tenant, *id, master_id, wrapped)?;
        }
        Ok(rows.len())
    }

    fn cached_unwrap(&self, masters: &MasterKeys, tenant: i64, id: i64, master_id: &str, wrapped: &str) -> Result<Arc<[u8; 32]>> {
        if let Ok(d) = self.keys.data.lock() {
            if let Some((t, k)) = d.get(&id) {
                if *t == tenant {
                    return Ok(k.clone());
                }
            }
        }
        let k = Arc::new(unwrap(masters, tenant, id, master_id, wrapped)?);
        if let Ok(mut d) = self.keys.data.lock() {
            d.insert(id, (tenant, k.clone()));
        }
        Ok(k)
    }

    /// Connects and sets the master keys.
    pub async fn connect_with_keys(url: &str, keys: MasterKeys) -> Result<Store> {
        let s = Store::connect(url).await?;
        s.set_master_keys(keys);
        Ok(s)
    }

    pub(crate) fn master_keys(&self) -> Result<MasterKeys> {
        self.keys
            .masters
            .read()
            .ok()
            .and_then(|m| m.clone())
            .ok_or_else(|| StoreError::Crypto("no master key configured: pass --master-key-file FILE or set ANPI_MASTER_KEY".into()))
    }

    /// Creates the tenant's active data key if it has none (used when a tenant is created and
    /// lazily on first use).
    pub(crate) async fn ensure_tenant_key(&self, tenant: i64, now: Millis) -> Result<()> {
        let masters = self.master_keys()?;
        let mut tx = self.scoped_tx(&crate::TenantScope::new(tenant)).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tenant_keys (tenant_id, master_id, wrapped, state, created_at) VALUES ($1, $2, '', 'active', $3) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(tenant)
        .bind(masters.current.id())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            let wrapped = wrap(&masters.current, tenant, id, &random_bytes::<32>())?;
            sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE id = $2").bind(wrapped).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's data keys, creating the first one if needed. Never call this while holding
    /// a transaction (SQLite has one connection).
    pub(crate) async fn keyring(&self, tenant: i64) -> Result<KeyRing> {
        for attempt in 0..2 {
            let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
                "SELECT k.id, k.master_id, k.wrapped, k.state, t.sealed FROM tenant_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.tenant_id = $1",
            )
            .bind(tenant)
            .fetch_all(&mut *self.scoped(&crate::TenantScope::new(tenant)).await?)
            .await?;
            if let Some(active) = rows.iter().find(|r| r.3 == "active").map(|r| r.0) {
                let masters = self.master_keys()?;
                let mut keys = HashMap::new();
                for (id, master_id, wrapped, _, _) in &rows {
                    keys.insert(*id, self.cached_unwrap(&masters, tenant, *id, master_id, wrapped)?);
                }
                let sealed = rows.iter().any(|r| r.4 != 0);
                return Ok(KeyRing { tenant, active, keys, sealed });
            }
            if attempt == 0 {
                // Only the new key's creation time: not worth a `now` on every reader.
                self.ensure_tenant_key(tenant, anpi_core::Clock::now(&anpi_core::SystemClock)).await?;
            }
        }
        Err(StoreError::Crypto(format!("tenant {tenant} has no active data key")))
    }

    /// Re-wraps every tenant key under `new` (which becomes the master key), in one
    /// transaction. Keys are unwrapped with whichever known master key wrapped them (the
    /// configured ones and `new`), and the audit checkpoints are re-signed with `new`'s key.
    /// Returns how many keys were re-wrapped.
    pub async fn rewrap_tenant_keys(&self, new: &MasterKey) -> Result<usize> {
        let known = match self.master_keys() {
            Ok(k) => k.with_old(new.clone()),
            Err(_) => MasterKeys::new(new.clone()),
        };
        let mut tx = self.system_tx().await?;
        let rows: Vec<(i64, i64, String, String)> =
            sqlx::query_as("SELECT id, tenant_id, master_id, wrapped FROM tenant_keys ORDER BY id").fetch_all(&mut *tx).await?;
        let mut n = 0;
        for (id, tenant, master_id, wrapped) in rows {
            if master_id == new.id() {
                continue;
            }
            let key = unwrap(&known, tenant, id, &master_id, &wrapped)?;
            let rewrapped = wrap(new, tenant, id, &key)?;
            sqlx::query("UPDATE tenant_keys SET master_id = $1, wrapped = $2 WHERE id = $3").bind(new.id()).bind(rewrapped).bind(id).execute(&mut *tx).await?;
            n += 1;
        }
        let checkpoint_keys: Vec<_> = known.all().filter_map(|m| crate::checkpoints::CheckpointKey::of(m).ok()).collect();
        self.resign_checkpoints(&mut tx, &checkpoint_keys, new).await?;
        tx.commit().await?;
        let older: Vec<MasterKey> = std::iter::once(known.current.clone()).chain(known.older).filter(|k| k.id != new.id).collect();
        self.set_master_keys(MasterKeys { current: new.clone(), older });
        Ok(n)
    }

    /// Starts a new active data key for the tenant; the old one is retired (it still decrypts
    /// rows until [`Store::reencrypt_tenant`] has rewritten them). Returns the new key id.
    pub async fn rotate_tenant_key(&self, scope: &crate::TenantScope, audit: &AuditEvent<'_>, now: Millis) -> Result<i64> {
        let masters = self.master_keys()?;
        // Fail early, before retiring anything, if the existing keys cannot be unwrapped.
        self.keyring(scope.tenant_id()).await?;
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("UPDATE tenant_keys SET state = 'retired' WHERE tenant_id = $1 AND state = 'active'").bind(scope.tenant_id()).execute(&mut *tx).await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO tenant_keys (tenant_id, master_id, wrapped, state, created_at) VALUES ($1, $2, '', 'active', $3) RETURNING id")
                .bind(scope.tenant_id())
                .bind(masters.current.id())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
        let wrapped = wrap(&masters.current, scope.tenant_id(), id, &random_bytes::<32>())?;
        sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE id = $2").bind(wrapped).bind(id).execute(&mut *tx).await?;
        self.record(&mut tx, scope, &audit.on(format!("key:{id}")), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Re-encrypts, for every tenant with retired keys, what is still under them (the
    /// service's hourly pass: finishes rotations that were interrupted). Returns rows changed.
    pub async fn reencrypt_retired(&self, batch: i64) -> Result<usize> {
        let tenants: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM tenant_keys WHERE state = 'retired' ORDER BY tenant_id")
            .fetch_all(&mut *self.system().await?)
            .await?;
        let mut changed = 0;
        for t in tenants {
            changed += self.reencrypt_tenant(&crate::TenantScope::new(t), batch).await?;
        }
        Ok(changed)
    }

    /// Crypto-shredding: destroys every data key of the tenant (and the keyed email hashes),
    /// so its encrypted data can never be decrypted again, in the database, in its backups and
    /// in copies of the SQLite files. Irreversible. Returns how many keys were destroyed.
    pub async fn shred_tenant_keys(&self, scope: &crate::TenantScope, audit: &AuditEvent<'_>, now: Millis) -> Result<u64> {
        let mut tx = self.scoped_tx(scope).await?;
        sqlx::query("DELETE FROM person_email_hashes WHERE tenant_id = $1").bind(scope.tenant_id()).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1").bind(scope.tenant_id()).execute(&mut *tx).await?.rows_affected();
        self.record(&mut tx, scope, &AuditEvent { detail: format!("{n} data key(s) destroyed"), ..audit.clone() }, now).await?;
        tx.commit().await?;
        if let Ok(mut d) = self.keys.data.lock() {
            d.retain(|_, (tenant, _)| *tenant != scope.tenant_id());
        }
        Ok(n)
    }

    /// Re-encrypts the tenant's contact data under its active key, `batch` rows per
    /// transaction (safe while the service runs: each row names its key, and a row changed
    /// meanwhile is skipped and picked up by the next pass). Returns how many rows changed.
    pub async fn reencrypt_tenant(&self, scope: &crate::TenantScope, batch: i64) -> Result<usize> {
        let t = scope.tenant_id();
        let ring = self.keyring(t).await?;
        let mut changed = 0;
        let mut last = 0i64;
        loop {
            let rows: Vec<(i64, String, String, String)> =
                sqlx::query_as("SELECT id, emails, phone, undeliverable_address FROM people WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(t)
                    .bind(last)
                    .bind(batch.max(1))
                    .fetch_all(&mut *self.scoped(scope).await?)
                    .await?;
            let Some(l) = rows.last() else { break };
            last = l.0;
            let mut tx = self.scoped_tx(scope).await?;
            for (id, emails, phone, bounced) in rows {
                let stale = |v: &str| !v.is_empty() && (!v.starts_with(PREFIX_ROW) || KeyRing::key_of(v) != Some(ring.active_id()));
                if !stale(&emails) && !stale(&phone) && !stale(&bounced) {
                    continue;
                }
                let row = id.to_string();
                let open_bounced = || if bounced.is_empty() { Ok(String::new()) } else { ring.open_row("people.undeliverable_address", &row, &bounced) };
                let (plain_emails, plain_phone, plain_bounced) =
                    match (ring.open_row("people.emails", &row, &emails), ring.open_row("people.phone", &row, &phone), open_bounced()) {
                        (Ok(e), Ok(p), Ok(b)) => (e, p, b),
                        _ => continue, // refused and logged: left for an admin to re-enter
                    };
                let resealed_bounced =
                    if plain_bounced.is_empty() { String::new() } else { ring.seal_row("people.undeliverable_address", &row, &plain_bounced)? };
                let n = sqlx::query("UPDATE people SET emails = $1, phone = $2, undeliverable_address = $3 WHERE tenant_id = $4 AND id = $5 AND emails = $6 AND phone = $7 AND undeliverable_address = $8")
                    .bind(ring.seal_row("people.emails", &row, &plain_emails)?)
                    .bind(ring.seal_row("people.phone", &row, &plain_phone)?)
                    .bind(resealed_bounced)
                    .bind(t)
                    .bind(id)
                    .bind(&emails)
                    .bind(&phone)
                    .bind(&bounced)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    let list: Vec<String> = plain_emails.split('\n').filter(|e| !e.is_empty()).map(String::from).collect();
                    write_email_hashes(&mut tx, &ring, t, id, &list).await?;
                    changed += 1;
                }
            }
            tx.commit().await?;
        }
        let staged: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, content FROM csv_imports WHERE tenant_id = $1").bind(t).fetch_all(&mut *self.scoped(scope).await?).await?;
        for (id, content) in staged {
            if KeyRing::key_of(&content) == Some(ring.active_id()) || content.is_empty() {
                continue;
            }
            let Ok(plain) = ring.open("csv_imports.content", &content) else { continue };
            sqlx::query("UPDATE csv_imports SET content = $1 WHERE tenant_id = $2 AND id = $3 AND content = $4")
                .bind(ring.seal("csv_imports.content", &plain)?)
                .bind(t)
                .bind(id)
                .bind(&content)
                .execute(&mut *self.scoped(scope).await?)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Encrypts contact data still stored as plaintext (rows written before encryption at
    /// rest, migration 0008). Run at start after `migrate`; cheap when there is nothing to do.
    /// Returns how many rows were encrypted.
    pub async fn encrypt_existing(&self) -> Result<usize> {
        let (column_bound, row_bound) = (format!("{PREFIX}%"), format!("{PREFIX_ROW}%"));
        // Tenants not sealed yet, and (whatever the flag says) any with a value not row-bound.
        let tenants: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM tenants WHERE sealed = 0 \
             UNION SELECT DISTINCT tenant_id FROM people WHERE (emails <> '' AND emails NOT LIKE $2) OR (phone <> '' AND phone NOT LIKE $2) \
             UNION SELECT DISTINCT tenant_id FROM csv_imports WHERE content <> '' AND content NOT LIKE $1",
        )
        .bind(&column_bound)
        .bind(&row_bound)
        .fetch_all(&mut *self.system().await?)
        .await?;
        let mut n = 0;
        for t in tenants {
            let scope = crate::TenantScope::new(t);
            n += self.reencrypt_tenant(&scope, 500).await?;
            n += self.reseal_pending_outbox(&scope).await?;
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM people WHERE tenant_id = $1 AND ((emails <> '' AND emails NOT LIKE $2) OR (phone <> '' AND phone NOT LIKE $2))",
            )
            .bind(t)
            .bind(&row_bound)
            .fetch_one(&mut *self.scoped(&scope).await?)
            .await?;
            if left == 0 {
                sqlx::query("UPDATE tenants SET sealed = 1 WHERE id = $1").bind(t).execute(&mut *self.scoped(&scope).await?).await?;
            } else {
                tracing::error!(tenant = t, rows = left, "contact data that is not row-bound ciphertext remains: the tenant stays unsealed");
            }
        }
        if n > 0 {
            tracing::info!(rows = n, "encrypted existing contact data");
        }
        Ok(n)
    }

    /// Re-seals the tenant's pending system mail bound to its row (the idempotency key).
    async fn reseal_pending_outbox(&self, scope: &crate::TenantScope) -> Result<usize> {
        let ring = self.keyring(scope.tenant_id()).await?;
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, idempotency_key, to_addrs, body FROM outbox WHERE tenant_id = $1 AND status = 'pending' AND kind = 'system' AND to_addrs NOT LIKE $2",
        )
        .bind(scope.tenant_id())
        .bind(format!("{PREFIX_ROW}%"))
        .fetch_all(&mut *self.scoped(scope).await?)
        .await?;
        let mut n = 0;
        for (id, key, to, body) in rows {
            let (Ok(to), Ok(body)) = (ring.open_row("outbox.to_addrs", &key, &to), ring.open_row("outbox.body", &key, &body)) else { continue };
            sqlx::query("UPDATE outbox SET to_addrs = $1, body = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(ring.seal_row("outbox.to_addrs", &key, &to)?)
                .bind(ring.seal_row("outbox.body", &key, &body)?)
                .bind(scope.tenant_id())
                .bind(id)
                .execute(&mut *self.scoped(scope).await?)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Replaces a person's email hashes (under the active key).
pub(crate) async fn write_email_hashes(tx: &mut Transaction<'static, Any>, ring: &KeyRing, tenant: i64, person: i64, emails: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM person_email_hashes WHERE tenant_id = $1 AND person_id = $2").bind(tenant).bind(person).execute(&mut **tx).await?;
    for e in emails {
        let (kid, h) = ring.active_email_hash(e)?;
        sqlx::query("INSERT INTO person_email_hashes (tenant_id, person_id, key_id, hash) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(person)
            .bind(kid)
            .bind(h)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_parsing_and_redaction() {
        let k = MasterKey::generate();
        let hex = k.to_hex();
        assert_eq!(MasterKey::parse(&format!("  {hex}\n")).unwrap().id(), k.id());
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(k.key);
        assert_eq!(MasterKey::parse(&b).unwrap().id(), k.id());
        assert!(MasterKey::parse("short").is_err());
        let dbg = format!("{:?}", MasterKeys::new(k.clone()));
        assert!(!dbg.contains(&hex) && dbg.contains("redacted"), "{dbg}");
    }

    #[test]
    fn fields_are_bound_to_tenant_and_column() {
        let key = Arc::new(random_bytes::<32>());
        let a = KeyRing { tenant: 1, active: 7, keys: HashMap::from([(7, key.clone())]), sealed: true };
        let b = KeyRing { tenant: 2, active: 7, keys: HashMap::from([(7, key)]), sealed: true };
        let c = a.seal("people.emails", "one@example.jp").unwrap();
        assert!(c.starts_with("enc1:7:") && !c.contains("example"));
        assert_eq!(a.open("people.emails", &c).unwrap(), "one@example.jp");
        assert!(a.open("people.phone", &c).is_err(), "another column");
        assert!(b.open("people.emails", &c).is_err(), "another tenant, even with the same key bytes");
        assert_eq!(a.seal("people.phone", "").unwrap(), "");
        assert_eq!(a.email_hashes(" One@Example.JP ")[0], a.active_email_hash("one@example.jp").unwrap());
    }

    /// Contact values are bound to their row too; a sealed tenant refuses plaintext and values
    /// in the older, column-bound format (so nothing planted or copied in the database is used).
    #[test]
    fn fields_are_bound_to_their_row_and_sealed_tenants_refuse_plaintext() {
        let key = Arc::new(random_bytes::<32>());
        let sealed = KeyRing { tenant: 1, active: 7, keys: HashMap::from([(7, key.clone())]), sealed: true };
        let c = sealed.seal_row("people.emails", "41", "one@example.jp").unwrap();
        assert!(c.starts_with("enc2:7:"));
        assert_eq!(sealed.open_row("people.emails", "41", &c).unwrap(), "one@example.jp");
        assert!(sealed.open_row("people.emails", "42", &c).is_err(), "copied to another person");
        assert!(sealed.open_row("people.emails", "41", "attacker@evil.example").is_err(), "planted plaintext");
        let old = sealed.seal("people.emails", "one@example.jp").unwrap();
        assert!(sealed.open_row("people.emails", "41", &old).is_err(), "column-bound value in a sealed tenant");
        assert_eq!(sealed.open_row("people.emails", "41", "").unwrap(), "");
        let legacy = KeyRing { sealed: false, ..sealed };
        assert_eq!(legacy.open_row("people.emails", "41", "plain@example.jp").unwrap(), "plain@example.jp", "before the start-up pass");
        assert_eq!(legacy.open_row("people.emails", "41", &old).unwrap(), "one@example.jp");
    }
}
