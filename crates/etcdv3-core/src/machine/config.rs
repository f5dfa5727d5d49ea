//! Tunables of the composed state machine.

use std::time::Duration;

use crate::endpoints::balancer::Policy;
use crate::util::backoff::BackoffConfig;
use crate::util::budget::RetryBudgetConfig;

/// Configuration of [`crate::machine::Core`]. `Default` gives the settings
/// the project measures and recommends.
#[derive(Debug, Clone)]
pub struct Config {
    /// Balancing policy.
    pub policy: Policy,
    /// Longest time a connection attempt (TCP + HTTP/2 handshake + first
    /// PING answered) may take before the endpoint counts as failed.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 keepalive pings while a long-lived stream (watch,
    /// lease keepalive) or a call waiting for its turn (`Lock`, `Campaign`)
    /// is open and nothing is heard. Used as at least 5.5 s: etcd's server
    /// sends GOAWAY "too_many_pings" to clients whose pings arrive less
    /// than 5 s apart (a ping delayed on the way makes the next one arrive
    /// early). It bounds how long a hung member holding only an idle watch
    /// goes unnoticed: up to this interval plus `ping_timeout` (10.8 s by
    /// default; measured 2.3-9.4 s until events flow through another
    /// member), for one PING per interval per idle connection.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is declared
    /// dead and everything on it fails over.
    pub ping_timeout: Duration,
    /// A connection that owes the client a reply (a call, a stream request,
    /// a probe) and from which nothing was heard for this long gets a
    /// liveness ping, and new calls avoid it until the pong. A slow call on
    /// a member that answers pings is never aborted or re-sent.
    pub stall_timeout: Duration,
    /// How often connected endpoints are probed with `Maintenance/Status` to
    /// compare leader and raft term (partition detection) while calls are in
    /// flight or after a failure (see `probe_when_idle`). `None` disables.
    pub probe_interval: Option<Duration>,
    /// Probe also while the client is idle (no call in flight, no recent
    /// failure). Off by default: an idle client costs the cluster nothing
    /// (thousands of idle clients would otherwise send thousands of Status
    /// RPCs per second); on, the first call after a quiet period already
    /// knows which members are cut off.
    pub probe_when_idle: bool,
    /// How long a probe may take.
    pub probe_timeout: Duration,
    /// Connections idle this long are closed.
    pub idle_timeout: Duration,
    /// Backoff between retries of a call.
    pub retry_backoff: BackoffConfig,
    /// Backoff of an endpoint after consecutive failures: how long a down
    /// member ranks after the live ones (and is not reconnected beside
    /// calls) while some member is up.
    pub endpoint_backoff: BackoffConfig,
    /// Spacing of connection attempts to one endpoint, whatever the number
    /// of calls waiting: after a failed attempt the next one waits a delay
    /// drawn from this backoff; after a connection that broke, the next
    /// attempt starts no sooner than `min_delay()` after the broken one
    /// started. At most one attempt per endpoint is ever in flight. While
    /// every member is down and calls wait, each endpoint is retried at
    /// this spacing (the default: 100-180 ms, at most 10 per second per
    /// endpoint), so a member that comes back is used within 0.2 s while a
    /// client with a thousand waiting calls costs the recovering members
    /// no more connection attempts than one with a single call.
    pub connect_backoff: BackoffConfig,
    /// Backoff between reopens of a long-lived stream (watch, lease
    /// keepalive, observe) that keeps failing (the stream supervisor's).
    pub stream_backoff: BackoffConfig,
    /// While no endpoint is usable (every member down), calls waiting to be
    /// retried try again at least this often, so a member that comes back
    /// is used at once rather than after a grown backoff.
    pub outage_retry: Duration,
    /// Credentials are configured: every call waits for an auth token
    /// before it is sent (the core asks for one with `Action::Authenticate`
    /// before the first call), streams included.
    pub authenticate: bool,
    /// How long an endpoint that rejected the client for a reason retrying
    /// cannot fix ([`crate::machine::Core::handle_connect_rejected`]: an
    /// untrusted certificate, a name mismatch, a client certificate the
    /// server refuses) is left out before one connection is tried again (its
    /// certificate may have been replaced meanwhile). While every endpoint a
    /// call may use is rejected, the call fails at once with
    /// [`crate::machine::CallError::Rejected`].
    pub rejection_recheck: Duration,
    /// The client's retry budget: re-sends of a request that may have
    /// reached a member (after a lost connection, a silent member, a lost
    /// leader, a retryable server error, a stale read) are allowed up to a
    /// fraction of first attempts plus a floor, over a sliding window (see
    /// [`crate::util::budget`]). A call whose retry finds the budget spent ends
    /// with [`crate::machine::CallError::RetryBudgetSpent`]. Re-sends of
    /// requests that never reached a member (never sent, `REFUSED_STREAM`)
    /// and the one re-send after a refused auth token are free. `None`:
    /// unlimited.
    pub retry_budget: Option<RetryBudgetConfig>,
    /// How many times a serializable read answered below the revision the
    /// client had already seen is retried (elsewhere at once, else after the
    /// retry backoff) before that answer is handed over marked as stale
    /// ([`crate::machine::Event::StaleRead`]); see `machine/fence.rs`. A
    /// bound keeps one bogus revision, or a cluster restored from an older
    /// snapshot, from failing serializable reads.
    pub stale_read_retries: u32,
    /// How long mutations wait for the cluster's next leader once the
    /// leader is seen to go (it reports that it lost its leadership, or its
    /// connection breaks). Followers keep forwarding to the old leader
    /// until they elect a new one, and a mutation forwarded there is lost
    /// (it would end "outcome unknown"), so mutations are held meanwhile
    /// and go to the new leader as soon as a probe names it (or to the old
    /// one, if it answers as leader again). Past this, they go out
    /// anyway. Probes run every [`Config::election_probe_interval`] while
    /// they wait. See `machine/cluster.rs`.
    pub election_wait: Duration,
    /// Probe spacing while mutations wait for an election
    /// ([`Config::election_wait`]): how late the client learns of the new
    /// leader, at most.
    pub election_probe_interval: Duration,
}

