//! A runtime that does not implement `Runtime::connect_unix` (the default)
//! turns a `unix://` endpoint into a connect failure named in the call's
//! error by the deadline, not a hang and not a panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3_client::api::PutOptions;
use etcdv3_client::{CallError, Client, ClientOptions, Error};

mod common;
use common::Tokio;

#[tokio::test]
async fn default_connect_unix_is_unsupported_and_reported() {
    let client = Client::new(
        Arc::new(Tokio),
        ["unix:///tmp/etcdv3-no-such.sock"],
        ClientOptions::default().with_timeout(Duration::from_millis(800)),
    )
    .expect("unix endpoints parse");
    let start = Instant::now();
    let err = client
        .put("k", "v", PutOptions::new())
        .await
        .expect_err("the runtime cannot open unix sockets");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(!err.may_have_applied(), "{err}");
    match &err {
        Error::Call(CallError::DeadlineExceeded { last_error, .. }) => {
            assert!(
                last_error.contains("cannot connect to unix sockets"),
                "{last_error}"
            );
            assert!(
                last_error.contains("/tmp/etcdv3-no-such.sock"),
                "{last_error}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    client.close();
}
