//! Shared by this crate's integration tests: the client's runtime on tokio.

use std::time::Instant;

use etcdv3_client::{BoxFuture, BoxIo, Runtime};

/// The client's runtime on tokio (etcdv3-tokio depends on this crate).
pub struct Tokio;

impl Runtime for Tokio {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        let host = host.to_string();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxIo)
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}
