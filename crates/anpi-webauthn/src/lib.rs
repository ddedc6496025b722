//! anpi's WebAuthn relying party: passkeys as a second factor, after WebAuthn Level 2 §7.1
//! (registering a new credential) and §7.2 (verifying an authentication assertion). No I/O:
//! the store keeps challenges and credentials, the web layer speaks HTTP.
//!
//! The encodings come from maintained crates: CBOR (attestation objects, authenticator data)
//! from `ciborium`, COSE keys from `coset`, ES256 from RustCrypto's `p256` (no OpenSSL). What
//! remains here is the ceremony itself, which no crate in the tree does without OpenSSL or a
//! heavy framework (`webauthn-rs` 0.6 brings its own session state model and many crates).
//!
//! What is checked: the client data's `type`, `challenge` (server-issued, single use, five
//! minutes: the store's part) and `origin` (the origin of `--base-url`; cross-origin calls are
//! refused); the authenticator data's RP ID hash (SHA-256 of the host of `--base-url`), the
//! user-present flag (and user-verified when asked for); the credential's algorithm (ES256
//! only: COSE EC2 on P-256); the assertion signature over `authData ‖ SHA-256(clientDataJSON)`;
//! the signature counter (a counter that does not grow, when either side is non-zero, is
//! refused as a possibly cloned authenticator).
//!
//! What is not: attestation. "none" is requested and any attestation format is accepted
//! without verifying its statement, so nothing is proved about the authenticator's make.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use base64::Engine as _;
use ciborium::Value;
use coset::{iana, CborSerializable, CoseKey, KeyType, Label, RegisteredLabelWithPrivate};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MS: i64 = 5 * 60_000;
/// The COSE algorithm id of ES256 (ECDSA with SHA-256 on P-256).
pub const COSE_ES256: i64 = -7;
/// Credential ids longer than this are refused (§7.1 step 18 of Level 3; Level 2 has 1023 as the CTAP limit).
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Nesting deeper than this in CBOR is refused (attestation objects and keys are shallow).
const CBOR_DEPTH: usize = 16;

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// base64url without padding (WebAuthn's JSON encoding of binary fields).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, padded or not.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

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

/// One CBOR item from the front of `input` (ciborium, depth-bounded) and how many bytes it took.
fn cbor_item(input: &[u8]) -> Option<(Value, usize)> {
    let mut rest = input;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, CBOR_DEPTH).ok()?;
    Some((value, input.len() - rest.len()))
}

/// Exactly one CBOR item.
fn cbor_all(input: &[u8]) -> Option<Value> {
    match cbor_item(input)? {
        (value, used) if used == input.len() => Some(value),
        _ => None,
    }
}

/// The value under a text key of a CBOR map.
fn map_get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
}

/// The parts of `clientDataJSON` that are checked.
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
    let (Some(given), Some(expected)) = (unb64(&cd.challenge), unb64(challenge)) else {
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
    let short = Refused("authenticator data too short");
    let rp_id_hash = data.get(..32).ok_or(short)?;
    let flags = *data.get(32).ok_or(short)?;
    let count: [u8; 4] = data.get(33..37).and_then(|c| c.try_into().ok()).ok_or(short)?;
    let sign_count = u32::from_be_bytes(count);
    let mut pos = 37;
    let mut credential = None;
    let rest = |pos: usize| data.get(pos..).ok_or(short);
    if flags & FLAG_AT != 0 {
        // aaguid (16), credentialIdLength (2), credentialId, credentialPublicKey (COSE).
        let len_at = pos + 16;
        let len: [u8; 2] = data.get(len_at..len_at + 2).and_then(|l| l.try_into().ok()).ok_or(Refused("attested credential data too short"))?;
        let id_len = usize::from(u16::from_be_bytes(len));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID {
            return Err(Refused("bad credential id length"));
        }
        let id_start = len_at + 2;
        let id = data.get(id_start..id_start + id_len).ok_or(Refused("attested credential data too short"))?;
        pos = id_start + id_len;
        let (_, used) = cbor_item(rest(pos)?).ok_or(Refused("credential public key is not CBOR"))?;
        let key_bytes = data.get(pos..pos + used).ok_or(short)?;
        pos += used;
        credential = Some((id, cose_es256_to_sec1(key_bytes)?));
    }
    if flags & FLAG_ED != 0 {
        let (ext, used) = cbor_item(rest(pos)?).ok_or(Refused("extensions are not CBOR"))?;
        if !ext.is_map() {
            return Err(Refused("extensions are not a map"));
        }
        pos += used;
    }
    if pos != data.len() {
        return Err(Refused("trailing bytes in authenticator data"));
    }
    Ok(AuthData { rp_id_hash, flags, sign_count, credential })
}

