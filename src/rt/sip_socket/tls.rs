//! TLS for SIP (rustls with the ring provider, TLS 1.2 and 1.3): the client side we use to the
//! trunk (the server's certificate checked against `[sip.trunk] ca_file` or the system's roots,
//! and against the host name we dial, which is also the SNI), the server side of
//! `[sip] tls_listen`, and opening a connection, plain or TLS, within one deadline.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::warn;

use crate::config::tls as files;
use crate::sip::transport::{Connect, Proto, TlsError, TransportError};

/// Resolving, connecting and the TLS handshake together must finish within this: a dial to a
/// dead or misconfigured trunk fails fast instead of waiting for Timer B.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why TLS could not be set up at startup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("sip.tls_cert / sip.tls_key: {0}")]
    Identity(String),
    #[error("sip.trunk.ca_file: {0}")]
    CaFile(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The client config for every TLS connection we open: trust `ca_file` if given, else the
/// system's roots (a warning, and no trust at all, when none can be read).
pub fn client_config(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, SetupError> {
    let roots = match ca_file {
        Some(path) => files::load_roots(path).map_err(SetupError::CaFile)?,
        None => system_roots(),
    };
    let config = ClientConfig::builder_with_provider(Arc::new(files::provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        warn!(error = %e, "reading the system's CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        warn!(
            "no system CA certificates: TLS to the trunk will fail unless sip.trunk.ca_file is set (install ca-certificates)"
        );
    }
    roots
}

/// The acceptor for `[sip] tls_listen`.
pub fn acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, SetupError> {
    let certs = files::load_certs(cert).map_err(SetupError::Identity)?;
    let key = files::load_key(key).map_err(SetupError::Identity)?;
    let config = ServerConfig::builder_with_provider(Arc::new(files::provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connection we opened.
pub(super) enum Opened {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Open a connection to `to` (resolving its host unless already resolved), with TLS when it
/// asks for it; all within [`CONNECT_TIMEOUT`]. The error says whether TLS was the problem.
pub(super) async fn open(
    to: &Connect,
    client: Option<&Arc<ClientConfig>>,
) -> Result<(Opened, SocketAddr), (TransportError, String)> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open_now(to, client)).await {
        Ok(r) => r,
        Err(_) => Err((
            TransportError::Connect,
            format!("no connection within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

async fn open_now(
    to: &Connect,
    client: Option<&Arc<ClientConfig>>,
) -> Result<(Opened, SocketAddr), (TransportError, String)> {
    let connect_err = |e: io::Error| (TransportError::Connect, e.to_string());
    let addr = match to.resolved {
        Some(a) => a,
        None => crate::rt::outbound::resolve(&host_port(to))
            .await
            .ok_or_else(|| {
                (
                    TransportError::Connect,
                    "the name does not resolve".to_owned(),
                )
            })?,
    };
    let tcp = TcpStream::connect(addr).await.map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    if to.proto != Proto::Tls {
        return Ok((Opened::Tcp(tcp), addr));
    }
    let Some(client) = client else {
        return Err((
            TransportError::Tls(TlsError::Handshake),
            "no TLS client configuration".to_owned(),
        ));
    };
    let name = ServerName::try_from(to.host.clone()).map_err(|e| {
        (
            TransportError::Tls(TlsError::CertificateNameMismatch),
            format!("{:?} is not a host name: {e}", to.host),
        )
    })?;
    match TlsConnector::from(client.clone()).connect(name, tcp).await {
        Ok(tls) => Ok((Opened::Tls(Box::new(tls)), addr)),
        Err(e) => Err((TransportError::Tls(classify(&e)), e.to_string())),
    }
}

fn host_port(to: &Connect) -> String {
    if to.host.contains(':') {
        format!("[{}]:{}", to.host, to.port)
    } else {
        format!("{}:{}", to.host, to.port)
    }
}

/// What an operator can do about a failed handshake: trust the CA, renew the certificate, fix
/// the host name, or look at the peer.
pub(super) fn classify(e: &io::Error) -> TlsError {
    let rustls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::CertificateExpired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::CertificateNameMismatch
            }
            _ => TlsError::CertificateNotTrusted,
        },
        _ => TlsError::Handshake,
    }
}
