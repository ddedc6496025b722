//! Client certificates for admin access (mutual TLS): a tenant's CA certificate, and the check
//! that a certificate chain presented in the TLS handshake was issued by it.
//!
//! The TLS listener accepts any chain (it only checks that the client holds the key); trust is
//! decided here, per tenant, with webpki (the verifier rustls itself uses): the chain must lead
//! to the tenant's CA, every certificate must be valid at `now`, and the end certificate must
//! allow client authentication (an Extended Key Usage without `clientAuth` is refused; no EKU
//! at all means any use). Revocation lists are not checked.

use crate::Millis;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use std::time::Duration;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// A tenant's CA for client certificates, parsed and checked to be a CA.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCa {
    der: Vec<u8>,
    /// The subject, RFC 4514 style (`CN=Example CA,O=Example`).
    pub subject: String,
    /// SHA-256 of the DER, upper-case hex in colon-separated pairs (as browsers show it).
    pub fingerprint: String,
    pub not_before: Millis,
    pub not_after: Millis,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa").field("subject", &self.subject).field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// Why a presented chain is not accepted (for logs and the audit log, never for the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client sent no certificate (or the request did not come over the built-in TLS).
    NoCertificate,
    /// The tenant's CA itself is outside its validity period.
    CaExpired,
    /// webpki's reason: unknown issuer, expired, not yet valid, wrong key usage, bad signature…
    Invalid(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoCertificate => f.write_str("no client certificate"),
            Refusal::CaExpired => f.write_str("the tenant's CA certificate is outside its validity period"),
            Refusal::Invalid(why) => write!(f, "client certificate not accepted: {why}"),
        }
    }
}

