//! TLS with rustls through tokio-rustls (which needs only tokio's IO traits,
//! so it serves every runtime): building the rustls configuration from
//! [`TlsOptions`], and telling a TLS failure that retrying will not fix from
//! one that may heal.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use crate::error::Error;
use crate::options::TlsOptions;
use crate::runtime::BoxIo;

pub(crate) struct Connector {
    connector: TlsConnector,
    domain: Option<String>,
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read {what} {}: {e}", path.display())))
}

/// Add every certificate of `pem` (from `origin`) to `roots`; how many.
fn add_roots(roots: &mut RootCertStore, pem: &[u8], origin: &str) -> Result<usize, Error> {
    let mut found = 0;
    for cert in rustls_pemfile::certs(&mut &*pem) {
        let cert = cert.map_err(|e| Error::Config(format!("bad certificate in {origin}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("unusable CA certificate in {origin}: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(Error::Config(format!("no certificate in {origin}")));
    }
    Ok(found)
}

/// The client certificate chain and key from PEM bytes.
fn identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let chain: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &*cert_pem).collect();
    let chain =
        chain.map_err(|e| Error::Config(format!("bad client certificate in {origin}: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Config(format!("no client certificate in {origin}")));
    }
    let key = rustls_pemfile::private_key(&mut &*key_pem)
        .map_err(|e| Error::Config(format!("bad client key in {origin}: {e}")))?
        .ok_or_else(|| Error::Config(format!("no private key in {origin}")))?;
    Ok((chain, key))
}

#[cfg(feature = "tls-native-roots")]
fn add_native_roots(roots: &mut RootCertStore) -> Result<usize, Error> {
    let loaded = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Error::Config(format!(
            "no usable certificate in the system's trust store{why}"
        )));
    }
    Ok(added)
}

impl Connector {
    pub(crate) fn new(opts: &TlsOptions) -> Result<Connector, Error> {
        let mut config = match &opts.client_config {
            Some(config) => {
                if opts.sets_trust_or_identity() {
                    return Err(Error::Config(
                        "TlsOptions::with_client_config replaces the CA, client certificate and \
                         verification settings: give those in the rustls ClientConfig"
                            .into(),
                    ));
                }
                ClientConfig::clone(config)
            }
            None => Self::build(opts)?,
        };
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        if let Some(name) = &opts.domain_name {
            ServerName::try_from(name.clone())
                .map_err(|e| Error::Config(format!("invalid TLS server name {name}: {e}")))?;
        }
        Ok(Connector {
            connector: TlsConnector::from(Arc::new(config)),
            domain: opts.domain_name.clone(),
        })
    }

    fn build(opts: &TlsOptions) -> Result<ClientConfig, Error> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let builder = if opts.danger_accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            let mut found = 0;
            if let Some(ca) = &opts.ca_file {
                let pem = read_pem(ca, "CA file")?;
                found += add_roots(&mut roots, &pem, &ca.display().to_string())?;
            }
            if let Some(pem) = &opts.ca_pem {
                found += add_roots(&mut roots, pem, "the CA PEM")?;
            }
            #[cfg(feature = "tls-native-roots")]
            if opts.native_roots {
                found += add_native_roots(&mut roots)?;
            }
            if found == 0 {
                return Err(Error::Config(
                    "TLS needs certificates to trust: TlsOptions::with_ca_file or with_ca_pem \
                     (or with_native_roots, feature `tls-native-roots`)"
                        .into(),
                ));
            }
            builder.with_root_certificates(roots)
        };
        let identity = match (&opts.identity, &opts.identity_pem) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "give the client certificate either as files (with_identity) or as PEM \
                     (with_identity_pem), not both"
                        .into(),
                ))
            }
            (Some((cert, key)), None) => Some(identity(
                &read_pem(cert, "client certificate")?,
                &read_pem(key, "client key")?,
                &format!("{} / {}", cert.display(), key.display()),
            )?),
            (None, Some((cert, key))) => Some(identity(cert, key, "the client PEM")?),
            (None, None) => None,
        };
        match identity {
            None => Ok(builder.with_no_client_auth()),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("client certificate rejected: {e}"))),
        }
    }

    /// The TLS handshake on `io`. The stream returned records a TLS failure
    /// that will not heal when one comes later (with TLS 1.3 the server
    /// refuses a client certificate only after the client's side of the
    /// handshake is done, so the alert arrives during the HTTP/2 handshake,
    /// which keeps only its text).
    pub(crate) async fn connect(
        &self,
        host: &str,
        io: BoxIo,
    ) -> Result<(BoxIo, Rejection), ConnectFailure> {
        let name = self.domain.clone().unwrap_or_else(|| host.to_string());
        let server_name = ServerName::try_from(name.clone()).map_err(|e| ConnectFailure {
            message: format!("invalid TLS server name {name}: {e}"),
            permanent: true,
            source: None,
            cause: None,
        })?;
        let tls = self.connector.connect(server_name, io).await.map_err(|e| {
            let source = permanent_tls_failure(&e)
                .cloned()
                .map(crate::error::TlsCause::new);
            ConnectFailure {
                message: format!("TLS handshake with {name}: {e}"),
                permanent: source.is_some(),
                source,
                cause: Some(etcdv3_core::machine::Cause::new(e)),
            }
        })?;
        let seen = Rejection::default();
        let io = Watched {
            inner: tls,
            seen: seen.clone(),
        };
        Ok((Box::new(io), seen))
    }
}

