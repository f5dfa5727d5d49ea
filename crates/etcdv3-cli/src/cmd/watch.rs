//! `watch`.

use std::ffi::OsString;

use clap::Args;
use etcdv3_tokio::api::{Event, EventType, WatchEvent, WatchOptions};
use futures_core::Stream;
use serde::Serialize;

use super::key_and_end;
use crate::flags::{bytes_os, WriteOut};
use crate::output::{go_quote, is_zero, print_json, write_stdout, HeaderJson, KvJson, Printer};
use crate::{CliError, Ctx};

/// `watch [options] <key or prefix> [range_end]`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The key or prefix, and optionally the end of the range (bytes; more
    /// arguments are ignored, as etcdctl).
    #[arg(num_args = 0..)]
    pub keys: Vec<OsString>,
    /// Watch on a prefix if prefix is set.
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching.
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get the previous key-value pair before the event happens.
    #[arg(long)]
    pub prev_kv: bool,
    /// Get periodic watch progress notification from server.
    #[arg(long)]
    pub progress_notify: bool,
    /// Interactive mode: read `watch <key> [options]` lines from stdin and
    /// run each watch.
    #[arg(short, long)]
    pub interactive: bool,
    /// A command run for every event (after `--`), with `ETCD_WATCH_REVISION`,
    /// `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and `ETCD_WATCH_VALUE` set.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Run the `--` command for one event, as etcdctl does.
async fn run_for_event(command: &[String], revision: i64, ev: &Event) -> Result<(), CliError> {
    let kv = ev.kv.clone().unwrap_or_default();
    let kind = if ev.r#type() == EventType::Delete {
        "DELETE"
    } else {
        "PUT"
    };
    let program = command[0].clone();
    let args = command[1..].to_vec();
    let all = command.to_vec();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(&args)
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", format!("\"{kind}\""))
            .env("ETCD_WATCH_KEY", go_quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
            .status()
    })
    .await
    .map_err(|e| CliError::Other(e.to_string()))?;
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(CliError::Other(format!(
            "command {all:?} error (exit status {})",
            s.code().unwrap_or(-1)
        ))),
        Err(e) => Err(CliError::Other(format!("command {all:?} error ({e})"))),
    }
}

#[derive(Serialize)]
struct EventJson {
    #[serde(rename = "type", skip_serializing_if = "is_zero")]
    kind: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    kv: Option<KvJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_kv: Option<KvJson>,
}

/// clientv3's `WatchResponse` as etcdctl's JSON printer shows it (Go field
/// names, no omitempty on its own fields).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WatchJson {
    header: HeaderJson,
    events: Vec<EventJson>,
    compact_revision: i64,
    canceled: bool,
    created: bool,
}

/// etcdctl's simple watch output for one event: the type, the previous
/// key-value (with `--prev-kv`), then the key-value.
fn event_text(p: &Printer, ev: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(if ev.r#type() == EventType::Delete {
        b"DELETE\n"
    } else {
        b"PUT\n"
    });
    if let Some(prev) = &ev.prev_kv {
        p.kv(&mut out, prev, false);
    }
    p.kv(&mut out, &ev.kv.clone().unwrap_or_default(), false);
    out
}

/// etcdctl's `-w fields` of a watch response: the header, then each
/// event's type, previous key-value and key-value.
fn events_fields(header: &etcdv3_tokio::api::ResponseHeader, events: &[Event]) -> String {
    use crate::output::{fields_header, fields_kv};
    let mut out = fields_header(Some(header));
    for ev in events {
        let kind = if ev.r#type() == EventType::Delete {
            "DELETE"
        } else {
            "PUT"
        };
        out.push_str(&format!("\"Type\" : {kind}\n"));
        if let Some(prev) = &ev.prev_kv {
            out.push_str(&fields_kv("Prev", prev));
        }
        out.push_str(&fields_kv("", &ev.kv.clone().unwrap_or_default()));
    }
    out
}

/// One interactive line: `watch [options] <key> [range_end]`.
#[derive(clap::Parser, Debug)]
#[command(no_binary_name = true)]
struct WatchLine {
    #[command(subcommand)]
    command: WatchLineCommand,
}

#[derive(clap::Subcommand, Debug)]
enum WatchLineCommand {
    Watch(WatchArgs),
}

fn watch_request(a: &WatchArgs) -> Result<(Vec<u8>, WatchOptions), CliError> {
    if a.keys.is_empty() {
        return Err(CliError::BadArgs("bad number of arguments".into()));
    }
    let (key, end) = key_and_end(&a.keys[..a.keys.len().min(2)], "watch")?;
    if a.prefix && end.is_some() {
        return Err(CliError::BadArgs(
            "unexpected range_end with --prefix".into(),
        ));
    }
    let mut o = WatchOptions::new();
    if a.prefix {
        o = o.with_prefix();
    }
    if let Some(end) = end {
        o = o.with_range_end(end);
    }
    if a.rev > 0 {
        o = o.with_start_revision(a.rev);
    }
    if a.prev_kv {
        o = o.with_prev_kv();
    }
    if a.progress_notify {
        o = o.with_progress_notify();
    }
    Ok((key, o))
}

/// `watch`.
pub async fn watch(ctx: &Ctx, a: WatchArgs) -> Result<(), CliError> {
    let p = ctx.printer;
    p.require(&[WriteOut::Simple, WriteOut::Json, WriteOut::Fields])?;
    if a.interactive {
        if !a.keys.is_empty() {
            return Err(CliError::BadArgs(
                "watch in interactive mode takes no key argument".into(),
            ));
        }
        return interactive(ctx).await;
    }
    let req = watch_request(&a)?;
    let client = ctx.connect().await?;
    run_watch(p, client, req, a).await
}

