//! `make-mirror`: copy a prefix to another cluster, then follow its changes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use etcdv3_tokio::api::{
    DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchEvent, WatchOptions,
};
use etcdv3_tokio::{ClientOptions, TlsOptions};
use futures_core::Stream;

use crate::flags::with_scheme;
use crate::{CliError, Ctx};

/// `make-mirror [options] <destination>`.
#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// The destination cluster's endpoint.
    pub destination: String,
    /// Key-value prefix to mirror.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Destination prefix to mirror a prefix to a different prefix in the
    /// destination cluster.
    #[arg(long, default_value = "")]
    pub dest_prefix: String,
    /// Mirror key-values to the root of the destination cluster.
    #[arg(long)]
    pub no_dest_prefix: bool,
    /// Verify certificates of TLS enabled secure servers using this CA bundle.
    #[arg(long)]
    pub dest_cacert: Option<std::path::PathBuf>,
    /// Identify secure client using this TLS certificate file for the
    /// destination cluster.
    #[arg(long)]
    pub dest_cert: Option<std::path::PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long)]
    pub dest_key: Option<std::path::PathBuf>,
    /// Disable transport security for client connections.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", require_equals = true)]
    pub dest_insecure_transport: bool,
    /// Destination username[:password] for authentication (prompt if
    /// password is not supplied).
    // The doc comment is etcdctl's help text, byte for byte: its brackets
    // are not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, default_value = "")]
    pub dest_user: String,
    /// Destination password for authentication (if this option is used,
    /// --dest-user must not include the password).
    #[arg(long, default_value = "")]
    pub dest_password: String,
}

/// The destination's credentials, as etcdctl reads them: `--dest-user
/// name:password`, or `--dest-user name --dest-password pw`, or a
/// `Destination Password: ` prompt.
fn dest_credentials(a: &MirrorArgs) -> Result<Option<(String, String)>, CliError> {
    if a.dest_user.is_empty() {
        return Ok(None);
    }
    if !a.dest_password.is_empty() {
        return Ok(Some((a.dest_user.clone(), a.dest_password.clone())));
    }
    match a.dest_user.split_once(':') {
        Some((name, pw)) => Ok(Some((name.to_string(), pw.to_string()))),
        None => {
            let pw = crate::flags::read_password(Some("Destination Password: "))?;
            Ok(Some((a.dest_user.clone(), pw)))
        }
    }
}

/// The destination key of a source key (etcdctl's `modifyPrefix`).
pub fn dest_key(key: &[u8], prefix: &str, dest_prefix: &str) -> Vec<u8> {
    match key.strip_prefix(prefix.as_bytes()) {
        Some(rest) => [dest_prefix.as_bytes(), rest].concat(),
        None => key.to_vec(),
    }
}

/// `make-mirror`.
pub async fn make_mirror(ctx: &Ctx, a: MirrorArgs) -> Result<(), CliError> {
    if !a.dest_prefix.is_empty() && a.no_dest_prefix {
        return Err(CliError::BadArgs(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one"
                .into(),
        ));
    }
    let dest_prefix = if !a.no_dest_prefix && a.dest_prefix.is_empty() {
        a.prefix.clone()
    } else {
        a.dest_prefix.clone()
    };
    let src = ctx.connect().await?;
    let mut dopts = ClientOptions::default().with_timeout(ctx.global.command_timeout);
    if let Some((name, password)) = dest_credentials(&a)? {
        dopts = dopts.with_user(name, password);
    }
    let mut tls = a
        .dest_cacert
        .as_ref()
        .map(|ca| TlsOptions::default().with_ca_file(ca));
    if let (Some(cert), Some(key)) = (&a.dest_cert, &a.dest_key) {
        tls = Some(tls.unwrap_or_default().with_identity(cert, key));
    }
    let plain = a.dest_insecure_transport && tls.is_none();
    if let Some(tls) = tls {
        dopts = dopts.with_tls(tls);
    }
    let dest_ep = with_scheme(&a.destination, plain);
    let dest = etcdv3_tokio::connect([&dest_ep], dopts).await?;
    let total = Arc::new(AtomicI64::new(0));
    let reporter = {
        let total = total.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                println!("{}", total.load(Ordering::Relaxed));
            }
        })
    };
    let result = async {
        // The base: everything under the prefix at one revision.
        let base = src
            .get(a.prefix.clone(), GetOptions::new().with_prefix())
            .await?;
        let rev = base.header.map(|h| h.revision).unwrap_or_default();
        for kv in &base.kvs {
            dest.put(
                dest_key(&kv.key, &a.prefix, &dest_prefix),
                kv.value.clone(),
                PutOptions::new(),
            )
            .await?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        // Then every change after it, one destination txn per revision.
        let mut watcher = src
            .watch(
                a.prefix.clone(),
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            )
            .await?;
        loop {
            let next = tokio::select! {
                next = std::future::poll_fn(|cx| Stream::poll_next(std::pin::Pin::new(&mut watcher), cx)) => next,
                // etcdctl dies of SIGINT: the shell reports 130.
                _ = tokio::signal::ctrl_c() => return Err(CliError::Interrupted),
            };
            match next {
                None => return Ok(()),
                Some(Err(e)) => return Err(CliError::from(e)),
                Some(Ok(WatchEvent::Compacted { .. })) => {
                    return Err(CliError::Other(
                        "etcdserver: mvcc: required revision has been compacted".into(),
                    ))
                }
                Some(Ok(WatchEvent::Events { events, .. })) => {
                    let mut ops = Vec::new();
                    let mut last_rev = 0;
                    for ev in events {
                        let kv = ev.kv.clone().unwrap_or_default();
                        if last_rev != 0 && kv.mod_revision > last_rev {
                            dest.txn(Txn::new().and_then(std::mem::take(&mut ops))).await?;
                        }
                        last_rev = kv.mod_revision;
                        let key = dest_key(&kv.key, &a.prefix, &dest_prefix);
                        ops.push(if ev.r#type() == EventType::Delete {
                            TxnOp::delete(key, DeleteOptions::new())
                        } else {
                            TxnOp::put(key, kv.value, PutOptions::new())
                        });
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    if !ops.is_empty() {
                        dest.txn(Txn::new().and_then(ops)).await?;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
    .await;
    reporter.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_swapped_once() {
        assert_eq!(dest_key(b"a/x/a/", "a/", "b/"), b"b/x/a/".to_vec());
        assert_eq!(dest_key(b"a/x", "a/", ""), b"x".to_vec());
        assert_eq!(dest_key(b"zz", "a/", "b/"), b"zz".to_vec());
        assert_eq!(dest_key(b"k", "", ""), b"k".to_vec());
    }
}
