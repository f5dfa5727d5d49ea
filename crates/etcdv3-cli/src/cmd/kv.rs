//! `get`, `put`, `del` and `compaction`.

use std::ffi::OsString;
use std::io::Read;

use clap::Args;
use etcdv3_tokio::api::{
    CompactOptions, DeleteOptions, DeleteRangeResponse, GetOptions, PutOptions, PutResponse,
    RangeResponse, SortOrder, SortTarget,
};
use serde::Serialize;

use super::key_and_end;
use crate::flags::{lease_id_arg, os_bytes, WriteOut};
use crate::output::{
    fields_header, fields_kv, is_zero, print_json, write_pb, write_stdout, HeaderJson, KvJson,
    Printer,
};
use crate::{CliError, Ctx};

/// `get [options] <key> [range_end]`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The key, and optionally the end of the range [key, range_end)
    /// (bytes, as given).
    #[arg(num_args = 0..)]
    pub keys: Vec<OsString>,
    /// Get keys with matching prefix.
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key.
    #[arg(long)]
    pub from_key: bool,
    /// Maximum number of results.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Specify the kv revision.
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys.
    #[arg(long)]
    pub keys_only: bool,
    /// Get only the count (with `-w fields`, as etcdctl).
    #[arg(long)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format.
    #[arg(long)]
    pub print_value_only: bool,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION.
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default).
    #[arg(long, default_value = "")]
    pub order: String,
    /// Linearizable(l) or Serializable(s).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Only keys modified at or after this revision (not in etcdctl 3.5).
    #[arg(long, default_value_t = 0)]
    pub min_mod_rev: i64,
    /// Only keys modified at or before this revision.
    #[arg(long, default_value_t = 0)]
    pub max_mod_rev: i64,
    /// Only keys created at or after this revision.
    #[arg(long, default_value_t = 0)]
    pub min_create_rev: i64,
    /// Only keys created at or before this revision.
    #[arg(long, default_value_t = 0)]
    pub max_create_rev: i64,
    /// Read the range in pages of this many keys, all at one revision, and
    /// print each page as it arrives (simple output; not in etcdctl). 0: one
    /// request, as etcdctl.
    #[arg(long, default_value_t = 0)]
    pub page_size: u32,
}

/// `put [options] <key> <value>` (value from stdin when omitted).
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The key and the value (bytes, as given; more arguments are ignored,
    /// as etcdctl does).
    #[arg(num_args = 0.., allow_hyphen_values = false)]
    pub args: Vec<OsString>,
    /// Lease ID (in hexadecimal) to attach to the key.
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// Return the previous key-value pair before modification.
    #[arg(long)]
    pub prev_kv: bool,
    /// Updates the key using its current value.
    #[arg(long)]
    pub ignore_value: bool,
    /// Updates the key using its current lease.
    #[arg(long)]
    pub ignore_lease: bool,
}

/// `del [options] <key> [range_end]`.
#[derive(Args, Debug)]
pub struct DelArgs {
    /// The key, and optionally the end of the range [key, range_end).
    #[arg(num_args = 0..)]
    pub keys: Vec<OsString>,
    /// Delete keys with matching prefix.
    #[arg(long)]
    pub prefix: bool,
    /// Delete keys that are greater than or equal to the given key.
    #[arg(long)]
    pub from_key: bool,
    /// Return deleted key-value pairs.
    #[arg(long)]
    pub prev_kv: bool,
}

/// `compaction [options] <revision>`.
#[derive(Args, Debug)]
pub struct CompactionArgs {
    /// Revision to compact up to.
    #[arg(num_args = 0.., allow_negative_numbers = true)]
    pub revision: Vec<String>,
    /// Wait for the compaction to be physically applied.
    #[arg(long)]
    pub physical: bool,
}

/// etcdctl's JSON of the response.
#[derive(Serialize)]
pub struct RangeJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kvs: Vec<KvJson>,
    #[serde(skip_serializing_if = "is_zero")]
    more: bool,
    #[serde(skip_serializing_if = "is_zero")]
    count: i64,
}

