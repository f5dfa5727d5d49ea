//! The small trait a runtime implements to drive the client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream h2 can run on: tokio's IO traits (h2 needs only the traits,
/// not tokio's runtime).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// What the client needs from an async runtime: connect a TCP stream, sleep
/// until an instant, spawn a task. `etcdv3-tokio` and `etcdv3-async-std`
/// implement it in a few dozen lines; so can any embedder.
pub trait Runtime: Send + Sync + 'static {
    /// Open a TCP connection to `host:port` with `TCP_NODELAY` set.
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>>;

    /// Open a connection to the unix domain socket at `path` (for
    /// `unix://path` and `unixs://path` endpoints). The default fails with
    /// [`io::ErrorKind::Unsupported`]; `etcdv3-tokio` and `etcdv3-async-std`
    /// implement it on unix platforms.
    fn connect_unix(&self, path: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let message = format!("this runtime cannot connect to unix sockets ({path})");
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::Unsupported, message)) })
    }

    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Run `task` in the background until it completes.
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// The current time. Override to run the client on virtual time.
    fn now(&self) -> Instant {
        Instant::now()
    }
}
