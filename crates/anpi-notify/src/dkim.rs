//! DKIM (RFC 6376): keys generated for `anpi dkim generate`, and the signer the outbox worker
//! applies to every message of a domain that has a key. Signing is lettre's (`dkim_sign`);
//! keys come from the same crates it signs with (`rsa`, `ed25519-dalek`). An RSA-2048
//! signature costs about a millisecond of CPU, so signing runs on the blocking pool.

use anpi_store::DkimKey;
use base64::Engine as _;
use lettre::message::dkim::{DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::header::HeaderName;
use lettre::Message;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePublicKey;
use std::sync::Arc;

/// A fresh key pair for `domain` and `selector`: `rsa` (2048 bits) or `ed25519` (RFC 8463).
pub fn generate(domain: &str, selector: &str, algorithm: &str, now: anpi_core::Millis) -> Result<DkimKey, String> {
    let private_key = match algorithm {
        "rsa" => {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| format!("RSA key generation: {e}"))?;
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| format!("RSA key encoding: {e}"))?.to_string()
        }
        "ed25519" => base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
        other => return Err(format!("unknown DKIM algorithm {other:?} (rsa or ed25519)")),
    };
    from_private(domain, selector, algorithm, &private_key, now)
}

/// The key with its DNS public key, from a private key: PKCS#1 PEM (`rsa`) or the base64
/// 32-byte secret (`ed25519`).
pub fn from_private(domain: &str, selector: &str, algorithm: &str, private_key: &str, now: anpi_core::Millis) -> Result<DkimKey, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let public_key = match algorithm {
        "rsa" => {
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(private_key).map_err(|e| format!("not a PKCS#1 PEM RSA private key: {e}"))?;
            b64.encode(key.to_public_key().to_public_key_der().map_err(|e| format!("RSA public key encoding: {e}"))?.as_bytes())
        }
        "ed25519" => {
            let secret: [u8; 32] = b64.decode(private_key).ok().and_then(|b| b.try_into().ok()).ok_or("an Ed25519 key is 32 bytes in base64")?;
            b64.encode(ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key().to_bytes())
        }
        other => return Err(format!("unknown DKIM algorithm {other:?} (rsa or ed25519)")),
    };
    Ok(DkimKey {
        domain: domain.to_lowercase(),
        selector: selector.to_lowercase(),
        algorithm: algorithm.into(),
        private_key: private_key.into(),
        public_key,
        created_at: now,
    })
}

/// Signs messages of one domain. Cheap to clone.
#[derive(Clone)]
pub struct DkimSigner {
    config: Arc<DkimConfig>,
    /// `selector._domainkey.domain`, for logs.
    pub name: String,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// Relaxed/relaxed canonicalization (survives the header folding and whitespace changes of
    /// relays), over the headers a reader sees and the ones that identify the message.
    pub fn new(key: &DkimKey) -> Result<DkimSigner, String> {
        let algorithm = match key.algorithm.as_str() {
            "rsa" => DkimSigningAlgorithm::Rsa,
            "ed25519" => DkimSigningAlgorithm::Ed25519,
            other => return Err(format!("unknown DKIM algorithm {other:?}")),
        };
        let signing = DkimSigningKey::new(&key.private_key, algorithm).map_err(|e| format!("DKIM key of {}: {e}", key.domain))?;
        let headers = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"]
            .into_iter()
            .map(HeaderName::new_from_ascii_str)
            .collect();
        let canonicalization = DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
        let config = DkimConfig::new(key.selector.clone(), key.domain.clone(), signing, headers, canonicalization);
        Ok(DkimSigner { config: Arc::new(config), name: format!("{}._domainkey.{}", key.selector, key.domain) })
    }

    /// Adds the `DKIM-Signature` header, on the blocking pool.
    pub async fn sign(&self, mut message: Message) -> Result<Message, String> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            lettre::message::dkim::dkim_sign(&mut message, &config);
            message
        })
        .await
        .map_err(|e| format!("DKIM signing: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_keys_sign() {
        for algorithm in ["ed25519", "rsa"] {
            let key = generate("Example.JP", "s1", algorithm, 0).unwrap();
            assert_eq!(key.domain, "example.jp");
            let signer = DkimSigner::new(&key).unwrap();
            let m =
                Message::builder().from("a@example.jp".parse().unwrap()).to("b@example.jp".parse().unwrap()).subject("件名").body("本文".to_string()).unwrap();
            let signed = String::from_utf8(signer.sign(m).await.unwrap().formatted()).unwrap();
            let header = signed.lines().find(|l| l.starts_with("DKIM-Signature:")).unwrap_or_default();
            assert!(header.contains(if algorithm == "rsa" { "a=rsa-sha256" } else { "a=ed25519-sha256" }), "{header}");
            assert!(header.contains("d=example.jp") && header.contains("s=s1"), "{header}");
        }
        assert!(generate("example.jp", "s1", "dsa", 0).is_err());
        let key = generate("example.jp", "s1", "ed25519", 0).unwrap();
        assert_eq!(from_private("example.jp", "s1", "ed25519", &key.private_key, 0).unwrap().public_key, key.public_key);
        assert!(from_private("example.jp", "s1", "rsa", "not a key", 0).is_err());
    }
}