fn sort_options(sort_by: &str, order: &str) -> Result<Option<(SortTarget, SortOrder)>, CliError> {
    let order = match order.to_ascii_uppercase().as_str() {
        "" => None,
        "ASCEND" => Some(SortOrder::Ascend),
        "DESCEND" => Some(SortOrder::Descend),
        _ => return Err(CliError::Unsupported(format!("bad sort order {order}"))),
    };
    let target = match sort_by.to_ascii_uppercase().as_str() {
        "" => None,
        "CREATE" => Some(SortTarget::Create),
        "KEY" => Some(SortTarget::Key),
        "MODIFY" => Some(SortTarget::Mod),
        "VALUE" => Some(SortTarget::Value),
        "VERSION" => Some(SortTarget::Version),
        _ => return Err(CliError::Unsupported(format!("bad sort target {sort_by}"))),
    };
    Ok(match (target, order) {
        (None, None) => None,
        (t, o) => Some((t.unwrap_or(SortTarget::Key), o.unwrap_or(SortOrder::Ascend))),
    })
}

fn get_options(a: &GetArgs, range_end: Option<Vec<u8>>) -> Result<GetOptions, CliError> {
    let mut o = GetOptions::new().with_limit(a.limit).with_revision(a.rev);
    match a.consistency.as_str() {
        "l" => {}
        "s" => o = o.with_serializable(),
        c => {
            return Err(CliError::Unsupported(format!(
                "unknown consistency flag {c:?}"
            )))
        }
    }
    if a.prefix && a.from_key {
        return Err(CliError::BadArgs(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one".into(),
        ));
    }
    if (a.prefix || a.from_key) && range_end.is_some() {
        return Err(CliError::BadArgs(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
                .into(),
        ));
    }
    if a.prefix {
        o = o.with_prefix();
    }
    if a.from_key {
        o = o.with_from_key();
    }
    if let Some(end) = range_end {
        o = o.with_range_end(end);
    }
    if a.keys_only {
        o = o.with_keys_only();
    }
    if a.count_only {
        o = o.with_count_only();
    }
    if a.min_mod_rev > 0 {
        o = o.with_min_mod_revision(a.min_mod_rev);
    }
    if a.max_mod_rev > 0 {
        o = o.with_max_mod_revision(a.max_mod_rev);
    }
    if a.min_create_rev > 0 {
        o = o.with_min_create_revision(a.min_create_rev);
    }
    if a.max_create_rev > 0 {
        o = o.with_max_create_revision(a.max_create_rev);
    }
    if let Some((target, order)) = sort_options(&a.sort_by, &a.order)? {
        o = o.with_sort(target, order);
    }
    Ok(o)
}

/// Check a get's flags against the output format and build the request.
pub fn get_request(p: &Printer, a: &GetArgs) -> Result<(Vec<u8>, GetOptions), CliError> {
    // etcdctl ignores a third argument and more.
    let (key, end) = key_and_end(&a.keys[..a.keys.len().min(2)], "get")?;
    if a.count_only && p.format != WriteOut::Fields {
        return Err(CliError::BadArgs(
            "--count-only is only for `--write-out=fields`".into(),
        ));
    }
    if a.print_value_only && p.format != WriteOut::Simple {
        return Err(CliError::BadArgs(
            "--print-value-only is only for `--write-out=simple`".into(),
        ));
    }
    Ok((key, get_options(a, end)?))
}

/// etcdctl's JSON of a range response.
pub fn range_json(resp: &RangeResponse) -> RangeJson {
    RangeJson {
        header: HeaderJson::of(resp.header.as_ref()),
        kvs: resp.kvs.iter().map(KvJson::of).collect(),
        more: resp.more,
        count: resp.count,
    }
}

/// etcdctl's simple text of a range response (raw bytes).
pub fn range_text(p: &Printer, resp: &RangeResponse, value_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for kv in &resp.kvs {
        p.kv(&mut out, kv, value_only);
    }
    out
}

/// `get`.
pub async fn get(ctx: &Ctx, a: GetArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[
        WriteOut::Simple,
        WriteOut::Json,
        WriteOut::Fields,
        WriteOut::Protobuf,
    ])?;
    if a.page_size > 0 {
        return get_paged(ctx, a).await;
    }
    let (key, opts) = get_request(&p, &a)?;
    let client = ctx.connect().await?;
    let resp = client.get(key, opts).await?;
    match p.format {
        WriteOut::Protobuf => {
            write_pb(&resp);
            Ok(())
        }
        WriteOut::Json => print_json(&range_json(&resp)),
        WriteOut::Fields => {
            print!("{}", range_fields(&resp));
            Ok(())
        }
        _ => {
            write_stdout(&range_text(&p, &resp, a.print_value_only));
            Ok(())
        }
    }
}