fn millis(t: x509_cert::time::Time) -> Millis {
    i64::try_from(t.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
}

impl ClientCa {
    /// Reads one PEM `CERTIFICATE` that is a CA: basic constraints `CA:TRUE`, and key usage (if
    /// present) allowing certificate signing. The error says what is wrong, in both languages.
    pub fn from_pem(pem: &str) -> Result<ClientCa, String> {
        const NOT_PEM: &str = "PEM形式の証明書（-----BEGIN CERTIFICATE-----）を1つ貼り付けてください (paste one PEM certificate, -----BEGIN CERTIFICATE-----)";
        let certs = CertificateDer::pem_slice_iter(pem.trim().as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|_| NOT_PEM.to_string())?;
        let [cert] = certs.as_slice() else {
            return Err(NOT_PEM.into());
        };
        ClientCa::from_der(cert.as_ref())
    }

    /// As [`ClientCa::from_pem`], from DER.
    pub fn from_der(der: &[u8]) -> Result<ClientCa, String> {
        let unreadable = || "証明書を読み取れません (the certificate cannot be read)".to_string();
        let not_ca = || "CA証明書ではありません（basicConstraints CA:TRUE が必要です） (not a CA certificate: basicConstraints CA:TRUE is needed)".to_string();
        let cert = Certificate::from_der(der).map_err(|_| unreadable())?;
        let tbs = &cert.tbs_certificate;
        match tbs.get::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {}
            Ok(_) => return Err(not_ca()),
            Err(_) => return Err(unreadable()),
        }
        match tbs.get::<KeyUsage>() {
            Ok(Some((_, ku))) if !ku.key_cert_sign() => return Err(not_ca()),
            Ok(_) => {}
            Err(_) => return Err(unreadable()),
        }
        // The same parse webpki does when it uses the certificate as a trust anchor.
        webpki::anchor_from_trusted_cert(&CertificateDer::from(der)).map_err(|_| unreadable())?;
        let fingerprint = Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        Ok(ClientCa {
            der: der.to_vec(),
            subject: tbs.subject.to_string(),
            fingerprint,
            not_before: millis(tbs.validity.not_before),
            not_after: millis(tbs.validity.not_after),
        })
    }

    /// The certificate as PEM (canonical: what is stored).
    pub fn to_pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// Whether `now` is within the CA's own validity period.
    pub fn is_current(&self, now: Millis) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Checks a chain as the client presented it (end certificate first, then intermediates)
    /// against this CA at `now`, for client authentication.
    pub fn verify(&self, chain: Option<&[CertificateDer<'_>]>, now: Millis) -> Result<(), Refusal> {
        let Some((end, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return Err(Refusal::NoCertificate);
        };
        // webpki does not check a trust anchor's own dates.
        if !self.is_current(now) {
            return Err(Refusal::CaExpired);
        }
        let ca = CertificateDer::from(self.der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let end = webpki::EndEntityCert::try_from(end).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let time = UnixTime::since_unix_epoch(Duration::from_millis(u64::try_from(now).unwrap_or(0)));
        end.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], intermediates, time, webpki::KeyUsage::client_auth(), None, None)
            .map(|_| ())
            .map_err(|e| Refusal::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    //! Certificates in `testdata/clientcert/` were made once with the openssl CLI
    //! (`testdata/clientcert/make.sh`); the tests take `now` from their validity periods, so
    //! they do not go stale.
    use super::*;

    const CA: &str = include_str!("../testdata/clientcert/ca.pem");
    const OTHER_CA: &str = include_str!("../testdata/clientcert/other-ca.pem");
    const CLIENT: &str = include_str!("../testdata/clientcert/client.pem");
    const SERVER_ONLY: &str = include_str!("../testdata/clientcert/server-only.pem");
    const OTHER_CLIENT: &str = include_str!("../testdata/clientcert/other-client.pem");

    fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().unwrap()
    }

    fn validity(pem: &str) -> (Millis, Millis) {
        let c = Certificate::from_der(chain(pem)[0].as_ref()).unwrap();
        (millis(c.tbs_certificate.validity.not_before), millis(c.tbs_certificate.validity.not_after))
    }

    #[test]
    fn reads_a_ca_and_refuses_anything_else() {
        let ca = ClientCa::from_pem(CA).unwrap();
        assert_eq!(ca.subject, "CN=anpi test client CA,O=anpi test");
        assert_eq!(ca.fingerprint.len(), 32 * 3 - 1);
        assert!(ca.not_before < ca.not_after);
        assert_eq!(ClientCa::from_pem(&ca.to_pem()).unwrap(), ca, "PEM round trip");
        assert!(ClientCa::from_pem(CLIENT).unwrap_err().contains("not a CA certificate"), "a leaf is not a CA");
        assert!(ClientCa::from_pem("").unwrap_err().contains("paste one PEM certificate"));
        assert!(ClientCa::from_pem("hello").unwrap_err().contains("paste one PEM certificate"));
        assert!(ClientCa::from_pem(&format!("{CA}{OTHER_CA}")).unwrap_err().contains("paste one PEM certificate"), "one certificate only");
        let junk = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        assert!(ClientCa::from_pem(junk).unwrap_err().contains("cannot be read"));
    }

    #[test]
    fn chains_are_checked_against_the_ca_at_now() {
        let ca = ClientCa::from_pem(CA).unwrap();
        let (from, until) = validity(CLIENT);
        let now = from + 3_600_000;
        assert_eq!(ca.verify(Some(&chain(CLIENT)), now), Ok(()));
        assert_eq!(ca.verify(None, now), Err(Refusal::NoCertificate));
        assert_eq!(ca.verify(Some(&[]), now), Err(Refusal::NoCertificate));
        // Another CA's certificate, a certificate only for servers, the wrong time.
        assert!(matches!(ca.verify(Some(&chain(OTHER_CLIENT)), now), Err(Refusal::Invalid(e)) if e.contains("UnknownIssuer")));
        assert!(matches!(ca.verify(Some(&chain(SERVER_ONLY)), now), Err(Refusal::Invalid(e)) if e.contains("RequiredEkuNotFound")));
        assert!(matches!(ca.verify(Some(&chain(CLIENT)), until + 1000), Err(Refusal::Invalid(e)) if e.contains("Expired")));
        // (Made in the same second as the CA: before it, the CA is not yet valid either.)
        assert!(ca.verify(Some(&chain(CLIENT)), from - 1000).is_err());
        // The CA itself out of date (checked first: webpki does not look at an anchor's dates).
        assert_eq!(ca.verify(Some(&chain(CLIENT)), ca.not_after + 1), Err(Refusal::CaExpired));
        // The other CA accepts its own certificate only.
        let other = ClientCa::from_pem(OTHER_CA).unwrap();
        assert_eq!(other.verify(Some(&chain(OTHER_CLIENT)), now), Ok(()));
        assert!(other.verify(Some(&chain(CLIENT)), now).is_err());
    }
}
