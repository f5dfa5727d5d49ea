//! The small trait a runtime implements to drive the client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Instant;

/// A boxed, sendable future.
///
/// ```
/// use etcdv3_client::BoxFuture;
/// let fut: BoxFuture<'static, u32> = Box::pin(async { 7 });
/// # drop(fut);
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream h2 can run on: tokio's IO traits (h2 needs only the traits,
/// not tokio's runtime).
///
/// ```
/// fn is_io<T: etcdv3_client::Io>() {}
/// // Any tokio byte stream is an `Io`, e.g. a TCP stream.
/// is_io::<tokio::net::TcpStream>();
/// ```
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
///
/// ```
/// use etcdv3_client::BoxIo;
/// fn boxed(tcp: tokio::net::TcpStream) -> BoxIo {
///     Box::new(tcp)
/// }
/// # let _ = boxed;
/// ```
pub type BoxIo = Box<dyn Io>;

/// What the client needs from an async runtime: connect a TCP stream, sleep
/// until an instant, spawn a task. `etcdv3-tokio` and `etcdv3-async-std`
/// implement it in a few dozen lines; so can any embedder.
///
/// ```
/// use etcdv3_client::{BoxFuture, BoxIo, Runtime};
/// use std::{io, time::Instant};
///
/// /// A runtime over tokio (`etcdv3-tokio` ships a complete one).
/// struct Tokio(tokio::runtime::Handle);
///
/// impl Runtime for Tokio {
///     fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>> {
///         let addr = format!("{host}:{port}");
///         Box::pin(async move {
///             let tcp = tokio::net::TcpStream::connect(addr).await?;
///             tcp.set_nodelay(true)?;
///             Ok(Box::new(tcp) as BoxIo)
///         })
///     }
///     fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
///         Box::pin(tokio::time::sleep_until(deadline.into()))
///     }
///     fn spawn(&self, task: BoxFuture<'static, ()>) {
///         self.0.spawn(task);
///     }
/// }
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let runtime = Tokio(rt.handle().clone());
/// assert!(runtime.now() <= Instant::now());
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// Open a TCP connection to `host:port` with `TCP_NODELAY` set.
    ///
    /// ```no_run
    /// # async fn demo(runtime: &dyn etcdv3_client::Runtime) -> std::io::Result<()> {
    /// let io = runtime.connect("127.0.0.1", 2379).await?;
    /// # Ok(()) }
    /// ```
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>>;

    /// Open a connection to the unix domain socket at `path` (for
    /// `unix://path` and `unixs://path` endpoints). The default fails with
    /// [`io::ErrorKind::Unsupported`]; `etcdv3-tokio` and `etcdv3-async-std`
    /// implement it on unix platforms.
    ///
    /// ```no_run
    /// # async fn demo(runtime: &dyn etcdv3_client::Runtime) -> std::io::Result<()> {
    /// let io = runtime.connect_unix("/var/run/etcd/localhost:2379").await?;
    /// # Ok(()) }
    /// ```
    fn connect_unix(&self, path: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let message = format!("this runtime cannot connect to unix sockets ({path})");
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::Unsupported, message)) })
    }

    /// Send one UDP datagram `query` to `server` from a fresh socket and
    /// return the first datagram that comes back from it (a DNS exchange:
    /// [`discover_srv`](crate::discover_srv)). The caller bounds the wait.
    /// The default fails with [`io::ErrorKind::Unsupported`]; `etcdv3-tokio`
    /// and `etcdv3-async-std` implement it.
    ///
    /// ```no_run
    /// # async fn demo(runtime: &dyn etcdv3_client::Runtime) -> std::io::Result<()> {
    /// let answer = runtime.udp_exchange("127.0.0.1:53".parse().unwrap(), vec![0; 12]).await?;
    /// # Ok(()) }
    /// ```
    fn udp_exchange(
        &self,
        server: std::net::SocketAddr,
        query: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        let _ = query;
        let message = format!("this runtime cannot send UDP ({server})");
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::Unsupported, message)) })
    }

    /// A future that completes at `deadline`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn demo(runtime: &dyn etcdv3_client::Runtime) {
    /// runtime.sleep_until(runtime.now() + Duration::from_millis(100)).await;
    /// # }
    /// ```
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Run `task` in the background until it completes.
    ///
    /// ```no_run
    /// # fn demo(runtime: &dyn etcdv3_client::Runtime) {
    /// runtime.spawn(Box::pin(async { println!("in the background") }));
    /// # }
    /// ```
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// The current time. Override to run the client on virtual time.
    ///
    /// ```no_run
    /// # fn demo(runtime: &dyn etcdv3_client::Runtime) {
    /// let start = runtime.now();
    /// assert!(runtime.now() >= start);
    /// # }
    /// ```
    fn now(&self) -> Instant {
        Instant::now()
    }
}
