//! Passkeys (WebAuthn) as a second factor: the store's part — single-use challenges and the
//! registered credentials (id, SEC1 public key, signature counter), per account and tenant.
//! The ceremonies are verified by `anpi-webauthn` (CBOR and COSE through `ciborium` and
//! `coset`, ES256 through `p256`); see docs/passkeys.md.
//!
//! Checked here: challenges are server-issued, single use and expire after five minutes; a
//! credential id is registered once; credentials are used only by the account (and tenant)
//! that registered them; the signature counter is advanced with a compare-and-set.

use crate::audit::AuditEvent;
use crate::crypto::{b64, random_bytes};
use crate::{Account, Problem, Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use anpi_webauthn::{client_data_challenge, credential_id, field, verify_assertion, verify_registration, Refused, CHALLENGE_TTL_MS, COSE_ES256};
pub use anpi_webauthn::{AuthenticationResponse, RegistrationResponse, RelyingParty};
use serde_json::{json, Value};
use sha2::Sha256;

/// At most this many passkeys per account.
pub const MAX_PASSKEYS: usize = 10;

// ---- storage ----

/// A registered passkey, for the account page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// What a refused ceremony tells the caller: nothing specific.
fn refused(scope: &TenantScope, account: i64, what: &str, r: Refused) -> StoreError {
    tracing::info!(tenant = scope.tenant_id(), account, reason = r.0, "passkey {what} refused");
    StoreError::Invalid(Problem::PasskeyNotVerified)
}

impl Store {
    /// The account's passkeys, oldest first.
    pub async fn passkeys(&self, scope: &TenantScope, account: i64) -> Result<Vec<PasskeyRow>> {
        Ok(sqlx::query_as("SELECT id, name, created_at, last_used_at FROM passkeys WHERE tenant_id = $1 AND account_id = $2 ORDER BY id")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?)
    }

    /// Removes one of the account's passkeys.
    pub async fn delete_passkey(&self, scope: &TenantScope, account: i64, id: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let delete = sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND account_id = $2 AND id = $3").bind(scope.tenant_id()).bind(account).bind(id);
        self.change_one(scope, delete, audit, now).await
    }

    /// The opaque WebAuthn user handle of an account: a keyed hash, so it names no one.
    async fn user_handle(&self, scope: &TenantScope, account: i64) -> Result<Vec<u8>> {
        use hmac::{Hmac, Mac};
        let key = self.secret("webauthn-user-handle").await?;
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&key) else { return Err(StoreError::Internal("webauthn-user-handle: bad key".into())) };
        m.update(&scope.tenant_id().to_be_bytes());
        m.update(&account.to_be_bytes());
        Ok(m.finalize().into_bytes()[..16].to_vec())
    }

    async fn credential_ids(&self, scope: &TenantScope, account: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT credential_id FROM passkeys WHERE tenant_id = $1 AND account_id = $2 ORDER BY id")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_all(&mut *self.scoped(scope).await?)
            .await?)
    }

    /// Issues a challenge (replacing the account's earlier one for the same purpose).
    async fn new_challenge(&self, scope: &TenantScope, account: i64, purpose: &str, now: Millis) -> Result<String> {
        let challenge = b64(&random_bytes::<32>());
        let mut tx = self.scoped_tx(scope).await?;
        // Expired challenges go too (on PostgreSQL the tenant's own: row-level security).
        sqlx::query("DELETE FROM webauthn_challenges WHERE expires_at <= $1 OR (tenant_id = $2 AND account_id = $3 AND purpose = $4)")
            .bind(now)
            .bind(scope.tenant_id())
            .bind(account)
            .bind(purpose)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO webauthn_challenges (challenge, tenant_id, account_id, purpose, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&challenge)
            .bind(scope.tenant_id())
            .bind(account)
            .bind(purpose)
            .bind(now + CHALLENGE_TTL_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(challenge)
    }

    /// Takes the challenge a response answers: it is deleted whatever follows (single use).
    async fn take_challenge(&self, scope: &TenantScope, account: i64, purpose: &str, client_data_json: &[u8], now: Millis) -> Result<Result<String, Refused>> {
        let Some(challenge) = client_data_challenge(client_data_json) else { return Ok(Err(Refused("clientDataJSON has no challenge"))) };
        let expires: Option<i64> = sqlx::query_scalar(
            "DELETE FROM webauthn_challenges WHERE challenge = $1 AND tenant_id = $2 AND account_id = $3 AND purpose = $4 RETURNING expires_at",
        )
        .bind(&challenge)
        .bind(scope.tenant_id())
        .bind(account)
        .bind(purpose)
        .fetch_optional(&mut *self.scoped(scope).await?)
        .await?;
        Ok(match expires {
            None => Err(Refused("unknown or used challenge")),
            Some(t) if t <= now => Err(Refused("challenge expired")),
            Some(_) => Ok(challenge),
        })
    }

    /// Creation options (`PublicKeyCredentialCreationOptions`, binary fields base64url) for a
    /// new passkey of `account`. The caller has re-authenticated the user.
    pub async fn begin_passkey_registration(&self, scope: &TenantScope, account: &Account, rp: &RelyingParty, now: Millis) -> Result<Value> {
        let existing = self.credential_ids(scope, account.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(StoreError::Invalid(Problem::TooManyPasskeys(MAX_PASSKEYS)));
        }
        let challenge = self.new_challenge(scope, account.id, "register", now).await?;
        let handle = self.user_handle(scope, account.id).await?;
        Ok(json!({
            "rp": { "id": rp.id, "name": rp.name },
            "user": { "id": b64(&handle), "name": account.email, "displayName": account.name },
            "challenge": challenge,
            "pubKeyCredParams": [{ "type": "public-key", "alg": COSE_ES256 }],
            "timeout": CHALLENGE_TTL_MS,
            "attestation": "none",
            "excludeCredentials": existing.iter().map(|id| json!({ "type": "public-key", "id": id })).collect::<Vec<_>>(),
            "authenticatorSelection": { "residentKey": "discouraged", "requireResidentKey": false, "userVerification": "preferred" },
        }))
    }

    /// Verifies and stores a new passkey. When it is the account's first second factor, ten
    /// recovery codes are made too and returned (to show once); otherwise none.
    pub async fn finish_passkey_registration(
        &self,
        scope: &TenantScope,
        account: i64,
        rp: &RelyingParty,
        response: &RegistrationResponse,
        name: &str,
        now: Millis,
    ) -> Result<Vec<String>> {
        let fail = |r| refused(scope, account, "registration", r);
        let client_data = field(&response.response.client_data_json, "clientDataJSON is not base64url").map_err(fail)?;
        let challenge = self.take_challenge(scope, account, "register", &client_data, now).await?.map_err(fail)?;
        let raw_id = credential_id(&response.id, &response.raw_id, &response.kind).map_err(fail)?;
        let attestation = field(&response.response.attestation_object, "attestationObject is not base64url").map_err(fail)?;
        let cred = verify_registration(rp, &challenge, &raw_id, &client_data, &attestation, false).map_err(fail)?;
        let cred_id = b64(&cred.credential_id);
        // Within the tenant (row-level security); another tenant's use of the id is caught by
        // the unique index at the insert below.
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM passkeys WHERE credential_id = $1").bind(&cred_id).fetch_optional(&mut *self.scoped(scope).await?).await?;
        if taken.is_some() {
            return Err(fail(Refused("credential id already registered")));
        }
        let name: String = name.trim().chars().filter(|c| !c.is_control()).take(60).collect();
        let name = if name.is_empty() { "パスキー (passkey)".to_string() } else { name };
        let first = !self.mfa_enrolled(scope, account).await?;
        let mut tx = self.scoped_tx(scope).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE tenant_id = $1 AND account_id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_PASSKEYS as i64 {
            return Err(StoreError::Invalid(Problem::TooManyPasskeys(MAX_PASSKEYS)));
        }
        let inserted = sqlx::query(
            "INSERT INTO passkeys (tenant_id, account_id, credential_id, public_key, sign_count, name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(scope.tenant_id())
        .bind(account)
        .bind(&cred_id)
        .bind(&cred.public_key)
        .bind(i64::from(cred.sign_count))
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(fail(Refused("credential id already registered"))),
            Err(e) => return Err(e.into()),
        }
        let codes = if first { crate::mfa::replace_recovery_codes(&mut tx, scope, account).await? } else { Vec::new() };
        tx.commit().await?;
        tracing::info!(tenant = scope.tenant_id(), account, fmt = %cred.fmt, "passkey registered");
        Ok(codes)
    }

    /// Request options (`PublicKeyCredentialRequestOptions`) for signing in with one of the
    /// account's passkeys; NotFound when it has none.
    pub async fn begin_passkey_login(&self, scope: &TenantScope, account: i64, rp: &RelyingParty, now: Millis) -> Result<Value> {
        let ids = self.credential_ids(scope, account).await?;
        if ids.is_empty() {
            return Err(StoreError::NotFound);
        }
        let challenge = self.new_challenge(scope, account, "login", now).await?;
        Ok(json!({
            "challenge": challenge,
            "rpId": rp.id,
            "timeout": CHALLENGE_TTL_MS,
            "allowCredentials": ids.iter().map(|id| json!({ "type": "public-key", "id": id })).collect::<Vec<_>>(),
            "userVerification": "preferred",
        }))
    }

    /// Verifies an assertion by one of the account's passkeys (and nobody else's). Ok(false)
    /// when refused (the reason is logged); the challenge is spent either way.
    pub async fn finish_passkey_login(
        &self,
        scope: &TenantScope,
        account: i64,
        rp: &RelyingParty,
        response: &AuthenticationResponse,
        now: Millis,
    ) -> Result<bool> {
        match self.check_passkey_login(scope, account, rp, response, now).await? {
            Ok(()) => Ok(true),
            Err(r) => {
                tracing::info!(tenant = scope.tenant_id(), account, reason = r.0, "passkey sign-in refused");
                Ok(false)
            }
        }
    }

    async fn check_passkey_login(
        &self,
        scope: &TenantScope,
        account: i64,
        rp: &RelyingParty,
        response: &AuthenticationResponse,
        now: Millis,
    ) -> Result<Result<(), Refused>> {
        let r = &response.response;
        let client_data = match field(&r.client_data_json, "clientDataJSON is not base64url") {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let challenge = match self.take_challenge(scope, account, "login", &client_data, now).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let parsed = (|| {
            let id = credential_id(&response.id, &response.raw_id, &response.kind)?;
            let auth_data = field(&r.authenticator_data, "authenticatorData is not base64url")?;
            let sig = field(&r.signature, "signature is not base64url")?;
            let handle = match r.user_handle.as_deref() {
                Some(h) if !h.is_empty() => Some(field(h, "userHandle is not base64url")?),
                _ => None,
            };
            Ok::<_, Refused>((id, auth_data, sig, handle))
        })();
        let (id, auth_data, sig, handle) = match parsed {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(h) = handle {
            if h != self.user_handle(scope, account).await? {
                return Ok(Err(Refused("userHandle is not this account's")));
            }
        }
        let row: Option<(i64, Vec<u8>, i64)> =
            sqlx::query_as("SELECT id, public_key, sign_count FROM passkeys WHERE credential_id = $1 AND tenant_id = $2 AND account_id = $3")
                .bind(b64(&id))
                .bind(scope.tenant_id())
                .bind(account)
                .fetch_optional(&mut *self.scoped(scope).await?)
                .await?;
        let Some((pk_id, key, stored)) = row else { return Ok(Err(Refused("credential is not one of this account's"))) };
        let count = match verify_assertion(rp, &challenge, &key, stored, &client_data, &auth_data, &sig, false) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // Compare-and-set: a concurrent use of the same counter value loses.
        let done = sqlx::query("UPDATE passkeys SET sign_count = $1, last_used_at = $2 WHERE id = $3 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))")
            .bind(count)
            .bind(now)
            .bind(pk_id)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(Err(Refused("signature counter did not increase")));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpi_webauthn::testing::SoftKey;

    fn rp() -> RelyingParty {
        RelyingParty::from_base_url("http://localhost:8080/").unwrap()
    }

    #[tokio::test]
    async fn passkeys_on_every_engine() {
        for (s, _guard) in crate::tests::stores().await {
            let now = 1_700_000_000_000;
            let a = s.create_tenant("pk-a", "A", now).await.unwrap();
            let b = s.create_tenant("pk-b", "B", now).await.unwrap();
            let acc = s
                .create_account(&a, "pk@example.jp", "鍵 太郎", anpi_core::Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now)
                .await
                .unwrap();
            let other = s
                .create_account(&b, "pk@example.jp", "鍵 次郎", anpi_core::Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now)
                .await
                .unwrap();
            let account = s.account(&a, acc).await.unwrap();
            assert!(!account.mfa);
            let rp = rp();
            let mut k = SoftKey::new(5);

            // Registration: the challenge is single-use and bound to the account.
            let opts = s.begin_passkey_registration(&a, &account, &rp, now).await.unwrap();
            assert_eq!(opts["rp"]["id"], "localhost");
            assert_eq!(opts["pubKeyCredParams"][0]["alg"], -7);
            let challenge = opts["challenge"].as_str().unwrap().to_string();
            let reg = k.registration(&rp, &challenge);
            assert!(s.finish_passkey_registration(&b, other, &rp, &reg, "x", now).await.is_err(), "another tenant's account");
            let codes = s.finish_passkey_registration(&a, acc, &rp, &reg, " ノートPC ", now + 1000).await.unwrap();
            assert_eq!(codes.len(), 10, "first factor: recovery codes");
            assert!(s.finish_passkey_registration(&a, acc, &rp, &reg, "again", now).await.is_err(), "replayed registration");
            assert!(s.account(&a, acc).await.unwrap().mfa);
            assert!(s.mfa_enrolled(&a, acc).await.unwrap());
            let list = s.passkeys(&a, acc).await.unwrap();
            assert_eq!((list.len(), list[0].name.as_str()), (1, "ノートPC"));
            assert!(s.passkeys(&b, acc).await.unwrap().is_empty());
            // The same credential cannot be registered twice (even elsewhere).
            let opts = s.begin_passkey_registration(&b, &s.account(&b, other).await.unwrap(), &rp, now).await.unwrap();
            let again = k.registration(&rp, opts["challenge"].as_str().unwrap());
            assert!(s.finish_passkey_registration(&b, other, &rp, &again, "dup", now).await.is_err(), "credential id reused");
            // An expired challenge is refused.
            let opts = s.begin_passkey_registration(&a, &account, &rp, now).await.unwrap();
            let k2 = SoftKey::new(6);
            let late = k2.registration(&rp, opts["challenge"].as_str().unwrap());
            assert!(s.finish_passkey_registration(&a, acc, &rp, &late, "late", now + CHALLENGE_TTL_MS + 1).await.is_err(), "expired");

            // Sign-in: only with a challenge issued to this account, once.
            assert!(matches!(s.begin_passkey_login(&b, other, &rp, now).await, Err(StoreError::NotFound)));
            let opts = s.begin_passkey_login(&a, acc, &rp, now).await.unwrap();
            assert_eq!(opts["allowCredentials"][0]["id"], b64(&k.id));
            let challenge = opts["challenge"].as_str().unwrap().to_string();
            let wrong = k.assertion(&rp, &b64(&[1u8; 32]));
            assert!(!s.finish_passkey_login(&a, acc, &rp, &wrong, now).await.unwrap(), "a challenge never issued");
            let good = k.assertion(&rp, &challenge);
            assert!(!s.finish_passkey_login(&b, acc, &rp, &good, now).await.unwrap(), "another tenant");
            // That attempt spent nothing of account acc in tenant a: still usable.
            assert!(s.finish_passkey_login(&a, acc, &rp, &good, now + 2000).await.unwrap());
            assert!(!s.finish_passkey_login(&a, acc, &rp, &good, now + 3000).await.unwrap(), "replayed assertion");
            let list = s.passkeys(&a, acc).await.unwrap();
            assert_eq!(list[0].last_used_at, now + 2000);

            // A cloned authenticator (counter not growing) is refused even with a fresh challenge.
            let opts = s.begin_passkey_login(&a, acc, &rp, now).await.unwrap();
            k.count -= 1;
            let cloned = k.assertion(&rp, opts["challenge"].as_str().unwrap());
            assert!(!s.finish_passkey_login(&a, acc, &rp, &cloned, now).await.unwrap(), "counter did not grow");
            // A newer challenge replaces an older one.
            let first = s.begin_passkey_login(&a, acc, &rp, now).await.unwrap();
            let second = s.begin_passkey_login(&a, acc, &rp, now).await.unwrap();
            let stale = k.assertion(&rp, first["challenge"].as_str().unwrap());
            assert!(!s.finish_passkey_login(&a, acc, &rp, &stale, now).await.unwrap(), "superseded challenge");
            let fresh = k.assertion(&rp, second["challenge"].as_str().unwrap());
            assert!(s.finish_passkey_login(&a, acc, &rp, &fresh, now).await.unwrap());

            // Recovery codes work without TOTP.
            assert!(s.verify_second_factor(&a, acc, &codes[0], now).await.unwrap());
            assert!(!s.verify_second_factor(&a, acc, &codes[0], now).await.unwrap());

            // Deleting: only one's own; turning MFA off deletes the rest.
            assert!(s.delete_passkey(&b, acc, list[0].id, &AuditEvent::system("test"), 0).await.is_err());
            s.disable_mfa(&a, acc, &AuditEvent::system("test"), 0).await.unwrap();
            assert!(s.passkeys(&a, acc).await.unwrap().is_empty());
            assert!(!s.account(&a, acc).await.unwrap().mfa);
        }
    }
}
