//! `txn`: compares, success and failure requests read from stdin exactly as
//! etcdctl reads them (one per line, each block ended by an empty line).

use std::io::BufRead;

use clap::{Args, Parser, Subcommand};
use etcdv3_tokio::api::{response_op, Compare, CompareOp, Txn, TxnOp, TxnResponse};
use serde::Serialize;

use super::kv::{self, DelArgs, GetArgs, PutArgs};
use crate::flags::{bytes_os, WriteOut};
use crate::output::{is_zero, print_json, write_stdout, HeaderJson, Printer};
use crate::{CliError, Ctx};

/// `txn [-i]`.
#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Input transaction in interactive mode (prompts for each block).
    #[arg(short, long)]
    pub interactive: bool,
}

/// One request line of a txn, parsed with the flags of `get`, `put`, `del`.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct OpLine {
    #[command(subcommand)]
    op: OpKind,
}

#[derive(Subcommand, Debug)]
enum OpKind {
    Get(GetArgs),
    Put(PutArgs),
    Del(DelArgs),
}

/// Split a line into arguments as etcdctl's `Argify`: whitespace separates,
/// `"..."` is a Go string literal (escapes such as `\xff` give bytes), `'...'`
/// is taken literally. Arguments are bytes.
pub fn argify(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut arg = Vec::new();
        match c {
            b'"' => {
                i += 1;
                let mut closed = false;
                while i < line.len() {
                    let c = line[i];
                    i += 1;
                    match c {
                        b'"' => {
                            closed = true;
                            break;
                        }
                        b'\\' => i = unescape(line, i, &mut arg)?,
                        c => arg.push(c),
                    }
                }
                if !closed {
                    return Err(format!("unterminated string at column {}", start + 1));
                }
            }
            b'\'' => {
                i += 1;
                let mut closed = false;
                while i < line.len() {
                    let c = line[i];
                    i += 1;
                    if c == b'\'' {
                        closed = true;
                        break;
                    }
                    arg.push(c);
                }
                if !closed {
                    return Err(format!("unterminated string at column {}", start + 1));
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    Ok(args)
}

/// One escape of a Go string literal, `line[i]` being the character after
/// the backslash: appends its bytes to `out`, returns the index after it.
fn unescape(line: &[u8], i: usize, out: &mut Vec<u8>) -> Result<usize, String> {
    let bad = || format!("invalid escape at column {i}");
    let c = *line.get(i).ok_or_else(bad)?;
    let hex = |from: usize, n: usize| -> Result<u32, String> {
        let digits = line.get(from..from + n).ok_or_else(bad)?;
        let text = std::str::from_utf8(digits).map_err(|_| bad())?;
        u32::from_str_radix(text, 16).map_err(|_| bad())
    };
    let simple = match c {
        b'a' => Some(7),
        b'b' => Some(8),
        b'f' => Some(12),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(11),
        b'\\' | b'"' | b'\'' => Some(c),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Ok(i + 1);
    }
    match c {
        b'x' => {
            out.push(hex(i + 1, 2)? as u8);
            Ok(i + 3)
        }
        b'0'..=b'7' => {
            let digits = line.get(i..i + 3).ok_or_else(bad)?;
            let text = std::str::from_utf8(digits).map_err(|_| bad())?;
            let v = u32::from_str_radix(text, 8).map_err(|_| bad())?;
            out.push(u8::try_from(v).map_err(|_| bad())?);
            Ok(i + 3)
        }
        b'u' | b'U' => {
            let n = if c == b'u' { 4 } else { 8 };
            let ch = char::from_u32(hex(i + 1, n)?).ok_or_else(bad)?;
            out.extend_from_slice(ch.to_string().as_bytes());
            Ok(i + 1 + n)
        }
        _ => Err(bad()),
    }
}

/// Parse etcdctl's comparison syntax: `target("key") op "value"` (bytes).
pub fn parse_compare(line: &[u8]) -> Result<Compare, String> {
    let shown = String::from_utf8_lossy(line);
    let malformed = |why: &str| format!("malformed comparison: {shown} ({why})");
    let open = line
        .iter()
        .position(|&b| b == b'(')
        .ok_or_else(|| malformed("expected target(\"key\")"))?;
    let target = String::from_utf8_lossy(&line[..open]);
    let rest = line[open + 1..].trim_ascii_start();
    let (key, after) = if let Some(stripped) = rest.strip_prefix(b"\"") {
        let end = find_closing_quote(stripped).ok_or_else(|| malformed("unterminated key"))?;
        let key = argify(&rest[..end + 2]).map_err(|e| malformed(&e))?;
        (
            key.into_iter().next().unwrap_or_default(),
            &stripped[end + 1..],
        )
    } else {
        return Err(malformed("the key must be a quoted string"));
    };
    let after = after
        .trim_ascii_start()
        .strip_prefix(b")")
        .ok_or_else(|| malformed("expected ) after the key"))?;
    let parts = argify(after).map_err(|e| malformed(&e))?;
    let [op, value] = parts.as_slice() else {
        return Err(malformed("expected an operator and a quoted value"));
    };
    let op = match op.as_slice() {
        b"=" | b"==" => CompareOp::Equal,
        b"!=" => CompareOp::NotEqual,
        b">" => CompareOp::Greater,
        b"<" => CompareOp::Less,
        o => {
            return Err(malformed(&format!(
                "unknown operator {}",
                String::from_utf8_lossy(o)
            )))
        }
    };
    let int = || {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| {
                malformed(&format!(
                    "{:?} is not an integer",
                    String::from_utf8_lossy(value)
                ))
            })
    };
    Ok(match target.trim() {
        "ver" | "version" => Compare::version(key, op, int()?),
        "c" | "create" => Compare::create_revision(key, op, int()?),
        "m" | "mod" => Compare::mod_revision(key, op, int()?),
        "val" | "value" => Compare::value(key, op, value.clone()),
        "lease" => Compare::lease(key, op, int()?),
        t => return Err(malformed(&format!("unknown target {t}"))),
    })
}

fn find_closing_quote(s: &[u8]) -> Option<usize> {
    let mut escaped = false;
    for (i, &c) in s.iter().enumerate() {
        match c {
            b'\\' if !escaped => escaped = true,
            b'"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// Parse one request line (`put k v`, `get k --prefix`, `del k`).
pub fn parse_op(p: &Printer, line: &[u8]) -> Result<TxnOp, String> {
    let args = argify(line)?.into_iter().map(bytes_os);
    let parsed = OpLine::try_parse_from(args).map_err(|e| {
        let msg = e.to_string();
        msg.lines().next().unwrap_or_default().to_string()
    })?;
    Ok(match parsed.op {
        OpKind::Get(a) => {
            let (key, o) = kv::get_request(p, &a).map_err(|e| e.to_string())?;
            TxnOp::get(key, o)
        }
        OpKind::Put(a) => {
            let (key, value, o) = kv::put_request(&a, false).map_err(|e| e.to_string())?;
            TxnOp::put(key, value, o)
        }
        OpKind::Del(a) => {
            let (key, o) = kv::del_request(&a).map_err(|e| e.to_string())?;
            TxnOp::delete(key, o)
        }
    })
}

/// One line of a block: its number and its bytes.
type Line = (usize, Vec<u8>);

/// Read one block of lines (bytes) up to an empty line, counting lines for
/// error messages. As etcdctl, each line is parsed as soon as it is read
/// (`parse`), and input that ends before the block's empty line is an
/// error: `EOF`, exit 3.
fn read_block<T>(
    input: &mut impl BufRead,
    line_no: &mut usize,
    mut parse: impl FnMut(&Line) -> Result<T, CliError>,
) -> Result<Vec<T>, CliError> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        input
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::InvalidInput(format!("cannot read the txn: {e}")))?;
        if line.last() != Some(&b'\n') {
            return Err(CliError::InvalidInput("EOF".into()));
        }
        *line_no += 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(out);
        }
        out.push(parse(&(*line_no, line.to_vec()))?);
    }
}

/// Parse a whole txn from `input`; `prompt` prints etcdctl's interactive
/// prompts before each block.
pub fn read_txn(p: &Printer, input: &mut impl BufRead, prompt: bool) -> Result<Txn, CliError> {
    let mut line_no = 0;
    let at = |n: usize, e: String| CliError::InvalidInput(format!("line {n}: {e}"));
    if prompt {
        println!("compares:");
    }
    let compares = read_block(input, &mut line_no, |(n, line)| {
        parse_compare(line).map_err(|e| at(*n, e))
    })?;
    let mut blocks = Vec::new();
    for title in [
        "success requests (get, put, del):",
        "failure requests (get, put, del):",
    ] {
        if prompt {
            println!("\n{title}");
        }
        let ops = read_block(input, &mut line_no, |(n, line)| {
            parse_op(p, line)
                .map_err(|e| at(*n, format!("{e} in {:?}", String::from_utf8_lossy(line))))
        })?;
        blocks.push(ops);
    }
    let failure = blocks.pop().unwrap_or_default();
    let success = blocks.pop().unwrap_or_default();
    Ok(Txn::new().when(compares).and_then(success).or_else(failure))
}

/// The `Response` oneof as gogoproto's JSON names it.
#[derive(Serialize)]
enum ResponseJson {
    #[serde(rename = "response_range")]
    Range(kv::RangeJson),
    #[serde(rename = "response_put")]
    Put(kv::PutJson),
    #[serde(rename = "response_delete_range")]
    Delete(kv::DelJson),
    #[serde(rename = "response_txn")]
    Txn(Box<TxnJson>),
}

#[derive(Serialize)]
struct ResponseOpJson {
    #[serde(rename = "Response")]
    response: Option<ResponseJson>,
}

#[derive(Serialize)]
struct TxnJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "is_zero")]
    succeeded: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    responses: Vec<ResponseOpJson>,
}

