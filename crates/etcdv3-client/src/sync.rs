//! Endpoint auto-sync: keep the endpoint set equal to the cluster's members,
//! without ever losing the endpoints that are known to work.
//!
//! Members advertise the client URLs they were configured with, which need
//! not be reachable from here (containers, NAT, `localhost`). So the seed
//! endpoints stay in the set, next to the advertised ones, until one of the
//! advertised endpoints has answered a call. They stay a fallback for the
//! client's whole life: they come back whenever a member list says none of
//! the advertised endpoints is answering, and also when no member list can
//! be had at all (the advertised member that answered died, the others are
//! unreachable from here): before each sync, when no endpoint in use is
//! answering, and after a sync that failed. A URL that does not parse is
//! skipped with a warning instead of failing the whole update, and the
//! member list is only taken from a member that has a leader.
//!
//! Unix socket endpoints (`unix://`, `unixs://`) given as seeds always stay:
//! a member never names the socket a client reaches it by (etcd only listens
//! on sockets relative to its own working directory), so an advertised
//! `unix://` URL is skipped and a seed one cannot be told stale.

use std::time::Duration;

use etcdv3_core::endpoints::endpoint::{Endpoint, EndpointError};
use etcdv3_core::endpoints::health::HealthState;
use etcdv3_core::machine::EndpointState;
use etcdv3_proto::etcdserverpb::{MemberListRequest, MemberListResponse};
use etcdv3_proto::method::CLUSTER_MEMBER_LIST;

use crate::client::Client;
use crate::error::{Error, Result};

