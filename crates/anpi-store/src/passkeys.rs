//! WebAuthn passkeys as a second factor: a small relying party after WebAuthn Level 2
//! §7.1 (registering a new credential) and §7.2 (verifying an authentication assertion), on
//! RustCrypto's `p256` (webauthn-rs would pull OpenSSL).
//!
//! What is checked: the client data's `type`, `challenge` (server-issued, single use, five
//! minutes) and `origin` (the origin of `--base-url`; cross-origin calls are refused); the
//! authenticator data's RP ID hash (SHA-256 of the host of `--base-url`), the user-present flag
//! (and user-verified when asked for); the credential's algorithm (ES256 only: COSE EC2 on
//! P-256); the assertion signature over `authData ‖ SHA-256(clientDataJSON)`; the signature
//! counter (a counter that does not grow, when either side is non-zero, is refused as a
//! possibly cloned authenticator); that a credential id is registered once; and that
//! credentials are used only by the account (and tenant) that registered them.
//!
//! What is not: attestation. "none" is requested and any attestation format is accepted
//! without verifying its statement, so nothing is proved about the authenticator's make.

use crate::crypto::{b64, random_bytes, unb64};
use crate::audit::AuditEvent;
use crate::{Account, Result, Store, StoreError, TenantScope};
use anpi_core::Millis;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MS: i64 = 5 * 60_000;
/// The COSE algorithm id of ES256 (ECDSA with SHA-256 on P-256).
pub const COSE_ES256: i64 = -7;
/// At most this many passkeys per account.
pub const MAX_PASSKEYS: i64 = 10;
/// Credential ids longer than this are refused (§7.1 step 18 of Level 3; Level 2 has 1023 as the CTAP limit).
const MAX_CREDENTIAL_ID: usize = 1023;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// The relying party: its id (a host name) and the origin pages are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
    pub name: String,
}

