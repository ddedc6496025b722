//! The built-in TLS listener (`--tls-cert`/`--tls-key`): HTTPS with a test CA made by the
//! `openssl` command at test time, HSTS and the other security headers on every page, TLS 1.2
//! and 1.3 accepted and TLS 1.1/1.0 refused (by the `openssl` client and by hand-made TLS 1.1
//! ClientHellos), failed handshakes harmless, certificate files reloaded without a restart
//! (a bad file keeps the old certificate), and the plain-HTTP redirect listener.
//!
//! The listener does not depend on the storage engine, so these run on SQLite only.

use crate::support::http::reqwest_client_trusting;
use crate::support::util::poll_until;
use crate::support::{free_port, fresh_database, Engine, Server};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Runs `openssl ARGS…` in `dir` with stdin closed; at most 30 s.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the openssl command ({e}); install Debian's `openssl` package (scripts/test.sh does)"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.expect("waiting for openssl"),
        Err(_) => {
            crate::support::util::signal(pid, "KILL");
            panic!("openssl {} did not finish within 30 s", args.join(" "));
        }
    }
}

#[track_caller]
pub(crate) fn openssl_ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A throwaway CA issuing server certificates for `localhost` and 127.0.0.1.
pub(crate) struct Pki {
    pub(crate) dir: TempDir,
    pub(crate) ca_pem: Vec<u8>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::Builder::new().prefix("anpi-tls-").tempdir().expect("temp dir");
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
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=anpi test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        std::fs::write(dir.path().join("leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").expect("write leaf.ext");
        let ca_pem = std::fs::read(dir.path().join("ca.pem")).expect("read ca.pem");
        Pki { dir, ca_pem }
    }

    /// Issues a server certificate with `serial` (RSA or P-256 key); returns the PEM files
    /// `NAME.pem` (certificate) and `NAME.key` (PKCS#8 key) in the CA's directory.
    pub(crate) fn issue(&self, name: &str, serial: u32, rsa: bool) -> (PathBuf, PathBuf) {
        let (cert, key, csr) = (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"));
        let newkey: &[&str] = if rsa { &["-newkey", "rsa:2048"] } else { &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] };
        let mut args = vec!["req"];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&["-nodes", "-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl_ok(self.dir.path(), &args);
        let serial = serial.to_string();
        openssl_ok(
            self.dir.path(),
            &["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", &serial, "-days", "2", "-extfile", "leaf.ext", "-out", &cert],
        );
        (self.dir.path().join(cert), self.dir.path().join(key))
    }
}

/// The DER of the first certificate in a PEM file.
fn der_of(pem_file: &Path) -> Vec<u8> {
    let pem = std::fs::read(pem_file).expect("read certificate");
    CertificateDer::from_pem_slice(&pem).expect("PEM certificate").to_vec()
}

/// The leaf certificate the server presents on a new connection (trusting `ca`).
async fn served_cert(url: &str, ca: &[u8]) -> Result<Vec<u8>, String> {
    crate::support::http::install_crypto_provider();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("CA PEM"))
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().ok_or("no TLS info")?;
    info.peer_certificate().map(<[u8]>::to_vec).ok_or_else(|| "no peer certificate".to_string())
}