fn txn_json(r: &TxnResponse) -> TxnJson {
    TxnJson {
        header: HeaderJson::of(r.header.as_ref()),
        succeeded: r.succeeded,
        responses: r
            .responses
            .iter()
            .map(|op| ResponseOpJson {
                response: op.response.as_ref().map(|resp| match resp {
                    response_op::Response::ResponseRange(x) => {
                        ResponseJson::Range(kv::range_json(x))
                    }
                    response_op::Response::ResponsePut(x) => ResponseJson::Put(kv::put_json(x)),
                    response_op::Response::ResponseDeleteRange(x) => {
                        ResponseJson::Delete(kv::del_json(x))
                    }
                    response_op::Response::ResponseTxn(x) => {
                        ResponseJson::Txn(Box::new(txn_json(x)))
                    }
                }),
            })
            .collect(),
    }
}

/// etcdctl's simple text of a txn response.
fn txn_text(p: &Printer, r: &TxnResponse) -> Vec<u8> {
    let mut out = if r.succeeded {
        b"SUCCESS\n".to_vec()
    } else {
        b"FAILURE\n".to_vec()
    };
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => {
                out.extend_from_slice(&kv::range_text(p, x, false))
            }
            Some(response_op::Response::ResponsePut(x)) => {
                out.extend_from_slice(&kv::put_text(p, x))
            }
            Some(response_op::Response::ResponseDeleteRange(x)) => {
                out.extend_from_slice(&kv::del_text(p, x))
            }
            other => out.extend_from_slice(format!("unexpected response {other:?}\n").as_bytes()),
        }
    }
    out
}

