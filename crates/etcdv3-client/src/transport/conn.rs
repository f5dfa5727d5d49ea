//! One task per connection: connect, handshake, verify with a PING, then
//! drive the h2 connection and its pings until it ends or the core closes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use etcdv3_core::endpoints::endpoint::Endpoint;
use etcdv3_core::machine::{Cause, ConnId};

use super::Shared;
use crate::runtime::BoxIo;

/// Signals from the core (via [`Shared::drive`]) to a connection task.
#[derive(Default)]
pub(crate) struct ConnCtl {
    inner: Mutex<CtlInner>,
}

#[derive(Default)]
struct CtlInner {
    close: bool,
    ping: bool,
    waker: Option<Waker>,
}

impl ConnCtl {
    fn lock(&self) -> std::sync::MutexGuard<'_, CtlInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the task to drop the connection.
    pub(crate) fn close(&self) {
        let w = {
            let mut g = self.lock();
            g.close = true;
            g.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Ask the task to send a PING.
    pub(crate) fn ping(&self) {
        let w = {
            let mut g = self.lock();
            g.ping = true;
            g.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// (close requested, ping requested); registers the waker.
    fn poll(&self, cx: &mut Context<'_>) -> (bool, bool) {
        let mut g = self.lock();
        let r = (g.close, std::mem::take(&mut g.ping));
        if !g.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            g.waker = Some(cx.waker().clone());
        }
        r
    }
}

type H2Conn = h2::client::Connection<BoxIo, Bytes>;

/// Why a connection could not be set up; `permanent` when retrying will not
/// help (a TLS failure such as an untrusted certificate).
struct Failed {
    message: String,
    permanent: bool,
    /// rustls' error behind a permanent TLS failure, kept for the calls'
    /// `Error::Tls::source`.
    #[cfg(feature = "tls")]
    tls: Option<crate::error::TlsCause>,
    /// The error behind `message` (the `std::io::Error` of a refused
    /// connect, h2's error of a failed handshake), for the `source()` of
    /// the call errors that name it.
    cause: Option<Cause>,
}

impl Failed {
    fn new(message: String, permanent: bool) -> Failed {
        Failed {
            message,
            permanent,
            #[cfg(feature = "tls")]
            tls: None,
            cause: None,
        }
    }

    fn because(self, cause: Cause) -> Failed {
        Failed {
            cause: Some(cause),
            ..self
        }
    }
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Failed::new(message, false)
    }
}

#[cfg(feature = "tls")]
impl From<super::tls::ConnectFailure> for Failed {
    fn from(f: super::tls::ConnectFailure) -> Self {
        Failed {
            message: f.message,
            permanent: f.permanent,
            tls: f.source,
            cause: f.cause,
        }
    }
}

/// A failure of the HTTP/2 handshake: on a TLS connection, the server may
/// have refused the client's certificate only now (TLS 1.3 checks it after
/// the client's side of the handshake is done); the TLS stream recorded it
/// in `rejected`, since h2 keeps only the text of IO errors.
fn h2_failure(target: &Endpoint, message: String, rejected: &Option<Rejection>) -> Failed {
    match rejected.as_ref().and_then(|r| r.get()) {
        Some(tls) => Failed::new(format!("{target}: TLS: {tls}"), true),
        None => Failed::new(message, false),
    }
}

#[cfg(feature = "tls")]
use super::tls::Rejection;

/// Without TLS there is nothing to record.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
struct Rejection;

#[cfg(not(feature = "tls"))]
impl Rejection {
    fn get(&self) -> Option<String> {
        None
    }
}

type Established = (h2::client::SendRequest<Bytes>, H2Conn, h2::PingPong);

/// A transport connection to `target` (TCP or unix socket), before TLS.
async fn open(shared: &Arc<Shared>, target: &Endpoint) -> Result<BoxIo, Failed> {
    let connecting = match target.unix_path() {
        Some(path) => shared.runtime.connect_unix(path),
        None => shared.runtime.connect(target.host(), target.port()),
    };
    connecting
        .await
        .map_err(|e| Failed::from(format!("connect to {target}: {e}")).because(Cause::new(e)))
}

async fn establish(shared: &Arc<Shared>, target: &Endpoint) -> Result<Established, Failed> {
    let io = open(shared, target).await?;
    let key = target.to_string();
    match set_up(shared, target, io).await {
        Err(failed) if !failed.permanent => {
            // One check per endpoint until it connects again: during an
            // outage the check's own connection must not double the
            // attempts the core spaces out.
            if lock_checked(shared).contains(&key) {
                return Err(failed);
            }
            match scheme_mismatch(shared, target).await {
                Some(mismatch) => Err(mismatch),
                None => {
                    lock_checked(shared).insert(key);
                    Err(failed)
                }
            }
        }
        Ok(established) => {
            lock_checked(shared).remove(&key);
            Ok(established)
        }
        other => other,
    }
}

fn lock_checked(shared: &Shared) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    shared
        .scheme_checked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// After a connection was accepted but TLS or HTTP/2 failed on it: whether
/// the member speaks the other scheme (a plaintext member behind an
/// `https://` endpoint answers an HTTP/2 handshake; a TLS member behind an
/// `http://` one answers a TLS handshake), which no retry will fix. A
/// member that merely closed (restarting, a proxy without a backend)
/// answers neither, and the failure stays a plain connect failure.
async fn scheme_mismatch(shared: &Arc<Shared>, target: &Endpoint) -> Option<Failed> {
    let io = open(shared, target).await.ok()?;
    let (use_scheme, speaks) = if target.is_tls() {
        drop(set_up_h2(shared, target, io, None).await.ok()?);
        (
            if target.unix_path().is_some() {
                "unix://"
            } else {
                "http://"
            },
            "plaintext HTTP/2, not TLS",
        )
    } else if speaks_tls(io).await {
        (
            if target.unix_path().is_some() {
                "unixs://"
            } else {
                "https://"
            },
            "TLS",
        )
    } else {
        return None;
    };
    Some(Failed::new(
        format!(
            "{}the member speaks {speaks}: write the endpoint as {use_scheme}",
            crate::error::SCHEME_MISMATCH
        ),
        true,
    ))
}

#[cfg(feature = "tls")]
use super::tls::speaks_tls;

/// Without TLS the client cannot tell a TLS member.
#[cfg(not(feature = "tls"))]
async fn speaks_tls(_io: BoxIo) -> bool {
    false
}

/// TLS (for a TLS endpoint), the HTTP/2 handshake and a first PING on `io`.
async fn set_up(shared: &Arc<Shared>, target: &Endpoint, io: BoxIo) -> Result<Established, Failed> {
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut rejected: Option<Rejection> = None;
    let io: BoxIo = if target.is_tls() {
        #[cfg(feature = "tls")]
        {
            match &shared.tls {
                Some(tls) => {
                    let (io, seen) = tls.connect(target.host(), io).await?;
                    rejected = Some(seen);
                    io
                }
                None => return Err(format!("{target}: https endpoint without TLS options").into()),
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            return Err(format!("{target}: https needs the `tls` feature").into());
        }
    } else {
        io
    };
    set_up_h2(shared, target, io, rejected).await
}

/// The HTTP/2 handshake and a first PING on `io`.
async fn set_up_h2(
    shared: &Arc<Shared>,
    target: &Endpoint,
    io: BoxIo,
    rejected: Option<Rejection>,
) -> Result<Established, Failed> {
    let opts = &shared.options;
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(opts.stream_window)
        .initial_connection_window_size(opts.connection_window)
        .enable_push(false)
        .max_concurrent_reset_streams(1024);
    #[cfg(feature = "test-util")]
    if let Some(id) = opts.first_stream_id.filter(|id| id % 2 == 1) {
        builder.initial_stream_id(id);
    }
    let io: BoxIo = Box::new(super::Coalescing(io));
    let (send, mut conn) = builder.handshake::<BoxIo, Bytes>(io).await.map_err(|e| {
        h2_failure(
            target,
            format!("HTTP/2 handshake with {target}: {e}"),
            &rejected,
        )
        .because(super::h2_cause(e))
    })?;
    let mut pp = conn
        .ping_pong()
        .ok_or_else(|| format!("{target}: ping unavailable"))?;
    // A first PING proves the peer speaks HTTP/2 before any call is sent
    // (a non-HTTP/2 server never answers it). etcd tolerates it: it is the
    // connection's first.
    pp.send_ping(h2::Ping::opaque())
        .map_err(|e| format!("{target}: {e}"))?;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut conn).poll(cx) {
            return Poll::Ready(Err(match r {
                Ok(()) => format!("{target}: connection closed during handshake").into(),
                Err(e) => h2_failure(target, format!("{target}: connection failed before HTTP/2 was confirmed (not an HTTP/2 server, or TLS rejected): {e}"), &rejected).because(super::h2_cause(e)),
            }));
        }
        match pp.poll_pong(cx) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(h2_failure(target, format!("{target}: {e}"), &rejected).because(super::h2_cause(e)))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await?;
    Ok((send, conn, pp))
}

/// The connection task.
pub(crate) async fn run(shared: Arc<Shared>, conn: ConnId, target: Endpoint, ctl: Arc<ConnCtl>) {
    // Connect, unless the core gives up first (its connect timeout).
    let mut connecting = Box::pin(establish(&shared, &target));
    let established = std::future::poll_fn(|cx| {
        let (close, _) = ctl.poll(cx);
        if close {
            return Poll::Ready(None);
        }
        connecting.as_mut().poll(cx).map(Some)
    })
    .await;
    drop(connecting);
    let (send, mut h2conn, mut pp) = match established {
        None => return,
        Some(Err(e)) => {
            shared.with_state(|st, now| {
                st.conn_gone(conn);
                if let Some(cause) = e.cause {
                    st.conn_causes
                        .insert(target.to_string(), (e.message.clone(), cause));
                }
                if e.permanent {
                    #[cfg(feature = "tls")]
                    if let Some(tls) = &e.tls {
                        st.tls_causes.insert(target.to_string(), tls.clone());
                    }
                    st.core.handle_connect_rejected(now, conn, &e.message);
                } else {
                    st.core.handle_connect_failed(now, conn, &e.message);
                }
            });
            return;
        }
        Some(Ok(parts)) => parts,
    };
    let registered = shared.with_state(|st, now| {
        if st.conn_ready(conn, send) {
            st.core.handle_connected(now, conn);
            true
        } else {
            false
        }
    });
    if !registered {
        return;
    }
    tracing::debug!(endpoint = %target, conn = conn.0, "connected");
    let mut pinging = false;
    let ended = std::future::poll_fn(|cx| {
        let (close, ping) = ctl.poll(cx);
        if close {
            return Poll::Ready(None);
        }
        if ping && !pinging {
            match pp.send_ping(h2::Ping::opaque()) {
                Ok(()) => pinging = true,
                Err(e) => {
                    let reason = format!("ping failed: {e}");
                    return Poll::Ready(Some((reason, Some(super::h2_cause(e)))));
                }
            }
        }
        if pinging {
            match pp.poll_pong(cx) {
                Poll::Ready(Ok(_)) => {
                    pinging = false;
                    shared.with_state(|st, now| st.core.handle_pong(now, conn));
                }
                Poll::Ready(Err(e)) => {
                    let reason = format!("ping failed: {e}");
                    return Poll::Ready(Some((reason, Some(super::h2_cause(e)))));
                }
                Poll::Pending => {}
            }
        }
        match Pin::new(&mut h2conn).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Some(("closed by the server".to_string(), None))),
            Poll::Ready(Err(e)) => Poll::Ready(Some((e.to_string(), Some(super::h2_cause(e))))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    if let Some((reason, cause)) = ended {
        tracing::debug!(endpoint = %target, conn = conn.0, %reason, "connection ended");
        shared.with_state(|st, now| {
            st.conn_gone(conn);
            if let Some(cause) = cause {
                st.conn_causes
                    .insert(target.to_string(), (reason.clone(), cause));
            }
            st.core.handle_connection_closed(now, conn, &reason);
        });
    }
}
