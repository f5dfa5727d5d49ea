//! The smol runtime: tasks on smol's global executor or on an executor of
//! your own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcdv3_client::Error> {
//! let client = etcdv3_async_std::smol::connect(["http://127.0.0.1:2379"], Default::default()).await?;
//! client.put("greeting", "hello", Default::default()).await?;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::sync::Arc;
use std::time::Instant;

use ::smol::Executor;
use etcdv3_client::{BoxFuture, BoxIo, Client, ClientOptions, Error, Runtime};

/// Runs the client's tasks on smol.
#[derive(Debug, Clone, Default)]
pub struct SmolRuntime {
    executor: Option<Arc<Executor<'static>>>,
}

impl SmolRuntime {
    /// Tasks go to smol's global executor (`smol::spawn`), which runs on
    /// threads of its own.
    pub fn global() -> Self {
        SmolRuntime { executor: None }
    }

    /// Tasks go to `executor`. Something must keep running it (for example
    /// `executor.run(...)` in `smol::block_on`) for as long as the client is
    /// used, or the client's connections stall.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        SmolRuntime {
            executor: Some(executor),
        }
    }
}

impl Runtime for SmolRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>> {
        Box::pin(crate::connect_tcp(host.to_string(), port))
    }

    #[cfg(unix)]
    fn connect_unix(&self, path: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        Box::pin(crate::connect_unix(path.to_string()))
    }

    fn udp_exchange(
        &self,
        server: std::net::SocketAddr,
        query: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        Box::pin(crate::udp_exchange(server, query))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        crate::sleep_until(deadline)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        match &self.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => ::smol::spawn(task).detach(),
        }
    }
}

/// Create a client for `endpoints` whose tasks run on smol's global
/// executor. Connections open lazily.
pub async fn connect<I, S>(endpoints: I, options: ClientOptions) -> Result<Client, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Client::new(Arc::new(SmolRuntime::global()), endpoints, options)
}

/// Create a client for `endpoints` whose tasks run on `executor` (see
/// [`SmolRuntime::with_executor`]).
pub async fn connect_on<I, S>(
    executor: Arc<Executor<'static>>,
    endpoints: I,
    options: ClientOptions,
) -> Result<Client, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Client::new(
        Arc::new(SmolRuntime::with_executor(executor)),
        endpoints,
        options,
    )
}
