//! TLS to upstreams (`https://` targets): rustls with the aws-lc-rs provider, the system's
//! root certificates or a configured CA file, SNI from the target's host, ALPN for the
//! protocol the connection will speak.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ProxyError;

/// Which certificate authorities an upstream's certificates are checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UpstreamRoots {
    /// The operating system's trust store.
    #[default]
    System,
    /// Only the CA certificates in this PEM file (an internal CA, a self-signed upstream).
    CaFile(PathBuf),
}

/// The TLS client settings of one upstream: one connector per protocol it may negotiate.
#[derive(Clone)]
pub(crate) struct UpstreamTls {
    http1: TlsConnector,
    http2: TlsConnector,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

fn tls_error(reason: impl ToString) -> ProxyError {
    ProxyError::Tls(reason.to_string())
}

fn roots(source: &UpstreamRoots) -> Result<RootCertStore, ProxyError> {
    let mut store = RootCertStore::empty();
    match source {
        UpstreamRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A malformed system certificate is skipped, as browsers do.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(tls_error(
                    "no usable certificate in the system trust store; set a CA file",
                ));
            }
        }
        UpstreamRoots::CaFile(path) => {
            for cert in read_certificates(path)? {
                store
                    .add(cert)
                    .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
            }
        }
    }
    Ok(store)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no CERTIFICATE in the file",
            path.display()
        )));
    }
    Ok(certs)
}

impl UpstreamTls {
    pub(crate) fn new(source: &UpstreamRoots) -> Result<Self, ProxyError> {
        let roots = Arc::new(roots(source)?);
        let connector = |alpn: &[u8]| -> Result<TlsConnector, ProxyError> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(tls_error)?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            http1: connector(b"http/1.1")?,
            http2: connector(b"h2")?,
        })
    }

    /// Runs the handshake on a connected socket, offering HTTP/2 or HTTP/1.1.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
        http2: bool,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let connector = if http2 { &self.http2 } else { &self.http1 };
        connector.connect(name, stream).await
    }
}