/// The client URLs of the voting members in a member list (learners cannot
/// serve most requests, so they are left out).
pub(crate) fn member_endpoints(resp: &MemberListResponse) -> Vec<String> {
    let mut urls: Vec<String> = resp
        .members
        .iter()
        .filter(|m| !m.is_learner)
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Parse advertised URLs: the usable endpoints (deduplicated, in order) and
/// the errors of those that do not parse. Unix socket URLs are left out:
/// their paths are relative to the member's working directory.
pub(crate) fn parse_advertised(urls: &[String]) -> (Vec<Endpoint>, Vec<EndpointError>) {
    let mut ok: Vec<Endpoint> = Vec::new();
    let mut bad = Vec::new();
    for url in urls {
        match Endpoint::parse(url) {
            Ok(ep) if ep.is_unix() => {
                tracing::debug!(url = %url, "advertised unix socket URL skipped");
            }
            Ok(ep) if !ok.contains(&ep) => ok.push(ep),
            Ok(_) => {}
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

/// Whether an endpoint has answered a call or probe and is not down now.
pub(crate) fn is_answering(state: &EndpointState) -> bool {
    let answered = state.raft_term > 0 || state.latency.is_some();
    answered && !matches!(state.health, HealthState::Down { .. })
}

/// The endpoint set after a member list: the advertised endpoints, plus the
/// seeds (those not advertised) while no advertised endpoint `answering`,
/// plus the unix socket seeds always.
/// `None` when nothing usable was advertised: keep the set as it is.
pub(crate) fn next_endpoints(
    seeds: &[Endpoint],
    advertised: &[Endpoint],
    answering: impl Fn(&Endpoint) -> bool,
) -> Option<Vec<Endpoint>> {
    if advertised.is_empty() {
        return None;
    }
    let mut next = advertised.to_vec();
    let keep_all = !advertised.iter().any(answering);
    next.extend(
        seeds
            .iter()
            .filter(|s| (keep_all || s.is_unix()) && !advertised.contains(s))
            .cloned(),
    );
    Some(next)
}

/// The endpoint set with the seeds back in it, when they are missing and
/// none of the endpoints in use is answering (or `failed`: a sync could not
/// fetch the member list): the seeds are the fallback that lets the next
/// member list be fetched. `None`: leave the set as it is.
pub(crate) fn with_seed_fallback(
    states: &[EndpointState],
    seeds: &[Endpoint],
    failed: bool,
) -> Option<Vec<Endpoint>> {
    let current: Vec<Endpoint> = states.iter().map(|s| s.endpoint.clone()).collect();
    let missing: Vec<Endpoint> = seeds
        .iter()
        .filter(|s| !current.contains(s))
        .cloned()
        .collect();
    if missing.is_empty() || (!failed && states.iter().any(is_answering)) {
        return None;
    }
    Some(current.into_iter().chain(missing).collect())
}

/// Put the seeds back into the endpoint set if [`with_seed_fallback`] says
/// so.
fn fall_back_to_seeds(client: &Client, seeds: &[Endpoint], failed: bool) {
    if let Some(next) = with_seed_fallback(&client.shared.endpoint_states(), seeds, failed) {
        tracing::info!(endpoints = ?next, "no member list to be had through the advertised endpoints: the seed endpoints are back");
        if let Err(e) = client.shared.set_endpoints(next) {
            tracing::warn!(error = %e, "putting the seed endpoints back failed");
        }
    }
}

/// Fetch the member list from a member that has a leader (`hasleader`: a
/// member without one refuses, and the core tries another).
async fn member_list(client: &Client) -> Result<MemberListResponse> {
    let shared = &client.shared;
    let req = MemberListRequest {
        linearizable: false,
    };
    let method = CLUSTER_MEMBER_LIST;
    let frame = |source| Error::Frame {
        method: method.path,
        source,
    };
    let body = etcdv3_core::wire::codec::encode(&req, shared.options.max_send_message_size)
        .map_err(frame)?;
    let timeout = shared.options.request_timeout;
    let msg =
        crate::transport::call::unary_with_leader(shared, method, body, timeout, true).await?;
    etcdv3_core::wire::codec::decode_message(msg).map_err(frame)
}

/// One sync: fetch the member list and update the endpoint set
/// ([`next_endpoints`], `seeds` kept while no advertised endpoint answers).
/// Returns the endpoint set in use afterwards.
pub(crate) async fn sync_once(client: &Client, seeds: &[Endpoint]) -> Result<Vec<Endpoint>> {
    let resp = member_list(client).await?;
    let (advertised, bad) = parse_advertised(&member_endpoints(&resp));
    for e in &bad {
        tracing::warn!(error = %e, "member list: skipping an unusable client URL");
    }
    let states = client.shared.endpoint_states();
    let current: Vec<Endpoint> = states.iter().map(|s| s.endpoint.clone()).collect();
    let answering = |ep: &Endpoint| states.iter().any(|s| &s.endpoint == ep && is_answering(s));
    let Some(next) = next_endpoints(seeds, &advertised, answering) else {
        tracing::warn!("member list has no usable client URLs; endpoints unchanged");
        return Ok(current);
    };
    let unchanged = next.len() == states.len()
        && next
            .iter()
            .all(|ep| states.iter().any(|s| &s.endpoint == ep));
    if unchanged {
        return Ok(current);
    }
    client.shared.set_endpoints(next.clone())?;
    tracing::debug!(endpoints = ?next, "endpoints synced from member list");
    Ok(next)
}

/// With [`ClientOptions::with_discovery_srv`](crate::ClientOptions::with_discovery_srv):
/// the SRV records resolved again, the endpoints they name (`None`: no
/// discovery, it failed or found none that parse: keep the seeds).
async fn rediscover(client: &Client) -> Option<Vec<Endpoint>> {
    let discovery = client.shared.options.discovery_srv.as_ref()?;
    let found = match crate::discover_srv(client.runtime().as_ref(), discovery).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "SRV discovery before a sync failed; seeds kept");
            return None;
        }
    };
    let (endpoints, _) = parse_advertised(&found.endpoints);
    (!endpoints.is_empty()).then_some(endpoints)
}

/// Every `interval`, fetch the member list and update the endpoint set
/// ([`next_endpoints`]). Members added are used, members removed are
/// dropped and their connections closed. Ends when the client closes.
pub(crate) async fn run(client: Client, interval: Duration) {
    let mut seeds: Vec<Endpoint> = client
        .shared
        .endpoint_states()
        .into_iter()
        .map(|s| s.endpoint)
        .collect();
    loop {
        let at = client.now() + interval;
        client.runtime().sleep_until(at).await;
        if client.is_closed() {
            return;
        }
        if let Some(found) = rediscover(&client).await {
            seeds = found;
        }
        fall_back_to_seeds(&client, &seeds, false);
        match sync_once(&client, &seeds).await {
            Ok(_) => {}
            Err(e) if e.is_closed() => return,
            Err(e) => {
                tracing::debug!(error = %e, "member list sync failed");
                fall_back_to_seeds(&client, &seeds, true);
            }
        }
    }
}

impl Client {
    /// Sync the endpoint set with the cluster's member list now (what
    /// [`ClientOptions::with_auto_sync`](crate::ClientOptions::with_auto_sync)
    /// does periodically): the voting members' advertised client URLs, plus
    /// the current endpoints while none of the advertised ones has answered
    /// (advertised URLs need not be reachable from here). The member list
    /// comes from a member that has a leader. Returns the endpoints in use
    /// afterwards.
    ///
    /// ```no_run
    /// async fn demo(client: &etcdv3_client::Client) -> etcdv3_client::Result<()> {
    ///     let endpoints = client.sync().await?;
    ///     println!("now using {endpoints:?}");
    ///     Ok(())
    /// }
    /// ```
    pub async fn sync(&self) -> Result<Vec<String>> {
        let seeds: Vec<Endpoint> = self
            .shared
            .endpoint_states()
            .into_iter()
            .map(|s| s.endpoint)
            .collect();
        let next = sync_once(self, &seeds).await?;
        Ok(next.iter().map(|e| e.to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcdv3_proto::etcdserverpb::Member;

    fn eps(urls: &[&str]) -> Vec<Endpoint> {
        urls.iter().map(|u| Endpoint::parse(u).unwrap()).collect()
    }

    #[test]
    fn learners_are_left_out_and_urls_deduplicated() {
        let m = |urls: &[&str], learner| Member {
            client_ur_ls: urls.iter().map(|s| s.to_string()).collect(),
            is_learner: learner,
            ..Default::default()
        };
        let resp = MemberListResponse {
            members: vec![
                m(&["http://b:2379", "http://a:2379"], false),
                m(&["http://c:2379"], true),
                m(&["http://a:2379"], false),
            ],
            ..Default::default()
        };
        assert_eq!(
            member_endpoints(&resp),
            vec!["http://a:2379", "http://b:2379"]
        );
    }

    #[test]
    fn unparsable_urls_are_skipped_not_fatal() {
        let urls: Vec<String> = [
            "unix://localhost:1",
            "http://a:2379",
            "a:2379",
            "http://b/x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (ok, bad) = parse_advertised(&urls);
        // `a:2379` is the same endpoint as `http://a:2379`; the unix URL
        // parses but is the member's own path: skipped, not an error.
        assert_eq!(ok, eps(&["http://a:2379"]));
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn unix_seeds_always_stay() {
        let seeds = eps(&["unix:///run/etcd.sock", "http://lb:2379"]);
        let advertised = eps(&["http://a:2379"]);
        let answered = Endpoint::parse("http://a:2379").unwrap();
        // An advertised endpoint answered: the TCP seed goes, the unix one stays.
        let next = next_endpoints(&seeds, &advertised, |e| *e == answered).unwrap();
        assert_eq!(next, eps(&["http://a:2379", "unix:///run/etcd.sock"]));
        // Nothing advertised answered: all seeds, once each.
        let next = next_endpoints(&seeds, &advertised, |_| false).unwrap();
        assert_eq!(
            next,
            eps(&["http://a:2379", "unix:///run/etcd.sock", "http://lb:2379"])
        );
    }

    #[test]
    fn seeds_stay_until_an_advertised_endpoint_answers() {
        let seeds = eps(&["http://lb:2379", "http://a:2379"]);
        let advertised = eps(&["http://a:2379", "http://10.0.0.9:2379"]);
        // Nothing advertised answered yet: the seeds stay, without duplicates.
        let next = next_endpoints(&seeds, &advertised, |_| false).unwrap();
        assert_eq!(
            next,
            eps(&["http://a:2379", "http://10.0.0.9:2379", "http://lb:2379"])
        );
        // An advertised endpoint answered: the set is the advertised one.
        let answered = Endpoint::parse("http://a:2379").unwrap();
        let next = next_endpoints(&seeds, &advertised, |e| *e == answered).unwrap();
        assert_eq!(next, advertised);
        // Only a seed answered (not advertised): the seeds stay.
        let lb = Endpoint::parse("http://lb:2379").unwrap();
        let advertised = eps(&["http://10.0.0.9:2379"]);
        let next = next_endpoints(&seeds, &advertised, |e| *e == lb).unwrap();
        assert_eq!(
            next,
            eps(&["http://10.0.0.9:2379", "http://lb:2379", "http://a:2379"])
        );
        // Nothing usable advertised: unchanged.
        assert_eq!(next_endpoints(&seeds, &[], |_| true), None);
    }

    fn state(url: &str, answered: bool) -> EndpointState {
        EndpointState {
            id: etcdv3_core::machine::EndpointId(0),
            endpoint: Endpoint::parse(url).unwrap(),
            health: HealthState::Up,
            tier: 0,
            in_flight: 0,
            latency: None,
            leader: None,
            raft_term: if answered { 2 } else { 0 },
            connected: true,
        }
    }

    /// The seeds were dropped once an advertised endpoint answered; when
    /// that member dies and the other advertised URLs are unreachable from
    /// here, no member list can be fetched, and the seeds come back as the
    /// fallback (issue 17 §5: they never did).
    #[test]
    fn seeds_come_back_when_nothing_in_use_answers_or_a_sync_failed() {
        let seeds = eps(&["http://lb:2379"]);
        let alive = [state("http://a:2379", true), state("http://b:2379", false)];
        assert_eq!(with_seed_fallback(&alive, &seeds, false), None);
        let dead = [state("http://a:2379", false), state("http://b:2379", false)];
        assert_eq!(
            with_seed_fallback(&dead, &seeds, false),
            Some(eps(&["http://a:2379", "http://b:2379", "http://lb:2379"]))
        );
        // A sync that failed brings them back even if an endpoint looks fine.
        assert_eq!(
            with_seed_fallback(&alive, &seeds, true),
            Some(eps(&["http://a:2379", "http://b:2379", "http://lb:2379"]))
        );
        // Already there: nothing to do.
        let with_seed = [
            state("http://a:2379", false),
            state("http://lb:2379", false),
        ];
        assert_eq!(with_seed_fallback(&with_seed, &seeds, true), None);
    }

    #[test]
    fn answering_needs_an_answer_and_no_current_failure() {
        let mut s = EndpointState {
            id: etcdv3_core::machine::EndpointId(0),
            endpoint: Endpoint::parse("http://a:2379").unwrap(),
            health: HealthState::Up,
            tier: 0,
            in_flight: 0,
            latency: None,
            leader: None,
            raft_term: 0,
            connected: true,
        };
        assert!(!is_answering(&s), "never answered");
        s.raft_term = 2;
        assert!(is_answering(&s));
        s.health = HealthState::Down {
            retry_at: std::time::Instant::now(),
        };
        assert!(!is_answering(&s), "down now");
    }
}
