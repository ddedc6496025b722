//! The built-in TLS listener: rustls serving TLS 1.3 and 1.2 only, from PEM certificate files
//! that are reloaded without a restart, and the plain-HTTP listener that redirects to HTTPS.
//!
//! rustls implements no protocol older than TLS 1.2 at all (no SSLv3, TLS 1.0 or 1.1 code), so
//! a client offering at most TLS 1.1 is refused with a fatal alert (`handshake_failure` when it
//! lacks TLS 1.2's `signature_algorithms` extension, as real TLS 1.1 clients do, else
//! `protocol_version`); the versions are still named explicitly below so that a future rustls
//! default cannot widen them.
//!
//! The tenant listener asks every client for a certificate but requires none
//! ([`OptionalClientCert`]); the chain a client presents reaches the handlers as
//! [`anpi_web::PeerCertificates`], and a tenant's own CA decides there whether it is trusted.

use anpi_web::PeerCertificates;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(3);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; further connections wait in the kernel backlog.
const MAX_HANDSHAKES: usize = 1024;

/// What identifies one version of a file: modification time and length (`None`: unreadable).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    // `metadata` follows symbolic links, so a re-pointed link (certbot's `live/`, Kubernetes
    // secrets) counts as a change.
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The certificate and key files, and the certificate served now.
///
/// It is rustls's certificate resolver: every handshake takes the current [`CertifiedKey`]
/// under a short read lock, and [`CertFiles::reload_if_changed`] swaps in a new one.
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Seen>,
}

/// The file versions behind the current certificate, and the last versions that failed to load
/// (so a bad file is reported once, not every few seconds).
struct Seen {
    loaded: (Stamp, Stamp),
    failed: Option<(Stamp, Stamp)>,
}

impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl CertFiles {
    /// Loads the certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1
    /// or SEC1). An error here stops the start-up.
    pub fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Arc<CertFiles>, String> {
        let stamps = (stamp(cert), stamp(key));
        let certified = read_certified_key(cert, key, &provider)?;
        Ok(Arc::new(CertFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(Seen { loaded: stamps, failed: None }),
        }))
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Loads the files again when either changed since the current certificate was loaded.
    /// A file that cannot be loaded (half written, a key that does not match the certificate,
    /// not PEM) is logged once and the current certificate stays; it is tried again at every
    /// check, so writing the second file of a pair completes the change.
    pub fn reload_if_changed(&self) {
        let now = (stamp(&self.cert), stamp(&self.key));
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.loaded == now {
            return;
        }
        match read_certified_key(&self.cert, &self.key, &self.provider) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                seen.loaded = now;
                seen.failed = None;
                tracing::info!(cert = %self.cert.display(), key = %self.key.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                if seen.failed != Some(now) {
                    seen.failed = Some(now);
                    tracing::warn!(error = %e, "TLS certificate files changed but cannot be loaded; still serving the previous certificate");
                }
            }
        }
    }

    /// Checks the files every [`RELOAD_EVERY`] until `stop` turns true.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let files = self.clone();
            // Small files, but still blocking I/O and key parsing: keep it off the runtime.
            let _ = tokio::task::spawn_blocking(move || files.reload_if_changed()).await;
        }
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read_certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", cert.display()));
    }
    let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))
}

/// Asks the client for a certificate without requiring one, and accepts any chain: which CA
/// is trusted is each tenant's choice, made per request (`anpi_web`'s client-certificate
/// guard). The handshake signature is still verified, so a client that presents a
/// certificate proves it holds the certificate's private key.
///
/// No CA names are sent (`root_hint_subjects` is empty): browsers then offer every certificate
/// they have, and show no picker when they have none.
#[derive(Debug)]
pub struct OptionalClientCert {
    provider: Arc<CryptoProvider>,
}