impl RelyingParty {
    /// From the public base URL (`--base-url`): the origin is its scheme, host and port (a
    /// default port left out, as browsers serialise it); the RP id is the host. None unless
    /// the URL is http(s) with a host.
    pub fn from_base_url(url: &str) -> Option<RelyingParty> {
        let (scheme, rest) = url.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = if authority.starts_with('[') {
            let end = authority.find(']')?;
            (&authority[..=end], authority[end + 1..].strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority.as_str(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) if !p.is_empty() => {
                let n: u16 = p.parse().ok()?;
                let default = if scheme == "http" { 80 } else { 443 };
                (n != default).then_some(n)
            }
            _ => None,
        };
        let origin = match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        Some(RelyingParty { id: host.to_string(), origin, name: "anpi".into() })
    }
}

/// Why a ceremony was refused: for the log, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

// ---- a small CBOR reader (RFC 8949), enough for attestation objects and COSE keys ----

pub mod cbor {
    //! Definite-length CBOR items only (what CTAP2's canonical encoding produces); nesting is
    //! bounded; lengths are checked against the input before anything is allocated.

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value<'a> {
        /// Unsigned and negative integers.
        Int(i128),
        Bytes(&'a [u8]),
        Text(&'a str),
        Array(Vec<Value<'a>>),
        Map(Vec<(Value<'a>, Value<'a>)>),
        Bool(bool),
        Null,
        /// undefined, floats and other simple values (their content is not needed here).
        Other,
        Tag(u64, Box<Value<'a>>),
    }

    impl<'a> Value<'a> {
        /// The value of `key` in a map.
        pub fn get(&self, key: &Value<'_>) -> Option<&Value<'a>> {
            match self {
                Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn get_int(&self, key: i128) -> Option<&Value<'a>> {
            self.get(&Value::Int(key))
        }
        pub fn get_text(&self, key: &str) -> Option<&Value<'a>> {
            self.get(&Value::Text(key))
        }
    }

    const MAX_DEPTH: usize = 16;

    /// Decodes one item from the start of `input`; returns it and the bytes it took.
    pub fn decode(input: &[u8]) -> Option<(Value<'_>, usize)> {
        let mut pos = 0;
        let v = item(input, &mut pos, 0)?;
        Some((v, pos))
    }

    /// Decodes exactly one item filling `input`.
    pub fn decode_all(input: &[u8]) -> Option<Value<'_>> {
        let (v, n) = decode(input)?;
        (n == input.len()).then_some(v)
    }

    fn take<'a>(input: &'a [u8], pos: &mut usize, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let end = pos.checked_add(n)?;
        let s = input.get(*pos..end)?;
        *pos = end;
        Some(s)
    }

    fn argument(input: &[u8], pos: &mut usize, info: u8) -> Option<u64> {
        Some(match info {
            0..=23 => u64::from(info),
            24 => u64::from(take(input, pos, 1)?[0]),
            25 => u64::from(u16::from_be_bytes(take(input, pos, 2)?.try_into().ok()?)),
            26 => u64::from(u32::from_be_bytes(take(input, pos, 4)?.try_into().ok()?)),
            27 => u64::from_be_bytes(take(input, pos, 8)?.try_into().ok()?),
            // 28–30 reserved, 31 indefinite length: refused.
            _ => return None,
        })
    }

    fn item<'a>(input: &'a [u8], pos: &mut usize, depth: usize) -> Option<Value<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let head = *input.get(*pos)?;
        *pos += 1;
        let (major, info) = (head >> 5, head & 0x1f);
        if major == 7 {
            return Some(match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                0..=19 | 23 => Value::Other,
                24 => {
                    take(input, pos, 1)?;
                    Value::Other
                }
                25 => {
                    take(input, pos, 2)?;
                    Value::Other
                }
                26 => {
                    take(input, pos, 4)?;
                    Value::Other
                }
                27 => {
                    take(input, pos, 8)?;
                    Value::Other
                }
                _ => return None,
            });
        }
        let arg = argument(input, pos, info)?;
        let remaining = (input.len() - *pos) as u64;
        Some(match major {
            0 => Value::Int(i128::from(arg)),
            1 => Value::Int(-1 - i128::from(arg)),
            2 => Value::Bytes(take(input, pos, arg)?),
            3 => Value::Text(std::str::from_utf8(take(input, pos, arg)?).ok()?),
            4 => {
                // Every item takes at least one byte.
                if arg > remaining {
                    return None;
                }
                let mut v = Vec::new();
                for _ in 0..arg {
                    v.push(item(input, pos, depth + 1)?);
                }
                Value::Array(v)
            }
            5 => {
                if arg.checked_mul(2)? > remaining {
                    return None;
                }
                let mut v = Vec::new();
                for _ in 0..arg {
                    let k = item(input, pos, depth + 1)?;
                    let val = item(input, pos, depth + 1)?;
                    v.push((k, val));
                }
                Value::Map(v)
            }
            6 => Value::Tag(arg, Box::new(item(input, pos, depth + 1)?)),
            _ => return None,
        })
    }
}

// ---- pure verification ----

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
}

/// The challenge a `clientDataJSON` answers (to find the stored one), unverified.
pub fn client_data_challenge(client_data_json: &[u8]) -> Option<String> {
    let cd: ClientData = serde_json::from_slice(client_data_json).ok()?;
    Some(cd.challenge)
}

/// §7.1 steps 7–10 / §7.2 steps 11–14: type, challenge, origin, not cross-origin.
fn check_client_data(rp: &RelyingParty, kind: &str, challenge: &str, client_data_json: &[u8]) -> Result<(), Refused> {
    let cd: ClientData = serde_json::from_slice(client_data_json).map_err(|_| Refused("clientDataJSON is not valid JSON"))?;
    if cd.kind != kind {
        return Err(Refused("wrong clientData type"));
    }
    let (Some(given), Some(expected)) = (unb64(cd.challenge.trim_end_matches('=')), unb64(challenge)) else {
        return Err(Refused("challenge is not base64url"));
    };
    if given.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_slice(), expected.as_slice())) {
        return Err(Refused("challenge does not match"));
    }
    if cd.origin != rp.origin {
        return Err(Refused("origin does not match"));
    }
    if cd.cross_origin {
        return Err(Refused("cross-origin call"));
    }
    Ok(())
}