/// A COSE_Key (RFC 9052, read by `coset`) for ES256 — kty EC2, alg −7, crv P-256 — as an
/// uncompressed SEC1 point, checked to be on the curve.
fn cose_es256_to_sec1(bytes: &[u8]) -> Result<Vec<u8>, Refused> {
    let key = CoseKey::from_slice(bytes).map_err(|_| Refused("credential public key is not a COSE key"))?;
    if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
        return Err(Refused("credential key is not EC2"));
    }
    if key.alg != Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) {
        return Err(Refused("credential algorithm is not ES256"));
    }
    let param = |label: i64| key.params.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v);
    if param(iana::Ec2KeyParameter::Crv as i64).and_then(Value::as_integer) != Some(ciborium::value::Integer::from(iana::EllipticCurve::P_256 as i64)) {
        return Err(Refused("credential curve is not P-256"));
    }
    let coordinate = |label: iana::Ec2KeyParameter| param(label as i64).and_then(Value::as_bytes).filter(|c| c.len() == 32);
    let (Some(x), Some(y)) = (coordinate(iana::Ec2KeyParameter::X), coordinate(iana::Ec2KeyParameter::Y)) else {
        return Err(Refused("credential key lacks 32-byte coordinates"));
    };
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
    let att = cbor_all(attestation_object).ok_or(Refused("attestation object is not CBOR"))?;
    let Some(fmt) = map_get(&att, "fmt").and_then(Value::as_text) else { return Err(Refused("attestation object lacks fmt")) };
    if !map_get(&att, "attStmt").is_some_and(Value::is_map) {
        return Err(Refused("attestation object lacks attStmt"));
    }
    let Some(auth_data) = map_get(&att, "authData").and_then(Value::as_bytes) else { return Err(Refused("attestation object lacks authData")) };
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
pub fn credential_id(id: &str, raw_id: &str, kind: &str) -> Result<Vec<u8>, Refused> {
    if kind != "public-key" {
        return Err(Refused("credential type is not public-key"));
    }
    let raw = if raw_id.is_empty() { id } else { raw_id };
    let bytes = unb64(raw).ok_or(Refused("credential id is not base64url"))?;
    if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_ID {
        return Err(Refused("bad credential id length"));
    }
    if !id.is_empty() && unb64(id).as_deref() != Some(bytes.as_slice()) {
        return Err(Refused("id and rawId differ"));
    }
    Ok(bytes)
}

pub fn field(s: &str, what: &'static str) -> Result<Vec<u8>, Refused> {
    unb64(s).ok_or(Refused(what))
}

/// A software authenticator for tests: builds the bytes a browser would send.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub mod testing {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use serde_json::json;

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
        assert_eq!(cbor_all(&[0x18, 0x64]), Some(Value::from(100)));
        assert_eq!(cbor_all(&[0x38, 0x63]), Some(Value::from(-100)));
        assert_eq!(cbor_all(&[0x43, 1, 2, 3]), Some(Value::Bytes(vec![1, 2, 3])));
        assert!(cbor_all(&[0x43, 1, 2]).is_none(), "short");
        assert!(cbor_all(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_none(), "huge array");
        assert!(cbor_all(&[0x01, 0x02]).is_none(), "trailing");
        assert!(cbor_all(&[0x81; 40]).is_none(), "too deep");
        assert_eq!(cbor_item(&[0x01, 0x02]).map(|(_, used)| used), Some(1), "one item and its length");
        // Arbitrary bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let bytes: Vec<u8> = (0..(x % 40))
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = cbor_item(&bytes);
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
        let (cd, ad, sig) =
            (unb64(&a.response.client_data_json).unwrap(), unb64(&a.response.authenticator_data).unwrap(), unb64(&a.response.signature).unwrap());
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
        let (cd0, ad0, sig0) =
            (unb64(&a0.response.client_data_json).unwrap(), unb64(&a0.response.authenticator_data).unwrap(), unb64(&a0.response.signature).unwrap());
        assert_eq!(verify_assertion(&rp, &challenge, &pk, 0, &cd0, &ad0, &sig0, true), Ok(0));
        assert!(verify_assertion(&rp, &challenge, &pk, 5, &cd0, &ad0, &sig0, true).is_err(), "a decrease to zero");
    }
}
