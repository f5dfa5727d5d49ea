//! The [`Client`] handle and the call primitives the typed API is built on.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcdv3_core::codec;
use etcdv3_core::endpoint::Endpoint;
use etcdv3_proto::method::Method;

use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::runtime::Runtime;
use crate::transport::{self, Shared};

pub(crate) use crate::transport::stream::{BidiCall, ServerStream};

/// Per-call options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Deadline of this call, overriding
    /// [`ClientOptions::request_timeout`](crate::ClientOptions::request_timeout).
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// Options with a timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        CallOptions {
            timeout: Some(timeout),
        }
    }
}

/// Closes the client when the last user handle is dropped.
struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// An etcd v3 client. Cheap to clone; all clones share connections. When
/// the last clone is dropped, every connection and background task of the
/// client ends.
///
/// Obtain one from a runtime crate (`etcdv3_tokio::connect`,
/// `etcdv3_async_std::connect`) or with [`Client::new`] and your own
/// [`Runtime`].
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    /// Held only for its Drop: the last user handle closes the client.
    _guard: Option<Arc<CloseGuard>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoints` (`http://host:port`, `https://host:port` or
    /// `host:port`) on `runtime`. Connections are opened lazily, on the first
    /// call.
    ///
    /// Fails when the list is empty, an endpoint is invalid, or an `https`
    /// endpoint is given without TLS options.
    pub fn new<I, S>(
        runtime: Arc<dyn Runtime>,
        endpoints: I,
        options: ClientOptions,
    ) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for e in endpoints {
            parsed.push(Endpoint::parse(e.as_ref())?);
        }
        if parsed.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        let sync = options.auto_sync_interval;
        let shared = Shared::new(runtime, parsed, options)?;
        let client = Client {
            _guard: Some(Arc::new(CloseGuard(shared.clone()))),
            shared,
        };
        if let Some(interval) = sync {
            client.spawn(crate::sync::run(client.background(), interval));
        }
        Ok(client)
    }

    /// A handle for background tasks that does not keep the client open.
    pub(crate) fn background(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            _guard: None,
        }
    }

    /// The options the client runs with.
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// Per-endpoint state (health, calls in flight, latency, leader seen):
    /// why calls go where they go.
    pub fn endpoint_states(&self) -> Vec<etcdv3_core::machine::EndpointState> {
        self.shared.endpoint_states()
    }

    /// Replace the endpoint set. Connections to removed endpoints are closed
    /// once their calls end.
    pub fn set_endpoints<I, S>(&self, endpoints: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for e in endpoints {
            parsed.push(Endpoint::parse(e.as_ref())?);
        }
        if parsed.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        self.shared.set_endpoints(parsed)
    }

    /// Shut the client down now: pending calls fail with [`Error::Closed`],
    /// connections close. Dropping the last clone does the same.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Calls the transport tracks right now (started and not finished:
    /// unary calls in progress, open streams). For tests that check nothing
    /// leaks; not a stable API.
    #[doc(hidden)]
    pub fn calls_tracked(&self) -> usize {
        self.shared.call_slots()
    }

    /// Whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Tell the core a revision this client observed outside a unary
    /// response (watch events), for its read fence.
    pub(crate) fn note_revision(&self, revision: i64) {
        self.shared
            .with_state(|st, _| st.core.handle_revision_seen(revision));
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.shared.runtime
    }

    pub(crate) fn now(&self) -> Instant {
        self.shared.runtime.now()
    }

    /// Run a background task on the client's runtime.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.runtime.spawn(Box::pin(fut));
    }

    /// One unary call: encode `req`, run it through the core (retries,
    /// failover, deadline), decode the answer.
    pub(crate) async fn unary<Q, A>(&self, method: Method, req: &Q, opts: CallOptions) -> Result<A>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let body =
            codec::encode(req, self.shared.options.max_send_message_size).map_err(|source| {
                Error::Frame {
                    method: method.path,
                    source,
                }
            })?;
        let timeout = opts.timeout.unwrap_or(self.shared.options.request_timeout);
        let msg = transport::call::unary(&self.shared, method, body, timeout).await?;
        codec::decode_message(msg).map_err(|source| Error::Frame {
            method: method.path,
            source,
        })
    }

    /// Open a bidirectional stream (watch, lease keepalive). Returns once
    /// the server accepted it (response headers received); until then the
    /// core retries on other endpoints.
    pub(crate) async fn open_bidi<Q, A>(&self, method: Method) -> Result<BidiCall<Q, A>>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        transport::stream::open(&self.shared, method, None, None).await
    }

    /// Start a server-streaming call (snapshot, election observe).
    pub(crate) async fn server_stream<Q, A>(
        &self,
        method: Method,
        req: &Q,
        opts: CallOptions,
    ) -> Result<ServerStream<A>>
    where
        Q: prost::Message,
        A: prost::Message + Default,
    {
        let body =
            codec::encode(req, self.shared.options.max_send_message_size).map_err(|source| {
                Error::Frame {
                    method: method.path,
                    source,
                }
            })?;
        let call: BidiCall<(), A> =
            transport::stream::open(&self.shared, method, Some(body), opts.timeout).await?;
        Ok(ServerStream::new(call))
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Client>();
    let _ = Bytes::new();
}