/// The minimum interval between keepalive pings etcd's server tolerates.
pub const MIN_PING_INTERVAL: Duration = Duration::from_secs(5);

/// The deadline of a call whose caller gives none: the client's default
/// request timeout (`ClientOptions::request_timeout`). Calls carry their
/// own deadline into the core; this is only the default the client starts
/// from.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call that waits for its turn (`Lock`, `Campaign`) may wait
/// when its caller gives no timeout: in practice, until it succeeds (a
/// year). Such a call costs the cluster nothing while it waits on a live
/// member (see `machine/liveness.rs`).
pub const UNBOUNDED_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::Adaptive,
            connect_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_millis(800),
            stall_timeout: Duration::from_millis(500),
            probe_interval: Some(Duration::from_secs(2)),
            probe_when_idle: false,
            probe_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(120),
            retry_backoff: BackoffConfig {
                initial: Duration::from_millis(25),
                max: Duration::from_millis(500),
                multiplier: 2,
                jitter: 0.5,
            },
            endpoint_backoff: BackoffConfig {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(5),
                multiplier: 2,
                jitter: 0.5,
            },
            connect_backoff: BackoffConfig {
                initial: Duration::from_millis(180),
                max: Duration::from_millis(180),
                multiplier: 1,
                // 180 ms minus up to 44 %: 100.8-180 ms.
                jitter: 0.44,
            },
            stream_backoff: BackoffConfig {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(3),
                multiplier: 2,
                jitter: 0.5,
            },
            outage_retry: Duration::from_millis(100),
            authenticate: false,
            rejection_recheck: Duration::from_secs(30),
            retry_budget: Some(RetryBudgetConfig::default()),
            stale_read_retries: 3,
            // etcd's randomized election timeout is 1-2x its
            // `--election-timeout` (1 s by default), counted from the last
            // heartbeat, which is at most a moment before the leader is
            // seen to go.
            election_wait: Duration::from_secs(3),
            election_probe_interval: Duration::from_millis(100),
        }
    }
}
