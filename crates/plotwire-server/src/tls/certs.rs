//! The server's TLS certificate and key: read from PEM files at start, checked, and
//! swapped for new ones on SIGHUP without touching the connections already open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsFiles;

/// Why a certificate or key could not be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("no certificate in {}: expected PEM (-----BEGIN CERTIFICATE-----){}", path.display(), detail(reason))]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if anything.
        reason: Option<String>,
    },
    /// The key file holds an encrypted private key.
    #[error(
        "the private key in {} is encrypted, which is not supported: decrypt it with \
         `openssl pkey -in {} -out key.pem` (it asks for the passphrase) and keep the result readable only by the server",
        path.display(),
        path.display()
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key, or a broken one.
    #[error(
        "no private key in {}: expected an unencrypted PEM key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY){}",
        path.display(),
        detail(reason)
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if anything.
        reason: Option<String>,
    },
    /// The key is of a kind rustls cannot use, or does not belong to the certificate.
    #[error("cannot use the private key in {} with the certificate in {}: {reason}", key.display(), cert.display())]
    BadKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
}

fn detail(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate {
            path: path.to_owned(),
            reason: Some(e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            reason: None,
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    // PKCS#8 encrypted keys, and legacy OpenSSL ones with an encryption header.
    if has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::EncryptedKey {
            path: path.to_owned(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => None,
            other => Some(other.to_string()),
        },
    })
}

/// Reads and checks the certificate chain and key of `files` into a rustls config.
fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let bad_key = |e: rustls::Error| TlsError::BadKey {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: match e {
            rustls::Error::InconsistentKeys(_) => {
                "the key does not belong to the certificate".to_owned()
            }
            other => other.to_string(),
        },
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(bad_key)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(bad_key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate and key in use, and the files they came from. New handshakes take
/// [`TlsCerts::current`]; [`TlsCerts::reload`] replaces it.
#[derive(Debug)]
pub struct TlsCerts {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsCerts {
    /// Reads and checks the files: every error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<TlsCerts>, TlsError> {
        let config = load(&files)?;
        Ok(Arc::new(TlsCerts {
            files,
            current: RwLock::new(config),
        }))
    }

    /// The files the certificate and key are read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The rustls config for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the files again. If they load, the handshakes from now on use them; if not,
    /// the ones in use stay and the error says why. Open connections are not touched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.files)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }
}
