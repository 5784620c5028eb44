//! HTTPS with rustls: the certificate and key the administrator gives (PEM), reloaded without a
//! restart, or a self-signed pair made once for a quick start.
//!
//! The server config is built once with a resolver that hands every handshake the current
//! pair; a reload swaps the pair under it, so connections already open keep theirs. A reload
//! is tried when either file's modification time changes (checked every `POLL`) or on demand
//! (SIGHUP); a pair that does not load (unreadable, not PEM, key not matching the certificate)
//! leaves the old one serving and says why in the log.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_lc_rs::digest;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;

/// How often the certificate files are checked for a change.
const POLL: Duration = Duration::from_secs(2);

/// The certificate and key files, and the pair loaded from them.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the files when they were last loaded (or tried).
    seen: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
    /// Wakes the watcher for a reload now (SIGHUP).
    reload: Notify,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Certificates {
    /// Load `cert` (a PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1); an
    /// error names the file and the reason.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(provider());
        let pair = read_pair(cert, key, &provider)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            seen: RwLock::new((modified(cert), modified(key))),
            reload: Notify::new(),
        }))
    }

    /// The acceptor for the listener (`listener::Options::tls`): it serves whatever pair is
    /// current, HTTP/1.1 only, as the listener speaks.
    pub fn acceptor(self: &Arc<Self>) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        Ok(tokio_rustls::TlsAcceptor::from(self.server_config()?))
    }

    fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }

    /// SHA-256 fingerprint of the current leaf certificate, as browsers show it.
    pub fn fingerprint(&self) -> String {
        let pair = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        pair.cert
            .first()
            .map(|leaf| fingerprint(leaf))
            .unwrap_or_default()
    }

    /// Load the files again now. On failure the current pair stays and the error is returned.
    pub fn reload(&self) -> anyhow::Result<()> {
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = (modified(&self.cert), modified(&self.key));
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// Ask the watcher to reload now (SIGHUP).
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    /// Reload when a file changes or a reload is requested, until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        loop {
            let asked = tokio::select! {
                () = tokio::time::sleep(POLL) => false,
                () = self.reload.notified() => true,
            };
            let now = (modified(&self.cert), modified(&self.key));
            let changed = now != *self.seen.read().unwrap_or_else(|e| e.into_inner());
            if !(asked || changed) {
                continue;
            }
            match self.reload() {
                Ok(()) => tracing::info!(
                    cert = %self.cert.display(),
                    fingerprint = %self.fingerprint(),
                    "TLS certificate reloaded"
                ),
                Err(error) => tracing::warn!(
                    cert = %self.cert.display(),
                    error = format!("{error:#}"),
                    "TLS certificate not reloaded; the previous one still serves"
                ),
            }
        }
    }
}

/// aws-lc-rs with AES-128-GCM first: as safe as AES-256-GCM for TLS (RFC 9325 §4.2 lists both)
/// and about a third faster, which is what a 1 GiB transfer spends its CPU on. The server's
/// order wins (`ignore_client_order`): OpenSSL-based clients list AES-256 first.
fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let rank = |suite: &rustls::SupportedCipherSuite| {
        let name = format!("{:?}", suite.suite());
        if name.contains("AES_128_GCM") {
            0
        } else if name.contains("AES_256_GCM") {
            1
        } else {
            2
        }
    };
    provider.cipher_suites.sort_by_key(rank);
    provider
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let secret = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    CertifiedKey::from_der(chain, secret, provider)
        .with_context(|| format!("{} does not go with {}", key.display(), cert.display()))
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let hash = digest::digest(&digest::SHA256, cert.as_ref());
    hash.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The self-signed pair in `dir` (`self-signed-cert.pem`, `self-signed-key.pem`), made on
/// first use for `names` (DNS names or IP addresses) and kept, so that a client that pinned
/// it keeps working across restarts. Returns the two paths.
pub fn self_signed(dir: &Path, names: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = dir.join("self-signed-cert.pem");
    let key = dir.join("self-signed-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(names.to_vec()).context("self-signed certificate")?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(&cert, made.cert.pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    Ok((cert, key))
}

/// Replace the pair at `cert` and `key` with `cert_pem` and `key_pem` (the key readable by its
/// owner only).
pub fn write_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> anyhow::Result<()> {
    write_private(key, key_pem.as_bytes()).with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(cert, cert_pem).with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(())
}

/// Write a file only its owner may read, replacing any.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::{Certificates, provider, self_signed};

    #[test]
    fn aes_128_gcm_comes_first() {
        let suites: Vec<String> = provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(suites[0], "TLS13_AES_128_GCM_SHA256", "{suites:?}");
        assert!(suites.iter().any(|s| s.contains("CHACHA20")), "{suites:?}");
    }

    #[test]
    fn a_bad_pair_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), &["localhost".into()]).unwrap();
        let certificates = Certificates::load(&cert, &key).unwrap();
        let before = certificates.fingerprint();
        assert_eq!(before.len(), 32 * 3 - 1);
        // Made once: a second call keeps the same pair.
        self_signed(dir.path(), &["localhost".into()]).unwrap();
        certificates.reload().unwrap();
        assert_eq!(certificates.fingerprint(), before);
        // A key of another pair: refused, the old pair serves on.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = self_signed(other.path(), &["localhost".into()]).unwrap();
        std::fs::copy(&other_key, &key).unwrap();
        let error = format!("{:#}", certificates.reload().unwrap_err());
        assert!(error.contains("does not go with"), "{error}");
        assert_eq!(certificates.fingerprint(), before);
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(certificates.reload().is_err());
        assert_eq!(certificates.fingerprint(), before);
    }
}
