//! A compare-and-swap with a transaction.
//!
//! `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo run -p etcdv3-tokio --example txn`

use etcdv3_tokio::api::{
    response_op, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
};

#[tokio::main]
async fn main() -> Result<(), etcdv3_tokio::Error> {
    let endpoints =
        std::env::var("ETCD_ENDPOINTS").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let client = etcdv3_tokio::connect(endpoints.split(','), Default::default()).await?;

    client
        .put("example/txn/counter", "1", PutOptions::new())
        .await?;

    // Swap 1 -> 2 only if the value is still 1; otherwise read it.
    let txn = Txn::new()
        .when([Compare::value("example/txn/counter", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("example/txn/counter", "2", PutOptions::new())])
        .or_else([TxnOp::get("example/txn/counter", GetOptions::new())]);
    let resp = client.txn(txn).await?;
    println!("swapped: {}", resp.succeeded);

    // The same swap again fails: the value is 2 now.
    let txn = Txn::new()
        .when([Compare::value("example/txn/counter", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("example/txn/counter", "2", PutOptions::new())])
        .or_else([TxnOp::get("example/txn/counter", GetOptions::new())]);
    let resp = client.txn(txn).await?;
    if let Some(response_op::Response::ResponseRange(r)) =
        resp.responses.first().and_then(|op| op.response.as_ref())
    {
        for kv in &r.kvs {
            println!(
                "swap refused, value is {}",
                String::from_utf8_lossy(&kv.value)
            );
        }
    }

    client
        .delete("example/txn/", DeleteOptions::new().with_prefix())
        .await?;
    Ok(())
}
