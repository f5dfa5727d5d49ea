//! etcd client endpoints: `http://host:port`, `https://host:port`,
//! `host:port`, or a unix socket: `unix://path` (`unixs://path` for TLS over
//! the socket), as Go's clientv3 accepts them.
//!
//! ```
//! use etcdv3_core::endpoints::endpoint::{Endpoint, Scheme};
//!
//! let ep: Endpoint = "https://[::1]:2379/".parse().unwrap();
//! assert_eq!(ep.scheme(), Scheme::Https);
//! assert_eq!(ep.host(), "::1");
//! assert_eq!(ep.port(), 2379);
//! assert_eq!(ep.authority(), "[::1]:2379");
//! assert_eq!(ep.to_string(), "https://[::1]:2379");
//!
//! // A unix socket: an absolute path (`unix:///...`) or one relative to
//! // the working directory (`unix://localhost:2379`, the file etcd creates
//! // for `--listen-client-urls=unix://localhost:2379`).
//! let ep: Endpoint = "unix:///run/etcd.sock".parse().unwrap();
//! assert_eq!(ep.scheme(), Scheme::Unix);
//! assert_eq!(ep.unix_path(), Some("/run/etcd.sock"));
//! assert_eq!(ep.authority(), "localhost");
//! assert_eq!(ep.to_string(), "unix:///run/etcd.sock");
//!
//! let err = Endpoint::parse("unix://").unwrap_err();
//! assert!(err.to_string().contains("path"));
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
    /// Plain-text HTTP/2 over a unix domain socket (`unix://path`).
    Unix,
    /// HTTP/2 over TLS over a unix domain socket (`unixs://path`).
    Unixs,
}

impl Scheme {
    /// `"http"`, `"https"`, `"unix"` or `"unixs"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Unix => "unix",
            Scheme::Unixs => "unixs",
        }
    }

    /// Whether the scheme uses TLS (`https` or `unixs`).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Unixs)
    }

    /// Whether the scheme names a unix domain socket (`unix` or `unixs`).
    pub fn is_unix(self) -> bool {
        matches!(self, Scheme::Unix | Scheme::Unixs)
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
    /// The scheme is none of `http`, `https`, `unix` and `unixs`.
    #[error("unsupported scheme {0:?} (only http, https, unix and unixs are supported)")]
    UnsupportedScheme(String),
    /// A `unix://` or `unixs://` endpoint without a socket path.
    #[error("the unix socket path is missing (expected unix://path)")]
    MissingPath,
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

/// A parsed etcd endpoint: scheme, host and port, or scheme and unix socket
/// path.
///
/// Hostnames are stored lower-case and IPv6 addresses in their canonical
/// form, so equal endpoints compare (and hash) equal however they were
/// written. Unix socket paths are kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    scheme: Scheme,
    /// The host, or the socket path for a unix endpoint.
    host: String,
    port: u16,
    ipv6: bool,
}

impl Endpoint {
    /// Parses `http://host:port`, `https://host:port` or `host:port`
    /// (plain HTTP). The host is a hostname, an IPv4 address or a bracketed
    /// IPv6 address; one trailing `/` is allowed.
    ///
    /// `unix://path` and `unixs://path` name a unix domain socket (plain and
    /// TLS): everything after `://` is the path, absolute (`unix:///run/etcd.sock`)
    /// or relative to the working directory (`unix://localhost:2379`, the
    /// file etcd creates for `--listen-client-urls=unix://localhost:2379`).
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
                } else if scheme.eq_ignore_ascii_case("unix") {
                    Scheme::Unix
                } else if scheme.eq_ignore_ascii_case("unixs") {
                    Scheme::Unixs
                } else {
                    return Err(err(EndpointErrorReason::UnsupportedScheme(
                        scheme.to_string(),
                    )));
                };
                (scheme, rest)
            }
            None => (Scheme::Http, input),
        };
        if scheme.is_unix() {
            if rest.is_empty() {
                return Err(err(EndpointErrorReason::MissingPath));
            }
            return Ok(Endpoint {
                scheme,
                host: rest.to_string(),
                port: 0,
                ipv6: false,
            });
        }
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

    /// The host, without brackets for IPv6; `"localhost"` for a unix socket
    /// (the name its TLS certificate is checked against, as in grpc-go).
    pub fn host(&self) -> &str {
        if self.scheme.is_unix() {
            UNIX_AUTHORITY
        } else {
            &self.host
        }
    }

    /// The port; 0 for a unix socket.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket path of a `unix://` or `unixs://` endpoint.
    pub fn unix_path(&self) -> Option<&str> {
        self.scheme.is_unix().then_some(self.host.as_str())
    }

    /// Whether the host is an IPv6 address.
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// `host:port`, with IPv6 addresses in brackets (the HTTP/2 `:authority`);
    /// `"localhost"` for a unix socket (what grpc-go sends).
    pub fn authority(&self) -> String {
        if self.scheme.is_unix() {
            UNIX_AUTHORITY.to_string()
        } else if self.ipv6 {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the endpoint uses TLS (`https` or `unixs`).
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// Whether the endpoint is a unix domain socket.
    pub fn is_unix(&self) -> bool {
        self.scheme.is_unix()
    }

    /// `scheme://authority`, the prefix of request URIs (a method path such
    /// as `/etcdserverpb.KV/Range` is appended to it); `http://localhost` or
    /// `https://localhost` for a unix socket.
    pub fn uri_prefix(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme.is_unix() {
            write!(f, "{}://{}", self.scheme, self.host)
        } else if self.ipv6 {
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

/// The `:authority` (and TLS server name) of a unix socket endpoint.
const UNIX_AUTHORITY: &str = "localhost";

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
