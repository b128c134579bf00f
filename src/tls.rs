//! TLS certificates for guests: a rustls certificate resolver whose certificate can be
//! swapped at runtime (SIGHUP), so renewing a certificate needs no restart. A file that
//! does not load is refused and the current certificate stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

/// TLS termination for guests.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Offer HTTP/2 (ALPN h2).
    pub http2: bool,
}

/// The certificate served to guests.
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("ReloadableCert")
            .field("cert", &self.cert)
            .finish()
    }
}

fn read(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    pingora::tls::install_default_crypto_provider();
    let provider =
        CryptoProvider::get_default().ok_or_else(|| anyhow!("no TLS crypto provider"))?;
    let (chain, private) = pingora::tls::load_certs_and_key_files(
        &cert.display().to_string(),
        &key.display().to_string(),
    )
    .map_err(|e| anyhow!("{e}"))?
    .ok_or_else(|| {
        anyhow!(
            "{} / {}: no certificate or no private key found",
            cert.display(),
            key.display()
        )
    })?;
    let signer = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| anyhow!("{}: {e}", key.display()))?;
    Ok(CertifiedKey::new(chain, signer))
}

impl ReloadableCert {
    /// Loads the pair (start-up: a bad pair stops the start).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let first = read(cert, key).context("tls.cert_file / tls.key_file")?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(first),
        })
    }

    /// Re-reads the files; keeps the current certificate if they do not load.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = read(&self.cert, &self.key)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
