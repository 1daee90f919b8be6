//! TLS for `hako serve -H tcp://... --tlsverify` (as dockerd): the server's certificate and
//! key, and client certificates verified against `--tlscacert`: only a client holding a
//! certificate signed by that CA talks to the API (anyone who can talk to it is root).
//!
//! Handshakes run in their own tasks (with a time limit) and feed the accept loop, so a
//! slow or silent client never holds up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// `--tlscacert`, `--tlscert`, `--tlskey`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that client certificates must be signed by.
    pub ca: PathBuf,
    /// The server's certificate (chain), PEM.
    pub cert: PathBuf,
    /// The server's private key, PEM.
    pub key: PathBuf,
}

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let list: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("read the {what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read the {what} {}: {e}", path.display()))?;
    if list.is_empty() {
        return Err(format!(
            "the {what} {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(list)
}

/// The acceptor: checks the files now, so a bad path or key is one clear line at start.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(&files.ca, "CA certificate (--tlscacert)")? {
        roots
            .add(c)
            .map_err(|e| format!("the CA certificate {}: {e}", files.ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verification with {}: {e}", files.ca.display()))?;
    let chain = certs(&files.cert, "server certificate (--tlscert)")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "read the server key (--tlskey) {}: {e}",
            files.key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "the server certificate {} and key {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener whose connections are TLS with a verified client certificate.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` (the handshakes run in tasks of their own).
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::info!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ends only with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
