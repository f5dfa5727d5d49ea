//! Output formats: etcdctl's `simple` text helpers, its JSON (serde mirror
//! structs of the response types with etcdctl's field names and encodings)
//! and its tables.

use std::fmt::Write as _;

use etcdv3_tokio::api::{KeyValue, ResponseHeader};
use serde::Serialize;

use crate::flags::WriteOut;
use crate::CliError;

/// How a command prints its result.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// The `-w` format.
    pub format: WriteOut,
    /// `--hex`: byte strings as `\x..` escapes.
    pub hex: bool,
}

impl Printer {
    /// Fail with etcdctl's message and exit code 4 for formats a command
    /// cannot print.
    pub fn require(&self, allowed: &[WriteOut]) -> Result<(), CliError> {
        if allowed.contains(&self.format) {
            return Ok(());
        }
        Err(CliError::Unsupported(format!(
            "{} not supported as output format",
            format_name(self.format)
        )))
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.format == WriteOut::Json
    }

    /// A byte string as etcdctl prints it: the raw bytes, or `\x..` escapes
    /// with `--hex`.
    pub fn bytes(&self, b: &[u8]) -> Vec<u8> {
        if self.hex {
            let mut s = String::with_capacity(b.len() * 4);
            for byte in b {
                let _ = write!(s, "\\x{byte:02x}");
            }
            s.into_bytes()
        } else {
            b.to_vec()
        }
    }

    /// [`Printer::bytes`] where text is needed (tables, messages): invalid
    /// UTF-8 becomes U+FFFD.
    pub fn text(&self, b: &[u8]) -> String {
        String::from_utf8_lossy(&self.bytes(b)).into_owned()
    }

    /// etcdctl's `printKV`: the key (unless `value_only`) and the value, one
    /// line each, as raw bytes.
    pub fn kv(&self, out: &mut Vec<u8>, kv: &KeyValue, value_only: bool) {
        if !value_only {
            out.extend_from_slice(&self.bytes(&kv.key));
            out.push(b'\n');
        }
        out.extend_from_slice(&self.bytes(&kv.value));
        out.push(b'\n');
    }
}

fn format_name(f: WriteOut) -> &'static str {
    match f {
        WriteOut::Simple => "simple",
        WriteOut::Json => "json",
        WriteOut::Fields => "fields",
        WriteOut::Table => "table",
        WriteOut::Protobuf => "protobuf",
    }
}

/// Write raw bytes to stdout and flush (a closed pipe is not an error:
/// `etcdctl get | head` ends quietly).
pub fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// `-w protobuf`: the response message's wire bytes, as etcdctl writes
/// them (no newline).
pub fn write_pb<M: etcdv3_tokio::proto::prost::Message>(message: &M) {
    write_stdout(&message.encode_to_vec());
}

/// Go's `%q` of a byte string as etcdctl 3.5 (Go 1.16) prints it: printable
/// characters as they are, `\a \b \f \n \r \t \v`, other control bytes
/// below 0x20 as `\xNN`, bytes that are not UTF-8 as `\xNN`, other
/// unprintable characters as `\uNNNN` / `\UNNNNNNNN`.
pub fn go_quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if go_printable(c) => out.push(c),
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space. Rust's debug escaping leaves exactly those unescaped
/// (grapheme extenders too, when they do not start the string).
fn go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let s: String = ['a', c].iter().collect();
    s.escape_debug().eq(s.chars())
}

/// Print one JSON document on a line.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string(value).map_err(|e| CliError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Standard base64 with padding (Go's encoding of `[]byte` in JSON).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// serde `skip_serializing_if` for protobuf zero values.
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `Vec<u8>` serialized as base64, left out when empty.
#[derive(Debug, Default, PartialEq)]
pub struct B64(pub Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64(&self.0))
    }
}

/// `etcdserverpb.ResponseHeader` as etcdctl's JSON prints it.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct HeaderJson {
    #[serde(skip_serializing_if = "is_zero")]
    cluster_id: u64,
    #[serde(skip_serializing_if = "is_zero")]
    member_id: u64,
    #[serde(skip_serializing_if = "is_zero")]
    revision: i64,
    #[serde(skip_serializing_if = "is_zero")]
    raft_term: u64,
}

impl HeaderJson {
    /// Mirror of a response header (absent: all zero).
    pub fn of(h: Option<&ResponseHeader>) -> HeaderJson {
        h.map(|h| HeaderJson {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        })
        .unwrap_or_default()
    }
}

/// `mvccpb.KeyValue` as etcdctl's JSON prints it.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct KvJson {
    #[serde(skip_serializing_if = "is_zero")]
    key: B64,
    #[serde(skip_serializing_if = "is_zero")]
    create_revision: i64,
    #[serde(skip_serializing_if = "is_zero")]
    mod_revision: i64,
    #[serde(skip_serializing_if = "is_zero")]
    version: i64,
    #[serde(skip_serializing_if = "is_zero")]
    value: B64,
    #[serde(skip_serializing_if = "is_zero")]
    lease: i64,
}

