//! Client certificates (mutual TLS) for admin access, over the built-in TLS listener
//! (`--tls-cert`/`--tls-key`) with certificates made by the `openssl` command at test time:
//! the settings page (CA upload and its checks, the self-lockout guard), then with the
//! requirement on: an admin with a certificate from the tenant's CA signs in and works; without
//! one, with another CA's, an expired or a server-only certificate the admin is refused (on
//! sign-in and on every request) and the refusals are in the audit log; distributors and answer
//! links are unaffected; a plain-HTTP listener (as behind a reverse proxy) lets no admin in.
//! And the listener's handshake: a client presenting a certificate must hold its key.
//!
//! The listener does not depend on the storage engine (the store methods are tested on both
//! engines in `anpi-store`), so this runs on SQLite only.

use super::common::*;
use super::tls::{openssl, openssl_ok, Pki};
use crate::support::http::reqwest_client_with_identity;
use crate::support::{Client, Engine, Resp, Server};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DENIED: &str = "この端末からの管理者としてのアクセスは、組織のポリシーにより許可されていません";
const LOCKOUT: &str = "you would lock yourself out";

/// The tenant's CA and someone else's, issuing client certificates.
struct ClientCas {
    dir: TempDir,
}

impl ClientCas {
    fn new() -> ClientCas {
        let dir = tempfile::Builder::new().prefix("anpi-mtls-").tempdir().expect("temp dir");
        for (name, subject) in [("tenant-ca", "/O=mtls test/CN=mtls tenant CA"), ("other-ca", "/O=someone else/CN=another CA")] {
            openssl_ok(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-subj",
                    subject,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        ClientCas { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{name}.pem"))).expect("read PEM")
    }

    /// Issues `name` from `ca` with extended key usage `eku`, valid for `days` (0: it expires
    /// at once); returns the certificate and its key in one PEM (a reqwest identity).
    fn issue(&self, name: &str, ca: &str, eku: &str, days: u32) -> Vec<u8> {
        let dir = self.path();
        openssl_ok(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\n"),
        )
        .expect("write ext");
        openssl_ok(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &format!("0x{:x}", rand_serial()),
                "-days",
                &days.to_string(),
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        let mut identity = std::fs::read(dir.join(format!("{name}.pem"))).expect("read certificate");
        identity.extend(std::fs::read(dir.join(format!("{name}.key"))).expect("read key"));
        identity
    }

    /// `openssl x509 -fingerprint -sha256` of `name`: `AB:CD:…`.
    fn fingerprint(&self, name: &str) -> String {
        let out = openssl(self.path(), &["x509", "-in", &format!("{name}.pem"), "-noout", "-fingerprint", "-sha256"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.trim().rsplit_once('=').map(|(_, f)| f.to_string()).unwrap_or_else(|| panic!("fingerprint: {text}"))
    }
}

fn rand_serial() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
}

/// A client of `env`'s tenant listener presenting `identity` (certificate and key PEM).
fn with_cert(env: &Env, identity: &[u8]) -> Client {
    let ca = env.server.tls_ca().expect("https server");
    Client::with_http(env.server.base_url(), reqwest_client_with_identity(ca, identity))
}

/// The password step; returns the response (303 into the console, or the refusal).
async fn sign_in(c: &mut Client, email: &str) -> Resp {
    c.get("/login").await.expect_status(200);
    c.post_form("/login", &[("tenant", "mtls"), ("email", email), ("password", PASSWORD)]).await
}

#[track_caller]
fn assert_denied(r: &Resp) {
    assert_eq!(r.status, 403, "{}: expected the certificate denial, got {}: {}", r.url, r.status, r.text);
    assert!(r.text.contains(DENIED) && r.text.contains("id=\"cert-denied\""), "denial text on {}: {}", r.url, r.text);
    for detail in ["UnknownIssuer", "Expired", "no client certificate", "CN="] {
        assert!(!r.text.contains(detail), "the reason is not shown: {detail}");
    }
}

async fn set_required(c: &mut Client, on: bool) -> Resp {
    c.get("/security/client-cert").await.expect_status(200);
    let fields: &[(&str, &str)] = if on { &[("required", "1")] } else { &[] };
    c.post_form("/security/client-cert/require", fields).await
}

async fn upload_ca(c: &mut Client, pem: &str) -> Resp {
    c.get("/security/client-cert").await.expect_status(200);
    c.post_form("/security/client-cert/ca", &[("ca_pem", pem)]).await
}

/// Invites a distributor and signs them in.
async fn distributor(env: &Env, admin: &mut Client) -> Client {
    admin.get("/accounts").await.expect_status(200);
    admin.post_form("/accounts", &[("name", "配信 花子"), ("email", "dist@mtls.example"), ("role", "distributor")]).await.expect_status(303);
    let invite = wait_mail(&env.sink, "invite", |m| m.to.contains(&"dist@mtls.example".to_string())).await;
    let link = invite.links(&env.server.url("/password/reset/")).remove(0);
    let mut c = env.server.client();
    c.post_form_raw(&link, &[("new", PASSWORD)]).await.expect_status(303);
    login(&mut c, "mtls", "dist@mtls.example", PASSWORD).await;
    c
}

#[tokio::test]
async fn admin_access_with_client_certificates() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 3001, false);
    let cas = ClientCas::new();
    // Issued first: by the time it is used it has expired.
    let expired = cas.issue("expired", "tenant-ca", "clientAuth", 0);
    let good = cas.issue("admin", "tenant-ca", "clientAuth", 2);
    let foreign = cas.issue("foreign", "other-ca", "clientAuth", 2);
    let server_only = cas.issue("server-only", "tenant-ca", "serverAuth", 2);
    let tls_args = ["--tls-cert".to_string(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()];
    let env = env_with(Engine::Sqlite, |b| b.https(pki.ca_pem.clone()).args(tls_args)).await;
    let email = admin_email("mtls");

    // The tenant listener asks for a certificate (a CertificateRequest, naming no CA); the
    // operator listener does not ask.
    for (port, asks) in [(env.server.port(), true), (env.server.operator_port(), false)] {
        let out = openssl(pki.dir.path(), &["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-CAfile", "ca.pem"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.contains("Requested Signature Algorithms"), asks, "port {port}: {text}");
        assert!(!text.contains("Acceptable client certificate CA names"), "{text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    }

    let mut admin = tenant(&env, "mtls").await;
    let mut dist = distributor(&env, &mut admin).await;
    import_csv(&mut admin, people_csv(1, "M").as_bytes(), "auto").await;
    let incident = start_incident(&mut admin, "証明書テスト", &[("all", "1")]).await;
    let mail = wait_mail(&env.sink, "answer link", |m| m.subject.contains("証明書テスト")).await;
    let link = mail.links(&env.server.url("/a/")).remove(0);

    // Settings: admins only; a CA is needed first, and only a CA is accepted.
    let page = admin.get("/security/client-cert").await.expect_status(200);
    assert!(page.text.contains("id=\"no-ca\"") && page.text.contains("提示されていません"), "{}", page.text);
    assert!(admin.get("/security").await.text.contains("href=\"/security/client-cert\""), "linked from the security page");
    dist.get("/security/client-cert").await.expect_status(403);
    let r = set_required(&mut admin, true).await.expect_status(400);
    assert!(r.text.contains("先にCA証明書を登録してください") && !r.text.contains("upload a CA certificate first"), "in the page's language: {}", r.text);
    let r = upload_ca(&mut admin, &String::from_utf8_lossy(&good)).await.expect_status(400);
    assert!(r.text.contains("not a CA certificate"), "a client certificate (and key) is not a CA: {}", r.text);
    let r = upload_ca(&mut admin, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n").await.expect_status(400);
    assert!(r.text.contains("cannot be read"), "{}", r.text);
    upload_ca(&mut admin, &cas.pem("tenant-ca")).await.expect_status(303);
    let page = admin.get("/security/client-cert").await.expect_status(200);
    assert!(page.text.contains("id=\"ca-subject\">CN=mtls tenant CA,O=mtls test<"), "subject: {}", page.text);
    assert!(page.text.contains(&cas.fingerprint("tenant-ca")), "fingerprint: {}", page.text);
    assert!(page.text.contains("id=\"ca-validity\"") && !page.text.contains("id=\"ca-expired\""), "{}", page.text);

    // Enabling without presenting a certificate, or with another CA's, is refused.
    let r = set_required(&mut admin, true).await.expect_status(400);
    assert!(r.text.contains(LOCKOUT), "{}", r.text);
    let mut foreign_admin = with_cert(&env, &foreign);
    sign_in(&mut foreign_admin, &email).await.expect_status(303);
    let page = foreign_admin.get("/security/client-cert").await.expect_status(200);
    assert!(page.text.contains("登録済みのCAでは検証できません"), "{}", page.text);
    assert!(set_required(&mut foreign_admin, true).await.expect_status(400).text.contains(LOCKOUT));
    admin.get("/").await.expect_status(200);

    // With a certificate from the tenant's CA it can be turned on.
    let mut certified = with_cert(&env, &good);
    sign_in(&mut certified, &email).await.expect_status(303);
    let page = certified.get("/security/client-cert").await.expect_status(200);
    assert!(page.text.contains("登録済みのCAで検証できました"), "{}", page.text);
    set_required(&mut certified, true).await.expect_status(303);
    assert!(certified.get("/security/client-cert").await.text.contains("id=\"required\" name=\"required\" value=\"1\" checked"));

    // The certified admin works as before.
    let dashboard = format!("/incidents/{incident}");
    for path in ["/", "/people", "/accounts", "/security", dashboard.as_str()] {
        certified.get(path).await.expect_status(200);
    }
    certified.post_form(&format!("/incidents/{incident}/resend"), &[]).await.expect_status(303);

    // Sessions without a valid certificate are refused on every request, forms included.
    assert_denied(&admin.get("/").await);
    assert_denied(&admin.get("/people").await);
    assert_denied(&foreign_admin.get("/").await);
    assert_denied(&admin.post_form(&format!("/incidents/{incident}/close"), &[]).await);
    // Signing in without one, or with another CA's, an expired or a server-only certificate,
    // gives no session.
    let mut none = env.server.client();
    for (c, what) in [
        (&mut none, "none"),
        (&mut with_cert(&env, &foreign), "foreign"),
        (&mut with_cert(&env, &expired), "expired"),
        (&mut with_cert(&env, &server_only), "server-only"),
    ] {
        let r = sign_in(c, &email).await;
        assert_denied(&r);
        assert!(c.cookie("__Host-anpi").is_none(), "{what}: no session cookie");
        assert!(c.get("/").await.is_redirect(), "{what}: not signed in");
    }

    // Distributors and answer links need no certificate.
    dist.get("/").await.expect_status(200);
    dist.get(&dashboard).await.expect_status(200);
    env.server.client().get(&link).await.expect_status(200);

    // Every refusal is in the audit log, with the reason; the changes too.
    let log = certified.get("/audit.csv?view=signin").await.expect_status(200).text + &certified.get("/audit.csv?view=audit").await.expect_status(200).text;
    let denials: Vec<&str> = log.lines().filter(|l| l.contains("client_cert_denied")).collect();
    for reason in ["sign-in: no client certificate", "request: no client certificate", "UnknownIssuer", "Expired", "RequiredEkuNotFound"] {
        assert!(denials.iter().any(|l| l.contains(reason)), "no audited denial with {reason:?}:\n{}", denials.join("\n"));
    }
    assert!(denials.iter().all(|l| l.contains(&email) && l.contains("denied")), "{}", denials.join("\n"));
    assert!(log.contains("client_ca_changed") && log.contains("client_cert_requirement_changed"), "{log}");
    assert!(env.server.log().contains("admin access refused: client certificate required"));

    // While required, the CA cannot be removed, nor replaced by one that would lock this admin out.
    let r = upload_ca(&mut certified, &cas.pem("other-ca")).await.expect_status(400);
    assert!(r.text.contains(LOCKOUT), "{}", r.text);
    certified.get("/security/client-cert").await.expect_status(200);
    let r = certified.post_form("/security/client-cert/ca/remove", &[]).await.expect_status(400);
    assert!(r.text.contains("管理者のクライアント証明書の必須設定を先に解除してください"), "{}", r.text);
    assert!(certified.get("/security/client-cert").await.text.contains("CN=mtls tenant CA"), "the CA stayed");

    // Plain HTTP (what anpi sees behind a TLS-terminating proxy) carries no certificate: no
    // admin gets in, a forwarded certificate header changes nothing; distributors do.
    let plain = Server::builder(env.server.database_url()).smtp(&env.sink).start().await;
    let mut c = plain.client();
    c.get("/login").await.expect_status(200);
    let csrf = c.csrf().unwrap_or_default();
    let rb = c
        .request(reqwest::Method::POST, "/login")
        .header("X-SSL-Client-Cert", cas.pem("admin").replace('\n', " "))
        .header("X-Client-Cert", cas.pem("admin").replace('\n', " "))
        .form(&[("csrf", csrf.as_str()), ("tenant", "mtls"), ("email", email.as_str()), ("password", PASSWORD)]);
    assert_denied(&c.send(rb).await);
    login(&mut plain.client(), "mtls", "dist@mtls.example", PASSWORD).await;

    // Turned off again, the admin without a certificate is back in.
    set_required(&mut certified, false).await.expect_status(303);
    let mut again = env.server.client();
    sign_in(&mut again, &email).await.expect_status(303);
    again.get("/").await.expect_status(200);
}

/// Any certificate chain with any key, whatever the server asks for.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _root_hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// `GET /healthz` over `version`, presenting `chain` signed for with `key` (which need not be
/// the certificate's); the response, or why there is none.
async fn healthz_presenting(
    port: u16,
    ca: &[u8],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signer = provider.key_provider.load_private_key(key).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Present(Arc::new(CertifiedKey::new(chain, signer)))));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.map_err(|e| format!("write: {e}"))?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&got).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(15), exchange).await.map_err(|_| "timed out".to_string())?
}

/// The listener accepts any certificate but only from a client that holds its key: the
/// handshake signature (TLS 1.3 and 1.2) is verified against the presented certificate.
#[tokio::test]
async fn the_handshake_proves_the_client_holds_the_key() {
    crate::support::http::install_crypto_provider();
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 3101, false);
    let (server, _db) = super::tls::tls_server(&pki, &cert, &key, &[]).await;
    let cas = ClientCas::new();
    let admin = cas.issue("admin", "tenant-ca", "clientAuth", 2);
    let other = cas.issue("someone", "other-ca", "clientAuth", 2);
    let chain = |pem: &[u8]| CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().expect("certificate PEM");
    let key_of = |pem: &[u8]| PrivateKeyDer::from_pem_slice(pem).expect("key PEM");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // Its own key: served.
        let r = healthz_presenting(server.port(), &pki.ca_pem, chain(&admin), key_of(&admin), version).await;
        assert!(r.as_deref().is_ok_and(|t| t.starts_with("HTTP/1.1 200")), "{version:?} with the right key: {r:?}");
        // Someone else's certificate with one's own key: the handshake fails, nothing is served.
        let r = healthz_presenting(server.port(), &pki.ca_pem, chain(&admin), key_of(&other), version).await;
        assert!(!r.as_deref().is_ok_and(|t| t.contains("200")), "{version:?} with the wrong key was served: {r:?}");
    }
    // Still serving.
    let r = healthz_presenting(server.port(), &pki.ca_pem, chain(&other), key_of(&other), &rustls::version::TLS13).await;
    assert!(r.as_deref().is_ok_and(|t| t.starts_with("HTTP/1.1 200")), "{r:?}");
}