/// Parsed authenticator data.
#[derive(Debug)]
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    /// Credential id and SEC1 public key, when attested credential data is present.
    credential: Option<(&'a [u8], Vec<u8>)>,
}

fn parse_auth_data(data: &[u8]) -> Result<AuthData<'_>, Refused> {
    if data.len() < 37 {
        return Err(Refused("authenticator data too short"));
    }
    let flags = data[32];
    let sign_count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    let mut pos = 37;
    let mut credential = None;
    if flags & FLAG_AT != 0 {
        // aaguid (16), credentialIdLength (2), credentialId, credentialPublicKey (COSE).
        let len_at = pos + 16;
        let len = data.get(len_at..len_at + 2).ok_or(Refused("attested credential data too short"))?;
        let id_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID {
            return Err(Refused("bad credential id length"));
        }
        let id_start = len_at + 2;
        let id = data.get(id_start..id_start + id_len).ok_or(Refused("attested credential data too short"))?;
        pos = id_start + id_len;
        let (key, used) = cbor::decode(&data[pos..]).ok_or(Refused("credential public key is not CBOR"))?;
        pos += used;
        credential = Some((id, cose_es256_to_sec1(&key)?));
    }
    if flags & FLAG_ED != 0 {
        let (ext, used) = cbor::decode(&data[pos..]).ok_or(Refused("extensions are not CBOR"))?;
        if !matches!(ext, cbor::Value::Map(_)) {
            return Err(Refused("extensions are not a map"));
        }
        pos += used;
    }
    if pos != data.len() {
        return Err(Refused("trailing bytes in authenticator data"));
    }
    Ok(AuthData { rp_id_hash: &data[..32], flags, sign_count, credential })
}

/// A COSE_Key for ES256 (kty EC2, alg −7, crv P-256) as an uncompressed SEC1 point, checked
/// to be on the curve.
fn cose_es256_to_sec1(key: &cbor::Value<'_>) -> Result<Vec<u8>, Refused> {
    use cbor::Value::{Bytes, Int};
    if key.get_int(1) != Some(&Int(2)) {
        return Err(Refused("credential key is not EC2"));
    }
    if key.get_int(3) != Some(&Int(i128::from(COSE_ES256))) {
        return Err(Refused("credential algorithm is not ES256"));
    }
    if key.get_int(-1) != Some(&Int(1)) {
        return Err(Refused("credential curve is not P-256"));
    }
    let (Some(Bytes(x)), Some(Bytes(y))) = (key.get_int(-2), key.get_int(-3)) else {
        return Err(Refused("credential key lacks coordinates"));
    };
    if x.len() != 32 || y.len() != 32 {
        return Err(Refused("bad coordinate length"));
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| Refused("credential key is not a P-256 point"))?;
    Ok(sec1)
}

fn check_rp_and_flags(rp: &RelyingParty, auth: &AuthData<'_>, require_uv: bool) -> Result<(), Refused> {
    let expected = Sha256::digest(rp.id.as_bytes());
    if auth.rp_id_hash != expected.as_slice() {
        return Err(Refused("RP ID hash does not match"));
    }
    if auth.flags & FLAG_UP == 0 {
        return Err(Refused("user not present"));
    }
    if require_uv && auth.flags & FLAG_UV == 0 {
        return Err(Refused("user not verified"));
    }
    Ok(())
}

/// A credential that passed registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub credential_id: Vec<u8>,
    /// Uncompressed SEC1 P-256 point.
    pub public_key: Vec<u8>,
    pub sign_count: u32,
    /// The attestation format the authenticator used (not verified).
    pub fmt: String,
}

