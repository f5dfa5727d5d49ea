//! Responses people can read: keys and values as text, event kinds, and
//! transaction results as a typed enum.
//!
//! ```
//! use etcdv3_client::api::{Event, EventType, KeyValue, KeyValueExt, EventExt};
//! let kv = KeyValue { key: b"svc/a".to_vec(), value: b"10.0.0.1".to_vec(), ..Default::default() };
//! assert_eq!(kv.key_str().unwrap(), "svc/a");
//! assert_eq!(kv.value_str().unwrap(), "10.0.0.1");
//! let ev = Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None };
//! assert_eq!(ev.kind(), EventType::Delete);
//! assert!(ev.is_delete());
//! ```

use std::str::Utf8Error;

use etcdv3_proto::etcdserverpb::{
    response_op, DeleteRangeResponse, PutResponse, RangeResponse, TxnResponse,
};
use etcdv3_proto::mvccpb::{event::EventType, Event, KeyValue};

/// Text views of a [`KeyValue`]'s key and value (etcd stores bytes; most
/// keys and many values are UTF-8).
///
/// ```
/// use etcdv3_client::api::{KeyValue, KeyValueExt};
/// let kv = KeyValue { key: b"svc/a".to_vec(), value: vec![0xff], ..Default::default() };
/// assert_eq!(kv.key_str(), Ok("svc/a"));
/// assert!(kv.value_str().is_err());
/// assert_eq!(kv.value_lossy(), "\u{fffd}");
/// ```
pub trait KeyValueExt {
    /// The key as text; fails if it is not UTF-8.
    ///
    /// ```
    /// use etcdv3_client::api::{KeyValue, KeyValueExt};
    /// let kv = KeyValue { key: b"svc/a".to_vec(), ..Default::default() };
    /// assert_eq!(kv.key_str(), Ok("svc/a"));
    /// ```
    fn key_str(&self) -> Result<&str, Utf8Error>;
    /// The value as text; fails if it is not UTF-8.
    ///
    /// ```
    /// use etcdv3_client::api::{KeyValue, KeyValueExt};
    /// let kv = KeyValue { value: b"10.0.0.1".to_vec(), ..Default::default() };
    /// assert_eq!(kv.value_str(), Ok("10.0.0.1"));
    /// ```
    fn value_str(&self) -> Result<&str, Utf8Error>;
    /// The key as text, invalid UTF-8 replaced by `U+FFFD`.
    ///
    /// ```
    /// use etcdv3_client::api::{KeyValue, KeyValueExt};
    /// let kv = KeyValue { key: b"bin/\xff".to_vec(), ..Default::default() };
    /// assert_eq!(kv.key_lossy(), "bin/\u{fffd}");
    /// ```
    fn key_lossy(&self) -> std::borrow::Cow<'_, str>;
    /// The value as text, invalid UTF-8 replaced by `U+FFFD`.
    ///
    /// ```
    /// use etcdv3_client::api::{KeyValue, KeyValueExt};
    /// let kv = KeyValue { value: b"ok".to_vec(), ..Default::default() };
    /// assert_eq!(kv.value_lossy(), "ok");
    /// ```
    fn value_lossy(&self) -> std::borrow::Cow<'_, str>;
}

impl KeyValueExt for KeyValue {
    fn key_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.key)
    }

    fn value_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.value)
    }

    fn key_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }

    fn value_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// The kind of a watch [`Event`] without `r#type()`.
///
/// ```no_run
/// use etcdv3_client::api::{WatchEvent, WatchOptions};
/// use etcdv3_client::prelude::*;
/// use futures_util::StreamExt;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let mut w = client.watch("svc/", WatchOptions::new().with_prefix()).await?;
/// while let Some(WatchEvent::Events { events, .. }) = w.next().await.transpose()? {
///     for ev in events {
///         let key = ev.kv.as_ref().map(|kv| kv.key_lossy().into_owned());
///         if ev.is_create() {
///             println!("new: {key:?}");
///         } else if ev.is_delete() {
///             println!("gone: {key:?}");
///         }
///     }
/// }
/// # Ok(()) }
/// ```
pub trait EventExt {
    /// `Put` or `Delete` (an unknown wire value reads as `Put`, as prost
    /// does).
    ///
    /// ```
    /// use etcdv3_client::api::{Event, EventExt, EventType};
    /// let ev = Event { r#type: EventType::Delete as i32, kv: None, prev_kv: None };
    /// assert_eq!(ev.kind(), EventType::Delete);
    /// ```
    fn kind(&self) -> EventType;
    /// Whether the event is a put (create or update).
    ///
    /// ```
    /// use etcdv3_client::api::{Event, EventExt, EventType};
    /// let ev = Event { r#type: EventType::Put as i32, kv: None, prev_kv: None };
    /// assert!(ev.is_put() && !ev.is_delete());
    /// ```
    fn is_put(&self) -> bool {
        self.kind() == EventType::Put
    }
    /// Whether the event is a delete (or an expiry of a lease's key).
    ///
    /// ```
    /// use etcdv3_client::api::{Event, EventExt, EventType};
    /// let ev = Event { r#type: EventType::Delete as i32, kv: None, prev_kv: None };
    /// assert!(ev.is_delete() && !ev.is_put());
    /// ```
    fn is_delete(&self) -> bool {
        self.kind() == EventType::Delete
    }
    /// Whether the put created the key (its first version).
    ///
    /// ```
    /// use etcdv3_client::api::{Event, EventExt, EventType, KeyValue};
    /// let first = KeyValue { key: b"k".to_vec(), version: 1, ..Default::default() };
    /// let second = KeyValue { version: 2, ..first.clone() };
    /// let created = Event { r#type: EventType::Put as i32, kv: Some(first), prev_kv: None };
    /// let updated = Event { r#type: EventType::Put as i32, kv: Some(second), prev_kv: None };
    /// assert!(created.is_create());
    /// assert!(!updated.is_create());
    /// ```
    fn is_create(&self) -> bool;
}

