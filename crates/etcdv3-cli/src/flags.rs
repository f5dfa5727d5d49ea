//! Global options with etcdctl's names and `ETCDCTL_*` environment variables,
//! and how they become [`ClientOptions`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use etcdv3_tokio::{ClientOptions, Policy, TlsOptions};

use crate::CliError;

/// Output formats of `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteOut {
    /// etcdctl's plain text.
    Simple,
    /// etcdctl's JSON (protobuf field names, bytes base64).
    Json,
    /// etcdctl's `"Field" : value` lines (not supported yet).
    Fields,
    /// etcdctl's tables (member list and endpoint status).
    Table,
    /// The raw protobuf message (not supported yet).
    Protobuf,
}

/// Options every command accepts, named as etcdctl names them.
/// etcdctl's default `--endpoints`.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Comma-separated endpoints (host:port, http://host:port or https://host:port).
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = DEFAULT_ENDPOINT,
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    /// Dial timeout for client connections.
    #[arg(long, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration, global = true)]
    pub dial_timeout: Duration,
    /// Timeout for short running commands (excluding dial timeout).
    #[arg(long, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub command_timeout: Duration,
    /// Keepalive time for client connections (the client never pings more
    /// often than every 5s, etcd's server limit).
    #[arg(long, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s", value_parser = parse_duration, global = true)]
    pub keepalive_time: Duration,
    /// Keepalive timeout for client connections.
    #[arg(long, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s", value_parser = parse_duration, global = true)]
    pub keepalive_timeout: Duration,
    /// User name, or `user:password`, for authentication.
    #[arg(long = "user", id = "global_user", env = "ETCDCTL_USER", global = true)]
    pub user: Option<String>,
    /// Password for authentication (then --user holds the name only).
    #[arg(
        long = "password",
        id = "global_password",
        env = "ETCDCTL_PASSWORD",
        global = true
    )]
    pub password: Option<String>,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(
        long = "cacert",
        id = "global_cacert",
        env = "ETCDCTL_CACERT",
        global = true
    )]
    pub cacert: Option<PathBuf>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long = "cert", id = "global_cert", env = "ETCDCTL_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long = "key", id = "global_key", env = "ETCDCTL_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Skip server certificate verification (CAUTION: this option should be
    /// enabled only for testing purposes).
    #[arg(long, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", global = true,
          action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", require_equals = true)]
    pub insecure_skip_tls_verify: bool,
    /// Disable transport security for client connections (endpoints without
    /// a scheme use plain http when true, https when false).
    #[arg(long, env = "ETCDCTL_INSECURE_TRANSPORT", global = true,
          action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", require_equals = true)]
    pub insecure_transport: bool,
    /// Print byte strings as hex encoded strings.
    #[arg(long, env = "ETCDCTL_HEX", global = true,
          action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", require_equals = true)]
    pub hex: bool,
    /// Enable client-side debug logging (prints the options in effect).
    #[arg(long, env = "ETCDCTL_DEBUG", global = true,
          action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", require_equals = true)]
    pub debug: bool,
    /// Output format (fields, json, protobuf, simple, table).
    #[arg(
        short = 'w',
        long,
        env = "ETCDCTL_WRITE_OUT",
        default_value = "simple",
        global = true
    )]
    pub write_out: String,
    /// Balancer policy (etcdv3 only): adaptive, round-robin or pinned.
    #[arg(long, default_value = "adaptive", value_parser = parse_policy, global = true)]
    pub policy: Policy,
}

impl GlobalArgs {
    /// The `-w` format; an unknown one fails as etcdctl's does (exit 4).
    pub fn format(&self) -> Result<WriteOut, CliError> {
        WriteOut::from_str(&self.write_out, false)
            .map_err(|_| CliError::Unsupported("unsupported output format".into()))
    }