/// Whether the peer on `io` answers a TLS ClientHello as a TLS server (the
/// handshake completes, or the peer sends a TLS alert): tells an `http://`
/// endpoint whose member speaks TLS from one that merely closed. Any
/// certificate is accepted: nothing is sent on this connection.
pub(crate) async fn speaks_tls(io: BoxIo) -> bool {
    use tokio_rustls::rustls::Error as E;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let Ok(builder) =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let Ok(name) = ServerName::try_from("localhost") else {
        return false;
    };
    match TlsConnector::from(Arc::new(config)).connect(name, io).await {
        Ok(_) => true,
        Err(e) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<E>())
            .is_some_and(|tls| matches!(tls, E::AlertReceived(_))),
    }
}

/// The first TLS failure that will not heal seen on a connection, if any.
#[derive(Clone, Default)]
pub(crate) struct Rejection(Arc<std::sync::Mutex<Option<String>>>);

impl Rejection {
    /// The failure's description, when one was seen.
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record<T>(&self, r: &Poll<std::io::Result<T>>) {
        if let Poll::Ready(Err(e)) = r {
            if let Some(tls) = permanent_tls_failure(e) {
                let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
                g.get_or_insert_with(|| tls.to_string());
            }
        }
    }
}

/// A TLS stream that records its first permanent TLS failure.
struct Watched<S> {
    inner: S,
    seen: Rejection,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.seen.record(&r);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.seen.record(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.seen.record(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.seen.record(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.seen.record(&r);
        r
    }
}

/// Why a connection could not be set up.
pub(crate) struct ConnectFailure {
    pub(crate) message: String,
    /// Retrying will not help until the configuration changes (reported
    /// to the core as a rejection).
    pub(crate) permanent: bool,
    /// rustls' error for a permanent failure.
    pub(crate) source: Option<crate::error::TlsCause>,
    /// The IO error the handshake failed with (rustls' error, when there is
    /// one, is its `source()`).
    pub(crate) cause: Option<etcdv3_core::machine::Cause>,
}

/// The rustls error inside `e`, when it is one that retrying will not fix:
/// the server's certificate is not trusted, expired or not valid for the
/// name; the server refused the client's certificate (or gave none); the two
/// sides share no protocol version or cipher suite.
pub(crate) fn permanent_tls_failure(e: &std::io::Error) -> Option<&tokio_rustls::rustls::Error> {
    use tokio_rustls::rustls::Error as E;
    let tls = e.get_ref()?.downcast_ref::<E>()?;
    let permanent = match tls {
        E::InvalidCertificate(_)
        | E::NoCertificatesPresented
        | E::UnsupportedNameType
        | E::PeerIncompatible(_) => true,
        E::AlertReceived(alert) => matches!(
            alert,
            AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::CertificateRequired
                | AlertDescription::HandshakeFailure
                | AlertDescription::ProtocolVersion
                | AlertDescription::InsufficientSecurity
                | AlertDescription::NoApplicationProtocol
        ),
        _ => false,
    };
    permanent.then_some(tls)
}

/// The verifier of [`TlsOptions::danger_accept_invalid_certs`]: any server
/// certificate is accepted (the handshake signatures are still checked, so
/// the connection is encrypted, but to an unauthenticated peer).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::{CertificateError, Error as E};

    fn io(e: E) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn certificate_problems_are_permanent_and_network_ones_are_not() {
        for e in [
            E::InvalidCertificate(CertificateError::UnknownIssuer),
            E::InvalidCertificate(CertificateError::Expired),
            E::InvalidCertificate(CertificateError::BadSignature),
            E::AlertReceived(AlertDescription::BadCertificate),
            E::AlertReceived(AlertDescription::UnknownCA),
            E::AlertReceived(AlertDescription::CertificateRequired),
            E::NoCertificatesPresented,
        ] {
            assert!(permanent_tls_failure(&io(e.clone())).is_some(), "{e:?}");
        }
        for e in [
            E::DecryptError,
            E::AlertReceived(AlertDescription::CloseNotify),
            E::AlertReceived(AlertDescription::InternalError),
            E::General("x".into()),
        ] {
            assert!(permanent_tls_failure(&io(e.clone())).is_none(), "{e:?}");
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(permanent_tls_failure(&reset).is_none());
    }

    #[cfg(feature = "tls-native-roots")]
    #[test]
    fn native_roots_come_from_the_system_store() {
        let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
        if !bundle.exists() {
            eprintln!(
                "NOTICE: no system CA bundle at {}: skipped",
                bundle.display()
            );
            return;
        }
        let mut roots = RootCertStore::empty();
        let added = add_native_roots(&mut roots).unwrap();
        assert!(added > 10, "only {added} system roots");
        assert!(Connector::new(&TlsOptions::default().with_native_roots()).is_ok());
    }

    #[test]
    fn config_errors_name_what_is_wrong() {
        let err = |o: TlsOptions| match Connector::new(&o) {
            Err(Error::Config(m)) => m,
            Err(e) => panic!("expected Error::Config, got {e:?}"),
            Ok(_) => panic!("accepted {o:?}"),
        };
        assert!(err(TlsOptions::default()).contains("with_ca_pem"));
        assert!(err(TlsOptions::default().with_ca_pem("not a pem")).contains("no certificate"));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let both = TlsOptions::default()
            .with_client_config(Arc::new(config.clone()))
            .with_ca_pem("x");
        assert!(err(both).contains("with_client_config"));
        // A caller-supplied config alone is used as is (with h2 offered).
        assert!(
            Connector::new(&TlsOptions::default().with_client_config(Arc::new(config))).is_ok()
        );
        // Skipping verification needs no CA.
        assert!(Connector::new(&TlsOptions::default().danger_accept_invalid_certs()).is_ok());
    }
}
