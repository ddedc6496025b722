//! Answers through the signed per-recipient link. No login: the token is the credential.

use crate::crypto::{b64, unb64};
use crate::keys::MasterKey;
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::survey::{Answers, Survey};
use anpi_core::Millis;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the answer page shows.
#[derive(Debug, Clone)]
pub struct AnswerContext {
    pub scope: TenantScope,
    pub recipient_id: i64,
    pub name: String,
    pub language: String,
    pub tenant_name: String,
    pub title: String,
    pub message: String,
    pub drill: bool,
    pub closed: bool,
    /// When the incident closed: links stop opening a grace period later (the web layer's setting).
    pub closed_at: Option<Millis>,
    pub survey: Survey,
    pub answers: Option<Answers>,
    pub answered_at: Option<i64>,
    /// The tenant's answer-page IP allowlist (`Allowlists::answer`), read with the rest.
    pub allowlist: String,
}

#[derive(sqlx::FromRow)]
struct AnswerDb {
    tenant_id: i64,
    name: String,
    language: String,
    tenant_name: String,
    title: String,
    message: String,
    drill: i64,
    closed_at: Option<i64>,
    survey: String,
    answers: Option<String>,
    answered_at: Option<i64>,
    allowlist: Option<String>,
}

/// Answer links, version 2: `base64url(2 ‖ recipient id (8 bytes, big-endian) ‖ tag)`, the tag
/// being HMAC-SHA256 over a label and the id, truncated to 128 bits, under a key derived from
/// the master key (HKDF, info `anpi/answer-link/v2`). The database holds no link key, so a copy
/// of it cannot make a link; every configured master key is tried, so links made before a
/// master key rotation keep working while the old key is configured.
const LINK_VERSION: u8 = 2;

fn link_key(master: &MasterKey) -> [u8; 32] {
    master.derive_key(b"anpi/answer-link/v2")
}

fn link_tag(key: &[u8; 32], recipient: i64) -> [u8; 16] {
    let mut tag = [0u8; 16];
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) {
        m.update(b"anpi/answer/v2");
        m.update(&recipient.to_be_bytes());
        tag.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
    tag
}

pub(crate) fn link_token(key: &[u8; 32], recipient: i64) -> String {
    let mut raw = vec![LINK_VERSION];
    raw.extend_from_slice(&recipient.to_be_bytes());
    raw.extend_from_slice(&link_tag(key, recipient));
    b64(&raw)
}

/// The recipient a token names, if one of `keys` made it; `None` for anything else (forged,
/// malformed, another version).
fn link_recipient(keys: &[[u8; 32]], token: &str) -> Option<i64> {
    use subtle::ConstantTimeEq;
    if token.len() > 64 {
        return None;
    }
    let raw = unb64(token)?;
    let (version, rest) = raw.split_first()?;
    if *version != LINK_VERSION || rest.len() != 24 {
        return None;
    }
    let (id, tag) = rest.split_at(8);
    let recipient = i64::from_be_bytes(id.try_into().ok()?);
    keys.iter().any(|k| bool::from(link_tag(k, recipient).ct_eq(tag))).then_some(recipient)
}

impl Store {
    /// The answer-link keys of the configured master keys, the current one first.
    pub(crate) fn link_keys(&self) -> Result<Vec<[u8; 32]>> {
        Ok(self.master_keys()?.all().map(link_key).collect())
    }

    /// The answer-link token of a recipient (under the current master key).
    pub async fn answer_token(&self, recipient_id: i64) -> Result<String> {
        let keys = self.link_keys()?;
        let key = keys.first().ok_or_else(|| StoreError::Crypto("no master key".into()))?;
        Ok(link_token(key, recipient_id))
    }

    /// Resolves an answer-link token; `None` for anything forged, malformed or unknown.
    pub async fn answer_context(&self, token: &str) -> Result<Option<AnswerContext>> {
        let Some(rid) = link_recipient(&self.link_keys()?, token) else { return Ok(None) };
        let row: Option<AnswerDb> = sqlx::query_as(
            "SELECT r.tenant_id, r.name, r.language, t.name AS tenant_name, i.title, i.message, i.drill, i.closed_at, i.survey, r.answers, r.answered_at, \
             s.answer_allowlist AS allowlist FROM recipients r JOIN incidents i ON i.id = r.incident_id AND i.tenant_id = r.tenant_id \
             JOIN tenants t ON t.id = r.tenant_id LEFT JOIN tenant_security s ON s.tenant_id = r.tenant_id WHERE r.id = $1",
        )
        .bind(rid)
        .fetch_optional(&mut *self.system_read().await?)
        .await?;
        Ok(row.map(|r| AnswerContext {
            scope: TenantScope::new(r.tenant_id),
            recipient_id: rid,
            name: r.name,
            language: r.language,
            tenant_name: r.tenant_name,
            title: r.title,
            message: r.message,
            drill: r.drill != 0,
            closed: r.closed_at.is_some(),
            closed_at: r.closed_at,
            survey: serde_json::from_str(&r.survey).unwrap_or_else(|_| Survey::default_safety()),
            answers: r.answers.and_then(|a| serde_json::from_str(&a).ok()),
            answered_at: r.answered_at,
            allowlist: r.allowlist.unwrap_or_default(),
        }))
    }

    /// Records (or replaces) a recipient's answer; returns the incident id once it is
    /// committed. Answers arriving together share a transaction (`answer_writer`).
    pub async fn save_answer(&self, scope: &TenantScope, recipient_id: i64, answers: &Answers, now: Millis) -> Result<i64> {
        let json = serde_json::to_string(answers).map_err(|e| StoreError::Internal(e.to_string()))?;
        let writer = self.answers.get_or_init(|| crate::answer_writer::spawn(self.pool.clone(), self.engine));
        let (done, saved) = tokio::sync::oneshot::channel();
        let pending = crate::answer_writer::Pending { tenant: scope.tenant_id(), recipient: recipient_id, answers: json, at: now, done };
        writer.send(pending).await.map_err(|_| StoreError::AnswerWriter("stopped".into()))?;
        match saved.await {
            Ok(Ok(Some(incident))) => Ok(incident),
            Ok(Ok(None)) => Err(StoreError::NotFound),
            Ok(Err(e)) => Err(StoreError::AnswerWriter(e)),
            Err(_) => Err(StoreError::AnswerWriter("stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_made_by_the_master_key_only_and_versioned() {
        let (m1, m2) = (MasterKey::generate(), MasterKey::generate());
        let (k1, k2) = (link_key(&m1), link_key(&m2));
        let t = link_token(&k1, 42);
        assert_eq!(link_recipient(&[k1], &t), Some(42));
        assert_eq!(link_recipient(&[k2], &t), None, "another master key");
        assert_eq!(link_recipient(&[k2, k1], &t), Some(42), "the old key during a rotation");
        let mut raw = unb64(&t).unwrap();
        raw[0] = 1;
        assert_eq!(link_recipient(&[k1], &b64(&raw)), None, "another version");
        raw[0] = 2;
        raw[8] ^= 1;
        assert_eq!(link_recipient(&[k1], &b64(&raw)), None, "another recipient");
        assert_eq!(link_recipient(&[k1], "!!"), None);
        assert_eq!(link_recipient(&[k1], &"A".repeat(100)), None);
    }
}
