//! `txn`: compares, success and failure requests read from stdin exactly as
//! etcdctl reads them (one per line, each block ended by an empty line).

use std::io::BufRead;

use clap::{Args, Parser, Subcommand};
use etcdv3_tokio::api::{response_op, Compare, CompareOp, Txn, TxnOp, TxnResponse};
use serde::Serialize;

use super::kv::{self, DelArgs, GetArgs, PutArgs};
use crate::flags::WriteOut;
use crate::output::{is_zero, print_json, HeaderJson, Printer};
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
/// `"..."` is a Go string literal, `'...'` is taken literally.
pub fn argify(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut arg = String::new();
        match c {
            '"' => {
                chars.next();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => arg.push('\n'),
                            Some((_, 't')) => arg.push('\t'),
                            Some((_, 'r')) => arg.push('\r'),
                            Some((_, '0')) => arg.push('\0'),
                            Some((_, other)) => arg.push(other),
                            None => break,
                        },
                        c => arg.push(c),
                    }
                }
                if !closed {
                    return Err(format!("unterminated string at column {}", start + 1));
                }
            }
            '\'' => {
                chars.next();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
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
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    arg.push(c);
                    chars.next();
                }
            }
        }
        args.push(arg);
    }
    Ok(args)
}

/// Parse etcdctl's comparison syntax: `target("key") op "value"`.
pub fn parse_compare(line: &str) -> Result<Compare, String> {
    let malformed = |why: &str| format!("malformed comparison: {line} ({why})");
    let (target, rest) = line
        .split_once('(')
        .ok_or_else(|| malformed("expected target(\"key\")"))?;
    let rest = rest.trim_start();
    let (key, after) = if let Some(stripped) = rest.strip_prefix('"') {
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
        .trim_start()
        .strip_prefix(')')
        .ok_or_else(|| malformed("expected ) after the key"))?;
    let parts = argify(after).map_err(|e| malformed(&e))?;
    let [op, value] = parts.as_slice() else {
        return Err(malformed("expected an operator and a quoted value"));
    };
    let op = match op.as_str() {
        "=" | "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        o => return Err(malformed(&format!("unknown operator {o}"))),
    };
    let int = || {
        value
            .parse::<i64>()
            .map_err(|_| malformed(&format!("{value:?} is not an integer")))
    };
    Ok(match target.trim() {
        "ver" | "version" => Compare::version(key, op, int()?),
        "c" | "create" => Compare::create_revision(key, op, int()?),
        "m" | "mod" => Compare::mod_revision(key, op, int()?),
        "val" | "value" => Compare::value(key, op, value.as_str()),
        "lease" => Compare::lease(key, op, int()?),
        t => return Err(malformed(&format!("unknown target {t}"))),
    })
}

fn find_closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// Parse one request line (`put k v`, `get k --prefix`, `del k`).
pub fn parse_op(p: &Printer, line: &str) -> Result<TxnOp, String> {
    let args = argify(line)?;
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

/// Read one block of lines up to an empty line (or the end of input),
/// counting lines for error messages.
fn read_block(
    input: &mut impl BufRead,
    line_no: &mut usize,
) -> Result<Vec<(usize, String)>, CliError> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CliError::InvalidInput(format!("cannot read the txn: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        *line_no += 1;
        let line = line.trim();
        if line.is_empty() {
            return Ok(out);
        }
        out.push((*line_no, line.to_string()));
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
    let mut compares = Vec::new();
    for (n, line) in read_block(input, &mut line_no)? {
        compares.push(parse_compare(&line).map_err(|e| at(n, e))?);
    }
    let mut blocks = Vec::new();
    for title in [
        "success requests (get, put, del):",
        "failure requests (get, put, del):",
    ] {
        if prompt {
            println!("\n{title}");
        }
        let mut ops = Vec::new();
        for (n, line) in read_block(input, &mut line_no)? {
            ops.push(parse_op(p, &line).map_err(|e| at(n, format!("{e} in {line:?}")))?);
        }
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
fn txn_text(p: &Printer, r: &TxnResponse) -> String {
    let mut out = String::from(if r.succeeded {
        "SUCCESS\n"
    } else {
        "FAILURE\n"
    });
    for op in &r.responses {
        out.push('\n');
        match &op.response {
            Some(response_op::Response::ResponseRange(x)) => {
                out.push_str(&kv::range_text(p, x, false))
            }
            Some(response_op::Response::ResponsePut(x)) => out.push_str(&kv::put_text(p, x)),
            Some(response_op::Response::ResponseDeleteRange(x)) => {
                out.push_str(&kv::del_text(p, x))
            }
            other => out.push_str(&format!("unexpected response {other:?}\n")),
        }
    }
    out
}

/// `txn`.
pub async fn txn(ctx: &Ctx, a: TxnArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[WriteOut::Simple, WriteOut::Json])?;
    let txn = read_txn(&p, &mut std::io::stdin().lock(), a.interactive)?;
    let client = ctx.connect().await?;
    let r = client.txn(txn).await?;
    if p.json() {
        return print_json(&txn_json(&r));
    }
    print!("{}", txn_text(&p, &r));
    Ok(())
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
            argify(r#"put key1 "over \"wrote\" key1""#).unwrap(),
            vec!["put", "key1", "over \"wrote\" key1"]
        );
        assert_eq!(argify("put a 'b c'").unwrap(), vec!["put", "a", "b c"]);
        assert!(argify("put a \"b").is_err());
    }

    #[test]
    fn compares_parse_and_errors_name_the_line() {
        assert!(parse_compare(r#"mod("key1") > "0""#).is_ok());
        assert!(parse_compare(r#"value("key1") = "1""#).is_ok());
        assert!(parse_compare(r#"ver("k") != "3""#).is_ok());
        assert!(parse_compare(r#"bogus("k") = "3""#).is_err());
        assert!(parse_compare(r#"mod("k") > "x""#).is_err());
        assert!(parse_compare("bogus(").is_err());
        let input = "mod(\"key1\") > \"0\"\n\nput k v\nget k --bogus\n\n";
        let err = read_txn(&printer(), &mut input.as_bytes(), false).unwrap_err();
        assert!(err.to_string().starts_with("line 4:"), "{err}");
        assert_eq!(err.exit_code(), 3);
        let input = "\nput k v\ndel k --prefix\n\nget k\n\n";
        assert!(read_txn(&printer(), &mut input.as_bytes(), false).is_ok());
    }
}
