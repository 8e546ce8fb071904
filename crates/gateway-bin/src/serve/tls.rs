//! TLS termination on the public listener: rustls (no OpenSSL), ALPN `h2` and `http/1.1`,
//! certificates loaded with the config (so a reload picks up renewed files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSection;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Builds the acceptor: reads both files, checks that key and certificate match, and
/// advertises HTTP/2 and HTTP/1.1 with ALPN.
pub(crate) fn acceptor(section: &TlsSection) -> Result<TlsAcceptor, TlsError> {
    let certs = CertificateDer::pem_file_iter(&section.cert)
        .map_err(|e| file_error(&section.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(&section.cert, e))?;
    if certs.is_empty() {
        return Err(file_error(&section.cert, "no CERTIFICATE in the file"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&section.key).map_err(|e| file_error(&section.key, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