/// Starts a TLS server with `cert`/`key` and the given extra arguments.
pub(crate) async fn tls_server(pki: &Pki, cert: &Path, key: &Path, extra: &[String]) -> (Server, crate::support::DbGuard) {
    let (url, db) = fresh_database(Engine::Sqlite).await;
    let mut args = vec!["--tls-cert".to_string(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()];
    args.extend_from_slice(extra);
    let server = Server::builder(&url).https(pki.ca_pem.clone()).args(args).start().await;
    (server, db)
}

/// A TLS 1.1 ClientHello (client_version 3.2, no `supported_versions` extension, TLS 1.1 cipher
/// suites) for SNI `localhost`. A real TLS 1.1 client sends no `signature_algorithms` (a TLS 1.2
/// extension); `sigalgs` adds it, so that only the version is wrong.
fn tls11_client_hello(sigalgs: bool) -> Vec<u8> {
    let host = b"localhost";
    let mut ext = Vec::new();
    // server_name
    let sni_list_len = 3 + host.len();
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&((sni_list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(sni_list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(host.len() as u16).to_be_bytes());
    ext.extend_from_slice(host);
    // supported_groups: x25519, secp256r1; ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    if sigalgs {
        // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    }

    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // session id
    let suites: [u8; 8] = [0xc0, 0x13, 0xc0, 0x09, 0x00, 0x2f, 0x00, 0x35]; // ECDHE-RSA/ECDSA-AES128-SHA, AES128-SHA, AES256-SHA
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut hs = vec![0x01]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Sends `bytes` to 127.0.0.1:`port` and returns everything read until the server closes
/// (at most 10 s).
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await.expect("the server neither answered nor closed within 10 s");
    got
}

#[tokio::test]
async fn https_with_security_headers_tls12_and_13_only_and_http_redirect() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 1001, false);
    let redirect_port = free_port();
    let (mut server, _db) = tls_server(&pki, &cert, &key, &["--http-redirect".into(), format!("127.0.0.1:{redirect_port}")]).await;
    assert!(server.base_url().starts_with("https://"));
    let http = reqwest_client_trusting(&pki.ca_pem);

    // (a) HTTPS with the CA trusted, over HTTP/1.1 (ALPN), with every security header on every
    // kind of page: sign-in form, health check, answer page with a bad token, 404, operator.
    let urls = [
        server.url("/login"),
        server.url("/healthz"),
        server.url("/a/bogus-token"),
        server.url("/no/such/page"),
        server.operator_url("/login"),
        server.operator_url("/healthz"),
    ];
    for url in &urls {
        let r = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
        assert_eq!(r.version(), reqwest::Version::HTTP_11, "{url}");
        let h = r.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(get("strict-transport-security"), HSTS, "{url}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{url}");
        assert_eq!(get("x-frame-options"), "DENY", "{url}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{url}");
        assert_eq!(get("cache-control"), "no-store", "{url}");
        assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{url}");
    }
    // A client that does not trust the CA is refused by its own verifier (nothing is served
    // without TLS).
    let untrusting = crate::support::http::reqwest_client();
    assert!(untrusting.get(server.url("/healthz")).send().await.is_err(), "the certificate is verified");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", server.port())).await.map(|r| r.status().as_u16() != 200).unwrap_or(true),
        "no plain HTTP on the TLS port"
    );

    // (b) TLS 1.2 and 1.3 handshakes succeed; TLS 1.1 and 1.0 are refused with a fatal alert
    // and nothing negotiated. (SECLEVEL=0 lets OpenSSL 3 offer the old versions at all.)
    let connect = format!("127.0.0.1:{}", server.port());
    for v in ["-tls1_3", "-tls1_2"] {
        let out = openssl(pki.dir.path(), &["s_client", "-connect", &connect, "-servername", "localhost", "-CAfile", "ca.pem", "-verify_return_error", v]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "openssl s_client {v} failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        let want = if v == "-tls1_3" { "TLSv1.3" } else { "TLSv1.2" };
        assert!(text.contains(want) && text.contains("Verify return code: 0 (ok)"), "{v}: {text}");
        assert!(text.contains("ALPN") || text.contains("No ALPN"), "{v}: {text}");
    }
    for v in ["-tls1_1", "-tls1"] {
        let out = openssl(pki.dir.path(), &["s_client", "-connect", &connect, "-servername", "localhost", "-cipher", "DEFAULT@SECLEVEL=0", v]);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "openssl s_client {v} connected: {all}");
        // The hello was sent and the server refused it (not a client-side "no protocols
        // available"): an alert from the server, no cipher.
        assert!(all.contains("SSL alert number") && all.contains("Cipher is (NONE)"), "{v}: expected the server's alert, got: {all}");
    }
    // The same with hand-made TLS 1.1 ClientHellos: handshake_failure (40) for the genuine one
    // (rustls first requires the TLS 1.2 signature_algorithms extension), protocol_version (70)
    // when that extension is there and only the version is too old.
    for (sigalgs, alert) in [(false, 40u8), (true, 70u8)] {
        let reply = exchange(server.port(), &tls11_client_hello(sigalgs)).await;
        assert!(reply.len() >= 7, "no alert: {reply:02x?}");
        assert_eq!(reply[0], 0x15, "an alert record: {reply:02x?}");
        assert_eq!(&reply[5..7], &[2, alert], "fatal alert {alert} (sigalgs: {sigalgs}): {reply:02x?}");
    }

    // Failed handshakes (plain HTTP, garbage, a client that says nothing and leaves) harm
    // nothing: the server still serves.
    let _ = exchange(server.port(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let _ = exchange(server.port(), &[0u8; 64]).await;
    drop(TcpStream::connect(("127.0.0.1", server.port())).await.expect("connect"));
    let r = http.get(server.url("/healthz")).send().await.expect("still serving");
    assert_eq!(r.status(), 200);

    // (d) The plain-HTTP listener redirects every request, with any Host, to the same path on
    // the --base-url host over https.
    let plain = crate::support::http::reqwest_client();
    let from = format!("http://127.0.0.1:{redirect_port}");
    for (method, path) in [(reqwest::Method::GET, "/login?lang=en"), (reqwest::Method::POST, "/a/some-token"), (reqwest::Method::GET, "//evil.example/x")] {
        let r = plain.request(method.clone(), format!("{from}{path}")).header("Host", "evil.example").send().await.expect("redirect listener");
        assert_eq!(r.status(), 308, "{method} {path}");
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(location, server.url(path), "{method} {path}");
        assert!(r.headers().get("strict-transport-security").is_none(), "HSTS is meaningless over plain HTTP");
    }
    let r = http.get(server.url("/login?lang=en")).send().await.expect("follow the redirect");
    assert_eq!(r.status(), 200);

    // SIGTERM stops all three listeners promptly (an idle keep-alive TLS connection is open).
    let started = std::time::Instant::now();
    let status = server.terminate(Duration::from_secs(20)).expect("was running");
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
}

#[tokio::test]
async fn certificate_files_are_reloaded_without_restart() {
    let pki = Pki::new();
    let (first_cert, first_key) = pki.issue("first", 2001, false);
    let (second_cert, second_key) = pki.issue("second", 2002, true);
    // The server reads the files it is given; replace their contents in place.
    let live = pki.dir.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(&first_cert, &cert).expect("copy");
    std::fs::copy(&first_key, &key).expect("copy");
    let (server, _db) = tls_server(&pki, &cert, &key, &[]).await;
    let url = server.url("/healthz");
    let first = der_of(&first_cert);
    assert_eq!(served_cert(&url, &pki.ca_pem).await.expect("first certificate"), first);

    // A broken certificate file is reported and the previous certificate stays.
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n").expect("write");
    let logged = poll_until(Duration::from_secs(20), Duration::from_millis(200), || async {
        server.log().contains("TLS certificate files changed but cannot be loaded").then_some(())
    })
    .await;
    assert!(logged.is_some(), "the bad file is logged:\n{}", server.log());
    assert_eq!(served_cert(&url, &pki.ca_pem).await.expect("still the first certificate"), first);

    // The new pair, key first (the key alone does not match the old certificate either), is
    // served from the next check on, by the same process.
    let pid = server.pid();
    std::fs::copy(&second_key, &key).expect("copy");
    std::fs::copy(&second_cert, &cert).expect("copy");
    let second = der_of(&second_cert);
    let served =
        poll_until(Duration::from_secs(20), Duration::from_millis(250), || async { served_cert(&url, &pki.ca_pem).await.ok().filter(|c| *c == second) }).await;
    assert!(served.is_some(), "the new certificate was not served within 20 s:\n{}", server.log());
    assert_eq!(server.pid(), pid, "no restart");
    assert!(server.log().contains("TLS certificate reloaded"));
    // The operator listener serves the new certificate too.
    assert_eq!(served_cert(&server.operator_url("/healthz"), &pki.ca_pem).await.expect("operator"), second);
}
