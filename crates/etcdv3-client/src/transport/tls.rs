//! TLS with rustls through tokio-rustls (which needs only tokio's IO traits,
//! so it serves every runtime).

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
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

impl Connector {
    pub(crate) fn new(opts: &TlsOptions) -> Result<Connector, Error> {
        let mut roots = RootCertStore::empty();
        let ca = opts.ca_file.as_ref().ok_or_else(|| {
            Error::Config("TLS needs a CA file (TlsOptions::with_ca_file)".into())
        })?;
        let pem = read_pem(ca, "CA file")?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert
                .map_err(|e| Error::Config(format!("bad certificate in {}: {e}", ca.display())))?;
            roots.add(cert).map_err(|e| {
                Error::Config(format!("unusable CA certificate in {}: {e}", ca.display()))
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::Config(format!("no certificate in {}", ca.display())));
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match &opts.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let cert_pem = read_pem(cert, "client certificate")?;
                let key_pem = read_pem(key, "client key")?;
                let chain: Result<Vec<_>, _> =
                    rustls_pemfile::certs(&mut cert_pem.as_slice()).collect();
                let chain =
                    chain.map_err(|e| Error::Config(format!("bad client certificate: {e}")))?;
                let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                    .map_err(|e| Error::Config(format!("bad client key: {e}")))?
                    .ok_or_else(|| Error::Config(format!("no private key in {}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Config(format!("client certificate rejected: {e}")))?
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Connector {
            connector: TlsConnector::from(Arc::new(config)),
            domain: opts.domain_name.clone(),
        })
    }

    pub(crate) async fn connect(&self, host: &str, io: BoxIo) -> Result<BoxIo, String> {
        let name = self.domain.clone().unwrap_or_else(|| host.to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| format!("invalid TLS server name {name}: {e}"))?;
        let tls = self
            .connector
            .connect(server_name, io)
            .await
            .map_err(|e| format!("TLS handshake with {name}: {e}"))?;
        Ok(Box::new(tls))
    }
}
