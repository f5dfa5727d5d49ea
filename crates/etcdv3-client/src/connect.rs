//! Building a [`Client`]: [`Client::new`] and [`Client::connect`].
//!
//! Here, above `client` and `sync` in the crate's module order (modules
//! import downward only), because a new client may start the auto-sync
//! task.

use std::sync::Arc;

use etcdv3_core::endpoints::endpoint::Endpoint;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::runtime::Runtime;
use crate::transport::Shared;

impl Client {
    /// A client for `endpoints` (`http://host:port`, `https://host:port`,
    /// `host:port`, or a unix socket `unix://path` / `unixs://path`, which
    /// needs a runtime with [`Runtime::connect_unix`]) on `runtime`.
    /// Connections are opened lazily, on the first call.
    ///
    /// Fails when the list is empty, an endpoint is invalid, or an `https`
    /// or `unixs` endpoint is given without TLS options.
    ///
    /// ```no_run
    /// use etcdv3_client::{Client, ClientOptions, Runtime};
    /// use std::sync::Arc;
    /// # fn demo(runtime: Arc<dyn Runtime>) -> etcdv3_client::Result<()> {
    /// let client = Client::new(runtime, ["http://127.0.0.1:2379"], ClientOptions::default())?;
    /// assert!(!client.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn new<I, S>(
        runtime: Arc<dyn Runtime>,
        endpoints: I,
        options: ClientOptions,
    ) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for e in endpoints {
            parsed.push(Endpoint::parse(e.as_ref())?);
        }
        if parsed.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        let sync = options.auto_sync_interval;
        let shared = Shared::new(runtime, parsed, options)?;
        let client = Client::from_shared(shared);
        if let Some(interval) = sync {
            client.spawn(crate::sync::run(client.background(), interval));
        }
        Ok(client)
    }

    /// [`Client::new`] on the endpoints DNS SRV discovery found (with
    /// [`ClientOptions::with_discovery_srv`]; the given endpoints when it
    /// found none), then, with
    /// [`ClientOptions::reject_old_cluster`], the version check
    /// ([`Client::check_cluster_version`] for etcd 3.2, as Go's
    /// `RejectOldCluster`). The runtime crates' `connect` call this.
    ///
    /// ```no_run
    /// use etcdv3_client::{Client, ClientOptions, Runtime};
    /// use std::sync::Arc;
    /// # async fn demo(runtime: Arc<dyn Runtime>) -> etcdv3_client::Result<()> {
    /// let options = ClientOptions::default().with_reject_old_cluster();
    /// let client = Client::connect(runtime, ["http://127.0.0.1:2379"], options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<I, S>(
        runtime: Arc<dyn Runtime>,
        endpoints: I,
        options: ClientOptions,
    ) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let reject = options.reject_old_cluster;
        let mut endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().to_string())
            .collect();
        if let Some(discovery) = &options.discovery_srv {
            let found = crate::discover_srv(runtime.as_ref(), discovery).await?;
            for url in &found.ignored_insecure {
                tracing::info!(endpoint = %url, "ignoring discovered insecure endpoint");
            }
            if !found.endpoints.is_empty() {
                endpoints = found.endpoints;
            }
        }
        let client = Client::new(runtime, endpoints, options)?;
        if reject {
            client.check_cluster_version(3, 2).await?;
        }
        Ok(client)
    }
}
