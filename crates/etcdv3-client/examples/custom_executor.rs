//! Embedding the client in a runtime the project does not ship.
//!
//! Everything a runtime must give the client is here, written by hand: a
//! single-threaded executor (a task queue and a condition variable), a timer
//! thread, and TCP from `async-io`'s `Async<std::net::TcpStream>` (async-io
//! brings only a reactor thread, no executor), bridged to the tokio IO traits
//! h2 speaks by `tokio-util`'s compat layer. No tokio, async-std or smol
//! executor runs.
//!
//! ```text
//! ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-client --example custom_executor
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use async_io::Async;
use etcdv3_client::api::{GetOptions, PutOptions};
use etcdv3_client::{BoxFuture, BoxIo, Client, ClientOptions, Runtime};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// The run queue: tasks that were woken and must be polled.
#[derive(Default)]
struct Queue {
    tasks: Mutex<VecDeque<Arc<Task>>>,
    ready: Condvar,
}

struct Task {
    future: Mutex<Option<BoxFuture<'static, ()>>>,
    queue: Arc<Queue>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let queue = self.queue.clone();
        queue.tasks.lock().unwrap().push_back(self);
        queue.ready.notify_one();
    }
}

/// A single-threaded executor plus a timer thread: the whole runtime.
#[derive(Clone)]
struct MiniRuntime {
    queue: Arc<Queue>,
    timers: Sender<(Instant, Waker)>,
}

impl MiniRuntime {
    fn new() -> Self {
        let (timers, rx) = mpsc::channel();
        std::thread::spawn(move || timer_thread(rx));
        MiniRuntime {
            queue: Arc::default(),
            timers,
        }
    }

    /// Run tasks on this thread until `future` is done.
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (done, result) = mpsc::channel();
        self.spawn(Box::pin(async move {
            let _ = done.send(future.await);
        }));
        loop {
            if let Ok(value) = result.try_recv() {
                return value;
            }
            let task = {
                let mut tasks = self.queue.tasks.lock().unwrap();
                loop {
                    match tasks.pop_front() {
                        Some(task) => break task,
                        None => tasks = self.queue.ready.wait(tasks).unwrap(),
                    }
                }
            };
            let waker = Waker::from(task.clone());
            let mut slot = task.future.lock().unwrap();
            if let Some(mut future) = slot.take() {
                if future
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
                {
                    *slot = Some(future);
                }
            }
        }
    }
}

/// Wakes each registered waker at its instant.
fn timer_thread(rx: Receiver<(Instant, Waker)>) {
    let mut pending: Vec<(Instant, Waker)> = Vec::new();
    loop {
        let now = Instant::now();
        pending.retain(|(at, waker)| {
            let due = *at <= now;
            if due {
                waker.wake_by_ref();
            }
            !due
        });
        let next = pending.iter().map(|(at, _)| *at).min();
        let received = match next {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(timer) => pending.push(timer),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Runtime for MiniRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>> {
        // Name resolution blocks this thread briefly; fine for an example.
        let addrs = (host, port).to_socket_addrs().map(Vec::from_iter);
        Box::pin(async move {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for addr in addrs? {
                match Async::<TcpStream>::connect(addr).await {
                    Ok(stream) => {
                        stream.get_ref().set_nodelay(true)?;
                        return Ok(Box::new(stream.compat()) as BoxIo);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let timers = self.timers.clone();
        Box::pin(std::future::poll_fn(move |cx| {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            let _ = timers.send((deadline, cx.waker().clone()));
            Poll::Pending
        }))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let task = Arc::new(Task {
            future: Mutex::new(Some(task)),
            queue: self.queue.clone(),
        });
        task.wake();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let endpoints: Vec<String> = std::env::var("ETCD_ENDPOINTS")
        .unwrap_or_else(|_| "http://127.0.0.1:2379".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rt = MiniRuntime::new();
    let runtime: Arc<dyn Runtime> = Arc::new(rt.clone());
    rt.block_on(async move {
        let client = Client::new(runtime, endpoints, ClientOptions::default())?;
        let put = client
            .put("custom-executor/greeting", "hello", PutOptions::new())
            .await?;
        let revision = put.header.map(|h| h.revision).unwrap_or_default();
        let got = client
            .get("custom-executor/greeting", GetOptions::new())
            .await?;
        let value = got
            .kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        println!("put at revision {revision}; get returned {value:?}");
        if value.as_deref() != Some("hello") {
            return Err("the value read back differs from the one written".into());
        }
        Ok(())
    })
}
