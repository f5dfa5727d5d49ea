//! etcd client endpoints: `http://host:port`, `https://host:port` or
//! `host:port`.
//!
//! ```
//! use etcdv3_core::endpoint::{Endpoint, Scheme};
//!
//! let ep: Endpoint = "https://[::1]:2379/".parse().unwrap();
//! assert_eq!(ep.scheme(), Scheme::Https);
//! assert_eq!(ep.host(), "::1");
//! assert_eq!(ep.port(), 2379);
//! assert_eq!(ep.authority(), "[::1]:2379");
//! assert_eq!(ep.to_string(), "https://[::1]:2379");
//!
//! let err = Endpoint::parse("unix:///run/etcd.sock").unwrap_err();
//! assert!(err.to_string().contains("unix"));
//! ```

use core::net::{Ipv4Addr, Ipv6Addr};
use std::fmt;
use std::str::FromStr;

/// The URI scheme of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain-text HTTP/2 (h2c).
    Http,
    /// HTTP/2 over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointErrorReason {
    /// The string is empty.
    #[error("it is empty")]
    Empty,
    /// The string contains whitespace or control characters.
    #[error("it contains whitespace or control characters")]
    Whitespace,
    /// The scheme is neither `http` nor `https`.
    #[error("unsupported scheme {0:?} (only http and https are supported)")]
    UnsupportedScheme(String),
    /// There is a path, query or fragment after the authority.
    #[error("a path, query or fragment is not allowed (only a trailing '/')")]
    Path,
    /// There is user information (`user@`) before the host.
    #[error("user information ('user@') is not allowed")]
    UserInfo,
    /// The host is missing.
    #[error("the host is missing")]
    MissingHost,
    /// The port is missing.
    #[error("the port is missing (expected host:port)")]
    MissingPort,
    /// The port is not a number in 1..=65535.
    #[error("invalid port {0:?} (expected a number in 1..=65535)")]
    InvalidPort(String),
    /// The host is not a valid hostname or IPv4 address.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// The bracketed IPv6 address is not valid.
    #[error("invalid IPv6 address {0:?}")]
    InvalidIpv6(String),
    /// An IPv6 address was given without brackets.
    #[error("IPv6 addresses must be written in brackets, e.g. [::1]:2379")]
    UnbracketedIpv6,
}

/// An endpoint string that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {input:?}: {reason}")]
pub struct EndpointError {
    input: String,
    reason: EndpointErrorReason,
}

impl EndpointError {
    fn new(input: &str, reason: EndpointErrorReason) -> EndpointError {
        EndpointError {
            input: input.to_string(),
            reason,
        }
    }

    /// The rejected input.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &EndpointErrorReason {
        &self.reason
    }
}

/// A parsed etcd endpoint: scheme, host and port.
///
/// Hostnames are stored lower-case and IPv6 addresses in their canonical
/// form, so equal endpoints compare (and hash) equal however they were
/// written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    ipv6: bool,
}

impl Endpoint {
    /// Parses `http://host:port`, `https://host:port` or `host:port`
    /// (plain HTTP). The host is a hostname, an IPv4 address or a bracketed
    /// IPv6 address; one trailing `/` is allowed.
    pub fn parse(input: &str) -> Result<Endpoint, EndpointError> {
        let err = |reason| EndpointError::new(input, reason);
        if input.is_empty() {
            return Err(err(EndpointErrorReason::Empty));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(EndpointErrorReason::Whitespace));
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = if scheme.eq_ignore_ascii_case("http") {
                    Scheme::Http
                } else if scheme.eq_ignore_ascii_case("https") {
                    Scheme::Https
                } else {
                    return Err(err(EndpointErrorReason::UnsupportedScheme(
                        scheme.to_string(),
                    )));
                };
                (scheme, rest)
            }
            None => (Scheme::Http, input),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(err(EndpointErrorReason::Path));
        }
        if rest.contains('@') {
            return Err(err(EndpointErrorReason::UserInfo));
        }
        if rest.is_empty() {
            return Err(err(EndpointErrorReason::MissingHost));
        }

        let (host, ipv6, port) = if let Some(after_bracket) = rest.strip_prefix('[') {
            let Some((addr, after)) = after_bracket.split_once(']') else {
                return Err(err(EndpointErrorReason::InvalidIpv6(rest.to_string())));
            };
            let parsed = Ipv6Addr::from_str(addr)
                .map_err(|_| err(EndpointErrorReason::InvalidIpv6(addr.to_string())))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => return Err(err(EndpointErrorReason::MissingPort)),
                None => return Err(err(EndpointErrorReason::InvalidHost(rest.to_string()))),
            };
            (parsed.to_string(), true, port)
        } else {
            let Some((host, port)) = rest.rsplit_once(':') else {
                return Err(err(EndpointErrorReason::MissingPort));
            };
            if host.contains(':') || host.contains(['[', ']']) {
                return Err(err(if Ipv6Addr::from_str(rest).is_ok() {
                    EndpointErrorReason::UnbracketedIpv6
                } else {
                    EndpointErrorReason::InvalidHost(host.to_string())
                }));
            }
            if host.is_empty() {
                return Err(err(EndpointErrorReason::MissingHost));
            }
            if !valid_host(host) {
                return Err(err(EndpointErrorReason::InvalidHost(host.to_string())));
            }
            (host.to_ascii_lowercase(), false, port)
        };
        let port = parse_port(port).map_err(err)?;
        Ok(Endpoint {
            scheme,
            host,
            port,
            ipv6,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is an IPv6 address.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// `host:port`, with IPv6 addresses in brackets (the HTTP/2 `:authority`).
    pub fn authority(&self) -> String {
        if self.ipv6 {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the endpoint uses TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// `scheme://authority`, the prefix of request URIs (a method path such
    /// as `/etcdserverpb.KV/Range` is appended to it).
    pub fn uri_prefix(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ipv6 {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(s)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = EndpointError;

    fn try_from(s: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::parse(s)
    }
}

fn parse_port(port: &str) -> Result<u16, EndpointErrorReason> {
    if port.is_empty() {
        return Err(EndpointErrorReason::MissingPort);
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointErrorReason::InvalidPort(port.to_string()));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(EndpointErrorReason::InvalidPort(port.to_string())),
        Ok(p) => Ok(p),
    }
}

/// A hostname (RFC 1123 labels; `_` tolerated, as container names use it)
/// or a dotted-quad IPv4 address.
fn valid_host(host: &str) -> bool {
    if host.len() > 253 {
        return false;
    }
    let all_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if all_numeric {
        return Ipv4Addr::from_str(host).is_ok();
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}