impl EventExt for Event {
    fn kind(&self) -> EventType {
        self.r#type()
    }

    fn is_create(&self) -> bool {
        self.is_put() && self.kv.as_ref().is_some_and(|kv| kv.version == 1)
    }
}

/// The result of one operation of a transaction, typed.
///
/// ```no_run
/// use etcdv3_client::api::{GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
/// use etcdv3_client::prelude::*;
/// # async fn demo(client: etcdv3_client::Client) -> etcdv3_client::Result<()> {
/// let txn = Txn::new().and_then([
///     TxnOp::put("k", "v", PutOptions::new()),
///     TxnOp::get("k", GetOptions::new()),
/// ]);
/// for op in client.txn(txn).await?.op_responses() {
///     match op {
///         TxnOpResponse::Put(_) => println!("put done"),
///         TxnOpResponse::Get(r) => println!("read {} keys", r.count),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxnOpResponse {
    /// A [`TxnOp::get`](crate::api::TxnOp::get).
    Get(RangeResponse),
    /// A [`TxnOp::put`](crate::api::TxnOp::put).
    Put(PutResponse),
    /// A [`TxnOp::delete`](crate::api::TxnOp::delete).
    Delete(DeleteRangeResponse),
    /// A nested [`TxnOp::txn`](crate::api::TxnOp::txn).
    Txn(TxnResponse),
}

/// Typed access to a [`TxnResponse`]'s results.
///
/// ```
/// use etcdv3_client::api::{TxnOpResponse, TxnResponse, TxnResponseExt};
/// let resp = TxnResponse::default();
/// assert!(resp.op_responses().is_empty());
/// ```
pub trait TxnResponseExt {
    /// The results of the branch that ran, in order, as [`TxnOpResponse`]s
    /// (an empty wire entry is skipped).
    ///
    /// ```
    /// use etcdv3_client::api::{response_op, PutResponse, ResponseOp, TxnOpResponse, TxnResponse, TxnResponseExt};
    /// let resp = TxnResponse {
    ///     responses: vec![ResponseOp { response: Some(response_op::Response::ResponsePut(PutResponse::default())) }],
    ///     ..Default::default()
    /// };
    /// assert_eq!(resp.op_responses(), vec![TxnOpResponse::Put(PutResponse::default())]);
    /// ```
    fn op_responses(&self) -> Vec<TxnOpResponse>;
    /// [`TxnResponseExt::op_responses`], consuming the response.
    ///
    /// ```
    /// use etcdv3_client::api::{response_op, RangeResponse, ResponseOp, TxnOpResponse, TxnResponse, TxnResponseExt};
    /// let resp = TxnResponse {
    ///     responses: vec![ResponseOp { response: Some(response_op::Response::ResponseRange(RangeResponse::default())) }],
    ///     ..Default::default()
    /// };
    /// assert!(matches!(resp.into_op_responses().as_slice(), [TxnOpResponse::Get(_)]));
    /// ```
    fn into_op_responses(self) -> Vec<TxnOpResponse>;
}

fn typed(op: response_op::Response) -> TxnOpResponse {
    match op {
        response_op::Response::ResponseRange(r) => TxnOpResponse::Get(r),
        response_op::Response::ResponsePut(r) => TxnOpResponse::Put(r),
        response_op::Response::ResponseDeleteRange(r) => TxnOpResponse::Delete(r),
        response_op::Response::ResponseTxn(r) => TxnOpResponse::Txn(r),
    }
}

impl TxnResponseExt for TxnResponse {
    fn op_responses(&self) -> Vec<TxnOpResponse> {
        self.responses
            .iter()
            .filter_map(|r| r.response.clone().map(typed))
            .collect()
    }

    fn into_op_responses(self) -> Vec<TxnOpResponse> {
        self.responses
            .into_iter()
            .filter_map(|r| r.response.map(typed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdv3_proto::etcdserverpb::ResponseOp;

    #[test]
    fn text_views_and_kinds() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            value: vec![0xff],
            version: 1,
            ..Default::default()
        };
        assert_eq!(kv.key_str().unwrap(), "k");
        assert!(kv.value_str().is_err());
        assert_eq!(kv.value_lossy(), "\u{fffd}");
        let ev = Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        };
        assert!(ev.is_put() && ev.is_create() && !ev.is_delete());
    }

    #[test]
    fn txn_results_are_typed_in_order() {
        let resp = TxnResponse {
            responses: vec![
                ResponseOp {
                    response: Some(response_op::Response::ResponsePut(PutResponse::default())),
                },
                ResponseOp { response: None },
                ResponseOp {
                    response: Some(response_op::Response::ResponseRange(RangeResponse {
                        count: 2,
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        let ops = resp.op_responses();
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[0], TxnOpResponse::Put(_)));
        assert!(matches!(&ops[1], TxnOpResponse::Get(r) if r.count == 2));
        assert_eq!(resp.into_op_responses(), ops);
    }
}