/// etcdctl's `-w fields` of a txn response.
fn txn_fields(r: &TxnResponse) -> String {
    let mut out = crate::output::fields_header(r.header.as_ref());
    out.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
    for op in &r.responses {
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => out.push_str(&kv::range_fields(x)),
            Some(response_op::Response::ResponsePut(x)) => out.push_str(&kv::put_fields(x)),
            Some(response_op::Response::ResponseDeleteRange(x)) => out.push_str(&kv::del_fields(x)),
            other => out.push_str(&format!("\"Unknown\" : {:?}\n", format!("{other:?}"))),
        }
    }
    out
}

/// `txn`.
pub async fn txn(ctx: &Ctx, a: TxnArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[
        WriteOut::Simple,
        WriteOut::Json,
        WriteOut::Fields,
        WriteOut::Protobuf,
    ])?;
    let txn = read_txn(&p, &mut std::io::stdin().lock(), a.interactive)?;
    let client = ctx.connect().await?;
    let r = client.txn(txn).await?;
    match p.format {
        WriteOut::Protobuf => {
            crate::output::write_pb(&r);
            Ok(())
        }
        WriteOut::Json => print_json(&txn_json(&r)),
        WriteOut::Fields => {
            print!("{}", txn_fields(&r));
            Ok(())
        }
        _ => {
            write_stdout(&txn_text(&p, &r));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer() -> Printer {
        Printer {
            format: WriteOut::Simple,
            hex: false,
        }
    }

    #[test]
    fn lines_split_like_etcdctl() {
        assert_eq!(
            argify(br#"put key1 "over \"wrote\" key1""#).unwrap(),
            vec![&b"put"[..], b"key1", b"over \"wrote\" key1"]
        );
        assert_eq!(
            argify(b"put a 'b c'").unwrap(),
            vec![&b"put"[..], b"a", b"b c"]
        );
        assert!(argify(b"put a \"b").is_err());
        assert_eq!(
            argify(br#"put "k\xff\000\u00e9" v"#).unwrap(),
            vec![&b"put"[..], b"k\xff\x00\xc3\xa9", b"v"]
        );
    }

    #[test]
    fn compares_parse_and_errors_name_the_line() {
        assert!(parse_compare(br#"mod("key1") > "0""#).is_ok());
        assert!(parse_compare(br#"value("key1") = "1""#).is_ok());
        assert!(parse_compare(br#"ver("k") != "3""#).is_ok());
        assert!(parse_compare(br#"bogus("k") = "3""#).is_err());
        assert!(parse_compare(br#"mod("k") > "x""#).is_err());
        assert!(parse_compare(b"bogus(").is_err());
        let input = "mod(\"key1\") > \"0\"\n\nput k v\nget k --bogus\n\n";
        let err = read_txn(&printer(), &mut input.as_bytes(), false).unwrap_err();
        assert!(err.to_string().starts_with("line 4:"), "{err}");
        assert_eq!(err.exit_code(), 3);
        let input = "\nput k v\ndel k --prefix\n\nget k\n\n";
        assert!(read_txn(&printer(), &mut input.as_bytes(), false).is_ok());
        // Without the failure block's empty line: etcdctl's `EOF`, exit 3.
        let input = "\nput k v\n\nget k\n";
        let err = read_txn(&printer(), &mut input.as_bytes(), false).unwrap_err();
        assert_eq!((err.to_string().as_str(), err.exit_code()), ("EOF", 3));
    }
}