    /// The endpoints with the scheme `--insecure-transport` implies where
    /// none is given.
    pub fn endpoint_urls(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| with_scheme(e, self.plain_transport()))
            .collect()
    }

    /// Whether endpoints without a scheme use plain http: as etcdctl, TLS
    /// when a CA or certificate is given or `--insecure-transport=false`.
    fn plain_transport(&self) -> bool {
        self.insecure_transport && self.cacert.is_none() && self.cert.is_none()
    }

    /// The client options these flags describe.
    pub fn client_options(&self) -> Result<ClientOptions, CliError> {
        let mut opts = ClientOptions::default()
            .with_timeout(self.command_timeout)
            .with_policy(self.policy);
        opts.core.connect_timeout = self.dial_timeout;
        opts.core.keepalive_interval = self.keepalive_time.max(Duration::from_secs(5));
        opts.core.ping_timeout = self.keepalive_timeout;
        if let Some((name, password)) = self.credentials()? {
            opts = opts.with_user(name, password);
        }
        let mut tls = None;
        if let Some(ca) = &self.cacert {
            tls = Some(TlsOptions::default().with_ca_file(ca));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = Some(tls.unwrap_or_default().with_identity(cert, key));
            }
            (None, None) => {}
            _ => {
                return Err(CliError::Usage(
                    "--cert and --key must be given together".into(),
                ))
            }
        }
        // As etcdctl, skipping verification changes no endpoint's scheme
        // (`https://` endpoints, or `--insecure-transport=false`).
        if self.insecure_skip_tls_verify {
            tls = Some(tls.unwrap_or_default().danger_accept_invalid_certs());
        }
        // Said in the command line's words (the client's own error names
        // its API).
        let https = self
            .endpoint_urls()
            .iter()
            .any(|u| u.starts_with("https://"));
        let trusted = self.cacert.is_some() || self.insecure_skip_tls_verify;
        if (https || tls.is_some()) && !trusted {
            return Err(CliError::Usage(
                "TLS needs --cacert (etcdv3ctl does not read the system's CA certificates yet) \
                 or --insecure-skip-tls-verify"
                    .into(),
            ));
        }
        if let Some(tls) = tls {
            opts = opts.with_tls(tls);
        }
        Ok(opts)
    }

    fn credentials(&self) -> Result<Option<(String, String)>, CliError> {
        let Some(user) = &self.user else {
            if self.password.is_some() {
                return Err(CliError::Usage("--password needs --user".into()));
            }
            return Ok(None);
        };
        match (user.split_once(':'), &self.password) {
            (Some(_), Some(_)) => Err(CliError::Usage(
                "--user must not include a password when --password is given".into(),
            )),
            (Some((name, pw)), None) => Ok(Some((name.to_string(), pw.to_string()))),
            (None, Some(pw)) => Ok(Some((user.clone(), pw.clone()))),
            (None, None) => {
                let pw = read_password(Some("Password: "))?;
                Ok(Some((user.clone(), pw)))
            }
        }
    }
}

/// Read a password line from stdin. With `prompt`, the prompt goes to
/// stdout and a newline follows the answer there (as etcdctl's prompts);
/// when stdin is a terminal, echo is turned off (`stty -echo`) while the
/// password is typed.
pub fn read_password(prompt: Option<&str>) -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let terminal = prompt.is_some() && std::io::stdin().is_terminal();
    if let Some(prompt) = prompt {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
    }
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if terminal {
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if terminal {
        stty("echo");
    }
    if prompt.is_some() {
        println!();
    }
    read.map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `host:port` gets `http://` (or `https://` when `plain` is false); a URL
/// keeps its scheme.
pub fn with_scheme(endpoint: &str, plain: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if plain {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// Parse a Go-style duration: `5s`, `500ms`, `1m30s`, `2` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs, s);
    }
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        total += n * scale;
        rest = next;
    }
    secs_to_duration(total, s)
}

