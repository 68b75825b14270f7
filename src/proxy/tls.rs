//! TLS to an `https://` upstream: the client configuration built once at startup, the
//! handshake each new upstream connection runs, and how its failures are told apart.
//!
//! rustls on its `ring` provider verifies the upstream's certificate against the operating
//! system's roots (`rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`)
//! plus the private CA of `--upstream-ca`, offers ALPN `http/1.1`, and resumes sessions from
//! an in-memory cache of [`UPSTREAM_TLS_SESSION_CACHE_ENTRIES`] sessions, shared by every worker
//! through the `Arc`'d configuration (behind the cache's own lock, taken during handshakes and
//! when a ticket arrives, never per request). The IO runs
//! through `monoio-rustls`, which drives a `rustls::ClientConnection` over monoio's
//! owned-buffer TCP stream.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector, TlsError};
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::problem::ProblemKind;

/// The only application protocol confab speaks to an upstream.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Sessions (TLS 1.3 tickets, TLS 1.2 session ids or tickets) the process keeps for resuming
/// upstream handshakes, in the one cache all workers share. confab talks to one upstream name,
/// and rustls keeps at most 8 TLS 1.3 tickets for one name (each ticket serves one new
/// connection; every full handshake brings fresh ones), so 8 holds all that name can use.
/// rustls's own default, 256, is sized for a client of many servers.
pub const UPSTREAM_TLS_SESSION_CACHE_ENTRIES: usize = 8;

/// Why the TLS client could not be set up at startup.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("--upstream-ca file {}: cannot read it: {source}", path.display())]
    CaUnreadable { path: PathBuf, source: io::Error },
    #[error("--upstream-ca file {}: not valid PEM: {reason}", path.display())]
    CaNotPem { path: PathBuf, reason: String },
    #[error("--upstream-ca file {}: holds no certificate (expected PEM blocks of -----BEGIN CERTIFICATE-----)", path.display())]
    CaEmpty { path: PathBuf },
    #[error("--upstream-ca file {}: certificate {number} cannot be used as a trust anchor: {source}", path.display())]
    CaUnusable {
        path: PathBuf,
        /// The position of the certificate in the file, from 1.
        number: usize,
        source: rustls::Error,
    },
    #[error("the upstream is https:// but no trusted root certificate was found: the system's store gave none (install the ca-certificates package, or point SSL_CERT_FILE at a bundle) and no --upstream-ca was given")]
    NoRoots,
    #[error("the TLS client configuration was refused: {0}")]
    Config(#[from] rustls::Error),
}

/// Reads the certificates of a PEM file, refusing a file that is unreadable, malformed or
/// holds none.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let unreadable = |source| TlsSetupError::CaUnreadable {
        path: path.to_owned(),
        source,
    };
    let contents = std::fs::read(path).map_err(unreadable)?;
    let certs = CertificateDer::pem_slice_iter(&contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsSetupError::CaNotPem {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::CaEmpty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Adds every certificate of the PEM file at `path` to `roots`.
pub fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    for (index, cert) in load_ca_file(path)?.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|source| TlsSetupError::CaUnusable {
                path: path.to_owned(),
                number: index + 1,
                source,
            })?;
    }
    Ok(())
}

/// The system's root certificates, as far as they parse (a store holding a few unparsable
/// entries is common and not fatal; none at all is caught by [`client_config`]).
pub fn system_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "loaded the system's root certificates");
    roots
}

