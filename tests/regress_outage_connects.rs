//! Issue 17, section 3: a full outage costs the recovering cluster little.
//!
//! 256 workers put in a loop through one client (3 s deadline per put)
//! while all three members are SIGKILLed and kept down for 6 s. The
//! client's connection attempts are counted in its runtime (every TCP
//! connect the transport asks for). Asserted: at most 30 attempts a second
//! during the outage (the issue measured 323/s: every waiting call's retry
//! reopened every endpoint), at most 10 a second to any one member, and the
//! workload resumes once the members are restarted.
//!
//! `cargo test -p etcdv3-integration --test regress_outage_connects -- --nocapture`

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcdv3_client::api::PutOptions;
use etcdv3_client::{BoxFuture, BoxIo, Client, ClientOptions, Runtime};
use etcdv3_integration::cluster;
use etcdv3_integration::runtime::{exclusive, TestRuntime, Tokio};
use etcdv3_tokio::TokioRuntime;

/// Concurrent put workers.
const WORKERS: usize = 256;
/// How long every member stays down.
const OUTAGE: Duration = Duration::from_secs(6);
/// Deadline of each put.
const PUT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most connection attempts a second to the three members.
const MAX_RATE: f64 = 30.0;

/// The tokio runtime, counting connection attempts per port.
struct Counting {
    inner: TokioRuntime,
    attempts: Arc<Mutex<HashMap<u16, Vec<Instant>>>>,
}

impl Runtime for Counting {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxIo>> {
        self.attempts
            .lock()
            .unwrap()
            .entry(port)
            .or_default()
            .push(Instant::now());
        self.inner.connect(host, port)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        self.inner.sleep_until(deadline)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.inner.spawn(task)
    }
}

async fn worker(client: Client, w: usize, stop: Arc<AtomicBool>, ok: Arc<Mutex<Vec<Instant>>>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let put = client.put(
            format!("outage/{w:03}/{n:06}"),
            "v",
            PutOptions::new().with_timeout(PUT_TIMEOUT),
        );
        match Tokio::timeout(PUT_TIMEOUT + Duration::from_secs(2), put).await {
            Ok(Ok(_)) => ok.lock().unwrap().push(Instant::now()),
            // Errors (deadline, outcome unknown) are expected during the
            // outage: put again at once, as a busy service would.
            Ok(Err(_)) => {}
            Err(_) => panic!("a put hung past its deadline"),
        }
    }
}

/// Most attempts to one port within any window of `w`.
fn max_in_window(times: &[Instant], w: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

async fn a_full_outage_costs_few_connection_attempts() {
    let cluster = Arc::new(cluster::start::<Tokio>(3).await);
    let attempts = Arc::new(Mutex::new(HashMap::new()));
    let runtime = Counting {
        inner: TokioRuntime::current(),
        attempts: attempts.clone(),
    };
    let client = Client::connect(
        Arc::new(runtime),
        cluster.client_urls(),
        ClientOptions::default().with_timeout(PUT_TIMEOUT),
    )
    .await
    .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| Tokio::spawn(worker(client.clone(), w, stop.clone(), ok.clone())))
        .collect();
    Tokio::sleep(Duration::from_secs(2)).await;
    let before = ok.lock().unwrap().len();
    assert!(before > 0, "no put succeeded before the outage");

    let c = cluster.clone();
    Tokio::spawn_blocking(move || {
        for i in 0..c.size() {
            c.kill(i).expect("kill");
        }
    })
    .await;
    let killed_at = Instant::now();
    Tokio::sleep(OUTAGE).await;
    // Count from 0.5 s after the kill (the connections of the moment
    // break) to the restart.
    let (from, to) = (killed_at + Duration::from_millis(500), Instant::now());
    let during: Vec<(u16, Vec<Instant>)> = attempts
        .lock()
        .unwrap()
        .iter()
        .map(|(p, v)| {
            let mut v: Vec<Instant> = v
                .iter()
                .copied()
                .filter(|t| *t >= from && *t < to)
                .collect();
            v.sort();
            (*p, v)
        })
        .collect();
    let total: usize = during.iter().map(|(_, v)| v.len()).sum();
    let rate = total as f64 / (to - from).as_secs_f64();
    let per_member: Vec<(u16, usize, usize)> = during
        .iter()
        .map(|(p, v)| (*p, v.len(), max_in_window(v, Duration::from_secs(1))))
        .collect();
    eprintln!(
        "[outage-connects] {WORKERS} workers, every member down: {total} connection attempts in {:.1} s = {rate:.1}/s; per member (port, attempts, most in a second): {per_member:?}",
        (to - from).as_secs_f64()
    );

    let restart_at = Instant::now();
    let c = cluster.clone();
    Tokio::spawn_blocking(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..c.size())
                .map(|i| {
                    let c = &c;
                    s.spawn(move || c.restart(i).map_err(|e| format!("restart m{i}: {e}")))
                })
                .collect();
            for h in handles {
                h.join().expect("restart thread").expect("restart");
            }
        })
    })
    .await;
    // The workload resumes: puts succeed again.
    let resumed = loop {
        let first = ok.lock().unwrap().iter().copied().find(|t| *t > restart_at);
        if let Some(t) = first {
            break Some(t);
        }
        if restart_at.elapsed() > Duration::from_secs(30) {
            break None;
        }
        Tokio::sleep(Duration::from_millis(20)).await;
    };
    Tokio::sleep(Duration::from_secs(1)).await;
    let after_restart = ok
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t > restart_at)
        .count();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await;
    }
    eprintln!(
        "[outage-connects] first put after the restart at +{:?}; {after_restart} puts succeeded after the restart",
        resumed.map(|t| t - restart_at)
    );
    client.close();
    Tokio::spawn_blocking(move || drop(cluster)).await;

    assert!(
        rate <= MAX_RATE,
        "{rate:.1} connection attempts/s during a full outage with {WORKERS} waiting workers \
         (at most {MAX_RATE}/s allowed): {per_member:?}"
    );
    for (port, _, most) in &per_member {
        assert!(
            *most <= 10,
            "{most} connection attempts to port {port} within one second"
        );
    }
    assert!(
        total >= 3,
        "no connection attempt during the outage: the members were not tried"
    );
    assert!(
        resumed.is_some(),
        "no put succeeded within 30 s of the restart"
    );
    assert!(
        after_restart > WORKERS,
        "the workload did not resume: {after_restart} puts"
    );
}

#[test]
fn a_full_outage_costs_few_connection_attempts_tokio() {
    let _exclusive = exclusive();
    Tokio::block_on(a_full_outage_costs_few_connection_attempts());
}
