//! Second factors: TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, each code accepted once)
//! and one-time recovery codes, stored hashed.

use crate::audit::AuditEvent;
use crate::crypto::random_bytes;
use crate::{Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use hmac::{Hmac, Mac};

const STEP_MS: i64 = 30_000;
/// Codes from one step before or after are accepted too (clock drift).
const DRIFT_STEPS: i64 = 1;
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps expect).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(BASE32[((buf >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

pub fn unbase32(s: &str) -> Option<Vec<u8>> {
    let (mut out, mut buf, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.trim_end_matches('=').bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// A fresh 160-bit TOTP secret, base32.
pub fn new_totp_secret() -> String {
    base32(&random_bytes::<20>())
}

/// The 6-digit code of `step` (RFC 4226 dynamic truncation).
pub fn totp_code(secret: &[u8], step: i64) -> String {
    let Ok(mut m) = Hmac::<sha1::Sha1>::new_from_slice(secret) else { return String::new() };
    m.update(&step.to_be_bytes());
    let h = m.finalize().into_bytes();
    let offset = (h[19] & 0xf) as usize;
    let bin = u32::from_be_bytes([h[offset] & 0x7f, h[offset + 1], h[offset + 2], h[offset + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The step whose code `code` is, near `now`, if any.
pub fn totp_match(secret_b32: &str, code: &str, now: Millis) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let code: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
    let secret = unbase32(secret_b32)?;
    if code.len() != 6 || secret.is_empty() {
        return None;
    }
    let now_step = now.div_euclid(STEP_MS);
    (now_step - DRIFT_STEPS..=now_step + DRIFT_STEPS).find(|&s| bool::from(totp_code(&secret, s).as_bytes().ct_eq(code.as_bytes())))
}

/// `otpauth://` URL for authenticator apps (shown as a QR code).
pub fn otpauth_url(secret_b32: &str, issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!("otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30", enc(issuer), enc(account), enc(issuer))
}

/// A recovery code: 12 base32 characters (60 bits) shown as `XXXX-XXXX-XXXX`.
fn new_recovery_code() -> String {
    let raw = base32(&random_bytes::<8>());
    format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..12])
}

fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// Replaces the account's recovery codes by ten new ones (stored hashed); returns them to show once.
pub(crate) async fn replace_recovery_codes(tx: &mut sqlx::Transaction<'_, sqlx::Any>, scope: &TenantScope, account: i64) -> Result<Vec<String>> {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let plain: Vec<String> = codes.iter().map(|c| normalise_recovery(c)).collect();
    let hashes =
        crate::crypto::off_the_workers(crate::crypto::Lane::Known, move || plain.iter().map(|c| crate::crypto::hash_password_now(c)).collect::<Vec<_>>())
            .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE tenant_id = $1 AND account_id = $2").bind(scope.tenant_id()).bind(account).execute(&mut **tx).await?;
    for hash in hashes {
        sqlx::query("INSERT INTO recovery_codes (tenant_id, account_id, code_hash) VALUES ($1, $2, $3)")
            .bind(scope.tenant_id())
            .bind(account)
            .bind(hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(codes)
}

impl Store {
    /// Whether the account has a second factor (TOTP or a passkey).
    pub async fn mfa_enrolled(&self, scope: &TenantScope, account: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts a WHERE a.tenant_id = $1 AND a.id = $2 \
               AND (a.totp_secret <> '' OR EXISTS (SELECT 1 FROM passkeys p WHERE p.account_id = a.id))",
        )
        .bind(scope.tenant_id())
        .bind(account)
        .fetch_one(&mut *self.scoped(scope).await?)
        .await?;
        Ok(n > 0)
    }

    /// Whether the account has TOTP turned on.
    pub async fn totp_enabled(&self, scope: &TenantScope, account: i64) -> Result<bool> {
        let secret: Option<String> = sqlx::query_scalar("SELECT totp_secret FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_optional(&mut *self.scoped(scope).await?)
            .await?;
        Ok(secret.is_some_and(|s| !s.is_empty()))
    }

    /// Turns TOTP on once the user proves the app works (`code` for `secret`); returns the
    /// recovery codes to show once. Replaces earlier codes.
    pub async fn enable_totp(&self, scope: &TenantScope, account: i64, secret: &str, code: &str, audit: &AuditEvent<'_>, now: Millis) -> Result<Vec<String>> {
        let step = totp_match(secret, code, now).ok_or_else(|| StoreError::Invalid(crate::Problem::CodeMismatch))?;
        let mut tx = self.scoped_tx(scope).await?;
        let done = sqlx::query("UPDATE accounts SET totp_secret = $3, totp_last_step = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .bind(secret)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let codes = replace_recovery_codes(&mut tx, scope, account).await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Turns the second factor off: TOTP, passkeys and recovery codes.
    pub async fn disable_mfa(&self, scope: &TenantScope, account: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        clear_second_factor(&mut tx, scope, account).await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An admin resets the second factor of an account whose owner lost it: turns it off and
    /// ends the account's sessions. Under a tenant policy that requires MFA the owner enrols
    /// again at the next sign-in.
    pub async fn reset_mfa(&self, scope: &TenantScope, account: i64, audit: &AuditEvent<'_>, now: Millis) -> Result<()> {
        let mut tx = self.scoped_tx(scope).await?;
        clear_second_factor(&mut tx, scope, account).await?;
        sqlx::query("DELETE FROM sessions WHERE principal = 'account' AND tenant_id = $1 AND principal_id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, scope, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks a TOTP code or a recovery code; each is accepted once (a code's step must be
    /// later than the last accepted one; a recovery code is marked used). Recovery codes work
    /// without TOTP too (an account whose second factor is a passkey).
    pub async fn verify_second_factor(&self, scope: &TenantScope, account: i64, code: &str, now: Millis) -> Result<bool> {
        let mut c = self.scoped(scope).await?;
        let secret: Option<String> = sqlx::query_scalar("SELECT totp_secret FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_optional(&mut *c)
            .await?;
        let Some(secret) = secret else { return Ok(false) };
        if let Some(step) = totp_match(&secret, code, now) {
            let done = sqlx::query("UPDATE accounts SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 AND totp_last_step < $3")
                .bind(scope.tenant_id())
                .bind(account)
                .bind(step)
                .execute(&mut *c)
                .await?;
            return Ok(done.rows_affected() == 1);
        }
        let normal = normalise_recovery(code);
        if normal.len() != 12 {
            return Ok(false);
        }
        // Codes are stored as Argon2id hashes (60-bit codes: a plain hash would be guessable
        // offline), so each unused one is checked in turn; then it is spent, once.
        let unused: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, code_hash FROM recovery_codes WHERE tenant_id = $1 AND account_id = $2 AND used_at IS NULL")
                .bind(scope.tenant_id())
                .bind(account)
                .fetch_all(&mut *c)
                .await?;
        // Up to ten Argon2 checks: one job on the bounded pool, without holding a connection.
        drop(c);
        let found = crate::crypto::off_the_workers(crate::crypto::Lane::Known, move || {
            unused.into_iter().find(|(_, h)| crate::crypto::verify_password_now(&normal, h)).map(|(id, _)| id)
        })
        .await?;
        let Some(id) = found else { return Ok(false) };
        let done = sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL")
            .bind(scope.tenant_id())
            .bind(id)
            .bind(now)
            .execute(&mut *self.scoped(scope).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unused recovery codes left.
    pub async fn recovery_codes_left(&self, scope: &TenantScope, account: i64) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE tenant_id = $1 AND account_id = $2 AND used_at IS NULL")
            .bind(scope.tenant_id())
            .bind(account)
            .fetch_one(&mut *self.scoped(scope).await?)
            .await?)
    }
}

/// Removes every second factor of the account (TOTP, recovery codes, passkeys, pending
/// WebAuthn challenges).
async fn clear_second_factor(tx: &mut sqlx::AnyConnection, scope: &TenantScope, account: i64) -> Result<()> {
    let done = sqlx::query("UPDATE accounts SET totp_secret = '', totp_last_step = 0 WHERE tenant_id = $1 AND id = $2")
        .bind(scope.tenant_id())
        .bind(account)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    for table in ["recovery_codes", "passkeys", "webauthn_challenges"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND account_id = $2")).bind(scope.tenant_id()).bind(account).execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 8 digits truncated to 6.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59 / 30), "287082");
        assert_eq!(totp_code(secret, 1111111109 / 30), "081804");
        assert_eq!(totp_code(secret, 1234567890 / 30), "005924");
        assert_eq!(totp_code(secret, 2000000000 / 30), "279037");
    }

    #[test]
    fn base32_round_trip_and_window() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(unbase32("MZXW6YTBOI").unwrap(), b"foobar");
        let s = new_totp_secret();
        let now = 1_700_000_000_000;
        let code = totp_code(&unbase32(&s).unwrap(), now / STEP_MS);
        assert_eq!(totp_match(&s, &code, now), Some(now / STEP_MS));
        assert_eq!(totp_match(&s, &code, now + STEP_MS), Some(now / STEP_MS), "one step of drift");
        assert_eq!(totp_match(&s, &code, now + 3 * STEP_MS), None);
        assert!(otpauth_url(&s, "anpi acme", "a@b.jp").starts_with("otpauth://totp/anpi%20acme:a%40b.jp?secret="));
    }
}
