//! DKIM signing keys (RFC 6376), per sending domain and selector. Instance data, like the
//! operators: no tenant rows. The private key is stored sealed (XChaCha20-Poly1305) under a key
//! derived from the master key, bound to its domain and selector, with the id of the master key
//! that sealed it; a database copy alone cannot sign mail. `anpi keys rotate` re-seals them.

use crate::crypto::{b64, unb64};
use crate::keys::{open_raw, seal_raw, MasterKey};
use crate::{Problem, Result, Store, StoreError};
use anpi_core::Millis;

/// A DKIM key: `algorithm` is `rsa` (PKCS#1 PEM private key) or `ed25519` (base64 of the
/// 32-byte secret); `public_key` is the base64 `p=` value of its DNS record. `Debug` hides the
/// private key.
#[derive(Clone)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: Millis,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey").field("domain", &self.domain).field("selector", &self.selector).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl DkimKey {
    /// The DNS TXT record to publish: name and value.
    pub fn dns_record(&self) -> (String, String) {
        (format!("{}._domainkey.{}", self.selector, self.domain), format!("v=DKIM1; k={}; p={}", self.algorithm, self.public_key))
    }
}

const LABEL: &[u8] = b"anpi/dkim-private-key/v1";

fn aad(domain: &str, selector: &str) -> Vec<u8> {
    format!("dkim\n{domain}\n{selector}").into_bytes()
}

/// `MASTER_ID:BASE64(nonce ‖ ciphertext ‖ tag)`.
fn seal(master: &MasterKey, domain: &str, selector: &str, private: &str) -> Result<String> {
    let sealed = seal_raw(&master.derive_key(LABEL), private.as_bytes(), &aad(domain, selector))?;
    Ok(format!("{}:{}", master.id(), b64(&sealed)))
}

#[derive(sqlx::FromRow)]
struct Row {
    domain: String,
    selector: String,
    algorithm: String,
    private_sealed: String,
    public_key: String,
    created_at: i64,
}

impl Store {
    /// Adds (or replaces) the key of a domain and selector, sealed under the current master key.
    pub async fn save_dkim_key(&self, key: &DkimKey) -> Result<()> {
        let (domain, selector) = (key.domain.trim().to_lowercase(), key.selector.trim().to_lowercase());
        let valid =
            |s: &str| !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid(&domain) || !valid(&selector) {
            return Err(StoreError::Invalid(Problem::DkimName));
        }
        if key.algorithm != "rsa" && key.algorithm != "ed25519" {
            return Err(StoreError::Invalid(Problem::DkimAlgorithm));
        }
        let sealed = seal(self.master_keys()?.current(), &domain, &selector, &key.private_key)?;
        sqlx::query(
            "INSERT INTO dkim_keys (domain, selector, algorithm, private_sealed, public_key, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (domain, selector) DO UPDATE SET algorithm = excluded.algorithm, private_sealed = excluded.private_sealed, \
             public_key = excluded.public_key, created_at = excluded.created_at",
        )
        .bind(&domain)
        .bind(&selector)
        .bind(&key.algorithm)
        .bind(sealed)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every key, newest first, private keys opened (a key that does not open is an error: a
    /// wrong master key, or a value changed in the database).
    pub async fn dkim_keys(&self) -> Result<Vec<DkimKey>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT domain, selector, algorithm, private_sealed, public_key, created_at FROM dkim_keys ORDER BY created_at DESC, domain, selector",
        )
        .fetch_all(&self.pool)
        .await?;
        let masters = self.master_keys()?;
        rows.into_iter()
            .map(|r| {
                let bad = || StoreError::Crypto(format!("the DKIM key {}._domainkey.{} does not open with the configured master keys", r.selector, r.domain));
                let (master_id, data) = r.private_sealed.split_once(':').ok_or_else(bad)?;
                let master = masters.all().find(|m| m.id() == master_id).ok_or_else(bad)?;
                let plain = unb64(data).and_then(|d| open_raw(&master.derive_key(LABEL), &d, &aad(&r.domain, &r.selector))).ok_or_else(bad)?;
                let private_key = String::from_utf8(plain).map_err(|_| bad())?;
                Ok(DkimKey { domain: r.domain, selector: r.selector, algorithm: r.algorithm, private_key, public_key: r.public_key, created_at: r.created_at })
            })
            .collect()
    }

    /// The newest key of `domain`, if any.
    pub async fn dkim_key_for(&self, domain: &str) -> Result<Option<DkimKey>> {
        let domain = domain.trim().to_lowercase();
        Ok(self.dkim_keys().await?.into_iter().find(|k| k.domain == domain))
    }

    /// Removes a key; false if there was none.
    pub async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2")
            .bind(domain.trim().to_lowercase())
            .bind(selector.trim().to_lowercase())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Re-seals every DKIM key under `new` (after a master key rotation). Returns how many.
    pub async fn reseal_dkim_keys(&self, new: &MasterKey) -> Result<usize> {
        let keys = self.dkim_keys().await?;
        for k in &keys {
            let sealed = seal(new, &k.domain, &k.selector, &k.private_key)?;
            sqlx::query("UPDATE dkim_keys SET private_sealed = $1 WHERE domain = $2 AND selector = $3")
                .bind(sealed)
                .bind(&k.domain)
                .bind(&k.selector)
                .execute(&self.pool)
                .await?;
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::stores;

    #[tokio::test]
    async fn dkim_keys_are_sealed_and_bound_to_their_name_on_every_engine() {
        for (s, _guard) in stores().await {
            let key = DkimKey {
                domain: "Mail.Example.JP".into(),
                selector: "anpi1".into(),
                algorithm: "ed25519".into(),
                private_key: "c2VjcmV0".into(),
                public_key: "cHVi".into(),
                created_at: 5,
            };
            s.save_dkim_key(&key).await.unwrap();
            let stored: String = sqlx::query_scalar("SELECT private_sealed FROM dkim_keys").fetch_one(&s.pool).await.unwrap();
            assert!(!stored.contains("c2VjcmV0"), "sealed: {stored}");
            let got = s.dkim_key_for("mail.example.jp").await.unwrap().unwrap();
            assert_eq!((got.private_key.as_str(), got.selector.as_str()), ("c2VjcmV0", "anpi1"));
            assert_eq!(got.dns_record(), ("anpi1._domainkey.mail.example.jp".into(), "v=DKIM1; k=ed25519; p=cHVi".into()));
            assert!(s.save_dkim_key(&DkimKey { selector: "bad selector".into(), ..key.clone() }).await.is_err());

            // A sealed key moved to another name does not open.
            sqlx::query("INSERT INTO dkim_keys (domain, selector, algorithm, private_sealed, public_key, created_at) SELECT 'evil.example', selector, algorithm, private_sealed, public_key, 9 FROM dkim_keys")
                .execute(&s.pool)
                .await
                .unwrap();
            assert!(matches!(s.dkim_keys().await, Err(StoreError::Crypto(_))));
            assert!(s.remove_dkim_key("evil.example", "anpi1").await.unwrap());

            // After a rotation the key opens with the new master key alone.
            let new = MasterKey::generate();
            assert_eq!(s.reseal_dkim_keys(&new).await.unwrap(), 1);
            s.set_master_keys(crate::MasterKeys::new(new));
            assert_eq!(s.dkim_key_for("mail.example.jp").await.unwrap().unwrap().private_key, "c2VjcmV0");
        }
    }
}