impl OptionalClientCert {
    pub fn new(provider: Arc<CryptoProvider>) -> OptionalClientCert {
        OptionalClientCert { provider }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The server configuration: TLS 1.3 and 1.2 (nothing older exists in rustls), HTTP/1.1 by
/// ALPN, the certificate from `files`; with `client_certs`, clients are asked for an optional
/// certificate ([`OptionalClientCert`]).
pub fn server_config(files: Arc<CertFiles>, provider: Arc<CryptoProvider>, client_certs: bool) -> Result<Arc<ServerConfig>, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if client_certs { builder.with_client_cert_verifier(Arc::new(OptionalClientCert::new(provider))) } else { builder.with_no_client_auth() };
    let mut config = builder.with_cert_resolver(files);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The process's crypto provider (installed in `main`), or aws-lc-rs's.
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// A listener for `axum::serve` that hands out TLS streams whose handshake has completed.
///
/// A background task accepts TCP connections and runs each handshake in a task of its own, so
/// a slow or hostile client never holds up the others; a failed or timed-out handshake only
/// closes that connection (logged at `debug`).
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { local, ready })
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        // Ends when the listener is dropped (graceful shutdown), which releases the port.
        let permit = tokio::select! {
            _ = ready.closed() => return,
            p = handshakes.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = ready.closed() => return,
            r = tcp.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    if !matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        // E.g. out of file descriptors: wait instead of spinning.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            None => {
                // The accept task only ends after this listener is dropped; should it die
                // anyway, accept nothing rather than spin.
                tracing::error!(addr = %self.local, "the TLS accept task ended");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What a connection tells the handlers: the peer address and, over TLS, the client
/// certificate chain (taken once per connection, shared by its requests).
#[derive(Debug, Clone)]
pub struct Peer {
    addr: SocketAddr,
    certs: PeerCertificates,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        let (_, conn) = stream.io().get_ref();
        let chain = conn.peer_certificates().filter(|c| !c.is_empty()).map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect()));
        Peer { addr: *stream.remote_addr(), certs: PeerCertificates(chain) }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Peer {
        Peer { addr: *stream.remote_addr(), certs: PeerCertificates::default() }
    }
}

/// Gives handlers the peer as `ConnectInfo<SocketAddr>` and the chain as `PeerCertificates`.
async fn split_peer(mut req: Request) -> Request {
    if let Some(ConnectInfo(peer)) = req.extensions_mut().remove::<ConnectInfo<Peer>>() {
        req.extensions_mut().insert(ConnectInfo(peer.addr));
        req.extensions_mut().insert(peer.certs);
    }
    req
}

/// Serves `router` on `tcp` (over TLS with `tls`) until `stop`, giving handlers the peer
/// address as `ConnectInfo<SocketAddr>` either way, and over TLS the client's certificate
/// chain as [`PeerCertificates`].
pub async fn serve(tcp: TcpListener, tls: Option<TlsAcceptor>, router: Router, stop: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    let app = router.layer(axum::middleware::map_request(split_peer)).into_make_service_with_connect_info::<Peer>();
    match tls {
        None => axum::serve(tcp, app).with_graceful_shutdown(stop).await,
        Some(acceptor) => axum::serve(TlsListener::new(tcp, acceptor)?, app).with_graceful_shutdown(stop).await,
    }
}

/// The plain-HTTP listener's router: every request gets `308 Permanent Redirect` to the same
/// path and query on `https://` + the host (and port) of `base_url`. The request's `Host`
/// header is not used, so this can never redirect to a host an attacker names.
pub fn redirect_router(base_url: &str) -> Result<Router, String> {
    let origin = https_origin(base_url)?;
    Ok(Router::new().fallback(move |uri: Uri| {
        let origin = origin.clone();
        async move { redirect(&origin, &uri) }
    }))
}

/// `https://HOST[:PORT]` of `base_url`.
pub fn https_origin(base_url: &str) -> Result<String, String> {
    let uri: Uri = base_url.parse().map_err(|e| format!("--base-url {base_url}: {e}"))?;
    let authority = uri.authority().ok_or_else(|| format!("--base-url {base_url}: no host"))?;
    Ok(match authority.port() {
        Some(port) => format!("https://{}:{}", authority.host(), port),
        None => format!("https://{}", authority.host()),
    })
}

fn redirect(origin: &str, uri: &Uri) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("{origin}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)], "This service is available over HTTPS only.\n").into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_base_url() {
        assert_eq!(https_origin("https://anpi.example.com").unwrap(), "https://anpi.example.com");
        assert_eq!(https_origin("http://127.0.0.1:8443/").unwrap(), "https://127.0.0.1:8443");
        assert_eq!(https_origin("https://user@anpi.example.com:8443/x").unwrap(), "https://anpi.example.com:8443");
        assert_eq!(https_origin("https://[::1]:8443").unwrap(), "https://[::1]:8443");
        assert!(https_origin("/relative").is_err());
    }

    #[test]
    fn redirect_keeps_path_and_query_on_the_configured_host() {
        let r = redirect("https://anpi.example.com", &"/a/tok?lang=en".parse().unwrap());
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "https://anpi.example.com/a/tok?lang=en");
        // An absolute-form request target names another host: only its path is kept.
        let r = redirect("https://anpi.example.com", &"http://evil.example/x".parse().unwrap());
        assert_eq!(r.headers()[header::LOCATION], "https://anpi.example.com/x");
    }
}