/// Verifies a registration response (§7.1) against the challenge that was issued.
/// `raw_id` is the credential id the client reported; it must be the attested one.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &str,
    raw_id: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
    require_uv: bool,
) -> Result<NewCredential, Refused> {
    check_client_data(rp, "webauthn.create", challenge, client_data_json)?;
    let att = cbor::decode_all(attestation_object).ok_or(Refused("attestation object is not CBOR"))?;
    let Some(cbor::Value::Text(fmt)) = att.get_text("fmt") else { return Err(Refused("attestation object lacks fmt")) };
    if !matches!(att.get_text("attStmt"), Some(cbor::Value::Map(_))) {
        return Err(Refused("attestation object lacks attStmt"));
    }
    let Some(cbor::Value::Bytes(auth_data)) = att.get_text("authData") else { return Err(Refused("attestation object lacks authData")) };
    let auth = parse_auth_data(auth_data)?;
    check_rp_and_flags(rp, &auth, require_uv)?;
    let Some((id, public_key)) = auth.credential else { return Err(Refused("no attested credential data")) };
    if id != raw_id {
        return Err(Refused("credential id differs from the attested one"));
    }
    // Attestation statements are not verified (see the module documentation).
    Ok(NewCredential { credential_id: id.to_vec(), public_key, sign_count: auth.sign_count, fmt: fmt.to_string() })
}

/// Verifies an assertion (§7.2 steps 11–21) with the credential's stored key and counter;
/// returns the new signature counter.
#[allow(clippy::too_many_arguments)]
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &str,
    public_key_sec1: &[u8],
    stored_count: i64,
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature_der: &[u8],
    require_uv: bool,
) -> Result<i64, Refused> {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};
    check_client_data(rp, "webauthn.get", challenge, client_data_json)?;
    let auth = parse_auth_data(authenticator_data)?;
    check_rp_and_flags(rp, &auth, require_uv)?;
    let key = VerifyingKey::from_sec1_bytes(public_key_sec1).map_err(|_| Refused("stored key is not a P-256 point"))?;
    let sig = Signature::from_der(signature_der).map_err(|_| Refused("signature is not DER"))?;
    // ECDSA signatures are malleable ((r, s) and (r, n − s) both verify); accept either form.
    let sig = sig.normalize_s().unwrap_or(sig);
    let mut signed = authenticator_data.to_vec();
    signed.extend_from_slice(&Sha256::digest(client_data_json));
    key.verify(&signed, &sig).map_err(|_| Refused("bad signature"))?;
    let count = i64::from(auth.sign_count);
    if (count != 0 || stored_count != 0) && count <= stored_count {
        return Err(Refused("signature counter did not increase (cloned authenticator?)"));
    }
    Ok(count)
}

// ---- what the browser sends back (PublicKeyCredential as JSON, binary as base64url) ----

#[derive(Debug, Deserialize)]
pub struct RegistrationResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "rawId", default)]
    pub raw_id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub response: AttestationResponse,
}

#[derive(Debug, Deserialize)]
pub struct AttestationResponse {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    #[serde(rename = "attestationObject")]
    pub attestation_object: String,
}

#[derive(Debug, Deserialize)]
pub struct AuthenticationResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "rawId", default)]
    pub raw_id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub response: AssertionResponse,
}

#[derive(Debug, Deserialize)]
pub struct AssertionResponse {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    #[serde(rename = "authenticatorData")]
    pub authenticator_data: String,
    pub signature: String,
    #[serde(rename = "userHandle", default)]
    pub user_handle: Option<String>,
}

/// The credential id a response names: `rawId` (or `id`), which must agree.
fn credential_id(id: &str, raw_id: &str, kind: &str) -> Result<Vec<u8>, Refused> {
    if kind != "public-key" {
        return Err(Refused("credential type is not public-key"));
    }
    let raw = if raw_id.is_empty() { id } else { raw_id };
    let bytes = unb64(raw.trim_end_matches('=')).ok_or(Refused("credential id is not base64url"))?;
    if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_ID {
        return Err(Refused("bad credential id length"));
    }
    if !id.is_empty() && unb64(id.trim_end_matches('=')).as_deref() != Some(bytes.as_slice()) {
        return Err(Refused("id and rawId differ"));
    }
    Ok(bytes)
}

