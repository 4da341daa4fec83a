//! Whom plugins' `https` requests trust: the Mozilla root certificates
//! (webpki-roots, built in, the same on every machine) and, added to them,
//! the certificate authorities of `[runtime] outbound_ca_files` — a
//! deployment's private CA, or a TLS-inspecting proxy's. The host's own
//! system store is not read: what a plugin may trust is what the host's
//! configuration says, not what happens to be installed on the machine.
//!
//! The trust is the host's, not a plugin's: one manifest cannot widen it.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The TLS client settings every `https` request of a plugin connects with.
#[derive(Debug, Clone)]
pub(crate) struct Trust(Arc<rustls::ClientConfig>);

/// The Mozilla roots alone, built once.
static MOZILLA: LazyLock<Trust> = LazyLock::new(|| Trust::with_roots(mozilla_roots()));

impl Default for Trust {
    /// The Mozilla roots alone.
    fn default() -> Self {
        MOZILLA.clone()
    }
}

impl Trust {
    /// The Mozilla roots and every certificate in `ca_files` (PEM).
    ///
    /// # Errors
    /// A message naming the first file that cannot be read, holds no
    /// certificate, or holds one that is not a valid trust anchor.
    pub(crate) fn with_ca_files<P: AsRef<Path>>(ca_files: &[P]) -> Result<Trust, String> {
        if ca_files.is_empty() {
            return Ok(Trust::default());
        }
        let mut roots = mozilla_roots();
        for file in ca_files {
            let file = file.as_ref();
            let pem = std::fs::read(file)
                .map_err(|e| format!("cannot read CA file {}: {e}", file.display()))?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    format!("CA file {}: not a PEM certificate: {e}", file.display())
                })?;
                roots.add(cert).map_err(|e| {
                    format!("CA file {}: not a usable trust anchor: {e}", file.display())
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(format!(
                    "CA file {}: no `BEGIN CERTIFICATE` block in it",
                    file.display()
                ));
            }
        }
        Ok(Trust::with_roots(roots))
    }

    fn with_roots(roots: rustls::RootCertStore) -> Trust {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Trust(Arc::new(config))
    }

    /// The connector a request's TLS handshake goes through.
    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.0))
    }
}

fn mozilla_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_files_is_the_mozilla_roots_alone() {
        let t = Trust::with_ca_files::<&str>(&[]).unwrap();
        assert!(Arc::ptr_eq(&t.0, &Trust::default().0));
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Trust::with_ca_files(&["/nonexistent/ca.pem"]).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = Trust::with_ca_files(&[&path]).unwrap_err();
        assert!(
            e.contains("empty.pem") && e.contains("no `BEGIN CERTIFICATE`"),
            "{e}"
        );
    }

    #[test]
    fn a_block_that_is_not_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Trust::with_ca_files(&[&path]).unwrap_err();
        assert!(e.contains("bad.pem") && e.contains("trust anchor"), "{e}");
    }
}