/// `get --page-size N`: the range page by page at one revision
/// ([`etcdv3_client::Client::get_paged`]), printed as it arrives.
async fn get_paged(ctx: &Ctx, a: GetArgs) -> Result<(), CliError> {
    use etcdv3_client::api::PagedOptions;
    use futures_core::Stream;
    let p = ctx.printer;
    p.require(&[WriteOut::Simple])?;
    if a.limit != 0 || !a.sort_by.is_empty() || !a.order.is_empty() || a.count_only {
        return Err(CliError::BadArgs(
            "--page-size reads the whole range in key order: no --limit, --sort-by, --order or --count-only".into(),
        ));
    }
    // Checks the key arguments and flags as a plain get would.
    get_request(&p, &a)?;
    let (key, end) = key_and_end(&a.keys[..a.keys.len().min(2)], "get")?;
    let mut o = PagedOptions::new()
        .with_page_count(a.page_size)
        .with_revision(a.rev);
    if a.prefix {
        o = o.with_prefix();
    } else if a.from_key {
        o = o.with_from_key();
    } else if let Some(end) = end {
        o = o.with_range_end(end);
    }
    if a.keys_only {
        o = o.with_keys_only();
    }
    let client = ctx.connect().await?;
    let mut pages = client.get_paged(key, o);
    while let Some(page) =
        std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut pages), cx)).await
    {
        let page = page.map_err(etcdv3_client::Error::from)?;
        let mut out = Vec::new();
        for kv in &page.kvs {
            p.kv(&mut out, kv, a.print_value_only);
        }
        write_stdout(&out);
    }
    Ok(())
}

/// etcdctl's `-w fields` for a range response: the header, the key-values,
/// then `More` and `Count`.
pub fn range_fields(resp: &RangeResponse) -> String {
    let mut out = fields_header(resp.header.as_ref());
    for kv in &resp.kvs {
        out.push_str(&fields_kv("", kv));
    }
    out.push_str(&format!(
        "\"More\" : {}\n\"Count\" : {}\n",
        resp.more, resp.count
    ));
    out
}

/// etcdctl's JSON of the response.
#[derive(Serialize)]
pub struct PutJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_kv: Option<KvJson>,
}

/// Build a put from its arguments (the value from stdin when omitted and
/// `stdin` is true).
pub fn put_request(a: &PutArgs, stdin: bool) -> Result<(Vec<u8>, Vec<u8>, PutOptions), CliError> {
    let needs = || {
        CliError::BadArgs("put command needs 1 argument and input from stdin or 2 arguments".into())
    };
    // etcdctl's getPutOp: arguments after the value are ignored.
    let key = os_bytes(a.args.first().ok_or_else(needs)?);
    let value = match a.args.get(1) {
        Some(_) if a.ignore_value => {
            return Err(CliError::BadArgs(
                "put command needs only 1 argument when --ignore-value is set".into(),
            ))
        }
        Some(value) => os_bytes(value),
        None if a.ignore_value => Vec::new(),
        None if stdin => {
            // Bytes as they come; an empty stdin is no value (etcdctl).
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| CliError::BadArgs(format!("cannot read the value from stdin: {e}")))?;
            if v.is_empty() {
                return Err(needs());
            }
            v
        }
        None => return Err(needs()),
    };
    let lease = lease_id_arg(&a.lease)?;
    let mut o = PutOptions::new();
    if lease != 0 {
        o = o.with_lease(lease);
    }
    if a.prev_kv {
        o = o.with_prev_kv();
    }
    if a.ignore_value {
        o = o.with_ignore_value();
    }
    if a.ignore_lease {
        o = o.with_ignore_lease();
    }
    Ok((key, value, o))
}

/// etcdctl's JSON of a put response.
pub fn put_json(resp: &PutResponse) -> PutJson {
    PutJson {
        header: HeaderJson::of(resp.header.as_ref()),
        prev_kv: resp.prev_kv.as_ref().map(KvJson::of),
    }
}

/// etcdctl's simple text of a put response.
pub fn put_text(p: &Printer, resp: &PutResponse) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(prev) = &resp.prev_kv {
        p.kv(&mut out, prev, false);
    }
    out
}

/// `put`.
pub async fn put(ctx: &Ctx, a: PutArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[
        WriteOut::Simple,
        WriteOut::Json,
        WriteOut::Fields,
        WriteOut::Protobuf,
    ])?;
    let (key, value, o) = put_request(&a, true)?;
    let client = ctx.connect().await?;
    let resp = client.put(key, value, o).await?;
    if p.format == WriteOut::Protobuf {
        write_pb(&resp);
        return Ok(());
    }
    if p.json() {
        return print_json(&put_json(&resp));
    }
    if p.format == WriteOut::Fields {
        print!("{}", put_fields(&resp));
        return Ok(());
    }
    write_stdout(&put_text(&p, &resp));
    Ok(())
}

