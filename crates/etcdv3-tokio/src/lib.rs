//! The tokio runtime for the etcdv3 client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcdv3_client::Error> {
//! let client = etcdv3_tokio::connect(["http://127.0.0.1:2379"], Default::default()).await?;
//! client.put("greeting", "hello", Default::default()).await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::sync::Arc;
use std::time::Instant;

pub use etcdv3_client::*;

/// Runs the client on the tokio runtime current when it is created.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
}

impl TokioRuntime {
    /// The runtime of the calling context. Panics outside a tokio runtime,
    /// like `tokio::spawn`; use [`TokioRuntime::try_current`] to get an
    /// error instead.
    pub fn current() -> Self {
        TokioRuntime {
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// The runtime of the calling context, if there is one.
    pub fn try_current() -> Result<Self, Error> {
        tokio::runtime::Handle::try_current()
            .map(|handle| TokioRuntime { handle })
            .map_err(|e| Error::Config(format!("not inside a tokio runtime: {e}")))
    }

    /// A specific runtime.
    pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
        TokioRuntime { handle }
    }
}

impl Runtime for TokioRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>> {
        let host = host.to_string();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let path = path.to_string();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok(Box::new(stream) as BoxIo)
        })
    }

    fn udp_exchange(
        &self,
        server: std::net::SocketAddr,
        query: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        Box::pin(async move {
            let any: std::net::SocketAddr = if server.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = tokio::net::UdpSocket::bind(any).await?;
            socket.connect(server).await?;
            socket.send(&query).await?;
            let mut buf = vec![0u8; 65_535];
            let n = socket.recv(&mut buf).await?;
            buf.truncate(n);
            Ok(buf)
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.handle.spawn(task);
    }
}

/// Create a client for `endpoints` on the current tokio runtime. Connections
/// open lazily; when a user is configured, the first call authenticates.
pub async fn connect<I, S>(endpoints: I, options: ClientOptions) -> Result<Client, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let rt = TokioRuntime::try_current()?;
    Client::connect(Arc::new(rt), endpoints, options).await
}