impl KvJson {
    /// Mirror of a key-value.
    pub fn of(kv: &KeyValue) -> KvJson {
        KvJson {
            key: B64(kv.key.clone()),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: B64(kv.value.clone()),
            lease: kv.lease,
        }
    }
}

/// A response that holds only a header (`{"header":{...}}`).
#[derive(Debug, Serialize)]
pub struct HeaderOnly {
    /// The header.
    pub header: HeaderJson,
}

impl HeaderOnly {
    /// Print `{"header":...}` for a response header.
    pub fn print(h: Option<&ResponseHeader>) -> Result<(), CliError> {
        print_json(&HeaderOnly {
            header: HeaderJson::of(h),
        })
    }
}

/// etcdctl's `-w fields` lines of a response header.
pub fn fields_header(h: Option<&ResponseHeader>) -> String {
    let h = h.copied().unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// etcdctl's `-w fields` lines of a key-value, field names prefixed with
/// `pfx` (`Prev` for previous values).
/// (`%q`, whatever `--hex` says, as etcdctl).
pub fn fields_kv(pfx: &str, kv: &KeyValue) -> String {
    format!(
        "\"{pfx}Key\" : {}\n\"{pfx}CreateRevision\" : {}\n\"{pfx}ModRevision\" : {}\n\"{pfx}Version\" : {}\n\"{pfx}Value\" : {}\n\"{pfx}Lease\" : {}\n",
        go_quote(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        go_quote(&kv.value),
        kv.lease
    )
}

/// Go's `humanize.Bytes` (SI units), as etcdctl prints db sizes.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// etcdctl's tables (tablewriter with right-aligned cells and centered
/// headers).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::from("+");
    for w in &widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    line.push('\n');
    let mut out = line.clone();
    out.push('|');
    for (w, h) in widths.iter().zip(headers) {
        let gap = w - h.chars().count();
        let left = gap / 2;
        let _ = write!(
            out,
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(gap - left)
        );
    }
    out.push('\n');
    out.push_str(&line);
    for row in rows {
        out.push('|');
        for (w, cell) in widths.iter().zip(row) {
            let _ = write!(out, " {cell:>w$} |");
        }
        out.push('\n');
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"w"), "dw==");
        assert_eq!(base64(b"lk"), "bGs=");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(&[0]), "AA==");
    }

    #[test]
    fn zero_values_are_left_out() {
        let h = HeaderJson {
            cluster_id: 1,
            raft_term: 2,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"cluster_id":1,"raft_term":2}"#
        );
        let kv = KvJson::of(&KeyValue {
            key: b"foo".to_vec(),
            mod_revision: 12,
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&kv).unwrap(),
            r#"{"key":"Zm9v","mod_revision":12}"#
        );
    }

    #[test]
    fn sizes_humanize_like_go() {
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn hex_escapes_each_byte() {
        let p = Printer {
            format: WriteOut::Simple,
            hex: true,
        };
        assert_eq!(p.bytes(b"fo"), b"\\x66\\x6f");
        let raw = Printer { hex: false, ..p };
        assert_eq!(raw.bytes(&[b'v', 0xff, 0]), [b'v', 0xff, 0]);
    }

    #[test]
    fn quotes_like_go_percent_q() {
        // What etcdctl 3.5.1 prints for these bytes.
        assert_eq!(go_quote(b"w"), "\"w\"");
        assert_eq!(go_quote(b"a \"b\"\n\\"), "\"a \\\"b\\\"\\n\\\\\"");
        assert_eq!(go_quote(&[b'v', 0xff, 0, b'z']), "\"v\\xff\\x00z\"");
        assert_eq!(go_quote(b"b\x01\x7fk"), "\"b\\x01\\u007fk\"");
        assert_eq!(
            go_quote("x\u{1b}\u{e9}\u{2028}".as_bytes()),
            "\"x\\x1b\u{e9}\\u2028\""
        );
        assert_eq!(
            go_quote("\u{7}\u{b}\u{a0}\u{301}\u{1f600}\u{e0001}".as_bytes()),
            "\"\\a\\v\\u00a0\u{301}\u{1f600}\\U000e0001\""
        );
    }

    #[test]
    fn tables_look_like_etcdctl() {
        let t = table(&["ID", "NAME"], &[vec!["abc".into(), "h5".into()]]);
        assert_eq!(
            t,
            "+-----+------+\n| ID  | NAME |\n+-----+------+\n| abc |   h5 |\n+-----+------+\n"
        );
    }
}