/// etcdctl's JSON of the response.
#[derive(Serialize)]
pub struct DelJson {
    header: HeaderJson,
    #[serde(skip_serializing_if = "is_zero")]
    deleted: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prev_kvs: Vec<KvJson>,
}

/// Build a delete from its arguments.
pub fn del_request(a: &DelArgs) -> Result<(Vec<u8>, DeleteOptions), CliError> {
    let (key, end) = key_and_end(&a.keys, "del")?;
    if a.prefix && a.from_key {
        return Err(CliError::BadArgs(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one".into(),
        ));
    }
    if (a.prefix || a.from_key) && end.is_some() {
        return Err(CliError::BadArgs(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
                .into(),
        ));
    }
    let mut o = DeleteOptions::new();
    if a.prefix {
        o = o.with_prefix();
    }
    if a.from_key {
        o = o.with_from_key();
    }
    if let Some(end) = end {
        o = o.with_range_end(end);
    }
    if a.prev_kv {
        o = o.with_prev_kv();
    }
    Ok((key, o))
}

/// etcdctl's JSON of a delete response.
pub fn del_json(resp: &DeleteRangeResponse) -> DelJson {
    DelJson {
        header: HeaderJson::of(resp.header.as_ref()),
        deleted: resp.deleted,
        prev_kvs: resp.prev_kvs.iter().map(KvJson::of).collect(),
    }
}

/// etcdctl's simple text of a delete response.
pub fn del_text(p: &Printer, resp: &DeleteRangeResponse) -> Vec<u8> {
    let mut out = format!("{}\n", resp.deleted).into_bytes();
    for kv in &resp.prev_kvs {
        p.kv(&mut out, kv, false);
    }
    out
}

/// `del`.
pub async fn del(ctx: &Ctx, a: DelArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[
        WriteOut::Simple,
        WriteOut::Json,
        WriteOut::Fields,
        WriteOut::Protobuf,
    ])?;
    let (key, o) = del_request(&a)?;
    let client = ctx.connect().await?;
    let resp = client.delete(key, o).await?;
    if p.format == WriteOut::Protobuf {
        write_pb(&resp);
        return Ok(());
    }
    if p.json() {
        return print_json(&del_json(&resp));
    }
    if p.format == WriteOut::Fields {
        print!("{}", del_fields(&resp));
        return Ok(());
    }
    write_stdout(&del_text(&p, &resp));
    Ok(())
}

/// etcdctl's `-w fields` of a put response.
pub fn put_fields(resp: &PutResponse) -> String {
    let mut out = fields_header(resp.header.as_ref());
    if let Some(prev) = &resp.prev_kv {
        out.push_str(&fields_kv("Prev", prev));
    }
    out
}

/// etcdctl's `-w fields` of a delete response.
pub fn del_fields(resp: &DeleteRangeResponse) -> String {
    let mut out = fields_header(resp.header.as_ref());
    out.push_str(&format!("\"Deleted\" : {}\n", resp.deleted));
    for kv in &resp.prev_kvs {
        out.push_str(&fields_kv("Prev", kv));
    }
    out
}

/// `compaction`.
pub async fn compaction(ctx: &Ctx, a: CompactionArgs) -> Result<(), CliError> {
    // etcdctl prints the same line whatever `-w` says.
    let [rev] = a.revision.as_slice() else {
        return Err(CliError::BadArgs(
            "compaction command needs 1 argument".into(),
        ));
    };
    // etcdctl: a revision that is no integer is a plain error (exit 1).
    let revision = crate::flags::go_parse_int(rev).map_err(CliError::Other)?;
    let mut o = CompactOptions::new();
    if a.physical {
        o = o.with_physical();
    }
    let client = ctx.connect().await?;
    client.compact(revision, o).await?;
    println!("compacted revision {revision}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_defaults_like_etcdctl() {
        assert_eq!(sort_options("", "").unwrap(), None);
        assert_eq!(
            sort_options("modify", "").unwrap(),
            Some((SortTarget::Mod, SortOrder::Ascend))
        );
        assert_eq!(
            sort_options("", "DESCEND").unwrap(),
            Some((SortTarget::Key, SortOrder::Descend))
        );
        assert!(matches!(
            sort_options("x", ""),
            Err(CliError::Unsupported(_))
        ));
    }
}
