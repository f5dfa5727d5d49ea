//! One suite, every runtime: the async pieces the integration tests need
//! (spawning, blocking work, sleeping, timeouts, connecting a client),
//! behind [`TestRuntime`], with an implementation for tokio ([`Tokio`]) and
//! one for async-std ([`AsyncStd`]).
//!
//! Test bodies are written once as `async fn name<R: TestRuntime>()`;
//! [`runtime_tests!`](crate::runtime_tests) generates a `#[test]` per
//! runtime: `name::tokio` and `name::async_std` (so
//! `cargo test -p etcdv3-integration async_std` runs one runtime only).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use etcdv3_client::{Client, ClientOptions, Error};
use futures_channel::oneshot;
use futures_util::future::{BoxFuture, FutureExt};

/// A boxed sleep of a runtime's own timer.
pub type Sleep = BoxFuture<'static, ()>;

/// An async runtime the suite runs on.
pub trait TestRuntime: Send + Sync + 'static {
    /// A short name, for messages.
    const NAME: &'static str;

    /// Runs a test body to completion on a fresh instance of the runtime
    /// (tokio: a multi-thread runtime with 2 workers; async-std: its global
    /// executor, the body on the calling thread).
    fn block_on<F: Future>(body: F) -> F::Output;

    /// Runs `task` concurrently on the runtime's executor. A panic in the
    /// task is re-raised where the returned [`Task`] is awaited.
    fn spawn<F>(task: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs blocking work (starting, restarting, faulting etcd members) on
    /// the runtime's thread pool for blocking work.
    fn spawn_blocking<T, F>(work: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Completes after `duration`, on the runtime's own timer.
    fn sleep(duration: Duration) -> Sleep;

    /// `etcdv3_tokio::connect` or `etcdv3_async_std::connect`.
    fn connect<I, S>(urls: I, options: ClientOptions) -> BoxFuture<'static, Result<Client, Error>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>;

    /// `future`, or [`Elapsed`] if it has not completed after `duration`
    /// (measured on the runtime's own timer).
    fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
        Timeout {
            future: Box::pin(future),
            sleep: Self::sleep(duration),
        }
    }
}

/// The tokio runtime (crate `etcdv3-tokio`).
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl TestRuntime for Tokio {
    const NAME: &'static str = "tokio";

    fn block_on<F: Future>(body: F) -> F::Output {
        // What `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`
        // builds.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building a tokio runtime")
            .block_on(body)
    }

    fn spawn<F>(task: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (run, handle) = Task::wrap(task);
        tokio::spawn(run);
        handle
    }

    fn spawn_blocking<T, F>(work: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (run, handle) = Task::wrap_blocking(work);
        tokio::task::spawn_blocking(run);
        handle
    }

    fn sleep(duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }

    fn connect<I, S>(urls: I, options: ClientOptions) -> BoxFuture<'static, Result<Client, Error>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls = owned(urls);
        Box::pin(async move { etcdv3_tokio::connect(urls, options).await })
    }
}

/// The async-std runtime (crate `etcdv3-async-std`: async-io's reactor and
/// timers, async-net's sockets). No tokio runtime exists anywhere in these
/// tests; [`AsyncStd::connect`] checks that.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

impl TestRuntime for AsyncStd {
    const NAME: &'static str = "async-std";

    fn block_on<F: Future>(body: F) -> F::Output {
        async_std::task::block_on(body)
    }

    fn spawn<F>(task: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (run, handle) = Task::wrap(task);
        // Dropping async-std's handle detaches the task; ours reports it.
        drop(async_std::task::spawn(run));
        handle
    }

    fn spawn_blocking<T, F>(work: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (run, handle) = Task::wrap_blocking(work);
        drop(async_std::task::spawn_blocking(run));
        handle
    }

    fn sleep(duration: Duration) -> Sleep {
        Box::pin(async_std::task::sleep(duration))
    }

    fn connect<I, S>(urls: I, options: ClientOptions) -> BoxFuture<'static, Result<Client, Error>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls = owned(urls);
        Box::pin(async move {
            assert!(
                tokio::runtime::Handle::try_current().is_err(),
                "a tokio runtime is present in an async-std test"
            );
            etcdv3_async_std::connect(urls, options).await
        })
    }
}

fn owned<I, S>(urls: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    urls.into_iter().map(|u| u.as_ref().to_string()).collect()
}

/// A spawned task: await it for its output. Like tokio's `JoinHandle`, but
/// the same on every runtime, and a panic in the task is re-raised by the
/// awaiting test (with the task's own panic message already printed).
#[derive(Debug)]
pub struct Task<T> {
    result: oneshot::Receiver<std::thread::Result<T>>,
    finished: Arc<AtomicBool>,
}