fn field(s: &str, what: &'static str) -> Result<Vec<u8>, Refused> {
    unb64(s.trim_end_matches('=')).ok_or(Refused(what))
}

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
    StoreError::Invalid("パスキーを確認できませんでした (the passkey could not be verified)".into())
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
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&key) else { return Err(StoreError::Invalid("bad key".into())) };
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
        if existing.len() as i64 >= MAX_PASSKEYS {
            return Err(StoreError::Invalid(format!("パスキーは{MAX_PASSKEYS}個までです (at most {MAX_PASSKEYS} passkeys)")));
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
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM passkeys WHERE credential_id = $1").bind(&cred_id).fetch_optional(&mut *self.scoped(scope).await?).await?;
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
        if count >= MAX_PASSKEYS {
            return Err(StoreError::Invalid(format!("パスキーは{MAX_PASSKEYS}個までです (at most {MAX_PASSKEYS} passkeys)")));
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
    pub async fn finish_passkey_login(&self, scope: &TenantScope, account: i64, rp: &RelyingParty, response: &AuthenticationResponse, now: Millis) -> Result<bool> {
        match self.check_passkey_login(scope, account, rp, response, now).await? {
            Ok(()) => Ok(true),
            Err(r) => {
                tracing::info!(tenant = scope.tenant_id(), account, reason = r.0, "passkey sign-in refused");
                Ok(false)
            }
        }
    }

    async fn check_passkey_login(&self, scope: &TenantScope, account: i64, rp: &RelyingParty, response: &AuthenticationResponse, now: Millis) -> Result<Result<(), Refused>> {
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
pub(crate) mod testing {
    //! A software authenticator for tests: builds the bytes a browser would send.
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};

    pub struct SoftKey {
        pub key: SigningKey,
        pub id: Vec<u8>,
        pub count: u32,
    }

    impl SoftKey {
        pub fn new(seed: u8) -> SoftKey {
            let mut scalar = [0x11u8; 32];
            scalar[31] = seed;
            SoftKey { key: SigningKey::from_slice(&scalar).expect("scalar"), id: vec![seed; 20], count: 0 }
        }

        pub fn cose_key(&self) -> Vec<u8> {
            let point = self.key.verifying_key().to_encoded_point(false);
            let (x, y) = (point.x().expect("x"), point.y().expect("y"));
            let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
            out.extend_from_slice(x);
            out.extend_from_slice(&[0x22, 0x58, 0x20]);
            out.extend_from_slice(y);
            out
        }

        pub fn auth_data(&self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
            let mut d = Sha256::digest(rp_id.as_bytes()).to_vec();
            d.push(flags | if attested { FLAG_AT } else { 0 });
            d.extend_from_slice(&self.count.to_be_bytes());
            if attested {
                d.extend_from_slice(&[0u8; 16]);
                d.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
                d.extend_from_slice(&self.id);
                d.extend_from_slice(&self.cose_key());
            }
            d
        }

        pub fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
            serde_json::to_vec(&json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })).expect("json")
        }

        /// `{"fmt": "none", "attStmt": {}, "authData": …}`.
        pub fn attestation_object(auth_data: &[u8]) -> Vec<u8> {
            let mut o = vec![0xa3, 0x63, b'f', b'm', b't', 0x64, b'n', b'o', b'n', b'e', 0x67];
            o.extend_from_slice(b"attStmt");
            o.push(0xa0);
            o.push(0x68);
            o.extend_from_slice(b"authData");
            o.push(0x59);
            o.extend_from_slice(&(auth_data.len() as u16).to_be_bytes());
            o.extend_from_slice(auth_data);
            o
        }

        pub fn sign(&self, auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
            let mut m = auth_data.to_vec();
            m.extend_from_slice(&Sha256::digest(client_data));
            let sig: Signature = self.key.sign(&m);
            sig.to_der().as_bytes().to_vec()
        }

        pub fn registration(&self, rp: &RelyingParty, challenge: &str) -> RegistrationResponse {
            let cd = Self::client_data("webauthn.create", challenge, &rp.origin);
            let att = Self::attestation_object(&self.auth_data(&rp.id, FLAG_UP | FLAG_UV, true));
            RegistrationResponse {
                id: b64(&self.id),
                raw_id: b64(&self.id),
                kind: "public-key".into(),
                response: AttestationResponse { client_data_json: b64(&cd), attestation_object: b64(&att) },
            }
        }

        pub fn assertion(&mut self, rp: &RelyingParty, challenge: &str) -> AuthenticationResponse {
            self.count = self.count.wrapping_add(1);
            let cd = Self::client_data("webauthn.get", challenge, &rp.origin);
            let ad = self.auth_data(&rp.id, FLAG_UP | FLAG_UV, false);
            let sig = self.sign(&ad, &cd);
            AuthenticationResponse {
                id: b64(&self.id),
                raw_id: b64(&self.id),
                kind: "public-key".into(),
                response: AssertionResponse { client_data_json: b64(&cd), authenticator_data: b64(&ad), signature: b64(&sig), user_handle: None },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::SoftKey;
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty::from_base_url("http://localhost:8080/").unwrap()
    }

    #[test]
    fn relying_party_from_base_url() {
        assert_eq!(rp(), RelyingParty { id: "localhost".into(), origin: "http://localhost:8080".into(), name: "anpi".into() });
        let r = RelyingParty::from_base_url("https://Anpi.Example.JP:443/base").unwrap();
        assert_eq!((r.id.as_str(), r.origin.as_str()), ("anpi.example.jp", "https://anpi.example.jp"));
        assert_eq!(RelyingParty::from_base_url("http://[::1]:80").unwrap().origin, "http://[::1]");
        assert!(RelyingParty::from_base_url("ftp://x").is_none());
        assert!(RelyingParty::from_base_url("http://user@x").is_none());
        assert!(RelyingParty::from_base_url("http://x:99999").is_none());
    }

    #[test]
    fn cbor_reader_is_strict_and_bounded() {
        assert_eq!(cbor::decode_all(&[0x18, 0x64]), Some(cbor::Value::Int(100)));
        assert_eq!(cbor::decode_all(&[0x38, 0x63]), Some(cbor::Value::Int(-100)));
        assert_eq!(cbor::decode_all(&[0x43, 1, 2, 3]), Some(cbor::Value::Bytes(&[1, 2, 3])));
        assert!(cbor::decode_all(&[0x43, 1, 2]).is_none(), "short");
        assert!(cbor::decode_all(&[0x5f, 0x41, 0, 0xff]).is_none(), "indefinite length");
        assert!(cbor::decode_all(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_none(), "huge array");
        assert!(cbor::decode_all(&[0x01, 0x02]).is_none(), "trailing");
        assert!(cbor::decode_all(&[0x81; 40]).is_none(), "too deep");
        // Arbitrary bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let bytes: Vec<u8> = (0..(x % 40)).map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            }).collect();
            let _ = cbor::decode(&bytes);
            let _ = parse_auth_data(&bytes);
        }
    }

    #[test]
    fn registration_is_verified() {
        let rp = rp();
        let k = SoftKey::new(1);
        let challenge = b64(&[7u8; 32]);
        let r = k.registration(&rp, &challenge);
        let cd = unb64(&r.response.client_data_json).unwrap();
        let att = unb64(&r.response.attestation_object).unwrap();
        let cred = verify_registration(&rp, &challenge, &k.id, &cd, &att, true).unwrap();
        assert_eq!(cred.credential_id, k.id);
        assert_eq!(cred.public_key, k.key.verifying_key().to_encoded_point(false).as_bytes());
        assert_eq!(cred.fmt, "none");

        let other = b64(&[8u8; 32]);
        assert_eq!(verify_registration(&rp, &other, &k.id, &cd, &att, false), Err(Refused("challenge does not match")));
        assert_eq!(verify_registration(&rp, &challenge, &[9; 20], &cd, &att, false), Err(Refused("credential id differs from the attested one")));
        let evil = RelyingParty { origin: "http://evil.example".into(), ..rp.clone() };
        assert_eq!(verify_registration(&evil, &challenge, &k.id, &cd, &att, false), Err(Refused("origin does not match")));
        let get = SoftKey::client_data("webauthn.get", &challenge, &rp.origin);
        assert_eq!(verify_registration(&rp, &challenge, &k.id, &get, &att, false), Err(Refused("wrong clientData type")));
        // Another RP's credential, or no user presence.
        let att2 = SoftKey::attestation_object(&k.auth_data("evil.example", FLAG_UP, true));
        assert_eq!(verify_registration(&rp, &challenge, &k.id, &cd, &att2, false), Err(Refused("RP ID hash does not match")));
        let att3 = SoftKey::attestation_object(&k.auth_data(&rp.id, 0, true));
        assert_eq!(verify_registration(&rp, &challenge, &k.id, &cd, &att3, false), Err(Refused("user not present")));
        let att4 = SoftKey::attestation_object(&k.auth_data(&rp.id, FLAG_UP, true));
        assert_eq!(verify_registration(&rp, &challenge, &k.id, &cd, &att4, true), Err(Refused("user not verified")));
        assert!(verify_registration(&rp, &challenge, &k.id, &cd, &att4, false).is_ok());
        // Not ES256.
        let mut ad = k.auth_data(&rp.id, FLAG_UP, true);
        let alg = ad.len() - 74;
        assert_eq!(&ad[alg..alg + 2], &[0x03, 0x26]);
        ad[alg + 1] = 0x38; // -25
        ad.insert(alg + 2, 0x18);
        assert!(verify_registration(&rp, &challenge, &k.id, &cd, &SoftKey::attestation_object(&ad), false).is_err());
    }

    #[test]
    fn assertions_are_verified() {
        let rp = rp();
        let mut k = SoftKey::new(2);
        let pk = k.key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        let challenge = b64(&[3u8; 32]);
        let a = k.assertion(&rp, &challenge);
        let (cd, ad, sig) = (unb64(&a.response.client_data_json).unwrap(), unb64(&a.response.authenticator_data).unwrap(), unb64(&a.response.signature).unwrap());
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 0, &cd, &ad, &sig, true), Ok(1));
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 1, &cd, &ad, &sig, true), Err(Refused("signature counter did not increase (cloned authenticator?)")));
        assert_eq!(verify_assertion(&rp, &b64(&[4u8; 32]), &pk, 0, &cd, &ad, &sig, true), Err(Refused("challenge does not match")));
        let other = SoftKey::new(3);
        let other_pk = other.key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        assert_eq!(verify_assertion(&rp, &challenge, &other_pk, 0, &cd, &ad, &sig, true), Err(Refused("bad signature")));
        let mut tampered = ad.clone();
        tampered[36] ^= 1;
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 0, &cd, &tampered, &sig, true), Err(Refused("bad signature")));
        // A high-S signature (the other half of the malleable pair) verifies too.
        let s = p256::ecdsa::Signature::from_der(&sig).unwrap();
        let (r, s_) = s.split_scalars();
        let flipped = p256::ecdsa::Signature::from_scalars(r, -*s_).unwrap();
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 0, &cd, &ad, flipped.to_der().as_bytes(), true), Ok(1));
        // Counters: zero and zero is fine (authenticators without counters).
        k.count = u32::MAX; // wraps to 0 in assertion()
        let a0 = k.assertion(&rp, &challenge);
        let (cd0, ad0, sig0) = (unb64(&a0.response.client_data_json).unwrap(), unb64(&a0.response.authenticator_data).unwrap(), unb64(&a0.response.signature).unwrap());
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 0, &cd0, &ad0, &sig0, true), Ok(0));
        assert!(verify_assertion(&rp, &challenge, &pk, 5, &cd0, &ad0, &sig0, true).is_err(), "a decrease to zero");
    }

    #[tokio::test]
    async fn passkeys_on_every_engine() {
        for (s, _guard) in crate::tests::stores().await {
            let now = 1_700_000_000_000;
            let a = s.create_tenant("pk-a", "A", now).await.unwrap();
            let b = s.create_tenant("pk-b", "B", now).await.unwrap();
            let acc = s.create_account(&a, "pk@example.jp", "鍵 太郎", anpi_core::Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now).await.unwrap();
            let other = s.create_account(&b, "pk@example.jp", "鍵 次郎", anpi_core::Role::Admin, Some("long enough pass"), &AuditEvent::system("test"), now).await.unwrap();
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
