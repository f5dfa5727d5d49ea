//! The async-std and smol runtimes for the etcdv3 client.
//!
//! Both are built on the pieces async-std and smol share (`async-io`'s
//! reactor and timers, `async-net`'s sockets), bridged to the tokio IO
//! traits h2 speaks by `tokio-util`'s compat layer. No tokio runtime is ever
//! started. TLS (the client's default `tls` feature) works unchanged.
//!
//! Features: `async-std` (default) gives [`AsyncStdRuntime`] and [`connect`];
//! `smol` gives `smol::SmolRuntime` and `smol::connect`.
//!
//! ```no_run
//! # #[cfg(feature = "async-std")]
//! # async fn demo() -> Result<(), etcdv3_client::Error> {
//! let client = etcdv3_async_std::connect(["http://127.0.0.1:2379"], Default::default()).await?;
//! client.put("greeting", "hello", Default::default()).await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use etcdv3_client::*;

#[cfg(feature = "smol")]
pub mod smol;

/// Open a TCP connection with `TCP_NODELAY`, as tokio-IO for h2.
#[cfg(any(feature = "async-std", feature = "smol"))]
async fn connect_tcp(host: String, port: u16) -> std::io::Result<BoxIo> {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(stream.compat()))
}

/// Open a unix domain socket connection, as tokio-IO for h2.
#[cfg(all(unix, any(feature = "async-std", feature = "smol")))]
async fn connect_unix(path: String) -> std::io::Result<BoxIo> {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let stream = async_net::unix::UnixStream::connect(path).await?;
    Ok(Box::new(stream.compat()))
}

/// One UDP exchange with `server` on async-net (`Runtime::udp_exchange`).
#[cfg(any(feature = "async-std", feature = "smol"))]
async fn udp_exchange(server: std::net::SocketAddr, query: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let any: std::net::SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = async_net::UdpSocket::bind(any).await?;
    socket.connect(server).await?;
    socket.send(&query).await?;
    let mut buf = vec![0u8; 65_535];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

/// A future that completes at `deadline`, on async-io's timer.
#[cfg(any(feature = "async-std", feature = "smol"))]
fn sleep_until(deadline: std::time::Instant) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        async_io::Timer::at(deadline).await;
    })
}

/// Runs the client's tasks on async-std's global executor.
#[cfg(feature = "async-std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

#[cfg(feature = "async-std")]
impl Runtime for AsyncStdRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        Box::pin(connect_tcp(host.to_string(), port))
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: &str) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        Box::pin(connect_unix(path.to_string()))
    }

    fn udp_exchange(
        &self,
        server: std::net::SocketAddr,
        query: Vec<u8>,
    ) -> BoxFuture<'static, std::io::Result<Vec<u8>>> {
        Box::pin(udp_exchange(server, query))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> BoxFuture<'static, ()> {
        sleep_until(deadline)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(task));
    }
}

/// Create a client for `endpoints` on async-std. Connections open lazily;
/// when a user is configured, the first call authenticates.
#[cfg(feature = "async-std")]
pub async fn connect<I, S>(endpoints: I, options: ClientOptions) -> Result<Client, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Client::connect(std::sync::Arc::new(AsyncStdRuntime), endpoints, options).await
}