fn secs_to_duration(secs: f64, s: &str) -> Result<Duration, String> {
    if !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("duration out of range: {s}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "adaptive" => Ok(Policy::Adaptive),
        "round-robin" | "roundrobin" => Ok(Policy::RoundRobin),
        "pinned" => Ok(Policy::Pinned),
        _ => Err(format!(
            "unknown policy {s}: use adaptive, round-robin or pinned"
        )),
    }
}

/// A lease id argument with etcdctl's message and exit code 128 (Go's
/// `strconv.ParseInt(s, 16, 64)`: signed, no `0x`).
pub fn lease_id_arg(s: &str) -> Result<i64, CliError> {
    go_parse_hex(s, "ParseInt", i64::MAX as u64)
        .map(|v| v as i64)
        .map_err(|e| CliError::BadArgs(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// A member id argument with etcdctl's message and exit code 128 (Go's
/// `strconv.ParseUint(s, 16, 64)`).
pub fn member_id_arg(s: &str) -> Result<u64, CliError> {
    go_parse_hex(s, "ParseUint", u64::MAX)
        .map_err(|e| CliError::BadArgs(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
pub fn go_parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// Go's `strconv.Parse{Int,Uint}(s, 16, 64)` for non-negative values, with
/// its error text.
pub fn go_parse_hex(s: &str, func: &str, max: u64) -> Result<u64, String> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("strconv.{func}: parsing {s:?}: invalid syntax"));
    }
    match u64::from_str_radix(digits, 16) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("strconv.{func}: parsing {s:?}: value out of range")),
    }
}

/// The bytes of a command-line argument: keys and values are bytes, as Go's
/// `os.Args`.
#[cfg(unix)]
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    std::os::unix::ffi::OsStrExt::as_bytes(s).to_vec()
}

/// The bytes of a command-line argument (lossy off Unix).
#[cfg(not(unix))]
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

/// Bytes as an argument (the reverse of [`os_bytes`]).
#[cfg(unix)]
pub fn bytes_os(b: Vec<u8>) -> std::ffi::OsString {
    std::os::unix::ffi::OsStringExt::from_vec(b)
}

/// Bytes as an argument (lossy off Unix).
#[cfg(not(unix))]
pub fn bytes_os(b: Vec<u8>) -> std::ffi::OsString {
    String::from_utf8_lossy(&b).into_owned().into()
}

/// Go's `strconv.ParseBool`, which etcdctl's boolean flags use for
/// `--flag=value`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Give every plain switch of `cmd` and its subcommands etcdctl's
/// (pflag's) boolean syntax: `--flag`, `--flag=true`, `--flag=false`
/// (any `strconv.ParseBool` spelling). `--flag true` stays a switch and a
/// positional argument, as in pflag.
pub fn go_bool_flags(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            arg.action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .default_value("false")
                .hide_default_value(true)
                .value_name("BOOL")
                .value_parser(go_bool)
        } else {
            arg
        }
    })
    .mut_subcommands(go_bool_flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn ids_parse_as_hex() {
        assert_eq!(lease_id_arg("1f").unwrap(), 31);
        assert_eq!(
            lease_id_arg("zz").unwrap_err().to_string(),
            "bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert_eq!(
            member_id_arg("zz").unwrap_err().to_string(),
            "bad member ID arg (strconv.ParseUint: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert!(
            lease_id_arg("ffffffffffffffff").is_err(),
            "out of range for ParseInt"
        );
        assert_eq!(member_id_arg("ffffffffffffffff").unwrap(), u64::MAX);
    }

    #[test]
    fn bools_parse_like_go() {
        assert_eq!(go_bool("true"), Ok(true));
        assert_eq!(go_bool("F"), Ok(false));
        assert!(go_bool("yes").is_err());
    }

    #[test]
    fn scheme_follows_insecure_transport() {
        assert_eq!(with_scheme("a:1", true), "http://a:1");
        assert_eq!(with_scheme("a:1", false), "https://a:1");
        assert_eq!(with_scheme("https://a:1", true), "https://a:1");
    }
}
