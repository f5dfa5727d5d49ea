//! The same put/get against a real etcd on async-std, on smol's global
//! executor and on a smol executor of our own, with no tokio runtime
//! anywhere; plus a deadline that only our timer can fire.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_async_std::api::{GetOptions, PutOptions};
use etcdv3_async_std::{BoxFuture, BoxIo, Client, ClientOptions, Error, Runtime};
use etcdv3_testkit::Cluster;

fn assert_no_tokio() {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "a tokio runtime is present"
    );
}

/// Put then get `key` and check the value round-trips and revisions move.
async fn put_get(client: &Client, key: &str) {
    assert_no_tokio();
    let put = client.put(key, "v1", PutOptions::new()).await.expect("put");
    let rev = put.header.as_ref().map(|h| h.revision).unwrap_or_default();
    assert!(rev > 0, "put revision {rev}");
    client
        .put(key, "v2", PutOptions::new())
        .await
        .expect("second put");
    let got = client.get(key, GetOptions::new()).await.expect("get");
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].key, key.as_bytes());
    assert_eq!(got.kvs[0].value, b"v2");
    assert!(got.kvs[0].mod_revision > rev);
    let missing = client
        .get(format!("{key}/missing"), GetOptions::new())
        .await
        .expect("get missing");
    assert!(missing.kvs.is_empty());
    assert_no_tokio();
}

#[test]
fn async_std_put_get() {
    let cluster = Cluster::start(1).unwrap();
    async_std::task::block_on(async {
        let client = etcdv3_async_std::connect(cluster.client_urls(), ClientOptions::default())
            .await
            .unwrap();
        put_get(&client, "rt/async-std").await;
        // The client's own tasks run on async-std's executor threads: no
        // tokio there either.
        async_std::task::spawn(async { assert_no_tokio() }).await;
    });
}

#[test]
fn smol_global_put_get() {
    let cluster = Cluster::start(1).unwrap();
    smol::block_on(async {
        let client =
            etcdv3_async_std::smol::connect(cluster.client_urls(), ClientOptions::default())
                .await
                .unwrap();
        put_get(&client, "rt/smol-global").await;
    });
}

#[test]
fn smol_own_executor_put_get() {
    let cluster = Cluster::start(1).unwrap();
    let executor = Arc::new(smol::Executor::new());
    let ex = executor.clone();
    // Everything, the client's background tasks included, runs on this one
    // thread's executor.
    smol::block_on(executor.run(async move {
        let client =
            etcdv3_async_std::smol::connect_on(ex, cluster.client_urls(), ClientOptions::default())
                .await
                .unwrap();
        put_get(&client, "rt/smol-own").await;
    }));
}

/// A member that accepts TCP but never speaks HTTP/2: only the runtime's
/// timer can end the call, at its deadline.
fn silent_member() -> (TcpListener, String) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    (silent, url)
}

async fn deadline_fires(client: Client) {
    assert_no_tokio();
    let started = Instant::now();
    let res = client
        .get(
            "k",
            GetOptions::new().with_timeout(Duration::from_millis(400)),
        )
        .await;
    let took = started.elapsed();
    assert!(res.is_err(), "a silent member answered: {res:?}");
    assert!(!res.as_ref().is_err_and(Error::is_closed), "{res:?}");
    assert!(
        took >= Duration::from_millis(350),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "deadline missed: {took:?}");
}

#[test]
fn deadline_fires_on_async_std() {
    let (_silent, url) = silent_member();
    async_std::task::block_on(async {
        let client = etcdv3_async_std::connect([url], ClientOptions::default())
            .await
            .unwrap();
        deadline_fires(client).await;
    });
}

#[test]
fn deadline_fires_on_smol() {
    let (_silent, url) = silent_member();
    smol::block_on(async {
        let client = etcdv3_async_std::smol::connect([url], ClientOptions::default())
            .await
            .unwrap();
        deadline_fires(client).await;
    });
}

/// Counts the timers the client asks for.
struct CountingRuntime {
    inner: etcdv3_async_std::AsyncStdRuntime,
    sleeps: Arc<AtomicU64>,
}

impl Runtime for CountingRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxIo>> {
        self.inner.connect(host, port)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        self.inner.sleep_until(deadline)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.inner.spawn(task)
    }
}

/// A client with nothing to do sleeps: its timer task does not spin (a spin
/// that never yields hangs single-threaded executors such as smol's).
#[test]
fn idle_client_does_not_spin() {
    let cluster = Cluster::start(1).unwrap();
    let sleeps = Arc::new(AtomicU64::new(0));
    let runtime = CountingRuntime {
        inner: etcdv3_async_std::AsyncStdRuntime,
        sleeps: sleeps.clone(),
    };
    async_std::task::block_on(async {
        let client = Client::new(
            Arc::new(runtime),
            cluster.client_urls(),
            ClientOptions::default(),
        )
        .unwrap();
        client.put("rt/idle", "x", PutOptions::new()).await.unwrap();
        let before = sleeps.load(Ordering::Relaxed);
        async_io::Timer::after(Duration::from_secs(1)).await;
        let during_idle = sleeps.load(Ordering::Relaxed) - before;
        // Probes and keepalives may wake it a few times a second, not more.
        assert!(during_idle < 50, "{during_idle} timers in one idle second");
    });
}