impl<T> Task<T> {
    /// Whether the task has completed (or panicked).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    fn channel() -> (
        oneshot::Sender<std::thread::Result<T>>,
        Arc<AtomicBool>,
        Task<T>,
    ) {
        let (tx, rx) = oneshot::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let task = Task {
            result: rx,
            finished: finished.clone(),
        };
        (tx, finished, task)
    }

    fn wrap<F>(future: F) -> (impl Future<Output = ()> + Send + 'static, Task<T>)
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, finished, task) = Self::channel();
        let run = async move {
            let result = AssertUnwindSafe(future).catch_unwind().await;
            finished.store(true, Ordering::SeqCst);
            let _ = tx.send(result);
        };
        (run, task)
    }

    fn wrap_blocking<F>(work: F) -> (impl FnOnce() + Send + 'static, Task<T>)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, finished, task) = Self::channel();
        let run = move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            finished.store(true, Ordering::SeqCst);
            let _ = tx.send(result);
        };
        (run, task)
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.result.poll_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(value))) => Poll::Ready(value),
            Poll::Ready(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            Poll::Ready(Err(oneshot::Canceled)) => {
                panic!("the task was dropped before it finished (runtime shut down?)")
            }
        }
    }
}

/// The future of [`TestRuntime::timeout`].
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future first: one that is ready wins over an expired timer.
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match self.sleep.poll_unpin(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A [`TestRuntime::timeout`] expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Held by a test that must not share the machine with another heavy test
/// of the same process (the failover and consistency suites: their
/// per-fault gaps are measured, and CPU starvation distorts them). A test
/// that panicked while holding it does not poison it for the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Generates one `#[test]` per runtime for test bodies written once as
/// `async fn name<R: TestRuntime>()`.
///
/// ```ignore
/// use etcdv3_integration::runtime::TestRuntime;
///
/// async fn put_then_get<R: TestRuntime>() {
///     let client = R::connect(["http://127.0.0.1:2379"], Default::default()).await.unwrap();
///     R::sleep(std::time::Duration::from_millis(10)).await;
/// }
///
/// async fn heavy<R: TestRuntime>() { /* ... */ }
///
/// etcdv3_integration::runtime_tests!(put_then_get);
/// // `exclusive:` the runtime variants (and every other exclusive test of the
/// // binary) run one at a time.
/// etcdv3_integration::runtime_tests!(exclusive: heavy);
/// ```
///
/// For each body `name` this adds a module `name` with the tests `tokio` and
/// `async_std`. A body left out of the list is unused code, which the
/// compiler reports.
#[macro_export]
macro_rules! runtime_tests {
    (exclusive: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn tokio() {
                    use $crate::runtime::TestRuntime as _;
                    let _exclusive = $crate::runtime::exclusive();
                    $crate::runtime::Tokio::block_on(super::$name::<$crate::runtime::Tokio>())
                }

                #[test]
                fn async_std() {
                    use $crate::runtime::TestRuntime as _;
                    let _exclusive = $crate::runtime::exclusive();
                    $crate::runtime::AsyncStd::block_on(super::$name::<$crate::runtime::AsyncStd>())
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn tokio() {
                    use $crate::runtime::TestRuntime as _;
                    $crate::runtime::Tokio::block_on(super::$name::<$crate::runtime::Tokio>())
                }

                #[test]
                fn async_std() {
                    use $crate::runtime::TestRuntime as _;
                    $crate::runtime::AsyncStd::block_on(super::$name::<$crate::runtime::AsyncStd>())
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn spawn_and_time<R: TestRuntime>() {
        R::block_on(async {
            // Spawned tasks run concurrently with the body and report their
            // output.
            let t = R::spawn(async {
                R::sleep(Duration::from_millis(100)).await;
                7
            });
            assert!(!t.is_finished());
            assert_eq!(t.await, 7);
            let b = R::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(20));
                "done"
            });
            assert_eq!(b.await, "done");

            // Timeouts fire, and do not fire early or for ready futures.
            let t0 = Instant::now();
            let r = R::timeout(Duration::from_millis(150), std::future::pending::<()>()).await;
            assert_eq!(r, Err(Elapsed));
            assert!(
                t0.elapsed() >= Duration::from_millis(150),
                "{:?}",
                t0.elapsed()
            );
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            let r = R::timeout(Duration::ZERO, async { 3 }).await;
            assert_eq!(r, Ok(3));
        });
    }

    fn panics_propagate<R: TestRuntime>() {
        let caught = std::panic::catch_unwind(|| {
            R::block_on(async {
                R::spawn(async { panic!("boom in a task") }).await;
            })
        });
        let payload = caught.expect_err("the task's panic reaches the awaiting body");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a task"));
        let caught = std::panic::catch_unwind(|| {
            R::block_on(async {
                R::spawn_blocking(|| panic!("boom in blocking work")).await;
            })
        });
        assert!(caught.is_err());
    }

    #[test]
    fn tokio_spawns_sleeps_and_times_out() {
        spawn_and_time::<Tokio>();
        panics_propagate::<Tokio>();
    }

    #[test]
    fn async_std_spawns_sleeps_and_times_out() {
        spawn_and_time::<AsyncStd>();
        panics_propagate::<AsyncStd>();
    }

    #[test]
    fn exclusive_survives_a_panicking_holder() {
        let _ = std::thread::spawn(|| {
            let _g = exclusive();
            panic!("holder fails");
        })
        .join();
        drop(exclusive());
    }
}