/// The client configuration of every upstream TLS connection: `roots` plus the private CA of
/// `extra_ca`, ALPN `http/1.1`, and an in-memory session cache of
/// [`UPSTREAM_TLS_SESSION_CACHE_ENTRIES`] sessions for resumption.
pub fn client_config(
    mut roots: RootCertStore,
    extra_ca: Option<&Path>,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    if let Some(path) = extra_ca {
        add_ca_file(&mut roots, path)?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.resumption = Resumption::in_memory_sessions(UPSTREAM_TLS_SESSION_CACHE_ENTRIES);
    Ok(Arc::new(config))
}

/// A TLS stream to the upstream.
pub type TlsStream = ClientTlsStream<TcpStream>;

/// Runs the TLS handshake over `tcp`, verifying the upstream's certificate for `server_name`.
pub async fn handshake(
    connector: &TlsConnector,
    server_name: &ServerName<'static>,
    tcp: TcpStream,
) -> Result<TlsStream, ProblemKind> {
    connector
        .connect(server_name.clone(), tcp)
        .await
        .map_err(|error| {
            let kind = handshake_failure(&error);
            tracing::debug!(
                error = %describe(&error),
                code = kind.code(),
                "TLS handshake with the upstream failed"
            );
            kind
        })
}

/// The cause of a handshake failure as text (the adapter's own `Display` only says which
/// side failed).
fn describe(error: &TlsError) -> String {
    match error {
        TlsError::Rustls(error) => error.to_string(),
        TlsError::Io(error) => error.to_string(),
    }
}

/// The problem a failed handshake is answered with: an unverifiable certificate is told
/// apart from every other failure (protocol mismatch, alert, connection lost mid-handshake).
pub fn handshake_failure(error: &TlsError) -> ProblemKind {
    match rustls_error(error) {
        Some(rustls::Error::InvalidCertificate(_)) => ProblemKind::UpstreamCertificateUntrusted,
        _ => ProblemKind::UpstreamTlsFailed,
    }
}

/// The rustls error behind a handshake failure, if it was one (and not plain IO).
fn rustls_error(error: &TlsError) -> Option<&rustls::Error> {
    match error {
        TlsError::Rustls(error) => Some(error),
        TlsError::Io(error) => error.get_ref()?.downcast_ref::<rustls::Error>(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use rustls::CertificateError;

    use super::*;

    /// A self-signed CA certificate in PEM, made for the test.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-sign").pem()
    }

    fn file_with(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(contents).expect("write");
        file
    }

    #[test]
    fn a_pem_ca_file_is_trusted_in_addition() {
        let file = file_with(ca_pem().as_bytes());
        let mut roots = RootCertStore::empty();
        add_ca_file(&mut roots, file.path()).expect("a valid CA file");
        assert_eq!(roots.len(), 1);
        let config = client_config(roots, None).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// How many TLS 1.3 tickets rustls's in-memory client cache keeps for one server name.
    const RUSTLS_TICKETS_PER_NAME: usize = 8;

    /// A client configuration trusting a new CA, and a server configuration with a leaf that CA
    /// signed for `names`.
    fn client_and_server(names: &[String]) -> (Arc<ClientConfig>, Arc<rustls::ServerConfig>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .expect("self-signed CA");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(names.to_vec())
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("sign the leaf");
        let mut roots = RootCertStore::empty();
        roots.add(issuer.der().clone()).expect("the CA as a root");
        let client = client_config(roots, None).expect("client config");
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .expect("server certificate");
        (client, Arc::new(server))
    }

    /// Runs one handshake to `name` in memory, session tickets included; says how it went.
    fn handshake_in_memory(
        client: &Arc<ClientConfig>,
        server: &Arc<rustls::ServerConfig>,
        name: &str,
    ) -> rustls::HandshakeKind {
        let server_name = ServerName::try_from(name.to_owned()).expect("server name");
        let mut client =
            rustls::ClientConnection::new(Arc::clone(client), server_name).expect("client");
        let mut server = rustls::ServerConnection::new(Arc::clone(server)).expect("server");
        while client.wants_write() || server.wants_write() {
            while client.wants_write() {
                let mut records = Vec::new();
                client.write_tls(&mut records).expect("client records");
                let mut rest = &records[..];
                while !rest.is_empty() {
                    server.read_tls(&mut rest).expect("server reads");
                    server.process_new_packets().expect("server accepts");
                }
            }
            while server.wants_write() {
                let mut records = Vec::new();
                server.write_tls(&mut records).expect("server records");
                let mut rest = &records[..];
                while !rest.is_empty() {
                    client.read_tls(&mut rest).expect("client reads");
                    client.process_new_packets().expect("client accepts");
                }
            }
        }
        assert!(
            !client.is_handshaking(),
            "the handshake with {name:?} completed"
        );
        client
            .handshake_kind()
            .expect("a finished handshake has a kind")
    }

    #[test]
    fn sessions_resume_from_a_cache_of_the_configured_size() {
        use rustls::HandshakeKind::{Full, Resumed};
        // The cache keeps this many server names' sessions; one more name pushes out the first.
        let names_kept = UPSTREAM_TLS_SESSION_CACHE_ENTRIES.div_ceil(RUSTLS_TICKETS_PER_NAME);
        let names: Vec<String> = (0..=names_kept).map(|n| format!("u{n}.test")).collect();
        let (client, server) = client_and_server(&names);

        assert_eq!(handshake_in_memory(&client, &server, &names[0]), Full);
        assert_eq!(
            handshake_in_memory(&client, &server, &names[0]),
            Resumed,
            "a second connection to the same name resumes"
        );
        for name in &names[1..] {
            assert_eq!(handshake_in_memory(&client, &server, name), Full, "{name}");
        }
        assert_eq!(
            handshake_in_memory(&client, &server, &names[names_kept]),
            Resumed,
            "the newest name's session is kept"
        );
        assert_eq!(
            handshake_in_memory(&client, &server, &names[0]),
            Full,
            "newer names pushed the first name's sessions out of the cache"
        );
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let missing = Path::new("/nonexistent/confab-ca.pem");
        let error = load_ca_file(missing).expect_err("missing file");
        assert!(matches!(error, TlsSetupError::CaUnreadable { .. }));
        assert!(
            error.to_string().contains("/nonexistent/confab-ca.pem"),
            "{error}"
        );

        let empty = file_with(b"");
        let error = load_ca_file(empty.path()).expect_err("empty file");
        assert!(matches!(error, TlsSetupError::CaEmpty { .. }), "{error}");
        assert!(error
            .to_string()
            .contains(&empty.path().display().to_string()));

        let text = file_with(b"just some text, no PEM here\n");
        assert!(matches!(
            load_ca_file(text.path()),
            Err(TlsSetupError::CaEmpty { .. })
        ));

        let broken =
            file_with(b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n");
        assert!(matches!(
            load_ca_file(broken.path()),
            Err(TlsSetupError::CaNotPem { .. })
        ));

        let truncated = file_with(b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        assert!(matches!(
            load_ca_file(truncated.path()),
            Err(TlsSetupError::CaNotPem { .. })
        ));

        let garbage_der =
            file_with(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let error = add_ca_file(&mut RootCertStore::empty(), garbage_der.path())
            .expect_err("not a certificate");
        assert!(
            matches!(error, TlsSetupError::CaUnusable { number: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn no_roots_at_all_is_refused() {
        assert!(matches!(
            client_config(RootCertStore::empty(), None),
            Err(TlsSetupError::NoRoots)
        ));
    }

    #[test]
    fn certificate_failures_are_told_apart_from_other_tls_failures() {
        let wrapped =
            |error: rustls::Error| TlsError::Io(io::Error::new(io::ErrorKind::InvalidData, error));
        let untrusted = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            handshake_failure(&untrusted),
            ProblemKind::UpstreamCertificateUntrusted
        );
        let wrong_name = wrapped(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert_eq!(
            handshake_failure(&wrong_name),
            ProblemKind::UpstreamCertificateUntrusted
        );
        let alert = wrapped(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(handshake_failure(&alert), ProblemKind::UpstreamTlsFailed);
        let eof = TlsError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tls handshake eof",
        ));
        assert_eq!(handshake_failure(&eof), ProblemKind::UpstreamTlsFailed);
    }
}
