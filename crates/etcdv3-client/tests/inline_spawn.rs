//! A runtime whose `spawn` polls the new task once, inline, before handing
//! it to its executor (some executors run a spawned task at once on the
//! spawning thread) must not deadlock the client: the client never calls
//! `Runtime::spawn` while it holds its state lock (issue 17, section 6).
//!
//! The connects of this runtime fail at once, so the connection task's
//! first poll reports the failure to the client's state straight away:
//! under the lock, that is a relock on the same thread.

use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use etcdv3_client::api::{GetOptions, WatchOptions};
use etcdv3_client::{BoxFuture, BoxIo, Client, ClientOptions, Runtime};

struct InlineFirstPoll(tokio::runtime::Handle);

impl Runtime for InlineFirstPoll {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        let message = format!("{host}:{port}: connection refused (test runtime)");
        Box::pin(async move {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                message,
            ))
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn spawn(&self, mut task: BoxFuture<'static, ()>) {
        let mut cx = Context::from_waker(Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            self.0.spawn(task);
        }
    }
}

/// Runs `body` on a thread of its own and fails (instead of hanging the
/// suite) when it does not finish within 20 s: a deadlock.
fn within_20s(name: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: no answer within 20 s: the client deadlocked")
        }
        Err(e) => panic!("{name}: the test thread panicked ({e})"),
    }
}

#[test]
fn a_runtime_that_polls_spawned_tasks_inline_does_not_deadlock() {
    within_20s("get and watch", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("tokio runtime");
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let client = Client::new(
                Arc::new(InlineFirstPoll(handle)),
                ["http://127.0.0.1:1", "http://127.0.0.1:2"],
                ClientOptions::default().with_timeout(Duration::from_millis(500)),
            )
            .expect("client");
            let start = Instant::now();
            let err = client
                .get("k", GetOptions::new())
                .await
                .expect_err("nothing listens");
            assert!(start.elapsed() < Duration::from_secs(5), "{err}");
            // A watch starts the watch stream task (spawned too).
            let err = client
                .watch(
                    "k",
                    WatchOptions::new().with_timeout(Duration::from_millis(500)),
                )
                .await
                .expect_err("nothing listens");
            assert!(start.elapsed() < Duration::from_secs(10), "{err}");
            client.close();
        });
    });
}
