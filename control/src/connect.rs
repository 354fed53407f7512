//! Opening a connection to the broker: `amqp://` or `amqps://` with CA verification against the
//! configured CA file and an optional client certificate.

use crate::config::BrokerConfig;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};
use std::path::PathBuf;
use std::time::Duration;

/// How long one connection attempt (TCP + TLS + AMQP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Failure to reach or authenticate to the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A certificate or key file named in the config could not be read.
    #[error("reading {what} {path}: {source}")]
    ReadFile {
        /// "CA file", "client certificate" or "client key".
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A client certificate was configured without its key, or the reverse.
    #[error("client_cert and client_key must be given together")]
    HalfIdentity,
    /// `amqps://` without a CA file: nothing to verify the broker against.
    #[error("{uri}: amqps needs ca_file (the CA that signed the broker's certificate)")]
    NoCa {
        /// The redacted URI.
        uri: String,
    },
    /// The TLS handshake failed (typically: the broker's certificate is not signed by the CA).
    #[error("TLS handshake with {uri} failed (CA file {ca}): {reason}")]
    Tls {
        /// The redacted URI.
        uri: String,
        /// The CA file used for verification.
        ca: String,
        /// What the TLS layer said (e.g. "invalid peer certificate: UnknownIssuer").
        reason: String,
        /// lapin's error.
        #[source]
        source: Box<lapin::Error>,
    },
    /// TCP connect, AMQP handshake or authentication failed.
    #[error("connecting to {uri}: {source}")]
    Amqp {
        /// The redacted URI.
        uri: String,
        /// lapin's error.
        #[source]
        source: Box<lapin::Error>,
    },
    /// The attempt did not finish within [`CONNECT_TIMEOUT`].
    #[error("connecting to {uri}: timed out after {timeout:?}")]
    Timeout {
        /// The redacted URI.
        uri: String,
        /// The limit.
        timeout: Duration,
    },
}

/// `uri` with any password replaced by `***`, for logs and errors.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_owned();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &uri[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => uri.to_owned(),
    }
}

fn is_tls(uri: &str) -> bool {
    uri.trim_start()
        .to_ascii_lowercase()
        .starts_with("amqps://")
}

fn read(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::ReadFile {
        what,
        path: path.clone(),
        source,
    })
}

/// The TLS settings for `cfg` (empty for plain amqp).
pub fn tls_config(cfg: &BrokerConfig) -> Result<OwnedTLSConfig, ConnectError> {
    let mut tls = OwnedTLSConfig::default();
    if let Some(ca) = &cfg.ca_file {
        tls.cert_chain = Some(String::from_utf8_lossy(&read("CA file", ca)?).into_owned());
    } else if is_tls(&cfg.uri) {
        return Err(ConnectError::NoCa {
            uri: redact_uri(&cfg.uri),
        });
    }
    tls.identity = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("client certificate", cert)?,
            key: read("client key", key)?,
        }),
        (None, None) => None,
        _ => return Err(ConnectError::HalfIdentity),
    };
    Ok(tls)
}

/// Connect (inside a tokio runtime). `name` shows in the broker's connection list.
pub async fn connect(cfg: &BrokerConfig, name: &str) -> Result<Connection, ConnectError> {
    let uri = redact_uri(&cfg.uri);
    let tls = tls_config(cfg)?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let builder = DefaultConnectionBuilder::new()
        .map_err(|source| ConnectError::Amqp {
            uri: uri.clone(),
            source: Box::new(source),
        })?
        .with_uri_str(cfg.uri.clone())
        .with_properties(props)
        .with_tls_config(tls);
    match tokio::time::timeout(CONNECT_TIMEOUT, builder.connect()).await {
        Err(_) => Err(ConnectError::Timeout {
            uri,
            timeout: CONNECT_TIMEOUT,
        }),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) if is_tls(&cfg.uri) => {
            // lapin often surfaces a refused handshake as an AMQP parsing error; redo the
            // handshake alone to say what is actually wrong (e.g. UnknownIssuer).
            let ca = cfg.ca_file.clone().unwrap_or_default();
            let target = cfg.uri.clone();
            let probe = tokio::task::spawn_blocking(move || tls_probe(&target, &ca))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match probe {
                Err(reason) => Err(ConnectError::Tls {
                    uri,
                    ca: cfg
                        .ca_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    reason,
                    source: Box::new(source),
                }),
                Ok(()) => Err(ConnectError::Amqp {
                    uri,
                    source: Box::new(source),
                }),
            }
        }
        Ok(Err(source)) => Err(ConnectError::Amqp {
            uri,
            source: Box::new(source),
        }),
    }
}

/// A bare TLS handshake with the broker of `uri`, verifying it against the CA file: `Err` names
/// the TLS failure; `Ok` means TLS is fine (so a failure lies elsewhere).
fn tls_probe(uri: &str, ca_file: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::sync::Arc;

    let parsed: lapin::uri::AMQPUri = uri.parse().map_err(|e| format!("bad URI: {e}"))?;
    let (host, port) = (parsed.authority.host, parsed.authority.port);
    let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut sock = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_uri("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_uri("amqps://host:5671"), "amqps://host:5671");
        assert_eq!(redact_uri("amqp://user@host"), "amqp://user@host");
    }

    #[test]
    fn amqps_without_ca_is_refused_before_connecting() {
        let cfg = BrokerConfig::new("amqps://guest:guest@127.0.0.1:5671");
        let err = tls_config(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("ca_file") && !err.contains("guest:guest"),
            "{err}"
        );
    }

    #[test]
    fn half_identity_is_refused() {
        let mut cfg = BrokerConfig::new("amqp://127.0.0.1");
        cfg.client_cert = Some("/nonexistent/cert.pem".into());
        assert!(matches!(tls_config(&cfg), Err(ConnectError::HalfIdentity)));
    }

    #[test]
    fn missing_ca_file_names_the_path() {
        let mut cfg = BrokerConfig::new("amqps://127.0.0.1");
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        let err = tls_config(&cfg).unwrap_err().to_string();
        assert!(err.contains("CA file /nonexistent/ca.pem"), "{err}");
    }
}