/// `watch -i`: one watch per stdin line, all printing as they go. Unlike
/// etcdctl, the end of stdin does not end the watches (Ctrl-C does).
async fn interactive(ctx: &Ctx) -> Result<(), CliError> {
    use clap::Parser;
    let p = ctx.printer;
    let client = ctx.connect().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().split(b'\n') {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut watches = tokio::task::JoinSet::new();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = rx.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    continue;
                };
                let shown = String::from_utf8_lossy(&line).into_owned();
                let line = shown.trim_end_matches('\r');
                let args = match super::txn::argify(line.as_bytes()) {
                    Ok(args) if args.is_empty() => continue,
                    Ok(args) => args,
                    Err(e) => {
                        eprintln!("Invalid command {line} ({e})");
                        continue;
                    }
                };
                if args[0] != b"watch" {
                    eprintln!("Invalid command {line} (only support watch)");
                    continue;
                }
                let parsed = WatchLine::try_parse_from(args.into_iter().map(bytes_os))
                    .map_err(|e| e.to_string())
                    .and_then(|w| {
                        let WatchLineCommand::Watch(a) = w.command;
                        watch_request(&a).map(|req| (req, a)).map_err(|e| e.to_string())
                    });
                match parsed {
                    Ok((req, a)) => {
                        let client = client.clone();
                        watches.spawn(async move {
                            if let Err(e) = run_watch(p, client, req, a).await {
                                eprintln!("Error: {e}");
                            }
                        });
                    }
                    Err(e) => eprintln!("Invalid command {line} ({})", e.lines().next().unwrap_or_default()),
                }
            }
            // etcdctl dies of SIGINT: the shell reports 130.
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
        }
    }
}

/// Print a watch's events until it ends or Ctrl-C.
async fn run_watch(
    p: Printer,
    client: etcdv3_tokio::Client,
    (key, o): (Vec<u8>, WatchOptions),
    a: WatchArgs,
) -> Result<(), CliError> {
    // The watch stream hands out events with their revision only: the rest
    // of the JSON header (cluster, member, term) comes from one status call.
    let base_header = if p.json() || p.format == WriteOut::Fields {
        client.status().await?.header.unwrap_or_default()
    } else {
        Default::default()
    };
    let mut watcher = client.watch(key, o).await?;
    loop {
        let next = tokio::select! {
            next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut watcher), cx)) => next,
            // etcdctl dies of SIGINT: the shell reports 130.
            _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
        };
        match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(WatchEvent::Events { events, revision })) => {
                if p.json() {
                    let mut header = base_header;
                    header.revision = revision;
                    print_json(&WatchJson {
                        header: HeaderJson::of(Some(&header)),
                        events: events
                            .iter()
                            .map(|ev| EventJson {
                                kind: ev.r#type,
                                kv: ev.kv.as_ref().map(KvJson::of),
                                prev_kv: ev.prev_kv.as_ref().map(KvJson::of),
                            })
                            .collect(),
                        compact_revision: 0,
                        canceled: false,
                        created: false,
                    })?;
                } else if p.format == WriteOut::Fields {
                    let mut header = base_header;
                    header.revision = revision;
                    write_stdout(events_fields(&header, &events).as_bytes());
                } else {
                    let text: Vec<u8> = events.iter().flat_map(|ev| event_text(&p, ev)).collect();
                    write_stdout(&text);
                }
                if !a.command.is_empty() {
                    for ev in &events {
                        run_for_event(&a.command, revision, ev).await?;
                    }
                }
            }
            Some(Ok(WatchEvent::Progress { revision })) if a.progress_notify => {
                if !p.json() {
                    write_stdout(format!("progress notify: {revision}\n").as_bytes());
                }
            }
            // etcdctl: the reason on stderr, the cancelled response in
            // JSON, then `watch is canceled by the server` with exit 5.
            Some(Ok(WatchEvent::Compacted { compact_revision })) => {
                eprintln!(
                    "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
                );
                if p.json() {
                    let mut header = base_header;
                    header.revision = 0;
                    print_json(&WatchJson {
                        header: HeaderJson::of(Some(&header)),
                        events: Vec::new(),
                        compact_revision,
                        canceled: true,
                        created: false,
                    })?;
                }
                if p.format == WriteOut::Fields {
                    let mut header = base_header;
                    header.revision = 0;
                    write_stdout(events_fields(&header, &[]).as_bytes());
                }
                return Err(CliError::WatchCanceled);
            }
            Some(Ok(WatchEvent::Cancelled { reason })) => {
                eprintln!("watch was canceled ({reason})");
                return Err(CliError::WatchCanceled);
            }
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdv3_tokio::api::KeyValue;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }
    }

    #[test]
    fn prev_kv_is_printed_before_the_event_kv() {
        let p = Printer {
            format: WriteOut::Simple,
            hex: false,
        };
        let ev = Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv("w", "")),
            prev_kv: Some(kv("w", "2")),
        };
        assert_eq!(event_text(&p, &ev), b"DELETE\nw\n2\nw\n\n");
        let ev = Event {
            r#type: EventType::Put as i32,
            kv: Some(kv("w", "1")),
            prev_kv: None,
        };
        assert_eq!(event_text(&p, &ev), b"PUT\nw\n1\n");
    }
}
